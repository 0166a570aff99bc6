"""Unit tests of the readiness logic (plugins/module_utils/health.py) on real Docker output."""

from __future__ import annotations

import copy
import datetime
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import CatalogError
from ansible_collections.sgivu.deploy.plugins.module_utils.health import (
    HealthError,
    container_record,
    failure_message,
    health_report,
    health_table,
    image_tag,
    parse_time,
    route_outcomes,
    time_to_healthy,
)

# Docker's own output, kept in fixtures/ as the bench printed it.
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def docker_output(name: str) -> Any:
    """The JSON of ``fixtures/<name>.json``."""
    return json.loads((FIXTURES / (name + ".json")).read_text(encoding="utf-8"))


# Trimmed from `docker inspect` of a Compose project on the bench (Docker 20.10, Compose 2.40):
# "good" starts listening after 3 s, "bad" is sgivu-bench/standin:9.9.9-bad (health always 503),
# "plain" has no healthcheck. good_early / good / good_late are one container at +2 s, +6 s, +10 s.
INSPECT: Dict[str, Dict[str, Any]] = {
    name: docker_output("inspect_" + name) for name in ("good_early", "good", "good_late", "bad", "plain")
}

# The same project through community.docker.docker_host_info (verbose_output: true), at +16 s.
SUMMARY: List[Dict[str, Any]] = docker_output("host_info_containers")

SERVICES: Dict[str, Any] = {
    "good": {"image": "sgivu-bench/standin", "tag": "1.0.0", "port": 8081, "health": {"path": "/actuator/health"}},
    "bad": {
        "image": "sgivu-bench/standin",
        "tag": "9.9.9-bad",
        "port": 8082,
        "health": {"path": "/actuator/health", "interval": 1, "timeout": 15},
    },
    "plain": {"image": "sgivu-bench/standin", "tag": "1.0.0", "port": 8080, "health": {"command": ["true"]}},
}

# `docker logs --tail 4 --timestamps h-health-fixture-bad-1`, stdout (stderr was empty).
BAD_LOGS = (
    '2026-11-23T12:48:14.293703818Z 2026-11-23T12:48:14.293483Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -\n'
    '2026-11-23T12:48:15.368895886Z 2026-11-23T12:48:15.368721Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -\n'
    '2026-11-23T12:48:16.430448946Z 2026-11-23T12:48:16.429456Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -\n'
    '2026-11-23T12:48:17.523227254Z 2026-11-23T12:48:17.523040Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -\n'
)


def inspect(name: str, **changes: Any) -> Dict[str, Any]:
    """A deep copy of a fixture; ``number=2`` sets the compose container number."""
    info = copy.deepcopy(INSPECT[name])
    if "number" in changes:
        info["Config"]["Labels"]["com.docker.compose.container-number"] = str(changes.pop("number"))
        info["Id"] = info["Id"][:-1] + str(info["Config"]["Labels"]["com.docker.compose.container-number"])
        info["Name"] = info["Name"][:-1] + info["Config"]["Labels"]["com.docker.compose.container-number"]
    for key, value in changes.items():
        info["State"][key] = value
    return info


def healthy_set() -> List[Dict[str, Any]]:
    return [inspect("good"), inspect("plain"), inspect("good_late")]


# --------------------------------------------------------------------------
# reading Docker's values
# --------------------------------------------------------------------------
def test_parse_time_reads_nanoseconds_as_microseconds():
    assert parse_time("2026-11-23T12:47:55.546205616Z") == datetime.datetime(
        2026, 11, 23, 12, 47, 55, 546205, tzinfo=datetime.timezone.utc
    )


def test_parse_time_reads_an_offset():
    when = parse_time("2026-11-23T13:47:55.5+01:00")
    assert when == datetime.datetime(2026, 11, 23, 12, 47, 55, 500000, tzinfo=datetime.timezone.utc)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "", None, "yesterday", 5])
def test_parse_time_gives_none_for_never_and_garbage(value):
    assert parse_time(value) is None


@pytest.mark.parametrize(
    "reference, tag",
    [
        ("sgivu-bench/standin:1.0.0", "1.0.0"),
        ("127.0.0.1:5000/bench/hello:1.1", "1.1"),
        ("127.0.0.1:5000/bench/hello", "latest"),
        ("registry/app@sha256:0123456789abcdef0123", "sha256:0123456789ab"),
        ("registry/app:2.0@sha256:0123456789abcdef0123", "2.0"),
        ("sha256:018483ebd3b2a82168685e04d8587c4685142e889a9f66dcb3f52355ad6ff20f", "sha256:018483ebd3b2"),
        (None, "-"),
    ],
)
def test_image_tag(reference, tag):
    assert image_tag(reference) == tag


