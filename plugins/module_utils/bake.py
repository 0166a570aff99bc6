# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The bake window: judging a live release by the traffic host Nginx sent it.

After a change puts new containers of a public service behind Nginx and the stack passed its
health checks, the release is watched for a while (the bake window, as ECS and CodeDeploy call
it) before it is recorded as good. The facts come from Nginx's own log of that traffic
(``nginx_upstream_log``: one JSON object per proxied request, written by the site the nginx
role renders)::

    {"time": 1764590000.123, "upstream": "127.0.0.1:32771", "status": 200,
     "upstream_status": "200", "upstream_time": "0.004", "request_time": 0.004}

``upstream`` and ``upstream_time`` list one value per upstream server Nginx tried, separated by
", " (and " : " across internal redirects); the last one answered. Only requests whose last
server is one of the new release's addresses count, so the old containers' last requests and
other services' traffic never do.

Figures of a service over the window (the names Flagger and Argo Rollouts use):

* ``requests``: requests answered by the new release;
* ``errors``: those whose answer to the client was a 5xx (``status``);
* ``success_rate``: the share of the others, in percent (100 with no request);
* ``p99_ms``: the 99th percentile (nearest rank) of the upstream response time, in ms.

Thresholds (per service: the catalog's ``bake``, over the stack's ``stack_bake_*`` values; the
defaults are Flagger's): ``min_success_rate`` (percent, 99), ``max_p99_ms`` (500),
``min_requests`` (20: fewer requests are too few to judge; the window then ends ``unjudged``,
which keeps the release) and ``seconds`` (the window; 0 means no bake).

A service fails as soon as it has ``min_requests`` and breaks a threshold, so a bad release
is taken back before the window ends; it passes only once its whole window has run.
This file imports nothing from Ansible.
"""

from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = ["BAKE_DEFAULTS", "BakeError", "Watch", "figures", "judge", "parse_entry", "settings", "summary"]

# Flagger's defaults for its request-success-rate and request-duration checks; 60 s of watching.
BAKE_DEFAULTS: Dict[str, Any] = {"seconds": 60, "min_requests": 20, "min_success_rate": 99.0, "max_p99_ms": 500}

PASSED, FAILED, UNJUDGED, WATCHING = "passed", "failed", "unjudged", "watching"


class BakeError(ValueError):
    """Bad input (a threshold of the wrong type, a service without addresses)."""


def _last(value: Any) -> str:
    """The last of Nginx's list of values ("a, b : c" -> "c")."""
    return str(value).replace(" : ", ", ").split(", ")[-1].strip()


def parse_entry(line: str) -> Optional[Dict[str, Any]]:
    """One request of the upstream log: ``{time, address, status, ms}``; None for a line that is not one.

    ``address`` is the server that answered last; ``ms`` its response time in milliseconds
    (None when Nginx got no answer: ``-``)."""
    try:
        raw = json.loads(line)
        status = int(raw["status"])
        when = float(raw["time"])
    except (ValueError, TypeError, KeyError):
        return None
    if not isinstance(raw, dict):
        return None
    address = _last(raw.get("upstream", ""))
    try:
        ms: Optional[float] = float(_last(raw.get("upstream_time", ""))) * 1000.0
    except ValueError:
        ms = None
    return {"time": when, "address": address, "status": status, "ms": ms}


def settings(services: Iterable[str], catalog: Mapping[str, Mapping[str, Any]], stack: Mapping[str, Any],
             seconds: Optional[int] = None) -> Dict[str, Dict[str, Any]]:
    """The bake window and thresholds of each service: the run's ``seconds`` over the catalog's
    ``bake`` of the service over the stack's values over BAKE_DEFAULTS. Raises BakeError naming a
    value of the wrong type."""
    out = {}
    for name in services:
        merged = dict(BAKE_DEFAULTS)
        merged.update({k: v for k, v in (stack or {}).items() if k in BAKE_DEFAULTS and v is not None})
        merged.update((catalog.get(name) or {}).get("bake") or {})
        if seconds is not None:
            merged["seconds"] = seconds
        for key, default in BAKE_DEFAULTS.items():
            value = merged[key]
            try:
                number = None if isinstance(value, bool) else float(value)
            except (TypeError, ValueError):
                number = None
            if number is None or number < 0 or (isinstance(default, int) and number != int(number)):
                raise BakeError("the bake {0} of {1} must be {2} >= 0, got {3!r}".format(
                    key, name, "a whole number" if isinstance(default, int) else "a number", value))
            merged[key] = type(default)(number)
        out[name] = merged
    return out


def figures(entries: Iterable[Mapping[str, Any]], addresses: Sequence[str]) -> Dict[str, Any]:
    """requests, errors, success_rate (percent, 1 decimal) and p99_ms of the entries a release answered."""
    mine = set(addresses)
    statuses, times = [], []
    for entry in entries:
        if entry["address"] in mine:
            statuses.append(entry["status"])
            if entry["ms"] is not None:
                times.append(entry["ms"])
    requests = len(statuses)
    errors = sum(1 for s in statuses if s >= 500)
    rate = 100.0 if not requests else round(100.0 * (requests - errors) / requests, 1)
    p99 = None
    if times:
        times.sort()
        p99 = int(round(times[max(0, math.ceil(0.99 * len(times)) - 1)]))
    return {"requests": requests, "errors": errors, "success_rate": rate, "p99_ms": p99}


def judge(figs: Mapping[str, Any], limits: Mapping[str, Any], done: bool) -> Tuple[str, List[str]]:
    """(verdict, reasons): failed as soon as there are enough requests and a threshold is broken;
    passed or unjudged (too few requests) once the window is ``done``; watching before."""
    if figs["requests"] < limits["min_requests"]:
        if done:
            return UNJUDGED, ["{0} requests, fewer than the {1} needed to judge".format(figs["requests"], limits["min_requests"])]
        return WATCHING, []
    reasons = []
    if figs["success_rate"] < limits["min_success_rate"]:
        reasons.append("success rate {0} % ({1} of {2} requests answered 5xx), below {3} %".format(
            figs["success_rate"], figs["errors"], figs["requests"], limits["min_success_rate"]))
    if figs["p99_ms"] is not None and figs["p99_ms"] > limits["max_p99_ms"]:
        reasons.append("p99 latency {0} ms, above {1} ms".format(figs["p99_ms"], limits["max_p99_ms"]))
    if reasons:
        return FAILED, reasons
    return (PASSED if done else WATCHING), []


class Watch:
    """The upstream log read from a starting offset on, as it grows (a log rotated or truncated
    under it is read again from its start)."""

    def __init__(self, path: str, offset: int) -> None:
        self.path, self.offset, self.partial = path, offset, b""
        self.entries: List[Dict[str, Any]] = []

    def read(self) -> None:
        """Add the requests written since the last read."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(0, 2)
                if handle.tell() < self.offset:
                    self.offset, self.partial = 0, b""
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            entry = parse_entry(line.decode("utf-8", "replace"))
            if entry is not None:
                self.entries.append(entry)


def summary(service: str, result: Mapping[str, Any]) -> str:
    """One line for an operator: what the bake of a service found."""
    figs = "{0} requests, success rate {1} %, p99 {2}".format(
        result["requests"], result["success_rate"], "-" if result["p99_ms"] is None else "{0} ms".format(result["p99_ms"]))
    if result["verdict"] == FAILED:
        return "{0} failed its bake after {1} s: {2}".format(service, result["watched"], "; ".join(result["reasons"]))
    if result["verdict"] == UNJUDGED:
        return "{0} baked {1} s, not judged: {2} ({3})".format(service, result["watched"], "; ".join(result["reasons"]), figs)
    return "{0} passed its bake of {1} s: {2}".format(service, result["watched"], figs)
