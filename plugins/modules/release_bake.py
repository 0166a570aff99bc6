#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Watch a new release's traffic through host Nginx for its bake window, and judge it."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_bake
short_description: Watch a new release's live traffic through host Nginx for its bake window, and judge it
version_added: 2.1.0
author: SGIVU platform team
description:
  - Runs on the host once new containers of public services serve behind Nginx and the stack passed its health
    checks. For each service it reads the requests Nginx's upstream log (O(log), JSON lines written by the
    C(sgivu.deploy.nginx) site) records from O(offset) on whose last upstream server is one of the new containers'
    addresses, and computes the success rate (answers below 500, in percent), the 99th percentile of the upstream
    response time (ms) and the number of requests.
  - A service with C(min_requests) requests whose success rate is below C(min_success_rate), or whose p99 is above
    C(max_p99_ms), on 3 checks in a row (one every O(poll_interval)) fails, and the module fails at once naming the
    figures, so the caller takes the release back before the window ends; a blip does not. A p99 needs 100 timed
    requests; with fewer, latency is not judged. A service passes once its window (C(seconds)) has run (breaking a
    threshold then fails it); with fewer than C(min_requests) requests it ends C(unjudged) and is kept.
  - A log that does not exist when the watch begins (a site rendered before the log was added; C(deploy.yml)
    renders it) leaves every service C(unjudged), with a warning.
  - Each service's window and thresholds are the run's O(seconds) over the catalog's C(bake) of the service over
    O(defaults) over the built-in ones (60 s, 50 requests, 99 %, 500 ms); a window of 0 s bakes nothing.
  - Reads only; changes nothing. In check mode nothing is watched.
  - The rules and figures are those of C(plugins/module_utils/bake.py).
options:
  log:
    description: Nginx's upstream log on the host (the nginx role's C(nginx_upstream_log)).
    type: path
    required: true
  upstreams:
    description:
      - Service -> the C(host:port) addresses of its new containers, as Nginx's upstreams name them; the services baked.
        An entry marked C(backup) (an old container kept as a fallback) is not the new release's and is left out.
    type: dict
    required: true
  catalog:
    description: The service catalog (C(stack_services)); a service's C(bake) there sets its own window and thresholds.
    type: dict
    default: {}
  defaults:
    description: The stack's window and thresholds (C(seconds), C(min_requests), C(min_success_rate), C(max_p99_ms)).
    type: dict
    default: {}
  seconds:
    description: The run's window for every service, in seconds (C(-e bake_seconds=N)); 0 turns the bake off.
    type: int
  offset:
    description:
      - Where in O(log) the count begins, in bytes; the log's size before the new containers took their first request
        (the caller stats it before the swap), so that requests the release served before its window began (while
        the stack's health was checked and the host went back in) count too.
      - A log shorter than O(offset) was rotated or truncated since, and is read from its start. Without O(offset)
        the count begins at the log's end when the watch starts.
    type: int
  poll_interval:
    description: Seconds between two reads of the log.
    type: int
    default: 2
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Bake the new gateway
  sgivu.deploy.release_bake:
    log: /var/log/nginx/sgivu.upstream.log
    offset: "{{ log_before_swap.stat.size }}"
    upstreams: {sgivu-gateway: ["127.0.0.1:32771"]}
    catalog: "{{ stack_services }}"
    defaults: {seconds: 120, max_p99_ms: 800}
  register: bake
"""

RETURN = r"""
bake:
  description:
    - Service -> C({verdict, reasons, watched, requests, errors, success_rate, p99_ms, limits}); verdict is C(passed),
      C(failed), C(unjudged) (too few requests) or C(watching) (the module failed on another service first);
      watched in seconds, success_rate in percent, p99_ms in milliseconds (null without a timed answer).
  returned: always
  type: dict
summary:
  description: One line per service for an operator.
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils.bake import (
    FAILED, PASSED, UNJUDGED, WATCHING, BakeError, Judge, Watch, figures, settings, summary,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            log=dict(type="path", required=True),
            upstreams=dict(type="dict", required=True),
            catalog=dict(type="dict", default={}),
            defaults=dict(type="dict", default={}),
            seconds=dict(type="int"),
            offset=dict(type="int"),
            poll_interval=dict(type="int", default=2),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        limits = settings(sorted(p["upstreams"]), p["catalog"], p["defaults"], p["seconds"])
    except BakeError as error:
        module.fail_json(msg=str(error))
    baked = {name: spec for name, spec in limits.items() if spec["seconds"] > 0}
    for name in baked:
        if not p["upstreams"][name]:
            module.fail_json(msg="no address of the new {0} to watch (it is not behind Nginx)".format(name))
    if module.check_mode or not baked:
        module.exit_json(changed=False, bake={}, summary=[])

    if not os.path.exists(p["log"]):
        module.warn("Nginx's upstream log {0} does not exist: the site predates the bake window (deploy.yml renders "
                    "it again); {1} cannot be judged by its traffic.".format(p["log"], ", ".join(sorted(baked))))
    size = os.path.getsize(p["log"]) if os.path.exists(p["log"]) else 0
    # A log shorter than the offset was rotated or truncated after the caller looked: all of it is newer.
    offset = size if p["offset"] is None else max(0, p["offset"]) if p["offset"] <= size else 0
    watch = Watch(p["log"], offset)
    judges = {name: Judge(spec) for name, spec in baked.items()}
    addresses = {name: [str(a).split()[0] for a in p["upstreams"][name] if str(a).strip() and "backup" not in str(a).split()[1:]]
                 for name in baked}
    start = time.monotonic()
    results = {}
    while True:
        time.sleep(max(1, p["poll_interval"]))
        watch.read()
        elapsed = time.monotonic() - start
        for name, spec in baked.items():
            if name in results and results[name]["verdict"] != WATCHING:
                continue
            figs = figures(watch.entries, addresses[name])
            verdict, reasons = judges[name].check(figs, done=elapsed >= spec["seconds"])
            results[name] = dict(figs, verdict=verdict, reasons=reasons, watched=int(min(elapsed, spec["seconds"]) + 0.5),
                                 limits={k: v for k, v in spec.items()})
        verdicts = [r["verdict"] for r in results.values()]
        if FAILED in verdicts or all(v in (PASSED, UNJUDGED) for v in verdicts):
            break
    lines = [summary(name, results[name]) for name in sorted(results)]
    if FAILED in verdicts:
        module.fail_json(msg="; ".join(line for name, line in zip(sorted(results), lines) if results[name]["verdict"] == FAILED),
                         bake=results, summary=lines)
    module.exit_json(changed=False, bake=results, summary=lines)


if __name__ == "__main__":
    main()