# --------------------------------------------------------------------------
# time to healthy
# --------------------------------------------------------------------------
def test_time_to_healthy_is_the_end_of_the_first_successful_probe():
    # StartedAt 12:47:55.546; first success ends 12:47:58.817 (two failures before it).
    assert time_to_healthy(INSPECT["good"]) == 3.3


def test_time_to_healthy_is_unknown_while_starting():
    assert time_to_healthy(INSPECT["good_early"]) is None


def test_time_to_healthy_is_unknown_once_the_change_left_the_log():
    # Five successes, the oldest 5.4 s after the start with 1 s probes: earlier probes were dropped.
    assert time_to_healthy(INSPECT["good_late"]) is None


def test_time_to_healthy_is_unknown_for_an_unhealthy_container():
    assert time_to_healthy(INSPECT["bad"]) is None


def test_time_to_healthy_is_unknown_without_a_healthcheck():
    assert time_to_healthy(INSPECT["plain"]) is None


def test_time_to_healthy_trusts_a_full_log_that_starts_right_after_the_start():
    info = inspect("good_late", StartedAt="2026-11-23T12:47:59.700000000Z")
    # The oldest probe began 1.2 s after the start: with 1 s probes none fits before it.
    assert time_to_healthy(info) == 1.3


def test_time_to_healthy_trusts_a_log_that_still_holds_the_previous_run():
    info = inspect("good_late", StartedAt="2026-11-23T12:48:01.500000000Z")
    # Two entries predate this start, so nothing of this run was dropped; first success ends 12:48:02.095.
    assert time_to_healthy(info) == 0.6


def test_time_to_healthy_uses_the_start_interval_during_a_start_period():
    info = inspect("good_late", StartedAt="2026-11-23T12:47:55.000000000Z")
    info["Config"]["Healthcheck"].update(
        Interval=30_000_000_000, StartPeriod=60_000_000_000, StartInterval=1_000_000_000
    )
    assert time_to_healthy(info) is None
    info["Config"]["Healthcheck"]["StartInterval"] = 5_000_000_000
    assert time_to_healthy(info) == 6.0


# --------------------------------------------------------------------------
# one container, both shapes
# --------------------------------------------------------------------------
def test_container_record_from_inspect():
    record = container_record(INSPECT["bad"])
    assert record["name"] == "h-health-fixture-bad-1"
    assert record["service"] == "bad" and record["number"] == 1 and record["oneoff"] is False
    assert (record["tag"], record["state"], record["health"]) == ("9.9.9-bad", "running", "unhealthy")
    assert record["last_probe"] == {"exit_code": 22, "output": "curl: (22) The requested URL returned error: 503"}


def test_container_record_without_healthcheck_has_no_health():
    record = container_record(INSPECT["plain"])
    assert record["health"] is None and record["last_probe"] is None


@pytest.mark.parametrize("service, health", [("plain", None), ("bad", "unhealthy"), ("good", "healthy")])
def test_container_record_from_summary_reads_health_from_the_status_text(service, health):
    info = next(c for c in SUMMARY if c["Labels"]["com.docker.compose.service"] == service)
    record = container_record(info)
    assert (record["service"], record["state"], record["health"], record["tag"]) == (
        service,
        "running",
        health,
        info["Image"].split(":")[1],
    )
    assert record["time_to_healthy"] is None


def test_container_record_from_summary_reads_starting():
    info = dict(SUMMARY[2], Status="Up 2 seconds (health: starting)")
    assert container_record(info)["health"] == "starting"


def test_container_record_from_summary_prefers_a_health_field():
    info = dict(SUMMARY[2], Status="Up 2 seconds", Health={"Status": "healthy", "FailingStreak": 0})
    assert container_record(info)["health"] == "healthy"


def test_container_record_refuses_a_non_mapping():
    with pytest.raises(HealthError):
        container_record(["not", "a", "container"])


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
def test_report_of_a_healthy_project_is_ready_and_done():
    services = dict(SERVICES, bad=dict(SERVICES["bad"], enabled=False))
    report = health_report([inspect("good"), inspect("plain")], services)
    assert report["ready"] is True and report["done"] is True
    assert report["late"] == [] and report["waiting"] == [] and report["unhealthy"] == []
    assert [(r["service"], r["health"], r["time_to_healthy"]) for r in report["rows"]] == [
        ("good", "healthy", 3.3),
        ("plain", "-", None),
    ]


def test_report_waits_for_a_service_within_its_deadline():
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], SERVICES, elapsed=10)
    assert (report["ready"], report["done"], report["waiting"], report["late"]) == (False, False, ["bad"], [])


def test_report_is_done_when_the_only_service_not_ready_is_late():
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], SERVICES, elapsed=15)
    assert (report["ready"], report["done"], report["late"], report["waiting"]) == (False, True, ["bad"], [])
    assert [c["name"] for c in report["unhealthy"]] == ["h-health-fixture-bad-1"]


