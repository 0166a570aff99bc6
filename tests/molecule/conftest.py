"""Fixtures shared by every scenario's testinfra verifiers.

Molecule runs these with the Ansible connection and its generated inventory, so `host`
is each bench instance in turn; values come from the inventory, never hard-coded here.
"""
from __future__ import annotations

import json
import os
import shlex
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from sgivu_probe import Probe  # shared with tests/benchmarks


@pytest.fixture(scope="module")
def ansible_vars(host) -> dict:
    """The host's inventory variables (group_vars of the bench inventory included)."""
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def registry() -> dict[str, str]:
    """Where the bench registry is and how to log in, as the bench exported it."""
    try:
        return {
            "address": os.environ["SGIVU_BENCH_REGISTRY"],
            "user": os.environ["SGIVU_BENCH_REGISTRY_USER"],
            "password": os.environ["SGIVU_BENCH_REGISTRY_PASSWORD"],
        }
    except KeyError as missing:
        pytest.fail(f"{missing} is not set: run the verifiers through bench/test or bench/deploy")


@pytest.fixture(scope="module")
def repositories(ansible_vars) -> str:
    """The scenario's prefix in the bench registry (sgivu, sgivu-fleet...: bench/images.yml, stacks),
    from the inventory's stack_registry (bench-registry:5000/<prefix>)."""
    return ansible_vars["stack_registry"].split("/", 1)[1]


@pytest.fixture()
def run_as(host):
    """Run a shell command as a login user, the way that user would on the instance."""

    def _run_as(user: str, command: str):
        return host.run(f"su - {shlex.quote(user)} -c {shlex.quote(command)}")

    return _run_as


@pytest.fixture()
def docker_json(host):
    """Run a docker command whose --format prints JSON, and decode what it printed."""

    def _docker_json(command: str):
        result = host.run(command)
        assert result.rc == 0, f"{command!r} failed: {result.stderr}"
        return json.loads(result.stdout)

    return _docker_json


@pytest.fixture()
def registry_login(host, registry, run_as):
    """Log a user (root by default) in to the bench registry; returns the command result."""

    def _login(user: str = "root"):
        command = (
            f"printf %s {shlex.quote(registry['password'])} | "
            f"docker login -u {shlex.quote(registry['user'])} --password-stdin {registry['address']}"
        )
        return run_as(user, command)

    return _login


def pytest_collection_modifyitems(items):
    """A scenario's own tests first, then those it borrows from tests/molecule/update, each set in
    file order: scenario default's verify checks the fresh deploy and its transaction cases (which
    leave the stack as they found it) before the update tests change the stack (molecule hands
    pytest the files sorted by path, which would put ../update/ first)."""
    items.sort(key=lambda item: f"{os.sep}update{os.sep}" in str(item.path)
               and os.environ.get("MOLECULE_SCENARIO_NAME") != "update")


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="session")
def run_playbook():
    """Run one of the collection's playbooks against the scenario's hosts, as an operator would.

    Returns the completed process (stdout and stderr together in ``stdout``). With ``in_ee=True``
    the playbook runs through ansible-navigator inside the bench's execution environment image,
    which bench/test builds before the scenarios (``bench/ee.py build``).
    """
    import subprocess

    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.fail("MOLECULE_INVENTORY_FILE is not set: run the verifiers through molecule")

    def _run(playbook: str, *args: str, background: bool = False, in_ee: bool = False):
        command = ["ansible-playbook", "-i", inventory, os.path.join(REPO_ROOT, playbook), *args]
        if in_ee:  # inside the execution environment image, as AWX runs a job template (bench/ee.py)
            command = [sys.executable, os.path.join(REPO_ROOT, "bench", "ee.py"), "run", playbook,
                       "-i", inventory, *args]
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(REPO_ROOT, "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO_ROOT, "collections"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            # Line by line, so that a test reading a background run sees each task as it starts.
            PYTHONUNBUFFERED="1",
        )
        if in_ee:
            # As AWX runs a job: the project's own ansible.cfg (in the working directory) and the
            # EE's collections, none of the ANSIBLE_* settings Molecule gives its verifier.
            env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
            env.update(ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
        if background:  # its own process group, so that a test can kill the run and everything it started
            return subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
        return subprocess.run(command, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=1200, check=False)

    return _run


@pytest.fixture(scope="session")
def ssm_parameters():
    """Every parameter under a path in Parameter Store (moto on the bench), decrypted."""
    import boto3

    client = boto3.client("ssm", endpoint_url=os.environ["SGIVU_BENCH_MOTO_URL"], region_name="us-east-1")

    def _read(path: str) -> dict:
        values = {}
        for page in client.get_paginator("get_parameters_by_path").paginate(
            Path=path, Recursive=True, WithDecryption=True
        ):
            for parameter in page["Parameters"]:
                values[parameter["Name"]] = parameter["Value"]
        return values

    return _read


@pytest.fixture()
def probe(host):
    """A probe factory aimed at a path through the host's Nginx, from this machine."""
    address = host.interface("eth0").addresses[0]
    return lambda path, **kw: Probe(f"http://{address}{path}", **kw)


@pytest.fixture()
def via_nginx(host):
    """GET a path through the host's Nginx from the host itself: (status, decoded JSON or None)."""

    def _get(path: str):
        result = host.run(f"curl -s -o /tmp/.probe -w '%{{http_code}}' 'http://127.0.0.1{path}'")
        body = host.file("/tmp/.probe").content_string
        try:
            return int(result.stdout or 0), json.loads(body)
        except ValueError:
            return int(result.stdout or 0), None

    return _get


def recap_changed(output: str) -> list:
    """The changed= counts of a playbook run's recap."""
    import re

    return [int(n) for n in re.findall(r"changed=(\d+)", output.split("PLAY RECAP")[-1])]


@pytest.fixture()
def changed_counts():
    return recap_changed
