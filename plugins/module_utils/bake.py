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

Thresholds (per service: the catalog's ``bake``, over the stack's ``stack_bake`` values; the
rates are Flagger's defaults): ``min_success_rate`` (percent, 99), ``max_p99_ms`` (500),
``min_requests`` (50: fewer requests are too few to judge; the window then ends ``unjudged``,
which keeps the release) and ``seconds`` (the window; 0 means no bake). A 99th percentile needs
100 timed requests (``P99_SAMPLES``); with fewer, latency is not judged, so one slow first request
(a cold JIT, a new connection pool) never fails a release.

A service that breaks a threshold on ``FAILED_CHECKS`` (3) checks in a row fails at once, so a bad
release is taken back long before its window ends while a blip (one 502 among the first
requests) is not; at the end of the window, breaking a threshold fails it. It passes only once its
whole window has run.
This file imports nothing from Ansible.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import BAKE_FIELDS

__all__ = ["BAKE_DEFAULTS", "BakeError", "Judge", "Watch", "figures", "judge", "parse_entry", "settings", "summary"]

# Flagger's defaults for its request-success-rate and request-duration checks; 60 s of watching.
BAKE_DEFAULTS: Dict[str, Any] = {"seconds": 60, "min_requests": 50, "min_success_rate": 99.0, "max_p99_ms": 500}
# The least value of each (a window of 0 s is no bake): the catalog's own bounds for a service's bake.
BAKE_LEAST: Dict[str, Any] = {key: least for key, (_, least) in BAKE_FIELDS.items()}
# Timed requests a 99th percentile needs; checks in a row that must fail before the window ends.
P99_SAMPLES = 100
FAILED_CHECKS = 3

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
            least = BAKE_LEAST[key]
            if (number is None or number < least or (isinstance(default, int) and number != int(number))
                    or (key == "min_success_rate" and number > 100)):
                raise BakeError("the bake {0} of {1} must be {2} >= {3}{4}, got {5!r}".format(
                    key, name, "a whole number" if isinstance(default, int) else "a number", least,
                    " and <= 100 (percent)" if key == "min_success_rate" else "", value))
            merged[key] = type(default)(number)
        out[name] = merged
    return out


def figures(entries: Iterable[Mapping[str, Any]], addresses: Sequence[str]) -> Dict[str, Any]:
    """requests, errors, success_rate (percent, 2 decimals, for display), p99_ms (None under
    P99_SAMPLES timed requests) and timed (their number) of the entries a release answered."""
    mine = set(addresses)
    statuses, times = [], []
    for entry in entries:
        if entry["address"] in mine:
            statuses.append(entry["status"])
            if entry["ms"] is not None:
                times.append(entry["ms"])
    requests = len(statuses)
    errors = sum(1 for s in statuses if s >= 500)
    rate = 100.0 if not requests else round(100.0 * (requests - errors) / requests, 2)
    p99 = None
    if len(times) >= P99_SAMPLES:
        times.sort()
        p99 = int(round(times[math.ceil(0.99 * len(times)) - 1]))
    return {"requests": requests, "errors": errors, "success_rate": rate, "p99_ms": p99, "timed": len(times)}


def judge(figs: Mapping[str, Any], limits: Mapping[str, Any], done: bool) -> Tuple[str, List[str]]:
    """(verdict, reasons) of one check: failed when there are enough requests and a threshold is
    broken; passed or unjudged (too few requests) once the window is ``done``; watching before.
    The success rate is compared unrounded (1 error in 2500 is below 100 %)."""
    if figs["requests"] < limits["min_requests"]:
        if done:
            return UNJUDGED, ["{0} requests, fewer than the {1} needed to judge".format(figs["requests"], limits["min_requests"])]
        return WATCHING, []
    reasons = []
    if 100.0 * (figs["requests"] - figs["errors"]) < limits["min_success_rate"] * figs["requests"]:
        reasons.append("success rate {0} % ({1} of {2} requests answered 5xx), below {3} %".format(
            figs["success_rate"], figs["errors"], figs["requests"], limits["min_success_rate"]))
    if figs["p99_ms"] is not None and figs["p99_ms"] > limits["max_p99_ms"]:
        reasons.append("p99 latency {0} ms, above {1} ms".format(figs["p99_ms"], limits["max_p99_ms"]))
    if reasons:
        return FAILED, reasons
    return (PASSED if done else WATCHING), []


class Judge:
    """The verdict of one service over its window, check after check: a broken threshold fails it
    once it was broken on FAILED_CHECKS checks in a row, or when the window is done."""

    def __init__(self, limits: Mapping[str, Any]) -> None:
        self.limits, self.strikes = limits, 0

    def check(self, figs: Mapping[str, Any], done: bool) -> Tuple[str, List[str]]:
        verdict, reasons = judge(figs, self.limits, done)
        self.strikes = self.strikes + 1 if verdict == FAILED else 0
        if verdict == FAILED and not done and self.strikes < FAILED_CHECKS:
            return WATCHING, reasons
        return verdict, reasons


class Watch:
    """The upstream log read from a starting offset on, as it grows (a log rotated or truncated
    under it is read again from its start)."""

    def __init__(self, path: str, offset: int) -> None:
        self.path, self.offset, self.partial = path, offset, b""
        self.entries: List[Dict[str, Any]] = []
        self.inode = self._inode()

    def _inode(self) -> Optional[int]:
        try:
            return os.stat(self.path).st_ino
        except OSError:
            return None

    def read(self) -> None:
        """Add the requests written since the last read. A log renamed away (logrotate) is
        followed to its new file from its start; the lines the old one got after the last read are lost."""
        try:
            with open(self.path, "rb") as handle:
                inode = os.fstat(handle.fileno()).st_ino
                handle.seek(0, 2)
                if handle.tell() < self.offset or inode != self.inode:
                    self.offset, self.partial, self.inode = 0, b"", inode
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
    p99 = "{0} ms".format(result["p99_ms"]) if result["p99_ms"] is not None else \
        "not judged ({0} timed requests, {1} needed)".format(result.get("timed", 0), P99_SAMPLES)
    figs = "{0} requests, success rate {1} %, p99 {2}".format(result["requests"], result["success_rate"], p99)
    if result["verdict"] == FAILED:
        return "{0} failed its bake after {1} s: {2}".format(service, result["watched"], "; ".join(result["reasons"]))
    if result["verdict"] == UNJUDGED:
        return "{0} baked {1} s, not judged: {2} ({3})".format(service, result["watched"], "; ".join(result["reasons"]), figs)
    return "{0} passed its bake of {1} s: {2}".format(service, result["watched"], figs)
