"""awx/user-data.sh, the new instance's call to AWX's provisioning callback, against a local stand-in of
AWX's callback endpoint (``POST /api/v2/job_templates/<id>/callback/``, loopback only)."""
from __future__ import annotations

import http.server
import os
import subprocess
import threading
from pathlib import Path
from typing import List

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "awx" / "user-data.sh"
KEY = "0123456789abcdef0123456789abcdef"


class Awx(http.server.BaseHTTPRequestHandler):
    """Answers each call with the next status of ``answers`` (the last one repeats)."""

    answers: List[int] = []
    calls: List[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        Awx.calls.append({"path": self.path, "body": body, "type": self.headers.get("Content-Type")})
        self.send_response(Awx.answers[min(len(Awx.calls), len(Awx.answers)) - 1])
        self.end_headers()

    def log_message(self, *args):
        pass


def call_back(answers: List[int]) -> subprocess.CompletedProcess:
    Awx.answers, Awx.calls = answers, []
    server = http.server.HTTPServer(("127.0.0.1", 0), Awx)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(os.environ, AWX_URL=f"http://127.0.0.1:{server.server_port}/", TEMPLATE_ID="7", HOST_CONFIG_KEY=KEY,
               ATTEMPTS="5", RETRY_DELAY="0")
    try:
        return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False)
    finally:
        server.shutdown()


def test_the_instance_posts_the_host_config_key_to_the_templates_callback():
    done = call_back([201])
    assert done.returncode == 0, done.stderr
    assert Awx.calls == [{"path": "/api/v2/job_templates/7/callback/", "body": f"host_config_key={KEY}",
                          "type": "application/x-www-form-urlencoded"}]


def test_it_retries_while_awx_does_not_know_the_instance_yet():
    done = call_back([400, 400, 202])
    assert done.returncode == 0 and len(Awx.calls) == 3
    assert "HTTP 400, attempt 1 of 5" in done.stderr


@pytest.mark.parametrize("status", [403, 404])
def test_a_wrong_key_or_template_stops_at_once_naming_what_to_check(status):
    done = call_back([status])
    assert done.returncode == 1 and len(Awx.calls) == 1
    assert "check TEMPLATE_ID and HOST_CONFIG_KEY" in done.stderr and KEY not in done.stderr + done.stdout


def test_it_gives_up_after_its_attempts():
    done = call_back([500])
    assert done.returncode == 1 and len(Awx.calls) == 5
