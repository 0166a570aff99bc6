"""The ECR login module, run as Ansible runs it, against a real moto server on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import ansible_cli  # tests/lib
import pytest

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
    return ansible_cli.run_module("ecr_authorization", args,
                                  env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})


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
