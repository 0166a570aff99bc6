# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Readiness of a running compose project, decided from what Docker reports.

The ``stack_health`` role polls Docker and hands what it got to the filters in
``plugins/filter/health.py``, which call the functions here. This file imports
nothing from Ansible.

Container information comes in one of two shapes, and every function here
accepts both:

* **inspect** (``docker inspect``, ``community.docker.docker_container_info``'s
  ``container``): ``State`` is a mapping with ``Status``, ``StartedAt`` and, for a
  container with a healthcheck, ``Health`` (``Status``, ``Log``); labels and the
  image reference are under ``Config``.
* **summary** (``docker ps``, ``community.docker.docker_host_info`` with
  ``verbose_output: true``): ``State`` is a string, the health is only in the
  human ``Status`` text (``"Up 5 seconds (healthy)"``), labels are top-level.
  Cheap to poll; it carries no health log, so no time to healthy.

Readiness (decision):

* The selected services are the enabled services of the catalog, narrowed to
  ``only`` when that is not empty.
* A container counts when it is running and either healthy or without a
  healthcheck at all (running is then all Docker can say).
* A service is ready when at least ``replicas`` of its containers count. More
  may exist (a start-first swap runs 2N for a while); that is fine.
* Deadlines are per service: a service that is not ready is *late* once the
  time spent waiting reaches its own ``health.timeout``, and *waiting* before.
  Waiting is *done* when every service is ready or every service that is not is
  late. Without an elapsed time (the final verdict) every service that is not
  ready is late.
* One-off containers (``docker compose run``) are ignored.

Time to healthy (decision): Docker does not record when a container became
healthy; it keeps only the last five probe results (``Health.Log``). The time
to healthy is the end of the first successful probe of the current run minus
``State.StartedAt``, given only while the container is healthy, and only when
that probe is known to be the first success:

* nothing of this run has been dropped from the log (fewer than five entries,
  an entry older than the start is still there, or the oldest entry began too
  soon after the start for an earlier probe to fit), or
* the retained log of this run begins with a failure, so the success after it
  is the change to healthy (it assumes the service did not flap from healthy
  back to failing before the retained window, which the log cannot show).

Otherwise it is unknown (``None``, shown as ``-``), typically for a container
that has been healthy for longer than five probe intervals.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import start_waves, validate_services

__all__ = [
    "HEALTH_LOG_SIZE",
    "HealthError",
    "container_record",
    "failure_message",
    "health_report",
    "health_table",
    "image_tag",
    "parse_time",
    "route_outcomes",
    "time_to_healthy",
]

# moby keeps this many probe results in State.Health.Log (maxLogEntries).
HEALTH_LOG_SIZE = 5
# Docker's defaults when a healthcheck leaves interval or start_interval unset.
DEFAULT_PROBE_INTERVAL = 30.0
DEFAULT_START_INTERVAL = 5.0

LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"
LABEL_ONEOFF = "com.docker.compose.oneoff"

# "Up 3 minutes (healthy)", "Up 2 seconds (health: starting)", "Up 1 hour (unhealthy)".
_STATUS_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_TIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")
# A line of `docker logs --timestamps`: RFC 3339 with nanoseconds, a space, the line.
_LOG_STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) ?(.*)$")

NO_VALUE = "-"


class HealthError(ValueError):
    """The request cannot be answered (an unknown service in ``only``, bad input)."""


# --------------------------------------------------------------------------
# reading Docker's values
# --------------------------------------------------------------------------
def parse_time(value: Any) -> Optional[datetime.datetime]:
    """An aware datetime from Docker's RFC 3339 time (nanoseconds allowed).

    ``None`` for anything else, including Go's zero time (``0001-01-01T00:00:00Z``),
    which Docker reports for "never".
    """
    if not isinstance(value, str):
        return None
    match = _TIME.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) <= 1:
        return None
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zone == "Z":
        tz = datetime.timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=tz)
    except ValueError:
        return None


def image_tag(reference: Any) -> str:
    """The tag of an image reference, as the table shows it.

    ``registry:5000/team/app:1.2.3`` gives ``1.2.3``; no tag gives ``latest``; a
    digest reference gives its first 12 hex digits (``sha256:0123456789ab``); a
    bare image ID (what ``docker ps`` shows once the tag has moved) likewise.
    """
    if not isinstance(reference, str) or not reference:
        return NO_VALUE
    name, _, digest = reference.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last and not name.startswith("sha256:"):
        return last.split(":", 1)[1]
    if digest or name.startswith("sha256:"):
        algo, _, hexa = (digest or name).partition(":")
        return "{0}:{1}".format(algo, hexa[:12])
    return "latest"


