#!/usr/bin/env python3
"""Benchmark: deploy.yml on one bench host against the raw `docker compose` doing the same work.

Prints, for one fresh bench host (Debian 13: Docker 26, which like production's Docker packages
probes a starting service every start_interval):
  - fresh deploy: deploy.yml on a bare instance (Docker install, secrets, pull, start, Nginx, health);
  - no-op re-run: deploy.yml again with nothing to change;
  - restart from images: the stack taken down (images kept), then deploy.yml, against
    `docker compose up -d --wait` by hand on the same host in the same state, and their ratio.

Run it with `bench/benchmark deploy` (the bench must be up: images, registry, moto).
Figures only; nothing here asserts on a duration.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

SCENARIO = "default"
HOST = "sgivu-default-deb13"


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def timed(*command: str) -> float:
    start = time.monotonic()
    result = sh(*command, check=False)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(command)}")
    return elapsed


def on_host(command: str) -> float:
    return timed("docker", "exec", HOST, "bash", "-c", command)


def converge() -> float:
    return timed("molecule", "converge", "-s", SCENARIO, "--", "--limit", HOST)


def main() -> dict:
    sh("molecule", "destroy", "-s", SCENARIO, check=False)
    sh("molecule", "create", "-s", SCENARIO)
    sh("molecule", "prepare", "-s", SCENARIO)
    try:
        fresh = converge()
        noop = converge()
        stack = "/opt/sgivu"
        compose = f"docker compose -p sgivu --project-directory {stack} -f {stack}/compose.yml --env-file /dev/null"
        on_host(f"{compose} down")
        ours = converge()
        on_host(f"{compose} down")
        raw = on_host(f"{compose} up -d --wait")
    finally:
        sh("molecule", "destroy", "-s", SCENARIO, check=False)
    print()
    print(f"deploy.yml on one bench host ({HOST}), {os.cpu_count()} cores")
    print(f"  fresh deploy (bare instance -> healthy stack behind Nginx)  {fresh:7.1f} s")
    print(f"  no-op re-run                                                {noop:7.1f} s")
    print(f"  stack down, images present: deploy.yml                      {ours:7.1f} s")
    print(f"  stack down, images present: docker compose up -d --wait     {raw:7.1f} s")
    print(f"  ratio deploy.yml / raw compose                              {ours / raw:7.2f} x")
    return {"fresh": fresh, "noop": noop, "down": ours, "raw_up": raw}


if __name__ == "__main__":
    main()
