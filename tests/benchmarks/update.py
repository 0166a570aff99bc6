#!/usr/bin/env python3
"""Benchmark: updating one public service, ours against the upstream rebuild-service way.

On one bench host with the SGIVU stack deployed, a probe sends a request through Nginx every
20 ms during each operation (bounded in count and time; the target is the bench host). Prints:
  - update of sgivu-gateway with update.yml (start-first swap): time, failed requests;
  - the same swap scripted by hand as docker-rollout does it (tests/benchmarks/start_first_swap.sh:
    scale to two, wait healthy, Nginx to the new one, stop the old): time, failed requests, and
    the ratio of the two, and where update.yml's time went (its slowest tasks, from
    ansible.posix.profile_tasks on that first run);
  - the same update the upstream way (pull, then `docker compose up -d --no-deps
    --force-recreate`): time, failed requests;
  - an update to a release that never gets healthy (deadline 20 s): time until update.yml has
    put the old version back, failed requests;
  - updates to releases that are healthy but bad, with a bake window of 60 s: one that answers 500
    to 3 of 10 requests, one that takes 800 ms per request: time until update.yml has put the old
    version back, failed requests, and how long the bake watched before it failed;
  - rollback.yml of the gateway to its previous release: time, failed requests;
  - services behind the gateway (issue 11): sgivu-user (callers find it in the registry), sgivu-ml
    and sgivu-config (by DNS name), each updated with update.yml (start-first) and then the seed's
    stop-first way (pull, `up -d --no-deps --force-recreate --wait`), with a GET and a POST probe
    through Nginx and the gateway: time, failed GETs and POSTs; and the registry itself, sgivu-discovery (stop-first both
    ways, watched 55 s more: its sync-empty wait and the gateway's cache), then recreated once more
    the seed's way with Spring Cloud's default open-for-traffic count (1: open at once, empty).
Run it with `bench/benchmark update`; `bench/benchmark update --behind sgivu-ml[,...]` runs only the
rows of the services behind the gateway named (no gateway rows). Figures only; nothing here
asserts on a duration.
"""
from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from bench_images import FAILING, NEVER_HEALTHY, NEXT, SLOW  # bench/images.yml
from sgivu_probe import Probe  # shared with the Molecule verifiers

SCENARIO = "update"
HOST = "sgivu-update-deb13"  # Debian 13: Docker 26 paces health probes as production's Docker packages do
CATALOG_TAG = "1.0.0"  # the gateway's tag in the catalog (inventories/prod/group_vars/all/stack.yml)
BAKE = 60  # seconds of bake window asked for the healthy-but-bad releases
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*command: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            env=dict(os.environ, **env) if env else None)
    if check and result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:])
        raise SystemExit(f"benchmark step failed: {' '.join(command)}")
    return result