def _seconds(nanoseconds: Any, default: float) -> float:
    if isinstance(nanoseconds, int) and not isinstance(nanoseconds, bool) and nanoseconds > 0:
        return nanoseconds / 1e9
    return default


def _probe_spacing(config: Mapping[str, Any]) -> float:
    """The shortest time between two probes this healthcheck allows, in seconds."""
    check = config.get("Healthcheck") if isinstance(config, Mapping) else None
    if not isinstance(check, Mapping):
        return DEFAULT_PROBE_INTERVAL
    spacing = _seconds(check.get("Interval"), DEFAULT_PROBE_INTERVAL)
    if _seconds(check.get("StartPeriod"), 0.0) > 0:
        spacing = min(spacing, _seconds(check.get("StartInterval"), DEFAULT_START_INTERVAL))
    return spacing


def _probes(health: Mapping[str, Any]) -> List[Tuple[datetime.datetime, Optional[datetime.datetime], Any, str]]:
    probes = []
    for entry in health.get("Log") or []:
        if not isinstance(entry, Mapping):
            continue
        start = parse_time(entry.get("Start"))
        if start is None:
            continue
        output = entry.get("Output")
        probes.append(
            (start, parse_time(entry.get("End")), entry.get("ExitCode"), output if isinstance(output, str) else "")
        )
    probes.sort(key=lambda probe: probe[0])
    return probes


def time_to_healthy(info: Mapping[str, Any]) -> Optional[float]:
    """Seconds from the container's start to its first successful probe, when knowable.

    Takes inspect-shaped information; see the module docstring for when the
    answer is known. Rounded to 0.1 s.
    """
    state = info.get("State") if isinstance(info, Mapping) else None
    if not isinstance(state, Mapping):
        return None
    health = state.get("Health")
    started = parse_time(state.get("StartedAt"))
    if not isinstance(health, Mapping) or started is None or health.get("Status") != "healthy":
        return None
    probes = _probes(health)
    current = [probe for probe in probes if probe[0] >= started]
    first_ok = next((i for i, probe in enumerate(current) if probe[2] == 0), None)
    if first_ok is None:
        return None
    nothing_dropped = (
        len(probes) < HEALTH_LOG_SIZE
        or len(current) < len(probes)
        or (current[0][0] - started).total_seconds() < 2 * _probe_spacing(info.get("Config") or {})
    )
    if not (nothing_dropped or first_ok > 0):
        return None
    start, end, _, _ = current[first_ok]
    return round(max(((end or start) - started).total_seconds(), 0.0), 1)


def container_record(info: Mapping[str, Any]) -> Dict[str, Any]:
    """One container, from inspect or summary information, in the shape the report uses.

    Keys: ``id``, ``name`` (without the leading slash), ``service`` and ``number``
    (compose labels; ``None`` when absent), ``oneoff``, ``image`` (reference),
    ``tag``, ``state`` (``running``, ``exited``, ...), ``health`` (``healthy``,
    ``unhealthy``, ``starting`` or ``None`` without a healthcheck), ``started_at``,
    ``time_to_healthy`` (seconds or ``None``) and ``last_probe`` (``{exit_code,
    output}`` of the newest probe, or ``None``).
    """
    if not isinstance(info, Mapping):
        raise HealthError("container information must be a mapping, got {0}".format(type(info).__name__))
    state = info.get("State")
    config = info.get("Config") if isinstance(info.get("Config"), Mapping) else {}
    labels = config.get("Labels") if isinstance(state, Mapping) else info.get("Labels")
    labels = labels if isinstance(labels, Mapping) else {}

    health: Optional[str] = None
    last_probe: Optional[Dict[str, Any]] = None
    started_at: Optional[str] = None
    if isinstance(state, Mapping):  # inspect
        status = state.get("Status") or NO_VALUE
        name = info.get("Name") or ""
        image = config.get("Image") or info.get("Image")
        started_at = state.get("StartedAt") if parse_time(state.get("StartedAt")) else None
        block = state.get("Health")
        if isinstance(block, Mapping) and block.get("Status") not in (None, "", "none"):
            health = str(block["Status"])
            probes = _probes(block)
            if probes:
                last_probe = {"exit_code": probes[-1][2], "output": probes[-1][3].strip()}
        ttl = time_to_healthy(info) if status == "running" else None
    else:  # summary
        status = state if isinstance(state, str) and state else NO_VALUE
        names = info.get("Names")
        name = names[0] if isinstance(names, list) and names else ""
        image = info.get("Image")
        block = info.get("Health")  # Docker 29 and later also report it here
        if isinstance(block, Mapping) and block.get("Status") not in (None, "", "none"):
            health = str(block["Status"])
        else:
            found = _STATUS_HEALTH.search(info.get("Status") or "")
            if found:
                health = "starting" if found.group(1) == "health: starting" else found.group(1)
        ttl = None

    number = labels.get(LABEL_NUMBER)
    try:
        number = int(number) if number is not None else None
    except (TypeError, ValueError):
        number = None
    return {
        "id": info.get("Id") or info.get("ID"),
        "name": str(name).lstrip("/"),
        "service": labels.get(LABEL_SERVICE),
        "number": number,
        "oneoff": str(labels.get(LABEL_ONEOFF, "False")).lower() == "true",
        "image": image,
        "tag": image_tag(image),
        "state": str(status),
        "health": health,
        "started_at": started_at,
        "time_to_healthy": ttl,
        "last_probe": last_probe,
    }


