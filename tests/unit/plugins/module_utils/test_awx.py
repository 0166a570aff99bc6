"""The AWX job templates as data, their survey specs, and what a launch sends (module_utils/awx.py)."""
from __future__ import annotations

from typing import Any, Dict, List

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import awx
from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import CatalogError

SERVICES: Dict[str, Any] = {
    "db": {"image": "r/db", "tag": "1", "port": 5432, "kind": "database", "health": {"command": ["true"]}},
    "api": {"image": "r/api", "tag": "1", "port": 8080, "depends_on": ["db"], "health": {"path": "/health"}},
    "trace": {"image": "r/trace", "tag": "1", "port": 9411, "enabled": False, "health": {"path": "/health"}},
}

UPDATE: Dict[str, Any] = {
    "name": "s update",
    "playbook": "update.yml",
    "description": "Replace services",
    "survey": [
        {"variable": "service", "question": "Services", "type": "multiselect", "choices_from": "catalog", "required": True},
        {"variable": "version", "question": "Version", "type": "text", "min": 1, "max": 128},
        {"variable": "health_timeout", "question": "Deadline", "type": "integer", "min": 1, "max": 3600},
    ],
}
ROLLBACK: Dict[str, Any] = {
    "name": "s rollback",
    "playbook": "rollback.yml",
    "survey": [
        {"variable": "service", "question": "Service", "type": "multiplechoice", "choices_from": "catalog"},
        {
            "variable": "restore_database",
            "question": "Restore?",
            "type": "multiplechoice",
            "choices": ["false", "true"],
            "default": "false",
        },
    ],
}
STATUS: Dict[str, Any] = {"name": "s status", "playbook": "status.yml"}


def templates(*extra: Dict[str, Any]) -> List[Dict[str, Any]]:
    return awx.job_templates([UPDATE, ROLLBACK, STATUS, *extra], SERVICES)


def spec_of(name: str) -> Dict[str, Any]:
    return next(t for t in templates() if t["name"] == name)["survey_spec"]


# --------------------------------------------------------------------------
# building the templates
# --------------------------------------------------------------------------
def test_catalog_choices_are_the_enabled_services_sorted():
    assert awx.catalog_choices(SERVICES) == ["api", "db"]


def test_catalog_choices_refuse_an_invalid_catalog():
    with pytest.raises(CatalogError, match="unknown"):
        awx.catalog_choices(dict(SERVICES, api=dict(SERVICES["api"], depends_on=["nowhere"])))


def test_every_template_forbids_simultaneous_jobs_and_free_extra_vars():
    for template in templates():
        assert template["allow_simultaneous"] is False
        assert template["ask_variables_on_launch"] is False
        assert template["job_type"] == "run"


def test_a_template_without_questions_has_no_survey():
    status = templates()[2]
    assert status["survey_enabled"] is False and status["survey_spec"] == {}
    assert status["description"] == ""


def test_the_survey_is_in_the_awx_api_format():
    spec = spec_of("s update")
    assert spec["name"] == "s update" and spec["description"] == "Replace services"
    assert spec["spec"][0] == {
        "question_name": "Services",
        "question_description": "",
        "variable": "service",
        "type": "multiselect",
        "required": True,
        "choices": ["api", "db"],
    }
    assert spec["spec"][1] == {
        "question_name": "Version",
        "question_description": "",
        "variable": "version",
        "type": "text",
        "required": False,
        "min": 1,
        "max": 128,
    }


def test_listed_choices_and_defaults_are_kept():
    restore = spec_of("s rollback")["spec"][1]
    assert restore["choices"] == ["false", "true"] and restore["default"] == "false"


def test_newline_separated_choices_become_a_list():
    question = {"variable": "x", "question": "X", "type": "multiplechoice", "choices": "a\n\nb\n"}
    assert awx.survey_spec("t", "", [question], [])["spec"][0]["choices"] == ["a", "b"]


