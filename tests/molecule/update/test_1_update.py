"""update.yml on a deployed stack, watched from outside by a probe through Nginx (first of the
update scenario's files: test_2_rollback.py and test_3_moved_tag.py build on what it leaves).

The tests run in file order and build on each other: the gateway moves to the next release, then a
service behind the registry (start-first, then a release of it that never gets healthy), then the
gateway meets a release that never gets healthy.
"""
from __future__ import annotations

import json

import pytest
from bench_images import NEVER_HEALTHY, NEXT  # tests/lib, on the path from conftest.py


def service_containers(host, stack: str, service: str) -> list[dict]:
    ids = host.check_output(
        f"docker ps -aq --filter label=com.docker.compose.project={stack} --filter label=com.docker.compose.service={service}"
    ).split()
    return json.loads(host.check_output(f"docker inspect {' '.join(ids)}")) if ids else []


def gateway_containers(host, stack: str) -> list[dict]:
    return service_containers(host, stack, "sgivu-gateway")


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


def test_gateway_update_drops_no_request(host, run_playbook, probe, via_nginx, changed_counts):
    with probe("/v1/version") as watch:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert len(watch.results) > 50, "the probe ran too briefly to tell anything"
    assert watch.failures == []
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_only_the_new_gateway_runs_after_the_swap(host, stack):
    containers = gateway_containers(host, stack)
    assert len(containers) == 1
    assert f"/sgivu-gateway:{NEXT}@sha256:" in containers[0]["Config"]["Image"]


def test_nginx_follows_the_new_container(host, ansible_vars, stack):
    port = gateway_containers(host, stack)[0]["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    upstreams = host.file(f"/etc/nginx/conf.d/{stack}-upstreams.conf").content_string
    assert f"server 127.0.0.1:{port};" in upstreams


def api_probes(probe):
    """GET and POST through Nginx and the gateway to sgivu-user (lb://, found in the registry)."""
    return probe("/v1/users/7", interval=0.05), probe("/v1/users", interval=0.05, method="POST", data=b'{"name": "ana"}')


def test_a_service_behind_the_registry_is_swapped_start_first_dropping_no_request(host, run_playbook, probe, stack):
    """Issue 11: the new sgivu-user is UP in the registry before the old one leaves service there, and
    the old one stops only once the gateway's cached instance list expired."""
    gets, posts = api_probes(probe)
    # From inside the execution environment image, as an AWX job template runs it (issue 14).
    with gets, posts:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-user", "-e", f"version={NEXT}", in_ee=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ansible-navigator run update.yml" in run.stdout.splitlines()[0]
    assert "Hand over in the registry (new ones UP, old ones out of service, the callers' cache waited out), sgivu-user" in run.stdout
    for watch in (gets, posts):
        assert len(watch.results) > 100, "the probe ran too briefly to tell anything"
        assert watch.failures == []
    assert NEXT in gets.versions and len(gets.versions) == 2 and gets.results[-1][1] == NEXT
    containers = service_containers(host, stack, "sgivu-user")
    assert len(containers) == 1 and f"/sgivu-user:{NEXT}@sha256:" in containers[0]["Config"]["Image"]


def test_a_never_healthy_service_behind_the_registry_leaves_the_old_one_serving(host, run_playbook, probe, stack):
    before = [c["Id"] for c in service_containers(host, stack, "sgivu-user")]
    gets, posts = api_probes(probe)
    with gets, posts:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-user", "-e", f"version={NEVER_HEALTHY}", "-e", "health_timeout=20")
    assert run.returncode != 0
    assert "the new sgivu-user did not become healthy" in run.stdout
    for watch in (gets, posts):
        assert watch.failures == []
        assert watch.versions == {NEXT}
    assert [c["Id"] for c in service_containers(host, stack, "sgivu-user")] == before


def test_dependants_were_left_running(host, stack):
    ml = json.loads(host.check_output(
        f"docker inspect $(docker ps -q --filter label=com.docker.compose.project={stack} "
        f"--filter label=com.docker.compose.service=sgivu-ml)"
    ))[0]
    started = ml["State"]["StartedAt"]
    user = json.loads(host.check_output(
        f"docker inspect $(docker ps -q --filter label=com.docker.compose.project={stack} "
        f"--filter label=com.docker.compose.service=sgivu-user)"
    ))[0]
    assert started < user["State"]["StartedAt"], "sgivu-ml was restarted with the service it depends on"


def test_the_same_update_again_changes_nothing(host, run_playbook, changed_counts):
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                       "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_counts(run.stdout) == [0]


def test_a_deploy_after_the_update_keeps_the_new_versions(host, run_playbook, changed_counts, via_nginx):
    # Also from inside the execution environment: every SSM lookup, compose call and health check.
    run = run_playbook("deploy.yml", "--limit", host.backend.get_hostname(), in_ee=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ansible-navigator run deploy.yml" in run.stdout.splitlines()[0]
    assert changed_counts(run.stdout) == [0]
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_a_never_healthy_release_is_undone_by_itself_and_drops_no_request(host, run_playbook, probe, via_nginx, stack):
    before = [c["Id"] for c in gateway_containers(host, stack)]
    with probe("/v1/version") as watch:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-gateway", "-e", f"version={NEVER_HEALTHY}", "-e", "health_timeout=20")
    assert run.returncode != 0
    assert "sgivu-gateway" in run.stdout and "did not become healthy" in run.stdout
    assert "listening on" in run.stdout, "the failure should show the service's last log lines"
    # The step is named as written, and only the new container is blamed and quoted: the old one serves.
    assert "Start the new containers beside the running ones" in run.stdout
    assert f"{NEVER_HEALTHY} starting" in run.stdout
    assert not [c["Name"] for c in gateway_containers(host, stack) if c["Name"].lstrip("/") in run.stdout]
    assert watch.failures == []
    assert watch.versions == {NEXT}
    assert [c["Id"] for c in gateway_containers(host, stack)] == before
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_an_unknown_service_is_refused_before_anything_changes(host, run_playbook, stack):
    before = [c["Id"] for c in gateway_containers(host, stack)]
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-nope", "-e", f"version={NEXT}")
    assert run.returncode != 0
    assert "unknown service(s) sgivu-nope" in run.stdout
    assert [c["Id"] for c in gateway_containers(host, stack)] == before


def test_a_tag_that_does_not_exist_is_refused_before_anything_stops(host, run_playbook, stack, via_nginx):
    before = [c["Id"] for c in gateway_containers(host, stack)]
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                       "-e", "service=sgivu-gateway", "-e", "version=9.9.9-does-not-exist")
    assert run.returncode != 0
    assert "sgivu-gateway:9.9.9-does-not-exist" in run.stdout
    assert [c["Id"] for c in gateway_containers(host, stack)] == before
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_every_update_is_in_the_release_history(host, stack):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
    good = [r for r in history if r["status"] == "good"]
    purposes = [r["purpose"] for r in good]
    assert any(p.startswith("update sgivu-gateway") for p in purposes)
    assert any(p.startswith("update sgivu-user") for p in purposes)
    assert f":{NEXT}@sha256:" in good[-1]["services"]["sgivu-gateway"]["image"]


def test_the_never_healthy_attempt_is_recorded_as_failed_and_put_back(host, stack):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
    failed = [r for r in history if r["status"] == "failed" and NEVER_HEALTHY in r["purpose"]]
    assert failed and failed[-1]["restored"], "the failed update should name the release put back"
