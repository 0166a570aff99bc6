"""The documentation of every plugin: each filter's sidecar and each module's DOCUMENTATION, and ansible-doc on both.

The filters are what the FilterModule of every plugins/filter/*.py exports; the modules are every
plugins/modules/*.py, read without importing them.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import yaml

from ansible_cli import cli_bin as _bin, cli_env as _env

COLLECTION = "sgivu.deploy"
PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
FILTER_FILES = sorted(path.stem for path in (PLUGINS / "filter").glob("*.py") if path.stem != "__init__")
MODULES = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py") if path.stem != "__init__")
SECTIONS = ["DOCUMENTATION", "EXAMPLES", "RETURN"]


def exported_filters(stem: str) -> Dict[str, Callable[..., Any]]:
    """The filters the FilterModule of plugins/filter/<stem>.py exports."""
    module = importlib.import_module("ansible_collections.sgivu.deploy.plugins.filter." + stem)
    return module.FilterModule().filters()


def _every_filter() -> List[str]:
    names: List[str] = []
    for stem in FILTER_FILES:
        try:
            names += exported_filters(stem)
        except Exception:  # test_every_filter_file_exports_filters fails on that file, with the cause
            continue
    return sorted(names)


FILTERS = _every_filter()


def module_sections(name: str) -> Dict[str, str]:
    """The DOCUMENTATION, EXAMPLES and RETURN strings of plugins/modules/<name>.py."""
    tree = ast.parse((PLUGINS / "modules" / (name + ".py")).read_text(encoding="utf-8"))
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id in SECTIONS
    }


@pytest.fixture(scope="module")
def ansible_doc(tmp_path_factory, collections_root) -> Callable[[str, str], Dict[str, Any]]:
    """ansible-doc's JSON for one plugin of a type ("filter", "module").

    One run reads every plugin of the type; a plugin that run did not give (one bad plugin fails it
    all) is read alone, so the failure names its own cause.
    """
    env = _env(tmp_path_factory.mktemp("ansible-doc"), collections_root)
    every = {"filter": FILTERS, "module": MODULES}
    read: Dict[str, Dict[str, Any]] = {}

    def run(kind: str, names: List[str]) -> subprocess.CompletedProcess:
        fqcns = [COLLECTION + "." + name for name in names]
        command = [_bin("ansible-doc"), "-t", kind, "--json", *fqcns]
        return subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=120)

    def doc(kind: str, name: str) -> Dict[str, Any]:
        if kind not in read:
            together = run(kind, every[kind])
            read[kind] = json.loads(together.stdout) if together.returncode == 0 else {}
        if COLLECTION + "." + name not in read[kind]:
            alone = run(kind, [name])
            assert alone.returncode == 0, alone.stderr
            read[kind].update(json.loads(alone.stdout))
        return read[kind][COLLECTION + "." + name]

    return doc


# --------------------------------------------------------------------------
# filters: plugins/filter/<name>.yml beside the file that exports <name>
# --------------------------------------------------------------------------
@pytest.mark.parametrize("stem", FILTER_FILES)
def test_every_filter_file_exports_filters(stem):
    assert exported_filters(stem)


@pytest.mark.parametrize("name", FILTERS)
def test_the_sidecar_documents_the_filter(name):
    sidecar = PLUGINS / "filter" / (name + ".yml")
    assert sidecar.is_file(), "no sidecar documentation " + sidecar.name
    doc = yaml.safe_load(sidecar.read_text(encoding="utf-8"))
    assert sorted(doc) == SECTIONS
    assert doc["DOCUMENTATION"]["name"] == name
    assert "_input" in doc["DOCUMENTATION"]["options"]
    assert COLLECTION + "." + name in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_renders_the_filter(ansible_doc, name):
    found = ansible_doc("filter", name)
    assert (found["doc"]["name"], found["doc"]["collection"]) == (name, COLLECTION)
    assert "_input" in found["doc"]["options"]
    assert "_value" in found["return"]


# --------------------------------------------------------------------------
# modules: DOCUMENTATION, EXAMPLES and RETURN in plugins/modules/<name>.py
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODULES)
def test_the_module_documents_itself(name):
    sections = module_sections(name)
    assert sorted(sections) == SECTIONS
    assert yaml.safe_load(sections["DOCUMENTATION"])["module"] == name
    assert isinstance(yaml.safe_load(sections["EXAMPLES"]), list)
    assert COLLECTION + "." + name in sections["EXAMPLES"]
    assert isinstance(yaml.safe_load(sections["RETURN"]), dict)


@pytest.mark.parametrize("name", MODULES)
def test_ansible_doc_renders_the_module(ansible_doc, name):
    found = ansible_doc("module", name)
    assert (found["doc"]["module"], found["doc"]["collection"]) == (name, COLLECTION)
