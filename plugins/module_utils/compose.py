# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Render the stack's Docker Compose project from the normalised catalog.

Pure Python, no Ansible imports. What the rendered project promises, whatever the catalog:

* secrets never appear in it, nor pass through Compose's interpolation: a service that has
  ``env_keys`` gets ``env_file: [{path: env/<service>.env, format: raw}]``, a file of exactly its
  keys that the ``compose_release`` module writes on the host, whose values Compose hands to
  the container byte for byte; the keys are listed in the project's ``x-sgivu.env_keys``;
* every ``$`` the catalog writes (plain env values, health commands) reaches the container as
  written (``$$`` for Compose), so a health command reads a secret from the container's
  environment at run time, never from the compose file;
* volumes are the project's own (Compose names them ``<project>_<volume>``): a project of
  another name never mounts them;
* only published services (``publish: true``) publish ports, and only on 127.0.0.1, over
  the range ``host_port .. host_port + 2 * replicas - 1`` the catalog reserves for them;
  databases and everything else publish nothing;
* a public service that does not publish gets a fixed address on the stack network,
  which is what host Nginx proxies to (see :func:`upstreams`);
* no ``container_name`` anywhere, so every service can scale;
* a restart policy, a healthcheck and ``depends_on: condition: service_healthy`` on
  every dependency; named volumes; the public host name mapped to ``host-gateway``;
