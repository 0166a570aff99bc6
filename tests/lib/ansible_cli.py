"""Helpers for tests that run the Ansible command line against this working copy."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest


def cli_bin(name: str) -> str:
    """A command of the running virtual environment (or PATH); skip the test when missing."""
    found = Path(sys.executable).parent / name
    return str(found) if found.exists() else (shutil.which(name) or pytest.skip(name + " is not installed"))


def cli_env(tmp_path: Path, collections_root: Path) -> dict:
    """Environment for an Ansible CLI run that sees only this working copy as sgivu.deploy."""
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n", encoding="utf-8")
    return dict(
        os.environ,
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_COLLECTIONS_PATH=str(collections_root),
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )


def run_module(module: str, args: dict, check: bool = False, env: Optional[Dict[str, str]] = None) -> dict:
    """Run one of this working copy's modules through `ansible localhost -m`, as Ansible runs it
    (argument spec, check mode, JSON result); return its result for localhost."""
    import json
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    command = [
        os.path.join(os.path.dirname(sys.executable), "ansible"), "localhost", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        "-m", f"sgivu.deploy.{module}", "-a", json.dumps(args),
    ] + (["--check"] if check else [])
    run_env = dict(os.environ, ANSIBLE_CONFIG=str(repo / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                   ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", **(env or {}))
    out = subprocess.run(command, capture_output=True, text=True, env=run_env, cwd=repo, check=False).stdout
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]
