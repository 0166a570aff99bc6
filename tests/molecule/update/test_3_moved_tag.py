"""A tag is a pointer that moves (issue 17, kind 4), on the stack test_2_rollback.py left.

The registry's tag of the version sgivu-user runs is re-pushed with other content, as a careless
CI job would, and `update.yml -e service=sgivu-user` (no version: re-pull the tag) is run:
a moved tag that never gets healthy is undone by digest, a rollback still chooses by digest,
and a moved tag that is healthy replaces the service through the health gate. Every tag moved
here is put back afterwards, also when a test fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile

import pytest
from bench_images import NEVER_HEALTHY, NEXT  # tests/lib (bench/images.yml), on the path from conftest.py

SERVICE = "sgivu-user"


def user_container(host, stack: str) -> dict:
    ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} "
                            f"--filter label=com.docker.compose.service={SERVICE}").split()
    assert len(ids) == 1, f"{SERVICE}: {len(ids)} running containers"
    return json.loads(host.check_output(f"docker inspect {ids[0]}"))[0]


def running(host, stack: str) -> tuple[str, str]:
    """(tag, digest) of the image sgivu-user runs: its reference is repository:tag@digest."""
    ref = user_container(host, stack)["Config"]["Image"]
    name, digest = ref.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    assert ":" in last, f"{SERVICE} runs {ref}, without its tag"
    return last.split(":", 1)[1], digest


def version(host, stack: str) -> str:
    return host.check_output(f"docker exec {user_container(host, stack)['Id']} curl -fsS http://127.0.0.1:8081/version").strip()


class Registry:
    """Moves tags of sgivu-user in the bench registry from this machine, and puts them back."""

    def __init__(self, registry: dict) -> None:
        self.repo = f"{os.environ['SGIVU_BENCH_REGISTRY_LOCAL']}/sgivu/{SERVICE}"
        self.config = tempfile.mkdtemp(prefix="sgivu-moved-tag-")
        self.saved: dict[str, str] = {}
        login = subprocess.run(["docker", "login", "-u", registry["user"], "--password-stdin", self.repo.split("/")[0]],
                               input=registry["password"], env=self.env(), capture_output=True, text=True, check=False)
        assert login.returncode == 0, login.stderr

    def env(self) -> dict:
        return dict(os.environ, DOCKER_CONFIG=getattr(self, "config", ""))

    def docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], env=self.env(), capture_output=True, text=True, check=False)
        assert done.returncode == 0, f"docker {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def image_id(self, tag: str) -> str:
        self.docker("pull", "--quiet", f"{self.repo}:{tag}")
        return self.docker("image", "inspect", "-f", "{{.Id}}", f"{self.repo}:{tag}")

    def move(self, tag: str, to_content_of: str) -> None:
        """Re-push the image of tag ``to_content_of`` as ``tag``, remembering what ``tag`` was."""
        source = self.saved.get(to_content_of) or self.image_id(to_content_of)
        self.saved.setdefault(tag, self.image_id(tag))
        self.docker("tag", source, f"{self.repo}:{tag}")
        self.docker("push", "--quiet", f"{self.repo}:{tag}")

    def put_back(self) -> None:
        for tag, image in self.saved.items():
            self.docker("tag", image, f"{self.repo}:{tag}")
            self.docker("push", "--quiet", f"{self.repo}:{tag}")
        self.saved.clear()


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def tags(registry):
    moved = Registry(registry)
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


def test_a_rollback_of_the_service_still_chooses_by_digest(host, run_playbook, stack, never_healthy_repull):
    run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert running(host, stack)[1] != never_healthy_repull["digest"]


def test_a_moved_tag_that_is_healthy_replaces_the_service_through_the_health_gate(host, run_playbook, stack, tags,
                                                                                  ansible_vars, never_healthy_repull):
    tag, digest = running(host, stack)
    # The tag it runs now holds another good release: the next one, or the catalog's when it runs the next one.
    other = NEXT if tag != NEXT else str(ansible_vars["stack_services"][SERVICE]["tag"])
    tags.move(tag, other)
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert running(host, stack)[1] != digest
    assert version(host, stack) == other


def test_a_tag_put_back_moves_the_service_back_on_the_next_repull(host, run_playbook, stack, tags):
    tag, digest = running(host, stack)
    tags.put_back()
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", f"service={SERVICE}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert running(host, stack)[1] != digest
    assert version(host, stack) == tag
