"""The second stack, from its own inventory with the same roles, seen from outside."""
from __future__ import annotations

import json
import time
import uuid

import pytest
from bench_images import BENCH  # tests/lib (bench/images.yml), on the path from conftest.py


def get(host, path: str) -> tuple[int, str]:
    result = host.run(f"curl -s -o /tmp/.body -w '%{{http_code}}' 'http://127.0.0.1{path}'")
    return int(result.stdout or 0), host.file("/tmp/.body").content_string


def test_every_lottery_service_is_healthy(host, ansible_vars):
    stack = ansible_vars["stack_name"]
    states = host.check_output(
        f"docker ps --filter label=com.docker.compose.project={stack} --format '{{{{.Label \"com.docker.compose.service\"}}}} {{{{.Status}}}}'"
    ).splitlines()
    healthy = {line.split()[0] for line in states if "(healthy)" in line}
    assert healthy == set(ansible_vars["stack_services"])


def test_bbb_lotto_is_routed_to_the_lottery_service(host):
    status, body = get(host, "/bbb-lotto/lottery")
    assert status == 200
    assert json.loads(body)["service"] == "lottery"
    assert json.loads(body)["path"] == "/bbb-lotto/lottery"


@pytest.mark.parametrize("prefix,service", sorted(BENCH.routes("lottery").items()))
def test_the_lottery_calls_the_services_behind_it_by_their_dns_names(host, prefix, service):
    """No registry in this stack: lottery reaches ticket and printer by name on the stack network."""
    status, body = get(host, prefix)
    assert status == 200, body
    assert (json.loads(body)["service"], json.loads(body)["path"]) == (service, prefix)


def test_other_paths_are_not_routed_to_the_app(host):
    assert get(host, "/v1/anything")[0] == 404


@pytest.mark.parametrize("service", ["ticket", "printer", "xray-daemon"])
def test_internal_services_publish_nothing(host, ansible_vars, service):
    ports = host.check_output(
        f"docker ps --filter label=com.docker.compose.service={service} --format '{{{{.Ports}}}}'"
    )
    assert "->" not in ports


def test_lottery_publishes_on_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening


def test_the_settings_from_parameter_store_reach_the_env_file(host, ansible_vars):
    env = host.file(f"/opt/{ansible_vars['stack_name']}/stack.env")
    assert env.mode == 0o600
    assert "LOTTERY_TABLE=lottery-tickets" in env.content_string.splitlines()


def container_of(host, stack: str, service: str) -> str:
    ids = host.check_output(
        f"docker ps -q --filter label=com.docker.compose.project={stack} --filter label=com.docker.compose.service={service}"
    ).split()
    assert len(ids) == 1, f"{service}: {len(ids)} containers run, one expected"
    return ids[0]


@pytest.mark.parametrize("service", ["ticket", "printer", "lottery"])
def test_each_service_is_pointed_at_the_tracing_daemon(host, ansible_vars, service):
    env = json.loads(host.check_output(
        f"docker inspect --format '{{{{json .Config.Env}}}}' {container_of(host, ansible_vars['stack_name'], service)}"))
    address = ansible_vars["stack_services"]["xray-daemon"]["provides_env"]["AWS_XRAY_DAEMON_ADDRESS"]
    assert f"AWS_XRAY_DAEMON_ADDRESS={address}" in env


def test_a_lottery_api_call_sends_its_trace_segment_to_the_daemon(host, ansible_vars):
    path = f"/bbb-lotto/lottery/{uuid.uuid4().hex}"
    assert get(host, path)[0] == 200
    daemon = container_of(host, ansible_vars["stack_name"], "xray-daemon")
    for _ in range(50):
        seen = json.loads(host.check_output(f"docker exec {daemon} curl -fsS http://127.0.0.1:2000/segments"))
        ours = [s for s in seen["segments"] if s["http"]["request"]["url"] == path]
        if ours:
            break
        time.sleep(0.1)
    assert [(s["name"], s["http"]["response"]["status"]) for s in ours] == [("lottery", 200)]
