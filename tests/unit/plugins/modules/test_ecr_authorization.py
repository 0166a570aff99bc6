"""The ECR login module, run as Ansible runs it, against a real moto server on loopback."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[4]
BIN = os.path.dirname(sys.executable)


@pytest.fixture(scope="module")
def moto_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([os.path.join(BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def run_module(args: dict) -> dict:
    command = [os.path.join(BIN, "ansible"), "localhost", "-c", "local",
               "-e", f"ansible_python_interpreter={sys.executable}",
               "-m", "sgivu.deploy.ecr_authorization", "-a", json.dumps(args)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False).stdout
    return json.loads(out)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_returns_a_docker_login_for_the_registry(moto_url):
    result = run_module({"region": "us-east-1", "endpoint_url": moto_url})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    assert result["username"] == "AWS"
    assert result["password"]
    assert result["registry"].startswith("https://") and ".dkr.ecr.us-east-1." in result["registry"]


def test_an_unreachable_endpoint_fails_with_a_clear_message():
    result = run_module({"region": "us-east-1", "endpoint_url": "http://127.0.0.1:9"})
    assert result["failed"] is True
    assert "could not get an ECR authorization token" in result["msg"]