@pytest.mark.parametrize(
    "question, problem",
    [
        ({"variable": "x", "question": "X", "type": "multiselect"}, "exactly one of choices or choices_from"),
        (
            {"variable": "x", "question": "X", "type": "multiselect", "choices": ["a"], "choices_from": "catalog"},
            "exactly one of choices or choices_from",
        ),
        ({"variable": "x", "question": "X", "type": "multiselect", "choices_from": "inventory"}, "must be 'catalog'"),
        ({"variable": "x", "question": "X", "type": "text", "choices": ["a"]}, "multiplechoice and multiselect questions only"),
        ({"variable": "x", "question": "X", "type": "text", "hint": "?"}, "unknown key 'hint'"),
        ({"variable": "x", "question": "X", "type": "checkbox"}, "type 'checkbox' is not one of"),
        ({"variable": "x", "question": "X", "type": "text", "min": ""}, "min must be an integer or null"),
        ({"variable": "x", "question": "X", "type": "integer", "default": "5"}, "default '5' is not a valid integer answer"),
        ({"variable": "x", "question": "X", "type": "multiplechoice", "choices": ["a"], "default": "b"}, "not one of the choices"),
        (
            {"variable": "x", "question": "X", "type": "multiplechoice", "choices": ["a", "b"], "default": "a\nb"},
            "takes one default",
        ),
        ({"variable": "x", "type": "text"}, "question_name must be a non-empty string"),
        ({"variable": "x", "question": "X", "type": "text", "required": "yes"}, "required must be true or false"),
    ],
)
def test_a_question_awx_would_refuse_is_refused(question, problem):
    with pytest.raises(awx.AwxError, match=problem):
        awx.survey_spec("t", "", [question], ["api"])


def test_a_variable_asked_twice_is_refused():
    question = {"variable": "x", "question": "X", "type": "text"}
    with pytest.raises(awx.AwxError, match="variable 'x' is asked twice"):
        awx.survey_spec("t", "", [question, question], [])


def test_an_empty_catalog_choice_is_refused():
    question = {"variable": "x", "question": "X", "type": "multiselect", "choices_from": "catalog"}
    with pytest.raises(awx.AwxError, match="choices must be a non-empty list"):
        awx.survey_spec("t", "", [question], [])


def test_malformed_templates_are_refused_naming_each_problem():
    with pytest.raises(awx.AwxError) as err:
        awx.job_templates([{"name": "a", "playbok": "x.yml"}, STATUS, STATUS, "b"], SERVICES)
    text = str(err.value)
    assert "template 'a': unknown key 'playbok'" in text
    assert "template 'a': playbook is required" in text
    assert "template name 's status' is used more than once" in text
    assert "template 3 must be a mapping" in text


def test_no_templates_is_refused():
    with pytest.raises(awx.AwxError, match="non-empty list"):
        awx.job_templates([], SERVICES)


# --------------------------------------------------------------------------
# what a launch sends
# --------------------------------------------------------------------------
def test_a_multiselect_answer_reaches_the_playbook_as_a_list():
    sent = awx.survey_extra_vars(spec_of("s update"), {"service": ["api", "db"], "version": "1.5.0"})
    assert sent == {"service": ["api", "db"], "version": "1.5.0"}


def test_blank_answers_are_left_out():
    assert awx.survey_extra_vars(spec_of("s update"), {"service": ["api"], "version": ""}) == {"service": ["api"]}


def test_defaults_fill_unanswered_questions():
    assert awx.survey_extra_vars(spec_of("s rollback"), {}) == {"restore_database": "false"}
    assert awx.survey_extra_vars(spec_of("s rollback"), {"service": "api", "restore_database": "true"}) == {
        "service": "api",
        "restore_database": "true",
    }


def test_a_template_without_survey_sends_nothing():
    assert awx.survey_extra_vars({}, {}) == {}


