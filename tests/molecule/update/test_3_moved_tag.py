"""A tag is a pointer that moves (issue 17, kind 4), on the stack test_2_rollback.py left.

sgivu-client runs its catalog tag (no update or rollback ever pinned it). The registry's tag is
re-pushed with other content, as a careless CI job would, and `update.yml -e service=sgivu-client`
(no version: re-pull the tag) is run: a moved tag that never gets healthy is undone by digest; a
plain deploy afterwards does not pick up the rejected image the failed update pulled; a rollback
still chooses by digest; a moved tag that is healthy replaces the service through the health gate.
Every tag moved here is put back afterwards, also when a test fails.
"""
from __future__ import annotations

import json

import pytest
from bench_images import NEVER_HEALTHY, NEXT  # tests/lib (bench/images.yml), on the path from conftest.py
from bench_registry import MovedTags

SERVICE = "sgivu-client"


def service_container(host, stack: str) -> dict:
    ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} "
                            f"--filter label=com.docker.compose.service={SERVICE}").split()
    assert len(ids) == 1, f"{SERVICE}: {len(ids)} running containers"
    return json.loads(host.check_output(f"docker inspect {ids[0]}"))[0]


def running(host, stack: str) -> tuple[str, str]:
    """(tag, digest) of the image sgivu-user runs: its reference is repository:tag@digest."""
    ref = service_container(host, stack)["Config"]["Image"]
    name, digest = ref.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    assert ":" in last, f"{SERVICE} runs {ref}, without its tag"
    return last.split(":", 1)[1], digest


def version(host, stack: str, port: int) -> str:
    return host.check_output(f"docker exec {service_container(host, stack)['Id']} curl -fsS http://127.0.0.1:{port}/version").strip()


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def tags(registry, repositories):
    moved = MovedTags(registry, f"{repositories}/{SERVICE}")
    yield moved
    moved.put_back()


@pytest.fixture(scope="module")
def never_healthy_repull(host, run_playbook, stack, tags):
    tag, digest = running(host, stack)
    tags.move(tag, NEVER_HEALTHY)
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}", "-e", "health_timeout=20")
    return {"run": run, "tag": tag, "digest": digest}


def test_a_moved_tag_that_never_gets_healthy_fails_the_update(never_healthy_repull):
    assert never_healthy_repull["run"].returncode != 0
    assert SERVICE in never_healthy_repull["run"].stdout and "did not become healthy" in never_healthy_repull["run"].stdout


def test_after_it_the_service_runs_the_digest_it_ran_before(host, stack, never_healthy_repull):
    assert running(host, stack) == (never_healthy_repull["tag"], never_healthy_repull["digest"])


def test_a_plain_deploy_afterwards_does_not_pick_up_the_image_the_update_rejected(host, run_playbook, stack,
                                                                                 never_healthy_repull, changed_counts):
    """The failed update pulled the moved tag on the host; a deploy keeps the digest the service runs."""
    run = run_playbook("deploy.yml", "--limit", host.backend.get_hostname())
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_counts(run.stdout) == [0]
    assert running(host, stack) == (never_healthy_repull["tag"], never_healthy_repull["digest"])


def test_a_rollback_of_the_service_chooses_by_digest_and_finds_no_other_one(host, run_playbook, stack, never_healthy_repull):
    """It runs the only good digest it ever ran: there is nothing to roll back to, and it says so."""
    run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode != 0
    assert f"no earlier good release ran another digest of {SERVICE}" in run.stdout
    assert "Error while resolving" not in run.stdout and "filter plugin" not in run.stdout, run.stdout[-3000:]
    assert running(host, stack) == (never_healthy_repull["tag"], never_healthy_repull["digest"])


def test_a_moved_tag_that_is_healthy_replaces_the_service_through_the_health_gate(host, run_playbook, stack, tags,
                                                                                  ansible_vars, never_healthy_repull):
    tag, digest = running(host, stack)
    # The tag it runs now holds another good release: the next one, or the catalog's when it runs the next one.
    other = NEXT if tag != NEXT else str(ansible_vars["stack_services"][SERVICE]["tag"])
    tags.move(tag, other)
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert running(host, stack)[1] != digest
    assert version(host, stack, ansible_vars["stack_services"][SERVICE]["port"]) == other


def test_a_tag_put_back_moves_the_service_back_on_the_next_repull(host, run_playbook, stack, tags, ansible_vars):
    tag, digest = running(host, stack)
    tags.put_back()
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert running(host, stack)[1] != digest
    assert version(host, stack, ansible_vars["stack_services"][SERVICE]["port"]) == tag
