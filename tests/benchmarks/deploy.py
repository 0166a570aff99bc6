#!/usr/bin/env python3
"""Benchmark: deploy.yml on one bench host against the raw `docker compose` doing the same work.

Prints, for one fresh bench host (Debian 13: Docker 26, which like production's Docker packages
probes a starting service every start_interval):
  - fresh deploy: deploy.yml on a bare instance (Docker install, secrets, pull, start, Nginx, health);
  - no-op re-run: deploy.yml again with nothing to change, run as an operator runs it
    (`ansible-playbook deploy.yml` on the scenario's inventory, without Molecule's start-up; the
    fresh deploy is Molecule's converge, the same playbook);
  - restart from images: the stack taken down (images kept), then deploy.yml, against
    `docker compose up -d --wait` by hand on the same host in the same state, and their ratio;
  - for the no-op and the restart, where deploy.yml's time went: its slowest tasks and each role's
    share (ansible.posix.profile_tasks, the same reading as bench/benchmark update's).

Run it with `bench/benchmark deploy` (the bench must be up: images, registry, moto).
Figures only; nothing here asserts on a duration.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from update import PROFILED, molecule_inventory, slowest_tasks, time_spent  # noqa: E402  (tests/benchmarks is not a package)

SCENARIO = "default"
HOST = "sgivu-default-deb13"


def sh(*command: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=check, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=dict(os.environ, **env) if env else None)


def timed(*command: str, env: dict | None = None) -> tuple[float, str]:
    """Seconds ``command`` took and what it printed; stops the benchmark when it fails."""
    start = time.monotonic()
    result = sh(*command, check=False, env=env)
    elapsed = time.monotonic() - start
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(command)}")
    return elapsed, result.stdout


def on_host(command: str) -> float:
    return timed("docker", "exec", HOST, "bash", "-c", command)[0]


def converge() -> float:
    """Seconds of `molecule converge` (deploy.yml) on HOST."""
    return timed("molecule", "converge", "-s", SCENARIO, "--", "--limit", HOST)[0]


def profiled_playbook(scenario: str, name: str, *args: str) -> tuple[float, list[tuple[str, float]]]:
    """Seconds of `ansible-playbook <name>` as an operator runs it, on the inventory Molecule generated for
    ``scenario``, and its tasks' (name, seconds), slowest first (ansible.posix.profile_tasks)."""
    elapsed, output = timed("ansible-playbook", "-i", molecule_inventory(scenario), name, *args, env=PROFILED)
    return elapsed, slowest_tasks(output)


def deploy() -> tuple[float, list[tuple[str, float]]]:
    """profiled_playbook() of deploy.yml on HOST."""
    return profiled_playbook(SCENARIO, "deploy.yml", "--limit", HOST)


def main() -> dict:
    sh("molecule", "destroy", "-s", SCENARIO, check=False)
    sh("molecule", "create", "-s", SCENARIO)
    sh("molecule", "prepare", "-s", SCENARIO)
    try:
        fresh = converge()
        noop, noop_tasks = deploy()
        stack = "/opt/sgivu"
        compose = f"docker compose -p sgivu --project-directory {stack} -f {stack}/compose.yml --env-file /dev/null"
        on_host(f"{compose} down")
        ours, down_tasks = deploy()
        on_host(f"{compose} down")
        raw = on_host(f"{compose} up -d --wait")
    finally:
        sh("molecule", "destroy", "-s", SCENARIO, check=False)
    print()
    print(f"deploy.yml on one bench host ({HOST}), {os.cpu_count()} cores")
    for label, figure, unit in (
        ("fresh deploy (bare instance -> healthy stack behind Nginx)", fresh, "s"),
        ("no-op re-run (ansible-playbook deploy.yml, as operators run it)", noop, "s"),
        ("stack down, images present: ansible-playbook deploy.yml", ours, "s"),
        ("stack down, images present: docker compose up -d --wait", raw, "s"),
        ("ratio deploy.yml / raw compose", ours / raw, "x"),
    ):
        print(f"  {label:<64} {figure:7.{2 if unit == 'x' else 1}f} {unit}")
    for run, total, tasks in (("the no-op deploy.yml", noop, noop_tasks), ("deploy.yml with the stack down", ours, down_tasks)):
        for line in time_spent(total, tasks, run):
            print(line)
    return {"fresh": fresh, "noop": noop, "down": ours, "raw_up": raw}


if __name__ == "__main__":
    main()