def playbook(inventory: str, name: str, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    return sh("ansible-playbook", "-i", inventory, name, "--limit", HOST, *args, check=check, env=env)


# ansible.posix.profile_tasks: after the play recap, every task's wall time, slowest first. Each line is
# the name, a space, dashes that pad it to the terminal's width, then the seconds right-aligned in nine
# characters padded with dashes: a long name gets "-- 11.43s", a run of 100 s or more one dash or none.
PROFILED = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"}
SHOWN_TASKS = 12
_RECAP_TASK = re.compile(r"^(?P<task>.*\S) -* (?P<seconds>\d+(?:\.\d+)?)s\s*$")


def slowest_tasks(output: str) -> list[tuple[str, float]]:
    """(task, seconds) of profile_tasks' recap in ``output``, slowest first; [] without a recap."""
    _, found, recap = output.rpartition("TASKS RECAP")
    if not found:
        return []
    return [(m["task"], float(m["seconds"])) for m in map(_RECAP_TASK.match, recap.splitlines()) if m]


def watched(url: str, action, after: float = 1.0, post: tuple[str, bytes] | None = None) -> tuple:
    """Seconds the action took, and a GET probe of ``url`` from 1 s before it to ``after`` s after
    it; given ``post`` (a URL, a JSON body), also a POST probe of that URL over the same time:
    (seconds, the GET probe) or (seconds, the GET probe, the POST probe)."""
    probes = [Probe(url)] + ([Probe(post[0], method="POST", data=post[1])] if post else [])
    with contextlib.ExitStack() as running:
        for probe in probes:
            running.enter_context(probe)
        time.sleep(1)
        start = time.monotonic()
        action()
        elapsed = time.monotonic() - start
        time.sleep(after)
    return (elapsed, *probes)


BEHIND = ("sgivu-user", "sgivu-ml", "sgivu-config", "sgivu-discovery")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench/benchmark update", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--behind", default="", metavar="SERVICE[,SERVICE]",
                        help="only the rows of these services behind the gateway (of: %s)" % ", ".join(BEHIND))
    only = [s for s in parser.parse_args(argv if argv is not None else []).behind.split(",") if s]
    unknown = [s for s in only if s not in BEHIND]
    if unknown:
        parser.error("not a service behind the gateway: %s (one of: %s)" % (", ".join(unknown), ", ".join(BEHIND)))
    sh("molecule", "destroy", "-s", SCENARIO, check=False)
    sh("molecule", "create", "-s", SCENARIO)
    sh("molecule", "prepare", "-s", SCENARIO)
    sh("molecule", "converge", "-s", SCENARIO, "--", "--limit", HOST)
    inventory = _inventory_path()
    swap = os.path.join(ROOT, "tests", "benchmarks", "start_first_swap.sh")
    try:
        address = sh("docker", "inspect", "-f", "{{(index .NetworkSettings.Networks \"sgivu-bench\").IPAddress}}", HOST).stdout.strip()
        url = f"http://{address}/v1/version"
        set_image = os.path.join(ROOT, "tests", "benchmarks", "set_image.py")
        compose = "docker compose -p sgivu --project-directory /opt/sgivu -f /opt/sgivu/compose.yml --env-file /dev/null"

        def point_at(service: str, tag: str, *env: str) -> None:
            image = f"{os.environ['SGIVU_BENCH_REGISTRY']}/sgivu/{service}:{tag}"
            sh("bash", "-c", f"docker exec -i {HOST} python3 - /opt/sgivu/compose.yml {service} {image} {' '.join(env)} < {set_image}")

        if not only:
            gateway = gateway_rows(inventory, url, swap, point_at, compose)
        behind = behind_rows(inventory, address, point_at, compose, only or list(BEHIND))
    finally:
        sh("molecule", "destroy", "-s", SCENARIO, check=False)
    if not only:
        print_gateway(*gateway)
    print_behind(behind)
    if only:
        return {}
    ours, script, ours_probe, script_probe = gateway[0], gateway[1], gateway[2], gateway[3]
    return {"update": ours, "scripted_swap": script, "update_failed": len(ours_probe.failures),
            "scripted_failed": len(script_probe.failures)}


def gateway_rows(inventory: str, url: str, swap: str, point_at, compose: str) -> tuple:
    """The gateway's rows: update.yml, the scripted swap, the seed's recreate, the never-healthy and
    the baked releases, rollback.yml."""
    # The first run also says where its time goes (profile_tasks); the callback costs nothing to speak of.
    runs = []
    ours, ours_probe = watched(url, lambda: runs.append(playbook(inventory, "update.yml", "-e", "service=sgivu-gateway",
                                                                 "-e", f"version={NEXT}", env=PROFILED)))

    def point_gateway_at(tag: str) -> None:
        point_at("sgivu-gateway", tag)

    # The same work by hand, start-first as docker-rollout does it: the gateway to the catalog's tag.
    point_gateway_at(CATALOG_TAG)
    script, script_probe = watched(url, lambda: sh("bash", "-c", f"docker exec -i {HOST} bash -s -- /opt/sgivu sgivu "
                                                           f"sgivu-gateway 8080 < {swap}"))
    playbook(inventory, "update.yml", "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    # The upstream way (the seed's rebuild-service): pull, then recreate in place.
    point_gateway_at(CATALOG_TAG)
    raw, raw_probe = watched(url, lambda: sh("docker", "exec", HOST, "bash", "-c",
                                             f"{compose} pull -q sgivu-gateway && {compose} up -d --no-deps --force-recreate sgivu-gateway"))
    # Put the project back under the collection's management before the next steps.
    playbook(inventory, "update.yml", "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    bad, bad_probe = watched(url, lambda: playbook(inventory, "update.yml", "-e", "service=sgivu-gateway",
                                                   "-e", f"version={NEVER_HEALTHY}", "-e", "health_timeout=20", check=False))
    baked = {}
    for label, tag in (("failing", FAILING), ("slow", SLOW)):
        baked[label] = watched(url, lambda tag=tag: playbook(inventory, "update.yml", "-e", "service=sgivu-gateway",
                                                             "-e", f"version={tag}", "-e", f"bake_seconds={BAKE}", check=False))
        last = json.loads(sh("docker", "exec", HOST, "cat", "/opt/sgivu/releases.json").stdout)["releases"][-1]
        baked[label] += ((last.get("bake") or {}).get("sgivu-gateway", {}).get("watched", "-"),)
    back, back_probe = watched(url, lambda: playbook(inventory, "rollback.yml", "-e", "service=sgivu-gateway"))
    return ours, script, ours_probe, script_probe, raw, raw_probe, bad, bad_probe, baked, back, back_probe, slowest_tasks(runs[0].stdout)


