# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The stack's env file, built from the parameters under one Parameter Store path.

The ``ssm_secrets`` role reads every parameter under a path with the
``amazon.aws.ssm_parameter`` lookup (``bypath``, ``recursive``, ``decrypt``,
full names), and hands the result, a mapping of parameter name to value, to
:func:`build_env` through the ``sgivu.deploy.ssm_env`` filter. This file imports
nothing from Ansible.

Names to keys: a parameter's env key is the last component of its name
(``/sgivu/prod/POSTGRES_PASSWORD`` -> ``POSTGRES_PASSWORD``) unless the key map
names it. A key map entry is matched against the full name, then against the
trailing components of the name below the path, longest first, so
``{"sgivu-user/db-password": "USER_DB_PASSWORD"}`` and ``{"db-password": "DB_PASSWORD"}``
both work.

Rules, all checked before anything is returned (every problem is collected):

* the path holds at least one parameter;
* every key is a valid environment variable name;
* one value per key: a key reached from several parameters (``/p/KEY`` and
  ``/p/svc/KEY``) must hold the same value there;
* a key is either a parameter or a plain extra, not both;
* every required key is present and not blank;
* each group of equal keys holds one value;
* no key is one that Compose or the Docker CLI reads for itself (``COMPOSE_*``,
  ``DOCKER_*``, ``BUILDKIT_*``): the env file is never given to Compose for its own
  use, and such a key is refused so it cannot become one by mistake;
* every value fits one line of a raw env file: anything but a line break or a NUL.
  Quotes, ``$``, backslashes, ``#``, spaces, ``{{ }}`` and non-ASCII text are
  carried byte for byte (services read the file through Compose's ``format: raw``).

Secrets: no message raised from here ever holds a value; problems name keys and
parameter names only.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "ENV_FILE_HEADER",
    "SsmEnvError",
    "build_env",
    "env_line",
    "render_env_file",
]

ENV_FILE_HEADER = "# Managed by Ansible (sgivu.deploy.ssm_secrets); do not edit."

# Environment variable names (POSIX portable set), as in catalog.py.
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Keys Compose or the Docker CLI read for themselves (project name, files, profiles, host, TLS...).
RESERVED_PREFIXES = ("COMPOSE_", "DOCKER_", "BUILDKIT_")


class SsmEnvError(ValueError):
    """The parameters do not make a valid env file; ``problems`` names every key at fault."""

    def __init__(self, subject: str, problems: Sequence[str]) -> None:
        self.subject = subject
        self.problems: List[str] = list(problems)
        super().__init__(
            "{0} ({1} problem{2}):\n- {3}".format(
                subject, len(self.problems), "" if len(self.problems) == 1 else "s", "\n- ".join(self.problems)
            )
        )


def _about_path(path: str) -> str:
    return "the parameters under {0} do not make a valid env file".format(path)


_ABOUT_FILE = "the env file cannot be rendered"


def _is_key(value: Any) -> bool:
    return isinstance(value, str) and _ENV_KEY.match(value) is not None


def _unsafe_reason(value: str) -> Optional[str]:
    """Why ``value`` cannot be one line of a raw env file, or None."""
    if "\n" in value or "\r" in value:
        return "a line break"
    if "\x00" in value:
        return "a NUL character"
    return None


def _as_text(value: Any) -> Optional[str]:
    """A plain value as env text (booleans as true/false), or None for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def _normalize_prefix(prefix: Any) -> str:
    if not (isinstance(prefix, str) and prefix.startswith("/")):
        problem = "the path must be a string starting with '/', got {0!r}".format(prefix)
        raise SsmEnvError(_about_path(str(prefix)), [problem])
    return prefix.rstrip("/") or "/"


def _relative(name: str, prefix: str) -> str:
    """The part of ``name`` below ``prefix`` (the whole name without its leading '/' otherwise)."""
    head = prefix if prefix.endswith("/") else prefix + "/"
    if name.startswith(head):
        return name[len(head):]
    return name.lstrip("/")


def _key_for(name: str, prefix: str, key_map: Mapping[str, str]) -> str:
    if name in key_map:
        return key_map[name]
    parts = [p for p in _relative(name, prefix).split("/") if p]
    for start in range(len(parts)):
        suffix = "/".join(parts[start:])
        if suffix in key_map:
            return key_map[suffix]
    return parts[-1] if parts else name


def _str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def _check_options(
    required_keys: Any, equal_keys: Any, key_map: Any, plain: Any, problems: List[str]
) -> Tuple[List[str], List[List[str]], Dict[str, str], Dict[str, str]]:
    """Validate the role's non-secret inputs; values in them may be named in messages."""
    required: List[str] = []
    if required_keys is not None:
        if not _str_list(required_keys):
            problems.append("required keys must be a list of key names")
        else:
            required = list(required_keys)

    groups: List[List[str]] = []
    if equal_keys is not None:
        if not isinstance(equal_keys, (list, tuple)):
            problems.append("equal keys must be a list of key lists")
        else:
            for group in equal_keys:
                if _str_list(group) and len(group) >= 2:
                    groups.append(list(group))
                else:
                    problems.append("equal keys: {0!r} must list at least two key names".format(group))

    mapping: Dict[str, str] = {}
    if key_map is not None:
        if not isinstance(key_map, Mapping):
            problems.append("the key map must be a mapping of parameter name (or path suffix) to env key")
        else:
            for name, key in key_map.items():
                if not (isinstance(name, str) and name.strip("/")):
                    problems.append("key map: {0!r} is not a parameter name or path suffix".format(name))
                elif not _is_key(key):
                    problems.append("key map: {0} maps to {1!r}, which is not a valid env key".format(name, key))
                else:
                    mapping[name] = key

    extras: Dict[str, str] = {}
    if plain is not None:
        if not isinstance(plain, Mapping):
            problems.append("plain extras must be a mapping of KEY: value")
        else:
            for key, value in plain.items():
                text = _as_text(value)
                if not _is_key(key):
                    problems.append("plain extras: {0!r} is not a valid env key".format(key))
                elif text is None:
                    problems.append(
                        "plain extras: {0} must be a plain value (string, number, boolean), got {1}".format(
                            key, type(value).__name__
                        )
                    )
                else:
                    extras[key] = text
    return required, groups, mapping, extras


