# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that turn Parameter Store parameters into the stack's env file.

Thin entry file: the logic lives in ``plugins/module_utils/ssm_env.py``. Each
filter is documented in its sidecar file beside this one (``ssm_env.yml`` and
``env_file_content.yml``). Error messages name keys, never values.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors("ssm_env.SsmEnvError")
def ssm_env(
    parameters: Any,
    path: Any,
    required_keys: Any = None,
    equal_keys: Any = None,
    key_map: Any = None,
    plain: Any = None,
) -> Dict[str, str]:
    """Return the checked env (KEY -> value) built from the parameters under ``path``."""
    return module_utils("ssm_env").build_env(parameters, path, required_keys, equal_keys, key_map, plain)


@operator_errors("ssm_env.SsmEnvError")
def env_file_content(env: Any) -> str:
    """Return the text of a compose env file holding ``env``."""
    return module_utils("ssm_env").render_env_file(env)


class FilterModule:
    """Env file filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(ssm_env, env_file_content)