def behind_rows(inventory: str, address: str, point_at, compose: str, services: list[str]) -> dict:
    """Each of ``services`` behind the gateway: update.yml, then the seed's stop-first recreate."""
    # Issue 11: services behind the gateway. update.yml (start-first: the registry for sgivu-user,
    # Docker's DNS for sgivu-ml; stop-first for the registry itself), then the seed's stop-first
    # recreate of the same service.
    behind = {}

    def recreate(service: str) -> None:
        sh("docker", "exec", HOST, "bash", "-c", f"{compose} pull -q {service} && {compose} up -d --no-deps --force-recreate --wait {service}")

    # The GET and the POST each call sends through Nginx and the gateway (config and discovery: to sgivu-user).
    paths = {"sgivu-user": ("/v1/users/7", "/v1/users", b'{"name": "ana"}'),
             "sgivu-ml": ("/v1/ml/7", "/v1/ml/predictions", b'{"vehicle": 7}')}
    for service in services:
        path, post_path, body = paths.get(service, paths["sgivu-user"])
        api, post = f"http://{address}{path}", (f"http://{address}{post_path}", body)
        # A registry restart shows in the calls only once the gateway's cache expired after it.
        after = 55.0 if service == "sgivu-discovery" else 1.0
        ours_behind = watched(api, lambda s=service: playbook(inventory, "update.yml", "-e", f"service={s}", "-e", f"version={NEXT}"),
                              after, post)
        point_at(service, CATALOG_TAG)
        raw_behind = watched(api, lambda s=service: recreate(s), after, post)
        behind[service] = (ours_behind, raw_behind)
        if service == "sgivu-discovery":
            point_at(service, NEXT, "EUREKA_SERVER_DEFAULTOPENFORTRAFFICCOUNT=1")
            behind["open at once"] = watched(api, lambda: recreate("sgivu-discovery"), after, post)
        playbook(inventory, "update.yml", "-e", f"service={service}", "-e", f"version={NEXT}")
    return behind


def time_spent(total: float, tasks: list[tuple[str, float]], run: str = "update.yml") -> list[str]:
    """Where a run's ``total`` seconds went, from its profile_tasks recap (``tasks``, slowest first; ``run`` names it):
    the SHOWN_TASKS slowest tasks, then what all the others took together, then each role's share
    (the recap's "role : task" prefix; a playbook's own tasks count as "the playbook")."""
    if not tasks:
        return []
    shown, rest = tasks[:SHOWN_TASKS], tasks[SHOWN_TASKS:]
    lines = [f"  where {run}'s {total:.1f} s went, its {len(shown)} slowest tasks ({sum(s for _, s in shown):.1f} s):"]
    lines += [f"    {task[:80]:<80} {seconds:6.1f} s" for task, seconds in shown]
    if rest:
        lines.append(f"    {f'the other {len(rest)} tasks, {max(s for _, s in rest):.1f} s at most each':<80} "
                     f"{sum(s for _, s in rest):6.1f} s")
    roles: dict[str, list[float]] = {}
    for task, seconds in tasks:
        role = task.split(" : ", 1)[0] if " : " in task else "the playbook"
        roles.setdefault(role.removeprefix("sgivu.deploy."), []).append(seconds)
    lines.append("  by role (tasks, seconds): " + ", ".join(
        f"{role} {len(times)}, {sum(times):.1f} s" for role, times in sorted(roles.items(), key=lambda item: -sum(item[1]))))
    lines.append(f"  outside any task (start-up, forks, the recap): {max(total - sum(s for _, s in tasks), 0):.1f} s")
    return lines


