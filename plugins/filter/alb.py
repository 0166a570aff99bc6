# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters the alb_target role uses on ELBv2 target groups.

Thin entry file: the logic lives in ``plugins/module_utils/alb.py``; each filter is
documented in its sidecar YAML file beside this one.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Mapping, Sequence

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


def alb_member_groups(groups: Sequence[Mapping[str, Any]], target_id: str) -> List[str]:
    """Return the names of the groups where the target is registered."""
    return module_utils("alb").member_groups(groups, target_id)


@operator_errors(ValueError, KeyError)
def alb_leave_refusals(groups: Sequence[Mapping[str, Any]], target_id: str, fleet_size: int) -> List[str]:
    """Return why the target must not leave its groups now (empty: it may)."""
    return module_utils("alb").leave_refusals(groups, target_id, int(fleet_size))


class FilterModule:
    """Load balancer filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(alb_member_groups, alb_leave_refusals)
