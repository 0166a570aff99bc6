"""The deploy lock, run as Ansible runs it (the module on localhost)."""
from __future__ import annotations

import json
from pathlib import Path

import ansible_cli  # tests/lib
import pytest


def run_module(args: dict, check: bool = False) -> dict:
    return ansible_cli.run_module("deploy_lock", args, check)


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


def test_a_refusal_names_the_run_and_how_to_clear_its_lock(lock):
    run_module({"path": lock, "token": "k3x9Qa1Bzzzzzzzzzzzz", "owner": "alice"})
    result = run_module({"path": lock, "token": "b"})
    assert "run k3x9Qa1B" in result["msg"] and "unlock.yml" in result["msg"] and "-e holder=k3x9Qa1B" in result["msg"]
    assert "zzzz" not in result["msg"], "the whole token (which releases the lock) is never shown"


def test_a_run_waits_for_a_lock_given_back_within_its_wait(lock):
    import threading
    import time
    run_module({"path": lock, "token": "a"})
    threading.Timer(3, lambda: run_module({"path": lock, "token": "a", "state": "released"})).start()
    start = time.monotonic()
    result = run_module({"path": lock, "token": "b", "wait": 60})
    assert not result.get("failed"), result.get("msg")
    assert json.loads(Path(lock, "owner.json").read_text())["token"] == "b"
    assert time.monotonic() - start < 60


def test_a_run_that_waited_in_vain_is_refused(lock):
    run_module({"path": lock, "token": "a"})
    assert run_module({"path": lock, "token": "b", "wait": 3})["failed"] is True


def test_the_lock_of_the_named_run_is_cleared(lock):
    run_module({"path": lock, "token": "k3x9Qa1Bzzzz"})
    result = run_module({"path": lock, "state": "broken", "holder": "k3x9Qa1B"})
    assert result["changed"] is True and not Path(lock).exists()


def test_the_lock_of_another_run_is_not_cleared(lock):
    run_module({"path": lock, "token": "k3x9Qa1Bzzzz", "owner": "alice"})
    result = run_module({"path": lock, "state": "broken", "holder": "zzzzzzzz"})
    assert result["failed"] is True and "held by run k3x9Qa1B" in result["msg"]
    assert Path(lock).is_dir()


def test_clearing_a_lock_that_is_gone_changes_nothing(lock):
    result = run_module({"path": lock, "state": "broken", "holder": "k3x9Qa1B"})
    assert not result.get("failed") and result["changed"] is False


def test_clearing_needs_the_run_named(lock):
    run_module({"path": lock, "token": "k3x9Qa1Bzzzz"})
    assert run_module({"path": lock, "state": "broken", "holder": "k3"})["failed"] is True
    assert Path(lock).is_dir()
