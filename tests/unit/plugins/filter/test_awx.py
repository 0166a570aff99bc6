"""The AWX job templates of awx/ against the real catalog and playbooks (plugins/filter/awx.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.filter.awx import FilterModule
from ansible_cli import cli_bin as _bin, cli_env as _env

FILTERS = FilterModule().filters()
NAMES = ("awx_job_templates", "awx_survey_extra_vars")
REPO = Path(__file__).resolve().parents[4]
CATALOG = REPO / "inventories" / "prod" / "group_vars" / "all" / "stack.yml"
DATA = yaml.safe_load((REPO / "awx" / "vars" / "job_templates.yml").read_text(encoding="utf-8"))["awx_templates"]
_JINJA = re.compile(r"\{\{(.*?)\}\}", re.S)


@pytest.fixture
def services(stack_vars) -> Dict[str, Any]:
    """The prod catalog as Ansible sees it (references such as {{ stack_registry }} resolved)."""
    return stack_vars("prod")["stack_services"]


@pytest.fixture
def templates(services) -> Dict[str, Dict[str, Any]]:
    """The job templates of awx/ on the prod catalog an operator launches, by playbook (the
    provisioning callback template runs deploy.yml too; new instances launch it)."""
    return {t["playbook"]: t for t in FILTERS["awx_job_templates"](services, DATA) if not t["callback"]}


@pytest.fixture
def questions(templates) -> Callable[[str], Dict[str, Dict[str, Any]]]:
    """The survey questions of a playbook's template, by variable."""
    return lambda playbook: {q["variable"]: q for q in templates[playbook]["survey_spec"]["spec"]}


def _expressions(node: Any, key: str = "") -> List[str]:
    """Jinja the playbook evaluates: inside {{ }}, and bare conditionals."""
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in _expressions(v, str(k))]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v, key)]
    if isinstance(node, str):
        return _JINJA.findall(node) + ([node] if key in ("when", "that", "failed_when", "changed_when") else [])
    return []


def _playbook_expressions(path: Path) -> List[str]:
    """Every expression of a playbook, through its import_playbook entries."""
    found: List[str] = []
    for play in yaml.safe_load(path.read_text(encoding="utf-8")):
        imported = play.get("ansible.builtin.import_playbook") or play.get("import_playbook")
        found += _playbook_expressions(path.parent / imported) if imported else _expressions(play)
    return found


# --------------------------------------------------------------------------
# the templates of awx/ on the prod catalog
# --------------------------------------------------------------------------
def test_filter_module_exposes_the_awx_filters():
    assert sorted(FILTERS) == sorted(NAMES)


def test_there_is_a_template_per_top_level_playbook(templates):
    assert sorted(templates) == ["deploy.yml", "rollback.yml", "status.yml", "unlock.yml", "update.yml"]


@pytest.mark.parametrize("playbook", ["deploy.yml", "update.yml", "rollback.yml", "status.yml", "unlock.yml"])
def test_the_playbook_of_each_template_is_in_the_project_root(templates, playbook):
    assert (REPO / templates[playbook]["playbook"]).is_file()


@pytest.mark.parametrize("playbook", ["deploy.yml", "update.yml", "rollback.yml", "status.yml", "unlock.yml"])
def test_no_template_runs_twice_at_once(templates, playbook):
    assert templates[playbook]["allow_simultaneous"] is False


def test_service_choices_are_the_enabled_services_of_the_catalog(questions):
    raw = yaml.safe_load(CATALOG.read_text(encoding="utf-8"))["stack_services"]
    enabled = sorted(name for name, svc in raw.items() if svc.get("enabled", True))
    assert "sgivu-zipkin" in raw and "sgivu-zipkin" not in enabled
    assert questions("update.yml")["service"]["choices"] == enabled
    assert questions("rollback.yml")["service"]["choices"] == enabled


@pytest.mark.parametrize("playbook", ["update.yml", "rollback.yml"])
def test_every_survey_variable_is_read_by_its_playbook(questions, playbook):
    expressions = _playbook_expressions(REPO / playbook)
    for variable in questions(playbook):
        pattern = re.compile(r"(?<![\w.]){0}(?!\w)".format(re.escape(variable)))
        assert any(pattern.search(e) for e in expressions), "{0} never reads {1}".format(playbook, variable)


def test_deploy_and_status_have_no_survey(templates):
    for playbook in ("deploy.yml", "status.yml"):
        assert templates[playbook]["survey_enabled"] is False
        assert templates[playbook]["survey_spec"] == {}