def _counts(record: Mapping[str, Any]) -> bool:
    return record["state"] == "running" and record["health"] in (None, "healthy")


# --------------------------------------------------------------------------
# the report
# --------------------------------------------------------------------------
def _selected(services: Any, only: Any) -> Dict[str, Dict[str, Any]]:
    normalised = validate_services(services)
    enabled = {name: svc for name, svc in normalised.items() if svc["enabled"] is True}
    if only is None or only == "":
        only = []
    if isinstance(only, str) or not isinstance(only, (list, tuple)):
        raise HealthError("only must be a list of service names, got {0!r}".format(only))
    unknown = [name for name in only if name not in normalised]
    disabled = [name for name in only if name in normalised and name not in enabled]
    problems = []
    if unknown:
        problems.append("not in the catalog: {0}".format(", ".join(sorted(map(str, unknown)))))
    if disabled:
        problems.append("disabled in the catalog: {0}".format(", ".join(sorted(disabled))))
    if problems:
        raise HealthError("cannot check the services asked for; {0}".format("; ".join(problems)))
    # Start order (databases first, the gateway last), as the deployment guide lists them.
    order = [name for wave in start_waves(normalised) for name in wave]
    return {name: enabled[name] for name in order if not only or name in only}


def _row(
    name: str, record: Optional[Mapping[str, Any]], state: str = "", health: Optional[str] = None
) -> Dict[str, Any]:
    if record is None:
        return {
            "service": name,
            "container": None,
            "id": None,
            "tag": NO_VALUE,
            "state": state,
            "health": health or NO_VALUE,
            "time_to_healthy": None,
            "counts": False,
        }
    return {
        "service": name,
        "container": record["name"],
        "id": record["id"],
        "tag": record["tag"],
        "state": record["state"],
        "health": record["health"] or NO_VALUE,
        "time_to_healthy": record["time_to_healthy"],
        "counts": _counts(record),
    }


