"""Which groups a host is in, and when it may leave them: never two hosts out at once."""
from __future__ import annotations

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import alb


def group(name: str, **states: str) -> dict:
    return {
        "target_group_name": name,
        "targets_health_description": [
            {"target": {"id": tid, "port": 80}, "target_health": {"state": state}} for tid, state in states.items()
        ],
    }


def test_member_groups_lists_the_groups_holding_the_target():
    groups = [group("web", a="healthy", b="healthy"), group("api", b="healthy")]
    assert alb.member_groups(groups, "a") == ["web"]


def test_a_draining_target_is_not_a_member():
    assert alb.member_groups([group("web", a="draining", b="healthy")], "a") == []


def test_an_unhealthy_registered_target_is_still_a_member():
    assert alb.member_groups([group("web", a="unhealthy")], "a") == ["web"]


def test_a_host_may_leave_when_every_other_one_is_healthy():
    assert alb.leave_refusals([group("web", a="healthy", b="healthy", c="healthy")], "a", 3) == []


def test_a_host_may_not_leave_while_another_one_drains():
    reasons = alb.leave_refusals([group("web", a="healthy", b="draining", c="healthy")], "a", 3)
    assert reasons and "b is draining" in reasons[0]


def test_a_host_may_not_leave_while_another_one_is_missing_from_the_group():
    reasons = alb.leave_refusals([group("web", a="healthy", c="healthy")], "a", 3)
    assert reasons == ["in web, only 1 other target(s) are in service and the fleet has 3 hosts"]


def test_a_host_outside_a_group_has_nothing_to_leave():
    assert alb.leave_refusals([group("web", b="healthy")], "a", 3) == []


def test_a_single_host_fleet_may_always_leave():
    assert alb.leave_refusals([group("web", a="healthy")], "a", 1) == []


def test_a_fleet_of_none_is_an_error():
    with pytest.raises(ValueError):
        alb.leave_refusals([], "a", 0)

