"""Unit tests for the bench stand-in service (tests/bench/images/standin/app.py).

No Docker: app.py runs as a subprocess on a free loopback port.
Run: python -m pytest tests/unit/standin
"""

import importlib.util
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "bench" / "images" / "standin" / "app.py"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STANDIN_") and k != "AWS_XRAY_DAEMON_ADDRESS"}
    env.update({"STANDIN_BIND": "127.0.0.1", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def get(port, path, timeout=5):
    """Return (status, headers, body) without raising on 4xx/5xx."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read().decode()


class Standin:
    def __init__(self, app=APP, **env):
        self.port = free_port()
        env.setdefault("STANDIN_PORT", str(self.port))
        self.proc = subprocess.Popen(
            [sys.executable, str(app)], env=base_env(**env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait_listening(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError("exited %s early:\n%s\n%s" % (self.proc.returncode, out, err))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("not listening after %ss" % timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


@pytest.fixture
def standin():
    started = []

    def start(app=APP, wait=True, **env):
        s = Standin(app=app, **env)
        started.append(s)
        if wait:
            s.wait_listening()
        return s

    yield start
    for s in started:
        s.stop()


def test_refuses_to_start_naming_missing_keys_without_values(standin):
    s = standin(wait=False,
                STANDIN_SERVICE="sgivu-auth",
                STANDIN_REQUIRED_ENV="ISSUER_URL, SERVICE_INTERNAL_SECRET_KEY,REDIS_PASSWORD,EMPTY_ONE",
                SERVICE_INTERNAL_SECRET_KEY="super-secret-value-123",
                EMPTY_ONE="")
    out, err = s.proc.communicate(timeout=10)
    assert s.proc.returncode == 2
    assert "missing required environment: ISSUER_URL, REDIS_PASSWORD, EMPTY_ONE" in err
    assert "SERVICE_INTERNAL_SECRET_KEY" not in err
    assert "super-secret-value-123" not in out + err
    # It never listened.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=0.5).close()


def test_starts_when_required_keys_present(standin):
    s = standin(STANDIN_REQUIRED_ENV="A_KEY,B_KEY", A_KEY="x", B_KEY="y")
    status, _, _ = get(s.port, "/actuator/health")
    assert status == 200


def test_health_reports_service_and_version(standin):
    s = standin(STANDIN_SERVICE="sgivu-ml", STANDIN_HEALTH_PATH="/health",
                STANDIN_VERSION="1.2.3")
    status, headers, body = get(s.port, "/health")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "UP", "service": "sgivu-ml", "version": "1.2.3"}
    status, _, body = get(s.port, "/version")
    assert (status, body.strip()) == (200, "1.2.3")


def test_default_health_path_is_actuator_health(standin):
    s = standin(STANDIN_SERVICE="sgivu-user", STANDIN_VERSION="2.0.0")
    status, _, body = get(s.port, "/actuator/health")
    assert status == 200 and json.loads(body)["version"] == "2.0.0"


def test_unhealthy_by_environment_answers_503(standin):
    s = standin(STANDIN_HEALTHY="false", STANDIN_VERSION="9.9.9")
    status, _, body = get(s.port, "/actuator/health")
    assert status == 503
    assert json.loads(body)["status"] == "DOWN"
    # Everything else still answers.
    assert get(s.port, "/anything")[0] == 200


def test_never_healthy_marker_overrides_environment(standin, tmp_path):
    # The NEVER_HEALTHY=1 build arg bakes a marker file next to app.py.
    app = tmp_path / "app.py"
    shutil.copy(APP, app)
    (tmp_path / "NEVER_HEALTHY").touch()
    s = standin(app=app, STANDIN_HEALTHY="true", STANDIN_VERSION="6.6.6-bad")
    status, _, body = get(s.port, "/actuator/health")
    assert status == 503
    assert json.loads(body) == {"status": "DOWN", "service": "standin", "version": "6.6.6-bad"}


def test_a_failing_release_answers_500_to_its_share_of_requests_and_stays_healthy(standin):
    # The FAIL_SHARE=0.3 build arg: healthy by every health check, and still bad (the bake window's case).
    s = standin(STANDIN_FAIL_SHARE="0.3", STANDIN_VERSION="1.1.0-failing")
    statuses = [get(s.port, "/v1/users/%d" % n)[0] for n in range(20)]
    assert statuses.count(500) == 6 and statuses.count(200) == 14, statuses
    assert {get(s.port, "/actuator/health")[0] for _ in range(10)} == {200}


def test_a_slow_release_waits_before_every_answer_but_its_health(standin):
    s = standin(STANDIN_LATENCY_MS="400")
    started = time.monotonic()
    assert get(s.port, "/v1/users/1")[0] == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    assert get(s.port, "/actuator/health")[0] == 200
    assert time.monotonic() - started < 0.3


def test_unknown_path_echoes_service_and_path(standin):
    s = standin(STANDIN_SERVICE="sgivu-gateway", STANDIN_VERSION="1.0.0")
    status, _, body = get(s.port, "/v1/vehicles/42?x=1")
    assert status == 200
    data = json.loads(body)
    assert data["service"] == "sgivu-gateway"
    assert data["version"] == "1.0.0"
    assert data["path"] == "/v1/vehicles/42?x=1"
    assert data["hostname"] == socket.gethostname()
    status, _, body = get(s.port, "/")
    assert status == 200 and json.loads(body)["path"] == "/"


def test_actuator_env_answers_harmlessly(standin):
    s = standin(STANDIN_SERVICE="sgivu-auth", SECRET_THING="do-not-leak")
    status, _, body = get(s.port, "/actuator/env")
    assert status == 200
    assert "do-not-leak" not in body


def test_items_and_session_without_backends_are_503(standin):
    s = standin()
    assert get(s.port, "/items")[0] == 503
    assert get(s.port, "/session")[0] == 503


def test_logs_one_line_per_request(standin):
    s = standin(STANDIN_SERVICE="sgivu-client")
    for p in ("/a", "/b", "/c"):
        get(s.port, p)
    s.proc.send_signal(signal.SIGTERM)
    out, _ = s.proc.communicate(timeout=10)
    request_lines = [line for line in out.splitlines() if '"GET /' in line]
    assert len(request_lines) == 3
    assert all("sgivu-client" in line for line in request_lines)


def test_health_probes_are_logged_only_when_their_answer_changes(standin):
    """An actuator logs no probe; a line per probe (every second while a service starts) would push
    what the service said (listening on ...) out of the log tail a failed deploy shows."""
    s = standin(STANDIN_SERVICE="sgivu-client")
    for _ in range(5):
        assert get(s.port, "/actuator/health")[0] == 200
    s.proc.send_signal(signal.SIGTERM)
    out, _ = s.proc.communicate(timeout=10)
    assert '"GET /actuator/health' not in out
    assert [line.split(" ", 1)[1] for line in out.splitlines() if "health check answered" in line] == [
        "sgivu-client: health check answered 200 (the first probe)"]
    assert "listening on" in out


def test_a_client_that_resets_its_connection_leaves_no_traceback_in_the_log(standin):
    """A health probe killed at its timeout resets its connection. A real service logs nothing
    for that; a traceback would push the lines an operator needs out of the log tail."""
    s = standin()
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.sendall(b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)  # answered; the server waits on the kept connection for the next request
        sock.close()     # linger 0: the close sends RST, as a killed process's socket does
    time.sleep(0.3)
    assert get(s.port, "/after")[0] == 200
    s.proc.send_signal(signal.SIGTERM)
    out, err = s.proc.communicate(timeout=10)
    assert "Traceback" not in out + err
    assert "ConnectionResetError" not in out + err
    assert '"GET /after' in out


def test_startup_delay_postpones_listening(standin):
    s = standin(wait=False, STANDIN_STARTUP_DELAY="1.5")
    t0 = time.monotonic()
    s.wait_listening()
    assert time.monotonic() - t0 >= 1.2


def test_sigterm_exits_zero(standin):
    s = standin()
    assert get(s.port, "/actuator/health")[0] == 200
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    s.proc.communicate(timeout=10)
    assert s.proc.returncode == 0
    assert time.monotonic() - t0 < 5


def test_sigterm_during_startup_delay_exits_zero(standin):
    s = standin(wait=False, STANDIN_STARTUP_DELAY="30")
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    s.proc.communicate(timeout=10)
    assert s.proc.returncode == 0


def _read_until_closed(sock):
    """Everything the server sends until it closes the connection."""
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks).decode()
        chunks.append(data)


def _kept_connection(port, timeout):
    """A connection that had one GET answered and was kept open: (socket, that answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < int(
            re.search(rb"Content-Length: (\d+)", answer).group(1)):
        answer += sock.recv(65536)
    return sock, answer.decode()


def test_sigterm_finishes_in_flight_request(standin):
    """A request already being served completes before the process exits."""
    s = standin()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    # Send a partial request: the server thread is now in flight.
    sock.sendall(b"GET /in-flight HTTP/1.0\r\nHost: x\r\n")
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert s.proc.poll() is None  # still finishing the request
    sock.sendall(b"\r\n")
    response = _read_until_closed(sock)
    sock.close()
    assert response.startswith("HTTP/1.1 200")
    assert '"path": "/in-flight"' in response
    s.proc.communicate(timeout=10)
    assert s.proc.returncode == 0


def test_requests_share_one_keep_alive_connection_as_nginx_upstreams_do(standin):
    import http.client
    s = standin()
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
    answers = []
    for path in ("/v1/users", "/v1/users/1"):
        conn.request("GET", path)
        resp = conn.getresponse()
        answers.append((resp.version, resp.status, resp.getheader("Connection"), json.loads(resp.read())["path"]))
        if len(answers) == 1:
            first = conn.sock
    assert conn.sock is first, "the second request needed a new connection"
    conn.request("POST", "/v1/users", body=b'{"name": "x"}', headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    answers.append((resp.version, resp.status, resp.getheader("Connection"), json.loads(resp.read())["path"]))
    assert conn.sock is first
    assert answers == [(11, 200, None, "/v1/users"), (11, 200, None, "/v1/users/1"), (11, 200, None, "/v1/users")]
    conn.close()


def test_an_idle_keep_alive_connection_is_closed_after_its_timeout(standin):
    s = standin(STANDIN_KEEPALIVE_TIMEOUT="0.5")
    sock, first = _kept_connection(s.port, timeout=5)
    assert first.startswith("HTTP/1.1 200") and "Connection: close" not in first
    started = time.monotonic()
    assert _read_until_closed(sock) == ""  # the server ends the idle connection
    assert time.monotonic() - started < 3
    sock.close()


def test_sigterm_ends_idle_keep_alive_connections_and_exits_at_once(standin):
    """An idle connection Nginx keeps does not hold the stop up to the keep-alive timeout."""
    s = standin()
    sock, first = _kept_connection(s.port, timeout=10)
    assert first.startswith("HTTP/1.1 200")
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    assert _read_until_closed(sock) == ""
    s.proc.communicate(timeout=10)
    assert s.proc.returncode == 0 and time.monotonic() - t0 < 3
    sock.close()


def test_a_request_in_flight_at_sigterm_is_answered_with_connection_close(standin):
    s = standin()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(b"GET /a HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    assert s.proc.poll() is None
    sock.sendall(b"\r\n")
    response = _read_until_closed(sock)
    assert response.startswith("HTTP/1.1 200") and "Connection: close" in response
    s.proc.communicate(timeout=10)
    assert s.proc.returncode == 0
    sock.close()


def segments_seen(daemon, want, timeout=5):
    """Poll the stand-in X-Ray daemon's /segments until `want` segments arrived."""
    deadline = time.monotonic() + timeout
    while True:
        status, _, body = get(daemon.port, "/segments")
        assert status == 200
        seen = json.loads(body)
        if seen["received"] >= want or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def test_a_traced_service_sends_one_segment_per_request_to_the_xray_daemon(standin):
    daemon = standin(STANDIN_SERVICE="xray-daemon", STANDIN_XRAY_DAEMON="true")
    app = standin(STANDIN_SERVICE="lottery", STANDIN_VERSION="1.0.0",
                  AWS_XRAY_DAEMON_ADDRESS="tcp:127.0.0.1:%d udp:127.0.0.1:%d" % (daemon.port, daemon.port))
    assert get(app.port, "/bbb-lotto/lottery")[0] == 200
    assert get(app.port, "/actuator/health")[0] == 200  # not traced
    seen = segments_seen(daemon, 1)
    time.sleep(0.3)  # a segment of the health check would have arrived by now
    seen = segments_seen(daemon, 2, timeout=0)
    assert seen["received"] == 1
    segment = seen["segments"][0]
    assert (segment["name"], segment["http"]) == (
        "lottery", {"request": {"method": "GET", "url": "/bbb-lotto/lottery"}, "response": {"status": 200}})
    assert segment["trace_id"].startswith("1-") and len(segment["trace_id"]) == 35
    assert segment["start_time"] <= segment["end_time"]


def test_the_xray_daemon_drops_datagrams_that_are_not_segments(standin):
    daemon = standin(STANDIN_SERVICE="xray-daemon", STANDIN_XRAY_DAEMON="true")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"not a segment", ("127.0.0.1", daemon.port))
        sock.sendto(b'{"format": "xml"}\n{"name": "x"}', ("127.0.0.1", daemon.port))
        sock.sendto(b'{"format": "json", "version": 1}\n' + b"[" * 50000, ("127.0.0.1", daemon.port))
        sock.sendto(b'{"format": "json", "version": 1}\n5', ("127.0.0.1", daemon.port))
        sock.sendto(b'{"format": "json", "version": 1}\n{"name": "ok"}', ("127.0.0.1", daemon.port))
    seen = segments_seen(daemon, 1)
    time.sleep(0.3)
    assert segments_seen(daemon, 2, timeout=0) == {"received": 1, "segments": [{"name": "ok"}]}


def test_an_untraced_service_has_no_segments_endpoint(standin):
    s = standin(STANDIN_SERVICE="ticket")
    status, _, body = get(s.port, "/segments")
    assert status == 200 and json.loads(body)["path"] == "/segments"  # the echo, nothing else


def test_a_request_that_cannot_be_parsed_sends_no_segment(standin):
    daemon = standin(STANDIN_SERVICE="xray-daemon", STANDIN_XRAY_DAEMON="true")
    app = standin(STANDIN_SERVICE="lottery", AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:%d" % daemon.port)
    with socket.create_connection(("127.0.0.1", app.port), timeout=5) as conn:
        conn.sendall(b"NOT A REQUEST\r\n\r\n")
        answer = conn.recv(4096)
        assert b"Error code: 400" in answer
    assert get(app.port, "/bbb-lotto/after")[0] == 200
    seen = segments_seen(daemon, 1)
    time.sleep(0.3)
    seen = segments_seen(daemon, 2, timeout=0)
    assert [s["http"]["request"]["url"] for s in seen["segments"]] == ["/bbb-lotto/after"]


# --- the Eureka server (sgivu-discovery) and its clients ------------------------------------------

def request(port, method, path, body=None):
    """(status, parsed JSON or text) of one request, without raising on 4xx/5xx."""
    data = body.encode() if body is not None else None
    headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data else {})}
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def eureka(port, method, path, body=None):
    return request(port, method, "/eureka" + path, json.dumps(body) if body is not None else None)


def instances(port, app):
    status, body = eureka(port, "GET", "/apps/" + app)
    return body["application"]["instance"] if status == 200 else []


def wait_for(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    return condition()


@pytest.fixture
def discovery(standin):
    return standin(STANDIN_SERVICE="sgivu-discovery", STANDIN_EUREKA_SERVER="true", STANDIN_EUREKA_EVICTION="0.3")


def test_a_service_registers_up_with_its_port_and_renews_its_lease(standin, discovery):
    user = standin(STANDIN_SERVICE="sgivu-user", EUREKA_URL="http://127.0.0.1:%d/eureka/" % discovery.port,
                   STANDIN_EUREKA_RENEW="0.3")
    found = wait_for(lambda: instances(discovery.port, "SGIVU-USER"))
    assert [(i["app"], i["status"], i["port"]["$"]) for i in found] == [("SGIVU-USER", "UP", user.port)]
    assert found[0]["leaseInfo"]["durationInSecs"] == 0.9
    time.sleep(1.5)  # beyond its lease: only renewals keep it
    assert [i["status"] for i in instances(discovery.port, "SGIVU-USER")] == ["UP"]
    status, listing = eureka(discovery.port, "GET", "/apps")
    assert status == 200 and [a["name"] for a in listing["applications"]["application"]] == ["SGIVU-USER"]


@pytest.mark.parametrize("healthcheck,status", [("true", "DOWN"), ("TRUE", "DOWN"), ("yes", "DOWN"), ("", "UP"),
                                                ("false", "UP"), ("False", "UP")])
def test_an_unhealthy_service_registers_down_only_with_the_client_s_healthcheck(standin, discovery, healthcheck, status):
    """Spring's Eureka client registers UP once started, healthy or not, unless
    eureka.client.healthcheck.enabled makes the registered status follow the health endpoint."""
    standin(STANDIN_SERVICE="sgivu-user", STANDIN_HEALTHY="false", EUREKA_CLIENT_HEALTHCHECK_ENABLED=healthcheck,
            EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port, STANDIN_EUREKA_RENEW="0.3")
    assert [i["status"] for i in wait_for(lambda: instances(discovery.port, "SGIVU-USER"))] == [status]


def test_an_operator_s_out_of_service_holds_through_renewals_until_it_is_removed(standin, discovery):
    standin(STANDIN_SERVICE="sgivu-user", EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port,
            STANDIN_EUREKA_RENEW="0.3")
    iid = wait_for(lambda: instances(discovery.port, "SGIVU-USER"))[0]["instanceId"]
    assert eureka(discovery.port, "PUT", "/apps/SGIVU-USER/%s/status?value=OUT_OF_SERVICE" % iid)[0] == 200
    time.sleep(1)
    assert [i["status"] for i in instances(discovery.port, "SGIVU-USER")] == ["OUT_OF_SERVICE"]
    assert eureka(discovery.port, "DELETE", "/apps/SGIVU-USER/%s/status" % iid)[0] == 200
    assert [i["status"] for i in instances(discovery.port, "SGIVU-USER")] == ["UP"]
    assert eureka(discovery.port, "PUT", "/apps/SGIVU-USER/nobody/status?value=OUT_OF_SERVICE")[0] == 404


def test_a_service_the_server_forgot_registers_again_at_its_next_renewal(standin, discovery):
    standin(STANDIN_SERVICE="sgivu-user", EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port,
            STANDIN_EUREKA_RENEW="0.3")
    iid = wait_for(lambda: instances(discovery.port, "SGIVU-USER"))[0]["instanceId"]
    assert eureka(discovery.port, "DELETE", "/apps/SGIVU-USER/" + iid)[0] == 200
    assert [i["instanceId"] for i in wait_for(lambda: instances(discovery.port, "SGIVU-USER"), 5)] == [iid]


def test_a_lease_nobody_renews_is_evicted(discovery):
    instance = {"instance": {"instanceId": "gone:1", "hostName": "10.0.0.9", "app": "SGIVU-X", "status": "UP",
                             "port": {"$": 8080}, "leaseInfo": {"durationInSecs": 1}}}
    assert eureka(discovery.port, "POST", "/apps/SGIVU-X", instance)[0] == 204
    assert len(instances(discovery.port, "SGIVU-X")) == 1
    assert wait_for(lambda: not instances(discovery.port, "SGIVU-X"), 5)
    assert eureka(discovery.port, "PUT", "/apps/SGIVU-X/gone:1")[0] == 404


def test_a_registration_without_an_instance_is_refused(discovery):
    assert eureka(discovery.port, "POST", "/apps/SGIVU-X", {"nothing": 1})[0] == 400
    assert eureka(discovery.port, "GET", "/apps/SGIVU-X")[0] == 404


def test_on_sigterm_a_service_answers_its_in_flight_request_then_cancels_its_registration(standin, discovery):
    user = standin(STANDIN_SERVICE="sgivu-user", EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port,
                   STANDIN_EUREKA_RENEW="0.3")
    assert wait_for(lambda: instances(discovery.port, "SGIVU-USER"))
    sock = socket.create_connection(("127.0.0.1", user.port), timeout=10)
    sock.sendall(b"GET /v1/users/7 HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.3)
    user.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert instances(discovery.port, "SGIVU-USER"), "it left the registry before its in-flight request was answered"
    sock.sendall(b"\r\n")
    assert _read_until_closed(sock).startswith("HTTP/1.1 200")
    sock.close()
    user.proc.communicate(timeout=10)
    assert user.proc.returncode == 0
    assert instances(discovery.port, "SGIVU-USER") == []


# --- the gateway's routes: lb:// through the registry, http:// by DNS name ------------------------

def registered(standin, discovery, service, **env):
    """A stand-in registered UP with the discovery stand-in at 127.0.0.1."""
    started = standin(STANDIN_SERVICE=service, EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port,
                      STANDIN_EUREKA_RENEW="0.3", STANDIN_INSTANCE_ADDRESS="127.0.0.1", **env)
    assert wait_for(lambda: [i for i in instances(discovery.port, service.upper())
                             if i["port"]["$"] == started.port and i["status"] == "UP"])
    return started


def gateway(standin, discovery, routes, ttl="35"):
    return standin(STANDIN_SERVICE="sgivu-gateway", STANDIN_ROUTES=routes, STANDIN_LB_CACHE_TTL=ttl,
                   EUREKA_URL="http://127.0.0.1:%d/eureka" % discovery.port)


def test_the_gateway_sends_get_and_post_under_a_route_to_a_registered_instance(standin, discovery):
    registered(standin, discovery, "sgivu-user")
    gw = gateway(standin, discovery, "/v1/users=lb://sgivu-user")
    status, body = request(gw.port, "GET", "/v1/users/42?page=2")
    assert status == 200
    assert (body["service"], body["method"], body["path"]) == ("sgivu-user", "GET", "/v1/users/42?page=2")
    status, body = request(gw.port, "POST", "/v1/users", '{"name": "ana"}')
    assert (status, body["service"], body["method"]) == (200, "sgivu-user", "POST")
    # Paths outside every route are the gateway's own, a prefix is matched whole.
    assert request(gw.port, "GET", "/v1/usersx")[1]["service"] == "sgivu-gateway"
    assert request(gw.port, "GET", "/v1/session/x")[1]["service"] == "sgivu-gateway"


def test_the_gateway_takes_the_up_instances_in_turn(standin, discovery):
    registered(standin, discovery, "sgivu-user", STANDIN_VERSION="1.0.0")
    registered(standin, discovery, "sgivu-user", STANDIN_VERSION="1.1.0")
    gw = gateway(standin, discovery, "/v1/users=lb://sgivu-user")
    versions = [request(gw.port, "GET", "/v1/users/1")[1]["version"] for _ in range(4)]
    assert sorted(versions) == ["1.0.0", "1.0.0", "1.1.0", "1.1.0"] and versions[0] != versions[1]


def test_the_gateway_calls_an_instance_that_left_the_registry_until_its_cached_list_expires(standin, discovery):
    """Spring Cloud LoadBalancer's cache: why an instance must leave the registry a cache time before it stops."""
    user = registered(standin, discovery, "sgivu-user")
    gw = gateway(standin, discovery, "/v1/users=lb://sgivu-user", ttl="2")
    assert request(gw.port, "GET", "/v1/users/1")[0] == 200
    user.proc.send_signal(signal.SIGTERM)
    user.proc.communicate(timeout=10)
    assert instances(discovery.port, "SGIVU-USER") == []
    status, body = request(gw.port, "GET", "/v1/users/1")
    assert status == 502 and "lb://sgivu-user at 127.0.0.1:%d" % user.port in body["error"]
    time.sleep(2.1)
    assert request(gw.port, "GET", "/v1/users/1") == (503, {"error": "no instance of sgivu-user is available"})


def test_the_gateway_stops_calling_an_out_of_service_instance_once_its_cache_expires(standin, discovery):
    old = registered(standin, discovery, "sgivu-user", STANDIN_VERSION="1.0.0")
    registered(standin, discovery, "sgivu-user", STANDIN_VERSION="1.1.0")
    iid = next(i["instanceId"] for i in instances(discovery.port, "SGIVU-USER") if i["port"]["$"] == old.port)
    assert eureka(discovery.port, "PUT", "/apps/SGIVU-USER/%s/status?value=OUT_OF_SERVICE" % iid)[0] == 200
    gw = gateway(standin, discovery, "/v1/users=lb://sgivu-user", ttl="0.5")
    assert {request(gw.port, "GET", "/v1/users/1")[1]["version"] for _ in range(4)} == {"1.1.0"}


def test_the_gateway_keeps_its_list_while_the_registry_does_not_answer(standin, discovery):
    """A stop-first update of the registry itself: the Eureka client keeps the copy it has."""
    registered(standin, discovery, "sgivu-user")
    gw = gateway(standin, discovery, "/v1/users=lb://sgivu-user", ttl="0.3")
    assert request(gw.port, "GET", "/v1/users/1")[0] == 200
    discovery.proc.send_signal(signal.SIGTERM)
    discovery.proc.communicate(timeout=10)
    time.sleep(0.5)
    assert [request(gw.port, "GET", "/v1/users/1")[0] for _ in range(3)] == [200, 200, 200]


def test_a_registry_restarted_without_peers_keeps_its_list_from_the_clients_until_they_registered_again(standin):
    """A stop-first update of the registry itself, with Eureka's default-open-for-traffic-count 0: for its
    wait when sync is empty the new registry answers reads with 403 and takes registrations; every
    instance registers again at its next renewal, and the gateway calls the ones it knew throughout."""
    closed = dict(STANDIN_SERVICE="sgivu-discovery", STANDIN_EUREKA_SERVER="true",
                  EUREKA_SERVER_DEFAULTOPENFORTRAFFICCOUNT="0", EUREKA_SERVER_WAITTIMEINMSWHENSYNCEMPTY="1500")
    first = standin(**closed)
    assert eureka(first.port, "GET", "/apps")[0] == 403
    assert eureka(first.port, "GET", "/apps/SGIVU-USER")[0] == 403
    time.sleep(1.6)
    user = registered(standin, first, "sgivu-user")
    gw = gateway(standin, first, "/v1/users=lb://sgivu-user", ttl="0.2")
    assert request(gw.port, "GET", "/v1/users/1")[0] == 200
    first.proc.send_signal(signal.SIGTERM)
    first.proc.communicate(timeout=10)
    second = standin(wait=False, **dict(closed, STANDIN_PORT=str(first.port)))
    second.port = first.port
    second.wait_listening()
    assert eureka(second.port, "GET", "/apps/SGIVU-USER")[0] == 403
    codes, deadline = [], time.monotonic() + 2.5
    while time.monotonic() < deadline:
        codes.append(request(gw.port, "GET", "/v1/users/1")[0])
        time.sleep(0.05)
    assert set(codes) == {200}
    assert [i["port"]["$"] for i in instances(second.port, "SGIVU-USER")] == [user.port]


def test_a_route_by_dns_name_needs_no_registry(standin):
    ticket = standin(STANDIN_SERVICE="ticket")
    lottery = standin(STANDIN_SERVICE="lottery", STANDIN_ROUTES="/bbb/lotto/ticket=http://127.0.0.1:%d" % ticket.port)
    status, body = request(lottery.port, "POST", "/bbb/lotto/ticket", "{}")
    assert (status, body["service"], body["path"]) == (200, "ticket", "/bbb/lotto/ticket")


def load_app():
    spec = importlib.util.spec_from_file_location("standin_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_route_by_dns_name_keeps_the_addresses_it_looked_up_for_the_dns_cache_time(monkeypatch):
    """The JVM's networkaddress.cache.ttl: why a container must leave its name a cache time before it stops."""
    app = load_app()
    answers = [["172.30.0.8", "172.30.0.9"], ["172.30.0.9"]]
    lookups = []

    def getaddrinfo(host, port, *args):
        lookups.append((host, port))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[min(len(lookups), 2) - 1]]
    monkeypatch.setattr(app.socket, "getaddrinfo", getaddrinfo)
    now = [100.0]
    balancer = app.LoadBalancer(types.SimpleNamespace(dns_cache_ttl=30.0), clock=lambda: now[0])
    uri = "http://sgivu-ml:8000"
    assert [balancer.target(uri) for _ in range(3)] == [("172.30.0.8", 8000), ("172.30.0.9", 8000), ("172.30.0.8", 8000)]
    now[0] += 29.9  # the old container left the name; the caller still has it
    assert balancer.target(uri) == ("172.30.0.9", 8000) and balancer.target(uri) == ("172.30.0.8", 8000)
    now[0] += 0.1
    assert {balancer.target(uri) for _ in range(3)} == {("172.30.0.9", 8000)}
    assert lookups == [("sgivu-ml", 8000)] * 2


def test_a_name_that_does_not_resolve_is_looked_up_again_at_the_next_call(monkeypatch):
    app = load_app()
    calls = []

    def getaddrinfo(host, port, *args):
        calls.append(host)
        if len(calls) == 1:
            raise socket.gaierror("Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("172.30.0.9", port))]
    monkeypatch.setattr(app.socket, "getaddrinfo", getaddrinfo)
    balancer = app.LoadBalancer(types.SimpleNamespace(dns_cache_ttl=30.0))
    assert balancer.target("http://ticket:8080") == ("ticket", 8080)  # the call then fails: 502
    assert balancer.target("http://ticket:8080") == ("172.30.0.9", 8080)


@pytest.mark.parametrize("routes", ["v1/users=lb://sgivu-user", "/v1/users=sgivu-user", "/v1/users=ftp://x", "/v1/users"])
def test_a_route_that_is_not_prefix_and_uri_stops_the_start_naming_it(standin, routes):
    s = standin(wait=False, STANDIN_ROUTES=routes)
    _, err = s.proc.communicate(timeout=10)
    assert s.proc.returncode == 2
    assert "bad configuration: STANDIN_ROUTES: %r is not PREFIX=lb://NAME or PREFIX=http://HOST:PORT" % routes in err