def row(label: str, seconds: float, probe: Probe, posts: Probe | None = None) -> str:
    """One figure line: the time, then the GET probe's failed requests (and the POST probe's)."""
    counted = f"failed {len(probe.failures):4d} of {len(probe.results):5d}"
    if posts is None:
        return f"  {label:<58} {seconds:7.1f} s   {counted} requests"
    return (f"  {label:<58} {seconds:7.1f} s   {counted} GETs, "
            f"{len(posts.failures):4d} of {len(posts.results):5d} POSTs")


def print_gateway(ours, script, ours_probe, script_probe, raw, raw_probe, bad, bad_probe, baked, back, back_probe, tasks) -> None:
    print()
    print(f"Updating sgivu-gateway on one bench host ({HOST}), a request through Nginx every 20 ms")
    print(row("update.yml (start-first swap, health-gated, recorded)", ours, ours_probe))
    print(row("scripted start-first swap (docker-rollout's way, by hand)", script, script_probe))
    print(f"  {'time ratio update.yml / scripted start-first swap':<58} {ours / script:7.2f} x")
    for line in time_spent(ours, tasks):
        print(line)
    print(row("pull + docker compose up -d --no-deps --force-recreate", raw, raw_probe))
    print(row("never-healthy release: failed deadline -> old one serving", bad, bad_probe))
    print(row("30 % 500s release: bake fails -> old one serving", *baked["failing"][:2])
          + f", bake failed after {baked['failing'][2]} s of {BAKE}")
    print(row("800 ms release: bake fails -> old one serving", *baked["slow"][:2])
          + f", bake failed after {baked['slow'][2]} s of {BAKE}")
    print(row("rollback.yml -e service=sgivu-gateway (by digest)", back, back_probe))


def print_behind(behind: dict) -> None:
    print()
    print("Updating a service behind the gateway, a GET and a POST through Nginx and the gateway to it every 20 ms")
    for service, how in (("sgivu-user", "start-first, callers by registry"), ("sgivu-ml", "start-first, callers by DNS name"),
                         ("sgivu-config", "start-first, read at start-up"), ("sgivu-discovery", "stop-first, 45 s sync-empty wait")):
        if service not in behind:
            continue
        ours, raw = behind[service]
        print(row(f"{service}: update.yml ({how})", *ours))
        print(row(f"{service}: pull + up -d --no-deps --force-recreate --wait", *raw))
    if "open at once" in behind:
        print(row("sgivu-discovery: the same, registry open at once (Spring's 1)", *behind["open at once"]))
        print("  (sgivu-discovery rows: the probe ran 55 s past the end of each, the wait and the gateway's cache)")


def molecule_inventory(scenario: str) -> str:
    """The inventory Molecule generated for ``scenario`` from this checkout: of the ephemeral directories
    (~/.ansible/tmp/molecule.*.<scenario>, one per checkout that ran the scenario, a CI clone's among
    them), the newest whose group_vars link into this checkout."""
    candidates = []
    for inventory in glob.glob(os.path.expanduser(f"~/.ansible/tmp/molecule.*.{scenario}/inventory")):
        linked = os.path.realpath(os.path.join(inventory, "group_vars"))
        if linked.startswith(os.path.realpath(ROOT) + os.sep):
            candidates.append((os.path.getmtime(inventory), inventory))
    if not candidates:
        raise SystemExit(f"cannot find the Molecule inventory of the {scenario} scenario of {ROOT}")
    return max(candidates)[1]


def _inventory_path() -> str:
    return molecule_inventory(SCENARIO)


if __name__ == "__main__":
    main(sys.argv[1:])