def build_env(
    parameters: Any,
    prefix: Any,
    required_keys: Optional[Iterable[str]] = None,
    equal_keys: Optional[Iterable[Iterable[str]]] = None,
    key_map: Optional[Mapping[str, str]] = None,
    plain: Optional[Mapping[str, Any]] = None,
) -> Dict[str, str]:
    """Map the parameters under ``prefix`` to env keys, check them, and return the env.

    ``parameters`` is what the lookup returns: full parameter name -> value.
    ``plain`` adds non-secret ``KEY: value`` pairs. Raises :class:`SsmEnvError`
    naming every key (never a value) when any rule in the module docstring fails.
    """
    path = _normalize_prefix(prefix)
    problems: List[str] = []
    required, groups, mapping, extras = _check_options(required_keys, equal_keys, key_map, plain, problems)

    if not isinstance(parameters, Mapping):
        problems.append(
            "the lookup result must be a mapping of parameter name to value, got {0}".format(
                type(parameters).__name__
            )
        )
        raise SsmEnvError(_about_path(path), problems)
    if not parameters:
        problems.append("Parameter Store holds no parameter under {0} (is the path or the region wrong?)".format(path))
        raise SsmEnvError(_about_path(path), problems)

    # key -> [(parameter name, value)], in name order so messages are stable
    found: Dict[str, List[Tuple[str, str]]] = {}
    for name in sorted(parameters, key=str):
        value = parameters[name]
        if not isinstance(name, str):
            problems.append("the lookup returned a parameter name that is not a string")
            continue
        key = _key_for(name, path, mapping)
        if not _is_key(key):
            problems.append(
                "{0}: {1!r} is not a valid env key; rename the parameter or map it in the key map".format(name, key)
            )
            continue
        text = _as_text(value)
        if text is None:
            problems.append("{0}: the value is not text (got {1})".format(name, type(value).__name__))
            continue
        found.setdefault(key, []).append((name, text))

    env: Dict[str, str] = {}
    for key in sorted(found):
        sources = found[key]
        if len({text for _, text in sources}) > 1:
            problems.append(
                "{0} must hold one value, but its {1} parameters differ: {2}".format(
                    key, len(sources), ", ".join(name for name, _ in sources)
                )
            )
            continue
        env[key] = sources[0][1]

    for key in sorted(extras):
        if key in found:
            names = ", ".join(name for name, _ in found[key])
            problems.append("{0} is both a parameter ({1}) and a plain extra; keep one".format(key, names))
            continue
        env[key] = extras[key]

    missing = sorted({k for k in required if k not in env and k not in found})
    if missing:
        problems.append("required keys missing under {0}: {1}".format(path, ", ".join(missing)))
    blank = sorted({k for k in required if k in env and env[k].strip() == ""})
    if blank:
        problems.append("required keys empty: {0}".format(", ".join(blank)))

    for group in groups:
        absent = [k for k in group if k not in env and k not in found]
        for key in absent:
            if key not in required:
                problems.append("{0} (must equal {1}) is not set".format(key, ", ".join(k for k in group if k != key)))
        present = [k for k in group if k in env]
        if len({env[k] for k in present}) > 1:
            problems.append("{0} must hold one value, but they differ".format(", ".join(present)))

    for key in sorted(env):
        if key.upper().startswith(RESERVED_PREFIXES):
            problems.append(
                "{0} is a key Compose or Docker reads for itself ({1}*); rename the parameter "
                "or map it to another key".format(key, key.upper().split("_", 1)[0] + "_")
            )
        reason = _unsafe_reason(env[key])
        if reason:
            problems.append(
                "{0}: the value holds {1}, which one line of the env file cannot carry".format(key, reason)
            )

    if problems:
        raise SsmEnvError(_about_path(path), problems)
    return env


def env_line(key: str, value: Any) -> str:
    """One ``KEY=value`` line of a raw env file: the value verbatim, up to the end of the line."""
    if not _is_key(key):
        raise SsmEnvError(_ABOUT_FILE, ["{0!r} is not a valid env key".format(key)])
    text = _as_text(value)
    if text is None:
        raise SsmEnvError(_ABOUT_FILE, ["{0}: the value must be text, got {1}".format(key, type(value).__name__)])
    reason = _unsafe_reason(text)
    if reason:
        raise SsmEnvError(
            _ABOUT_FILE,
            ["{0}: the value holds {1}, which one line of the env file cannot carry".format(key, reason)],
        )
    return "{0}={1}".format(key, text)


def render_env_file(env: Any) -> str:
    """The env file's text: the header, then one line per key in key order, newline-terminated."""
    if not isinstance(env, Mapping):
        raise SsmEnvError(_ABOUT_FILE, ["the env must be a mapping of KEY: value, got {0}".format(type(env).__name__)])
    problems: List[str] = []
    lines = [ENV_FILE_HEADER]
    for key in sorted(env, key=str):
        try:
            lines.append(env_line(key, env[key]))
        except SsmEnvError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SsmEnvError(_ABOUT_FILE, problems)
    return "\n".join(lines) + "\n"
