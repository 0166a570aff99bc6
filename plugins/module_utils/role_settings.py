# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The roles' settings a run is given, checked against the roles' argument specs before it changes anything.

Ansible checks a role's arguments (``meta/argument_specs.yml``) when the role is included. A deploy's
transaction includes some roles only once the new release runs (stack_health, alb_target's register,
stack_events), so a setting of the wrong type in group_vars or ``-e`` (``stack_health_poll_interval: abc``)
failed there and the transaction put the last good release back: the host changed, and changed back, for a
typo. Ansible's refusal also prints the whole spec (about 230 lines) after its message.

:func:`setting_problems` checks every option of every role of this collection that the run's variables set
(inventory, group_vars, host_vars, ``-e``), with the same specs and Ansible's own validator, so that the
run can refuse them all in one message before the deploy lock is taken. Options a role gets from the
playbook that includes it are not among a host's variables and are left to the role's own check, as are
values that cannot be templated yet (they name a fact not gathered); ``required`` and ``default`` are not
applied, as an option the run does not set is the role's business.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Tuple

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.sgivu.deploy.plugins.module_utils.compose import shown

# The collection's roles: plugins/module_utils/ -> the collection root -> roles/.
ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")

# Keys of an argument spec option that Ansible's validator reads; the rest (description, version_added) is doc.
_SPEC_KEYS = frozenset(("type", "elements", "choices", "options", "no_log", "aliases", "required", "default",
                        "apply_defaults", "mutually_exclusive", "required_together", "required_one_of",
                        "required_if", "required_by"))
# Top-level keys dropped: whether an option is set, and its value when it is not, are the role's business.
_OPTIONAL = frozenset(("required", "default"))
# What a value of each spec type is, in a message's words.
_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "list": "a list",
               "dict": "a mapping", "str": "text", "path": "a path", "bytes": "a size in bytes", "bits": "a size in bits",
               "json": "JSON", "jsonarg": "JSON"}


def _clean(option: Mapping[str, Any], top: bool) -> Dict[str, Any]:
    """The option as the validator takes it: its checking keys only, sub-options cleaned alike."""
    cleaned = {key: value for key, value in option.items()
               if key in _SPEC_KEYS and not (top and key in _OPTIONAL)}
    if isinstance(cleaned.get("options"), Mapping):
        cleaned["options"] = {name: _clean(sub, False) for name, sub in cleaned["options"].items()}
    return cleaned


def role_options(roles_dir: str = ROLES_DIR) -> Dict[str, Tuple[str, Dict[str, Any]]]:
    """Every option of every role's entry points, by name: (role, option as the validator takes it).

    Read from ``<roles_dir>/<role>/meta/argument_specs.yml``; an option named by several entry
    points of a role takes the ``main`` entry point's definition. A role without the file has no
    options here. Raises OSError or yaml.YAMLError for a spec file that cannot be read."""
    options: Dict[str, Tuple[str, Dict[str, Any]]] = {}
    for role in sorted(os.listdir(roles_dir)):
        path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            entry_points = (yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}).get(
                "argument_specs") or {}
        for entry in sorted(entry_points, key=lambda name: name != "main"):
            for name, option in ((entry_points[entry] or {}).get("options") or {}).items():
                options.setdefault(name, (role, _clean(option, True)))
    return options


def setting_problems(variables: Mapping[str, Any], roles_dir: str = ROLES_DIR) -> List[str]:
    """Return what is wrong with the roles' settings among ``variables`` (empty: nothing), one sentence each.

    ``variables`` is a host's variables (``hostvars[inventory_hostname]``): only the names that are
    options of a role are read, each templated on its own; one that cannot be templated is passed over.
    Each problem names the option, its role, Ansible's reason and the value (``compose.shown``: JSON,
    at most 40 characters), except for an option the spec marks ``no_log``, whose value is never shown.
    Never raises for a value; raises OSError or yaml.YAMLError for an unreadable spec file."""
    problems: List[str] = []
    for name, (role, option) in sorted(role_options(roles_dir).items()):
        try:
            if name not in variables:
                continue
            value = variables[name]
            result = ArgumentSpecValidator({name: option}).validate({name: value})
        except Exception:  # a value naming what is not defined yet: the role checks it when it runs
            continue
        if not result.error_messages:
            continue
        wanted = _TYPE_WORDS.get(option.get("type", "str"))
        if option.get("no_log"):
            problems.append("{0} (role {1}) must be {2}; its value is not shown, as it may hold a secret".format(
                name, role, wanted or "what the role's spec says"))
            continue
        if all(message.startswith("value of {0} must be one of".format(name)) for message in result.error_messages):
            wanted = "one of " + ", ".join(str(choice) for choice in option.get("choices") or [])
        elif not all(message.startswith("argument '{0}' is of type".format(name)) for message in result.error_messages):
            wanted = None
        if wanted:
            problems.append("{0} (role {1}) must be {2}, got {3}".format(name, role, wanted, shown(value)))
            continue
        reasons = "; ".join(message.strip().rstrip(".") for message in result.error_messages)
        problems.append("{0} (role {1}): {2}; got {3}".format(name, role, reasons, shown(value)))
    return problems