def test_report_deadlines_are_per_service():
    # bad (15 s) is late while good (120 s, still starting) is waiting: not done yet.
    report = health_report([inspect("good_early"), inspect("bad"), inspect("plain")], SERVICES, elapsed=20)
    assert report["late"] == ["bad"] and report["waiting"] == ["good"] and report["done"] is False
    assert report["deadline"] == 120
    assert report["services"]["bad"] == {
        "want": 1,
        "have": 0,
        "containers": 1,
        "timeout": 15,
        "ready": False,
        "late": True,
    }


def test_final_verdict_without_elapsed_makes_every_service_not_ready_late():
    report = health_report([inspect("good_early"), inspect("plain")], SERVICES)
    assert report["late"] == ["bad", "good"] and report["done"] is True


def test_report_lists_services_in_start_order():
    services = dict(
        SERVICES, bad=dict(SERVICES["bad"], depends_on=["plain"]), plain=dict(SERVICES["plain"], depends_on=["good"])
    )
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], services)
    assert list(report["services"]) == ["good", "plain", "bad"]
    assert [r["service"] for r in report["rows"]] == ["good", "plain", "bad"]


def test_report_counts_a_running_container_without_healthcheck():
    services = {"plain": SERVICES["plain"]}
    assert health_report([inspect("plain")], services)["ready"] is True


@pytest.mark.parametrize("status", ["exited", "restarting", "paused", "created"])
def test_report_does_not_count_a_container_that_is_not_running(status):
    services = {"plain": SERVICES["plain"]}
    report = health_report([inspect("plain", Status=status, Running=False)], services)
    assert report["ready"] is False and report["rows"][0]["state"] == status


def test_report_needs_every_replica_and_names_them():
    services = {"good": dict(SERVICES["good"], replicas=2)}
    one = health_report([inspect("good")], services)
    assert one["ready"] is False and one["services"]["good"]["have"] == 1
    assert [(r["service"], r["state"]) for r in one["rows"]] == [("good#1", "running"), ("good", "1 missing")]
    two = health_report([inspect("good", number=2), inspect("good")], services)
    assert two["ready"] is True
    assert [r["service"] for r in two["rows"]] == ["good#1", "good#2"]


def test_report_accepts_more_containers_than_replicas_during_a_swap():
    services = {"good": SERVICES["good"]}
    report = health_report([inspect("good"), inspect("good_early", number=2)], services)
    assert report["ready"] is True
    assert [(r["service"], r["health"]) for r in report["rows"]] == [("good#1", "healthy"), ("good#2", "starting")]


def test_report_shows_a_service_with_no_container_as_missing():
    report = health_report([inspect("good"), inspect("plain")], SERVICES)
    assert {"service": "bad", "state": "missing"}.items() <= next(
        r for r in report["rows"] if r["service"] == "bad"
    ).items()
    assert report["late"] == ["bad"] and report["unhealthy"] == []


def test_report_ignores_other_services_one_offs_and_vanished_containers():
    oneoff = inspect("bad")
    oneoff["Config"]["Labels"]["com.docker.compose.oneoff"] = "True"
    report = health_report([inspect("good"), oneoff, None], {"good": SERVICES["good"]})
    assert [r["service"] for r in report["rows"]] == ["good"] and report["ready"] is True


def test_report_skips_disabled_services():
    services = dict(SERVICES, bad=dict(SERVICES["bad"], enabled=False))
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], services)
    assert "bad" not in report["services"] and report["ready"] is True


def test_report_only_checks_the_services_asked_for():
    report = health_report([inspect("good"), inspect("bad")], SERVICES, only=["good"])
    assert list(report["services"]) == ["good"] and report["ready"] is True


@pytest.mark.parametrize(
    "only, message",
    [
        (["nope"], "not in the catalog: nope"),
        (["bad"], "disabled in the catalog: bad"),
        ("good", "only must be a list"),
    ],
)
def test_report_refuses_only_naming_what_it_cannot_check(only, message):
    services = dict(SERVICES, bad=dict(SERVICES["bad"], enabled=False))
    with pytest.raises(HealthError, match=message):
        health_report([], services, only=only)


def test_report_refuses_an_invalid_catalog():
    with pytest.raises(CatalogError):
        health_report([], {"x": {"image": "r/x", "tag": "1", "port": 1}})


def test_report_from_summary_output_decides_the_same():
    by_inspect = health_report([INSPECT["good"], INSPECT["bad"], INSPECT["plain"]], SERVICES, elapsed=16)
    by_summary = health_report(SUMMARY, SERVICES, elapsed=16)
    for key in ("ready", "done", "late", "waiting", "services"):
        assert by_summary[key] == by_inspect[key]


