# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The stack's service catalog: validation, defaults and start-up order.

The catalog is data in an inventory's ``group_vars`` (``stack_services``,
``stack_routes``, ``stack_env_invariants``), so a second stack is a second
inventory. Every role reads it through the filters in ``plugins/filter/catalog.py``,
which call the functions here. This file imports nothing from Ansible.

Service entry (``stack_services[<name>]``, the name is the compose service name)::

    image       str, required   repository without tag or digest
    tag         str, required   an unquoted integer is accepted and turned into a string
    port        int, required   container port (health path and Nginx upstream use it)
    enabled     bool  = true    disabled services stay in the catalog but are not deployed
    kind        str   = service database | service | sidecar
    public      bool  = false   reached by host Nginx (routes may target it)
    publish     bool  = public  published on 127.0.0.1:<host_port>; a public service with
                                publish: false is reached at a fixed address on the stack
                                network instead, so nothing listens on the host for it
    host_port   int   = port    published services only; null for everything else
    replicas    int   = 1       see "Replicas" below
    update_order str            how an update replaces it, Compose's update_config.order:
                                start-first (the new containers start beside the running
                                ones and take over once healthy and visible to their callers)
                                or stop-first (recreated, health-gated). Default start-first
                                for kind service; stop-first, and only that, for databases
                                (one data directory), sidecars, and public services that do
                                not publish (one fixed address on the stack network). A
                                start-first service that registers with Eureka (EUREKA_URL in
                                env, a sidecar's provides_env or env_keys) must set
                                EUREKA_CLIENT_HEALTHCHECK_ENABLED in env ("true"; Spring
                                takes any value but "false"), so that a new container is
                                registered UP only once healthy (Spring Cloud Netflix
                                registers UP when started, healthy or not, without it)
    depends_on  list  = []      names of other services
    health      dict, required  exactly one of path (str, starts with /) or command
                                (list of str), plus interval = 5 (s between probes once
                                healthy), start_interval = interval (s between probes while
                                it starts; at most interval) and timeout = 120 (s it may take
                                to become healthy). An engine older than Docker 25 (API 1.44)
                                cannot change pace: compose_release then probes at one pace,
                                start_interval but no faster than every 5 s and no slower
                                than interval (compose.for_engine)
    volumes     dict  = {}      named volume -> absolute mount path
    env_keys    list  = []      keys the service needs from the stack's env file (secrets)
    env         dict  = {}      plain, non-secret environment; values become strings
    databases   list  = []      databases the service owns (for backups)
    provides_env dict = {}      kind: sidecar only: plain environment every other enabled
                                service gets (AWS_XRAY_DAEMON_ADDRESS: "xray-daemon:2000")
    rotate      dict  = {}      kind: database only: env keys (of its env_keys) that are a
                                credential the running database can change in place:
                                KEY -> {engine: postgres | redis, user: role or ACL user}
                                (postgres: user required; redis: user = default)
    bake        dict  = {}      public services only: this service's own bake window, any of
                                seconds (int >= 0, 0: none), min_requests (int >= 1),
                                min_success_rate (percent, 0-100), max_p99_ms (int >= 1);
                                what it leaves out comes from the stack's stack_bake_* values
                                (see plugins/module_utils/bake.py)

Route entry (``stack_routes[]``)::

    path     str, required   starts with / (for match: regex, a Python-compilable pattern)
    match    str = prefix    prefix | exact | regex
    service  str, required   a service in the catalog with public: true
    allow    list = []       addresses or CIDRs (prefix length) allowed to use the route; empty means everyone
    timeout  int = 60        proxy read timeout, seconds (1-3600)

Environment invariants (``stack_env_invariants``)::

    equal    list of lists   each inner list names >= 2 keys that must hold one value;
                             every key must be required by an enabled service

Rules beyond types:

* Dependencies must exist, must not include the service itself, must not form
  a cycle, and an enabled service must not depend on a disabled one.
* Container ports may repeat: every container has its own network namespace
  (the lottery stack runs all three services on port 80).
* Host ports may not. Nginx owns 80 and 443, and two public services may not
  reserve overlapping ranges on 127.0.0.1 (``host_port`` defaults to ``port``,
  so two public services with the same container port collide unless one sets
  ``host_port``).
* A key may be a secret (``env_keys``) or plain (``env``), not both.
* Routes: unique (path, match) pairs, and the target must be public. A route to
  a disabled service is valid but is left out of :func:`enabled_routes`, so the
  debug-only routes (``/zipkin/``) can stay in the catalog while Zipkin is off.

Sidecars (decision):

* ``kind: sidecar`` is a daemon the services on the host send to (the X-Ray daemon, a log or
  metrics agent): one container per host (``replicas: 1``), never public. Its ``provides_env``
  is how the others find it: while the sidecar is enabled, every enabled ``kind: service`` gets
  those keys in its ``env`` (the normalised catalog carries them, so Compose renders them;
  databases are left alone, as a changed env would recreate them); a service that sets a key
  itself keeps its own value. A disabled sidecar provides nothing. Two enabled sidecars may not
  provide the same key, nor a key an enabled service reads from the env file (``env_keys``) or
  one of the container's own (``PATH``, ``HOME``, ...). On ECS the sidecar runs beside each task; on
  EC2 one per host serves every service, which is what the Fargate article's tracing needs.

Replicas (decision):

* ``replicas > 1`` is allowed only for stateless services: ``kind: service`` and
  no ``volumes``. Two database containers on one named volume corrupt it, and
  replicas of a stateful service would not share state anyway.
* A service that is not public is reached over the compose network (Eureka or
  Docker's DNS round robin), so it scales with no further condition.
* A public service with ``replicas: N`` is published on the contiguous loopback
  range ``host_port .. host_port + N - 1`` and Nginx lists each port as an
  upstream server. Validation reserves twice that,
  ``host_port .. host_port + 2N - 1`` (see :func:`reserved_host_ports`): the
  second half is the headroom a start-first swap (scale to 2N, wait for
  health, retire the old N) needs while an update runs. Reserved ranges of
  enabled public services must not overlap each other or 80/443.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

__all__ = [
    "CatalogError",
    "IMAGE_TAG",
    "NGINX_PORTS",
    "enabled_routes",
    "env_keys",
    "normalize_routes",
    "reserved_host_ports",
    "check_bake",
    "stack_bake_problems",
    "start_waves",
    "wave_numbers",
    "validate_catalog",
    "validate_services",
]

KINDS = ("database", "service", "sidecar")
# Keys a sidecar may not hand to the services: the container's own environment.
RESERVED_ENV = frozenset(("PATH", "HOME", "HOSTNAME", "USER", "LANG", "PWD", "SHELL"))
MATCHES = ("prefix", "exact", "regex")
NGINX_PORTS = (80, 443)

SERVICE_KEYS = frozenset(
    (
        "image",
        "tag",
        "port",
        "enabled",
        "kind",
        "public",
        "host_port",
        "publish",
        "replicas",
        "depends_on",
        "health",
        "volumes",
        "env_keys",
        "env",
        "databases",
        "provides_env",
        "rotate",
        "bake",
        "update_order",
    )
)
UPDATE_ORDERS = ("start-first", "stop-first")
# Spring's environment name of eureka.client.healthcheck.enabled: the status a Eureka client
# registers follows its health endpoint (Spring Cloud Netflix, EurekaHealthCheckHandler).
EUREKA_HEALTHCHECK = "EUREKA_CLIENT_HEALTHCHECK_ENABLED"
REQUIRED_SERVICE_KEYS = ("image", "tag", "port", "health")
HEALTH_KEYS = frozenset(("path", "command", "interval", "start_interval", "timeout"))
ROTATE_KEYS = frozenset(("engine", "user"))
# A service's own bake window and thresholds: the type each takes and its least value.
BAKE_FIELDS = {"seconds": (int, 0), "min_requests": (int, 1), "min_success_rate": (float, 0), "max_p99_ms": (int, 1)}
# How a credential changes inside a running database: ALTER ROLE (postgres), ACL SETUSER (redis).
ROTATE_ENGINES = ("postgres", "redis")
ROUTE_KEYS = frozenset(("path", "match", "service", "allow", "timeout"))
# A prefix or exact route's path: printable ASCII a client sends as it is (RFC 3986 path characters
# without ; $ ' and quotes), so Nginx's location, the health check's request and the access log all
# read the same bytes. Segments "." and ".." are refused too: Nginx normalises them away, so such a
# location would never match.
ROUTE_PATH = re.compile(r"/[A-Za-z0-9._~!&()*+,=:@%/-]*\Z")
# A regex route's path: printable ASCII without a double quote (it is written inside one).
ROUTE_REGEX = re.compile(r'[\x20-\x21\x23-\x7e]+\Z')
# -e stack_routes=null would leave Nginx with no route at all: refused, where an empty list is a choice.
NULL_ROUTES = "stack_routes is null; give the list of routes ([] for none): null would take every route out of Nginx"
INVARIANT_KEYS = frozenset(("equal",))

HEALTH_DEFAULT_INTERVAL = 5
HEALTH_DEFAULT_TIMEOUT = 120
# The longest interval, start_interval or timeout taken: a day (Go's durations, which Docker
# parses these into, end near 292 years; a day is already no health check at all).
HEALTH_MAX_SECONDS = 86400
ROUTE_DEFAULT_TIMEOUT = 60
# The longest proxy read timeout a route takes: an hour (Nginx refuses a value past its own
# limit at `nginx -t`, after the files are written; a longer request is a job, not a route).
ROUTE_MAX_TIMEOUT = 3600
# An address or a network in prefix-length form, as Nginx's allow and set_real_ip_from take
# it; Python's ipaddress also takes a netmask ("10.0.0.0/255.0.0.0") and a scope ("%eth0"),
# which Nginx refuses.
_CIDR_FORM = re.compile(r"[0-9A-Fa-f:.]+(/[0-9]{1,3})?\Z")

# \Z, not $: "$" also matches before a final line break, and a name or tag ending in one would pass.
# Compose service names: lower case, digits, '-' and '_', starting alphanumeric.
_SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
# Docker named volumes.
_VOLUME_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# Environment variable names (POSIX portable set).
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
# Image tags, as Docker accepts them (the OCI distribution spec's); compose.py checks an update's version with it.
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
# Database names for pg_dump and friends.
_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


class CatalogError(ValueError):
    """The catalog is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: List[str] = list(problems)
        super().__init__(
            "the stack catalog is invalid ({0} problem{1}):\n- {2}".format(
                len(self.problems), "" if len(self.problems) == 1 else "s", "\n- ".join(self.problems)
            )
        )


# --------------------------------------------------------------------------
# small type checks (bool is an int in Python: keep them apart)
# --------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and value != ""


def _str_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(_is_str(v) for v in value)


def route_path_problem(path: Any, match: Any) -> Optional[str]:
    """What is wrong with a route's path for its match (``regex``, else a prefix or exact path),
    as a phrase without the route's name; None when nothing is. Nginx's own checks come after the
    files are written, so these are the ones that keep a path from reaching it."""
    if not _is_str(path):
        return "path is required"
    if match == "regex":
        try:
            re.compile(path)
        except re.error as exc:
            return "path is not a valid regular expression ({0})".format(exc)
        if not ROUTE_REGEX.match(path):
            return "a regex path must be printable ASCII without a double quote"
        return None
    if not path.startswith("/"):
        return "path must start with '/'"
    if not ROUTE_PATH.match(path) or any(part in (".", "..") for part in path.split("/")):
        return (
            "path must be printable ASCII of letters, digits and . _ ~ ! & ( ) * + , = : @ % / -, with no "
            "'.' or '..' segment (Nginx matches the normalised URI)"
        )
    return None


def is_cidr(value: Any) -> bool:
    """True for an IPv4 or IPv6 address or network in prefix-length form ("10.0.0.0/8",
    "2001:db8::/32", "203.0.113.7"): what Nginx's allow and set_real_ip_from take. Host bits
    may be set ("10.0.0.1/8"), as Nginx allows."""
    if not (isinstance(value, str) and _CIDR_FORM.match(value)):
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def _duplicates(values: Iterable[str]) -> List[str]:
    seen: Set[str] = set()
    dups: Set[str] = set()
    for value in values:
        if value in seen:
            dups.add(value)
        seen.add(value)
    return sorted(dups)


def _fmt_range(ports: Tuple[int, int]) -> str:
    low, high = ports
    return str(low) if low == high else "{0}-{1}".format(low, high)


# --------------------------------------------------------------------------
# one service
# --------------------------------------------------------------------------
def _normalize_health(name: str, raw: Any, problems: List[str]) -> Optional[Dict[str, Any]]:
    where = "service {0!r}: health".format(name)
    if raw is None:
        problems.append("service {0!r}: health is required (a path or a command)".format(name))
        return None
    if not isinstance(raw, Mapping):
        problems.append("{0} must be a mapping with path or command, got {1}".format(where, type(raw).__name__))
        return None
    for key in sorted(set(raw) - HEALTH_KEYS, key=str):
        problems.append("{0}: unknown key {1!r} (allowed: {2})".format(where, key, ", ".join(sorted(HEALTH_KEYS))))

    health: Dict[str, Any] = {}
    has_path = raw.get("path") is not None
    has_command = raw.get("command") is not None
    if has_path == has_command:
        problems.append("{0} needs exactly one of path or command".format(where))
    if has_path:
        path = raw["path"]
        if not (_is_str(path) and path.startswith("/")):
            problems.append("{0}.path must be a string starting with '/', got {1!r}".format(where, path))
        health["path"] = path
    if has_command:
        command = raw["command"]
        if not (_str_list(command) and command):
            problems.append("{0}.command must be a non-empty list of strings, got {1!r}".format(where, command))
            health["command"] = command
        else:
            health["command"] = list(command)

    interval = raw.get("interval", HEALTH_DEFAULT_INTERVAL)
    start_interval = raw.get("start_interval", interval)
    timeout = raw.get("timeout", HEALTH_DEFAULT_TIMEOUT)

    def seconds(key: str, value: Any) -> bool:
        if _is_int(value) and 0 < value <= HEALTH_MAX_SECONDS:
            return True
        problems.append("{0}.{1} must be a whole number of seconds from 1 to {2} (a day), got {3!r}".format(
            where, key, HEALTH_MAX_SECONDS, value))
        return False

    interval_ok = seconds("interval", interval)
    start_ok = seconds("start_interval", start_interval) if "start_interval" in raw else interval_ok
    if start_ok and interval_ok and start_interval > interval:
        problems.append("{0}.start_interval ({1}) is longer than its interval ({2}{3}): a starting service is probed "
                        "at least as often as a healthy one".format(
                            where, start_interval, interval, "" if "interval" in raw else ", the default"))
    if seconds("timeout", timeout) and start_ok and timeout < start_interval:
        problems.append("{0}.timeout ({1}) is shorter than the time between probes while it starts ({2} s, "
                        "start_interval or else interval)".format(where, timeout, start_interval))
    health["interval"] = interval
    health["start_interval"] = start_interval
    health["timeout"] = timeout
    return health


def _normalize_env(name: str, raw: Any, problems: List[str], field: str = "env") -> Dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        problems.append(
            "service {0!r}: {1} must be a mapping of NAME: value, got {2}".format(name, field, type(raw).__name__)
        )
        return {}
    env: Dict[str, str] = {}
    for key, value in raw.items():
        if not (isinstance(key, str) and _ENV_KEY.match(key)):
            problems.append("service {0!r}: {1} key {2!r} is not a valid variable name".format(name, field, key))
            continue
        if isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            env[key] = str(value)
        else:
            problems.append(
                "service {0!r}: {1} {2} must be a plain value (string, number, boolean), got {3}".format(
                    name, field, key, type(value).__name__
                )
            )
    return env


def _normalize_service(name: Any, raw: Any, problems: List[str]) -> Optional[Dict[str, Any]]:
    if not (isinstance(name, str) and _SERVICE_NAME.match(name)):
        problems.append(
            "service name {0!r} is not a valid compose service name (lower case letters, digits, '-', '_')".format(name)
        )
        return None
    if not isinstance(raw, Mapping):
        problems.append("service {0!r} must be a mapping, got {1}".format(name, type(raw).__name__))
        return None

    for key in sorted(set(raw) - SERVICE_KEYS, key=str):
        problems.append("service {0!r}: unknown key {1!r}".format(name, key))
    for key in REQUIRED_SERVICE_KEYS:
        if raw.get(key) is None and key != "health":
            problems.append("service {0!r}: {1} is required".format(name, key))

    svc: Dict[str, Any] = {}

    image = raw.get("image")
    if image is not None:
        last = image.rsplit("/", 1)[-1] if isinstance(image, str) else ""
        if not _is_str(image) or any(c.isspace() for c in image):
            problems.append("service {0!r}: image must be a repository name, got {1!r}".format(name, image))
        elif ":" in last or "@" in image:
            problems.append(
                "service {0!r}: image {1!r} must not carry a tag or digest; put the version in tag".format(name, image)
            )
    svc["image"] = image

    tag = raw.get("tag")
    if _is_int(tag):
        tag = str(tag)
    if tag is not None and not (isinstance(tag, str) and IMAGE_TAG.match(tag)):
        problems.append('service {0!r}: tag must be a quoted string like "1.0.0", got {1!r}'.format(name, tag))
    svc["tag"] = tag

    port = raw.get("port")
    if port is not None and not (_is_int(port) and 1 <= port <= 65535):
        problems.append("service {0!r}: port must be an integer 1-65535, got {1!r}".format(name, port))
    svc["port"] = port

    for key, default in (("enabled", True), ("public", False)):
        value = raw.get(key, default)
        if value is None:
            value = default
        if not isinstance(value, bool):
            problems.append("service {0!r}: {1} must be true or false, got {2!r}".format(name, key, value))
        svc[key] = value

    kind = raw.get("kind") or "service"
    if kind not in KINDS:
        problems.append("service {0!r}: kind must be one of {1}, got {2!r}".format(name, " | ".join(KINDS), kind))
    svc["kind"] = kind

    publish = raw.get("publish", svc["public"] is True)
    if not isinstance(publish, bool):
        problems.append("service {0!r}: publish must be true or false, got {1!r}".format(name, publish))
        publish = svc["public"] is True
    if publish and svc["public"] is False:
        problems.append("service {0!r}: publish is true but the service is not public".format(name))
    svc["publish"] = publish is True and svc["public"] is True

    host_port = raw.get("host_port")
    if host_port is not None and not svc["publish"] and svc["public"] is True:
        problems.append(
            "service {0!r}: host_port is set but publish is false "
            "(Nginx reaches it at its address on the stack network)".format(name)
        )
    elif host_port is not None:
        if svc["public"] is not True:
            problems.append(
                "service {0!r}: host_port is set but the service is not public "
                "(only public services publish a port)".format(name)
            )
        elif not (_is_int(host_port) and 1 <= host_port <= 65535):
            problems.append("service {0!r}: host_port must be an integer 1-65535, got {1!r}".format(name, host_port))
    elif svc["publish"]:
        host_port = port
    svc["host_port"] = host_port if svc["publish"] else None

    replicas = raw.get("replicas", 1)
    if replicas is None:
        replicas = 1
    if not (_is_int(replicas) and replicas >= 1):
        problems.append("service {0!r}: replicas must be an integer >= 1, got {1!r}".format(name, replicas))
    svc["replicas"] = replicas

    # Two containers of it at once would share what only one may hold: a data directory, the
    # host's sidecar, a fixed address.
    single = {"database": "a database", "sidecar": "a sidecar"}.get(kind) or (
        "reached at one fixed address" if svc["public"] is True and not svc["publish"] else None)
    order = raw.get("update_order")
    if order is None:
        order = "stop-first" if single else "start-first"
    elif order not in UPDATE_ORDERS:
        problems.append("service {0!r}: update_order must be one of {1}, got {2!r}".format(name, " | ".join(UPDATE_ORDERS), order))
    elif order == "start-first" and single:
        problems.append("service {0!r}: update_order start-first needs two containers at once; it is {1}, so it is "
                        "updated stop-first".format(name, single))
    svc["update_order"] = order

    depends_on = raw.get("depends_on") or []
    if not _str_list(depends_on):
        problems.append("service {0!r}: depends_on must be a list of service names, got {1!r}".format(name, depends_on))
        depends_on = []
    for dup in _duplicates(depends_on):
        problems.append("service {0!r}: depends_on lists {1!r} twice".format(name, dup))
    svc["depends_on"] = sorted(set(depends_on))

    svc["health"] = _normalize_health(name, raw.get("health"), problems)

    volumes = raw.get("volumes") or {}
    if not isinstance(volumes, Mapping):
        problems.append("service {0!r}: volumes must be a mapping of volume name: mount path".format(name))
        volumes = {}
    for vol, mount in volumes.items():
        if not (isinstance(vol, str) and _VOLUME_NAME.match(vol)):
            problems.append("service {0!r}: volume name {1!r} is not a valid Docker volume name".format(name, vol))
        if not (_is_str(mount) and mount.startswith("/")):
            problems.append(
                "service {0!r}: volume {1!r} needs an absolute mount path, got {2!r}".format(name, vol, mount)
            )
    svc["volumes"] = dict(volumes)

    keys = raw.get("env_keys") or []
    if not _str_list(keys):
        problems.append("service {0!r}: env_keys must be a list of variable names, got {1!r}".format(name, keys))
        keys = []
    for key in keys:
        if not _ENV_KEY.match(key):
            problems.append("service {0!r}: env_keys entry {1!r} is not a valid variable name".format(name, key))
    for dup in _duplicates(keys):
        problems.append("service {0!r}: env_keys lists {1!r} twice".format(name, dup))
    svc["env_keys"] = sorted(set(keys))

    svc["env"] = _normalize_env(name, raw.get("env"), problems)
    for key in sorted(set(svc["env"]) & set(svc["env_keys"])):
        problems.append(
            "service {0!r}: {1} is both in env and env_keys; a key is either plain or from the env file".format(
                name, key
            )
        )

    databases = raw.get("databases") or []
    if not _str_list(databases):
        problems.append("service {0!r}: databases must be a list of names, got {1!r}".format(name, databases))
        databases = []
    for db in databases:
        if not _DB_NAME.match(db):
            problems.append("service {0!r}: database name {1!r} is not a plain identifier".format(name, db))
    svc["databases"] = list(databases)

    svc["rotate"] = _normalize_rotate(name, raw.get("rotate"), kind, svc["env_keys"], problems)
    svc["bake"] = _normalize_bake(name, raw.get("bake"), svc["public"] is True, problems)

    provides = raw.get("provides_env")
    if provides not in (None, {}) and kind != "sidecar":
        problems.append(
            "service {0!r}: provides_env is for kind: sidecar (a daemon the other services send to), "
            "not kind: {1}".format(name, kind)
        )
    svc["provides_env"] = _normalize_env(name, provides, problems, "provides_env") if kind == "sidecar" else {}
    if kind == "sidecar":
        if svc["public"] is True:
            problems.append("service {0!r}: a sidecar is not public (services reach it on the stack network)".format(name))
        if _is_int(replicas) and replicas != 1:
            problems.append("service {0!r}: a sidecar runs one container per host, not replicas: {1}".format(name, replicas))

    # Replicas: only stateless services scale (see the module docstring).
    if _is_int(replicas) and replicas > 1:
        if kind == "database":
            problems.append(
                "service {0!r}: replicas is {1} but a database runs exactly one container".format(name, replicas)
            )
        elif svc["volumes"]:
            problems.append(
                "service {0!r}: replicas is {1} but the service mounts volumes ({2}); "
                "only stateless services scale".format(name, replicas, ", ".join(sorted(svc["volumes"])))
            )
    return svc


def _normalize_bake(name: str, raw: Any, public: bool, problems: List[str]) -> Dict[str, Any]:
    """``bake`` of one service: the fields it sets (BAKE_FIELDS); problems are appended, never raised."""
    if raw in (None, {}):
        return {}
    where = "service {0!r}: bake".format(name)
    if not public:
        problems.append("{0}: only a public service has a bake window (it is watched through host Nginx's log "
                        "of its traffic)".format(where))
        return {}
    return check_bake(raw, where, problems)


def check_bake(raw: Any, where: str, problems: List[str]) -> Dict[str, Any]:
    """A bake window and its thresholds (a service's ``bake``, the stack's ``stack_bake``): the fields of
    BAKE_FIELDS it sets, each of its type and at least its least value (a success rate at most 100 %).

    ``where`` names it in each problem, which is appended to ``problems``, never raised."""
    if not isinstance(raw, Mapping):
        problems.append("{0} must be a mapping of {1}, got {2!r}".format(where, ", ".join(BAKE_FIELDS), raw))
        return {}
    out: Dict[str, Any] = {}
    for key in sorted(set(map(str, raw)) - set(BAKE_FIELDS)):
        problems.append("{0}: unknown key {1!r} (allowed: {2})".format(where, key, ", ".join(BAKE_FIELDS)))
    for key, (kind, least) in BAKE_FIELDS.items():
        if key not in raw:
            continue
        value = raw[key]
        number = _is_int(value) or (kind is float and isinstance(value, float))
        if not number or value < least or (key == "min_success_rate" and value > 100):
            problems.append("{0}.{1} must be {2} {3}{4}, got {5!r}".format(
                where, key, "a number" if kind is float else "an integer", ">= " + str(least),
                " and <= 100 (percent)" if key == "min_success_rate" else "", value))
            continue
        out[key] = kind(value)
    return out


def stack_bake_problems(stack_bake: Any, seconds: Any = "") -> List[str]:
    """What is wrong with ``stack_bake`` (as :func:`check_bake` judges a service's ``bake``) and with a
    run's window ``seconds`` (``-e bake_seconds``: empty, or a whole number as text or int); empty when
    nothing is. Never raises."""
    problems: List[str] = []
    if not (isinstance(seconds, int) and not isinstance(seconds, bool) and seconds >= 0
            or isinstance(seconds, str) and (seconds == "" or seconds.isascii() and seconds.isdigit())):
        problems.append('bake_seconds must be a whole number of seconds (0 turns the bake off), got "{0}"'.format(seconds))
    check_bake(stack_bake, "stack_bake", problems)
    return problems


def _normalize_rotate(name: str, raw: Any, kind: str, keys: Sequence[str], problems: List[str]) -> Dict[str, Dict[str, str]]:
    """``rotate`` of one service: env key -> {engine, user}; problems are appended, never raised."""
    if raw in (None, {}):
        return {}
    if kind != "database":
        problems.append("service {0!r}: rotate is for kind: database (a credential the database changes in place), "
                        "not kind: {1}".format(name, kind))
        return {}
    if not isinstance(raw, Mapping):
        problems.append("service {0!r}: rotate must map env keys to {{engine, user}}, got {1!r}".format(name, raw))
        return {}
    out = {}
    for key, spec in sorted(raw.items(), key=lambda item: str(item[0])):
        where = "service {0!r}: rotate {1}".format(name, key)
        if key not in keys:
            problems.append("{0}: not one of the service's env_keys ({1})".format(where, ", ".join(keys) or "none"))
            continue
        if not isinstance(spec, Mapping):
            problems.append("{0}: must be {{engine, user}}, got {1!r}".format(where, spec))
            continue
        unknown = sorted(set(map(str, spec)) - ROTATE_KEYS)
        if unknown:
            problems.append("{0}: unknown field(s) {1}".format(where, ", ".join(unknown)))
        engine = spec.get("engine")
        if engine not in ROTATE_ENGINES:
            problems.append("{0}: engine must be one of {1}, got {2!r}".format(where, " | ".join(ROTATE_ENGINES), engine))
            continue
        user = spec.get("user", "default" if engine == "redis" else None)
        if not _is_str(user) or not _DB_NAME.match(user):
            problems.append("{0}: user must be a plain identifier (the {1} whose password it is), got {2!r}".format(
                where, "role" if engine == "postgres" else "ACL user", user))
            continue
        if engine == "redis" and user != "default":
            # The rotation ends by recreating Redis with the new value as its requirepass, which is
            # the default user's password; another ACL user would keep the old one.
            problems.append("{0}: a Redis rotation is of the default user's password (requirepass), got user {1!r}"
                            .format(where, user))
            continue
        out[str(key)] = {"engine": engine, "user": user}
    return out


# --------------------------------------------------------------------------
# the whole service set
# --------------------------------------------------------------------------
def reserved_host_ports(service: Mapping[str, Any]) -> Optional[Tuple[int, int]]:
    """Inclusive host port range a normalised public service reserves on 127.0.0.1.

    ``host_port .. host_port + 2 * replicas - 1``: the published range plus the
    headroom a start-first swap needs. ``None`` for services that publish nothing.
    """
    if not service.get("public") or not _is_int(service.get("host_port")):
        return None
    replicas = service.get("replicas") if _is_int(service.get("replicas")) else 1
    return service["host_port"], service["host_port"] + 2 * max(replicas, 1) - 1


def _find_cycles(graph: Mapping[str, Sequence[str]]) -> List[List[str]]:
    """Every dependency cycle, one per strongly connected component, as a path."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []
    counter = [0]

    def strongconnect(node: str) -> None:
        # Recursion depth is bounded by the number of services (tens).
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, ()):
            if dep not in graph:
                continue
            if dep not in index:
                strongconnect(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component: List[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)

    cycles: List[List[str]] = []
    for component in sorted(components):
        members = set(component)
        # Walk from the smallest member, always to the smallest in-component
        # dependency not yet visited, until we are back on the path.
        path = [component[0]]
        while True:
            nxt = sorted(d for d in graph[path[-1]] if d in members)
            unvisited = [d for d in nxt if d not in path]
            back = [d for d in nxt if d in path]
            if back and (not unvisited or back[0] == path[0]):
                start = path.index(back[0])
                cycles.append(path[start:] + [back[0]])
                break
            path.append(unvisited[0])
    return cycles


def validate_services(services: Any) -> Dict[str, Dict[str, Any]]:
    """Validate ``stack_services``; return it normalised with every default filled in.

    Raises :class:`CatalogError` naming every problem found.
    """
    problems: List[str] = []
    result = _validate_services(services, problems)
    if problems:
        raise CatalogError(problems)
    return result


def _validate_services(services: Any, problems: List[str]) -> Dict[str, Dict[str, Any]]:
    if not isinstance(services, Mapping) or not services:
        problems.append("stack_services must be a non-empty mapping of service name: definition")
        return {}

    normalised: Dict[str, Dict[str, Any]] = {}
    for name in sorted(services, key=str):
        svc = _normalize_service(name, services[name], problems)
        if svc is not None:
            normalised[name] = svc

    # Dependencies.
    for name, svc in normalised.items():
        for dep in svc["depends_on"]:
            if dep == name:
                problems.append("service {0!r} depends on itself".format(name))
            elif dep not in services:
                problems.append("service {0!r} depends on unknown service {1!r}".format(name, dep))
            elif dep in normalised and svc["enabled"] is True and normalised[dep]["enabled"] is False:
                problems.append("service {0!r} is enabled but depends on {1!r}, which is disabled".format(name, dep))
    graph = {name: [d for d in svc["depends_on"] if d in normalised and d != name] for name, svc in normalised.items()}
    for cycle in _find_cycles(graph):
        problems.append(
            "dependency cycle between {0}: {1}".format(
                ", ".join(repr(s) for s in sorted(set(cycle))), " -> ".join(cycle)
            )
        )

    # Host ports of enabled public services.
    ranges: List[Tuple[str, Tuple[int, int]]] = []
    for name, svc in normalised.items():
        span = reserved_host_ports(svc)
        if span is None or svc["enabled"] is not True:
            continue
        for nginx_port in NGINX_PORTS:
            if span[0] <= nginx_port <= span[1]:
                problems.append(
                    "service {0!r}: host port range {1} includes {2}, which Nginx owns; set host_port".format(
                        name, _fmt_range(span), nginx_port
                    )
                )
        if span[1] > 65535:
            problems.append("service {0!r}: host port range {1} runs past 65535".format(name, _fmt_range(span)))
        ranges.append((name, span))
    for i, (name_a, span_a) in enumerate(ranges):
        for name_b, span_b in ranges[i + 1 :]:
            if span_a[0] <= span_b[1] and span_b[0] <= span_a[1]:
                hint = ""
                if normalised[name_a]["port"] == normalised[name_b]["port"]:
                    hint = " (both use container port {0} and host_port defaults to port)".format(
                        normalised[name_a]["port"]
                    )
                problems.append(
                    "services {0!r} and {1!r} collide on host ports: {2} reserves {3}, {4} reserves {5}{6}".format(
                        name_a, name_b, name_a, _fmt_range(span_a), name_b, _fmt_range(span_b), hint
                    )
                )

    _provide_sidecar_env(normalised, problems)
    _require_eureka_healthcheck(normalised, services, problems)
    return normalised


def _require_eureka_healthcheck(normalised: Dict[str, Dict[str, Any]], services: Mapping[str, Any],
                                problems: List[str]) -> None:
    """A start-first, enabled service that registers with Eureka (EUREKA_URL in its env, its own
    or a sidecar's, or in env_keys) must register by its health: EUREKA_HEALTHCHECK set in env (its
    own or a sidecar's) to a value Spring takes as on, "true" as the shipped catalog writes it."""
    for name, svc in normalised.items():
        raw_env = (services.get(name) or {}).get("env") if isinstance(services.get(name), Mapping) else None
        registers = bool(svc["env"].get("EUREKA_URL")) or "EUREKA_URL" in svc["env_keys"]
        healthcheck = svc["env"].get(EUREKA_HEALTHCHECK)
        # A value the env check refused already (null, a list) is named there; a database or sidecar
        # that asks for start-first is refused for that above.
        reported = healthcheck is None and isinstance(raw_env, Mapping) and EUREKA_HEALTHCHECK in raw_env
        # Spring turns the check on for any value but "false" (@ConditionalOnProperty, no havingValue).
        if (svc["update_order"] != "start-first" or svc["kind"] != "service" or not registers
                or svc["enabled"] is not True or reported or (healthcheck or "").strip().lower() not in ("", "false")):
            continue
        problems.append(
            "service {0!r}: is updated start-first and registers with Eureka (EUREKA_URL), so its env must set "
            "{1}: \"true\" ({2}); without it Spring registers a new container UP before it is healthy, and its "
            "callers send it requests while it starts and when it never gets healthy (or set update_order: "
            "stop-first)".format(name, EUREKA_HEALTHCHECK,
                                 "it is in env_keys, whose value the catalog cannot see: set it in env"
                                 if EUREKA_HEALTHCHECK in svc["env_keys"] else
                                 "got {0!r}".format(healthcheck) if healthcheck is not None else "it is not set"))


def _provide_sidecar_env(normalised: Dict[str, Dict[str, Any]], problems: List[str]) -> None:
    """Give every other enabled service the env of the enabled sidecars (its own value wins)."""
    provided: Dict[str, Tuple[str, str]] = {}
    for name, svc in normalised.items():
        if svc["kind"] != "sidecar" or svc["enabled"] is not True:
            continue
        for key, value in sorted(svc["provides_env"].items()):
            if key in provided:
                problems.append(
                    "sidecars {0!r} and {1!r} both provide {2}; only one may".format(provided[key][0], name, key)
                )
                continue
            provided[key] = (name, value)
    secret_keys = {key for svc in normalised.values() if svc["enabled"] is True for key in svc["env_keys"]}
    for key in sorted(provided):
        if key in secret_keys or key in RESERVED_ENV:
            problems.append(
                "sidecar {0!r}: provides_env {1} {2}".format(
                    provided[key][0], key,
                    "is an env key services read from the env file; a sidecar may not replace it"
                    if key in secret_keys else "is the container's own; a sidecar may not set it",
                )
            )
    for svc in normalised.values():
        # Only application services send to a sidecar: a database (whose container a changed env
        # recreates) or another sidecar does not.
        if svc["enabled"] is not True or svc["kind"] != "service":
            continue
        own = set(svc["env"]) | set(svc["env_keys"])
        for key, (_, value) in provided.items():
            if key not in own:
                svc["env"][key] = value
        svc["env"] = dict(sorted(svc["env"].items()))


# --------------------------------------------------------------------------
# routes and invariants
# --------------------------------------------------------------------------
def _normalize_routes(
    routes: Any, services: Mapping[str, Mapping[str, Any]], known: Iterable[str], problems: List[str]
) -> List[Dict[str, Any]]:
    if routes is None:
        return []
    if not isinstance(routes, (list, tuple)):
        problems.append("stack_routes must be a list of routes, got {0}".format(type(routes).__name__))
        return []
    known = set(known)
    result: List[Dict[str, Any]] = []
    seen: Dict[Tuple[Any, Any], int] = {}
    for pos, raw in enumerate(routes):
        if not isinstance(raw, Mapping):
            problems.append("route #{0} must be a mapping, got {1}".format(pos + 1, type(raw).__name__))
            continue
        path = raw.get("path")
        where = "route {0!r}".format(path) if path is not None else "route #{0}".format(pos + 1)
        for key in sorted(set(raw) - ROUTE_KEYS, key=str):
            problems.append("{0}: unknown key {1!r}".format(where, key))

        match = raw.get("match") or "prefix"
        if match not in MATCHES:
            problems.append("{0}: match must be one of {1}, got {2!r}".format(where, " | ".join(MATCHES), match))
        path_problem = route_path_problem(path, match)
        if path_problem:
            problems.append("{0}: {1}".format(where, path_problem))

        service = raw.get("service")
        if not _is_str(service):
            problems.append("{0}: service is required".format(where))
        elif service not in known:
            problems.append("{0} routes to unknown service {1!r}".format(where, service))
        elif service in services and services[service]["public"] is not True:
            problems.append(
                "{0} routes to service {1!r}, which is not public (Nginx reaches only public services)".format(
                    where, service
                )
            )

        allow = raw.get("allow") or []
        if not _str_list(allow):
            problems.append("{0}: allow must be a list of CIDRs, got {1!r}".format(where, allow))
            allow = []
        for cidr in allow:
            if not is_cidr(cidr):
                problems.append(
                    "{0}: allow entry {1!r} is not an IP address or a CIDR with a prefix length "
                    "(10.0.0.0/8, 2001:db8::/32)".format(where, cidr)
                )

        timeout = raw.get("timeout", ROUTE_DEFAULT_TIMEOUT)
        if timeout is None:
            timeout = ROUTE_DEFAULT_TIMEOUT
        if not (_is_int(timeout) and 0 < timeout <= ROUTE_MAX_TIMEOUT):
            problems.append(
                "{0}: timeout must be an integer number of seconds, 1-{1}, got {2!r}".format(
                    where, ROUTE_MAX_TIMEOUT, timeout
                )
            )

        key = (path, match)
        if key in seen:
            problems.append(
                "{0} (match {1}) is listed twice (routes #{2} and #{3})".format(where, match, seen[key], pos + 1)
            )
        else:
            seen[key] = pos + 1
        result.append({"path": path, "match": match, "service": service, "allow": list(allow), "timeout": timeout})
    return result


def _validate_invariants(
    invariants: Any, services: Mapping[str, Mapping[str, Any]], problems: List[str]
) -> Dict[str, Any]:
    if invariants is None:
        return {"equal": []}
    if not isinstance(invariants, Mapping):
        problems.append("stack_env_invariants must be a mapping, got {0}".format(type(invariants).__name__))
        return {"equal": []}
    for key in sorted(set(invariants) - INVARIANT_KEYS, key=str):
        problems.append("stack_env_invariants: unknown key {0!r} (allowed: equal)".format(key))
    required = set(_env_keys(services))
    equal = invariants.get("equal") or []
    result: List[List[str]] = []
    if not isinstance(equal, (list, tuple)):
        problems.append("stack_env_invariants.equal must be a list of key lists")
        equal = []
    for group in equal:
        if not (_str_list(group) and len(group) >= 2):
            problems.append("stack_env_invariants.equal: {0!r} must list at least two keys".format(group))
            continue
        for key in group:
            if key not in required:
                problems.append(
                    "stack_env_invariants.equal names {0}, which no enabled service lists in env_keys".format(key)
                )
        result.append(list(group))
    return {"equal": result}


# --------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------
def validate_catalog(services: Any, routes: Any = None, env_invariants: Any = None) -> Dict[str, Dict[str, Any]]:
    """Validate the whole catalog; return the normalised ``stack_services``.

    Routes and invariants are checked against the services when given. Every
    problem in all three is collected before :class:`CatalogError` is raised.
    """
    problems: List[str] = []
    normalised = _validate_services(services, problems)
    known = services.keys() if isinstance(services, Mapping) else ()
    _normalize_routes(routes, normalised, known, problems)
    if env_invariants is not None:
        _validate_invariants(env_invariants, normalised, problems)
    if problems:
        raise CatalogError(problems)
    return normalised


def normalize_routes(routes: Any, services: Any) -> List[Dict[str, Any]]:
    """Validate ``stack_routes`` against ``stack_services``; return them with defaults filled in."""
    problems: List[str] = []
    normalised = _validate_services(services, problems)
    known = services.keys() if isinstance(services, Mapping) else ()
    result = _normalize_routes(routes, normalised, known, problems)
    if problems:
        raise CatalogError(problems)
    return result


def enabled_routes(routes: Any, services: Any) -> List[Dict[str, Any]]:
    """The normalised routes whose target service is enabled, in catalog order."""
    normalised = validate_services(services)
    return [r for r in normalize_routes(routes, services) if normalised[r["service"]]["enabled"]]


def wave_numbers(services: Mapping[str, Mapping[str, Any]]) -> Dict[str, int]:
    """Each service's start-up wave in a validated catalog (cycles are ruled out): 0 with no
    dependencies, else one after the last of its dependencies among ``services``."""
    wave_of: Dict[str, int] = {}

    def wave(name: str) -> int:
        if name not in wave_of:
            deps = [d for d in services[name].get("depends_on") or [] if d in services]
            wave_of[name] = 1 + max((wave(d) for d in deps), default=-1)
        return wave_of[name]

    return {name: wave(name) for name in services}


def start_waves(services: Any) -> List[List[str]]:
    """Enabled services in start order.

    Wave 0 holds the services with no dependencies; every other service is in the
    wave after the last of its dependencies. Names are sorted within a wave.
    """
    normalised = validate_services(services)
    # Validation has ruled out dependencies on disabled services.
    enabled = {name: svc for name, svc in normalised.items() if svc["enabled"]}
    wave_of = wave_numbers(enabled)

    waves: List[List[str]] = []
    for name in sorted(enabled):
        idx = wave_of[name]
        while len(waves) <= idx:
            waves.append([])
        waves[idx].append(name)
    return [sorted(w) for w in waves]


def env_keys(services: Any) -> List[str]:
    """Sorted union of the env keys enabled services require from the stack env file."""
    return _env_keys(validate_services(services))


def _env_keys(normalised: Mapping[str, Mapping[str, Any]]) -> List[str]:
    keys: Set[str] = set()
    for svc in normalised.values():
        if svc["enabled"] is True:
            keys.update(svc["env_keys"])
    return sorted(keys)
