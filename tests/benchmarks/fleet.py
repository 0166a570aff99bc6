#!/usr/bin/env python3
"""Benchmark: what adding hosts costs. deploy.yml and a rolling update.yml on 1 and on 3 bench
hosts behind the load balancer (moto's ELBv2), side by side, each against the raw
`docker compose` doing the same work on the same hosts one after another.

Prints, on the fleet scenario's three fresh hosts (one Debian 12, two Debian 13):
  - fresh deploy of the fleet (bare instances -> healthy stacks, one host at a time);
  - no-op re-run, 1 host and 3 hosts, and where the 3 hosts' run spent its time (profile_tasks:
    a task's time is its wall time across the hosts);
  - stacks down, images present: deploy.yml on 1 and on 3 hosts, against
    `docker compose up -d --wait` on 1 and on 3 hosts in turn;
  - rolling update of the gateway: update.yml on 1 and on 3 hosts, against
    `docker compose up -d --no-deps --force-recreate` of the new tag on 1 and on 3 hosts in turn.

Run it with `bench/benchmark fleet` (`bench/benchmark fleet --updates`: the fresh deploy and
the rolling updates only). Figures only; nothing here asserts on a duration.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from bench_images import NEXT  # noqa: E402  (bench/images.yml)
from deploy import profiled_playbook, sh, timed  # noqa: E402
from update import molecule_inventory, time_spent  # noqa: E402

SCENARIO = "fleet"
HOSTS = ["sgivu-fleet-1", "sgivu-fleet-2", "sgivu-fleet-3"]
STACK = "/opt/sgivu"
COMPOSE = f"docker compose -p sgivu --project-directory {STACK} -f {STACK}/compose.yml --env-file /dev/null"


def inventory() -> str:
    """The inventory Molecule generated for the scenario (hosts, and the fleet's group_vars)."""
    return molecule_inventory(SCENARIO)


def play(name: str, hosts: list[str], *args: str) -> float:
    """A playbook of the collection on some of the hosts, as an operator runs it, in seconds."""
    return timed("ansible-playbook", "-i", inventory(), name, "--limit", ",".join(hosts), *args)[0]


def profiled_play(name: str, hosts: list[str], *args: str) -> tuple[float, list[tuple[str, float]]]:
    """play(), with the run's tasks (name, seconds), slowest first (ansible.posix.profile_tasks)."""
    return profiled_playbook(SCENARIO, name, "--limit", ",".join(hosts), *args)


def on_hosts(hosts: list[str], command: str) -> float:
    """The same command on each host in turn (as a serial roll does), in seconds."""
    return sum(timed("docker", "exec", host, "bash", "-c", command)[0] for host in hosts)


def update(hosts: list[str], version: str) -> float:
    return play("update.yml", hosts, "-e", "service=sgivu-gateway", "-e", f"version={version}")


def raw_update(hosts: list[str], version: str) -> float:
    """The raw way, host by host: point the service at the new tag (untimed), pull it, recreate it in place."""
    image = f"{os.environ['SGIVU_BENCH_REGISTRY']}/sgivu/sgivu-gateway:{version}"
    set_image = os.path.join(os.path.dirname(os.path.abspath(__file__)), "set_image.py")
    for host in hosts:
        sh("bash", "-c", f"docker exec -i {host} python3 - {STACK}/compose.yml sgivu-gateway {image} < {set_image}")
    return on_hosts(hosts, f"{COMPOSE} pull -q sgivu-gateway && {COMPOSE} up -d --no-deps --force-recreate --wait sgivu-gateway")


def main() -> dict:
    sh("molecule", "destroy", "-s", SCENARIO, check=False)
    sh("molecule", "create", "-s", SCENARIO)
    sh("molecule", "prepare", "-s", SCENARIO)
    one, fleet = HOSTS[:1], HOSTS
    updates_only = "--updates" in sys.argv[1:]
    try:
        fresh = timed("molecule", "converge", "-s", SCENARIO)[0]
        if not updates_only:
            noop1, _ = profiled_play("deploy.yml", one)  # profiled as the 3-host run is, so the ratio compares like with like
            noop3, noop3_tasks = profiled_play("deploy.yml", fleet)
            on_hosts(fleet, f"{COMPOSE} down")
            down1 = play("deploy.yml", one)
            on_hosts(one, f"{COMPOSE} down")
            down3 = play("deploy.yml", fleet)
            on_hosts(fleet, f"{COMPOSE} down")
            raw1 = on_hosts(one, f"{COMPOSE} up -d --wait")
            on_hosts(one, f"{COMPOSE} down")
            raw3 = on_hosts(fleet, f"{COMPOSE} up -d --wait")
            play("deploy.yml", fleet)  # back to the recorded state before the updates
        # Every host the update names changes: the fleet to the next release, then one host back to 1.0.0.
        up3 = update(fleet, NEXT)
        up1 = update(one, "1.0.0")
        rawup3 = raw_update(fleet, "1.0.0")
        rawup1 = raw_update(one, NEXT)
    finally:
        sh("molecule", "destroy", "-s", SCENARIO, check=False)
    rows = [] if updates_only else [
        ("no-op deploy.yml re-run", noop1, noop3),
        ("stacks down, images present: deploy.yml", down1, down3),
        ("stacks down: docker compose up -d --wait, host by host", raw1, raw3),
        ("  ratio deploy.yml / raw compose", down1 / raw1, down3 / raw3),
    ]
    rows += [
        ("rolling update of the gateway: update.yml", up1, up3),
        ("pull + up --force-recreate, host by host", rawup1, rawup3),
        ("  ratio update.yml / raw compose", up1 / rawup1, up3 / rawup3),
    ]
    print()
    print(f"deploy.yml and update.yml on 1 and 3 bench hosts behind a load balancer (moto), {os.cpu_count()} cores")
    print(f"  fresh deploy of 3 bare hosts, one at a time: {fresh:.1f} s")
    print(f"  {'':58s} {'1 host':>9s} {'3 hosts':>9s} {'3 / 1':>7s}")
    for label, a, b in rows:
        unit = "x" if label.strip().startswith("ratio") else "s"
        ratio = "" if unit == "x" else f"{b / a:6.2f}x"
        print(f"  {label:58s} {a:8.1f}{unit} {b:8.1f}{unit} {ratio:>7s}")
    if not updates_only:
        for line in time_spent(noop3, noop3_tasks, "the no-op deploy.yml on 3 hosts"):
            print(line)
    figures = {"update1": up1, "update3": up3}
    if not updates_only:
        figures.update(noop1=noop1, noop3=noop3)
    return figures


if __name__ == "__main__":
    main()
