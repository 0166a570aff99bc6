"""The release_images module, run as Ansible runs it: its refusals and a host without a release.

What it keeps and removes is tested on its logic (test_compose_host.py, test_releases.py) and on a
bench host (tests/molecule/update/test_6_pruning.py).
"""
from __future__ import annotations

import json
from pathlib import Path

import ansible_cli  # tests/lib


def run(root: Path, **args) -> dict:
    return ansible_cli.run_module("release_images", {"root": str(root), "stack": "s", **args}, False)


def test_a_host_without_a_good_release_keeps_every_image(tmp_path):
    result = run(tmp_path, state="pruned")
    assert (result.get("failed", False), result["changed"], result["removed"], result["releases"]) == (False, False, [], [])


def test_keeping_no_release_is_refused_naming_the_limit(tmp_path):
    result = run(tmp_path, state="pruned", keep=0)
    assert result["failed"] and "keep >= 1" in result["msg"]


def test_a_history_that_cannot_be_read_is_refused_naming_its_file(tmp_path):
    (tmp_path / "releases.json").write_text(json.dumps({"releases": 3}), encoding="utf-8")
    result = run(tmp_path, state="pruned")
    assert result["failed"] and str(tmp_path / "releases.json") in result["msg"]
