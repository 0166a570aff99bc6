"""The registry hand-over of a start-first swap (plugins/module_utils/registry.py), against a fake Eureka.

``Eureka`` answers the REST calls the module makes as the Eureka server does (JSON, 404 for an
unknown app, status overrides), from a dict of instances.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
from typing import Dict, List, Tuple

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import registry

BASE = "http://172.30.0.3:8761/eureka"


class Eureka:
    def __init__(self, *instances: Tuple[str, str, str], down: bool = False) -> None:
        # (instance id, ipAddr, status) of app SGIVU-USER
        self.apps: Dict[str, List[dict]] = {"SGIVU-USER": [
            {"instanceId": iid, "ipAddr": ip, "status": status, "app": "SGIVU-USER"} for iid, ip, status in instances]}
        self.down = down
        self.calls: List[Tuple[str, str]] = []

    def __call__(self, method: str, url: str) -> Tuple[int, str]:
        self.calls.append((method, url))
        if self.down:
            return 0, "[Errno 111] Connection refused"
        path = url[len(BASE):]
        if method == "GET":
            found = self.apps.get(path.split("/")[2], [])
            return (200, json.dumps({"application": {"name": "SGIVU-USER", "instance": found}})) if found else (404, "")
        if method == "PUT" and path.endswith("/status?value=OUT_OF_SERVICE"):
            iid = path.split("/")[3]
            for instance in self.apps["SGIVU-USER"]:
                if instance["instanceId"] == iid:
                    instance["status"] = "OUT_OF_SERVICE"
                    return 200, ""
            return 404, ""
        return 400, ""


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_up_returns_the_instance_ids_of_the_new_addresses_once_they_are_up():
    eureka = Eureka(("old:sgivu-user:8081", "172.30.0.8", "UP"), ("new:sgivu-user:8081", "172.30.0.9", "UP"))
    assert registry.wait_up(BASE, "sgivu-user", ["172.30.0.9"], 10, eureka) == ["new:sgivu-user:8081"]
    assert eureka.calls == [("GET", BASE + "/apps/SGIVU-USER")]


def test_wait_up_keeps_asking_until_the_new_instance_is_up():
    eureka, clock = Eureka(("new:sgivu-user:8081", "172.30.0.9", "STARTING")), Clock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.now >= 3:
            eureka.apps["SGIVU-USER"][0]["status"] = "UP"

    assert registry.wait_up(BASE, "sgivu-user", ["172.30.0.9"], 10, eureka, clock, sleep) == ["new:sgivu-user:8081"]
    assert clock.now == 3


@pytest.mark.parametrize("eureka,reason", [
    (Eureka(("new:sgivu-user:8081", "172.30.0.9", "DOWN")), "no instance UP at 172.30.0.9"),
    (Eureka(), "no instance UP at 172.30.0.9"),  # the app is unknown: 404
    (Eureka(down=True), "GET /apps/SGIVU-USER answered nothing ([Errno 111] Connection refused)"),
])
def test_wait_up_says_what_was_missing_when_the_time_is_up(eureka, reason):
    clock = Clock()
    with pytest.raises(registry.RegistryError, match="^%s$" % re.escape(reason)):
        registry.wait_up(BASE, "sgivu-user", ["172.30.0.9"], 5, eureka, clock, clock.sleep)
    assert clock.now == 5


def test_take_out_of_service_overrides_only_the_old_addresses():
    eureka = Eureka(("old:sgivu-user:8081", "172.30.0.8", "UP"), ("new:sgivu-user:8081", "172.30.0.9", "UP"))
    assert registry.take_out_of_service(BASE, "sgivu-user", ["172.30.0.8"], eureka) == ["old:sgivu-user:8081"]
    assert [i["status"] for i in eureka.apps["SGIVU-USER"]] == ["OUT_OF_SERVICE", "UP"]
    assert ("PUT", BASE + "/apps/SGIVU-USER/old:sgivu-user:8081/status?value=OUT_OF_SERVICE") in eureka.calls


def test_take_out_of_service_of_an_address_the_registry_does_not_hold_does_nothing():
    eureka = Eureka(("new:sgivu-user:8081", "172.30.0.9", "UP"))
    assert registry.take_out_of_service(BASE, "sgivu-user", ["172.30.0.8"], eureka) == []
    assert [m for m, _ in eureka.calls] == ["GET"]


def test_a_refused_override_is_an_error_naming_the_instance():
    def refuses(method: str, url: str) -> Tuple[int, str]:
        if method == "GET":
            return 200, json.dumps({"application": {"instance": {"instanceId": "old:1", "ipAddr": "172.30.0.8", "status": "UP"}}})
        return 500, ""

    with pytest.raises(registry.RegistryError, match="^taking old:1 out of service answered 500$"):
        registry.take_out_of_service(BASE, "sgivu-user", ["172.30.0.8"], refuses)


def test_an_answer_that_is_not_eureka_json_is_an_error():
    with pytest.raises(registry.RegistryError, match="did not answer Eureka's JSON"):
        registry.instances(BASE, "sgivu-user", lambda method, url: (200, "<html>"))


def test_http_call_sends_the_url_s_user_and_password_as_basic_auth_never_in_the_request_line():
    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.update(path=self.path, auth=self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 10
    thread = threading.Thread(target=server.handle_request)
    thread.start()
    try:
        url = "http://eu%40reka:p%3As@ss@127.0.0.1:" + str(server.server_port) + "/eureka/apps/SGIVU-USER"
        assert registry.http_call("GET", url) == (200, "{}")
    finally:
        thread.join(10)
        server.server_close()
    assert seen == {"path": "/eureka/apps/SGIVU-USER",
                    "auth": "Basic " + base64.b64encode("eu@reka:p:s@ss".encode()).decode()}


@pytest.mark.parametrize("url", [
    "http://eureka:s3cr3t-pw@127.0.0.1:1/eureka/apps/X",    # refused, credentials taken off first
    "http://eureka:s3cr3t-pw/x@127.0.0.1:1/eureka/apps/X",  # '/' unencoded in the password: http.client's InvalidURL
    "http://127.0.0.1:1/eureka/apps/X?s3cr3t-pw",            # refused
])
def test_a_failed_call_names_the_error_never_the_url_or_its_password(url):
    status, text = registry.http_call("GET", url, timeout=2)
    assert status == 0 and text and "s3cr3t" not in text
