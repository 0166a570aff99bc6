# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Which target groups a host is in, and whether it may leave them now.

Input is what ``community.aws.elb_target_group_info`` returns with
``collect_targets_health: true`` (snake_case keys): a list of target groups, each with
``target_group_name`` and ``targets_health_description`` entries of the form
``{"target": {"id": ..., "port": ...}, "target_health": {"state": ...}}``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Sequence


def _targets(group: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [
        {"id": str(d.get("target", {}).get("id", "")), "state": str(d.get("target_health", {}).get("state", ""))}
        for d in group.get("targets_health_description") or []
    ]


def _registered(targets: Sequence[Mapping[str, str]]) -> List[Mapping[str, str]]:
    """Targets that are in the group: AWS lists deregistered ones as ``unused``/NotRegistered."""
    return [t for t in targets if t["state"] not in ("unused", "draining")]


def member_groups(groups: Sequence[Mapping[str, Any]], target_id: str) -> List[str]:
    """Names of the groups where ``target_id`` is registered (in any state but draining/unused)."""
    return [
        str(g["target_group_name"])
        for g in groups
        if any(t["id"] == target_id for t in _registered(_targets(g)))
    ]


def leave_refusals(groups: Sequence[Mapping[str, Any]], target_id: str, fleet_size: int) -> List[str]:
    """Reasons why ``target_id`` must not leave its groups now; empty when it may.

    A host may leave a group only when every other target of the group is registered and
    healthy and at least ``fleet_size - 1`` others are, so that a roll never has two hosts
    out of a group at the same moment.
    """
    if fleet_size < 1:
        raise ValueError(f"fleet_size must be at least 1, got {fleet_size}")
    reasons: List[str] = []
    for group in groups:
        name = str(group["target_group_name"])
        targets = _targets(group)
        if not any(t["id"] == target_id for t in _registered(targets)):
            continue
        others = [t for t in targets if t["id"] != target_id]
        unhealthy = [f"{t['id']} is {t['state']}" for t in others if t["state"] != "healthy"]
        if unhealthy:
            reasons.append(f"in {name}, {', '.join(sorted(unhealthy))}")
        healthy = sum(1 for t in others if t["state"] == "healthy")
        if healthy < fleet_size - 1:
            reasons.append(
                f"in {name}, only {healthy} other target(s) are in service and the fleet has {fleet_size} hosts"
            )
    return reasons