* ``x-sgivu``: what the host needs to start the project by itself (env keys per service, the
  start-up waves, each service's deadline in seconds), so an archived release restores from
  its compose file alone.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import IMAGE_TAG, wave_numbers

__all__ = ["render_project", "for_engine", "START_INTERVAL_API", "shown", "cut", "static_addresses", "upstreams", "image_refs", "effective_images",
           "live_upstreams", "update_targets", "update_problems", "pins_for", "env_file_path",
           "repository", "digest_of"]

# Addresses below this offset in the stack subnet are left to Docker (gateway, dynamic).
_STATIC_OFFSET = 200


def _enabled(services: Mapping[str, Mapping[str, Any]]) -> Dict[str, Mapping[str, Any]]:
    return {name: svc for name, svc in services.items() if svc.get("enabled", True)}


def static_addresses(services: Mapping[str, Mapping[str, Any]], subnet: str) -> Dict[str, str]:
    """Fixed stack-network addresses of the public services that publish no port.

    Assigned from the top of the subnet by sorted name, so the same catalog always gets
    the same addresses and adding a service never moves another one.
    """
    network = ipaddress.ip_network(subnet)
    unpublished = sorted(n for n, s in _enabled(services).items() if s.get("public") and not s.get("publish"))
    hosts = list(network.hosts())
    if len(hosts) < _STATIC_OFFSET + len(unpublished) + 1:
        raise ValueError(f"stack subnet {subnet} is too small for {len(unpublished)} fixed addresses")
    return {name: str(hosts[_STATIC_OFFSET + index]) for index, name in enumerate(unpublished)}


def upstreams(services: Mapping[str, Mapping[str, Any]], subnet: str) -> Dict[str, List[str]]:
    """Where host Nginx reaches each public service: loopback ports or a fixed address."""
    fixed = static_addresses(services, subnet)
    result: Dict[str, List[str]] = {}
    for name, svc in sorted(_enabled(services).items()):
        if not svc.get("public"):
            continue
        if svc.get("publish"):
            result[name] = [f"127.0.0.1:{port}" for port in _published_ports(svc)]
        else:
            result[name] = [f"{fixed[name]}:{svc['port']}"]
    return result


def _published_ports(svc: Mapping[str, Any]) -> List[int]:
    """The loopback ports a published service may use: twice its replicas.

    Compose gives each container one free port of the range, so during a start-first swap
    (scale to N+1, wait for health, retire an old one) the new containers get ports too;
    Nginx lists the whole range and passes over a port nobody listens on.
    """
    first = svc["host_port"]
    return list(range(first, first + 2 * svc.get("replicas", 1)))


def image_refs(services: Mapping[str, Mapping[str, Any]]) -> Dict[str, str]:
    """``repository:tag`` of every enabled service."""
    return {name: f"{svc['image']}:{svc['tag']}" for name, svc in sorted(_enabled(services).items())}


def _literal(value: Any) -> str:
    """A value Compose passes on as written: its interpolation sees ``$$`` as one ``$``."""
    return str(value).replace("$", "$$")


def _probe_timeout(pace: int) -> str:
    """How long one probe may take: the pace of probes while the service starts, 3 s at least."""
    return f"{max(pace, 3)}s"


def _healthcheck(svc: Mapping[str, Any]) -> Dict[str, Any]:
    health = svc["health"]
    if health.get("path"):
        test: List[str] = ["CMD", "curl", "-fsS", "-o", "/dev/null", f"http://127.0.0.1:{svc['port']}{health['path']}"]
    else:
        test = ["CMD", *[_literal(part) for part in health["command"]]]
    interval = int(health.get("interval", 5))
    start_interval = int(health.get("start_interval", interval))
    timeout = int(health.get("timeout", 120))
    return {
        "test": test,
        "interval": f"{interval}s",
        # Always written: left out, Docker 25+ probes a starting service every 5 s, whatever interval says.
        "start_interval": f"{start_interval}s",
        "timeout": _probe_timeout(start_interval),
        "retries": 3,
        # Failures while a JVM boots do not count against it, up to its own deadline.
        "start_period": f"{timeout}s",
    }


# Docker Engine 25 (API 1.44) is the first to take a healthcheck's start_interval; Compose
# refuses the key against an older engine.
START_INTERVAL_API = (1, 44)


# The fastest an engine without start_interval probes a service for its whole life: every second
# would cost a dozen services about a core (a probe is about 85 ms of the host's CPU).
OLD_ENGINE_FASTEST_PROBE = 5


def _seconds(value: Any) -> Optional[int]:
    """``"5s"`` (as _healthcheck writes a duration) -> 5; None for anything else."""
    text = str(value)
    return int(text[:-1]) if text.endswith("s") and text[:-1].isdigit() else None


def for_engine(project: Mapping[str, Any], api_version: Sequence[int]) -> Dict[str, Any]:
    """The project as an engine of ``api_version`` (the daemon's API version, such as ``(1, 41)``
    from ``docker version``) can run it.

    From API 1.44 (Docker 25) on, the project is returned unchanged. An older engine has no
    ``start_interval`` and probes at one pace for a container's whole life: each healthcheck that
    has one loses it and is probed every ``start_interval``, but no more often than every
    ``OLD_ENGINE_FASTEST_PROBE`` seconds and no less often than its ``interval``; the probe's
    timeout follows that pace (_probe_timeout). A starting service is then
    seen healthy within that pace, at the cost of the same probes while it runs. The project given
    is not modified.
    """
    if tuple(api_version) >= START_INTERVAL_API or not project.get("services"):
        return dict(project)
    result = dict(project)
    services = {}
    for name, service in project["services"].items():
        check = service.get("healthcheck") or {}
        if "start_interval" in check:
            start, interval = _seconds(check["start_interval"]), _seconds(check.get("interval"))
            check = {key: value for key, value in check.items() if key != "start_interval"}
            if start is not None and interval is not None:
                pace = min(interval, max(start, OLD_ENGINE_FASTEST_PROBE))
                check.update(interval=f"{pace}s", timeout=_probe_timeout(pace))
            service = dict(service, healthcheck=check)
        services[name] = service
    result["services"] = services
    return result


def _environment(svc: Mapping[str, Any]) -> Dict[str, str]:
    return {key: _literal(value) for key, value in sorted(svc.get("env", {}).items())}


def env_file_path(service: str) -> str:
    """Where a service's own env file is, relative to the project directory."""
    return f"env/{service}.env"


def render_project(
    services: Mapping[str, Mapping[str, Any]],
    name: str,
    subnet: str,
    public_hostname: Optional[str] = None,
    restart: str = "unless-stopped",
    log_options: Optional[Mapping[str, Any]] = None,
    images: Optional[Mapping[str, str]] = None,
    waves: Optional[Sequence[Sequence[str]]] = None,
    wait_margin: int = 30,
) -> Dict[str, Any]:
    """The compose project as a dict (the ``compose_release`` module writes it on the host).

    ``images`` overrides the ``repository:tag`` of some services (a rollback pins a
    digest, an update a new tag) without touching the catalog. ``waves`` is the start-up
    order (``catalog.start_waves``); each service's deadline is its ``health.timeout`` plus
    ``wait_margin`` seconds.
    """
    enabled = _enabled(services)
    fixed = static_addresses(services, subnet)
    network = f"{name}-network"
    project: Dict[str, Any] = {"name": name, "services": {}, "networks": {}, "volumes": {}}
    refs = image_refs(services)
    refs.update(images or {})

    for svc_name, svc in sorted(enabled.items()):
        entry: Dict[str, Any] = {
            "image": refs[svc_name],
            "restart": restart,
            "environment": _environment(svc),
            "healthcheck": _healthcheck(svc),
            "networks": {network: ({"ipv4_address": fixed[svc_name]} if svc_name in fixed else None)},
            "labels": {"sgivu.deploy.stack": name, "sgivu.deploy.service": svc_name},
            # A stop gives the app time to finish in-flight requests.
            "stop_grace_period": "30s",
        }
        if not entry["environment"]:
            del entry["environment"]
        if svc.get("env_keys"):
            entry["env_file"] = [{"path": env_file_path(svc_name), "format": "raw"}]
        if svc.get("depends_on"):
            entry["depends_on"] = {
                dep: {"condition": "service_healthy"} for dep in sorted(svc["depends_on"])
            }
        if svc.get("publish"):
            ports = _published_ports(svc)
            entry["ports"] = [f"127.0.0.1:{ports[0]}-{ports[-1]}:{svc['port']}"]
        if svc.get("replicas", 1) > 1:
            entry["deploy"] = {"replicas": svc["replicas"]}
        if svc.get("volumes"):
            entry["volumes"] = [f"{vol}:{mount}" for vol, mount in sorted(svc["volumes"].items())]
            for vol in svc["volumes"]:
                project["volumes"][vol] = {}
        if public_hostname and svc.get("kind", "service") != "database":
            entry["extra_hosts"] = [f"{public_hostname}:host-gateway"]
        if log_options:
            entry["logging"] = {
                "driver": log_options["driver"],
                "options": {k: str(v).replace("{service}", svc_name) for k, v in log_options.get("options", {}).items()},
            }
        project["services"][svc_name] = entry

    project["networks"][network] = {
        "name": network,
        "driver": "bridge",
        "ipam": {"config": [{"subnet": subnet}]},
    }
    if not project["volumes"]:
        del project["volumes"]
    project["x-sgivu"] = {
        "env_keys": {n: sorted(s.get("env_keys", [])) for n, s in sorted(enabled.items()) if s.get("env_keys")},
        "waves": [list(wave) for wave in (waves or [sorted(enabled)])],
        "deadlines": {n: int(s["health"].get("timeout", 120)) + int(wait_margin) for n, s in sorted(enabled.items())},
    }
    rotate = {n: dict(s["rotate"]) for n, s in sorted(enabled.items()) if s.get("rotate")}
    if rotate:
        # Credentials the database changes in place (compose_host rotates them): a change of one
        # does not recreate the database's container.
        project["x-sgivu"]["rotate"] = rotate
    return project


def effective_images(
    services: Mapping[str, Mapping[str, Any]],
    pins: Optional[Mapping[str, Mapping[str, Any]]] = None,
    overrides: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The image each enabled service should run: catalog, then host pins, then overrides.

    An update or a rollback pins a service on the host (``{"image", "catalog_tag"}``) so a
    later deploy does not undo it; the pin holds only while the catalog still says the tag
    it said when the pin was made, so moving the tag in the catalog moves the service.
    """
    refs = image_refs(services)
    unknown = sorted(set(overrides or {}) - set(refs))
    if unknown:
        raise ValueError("unknown service(s) {0}; the catalog's enabled services are {1}".format(
            ", ".join(unknown), ", ".join(sorted(refs))))
    for name, pin in (pins or {}).items():
        svc = services.get(name)
        if svc and svc.get("enabled", True) and str(pin.get("catalog_tag")) == str(svc["tag"]) and pin.get("image"):
            refs[name] = pin["image"]
    refs.update(overrides or {})
    return refs


def live_upstreams(
    services: Mapping[str, Mapping[str, Any]],
    containers: List[Mapping[str, Any]],
    subnet: str,
    exclude: Optional[List[str]] = None,
    starting: bool = False,
) -> Dict[str, List[str]]:
    """Where host Nginx should send each public service's traffic right now.

    ``containers`` are ``docker ps`` summaries (``community.docker.docker_host_info``) of the
    stack. A published service's upstreams are the loopback ports its running containers
    really hold, leaving out containers that have a health check and are not healthy yet,
    and those in ``exclude`` (IDs being retired): during a swap Nginx is reloaded with the
    new container's port only once it is healthy, and without the old one before it stops.
    The other ports of the service's range follow as ``backup`` servers. Unpublished public
    services keep their fixed stack-network address.

    ``starting=True`` counts a container whose health is still ``starting`` as live: what the
    last deploy rendered for a container that is restarting now (the question a no-op deploy
    asks of Nginx's upstreams file, not where to send traffic this second).
    """
    result = upstreams(services, subnet)
    skip = set(exclude or [])
    for name, svc in _enabled(services).items():
        if not (svc.get("public") and svc.get("publish")):
            continue
        ports = set()
        for container in containers:
            labels = container.get("Labels") or {}
            if labels.get("com.docker.compose.service") != name or container.get("Id") in skip:
                continue
            if container.get("State", "running") != "running":
                continue
            status = container.get("Status", "")
            if "(" in status and "(healthy)" not in status and not (starting and "(health: starting)" in status):
                continue
            for port in container.get("Ports") or []:
                if port.get("PrivatePort") == svc["port"] and port.get("PublicPort"):
                    ports.add(int(port["PublicPort"]))
        if ports:
            # The rest of the range stays listed as backup servers: used only when every live
            # container refuses, so a container recreated by hand is still reached.
            spare = [port for port in _published_ports(svc) if port not in ports]
            result[name] = [f"127.0.0.1:{port}" for port in sorted(ports)] + [f"127.0.0.1:{port} backup" for port in spare]
    return result


def update_problems(services: Mapping[str, Mapping[str, Any]], names: Sequence[str], version: str) -> List[str]:
    """What is wrong with an update's arguments: a named service the catalog does not run
    (``services``, the catalog; a disabled one does not run), a ``version`` that is not an image
    tag. Each problem is one sentence without its full stop; empty when nothing is wrong."""
    problems = []
    enabled = sorted(_enabled(services))
    unknown = sorted(set(names) - set(enabled))
    if unknown:
        problems.append("service {0} {1} the catalog runs; its enabled services are {2}".format(
            ", ".join(shown(name) for name in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""),
            "is not a service" if len(unknown) == 1 else "are not services", ", ".join(enabled)))
    if version and not IMAGE_TAG.match(version):
        problems.append("version {0} is not a valid image tag (letters, digits, '_', '.', '-'; at most 128, "
                        "not starting with '.' or '-')".format(shown(version)))
    return problems


def repository(ref: str) -> str:
    """``registry/repo`` of ``registry/repo:tag``, ``registry/repo@sha256:...`` or both."""
    ref = ref.split("@", 1)[0]
    head, _, last = ref.rpartition("/")
    return f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]


def digest_of(ref: str) -> Optional[str]:
    """``repo@sha256:...`` of a pinned reference."""
    return f"{repository(ref)}@{ref.split('@', 1)[1]}" if "@" in ref else None


def cut(text: str, width: int = 40) -> str:
    """``text`` as an error message shows what an operator typed: at most ``width`` characters."""
    return text if len(text) <= width else text[:width - 3] + "..."


def shown(value: Any, width: int = 40) -> str:
    """A value an operator gave, as an error message shows it: JSON (text in double quotes, a list
    in brackets), every character that does not print (a line break, a zero-width space) escaped as
    JSON escapes it, at most ``width`` characters, and text cut inside its quotes."""
    text = "".join(c if c.isprintable() else json.dumps(c)[1:-1]  # escaped as with ensure_ascii
                   for c in json.dumps(value, ensure_ascii=False, default=str))
    if len(text) <= width:
        return text
    return text[:width - 4] + '..."' if text.startswith('"') else text[:width - 3] + "..."


def update_targets(
    services: Mapping[str, Mapping[str, Any]],
    names: List[str],
    version: str,
    current: Mapping[str, str],
    explicit: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The image each named service moves to in an update.

    ``explicit`` (a rollback's digests) wins; otherwise ``version`` is the new tag of the
    catalog's repository; with neither, the service keeps the tag it runs, to be re-pulled
    (a tag that moved gives a new digest, and the service is replaced). Raises ValueError for
    a service the catalog does not run or a version that is not a valid image tag.
    """
    problems = update_problems(services, names, version)
    if problems:
        raise ValueError(" ".join(f"{problem}." for problem in problems) + " Nothing was changed.")
    targets: Dict[str, str] = {}
    for name in names:
        if explicit and name in explicit:
            targets[name] = explicit[name]
        elif version:
            targets[name] = f"{services[name]['image']}:{version}"
        else:
            # The tag it runs, without a digest pin: re-pulled, it shows whether the tag moved.
            tagged = current[name].split("@", 1)[0]
            if ":" not in tagged.rsplit("/", 1)[-1]:
                raise ValueError("{0} runs {1}, pinned by digest alone: there is no tag to pull again; name a "
                                 "version. Nothing was changed.".format(name, current[name]))
            targets[name] = tagged
    return targets


def pins_for(services: Mapping[str, Mapping[str, Any]], targets: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """Host pins for updated services: the image, and the catalog tag it overrides."""
    return {name: {"image": image, "catalog_tag": str(services[name]["tag"])} for name, image in sorted(targets.items())}


def rollout_steps(services: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> List[List[str]]:
    """The services of a rollout, in their order, as steps.

    * A published start-first service is a step alone: its new containers start beside the old
      ones and Nginx moves to them.
    * Consecutive unpublished start-first services of one start-up wave share a step: their new
      containers start side by side, and one registry hand-over (one wait of the callers' cache)
      moves the callers of all of them. Services of one wave do not depend on each other.
    * Consecutive stop-first services share a step: they are recreated in one health-gated start,
      in start-up order, instead of one after another.
    """
    wave = wave_numbers(services)

    def kind(name: str) -> Tuple[Any, ...]:
        svc = services[name]
        if svc.get("update_order") != "start-first":
            return ("stop-first",)
        if svc.get("publish"):
            return ("published", name)
        return ("start-first", wave[name])

    steps: List[List[str]] = []
    for name in dict.fromkeys(names):  # each once, in the order first named
        if steps and kind(steps[-1][-1]) == kind(name):
            steps[-1].append(name)
        else:
            steps.append([name])
    return steps
