"""The deploy lock, run as Ansible runs it (the module on localhost)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]


def run_module(args: dict, check: bool = False) -> dict:
    """Run sgivu.deploy.deploy_lock through `ansible localhost -m`, return its JSON result."""
    command = [
        os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-m", "sgivu.deploy.deploy_lock", "-a", json.dumps(args),
    ] + (["--check"] if check else [])
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json")
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False).stdout
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture
def lock(tmp_path) -> str:
    return str(tmp_path / "stack" / ".deploy.lock")


def test_a_free_lock_is_taken_without_reporting_a_change(lock):
    result = run_module({"path": lock, "token": "a", "owner": "alice", "purpose": "deploy"})
    assert not result.get("failed") and result["changed"] is False
    assert json.loads(Path(lock, "owner.json").read_text())["owner"] == "alice"


def test_a_held_lock_fails_at_once_naming_the_holder(lock):
    run_module({"path": lock, "token": "a", "owner": "alice", "purpose": "update sgivu-gateway"})
    result = run_module({"path": lock, "token": "b", "owner": "bob"})
    assert result["failed"] is True
    assert "another deploy holds the lock" in result["msg"]
    assert "alice (update sgivu-gateway)" in result["msg"]


def test_the_same_run_may_take_its_lock_again(lock):
    run_module({"path": lock, "token": "a"})
    assert not run_module({"path": lock, "token": "a"}).get("failed")


def test_release_with_another_token_leaves_the_lock(lock):
    run_module({"path": lock, "token": "a"})
    run_module({"path": lock, "token": "b", "state": "released"})
    assert Path(lock).is_dir()


def test_release_with_its_token_frees_the_lock(lock):
    run_module({"path": lock, "token": "a"})
    run_module({"path": lock, "token": "a", "state": "released"})
    assert not Path(lock).exists()
    assert not run_module({"path": lock, "token": "b"}).get("failed")


def test_check_mode_takes_nothing_but_still_reports_a_holder(lock):
    assert not run_module({"path": lock, "token": "a"}, check=True).get("failed")
    assert not Path(lock).exists()
    run_module({"path": lock, "token": "a"})
    assert run_module({"path": lock, "token": "b"}, check=True)["failed"] is True
