# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Checks of the nginx role's site settings, made on the controller before a file is written.

The site template writes most settings into Nginx's configuration as they are given, so a value
that carries a ``;``, a brace or a line break would end its directive and add others (a
``server_name`` of ``"_; return 418"`` answers every request with 418), and a value Nginx
refuses at ``nginx -t`` fails the change after the files are written, where the rollback
re-renders the site from the same values and fails as well. :func:`site_problems` says what is
wrong with each setting instead, in the operator's terms. This file imports nothing from Ansible.

Values arrive as the role's variables hold them: a ``-e name=value`` gives a string, so
numbers are taken as integers or strings of digits, and booleans are already ``| bool``'d by
the caller. Routes from the catalog were checked there (``plugins/module_utils/catalog.py``);
routes written by hand (``nginx_routes``) get the same checks of what reaches the site here.
"""

from __future__ import annotations

import re
from typing import Any, List, Mapping, Optional

import ipaddress

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import (
    ROUTE_MAX_TIMEOUT,
    is_cidr,
    route_path_problem,
)

# The site's name: the file names /etc/nginx/conf.d/<name>.conf and <name>-upstreams.conf, and the
# prefix of its upstream and log_format names.
SITE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
# One server_name entry: "_", a host name or address, with an optional leading "*." or "."
# or trailing ".*" (Nginx's wildcard names) or a trailing dot. Regex names (~...) are not taken.
# Labels are DNS labels (at most 63 characters), with "_" as internal names use it.
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
SERVER_NAME = re.compile(r"(_|(\*\.|\.)?{0}(\.{0})*(\.\*|\.)?|\[[0-9A-Fa-f:.]+\])\Z".format(_LABEL))
# client_max_body_size: a number of bytes with an optional k, m or g (0 turns the check off),
# at most what Nginx's off_t holds.
BODY_SIZE = re.compile(r"([0-9]{1,19})([kKmMgG]?)\Z")
_BODY_SCALE = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
_OFF_T_MAX = 2 ** 63 - 1
# X-Forwarded-Proto's value: a literal scheme, $scheme, or a request header's variable
# ($http_x_forwarded_proto behind an ALB); Nginx refuses an unknown variable at nginx -t.
FORWARDED_PROTO = re.compile(r"(https?|\$scheme|\$http_[a-z0-9_]+)\Z")
# The upstream log: a file directly in /var/log/nginx/, which only root can write to (a name
# elsewhere under /var/log could be a link another user planted, and Nginx's master process
# opens logs as root).
UPSTREAM_LOG = re.compile(r"/var/log/nginx/[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}\Z")
# The SPA's directory in local mode: a directory below one of these, each name of safe characters.
SPA_ROOT_BASES = ("/var/www", "/srv", "/opt", "/usr/share/nginx")
_SPA_ROOT = re.compile(
    r"({0})(/[A-Za-z0-9_-][A-Za-z0-9._-]{{0,254}})+/?\Z".format("|".join(re.escape(b) for b in SPA_ROOT_BASES))
)
# The logs Nginx writes besides the site's own: JSON lines mixed into them would reach neither reader.
OTHER_LOGS = ("/var/log/nginx/access.log", "/var/log/nginx/error.log")
# An S3 website endpoint: scheme, host name and optional port, nothing else (a path, a query
# or a $ would reach proxy_pass, where Nginx reads $ as a variable).
S3_ENDPOINT = re.compile(r"https?://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:(?P<port>[0-9]{1,5}))?/?\Z")
# A resolver: "[IPv6]" or an IPv4 address or host name, each with an optional :port, or a bare
# IPv6 address (checked by ipaddress); and the two parameters that may stand among them.
_RESOLVER = re.compile(r"(\[(?P<v6>[0-9A-Fa-f:.]+)\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:(?P<port>[0-9]{1,5}))?\Z")
RESOLVER_PARAMETERS = ("ipv4=off", "ipv6=off")
ACTUATOR_PATH = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*\Z")
SPA_MODES = ("s3", "local", "none")
# Nginx's own limits: a connect timeout "cannot usually exceed 75 seconds" (its documentation).
CONNECT_TIMEOUT_MAX = 75
KEEPALIVE_TIMEOUT_MAX = 3600


def _integer(value: Any) -> Optional[int]:
    """``value`` as an int when it is one or a string of digits (what ``-e`` gives); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,9}", value):
        return int(value)
    return None


def _shown(value: Any) -> str:
    """``value`` for a message, as Python writes it: a string quoted, its line breaks escaped."""
    return repr(value)


def _port_ok(port: Optional[str]) -> bool:
    return port is None or 1 <= int(port) <= 65535


def _resolver_ok(value: Any) -> bool:
    """An entry of nginx_resolvers Nginx's resolver directive takes (see _RESOLVER)."""
    if not isinstance(value, str):
        return False
    if value in RESOLVER_PARAMETERS:
        return True
    if ":" in value and not value.startswith("["):
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            pass
        else:
            return True
    found = _RESOLVER.match(value)
    if not found or not _port_ok(found.group("port")):
        return False
    if found.group("v6") is not None:
        try:
            ipaddress.IPv6Address(found.group("v6"))
        except ValueError:
            return False
    return True


