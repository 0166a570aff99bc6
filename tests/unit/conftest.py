"""Shared set-up for the unit tests.

The plugins import each other as ``ansible_collections.sgivu.deploy...``. This file
builds a throw-away ``ansible_collections/sgivu/deploy`` tree whose ``deploy`` is a
symlink to this repository (found from this file's location) and puts it first on
``sys.path``, so the tests import the working copy, not an installed collection.
"""

from __future__ import annotations

import atexit
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]

_TREE = Path(tempfile.mkdtemp(prefix="sgivu-deploy-tests-"))
atexit.register(shutil.rmtree, _TREE, True)
(_TREE / "ansible_collections" / "sgivu").mkdir(parents=True)
(_TREE / "ansible_collections" / "sgivu" / "deploy").symlink_to(REPO_ROOT, target_is_directory=True)
sys.path.insert(0, str(_TREE))
# Helpers shared with other test trees (tests/lib).
sys.path.insert(0, str(REPO_ROOT / "tests" / "lib"))

_WHOLE_REF = re.compile(r"^\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _resolve(value: Any, variables: Dict[str, Any]) -> Any:
    """Resolve plain ``{{ name }}`` references to top-level variables, as Ansible would."""
    if isinstance(value, dict):
        return {k: _resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, variables) for v in value]
    if isinstance(value, str):
        whole = _WHOLE_REF.match(value)
        if whole:
            return _resolve(variables[whole.group(1)], variables)
        return _REF.sub(lambda m: str(_resolve(variables[m.group(1)], variables)), value)
    return value


def load_stack_vars(inventory: str) -> Dict[str, Any]:
    """The ``stack_*`` variables of ``inventories/<inventory>``, with simple references resolved."""
    path = REPO_ROOT / "inventories" / inventory / "group_vars" / "all" / "stack.yml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    return _resolve(raw, raw)


@pytest.fixture
def stack_vars() -> Callable[[str], Dict[str, Any]]:
    """Load an inventory's catalog: ``stack_vars("prod")``."""
    return load_stack_vars


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def collections_root() -> Path:
    """A directory for ANSIBLE_COLLECTIONS_PATH that holds this working copy as sgivu.deploy."""
    return _TREE