def test_report_takes_elapsed_as_text():
    assert health_report([inspect("bad")], {"bad": SERVICES["bad"]}, elapsed="15.2")["late"] == ["bad"]


def test_plan_of_no_containers_gives_the_deadline():
    assert health_report([], SERVICES, elapsed=0)["deadline"] == 120
    assert health_report([], SERVICES, only=["bad"], elapsed=0)["deadline"] == 15


# --------------------------------------------------------------------------
# routes and rendering
# --------------------------------------------------------------------------
def test_route_outcomes_from_uri_loop_results():
    results = [
        {"status": 401, "ansible_loop_var": "r", "r": {"path": "/v1/", "service": "gateway"}},
        {"status": 502, "ansible_loop_var": "r", "r": {"path": "/login", "service": "auth"}},
        {"status": -1, "msg": "Request failed: Connection refused", "item": {"path": "/x", "service": "gateway"}},
        {"skipped": True, "item": {"path": "/y", "service": "gateway"}},
    ]
    assert [(o["path"], o["reachable"], o["detail"]) for o in route_outcomes(results)] == [
        ("/v1/", True, ""),
        ("/login", False, "HTTP 502"),
        ("/x", False, "Request failed: Connection refused"),
    ]


def test_health_table_aligns_columns():
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], SERVICES)
    assert health_table(report) == [
        "SERVICE  IMAGE TAG  STATE    HEALTH     TIME TO HEALTHY (s)",
        "bad      9.9.9-bad  running  unhealthy  -",
        "good     1.0.0      running  healthy    3.3",
        "plain    1.0.0      running  -          -",
    ]


def test_health_table_appends_the_routes():
    report = health_report([inspect("good")], {"good": SERVICES["good"]})
    lines = health_table(
        report, [{"path": "/v1/", "service": "good", "status": 404}, {"path": "/a", "service": "good"}]
    )
    assert lines[2:] == [
        "",
        "ROUTE  SERVICE  STATUS  RESULT",
        "/v1/   good     404     reachable",
        "/a     good     -       DOWN",
    ]


def test_health_table_refuses_something_else():
    with pytest.raises(HealthError):
        health_table({"ready": True})


def test_failure_message_names_the_late_service_with_its_probe_and_logs():
    report = health_report([inspect("good"), inspect("bad"), inspect("plain")], SERVICES)
    logs = [
        {
            "rc": 0,
            "stdout": BAD_LOGS,
            "stderr": "2026-11-23T12:48:15.900000000Z Traceback: boom",
            "ansible_loop_var": "c",
            "c": report["unhealthy"][0],
        }
    ]
    message = failure_message(report, logs, lines=3, project="h-health-fixture")
    assert message.splitlines()[:6] == [
        "project 'h-health-fixture': 1 service not healthy in time: bad",
        "",
        "bad: 0 of 1 container healthy (timeout 15 s)",
        "  h-health-fixture-bad-1 (9.9.9-bad): state running, health unhealthy",
        "    last health check: exit 22: curl: (22) The requested URL returned error: 503",
        "    last 3 log lines:",
    ]
    # stdout and stderr merged in time order, docker's timestamps dropped, the last 3 kept.
    assert message.splitlines()[6:] == [
        "      Traceback: boom",
        '      2026-11-23T12:48:16.429456Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -',
        '      2026-11-23T12:48:17.523040Z bad 127.0.0.1 "GET /actuator/health HTTP/1.1" 503 -',
    ]
    assert "good" not in message.replace("h-health-fixture", "")


def test_failure_message_reports_a_failed_log_read():
    report = health_report([inspect("bad")], {"bad": SERVICES["bad"]})
    logs = {report["unhealthy"][0]["id"]: {"rc": 1, "stderr": "Error: No such container: abc"}}
    assert "(docker logs failed: Error: No such container: abc)" in failure_message(report, logs)


def test_failure_message_says_when_no_container_exists():
    report = health_report([], {"bad": SERVICES["bad"]})
    assert "no container of this service exists in the project" in failure_message(report)


def test_failure_message_lists_routes_that_are_down():
    report = health_report([inspect("good")], {"good": SERVICES["good"]})
    message = failure_message(report, routes=[{"path": "/v1/", "service": "good", "status": 503}])
    assert message == "1 route not reachable through Nginx:\n  /v1/ -> good: HTTP 503"


def test_failure_message_is_empty_when_all_is_well():
    report = health_report([inspect("good")], {"good": SERVICES["good"]})
    assert failure_message(report, [], [{"path": "/v1/", "service": "good", "status": 200}]) == ""


def test_fixtures_are_what_docker_reported():
    # Guard against edits to the copied output: ids and times must stay Docker's own.
    assert json.dumps(INSPECT["good"]["State"]["Health"]["Log"][2]).startswith(
        '{"Start": "2026-11-23T12:47:58.705273301Z"'
    )