@pytest.mark.parametrize(
    "name, answers, message",
    [
        ("s update", {}, "'service' value missing"),
        ("s update", {"service": []}, "'service' value missing"),
        ("s update", {"service": ["api", "nope"]}, "Value nope for 'service' expected to be one of ['api', 'db']."),
        ("s update", {"service": "api"}, "'service' value is expected to be a list."),
        ("s update", {"service": ["api"], "health_timeout": 0}, "'health_timeout' value 0 is too small (must be at least 1)."),
        ("s update", {"service": ["api"], "health_timeout": 3601}, "'health_timeout' value 3601 is too large"),
        ("s update", {"service": ["api"], "health_timeout": "30"}, "Value 30 for 'health_timeout' expected to be an integer."),
        ("s update", {"service": ["api"], "health_timeout": True}, "expected to be an integer"),
        ("s update", {"service": ["api"], "version": "x" * 129}, "'version' value " + "x" * 129 + " is too large"),
        ("s update", {"service": ["api"], "version": 15}, "Value 15 for 'version' expected to be a string."),
        ("s rollback", {"service": "trace"}, "Value trace for 'service' expected to be one of ['api', 'db']."),
        ("s rollback", {"restore_database": "yes"}, "Value yes for 'restore_database' expected to be one of"),
        ("s rollback", {"limit": "web1"}, "Variables limit are not allowed on launch."),
    ],
)
def test_awx_refuses_the_launch(name, answers, message):
    with pytest.raises(awx.AwxError) as err:
        awx.survey_extra_vars(spec_of(name), answers)
    assert message in str(err.value)


def test_every_refusal_is_named():
    with pytest.raises(awx.AwxError) as err:
        awx.survey_extra_vars(spec_of("s update"), {"health_timeout": 0, "extra": 1})
    assert len(err.value.problems) == 3


def test_a_float_question_takes_numbers_in_range():
    spec = {"name": "t", "description": "", "spec": [{"variable": "f", "question_name": "F", "type": "float", "required": False, "max": 2}]}
    assert awx.survey_extra_vars(spec, {"f": 1.5}) == {"f": 1.5}
    with pytest.raises(awx.AwxError, match="too large"):
        awx.survey_extra_vars(spec, {"f": 2.5})
    with pytest.raises(awx.AwxError, match="expected to be a numeric type"):
        awx.survey_extra_vars(spec, {"f": "1"})


def test_a_text_default_that_fails_its_checks_is_not_sent():
    spec = {
        "name": "t",
        "description": "",
        "spec": [{"variable": "v", "question_name": "V", "type": "text", "required": False, "min": 1, "default": ""}],
    }
    assert awx.survey_extra_vars(spec, {}) == {}


def test_an_invalid_spec_is_refused_before_any_answer():
    with pytest.raises(awx.AwxError, match="spec holds no question"):
        awx.survey_extra_vars({"name": "t", "description": "", "spec": []}, {})
    with pytest.raises(awx.AwxError, match="description must be a string"):
        awx.validate_survey_spec({"name": "t", "spec": [{}]})


# --------------------------------------------------------------------------
# provisioning callbacks
# --------------------------------------------------------------------------
def test_a_template_takes_callbacks_only_when_it_says_so():
    joined = templates(dict(STATUS, name="s join", playbook="deploy.yml", callback=True))
    assert [t["callback"] for t in joined] == [False, False, False, True]


def test_a_callback_template_still_queues_its_jobs():
    """Instances an Auto Scaling group launches together call back together: one deploy at a time."""
    joined = templates(dict(STATUS, name="s join", playbook="deploy.yml", callback=True))[-1]
    assert joined["allow_simultaneous"] is False and joined["ask_variables_on_launch"] is False


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_a_callback_that_is_not_a_boolean_is_refused(value):
    with pytest.raises(awx.AwxError) as info:
        templates(dict(STATUS, name="s join", callback=value))
    assert any("callback must be true or false" in p for p in info.value.problems)
