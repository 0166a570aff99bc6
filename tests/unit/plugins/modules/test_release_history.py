"""The release history module, run as Ansible runs it (the module on localhost, a stack root in a tmp dir)."""
from __future__ import annotations

import json
from pathlib import Path

import ansible_cli  # tests/lib
import pytest

SECRET = "hist-Secret-value-42"


def run(root: Path, check: bool = False, **args) -> dict:
    return ansible_cli.run_module("release_history", {"root": str(root), "stack": "s", **args}, check)


@pytest.fixture
def root(tmp_path) -> Path:
    """A stack root with a running project and env file, as compose_release leaves it."""
    (tmp_path / "compose.yml").write_text('# x\n{"name": "s", "services": {}}\n', encoding="utf-8")
    (tmp_path / "stack.env").write_text(f"DB_PASSWORD={SECRET}\n", encoding="utf-8")
    (tmp_path / "stack.env").chmod(0o600)
    return tmp_path


def release(rid: str, status: str = "good", digest: str = "a") -> dict:
    return {"id": rid, "who": "ops", "purpose": "deploy", "status": status,
            "services": {"api": {"image": f"r/api:1@sha256:{digest}", "digest": f"r/api@sha256:{digest}"}}}


def test_a_query_of_a_new_host_is_an_empty_state(root):
    result = run(root)
    assert (result["changed"], result["history"]["releases"], result["last_good"], result["pins"]) == (False, [], None, {})


def test_a_good_release_is_recorded_with_the_hashes_of_what_runs(root):
    recorded = run(root, state="recorded", release=release("r1"))["release"]
    assert recorded["status"] == "good" and recorded["format"] == 2
    assert len(recorded["env_sha256"]) == 64 and len(recorded["compose_sha256"]) == 64


def test_a_good_release_is_archived_with_its_env_file_private(root):
    run(root, state="recorded", release=release("r1"))
    archived = root / "releases" / "r1" / "stack.env"
    assert archived.read_text(encoding="utf-8") == f"DB_PASSWORD={SECRET}\n"
    assert (archived.stat().st_mode & 0o777, (root / "releases").stat().st_mode & 0o777) == (0o600, 0o700)


def test_a_failed_release_is_recorded_but_not_archived_nor_last_good(root):
    run(root, state="recorded", release=release("r1"))
    result = run(root, state="recorded", release=dict(release("r2", status="failed", digest="b"), error="boom", restored="r1"))
    assert not (root / "releases" / "r2").exists()
    assert result["last_good"]["id"] == "r1"
    assert result["history"]["releases"][-1]["restored"] == "r1"


def test_recording_the_last_good_state_again_changes_nothing(root):
    run(root, state="recorded", release=release("r1"))
    assert run(root, state="recorded", release=release("r2"))["changed"] is False


def test_two_releases_in_one_second_get_distinct_ids(root):
    run(root, state="recorded", release=release("t"))
    assert run(root, state="recorded", release=release("t", digest="b"))["release"]["id"] == "t-2"


def test_pins_of_a_good_release_are_kept_for_a_later_deploy(root):
    pins = {"api": {"image": "r/api:2@sha256:b", "catalog_tag": "1"}}
    run(root, state="recorded", release=release("r1", digest="b"), pins=pins)
    assert run(root)["pins"] == pins


def test_old_releases_and_their_archives_are_pruned(root):
    for i in range(4):
        run(root, state="recorded", release=release(f"r{i}", digest=str(i)), keep=2)
    assert [r["id"] for r in run(root)["history"]["releases"]] == ["r2", "r3"]
    assert sorted(p.name for p in (root / "releases").iterdir()) == ["r2", "r3"]


def test_check_mode_records_nothing(root):
    run(root, check=True, state="recorded", release=release("r1"))
    assert not (root / "releases.json").exists()


def test_no_env_value_is_in_the_result(root):
    assert SECRET not in json.dumps(run(root, state="recorded", release=release("r1")))