def test_the_update_survey_asks_what_update_yml_takes(questions):
    questions = questions("update.yml")
    assert list(questions) == ["service", "version", "health_timeout", "bake_seconds"]
    assert (questions["service"]["type"], questions["service"]["required"]) == ("multiselect", True)
    assert (questions["version"]["type"], questions["version"]["required"]) == ("text", False)
    assert (questions["health_timeout"]["type"], questions["health_timeout"]["required"]) == ("integer", False)
    bake = questions["bake_seconds"]
    assert (bake["type"], bake["required"], bake["min"]) == ("integer", False, 0), "0 turns the bake off"


def test_the_rollback_survey_asks_what_rollback_yml_takes(questions):
    questions = questions("rollback.yml")
    assert list(questions) == ["service", "to_release", "restore_database", "health_timeout"]
    assert (questions["service"]["type"], questions["service"]["required"]) == ("multiplechoice", False)
    assert (questions["to_release"]["type"], questions["to_release"]["required"]) == ("text", False)
    restore = questions["restore_database"]
    assert (restore["choices"], restore["default"]) == (["false", "true"], "false")


def test_an_unanswered_rollback_survey_rolls_the_whole_stack_back_without_the_database(templates):
    spec = templates["rollback.yml"]["survey_spec"]
    assert FILTERS["awx_survey_extra_vars"](spec, {"service": "", "to_release": ""}) == {"restore_database": "false"}


def test_a_survey_answer_awx_refuses_is_a_filter_error(templates):
    spec = templates["update.yml"]["survey_spec"]
    with pytest.raises(AnsibleFilterError, match="Value sgivu-zipkin for 'service' expected to be one of"):
        FILTERS["awx_survey_extra_vars"](spec, {"service": ["sgivu-zipkin"]})


def test_a_bad_template_is_a_filter_error(services):
    with pytest.raises(AnsibleFilterError, match="playbook is required"):
        FILTERS["awx_job_templates"](services, [{"name": "x"}])


# --------------------------------------------------------------------------
# through Ansible, as awx/apply.yml builds them (templated names, the catalog loaded)
# --------------------------------------------------------------------------
PROBE = """\
- name: Probe the AWX filters as awx/apply.yml uses them
  hosts: localhost
  gather_facts: false
  vars_files:
    - {awx}/vars/controller.yml
    - {awx}/vars/job_templates.yml
  tasks:
    - name: Load the catalog
      ansible.builtin.include_vars:
        file: "{{{{ awx_catalog_file }}}}"
    - name: Write the templates and what a survey sends
      vars:
        templates: "{{{{ stack_services | sgivu.deploy.awx_job_templates(awx_templates) }}}}"
      ansible.builtin.copy:
        dest: "{{{{ out }}}}"
        content: "{{{{ {{'templates': templates,
                       'sent': (templates | selectattr('playbook', 'eq', 'update.yml') | first).survey_spec
                               | sgivu.deploy.awx_survey_extra_vars(
                                 {{'service': ['sgivu-gateway', 'sgivu-auth'], 'health_timeout': 90}})}} | to_json }}}}"
        mode: "0600"
"""


def test_the_templates_through_ansible(tmp_path, repo_root, collections_root):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE.format(awx=repo_root / "awx"), encoding="utf-8")
    out = tmp_path / "out.json"
    extra = {"out": str(out), "awx_catalog_file": str(CATALOG), "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    result = subprocess.run(
        [_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra), str(playbook)],
        capture_output=True, text=True, env=_env(tmp_path, collections_root), check=False, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [t["name"] for t in data["templates"]] == ["sgivu deploy", "sgivu deploy new instance", "sgivu update",
                                                      "sgivu rollback", "sgivu status", "sgivu unlock"]
    assert [t["name"] for t in data["templates"] if t["callback"]] == ["sgivu deploy new instance"]
    assert data["templates"][2]["survey_spec"]["name"] == "sgivu update"
    assert data["sent"] == {"service": ["sgivu-gateway", "sgivu-auth"], "health_timeout": 90}


def test_the_unlock_survey_needs_the_run_and_an_explicit_yes(questions):
    asked = questions("unlock.yml")
    assert asked["holder"]["required"] is True and asked["holder"]["min"] == 8
    assert asked["force"]["required"] is True and asked["force"]["choices"] in ("true", ["true"])
