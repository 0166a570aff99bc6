"""How the filter entry files load (plugins/plugin_utils/filters.py).

Ansible loads every filter file of the collection, from source, in the worker of each task that
names one of its filters: the entry files must import no ``module_utils`` when they load, and a
filter imports only the logic it uses when it is called.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import module_utils, operator_errors

FILTER_FILES = sorted(p.stem for p in (Path(__file__).resolve().parents[4] / "plugins" / "filter").glob("*.py"))

# Run in a fresh interpreter, so that what this test process imported already does not count.
PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
prefix = "ansible_collections.sgivu.deploy.plugins.module_utils."
loaded = {}
for name in json.loads(sys.argv[2]):
    module = importlib.import_module("ansible_collections.sgivu.deploy.plugins.filter." + name)
    module.FilterModule().filters()
loaded["after_loading"] = sorted(m for m in sys.modules if m.startswith(prefix))
from ansible_collections.sgivu.deploy.plugins.filter.catalog import catalog_waves
catalog_waves({"db": {"image": "r/db", "tag": "1", "port": 5432, "kind": "database",
                      "health": {"command": ["true"]}}})
loaded["after_catalog_waves"] = sorted(m for m in sys.modules if m.startswith(prefix))
print(json.dumps(loaded))
"""


def _collections_root() -> str:
    import ansible_collections.sgivu.deploy as deploy  # the test tree conftest.py builds

    return str(Path(deploy.__path__[0]).parents[2])


def test_every_filter_file_is_found():
    assert {"alb", "awx", "catalog", "compose", "health", "releases", "ssm_env"} <= set(FILTER_FILES)


def test_loading_the_filter_files_imports_no_module_utils_and_a_call_only_what_it_uses():
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, _collections_root(), json.dumps(FILTER_FILES)],
        capture_output=True, text=True, check=True,
    )
    loaded = json.loads(probe.stdout)
    assert loaded["after_loading"] == []
    assert loaded["after_catalog_waves"] == ["ansible_collections.sgivu.deploy.plugins.module_utils.catalog"]


def test_module_utils_returns_the_collection_module():
    assert module_utils("catalog").__name__ == "ansible_collections.sgivu.deploy.plugins.module_utils.catalog"
    with pytest.raises(ImportError):
        module_utils("no_such_module")


def test_an_error_named_as_module_and_class_fails_the_filter_with_its_own_message_unchained():
    @operator_errors("catalog.CatalogError", KeyError)
    def refuse(error):
        raise error

    with pytest.raises(AnsibleFilterError, match=r"^the stack catalog is invalid \(1 problem\):\n- no image$") as raised:
        refuse(module_utils("catalog").CatalogError(["no image"]))
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(AnsibleFilterError):
        refuse(KeyError("missing"))


def test_an_error_not_named_goes_through_as_it_is():
    @operator_errors("catalog.CatalogError")
    def broken():
        raise TypeError("a bug, not an operator's mistake")

    with pytest.raises(TypeError, match="a bug"):
        broken()

