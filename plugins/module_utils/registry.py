# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The service registry (Eureka) as a start-first update of a service behind it uses it.

The callers of such a service (the gateway's ``lb://`` routes) find its instances in the
registry and keep the list they fetched for a while (Spring Cloud LoadBalancer: 35 s). So a
new instance takes over only once it is registered and UP there, and an old one must leave
service there, then the callers' cache time must pass, before it stops.

The calls are the Eureka REST API's, in JSON (``Accept: application/json``), relative to the
registry's base URL (a client's ``EUREKA_URL``, ``http://sgivu-discovery:8761/eureka``):

``GET  /apps/<APP>``                                    the application's instances
``PUT  /apps/<APP>/<instance id>/status?value=OUT_OF_SERVICE``  an operator's status override

An instance is recognised by its address (``ipAddr``), the container's address on the stack
network: Spring Cloud's instance ids (host name, service, port) differ between images.
Runs on the host with the Python standard library; nothing here imports Ansible.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# (method, url) -> (HTTP status, body); the status is 0 when no answer came (refused, timed out).
Call = Callable[[str, str], Tuple[int, str]]


class RegistryError(Exception):
    """The registry did not show what was waited for, or refused an operation; the message says which."""


def http_call(method: str, url: str, timeout: float = 5.0) -> Tuple[int, str]:
    """One request to the registry: (HTTP status, body), status 0 when it could not be reached.

    A user and password in the URL (``http://user:password@host:8761/eureka``, as Eureka clients
    write their defaultZone) go as HTTP basic authentication, never in the request line; what
    comes back when the call fails names the error's kind, never the URL."""
    parts = urllib.parse.urlsplit(url)
    headers = {"Accept": "application/json"}
    userinfo, _, host = parts.netloc.rpartition("@")
    if userinfo:
        user, _, password = userinfo.partition(":")
        credentials = urllib.parse.unquote(user) + ":" + urllib.parse.unquote(password)
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
        url = urllib.parse.urlunsplit(parts._replace(netloc=host))
    request = urllib.request.Request(url, method=method, headers=headers, data=b"" if method in ("PUT", "POST") else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")
    except urllib.error.URLError as error:  # refused, no such host, timed out: the OS's words name no URL
        return 0, str(error.reason) if isinstance(error.reason, OSError) else "URLError"
    except OSError as error:
        return 0, str(error)
    except (ValueError, http.client.HTTPException) as error:  # a malformed URL: its text may hold the password
        return 0, type(error).__name__


def instances(base: str, service: str, call: Call = http_call) -> List[Dict[str, Any]]:
    """The registered instances of ``service`` (its app is the name in capitals); [] when the
    registry does not know the app (404). RegistryError when it does not answer."""
    status, body = call("GET", "{0}/apps/{1}".format(base.rstrip("/"), urllib.parse.quote(service.upper())))
    if status == 404:
        return []
    if status != 200:
        raise RegistryError("GET /apps/{0} answered {1}".format(service.upper(), status or "nothing (" + body + ")"))
    try:
        found = json.loads(body).get("application", {}).get("instance", [])
    except (ValueError, AttributeError):
        raise RegistryError("GET /apps/{0} did not answer Eureka's JSON".format(service.upper())) from None
    return [found] if isinstance(found, dict) else [i for i in found if isinstance(i, dict)]


def wait_up(base: str, service: str, addresses: Sequence[str], timeout: float, call: Call = http_call,
            clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> List[str]:
    """Wait up to ``timeout`` seconds until an instance at each of ``addresses`` is registered UP;
    returns their instance ids. RegistryError says which addresses were missing, or how the
    registry failed, once the time is up."""
    deadline, problem = clock() + timeout, ""
    while True:
        try:
            up = {i.get("ipAddr"): i.get("instanceId") for i in instances(base, service, call) if i.get("status") == "UP"}
            missing = [a for a in addresses if a not in up]
            if not missing:
                return [up[a] for a in addresses]
            problem = "no instance UP at {0}".format(", ".join(missing))
        except RegistryError as error:
            problem = str(error)
        if clock() >= deadline:
            raise RegistryError(problem)
        sleep(1)


def take_out_of_service(base: str, service: str, addresses: Sequence[str], call: Call = http_call) -> List[str]:
    """Set status OUT_OF_SERVICE on every instance of ``service`` at one of ``addresses``, as an
    operator's override: the registry shows it to callers until the instance cancels. Returns the
    instance ids taken out; RegistryError when the registry refuses one."""
    taken: List[str] = []
    for instance in instances(base, service, call):
        iid: Optional[str] = instance.get("instanceId")
        if instance.get("ipAddr") not in addresses or not iid:
            continue
        status, body = call("PUT", "{0}/apps/{1}/{2}/status?value=OUT_OF_SERVICE".format(
            base.rstrip("/"), urllib.parse.quote(service.upper()), urllib.parse.quote(iid, safe=":")))
        if status not in (200, 204):
            raise RegistryError("taking {0} out of service answered {1}".format(iid, status or "nothing (" + body + ")"))
        taken.append(iid)
    return taken
