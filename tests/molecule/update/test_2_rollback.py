"""rollback.yml on the stack test_1_update.py left, checked from outside. Tests run in file order
and build on each other: a history is made with updates, then one service and the whole stack go
back, by digest, to good releases only."""
from __future__ import annotations

import json
import time

import pytest
from bench_images import NEXT  # tests/lib, on the path from conftest.py


def service_container(host, stack: str, service: str) -> dict:
    ids = host.check_output(
        f"docker ps -q --filter label=com.docker.compose.project={stack} --filter label=com.docker.compose.service={service}"
    ).split()
    assert len(ids) == 1, f"{service}: {len(ids)} running containers"
    return json.loads(host.check_output(f"docker inspect {ids[0]}"))[0]


def rows(host, stack: str) -> str:
    return host.check_output(
        f"docker exec {service_container(host, stack, 'sgivu-user')['Id']} curl -fsS http://127.0.0.1:8081/items"
    )


def write_row(host, stack: str, body: str) -> None:
    host.check_output(
        f"docker exec {service_container(host, stack, 'sgivu-user')['Id']} curl -fsS -X POST --data {body} http://127.0.0.1:8081/items"
    )


def history(host, stack: str) -> list[dict]:
    """The good releases, oldest first (failed attempts are recorded too, and never rolled back to)."""
    return [r for r in json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"] if r["status"] == "good"]


def digest(ref: str) -> str:
    return ref.rsplit("@", 1)[-1]


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def marks() -> dict:
    return {"before": f"before-{int(time.time())}", "after": f"after-{int(time.time())}"}


def test_updates_make_a_history_to_roll_back_to(host, run_playbook, stack, marks):
    write_row(host, stack, marks["before"])
    for service in ("sgivu-gateway", "sgivu-user"):
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={service}", "-e", f"version={NEXT}")
        assert run.returncode == 0, run.stdout[-3000:]
    write_row(host, stack, marks["after"])
    assert len(history(host, stack)) >= 3


def test_one_service_goes_back_by_digest_without_dropping_a_request(host, run_playbook, stack, probe, via_nginx):
    releases = history(host, stack)
    wanted = releases[0]["services"]["sgivu-gateway"]["digest"]
    with probe("/v1/version") as watch:
        run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway")
    assert run.returncode == 0, run.stdout[-3000:]
    assert watch.failures == []
    assert digest(service_container(host, stack, "sgivu-gateway")["Config"]["Image"]) == digest(wanted)
    assert via_nginx("/v1/version")[1]["version"] == "1.0.0"


def test_a_service_rollback_leaves_the_others_and_the_data(host, stack, marks):
    assert f":{NEXT}@sha256:" in service_container(host, stack, "sgivu-user")["Config"]["Image"]
    assert marks["before"] in rows(host, stack) and marks["after"] in rows(host, stack)


def test_the_history_records_the_rollback_and_stays_consistent(host, stack):
    releases = history(host, stack)
    assert releases[-1]["purpose"].startswith("rollback sgivu-gateway to ")
    assert len({r["id"] for r in releases}) == len(releases)


def test_rolling_back_to_the_same_release_again_changes_nothing(host, run_playbook, stack, changed_counts):
    target = history(host, stack)[0]["id"]
    run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway", "-e", f"to_release={target}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_counts(run.stdout) == [0]


def test_an_unknown_release_is_refused_naming_the_recorded_ones(host, run_playbook):
    run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway", "-e", "to_release=19990101T000000Z")
    assert run.returncode != 0
    assert "19990101T000000Z is not in the history" in run.stdout
    # The operator's message alone: the plan asserts the history's answer, no filter fails inside a template.
    assert "Error while resolving" not in run.stdout and "filter plugin" not in run.stdout, run.stdout[-3000:]


def test_the_whole_stack_goes_back_to_a_recorded_release_without_dropping_a_request(host, run_playbook, stack, marks, probe):
    releases = history(host, stack)
    target = releases[0]
    # sgivu-user goes back from the next release: the images alone differ, so it is rolled out start-first.
    with probe("/v1/users/7", interval=0.05) as calls:
        run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", f"to_release={target['id']}")
    assert run.returncode == 0, run.stdout[-3000:]
    for service, entry in target["services"].items():
        assert digest(service_container(host, stack, service)["Config"]["Image"]) == digest(entry["digest"]), service
    assert marks["after"] in rows(host, stack), "without restore_database the data stays as it is"
    assert len(calls.results) > 50 and calls.failures == []


def test_a_deploy_of_a_public_service_s_new_tag_swaps_it_without_dropping_a_request(host, run_playbook, stack, probe,
                                                                                    ansible_vars):
    """The everyday release: a catalog tag moved (here with compose_stack_images, as the catalog would
    give it) and deploy.yml run; then back to the version the rollback pinned, with a plain deploy."""
    image = f"{ansible_vars['stack_registry']}/sgivu-auth:{NEXT}"
    pinned = service_container(host, stack, "sgivu-auth")["Config"]["Image"]
    with probe("/login") as logins:
        moved = run_playbook("deploy.yml", "--limit", host.backend.get_hostname(),
                             "-e", json.dumps({"compose_stack_images": {"sgivu-auth": image}}))
        assert moved.returncode == 0, moved.stdout[-3000:]
        assert service_container(host, stack, "sgivu-auth")["Config"]["Image"].startswith(image + "@sha256:")
        back = run_playbook("deploy.yml", "--limit", host.backend.get_hostname())
        assert back.returncode == 0, back.stdout[-3000:]
    assert service_container(host, stack, "sgivu-auth")["Config"]["Image"] == pinned
    assert "compose_rollout : replace |" in moved.stdout and "compose_rollout : replace |" in back.stdout
    assert len(logins.results) > 100 and logins.failures == []


def test_a_database_restore_brings_back_the_dump_of_that_release(host, run_playbook, stack, marks):
    # Move on from the current release (the move dumps the database), write, then go back with the dump.
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-user", "-e", f"version={NEXT}")
    assert run.returncode == 0, run.stdout[-3000:]
    late = f"late-{int(time.time())}"
    write_row(host, stack, late)
    target = history(host, stack)[-2]
    run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", f"to_release={target['id']}", "-e", "restore_database=true")
    assert run.returncode == 0, run.stdout[-3000:]
    data = rows(host, stack)
    assert marks["before"] in data and marks["after"] in data
    assert late not in data, "the restore should bring the database back to the dump"
    dump = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]["backup"]
    assert dump, "a fresh dump comes before a restore"
    assert late in host.check_output(f"zcat {dump}"), "the dump taken before the restore holds what was there"


def test_status_prints_the_history_and_what_runs(host, run_playbook, stack):
    run = run_playbook("status.yml", "--limit", host.backend.get_hostname())
    assert run.returncode == 0, run.stdout[-3000:]
    assert "RELEASES of sgivu" in run.stdout
    assert history(host, stack)[-1]["id"] in run.stdout
    assert "sgivu-sgivu-gateway" in run.stdout
