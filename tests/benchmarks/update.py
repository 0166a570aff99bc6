#!/usr/bin/env python3
"""Benchmark: updating one public service, ours against the upstream rebuild-service way.

On one bench host with the SGIVU stack deployed, a probe sends a request through Nginx every
20 ms during each operation (bounded in count and time; the target is the bench host). Prints:
  - update of sgivu-gateway with update.yml (start-first swap): time, failed requests;
  - the same update the upstream way (pull, then `docker compose up -d --no-deps
    --force-recreate`): time, failed requests;
  - an update to a release that never gets healthy (deadline 20 s): time until update.yml has
    put the old version back, failed requests;
  - rollback.yml of the gateway to its previous release: time, failed requests.
Run it with `bench/benchmark update`. Figures only; nothing here asserts on a duration.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from bench_images import NEVER_HEALTHY, NEXT  # bench/images.yml
from sgivu_probe import Probe  # shared with the Molecule verifiers

SCENARIO = "update"
HOST = "sgivu-update-deb12"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    if check and result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(command)}")
    return result


def playbook(inventory: str, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh("ansible-playbook", "-i", inventory, name, "--limit", HOST, *args, check=check)


def watched(url: str, action) -> tuple[float, Probe]:
    with Probe(url) as probe:
        time.sleep(1)
        start = time.monotonic()
        action()
        elapsed = time.monotonic() - start
        time.sleep(1)
    return elapsed, probe


def main() -> None:
    sh("molecule", "destroy", "-s", SCENARIO, check=False)
    sh("molecule", "create", "-s", SCENARIO)
    sh("molecule", "prepare", "-s", SCENARIO)
    sh("molecule", "converge", "-s", SCENARIO, "--", "--limit", HOST)
    inventory = _inventory_path()
    try:
        address = sh("docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"sgivu-bench\").IPAddress}}", HOST).stdout.strip()
        url = f"http://{address}/v1/version"
        ours, ours_probe = watched(url, lambda: playbook(inventory, "update.yml", "-e", "service=sgivu-gateway", "-e", f"version={NEXT}"))
        compose = "docker compose --project-directory /opt/sgivu -f /opt/sgivu/compose.yml"
        sh("docker", "exec", HOST, "sed", "-i", f"s#/sgivu-gateway:{NEXT}#/sgivu-gateway:1.0.0#", "/opt/sgivu/compose.yml")
        raw, raw_probe = watched(url, lambda: sh("docker", "exec", HOST, "bash", "-c",
                                                 f"{compose} pull sgivu-gateway && {compose} up -d --no-deps --force-recreate sgivu-gateway"))
        # Put the project back under the collection's management before the next steps.
        playbook(inventory, "update.yml", "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
        bad, bad_probe = watched(url, lambda: playbook(inventory, "update.yml", "-e", "service=sgivu-gateway",
                                                       "-e", f"version={NEVER_HEALTHY}", "-e", "health_timeout=20", check=False))
        back, back_probe = watched(url, lambda: playbook(inventory, "rollback.yml", "-e", "service=sgivu-gateway"))
    finally:
        sh("molecule", "destroy", "-s", SCENARIO, check=False)

    def row(label: str, seconds: float, probe: Probe) -> str:
        return f"  {label:<58} {seconds:7.1f} s   failed {len(probe.failures):4d} of {len(probe.results):5d} requests"

    print()
    print(f"Updating sgivu-gateway on one bench host ({HOST}), a request through Nginx every 20 ms")
    print(row("update.yml (start-first swap, health-gated)", ours, ours_probe))
    print(row("pull + docker compose up -d --no-deps --force-recreate", raw, raw_probe))
    print(f"  {'time ratio update.yml / force-recreate':<58} {ours / raw:7.2f} x")
    print(row("never-healthy release: failed deadline -> old one serving", bad, bad_probe))
    print(row("rollback.yml -e service=sgivu-gateway (by digest)", back, back_probe))


def _inventory_path() -> str:
    """The inventory Molecule generated for the scenario (hosts, and the bench's group_vars)."""
    found = sh("bash", "-c", f"ls -d ~/.ansible/tmp/molecule.*.{SCENARIO}/inventory | head -1").stdout.strip()
    if not found:
        raise SystemExit("cannot find the Molecule inventory of the update scenario")
    return found


if __name__ == "__main__":
    main()
