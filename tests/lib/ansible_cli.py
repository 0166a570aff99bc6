"""Helpers for tests that run the Ansible command line against this working copy."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

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
