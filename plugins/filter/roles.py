# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters over the collection's roles as a run configures them.

Thin entry file: the logic lives in ``plugins/module_utils/role_settings.py``. Each filter is
documented in its sidecar file beside this one (``role_setting_problems.yml``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils


def role_setting_problems(variables: Mapping[str, Any]) -> List[str]:
    """Return what is wrong with the roles' options a host's variables set (empty: nothing); never fails for a value."""
    if not isinstance(variables, Mapping):
        return ["the roles' settings must be a host's variables (hostvars[inventory_hostname]), got {0}".format(
            type(variables).__name__)]
    return module_utils("role_settings").setting_problems(variables)


class FilterModule:
    """Role settings filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(role_setting_problems)
