"""The release history: what is recorded, what is not, and how releases are found."""
from __future__ import annotations

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import releases


def release(rid: str, tag: str = "1.0.0", env: str = "e1") -> dict:
    return {
        "id": rid, "who": "ops", "time": rid,
        "services": {"api": {"image": f"r/api:{tag}", "digest": f"r/api@sha256:{tag}"}},
        "compose_sha256": f"c-{tag}", "env_sha256": env,
    }


def test_empty_text_is_an_empty_history():
    assert releases.load("", "s") == {"stack": "s", "releases": []}


def test_a_malformed_history_is_refused():
    with pytest.raises(ValueError):
        releases.load('{"releases": 3}', "s")


def test_a_new_state_is_appended():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    releases.append(history, release("r2", tag="1.1.0"), keep=5)
    assert [r["id"] for r in history["releases"]] == ["r1", "r2"]


def test_repeating_the_latest_state_records_nothing():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    assert releases.append(history, release("r2"), keep=5) == []
    assert [r["id"] for r in history["releases"]] == ["r1"]


def test_a_changed_env_file_is_a_new_release():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    releases.append(history, release("r2", env="e2"), keep=5)
    assert len(history["releases"]) == 2


def test_old_releases_are_pruned_and_returned():
    history = releases.load("", "s")
    for i in range(4):
        releases.append(history, release(f"r{i}", tag=f"1.{i}.0"), keep=10)
    pruned = releases.append(history, release("r4", tag="1.4.0"), keep=3)
    assert [r["id"] for r in pruned] == ["r0", "r1"]
    assert [r["id"] for r in history["releases"]] == ["r2", "r3", "r4"]


def test_a_duplicate_id_is_refused():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    with pytest.raises(ValueError, match="already in the history"):
        releases.append(history, release("r1", tag="2.0.0"), keep=5)


def test_find_by_id_and_by_steps_back():
    history = releases.load("", "s")
    for i in range(3):
        releases.append(history, release(f"r{i}", tag=f"1.{i}.0"), keep=10)
    assert releases.find(history, "r1")["id"] == "r1"
    assert releases.find(history)["id"] == "r2"
    assert releases.find(history, before=1)["id"] == "r1"


def test_find_an_unknown_release_names_the_recorded_ones():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    with pytest.raises(ValueError, match="r9 is not in the history.*r1"):
        releases.find(history, "r9")


def test_find_beyond_the_history_is_refused():
    with pytest.raises(ValueError, match="holds 0 release"):
        releases.find(releases.load("", "s"))
