#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Wait for a compose project's services and routes on the host, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_probe
short_description: Wait until a compose project's services are healthy and its routes answer, in one call on the host
version_added: 2.0.0
author: SGIVU platform team
description:
  - Polls C(docker inspect) of the project's containers until every selected service has its replicas running and
    healthy (running is enough without a healthcheck), or until each late service is past its own deadline
    (C(health.timeout) in the catalog); the rules are those of the C(sgivu.deploy.health_report) filter.
  - Once the services are ready, requests each route under C(base_url) until it answers below 500 or its service's
    deadline passes (401, 403 and 404 count as reachable), then reads the last log lines of every container of a late
    service.
  - Returns what the C(sgivu.deploy.health_report), C(health_table) and C(health_failure) filters take. The containers'
    environment (which holds secrets) is removed from what it returns. Reads only; changes nothing.
  - What the C(stack_health) role did in one task per container and per route, with a round trip each, in one.
options:
  project:
    description: Compose project whose containers are checked.
    type: str
    required: true
  services:
    description: The service catalog (C(stack_services), raw or normalised).
    type: dict
    required: true
  only:
    description: Services to check; empty checks every enabled service.
    type: list
    elements: str
    default: []
  routes:
    description: Routes to request once the services are ready (C(path), C(service)); regex and allowlisted ones left out by the caller.
    type: list
    elements: dict
    default: []
  base_url:
    description: Where host Nginx answers, seen from the host.
    type: str
    default: http://127.0.0.1
  poll_interval:
    description: Seconds between two looks at the containers, and between two requests to a route.
    type: int
    default: 2
  log_lines:
    description: Last log lines read for each container of a late service.
    type: int
    default: 20
  env_file:
    description:
      - The stack's env file on the host; every value in it (of 4 characters or more) is masked in the log lines and
        messages returned, so a service that logs a secret does not put it in the play's output (a missing file masks nothing).
    type: path
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Wait for the stack
  sgivu.deploy.health_probe:
    project: sgivu
    services: "{{ stack_services }}"
    routes: [{path: /v1/, service: sgivu-gateway}]
  register: probe
"""

RETURN = r"""
containers:
  description: C(docker inspect) of each container of the project at the end, without C(Config.Env).
  returned: always
  type: list
  elements: dict
routes:
  description: One C({path, service, status, msg}) per route (status -1 when nothing answered).
  returned: always
  type: list
  elements: dict
logs:
  description: Container ID -> C({rc, stdout, stderr}) of C(docker logs --timestamps --tail N), for late services.
  returned: always
  type: dict
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
"""

import json
import os
import time
import urllib.error
import urllib.request

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import read_env, scrub
from ansible_collections.sgivu.deploy.plugins.module_utils.health import HealthError, health_report


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib's signature
        return None


def _inspect(module: AnsibleModule, project: str) -> list:
    rc, out, err = module.run_command(["docker", "ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={project}"])
    if rc != 0:
        module.fail_json(msg=f"listing the containers of {project} failed: {err.strip()}")
    ids = out.split()
    if not ids:
        return []
    rc, out, err = module.run_command(["docker", "inspect", *ids])
    if rc != 0:  # a container vanished between the two calls: look again next round
        return []
    containers = json.loads(out)
    for container in containers:
        (container.get("Config") or {}).pop("Env", None)
    return containers


def _status(url: str, timeout: float) -> tuple:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, method="GET"), timeout=timeout) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as error:
        return error.code, ""
    except (urllib.error.URLError, OSError) as error:
        return -1, str(getattr(error, "reason", error))


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            project=dict(type="str", required=True),
            services=dict(type="dict", required=True),
            only=dict(type="list", elements="str", default=[]),
            routes=dict(type="list", elements="dict", default=[]),
            base_url=dict(type="str", default="http://127.0.0.1"),
            poll_interval=dict(type="int", default=2),
            log_lines=dict(type="int", default=20),
            env_file=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    secrets = []
    if p["env_file"] and os.path.exists(p["env_file"]):
        try:
            secrets = list(read_env(p["env_file"]).values())
        except (OSError, UnicodeDecodeError):
            module.fail_json(msg=f"cannot read {p['env_file']} to mask its values in what the containers logged")
    start = time.monotonic()
    try:
        while True:
            containers = _inspect(module, p["project"])
            report = health_report(containers, p["services"], only=p["only"], elapsed=time.monotonic() - start)
            if report["done"]:
                break
            time.sleep(max(1, p["poll_interval"]))
        final = health_report(containers, p["services"], only=p["only"])
    except HealthError as error:
        module.fail_json(msg=str(error))

    routes = []
    if final["ready"]:
        base = p["base_url"].rstrip("/")
        for route in p["routes"]:
            deadline = start + float(final["services"].get(route.get("service"), {}).get("timeout", 60))
            while True:
                status, detail = _status(base + route["path"], timeout=min(float(route.get("timeout", 10)), 10))
                if 100 <= status < 500 or time.monotonic() >= deadline:
                    break
                time.sleep(max(1, p["poll_interval"]))
            routes.append({"path": route["path"], "service": route.get("service"), "status": status, "msg": scrub(detail, secrets)})

    logs = {}
    for container in final["unhealthy"]:
        rc, out, err = module.run_command(["docker", "logs", "--tail", str(p["log_lines"]), "--timestamps", container["id"]])
        logs[container["id"]] = {"rc": rc, "stdout": scrub(out, secrets), "stderr": scrub(err, secrets)}
    module.exit_json(changed=False, containers=containers, routes=routes, logs=logs, elapsed=round(time.monotonic() - start, 1))


if __name__ == "__main__":
    main()