def health_report(containers: Any, services: Any, only: Any = None, elapsed: Optional[float] = None) -> Dict[str, Any]:
    """Decide whether the selected services are ready; see the module docstring.

    ``containers`` is a list of inspect or summary mappings (``None`` entries,
    left by containers that vanished between listing and inspecting, are
    skipped). ``services`` is ``stack_services``, raw or normalised. ``elapsed``
    is the seconds spent waiting so far, or ``None`` for the final verdict.

    Returns ``ready``, ``done``, ``late`` and ``waiting`` (service names),
    ``deadline`` (the largest timeout of the selected services), ``services``
    (name -> ``want``, ``have``, ``containers``, ``timeout``, ``ready``,
    ``late``), ``rows`` (one per container, services in start order, names
    sorted within a start wave, replicas by number; a service short of
    containers gets a row with state ``missing``) and ``unhealthy`` (the
    containers of late services that do not count, with their last probe).
    """
    selected = _selected(services, only)
    if containers is None:
        containers = []
    if not isinstance(containers, (list, tuple)):
        raise HealthError("containers must be a list, got {0}".format(type(containers).__name__))
    if elapsed is not None and (isinstance(elapsed, bool) or not isinstance(elapsed, (int, float))):
        try:
            elapsed = float(elapsed)
        except (TypeError, ValueError):
            raise HealthError("elapsed must be a number of seconds, got {0!r}".format(elapsed)) from None

    by_service: Dict[str, List[Dict[str, Any]]] = {name: [] for name in selected}
    for info in containers:
        if info is None:
            continue
        record = container_record(info)
        if record["oneoff"] or record["service"] not in by_service:
            continue
        by_service[record["service"]].append(record)

    report_services: Dict[str, Dict[str, Any]] = {}
    rows: List[Dict[str, Any]] = []
    late: List[str] = []
    waiting: List[str] = []
    unhealthy: List[Dict[str, Any]] = []
    for name, svc in selected.items():
        records = sorted(by_service[name], key=lambda r: (r["number"] is None, r["number"] or 0, r["name"]))
        want = svc["replicas"]
        have = sum(1 for r in records if _counts(r))
        timeout = (svc.get("health") or {}).get("timeout") or 0
        ready = have >= want
        is_late = not ready and (elapsed is None or elapsed >= timeout)
        if not ready:
            (late if is_late else waiting).append(name)
        if is_late:
            unhealthy.extend(dict(r, service_name=name) for r in records if not _counts(r))
        label_numbers = len(records) > 1 or want > 1
        for record in records:
            shown = name
            if label_numbers:
                shown = "{0}#{1}".format(name, record["number"] if record["number"] is not None else "?")
            rows.append(_row(shown, record))
        if len(records) < want:
            missing = want - len(records)
            rows.append(_row(name, None, "missing" if not records else "{0} missing".format(missing)))
        report_services[name] = {
            "want": want,
            "have": have,
            "containers": len(records),
            "timeout": timeout,
            "ready": ready,
            "late": is_late,
        }
    return {
        "ready": not late and not waiting,
        "done": not waiting,
        "late": late,
        "waiting": waiting,
        "deadline": max((s["timeout"] for s in report_services.values()), default=0),
        "services": report_services,
        "rows": rows,
        "unhealthy": unhealthy,
    }


# --------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------
def route_outcomes(results: Any) -> List[Dict[str, Any]]:
    """Route probes as ``{path, service, status, reachable, detail}``.

    Takes either such mappings (``path``, ``service``, ``status``) or the
    ``results`` of an ``ansible.builtin.uri`` task looped over routes (the route
    is the loop variable). Reachable: any HTTP status below 500; 5xx means the
    upstream is down, no status (``-1``) means nothing answered.
    """
    if results is None:
        return []
    if not isinstance(results, (list, tuple)):
        raise HealthError("route results must be a list, got {0}".format(type(results).__name__))
    outcomes = []
    for result in results:
        if not isinstance(result, Mapping):
            continue
        route = result
        if "path" not in result:
            loop_var = result.get("ansible_loop_var") or "item"
            route = result.get(loop_var) if isinstance(result.get(loop_var), Mapping) else {}
        if result.get("skipped"):
            continue
        status = result.get("status")
        status = status if isinstance(status, int) and not isinstance(status, bool) else -1
        reachable = 100 <= status < 500
        detail = ""
        if not reachable:
            detail = str(result.get("msg") or "") if status < 100 else "HTTP {0}".format(status)
        outcomes.append(
            {
                "path": route.get("path"),
                "service": route.get("service"),
                "status": status,
                "reachable": reachable,
                "detail": detail,
            }
        )
    return outcomes


# --------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> List[str]:
    rows = [list(header)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]


