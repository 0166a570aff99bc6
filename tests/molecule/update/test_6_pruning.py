"""Disks fill (issue 13, part 1): after each successful change the host keeps the images of the
newest N good releases, and nothing more of the stack, so a rollback to any of them needs no pull.

On the stack the earlier files left: N+2 new versions of the gateway (each a new digest, made here
from the next release with one more label and pushed to the bench registry) are rolled out with
``-e stack_images_keep=2``. The host must then hold exactly the images the last two good releases
name, by digest; the oldest kept release is rolled back to with the registry out of the host's
reach; status.yml shows what the stack's images take.
"""
from __future__ import annotations

import contextlib
import json
import re

import pytest

from bench_images import NEXT  # tests/lib (bench/images.yml), on the path from conftest.py
from bench_registry import MovedTags

KEEP = 2
REGISTRY_HOST = "bench-registry"  # bench/lib.sh: its name on the bench network


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


def good_releases(host, stack: str) -> list[dict]:
    return [r for r in json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"] if r["status"] == "good"]


def stack_image_digests(host, ansible_vars) -> set[str]:
    """Every repo@sha256 reference on the host of a repository of the stack's registry."""
    prefix = ansible_vars["stack_registry"] + "/"
    out = host.check_output("docker image inspect --format '{{json .RepoDigests}}' $(docker image ls -q --no-trunc | sort -u)")
    return {d for line in out.splitlines() for d in json.loads(line) or [] if d.startswith(prefix)}


@pytest.fixture(scope="module")
def rolled(host, run_playbook, registry, repositories, stack):
    """N+2 updates of the gateway, each to a version with its own digest."""
    moved = MovedTags(registry, f"{repositories}/sgivu-gateway")
    base = moved.image_id(NEXT)
    tags = []
    for n in range(1, KEEP + 3):
        tag = f"{NEXT}-prune{n}"
        container = moved.docker("create", base)
        moved.docker("commit", "--change", f"LABEL sgivu.bench.prune={n}", container, f"{moved.repo}:{tag}")
        moved.docker("rm", container)
        moved.docker("push", "--quiet", f"{moved.repo}:{tag}")
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway",
                           "-e", f"version={tag}", "-e", f"stack_images_keep={KEEP}")
        assert run.returncode == 0, run.stdout[-3000:]
        tags.append(tag)
    yield tags
    moved.docker("image", "rm", *[f"{moved.repo}:{t}" for t in tags])


def test_after_n_plus_2_updates_the_host_holds_exactly_the_images_of_the_last_n_releases(host, rolled, stack, ansible_vars):
    kept = good_releases(host, stack)[-KEEP:]
    assert [r["purpose"] for r in kept] == [f"update sgivu-gateway {t}" for t in rolled[-KEEP:]]
    named = {entry["digest"] for r in kept for entry in r["services"].values()}
    assert stack_image_digests(host, ansible_vars) == named


@contextlib.contextmanager
def registry_refused(host):
    """The bench registry refuses this host's connections while the block runs, as a stopped
    registry would (a TCP reset), through a REJECT rule in the host's own firewall: the registry
    itself keeps serving the other scenario that bench/test runs beside this one."""
    address = host.check_output(f"getent ahostsv4 {REGISTRY_HOST} | awk 'NR == 1 {{print $1}}'")
    rule = f"OUTPUT --destination {address} --protocol tcp --jump REJECT --reject-with tcp-reset"
    host.run_expect([0], f"iptables --insert {rule}")
    try:
        refused = host.run(f"curl -sS --max-time 5 -o /dev/null http://{REGISTRY_HOST}:5000/v2/")
        assert refused.rc != 0, "the registry still answers the host"
        yield
    finally:
        host.run_expect([0], f"iptables --delete {rule}")


def test_the_oldest_kept_release_comes_back_with_the_registry_out_of_reach(host, rolled, run_playbook, stack, ansible_vars, via_nginx):
    oldest = good_releases(host, stack)[-KEEP]
    before = stack_image_digests(host, ansible_vars)
    with registry_refused(host):
        run = run_playbook("rollback.yml", "--limit", host.backend.get_hostname(), "-e", f"to_release={oldest['id']}")
    assert run.returncode == 0, run.stdout[-3000:]
    # The reference the container was created with (docker ps abbreviates it to a tag when it can).
    gateway = host.check_output(f"docker inspect --format '{{{{.Config.Image}}}}' $(docker ps -q --filter "
                                f"label=com.docker.compose.project={stack} --filter label=com.docker.compose.service=sgivu-gateway)")
    assert gateway == oldest["services"]["sgivu-gateway"]["image"]
    assert via_nginx("/v1/version")[1]["version"] == NEXT
    assert stack_image_digests(host, ansible_vars) == before, "nothing was pulled, nothing removed"


def test_status_shows_what_the_stack_images_take(host, run_playbook):
    run = run_playbook("status.yml", "--limit", host.backend.get_hostname())
    assert run.returncode == 0, run.stdout[-3000:]
    text = " ".join(run.stdout.split())  # the YAML callback folds long lines
    assert re.search(r"Images: \d+ of the stack on the host, [0-9.]+ [KMG]i?B; pruning to the last 5 good releases would free", text)