def _body_size_ok(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return False
    found = BODY_SIZE.match(str(value))
    return bool(found) and int(found.group(1)) * _BODY_SCALE[found.group(2).lower()] <= _OFF_T_MAX


def _range(problems: List[str], name: str, value: Any, low: int, high: int, unit: str) -> None:
    number = _integer(value)
    if number is None or not low <= number <= high:
        problems.append("{0} must be a whole number of {1}, {2}-{3}, got {4}.".format(name, unit, low, high, _shown(value)))


def _route_problems(routes: Any) -> List[str]:
    """What the site cannot take of routes written by hand: the catalog's path, allowlist and
    timeout rules (the service each names is the upstream checks' concern)."""
    if not isinstance(routes, (list, tuple)):
        return ["nginx_routes is a list of routes, got {0}.".format(_shown(routes))]
    problems: List[str] = []
    seen: dict = {}
    for number, route in enumerate(routes, start=1):
        where = "nginx_routes #{0}".format(number)
        if not isinstance(route, Mapping):
            problems.append("{0} is a mapping with path and service, got {1}.".format(where, _shown(route)))
            continue
        match, path = route.get("match", "prefix"), route.get("path")
        if match not in ("prefix", "exact", "regex"):
            problems.append("{0}: match is one of prefix, exact or regex, got {1}.".format(where, _shown(match)))
        elif route_path_problem(path, match):
            problems.append("{0}: {1}, got {2}.".format(where, route_path_problem(path, match), _shown(path)))
        elif (path, match) in seen:
            problems.append("{0}: path {1} (match {2}) is listed twice (routes #{3} and #{4}).".format(
                where, _shown(path), match, seen[(path, match)], number))
        else:
            seen[(path, match)] = number
        allow = route.get("allow", [])
        bad = [cidr for cidr in allow if not is_cidr(cidr)] if isinstance(allow, (list, tuple)) else [allow]
        if bad:
            problems.append(
                "{0}: allow is a list of addresses or CIDRs with a prefix length (10.0.0.0/8); not one: {1}.".format(
                    where, ", ".join(_shown(cidr) for cidr in bad))
            )
        timeout = _integer(route.get("timeout", 60))
        if timeout is None or not 1 <= timeout <= ROUTE_MAX_TIMEOUT:
            problems.append(
                "{0}: timeout must be a whole number of seconds, 1-{1}, got {2}.".format(
                    where, ROUTE_MAX_TIMEOUT, _shown(route.get("timeout")))
            )
    return problems


def site_problems(settings: Mapping[str, Any]) -> List[str]:
    """Every problem of the nginx role's site settings, one sentence each (empty: none).

    ``settings`` maps the role's variable names (``nginx_site_name``, ``nginx_server_name``, ...)
    to their values, ``nginx_routes`` the routes with their defaults filled in; a name left out
    is not checked. Never raises."""
    problems: List[str] = []

    def given(name: str) -> bool:
        return name in settings

    if given("nginx_routes"):
        problems.extend(_route_problems(settings["nginx_routes"]))
    if given("nginx_site_name") and not (
        isinstance(settings["nginx_site_name"], str) and SITE_NAME.match(settings["nginx_site_name"])
    ):
        problems.append(
            "nginx_site_name names the files /etc/nginx/conf.d/<name>.conf and <name>-upstreams.conf: letters, digits,"
            " _ and -, starting with a letter or digit, at most 64; got {0}.".format(_shown(settings["nginx_site_name"]))
        )
    if given("nginx_server_name"):
        value = settings["nginx_server_name"]
        names = value.split(" ") if isinstance(value, str) else []
        if not names or not all(SERVER_NAME.match(name) for name in names):
            problems.append(
                "nginx_server_name is one or more host names separated by single spaces (\"_\" for any,"
                " \"*.example.com\" and \"www.example.*\" as wildcards); got {0}.".format(_shown(value))
            )
    for name in ("nginx_listen_http", "nginx_listen_https"):
        if given(name):
            _range(problems, name, settings[name], 1, 65535, "a port")
    if (
        settings.get("nginx_tls_enabled") is True
        and _integer(settings.get("nginx_listen_http")) is not None
        and _integer(settings.get("nginx_listen_http")) == _integer(settings.get("nginx_listen_https"))
    ):
        problems.append(
            "nginx_listen_http and nginx_listen_https are both {0}; with TLS on, the plain port only redirects to"
            " the TLS one, so they must differ.".format(settings["nginx_listen_http"])
        )
    if given("nginx_client_max_body_size") and not _body_size_ok(settings["nginx_client_max_body_size"]):
        problems.append(
            "nginx_client_max_body_size is a size such as 10m, 512k or 1g (bytes with an optional k, m or g;"
            " 0 for no limit; at most 8 EiB); got {0}.".format(_shown(settings["nginx_client_max_body_size"]))
        )
    if given("nginx_forwarded_proto") and not (
        isinstance(settings["nginx_forwarded_proto"], str) and FORWARDED_PROTO.match(settings["nginx_forwarded_proto"])
    ):
        problems.append(
            "nginx_forwarded_proto is http, https, $scheme or a request header's variable ($http_x_forwarded_proto"
            " behind an ALB); got {0}.".format(_shown(settings["nginx_forwarded_proto"]))
        )
    if given("nginx_real_ip_from"):
        value = settings["nginx_real_ip_from"]
        bad = [entry for entry in value if not is_cidr(entry)] if isinstance(value, (list, tuple)) else [value]
        if bad:
            problems.append(
                "nginx_real_ip_from is a list of addresses or CIDRs with a prefix length (the ALB's subnets, such as"
                " 10.0.0.0/16); not one: {0}.".format(", ".join(_shown(entry) for entry in bad))
            )
    if given("nginx_proxy_connect_timeout"):
        _range(problems, "nginx_proxy_connect_timeout", settings["nginx_proxy_connect_timeout"], 1,
               CONNECT_TIMEOUT_MAX, "seconds")
    if given("nginx_upstream_keepalive"):
        _range(problems, "nginx_upstream_keepalive", settings["nginx_upstream_keepalive"], 1, 1024, "connections")
    if given("nginx_upstream_keepalive_timeout"):
        _range(problems, "nginx_upstream_keepalive_timeout", settings["nginx_upstream_keepalive_timeout"], 1,
               KEEPALIVE_TIMEOUT_MAX, "seconds")
    if given("nginx_upstream_log") and settings["nginx_upstream_log"] in OTHER_LOGS:
        problems.append(
            "nginx_upstream_log must be a file of its own: {0} is where Nginx writes its {1} log, which the"
            " bake would then read as request lines.".format(
                settings["nginx_upstream_log"], "access" if "access" in settings["nginx_upstream_log"] else "error")
        )
    elif given("nginx_upstream_log") and not (
        isinstance(settings["nginx_upstream_log"], str) and UPSTREAM_LOG.match(settings["nginx_upstream_log"])
    ):
        problems.append(
            "nginx_upstream_log must be a file in /var/log/nginx/, its name letters, digits and . _ - (not starting"
            " with a dot, at most 255 characters): Nginx opens it as root and appends to whatever it is given;"
            " got {0}.".format(_shown(settings["nginx_upstream_log"]))
        )
    if given("nginx_actuator_health_paths"):
        value = settings["nginx_actuator_health_paths"]
        bad = ([entry for entry in value if not (isinstance(entry, str) and ACTUATOR_PATH.match(entry))]
               if isinstance(value, (list, tuple)) else [value])
        if bad:
            problems.append(
                "nginx_actuator_health_paths entries are endpoint names like \"health\" or \"health/liveness\","
                " got {0}.".format(", ".join(_shown(entry) for entry in bad))
            )
    if given("nginx_resolvers"):
        value = settings["nginx_resolvers"]
        bad = [entry for entry in value if not _resolver_ok(entry)] if isinstance(value, (list, tuple)) else [value]
        if bad:
            problems.append(
                "nginx_resolvers entries are addresses or host names with an optional :port, such as"
                " \"169.254.169.253\" or \"[fd00:ec2::253]:53\" (ports 1-65535), or ipv4=off / ipv6=off; got {0}.".format(", ".join(_shown(entry) for entry in bad))
            )
    mode = settings.get("nginx_spa_mode")
    if given("nginx_spa_mode") and mode not in SPA_MODES:
        problems.append("nginx_spa_mode is one of s3, local or none; got {0}.".format(_shown(mode)))
    endpoint = settings.get("nginx_spa_s3_website_endpoint")
    found = S3_ENDPOINT.match(endpoint) if isinstance(endpoint, str) else None
    if mode == "s3" and not (found and _port_ok(found.group("port"))):
        problems.append(
            "nginx_spa_mode=s3 needs nginx_spa_s3_website_endpoint, a URL with no path such as"
            " \"http://bucket.s3-website-us-east-1.amazonaws.com\"; got {0}.".format(
                _shown(settings.get("nginx_spa_s3_website_endpoint"))
            )
        )
    if mode == "local" and not (
        isinstance(settings.get("nginx_spa_root"), str) and _SPA_ROOT.match(settings["nginx_spa_root"])
    ):
        problems.append(
            "nginx_spa_mode=local serves nginx_spa_root to anyone, so it must be a directory below {0}, each name"
            " of its path letters, digits and . _ - (not starting with a dot); got {1}.".format(
                ", ".join(SPA_ROOT_BASES[:-1]) + " or " + SPA_ROOT_BASES[-1], _shown(settings.get("nginx_spa_root"))
            )
        )
    return problems