def _fmt_seconds(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "{0:.1f}".format(value)
    return NO_VALUE


def health_table(report: Mapping[str, Any], routes: Any = None) -> List[str]:
    """The summary table: one line per container, then the routes when given."""
    if not isinstance(report, Mapping) or not isinstance(report.get("rows"), list):
        raise HealthError("health_table needs the result of health_report")
    lines = _table(
        ("SERVICE", "IMAGE TAG", "STATE", "HEALTH", "TIME TO HEALTHY (s)"),
        (
            (
                str(row["service"]),
                str(row["tag"]),
                str(row["state"]),
                str(row["health"]),
                _fmt_seconds(row["time_to_healthy"]),
            )
            for row in report["rows"]
        ),
    )
    if not report["rows"]:
        lines.append("(no service selected)")
    outcomes = route_outcomes(routes)
    if outcomes:
        lines.append("")
        lines.extend(
            _table(
                ("ROUTE", "SERVICE", "STATUS", "RESULT"),
                (
                    (
                        str(o["path"]),
                        str(o["service"]),
                        str(o["status"]) if o["status"] >= 0 else NO_VALUE,
                        "reachable" if o["reachable"] else "DOWN",
                    )
                    for o in outcomes
                ),
            )
        )
    return lines


def _log_lines(result: Mapping[str, Any], limit: int) -> List[str]:
    """The last ``limit`` lines of ``docker logs --timestamps``, stdout and stderr merged in time order."""
    if result.get("rc") not in (0, None):
        reason = (str(result.get("stderr") or "") or str(result.get("msg") or "")).strip()
        return ["(docker logs failed: {0})".format(reason or "exit code {0}".format(result.get("rc")))]
    stamped: List[Tuple[str, int, str]] = []
    order = 0
    for stream in ("stdout", "stderr"):
        text = result.get(stream) or ""
        for line in str(text).splitlines():
            match = _LOG_STAMP.match(line)
            stamp, body = (match.group(1), match.group(2)) if match else ("", line)
            when = parse_time(stamp)
            key = when.astimezone(datetime.timezone.utc).isoformat() if when else ""
            stamped.append((key, order, body))
            order += 1
    stamped.sort(key=lambda item: (item[0], item[1]))
    lines = [body for _, _, body in stamped]
    return lines[-limit:] if limit > 0 else lines


def _logs_by_container(logs: Any) -> Dict[str, Mapping[str, Any]]:
    found: Dict[str, Mapping[str, Any]] = {}
    if logs is None:
        return found
    if isinstance(logs, Mapping):
        return {str(k): (v if isinstance(v, Mapping) else {"stdout": v}) for k, v in logs.items()}
    if not isinstance(logs, (list, tuple)):
        raise HealthError("logs must be a list of command results or a mapping, got {0}".format(type(logs).__name__))
    for result in logs:
        if not isinstance(result, Mapping):
            continue
        key = result.get("id")
        if key is None:
            loop_item = result.get(result.get("ansible_loop_var") or "item")
            key = loop_item.get("id") if isinstance(loop_item, Mapping) else loop_item
        if key is not None:
            found[str(key)] = result
    return found


def failure_message(
    report: Mapping[str, Any], logs: Any = None, routes: Any = None, lines: int = 20, project: Optional[str] = None
) -> str:
    """The message the role fails with: each late service, its containers and their last log lines.

    ``logs`` holds ``docker logs --tail N --timestamps <id>`` results, either as
    the ``results`` of a command task looped over the report's ``unhealthy``
    containers or as a mapping container id -> result (or text). Unreachable
    routes follow the services.
    """
    if not isinstance(report, Mapping) or "late" not in report:
        raise HealthError("health_failure needs the result of health_report")
    by_id = _logs_by_container(logs)
    where = "project {0!r}: ".format(project) if project else ""
    out: List[str] = []
    late = list(report.get("late") or []) + list(report.get("waiting") or [])
    if late:
        out.append(
            "{0}{1} service{2} not healthy in time: {3}".format(
                where, len(late), "" if len(late) == 1 else "s", ", ".join(late)
            )
        )
    for name in late:
        info = report["services"][name]
        out.append("")
        out.append(
            "{0}: {1} of {2} container{3} healthy (timeout {4} s)".format(
                name, info["have"], info["want"], "" if info["want"] == 1 else "s", info["timeout"]
            )
        )
        containers = [c for c in report.get("unhealthy") or [] if c.get("service_name") == name]
        if not containers and info["containers"] == 0:
            out.append("  no container of this service exists in the project")
        for container in containers:
            out.append(
                "  {0} ({1}): state {2}, health {3}".format(
                    container["name"], container["tag"], container["state"], container["health"] or NO_VALUE
                )
            )
            probe = container.get("last_probe")
            if probe:
                out.append(
                    "    last health check: exit {0}: {1}".format(probe["exit_code"], probe["output"] or "(no output)")
                )
            result = by_id.get(str(container["id"]))
            if result is None:
                continue
            log_lines = _log_lines(result, lines)
            out.append("    last {0} log line{1}:".format(len(log_lines), "" if len(log_lines) == 1 else "s"))
            out.extend("      " + line for line in log_lines)
    down = [o for o in route_outcomes(routes) if not o["reachable"]]
    if down:
        if out:
            out.append("")
        out.append(
            "{0}{1} route{2} not reachable through Nginx:".format(
                where if not late else "", len(down), "" if len(down) == 1 else "s"
            )
        )
        out.extend("  {0} -> {1}: {2}".format(o["path"], o["service"], o["detail"]) for o in down)
    return "\n".join(out)
