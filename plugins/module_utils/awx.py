# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""AWX job templates of the stack, and what their surveys send.

The job templates are data (``awx/vars/job_templates.yml``); :func:`job_templates` turns
them into the arguments of ``awx.awx.job_template``, with each survey in the format the
AWX API takes (``POST /api/v2/job_templates/<id>/survey_spec/``). A question may take its
choices from the service catalog (``choices_from: catalog``): the catalog's enabled
services, so a survey never offers a service the playbooks would refuse and there is no
second list to keep in step. This file imports nothing from Ansible.

Template entry (``awx_templates[]``)::

    name         str, required   the job template's name in AWX
    playbook     str, required   path in the project (deploy.yml, update.yml, ...)
    description  str = ""
    survey       list = []       questions, in the order AWX shows them
    callback     bool = false    a provisioning callback: a new instance asks AWX (with the
                                 template's host config key) to run the template limited to it

Question entry (``survey[]``)::

    variable     str, required   the extra var the playbook reads
    question     str, required   what AWX shows (question_name)
    description  str = ""        help text under it (question_description)
    type         str, required   text | textarea | integer | float | multiplechoice | multiselect
    required     bool = false
    default      optional        a string for choice types (one choice), else of the type
    min, max     int, optional   length for text types, value for numbers
    choices      list of str     choice types only; or instead:
    choices_from str             ``catalog``: the enabled services of the catalog, sorted

AWX rules mirrored here, from its source (``awx/api/views`` survey spec checks and
``SurveyJobTemplateMixin._survey_element_validation`` in ``awx/main/models/mixins.py``):

* ``choices`` may be a list or one newline-separated string; the API stores a list as
  given, so a list round-trips unchanged (``awx.awx.job_template`` stays idempotent).
* A multiselect answer reaches the playbook as a list of strings; a multiplechoice answer
  as one string. ``min``/``max`` must be integers or null.
* At launch every question is checked: a missing required answer, a choice not offered,
  a wrong type or a number or length out of range refuses the launch. Survey defaults that
  pass the same checks are added for unanswered questions; the AWX launch form leaves a
  blank field (``""`` or ``[]``) out of what it sends.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import validate_services

__all__ = [
    "AwxError",
    "CATALOG",
    "QUESTION_TYPES",
    "catalog_choices",
    "job_templates",
    "survey_extra_vars",
    "survey_spec",
    "validate_survey_spec",
]

# Question type -> type a default (and an answer) must have, as the AWX API checks it.
QUESTION_TYPES: Dict[str, Union[type, Tuple[type, ...]]] = {
    "text": str,
    "textarea": str,
    "password": str,
    "integer": int,
    "float": (float, int),
    "multiplechoice": str,
    "multiselect": str,
}
CHOICE_TYPES = ("multiplechoice", "multiselect")
TEXT_TYPES = ("text", "textarea", "password")
# ``choices_from`` value: the enabled services of the catalog.
CATALOG = "catalog"

TEMPLATE_KEYS = frozenset(("name", "playbook", "description", "survey", "callback"))
QUESTION_KEYS = frozenset(
    ("variable", "question", "description", "type", "required", "default", "min", "max", "choices", "choices_from")
)


class AwxError(ValueError):
    """A template, survey or answer AWX would refuse; ``problems`` lists every one."""

    def __init__(self, what: str, problems: Sequence[str]) -> None:
        self.problems: List[str] = list(problems)
        super().__init__(
            "{0} ({1} problem{2}):\n- {3}".format(
                what, len(self.problems), "" if len(self.problems) == 1 else "s", "\n- ".join(self.problems)
            )
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choice_list(choices: Any) -> List[str]:
    """Choices as AWX reads them: a list as is, a string split on lines, blank lines dropped."""
    if isinstance(choices, str):
        return [line for line in choices.splitlines() if line.strip()]
    return list(choices or [])


# --------------------------------------------------------------------------
# building the templates
# --------------------------------------------------------------------------
def catalog_choices(services: Any) -> List[str]:
    """The enabled services of ``stack_services``, sorted; the catalog is validated first."""
    normalised = validate_services(services)
    return sorted(name for name, svc in normalised.items() if svc["enabled"] is True)


def _question(where: str, raw: Any, service_names: Sequence[str], problems: List[str]) -> Optional[Dict[str, Any]]:
    if not isinstance(raw, Mapping):
        problems.append("{0} must be a mapping, got {1}".format(where, type(raw).__name__))
        return None
    for key in sorted(set(raw) - QUESTION_KEYS, key=str):
        problems.append("{0}: unknown key {1!r} (allowed: {2})".format(where, key, ", ".join(sorted(QUESTION_KEYS))))
    qtype = raw.get("type")
    item: Dict[str, Any] = {
        "question_name": raw.get("question"),
        "question_description": raw.get("description", ""),
        "variable": raw.get("variable"),
        "type": qtype,
        "required": raw.get("required", False),
    }
    if qtype in CHOICE_TYPES:
        has_list, has_from = raw.get("choices") is not None, raw.get("choices_from") is not None
        if has_list == has_from:
            problems.append("{0} needs exactly one of choices or choices_from".format(where))
        elif has_from and raw["choices_from"] != CATALOG:
            problems.append("{0}.choices_from must be {1!r}, got {2!r}".format(where, CATALOG, raw["choices_from"]))
        item["choices"] = list(service_names) if has_from else _choice_list(raw.get("choices"))
    else:
        for key in ("choices", "choices_from"):
            if key in raw:
                problems.append("{0}: {1} is for multiplechoice and multiselect questions only".format(where, key))
        item["min"] = raw.get("min")
        item["max"] = raw.get("max")
    if "default" in raw:
        item["default"] = raw["default"]
    return item


def survey_spec(name: str, description: str, questions: Any, service_names: Sequence[str]) -> Dict[str, Any]:
    """The AWX survey spec of a template's questions; ``{}`` (no survey) when there are none.

    Raises :class:`AwxError` when a question is malformed or AWX would refuse the spec.
    """
    if questions in (None, []):
        return {}
    if not isinstance(questions, list):
        raise AwxError("the survey of {0!r} is invalid".format(name), ["survey must be a list of questions"])
    problems: List[str] = []
    items = [_question("question {0}".format(idx), raw, service_names, problems) for idx, raw in enumerate(questions)]
    spec = {"name": name, "description": description, "spec": [item for item in items if item is not None]}
    if not problems:
        problems = _spec_problems(spec)
    if problems:
        raise AwxError("the survey of {0!r} is invalid".format(name), problems)
    return spec


def job_templates(templates: Any, services: Any) -> List[Dict[str, Any]]:
    """Arguments of ``awx.awx.job_template`` for each template (project, inventory and the
    like are the caller's): name, description, playbook, the survey, whether it takes
    provisioning callbacks, and the rules every template of this stack follows (jobs of one
    template queue, never run side by side, so instances that call back at once are configured
    one after another; no free extra vars, only the survey).
    """
    if not isinstance(templates, list) or not templates:
        raise AwxError("the job templates are invalid", ["awx_templates must be a non-empty list"])
    service_names = catalog_choices(services)
    problems: List[str] = []
    result: List[Dict[str, Any]] = []
    for idx, raw in enumerate(templates):
        where = "template {0}".format(idx)
        if not isinstance(raw, Mapping):
            problems.append("{0} must be a mapping, got {1}".format(where, type(raw).__name__))
            continue
        where = "template {0!r}".format(raw.get("name", idx))
        for key in sorted(set(raw) - TEMPLATE_KEYS, key=str):
            problems.append("{0}: unknown key {1!r} (allowed: {2})".format(where, key, ", ".join(sorted(TEMPLATE_KEYS))))
        for key in ("name", "playbook"):
            if not (isinstance(raw.get(key), str) and raw[key]):
                problems.append("{0}: {1} is required (a non-empty string)".format(where, key))
        description = raw.get("description") or ""
        callback = raw.get("callback", False)
        if not isinstance(callback, bool):
            problems.append("{0}: callback must be true or false, got {1!r}".format(where, callback))
        try:
            spec = survey_spec(str(raw.get("name", "")), str(description), raw.get("survey"), service_names)
        except AwxError as exc:
            problems.extend("{0}: {1}".format(where, problem) for problem in exc.problems)
            continue
        result.append(
            {
                "name": raw.get("name"),
                "description": description,
                "playbook": raw.get("playbook"),
                "job_type": "run",
                "allow_simultaneous": False,
                "ask_variables_on_launch": False,
                "survey_enabled": bool(spec),
                "survey_spec": spec,
                "callback": callback is True,
            }
        )
    names = [t["name"] for t in result]
    for name in sorted({n for n in names if names.count(n) > 1}, key=str):
        problems.append("template name {0!r} is used more than once".format(name))
    if problems:
        raise AwxError("the job templates are invalid", problems)
    return result


# --------------------------------------------------------------------------
# what AWX accepts as a survey spec
# --------------------------------------------------------------------------
def _spec_problems(spec: Any) -> List[str]:
    if not isinstance(spec, Mapping):
        return ["a survey spec must be a mapping, got {0}".format(type(spec).__name__)]
    problems: List[str] = []
    for field, expect, label in (("name", str, "string"), ("description", str, "string"), ("spec", list, "list")):
        if not isinstance(spec.get(field), expect):
            problems.append("{0} must be a {1}, got {2!r}".format(field, label, spec.get(field)))
    if problems:
        return problems
    if not spec["spec"]:
        return ["spec holds no question"]
    seen: List[str] = []
    for idx, item in enumerate(spec["spec"]):
        problems.extend("question {0}: {1}".format(idx, p) for p in _item_problems(item, seen))
    return problems


def _item_problems(item: Any, seen: List[str]) -> List[str]:
    if not isinstance(item, Mapping):
        return ["must be a mapping"]
    problems: List[str] = []
    for field in ("type", "question_name", "variable"):
        if not (isinstance(item.get(field), str) and item[field]):
            problems.append("{0} must be a non-empty string, got {1!r}".format(field, item.get(field)))
    if not isinstance(item.get("required"), bool):
        problems.append("required must be true or false, got {0!r}".format(item.get("required")))
    if problems:
        return problems
    if item["variable"] in seen:
        problems.append("variable {0!r} is asked twice".format(item["variable"]))
    seen.append(item["variable"])
    qtype = item["type"]
    if qtype not in QUESTION_TYPES:
        return problems + ["type {0!r} is not one of {1}".format(qtype, ", ".join(QUESTION_TYPES))]
    default = item.get("default", "")
    if default != "" and (isinstance(default, bool) or not isinstance(default, QUESTION_TYPES[qtype])):
        problems.append("default {0!r} is not a valid {1} answer".format(default, qtype))
    for key in ("min", "max"):
        if item.get(key) is not None and not _is_int(item[key]):
            problems.append("{0} must be an integer or null, got {1!r}".format(key, item[key]))
    if qtype in CHOICE_TYPES:
        choices = _choice_list(item.get("choices"))
        if not choices or not all(isinstance(c, str) and c for c in choices):
            problems.append("choices must be a non-empty list of strings, got {0!r}".format(item.get("choices")))
        defaults = _choice_list(default) if isinstance(default, str) else []
        if qtype == "multiplechoice" and len(defaults) > 1:
            problems.append("a multiplechoice question takes one default, got {0!r}".format(default))
        for value in defaults:
            if value not in choices:
                problems.append("default {0!r} is not one of the choices {1}".format(value, choices))
    return problems


def validate_survey_spec(spec: Any) -> Dict[str, Any]:
    """Return ``spec`` if AWX accepts it as a survey spec; raise :class:`AwxError` otherwise."""
    problems = _spec_problems(spec)
    if problems:
        raise AwxError("the survey spec is invalid", problems)
    return dict(spec)


# --------------------------------------------------------------------------
# what a launch sends
# --------------------------------------------------------------------------
def _range_problems(var: str, value: Any, measure: Union[int, float], item: Mapping[str, Any], length: bool) -> List[str]:
    low, high = item.get("min"), item.get("max")
    problems = []
    if low is not None and measure < low:
        problems.append(
            "'{0}' value {1} is too small ({2}must be at least {3}).".format(
                var, value, "length is {0} ".format(measure) if length else "", low
            )
        )
    if high is not None and measure > high:
        problems.append("'{0}' value {1} is too large (must be no more than {2}).".format(var, value, high))
    return problems


def _answer_problems(item: Mapping[str, Any], data: Mapping[str, Any]) -> List[str]:
    """AWX's check of one question against the launch data, with AWX's messages."""
    var, qtype = item["variable"], item["type"]
    if var not in data:
        return ["'{0}' value missing".format(var)] if item.get("required") else []
    value = data[var]
    if qtype in TEXT_TYPES:
        if not isinstance(value, str):
            return ["Value {0} for '{1}' expected to be a string.".format(value, var)]
        return _range_problems(var, value, len(value), item, length=True)
    if qtype == "integer":
        if not _is_int(value):
            return ["Value {0} for '{1}' expected to be an integer.".format(value, var)]
        return _range_problems(var, value, value, item, length=False)
    if qtype == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return ["Value {0} for '{1}' expected to be a numeric type.".format(value, var)]
        return _range_problems(var, value, value, item, length=False)
    choices = _choice_list(item.get("choices"))
    if qtype == "multiselect":
        if not isinstance(value, list):
            return ["'{0}' value is expected to be a list.".format(var)]
        return ["Value {0} for '{1}' expected to be one of {2}.".format(v, var, choices) for v in value if v not in choices]
    if value not in choices:
        return ["Value {0} for '{1}' expected to be one of {2}.".format(value, var, choices)]
    return []


def survey_extra_vars(spec: Any, answers: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """The extra vars a job gets when the survey is answered with ``answers``.

    ``answers`` is what an operator fills in the launch form: a blank field (``""`` or an
    empty list) is left out, as the AWX form does. Then, as AWX does: every question is
    checked (missing required answer, choice not offered, wrong type, out of range) and
    a variable the survey does not ask is refused (templates do not prompt for extra
    vars); the defaults that pass the same checks fill the unanswered questions. A
    multiselect answer stays a list.

    Raises :class:`AwxError` with AWX's messages when AWX would refuse the launch.
    """
    items = validate_survey_spec(spec)["spec"] if spec else []
    sent = {key: value for key, value in (answers or {}).items() if value != "" and value != []}
    problems: List[str] = []
    unknown = sorted(set(sent) - {item["variable"] for item in items}, key=str)
    if unknown:
        problems.append("Variables {0} are not allowed on launch.".format(", ".join(str(k) for k in unknown)))
    for item in items:
        problems.extend(_answer_problems(item, sent))
    if problems:
        raise AwxError("AWX would refuse the launch", problems)
    extra: Dict[str, Any] = {}
    for item in items:
        default = item.get("default")
        if default is not None and not _answer_problems(item, {item["variable"]: default}):
            extra[item["variable"]] = default
    extra.update(sent)
    return extra
