"""What an operator expects of an instance after the docker_host role, checked from outside on every
host of the fleet (one Debian 12, two Debian 13): the fleet's converge is deploy.yml, whose first play
is docker_host, so one converge proves the role on both platforms (idempotence included)."""
from __future__ import annotations

import json
import uuid

from bench_images import BENCH, pushed  # tests/lib, on the path from conftest.py

HELLO, HELLO_NEXT = pushed("hello_1_0"), pushed("hello_1_1")
HELLO_NEXT_VERSION = BENCH.data["local"]["hello_1_1"]["build"]["args"]["VERSION"]


def test_docker_service_is_running(host):
    assert host.service("docker").is_running


def test_docker_service_is_enabled(host):
    assert host.service("docker").is_enabled


def test_compose_plugin_reports_v2(host):
    result = host.run("docker compose version --short")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().lstrip("v").startswith("2.")


def test_compose_plugin_is_installed_system_wide(host, ansible_vars):
    plugin = host.file(f"{ansible_vars.get('docker_host_compose_plugin_dir', '/usr/local/lib/docker/cli-plugins')}/docker-compose")
    assert plugin.user == "root"
    assert plugin.mode == 0o755


def test_daemon_json_has_the_rotation_settings(host, ansible_vars):
    config = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert config["log-driver"] == "json-file"
    assert config["log-opts"] == {
        "max-size": ansible_vars["docker_host_log_max_size"],
        "max-file": str(ansible_vars["docker_host_log_max_file"]),
    }


def test_daemon_json_is_root_owned_and_not_writable_by_others(host):
    daemon_json = host.file("/etc/docker/daemon.json")
    assert daemon_json.user == "root"
    assert daemon_json.mode == 0o644


def test_daemon_uses_json_file_logging(docker_json):
    assert docker_json("docker info --format '{{json .LoggingDriver}}'") == "json-file"


def test_new_containers_get_the_rotation_settings(host, ansible_vars, registry, registry_login, docker_json):
    name = f"sgivu-logcheck-{uuid.uuid4().hex[:8]}"
    login = registry_login()
    assert login.rc == 0, login.stderr
    created = host.run(f"docker create --name {name} {registry['address']}/{HELLO}")
    try:
        assert created.rc == 0, created.stderr
        log_config = docker_json(f"docker inspect --format '{{{{json .HostConfig.LogConfig}}}}' {name}")
    finally:
        host.run(f"docker rm -f {name}")
    assert log_config["Type"] == "json-file"
    assert log_config["Config"]["max-size"] == ansible_vars["docker_host_log_max_size"]
    assert log_config["Config"]["max-file"] == str(ansible_vars["docker_host_log_max_file"])


def test_daemon_has_live_restore(docker_json):
    assert docker_json("docker info --format '{{json .LiveRestoreEnabled}}'") is True


def test_daemon_reaches_the_bench_registry_over_http(ansible_vars, docker_json):
    index = docker_json("docker info --format '{{json .RegistryConfig.IndexConfigs}}'")
    for registry_name in ansible_vars["docker_host_insecure_registries"]:
        assert registry_name in index, f"{registry_name} is not a registry the daemon knows"
        assert index[registry_name]["Secure"] is False


def test_deploy_user_is_in_the_docker_group(host, ansible_vars):
    for user in ansible_vars["docker_host_users"]:
        assert "docker" in host.user(user).groups


def test_deploy_user_runs_docker_without_sudo(ansible_vars, run_as):
    user = ansible_vars["docker_host_users"][0]
    result = run_as(user, "docker ps --format '{{.ID}}'")
    assert result.rc == 0, result.stderr


def test_deploy_user_pulls_from_the_bench_registry_and_runs_it(ansible_vars, registry, registry_login, run_as):
    user = ansible_vars["docker_host_users"][0]
    image = f"{registry['address']}/{HELLO_NEXT}"
    login = registry_login(user)
    assert login.rc == 0, login.stderr
    pulled = run_as(user, f"docker pull --quiet {image}")
    assert pulled.rc == 0, pulled.stderr
    digest = run_as(user, f"docker image inspect --format '{{{{index .RepoDigests 0}}}}' {image}").stdout.strip()
    assert digest.startswith(f"{registry['address']}/{HELLO_NEXT.rsplit(':', 1)[0]}@sha256:")
    ran = run_as(user, f"docker run --rm {digest}")
    assert ran.rc == 0, ran.stderr
    assert ran.stdout.strip() == f"hello from sgivu bench {HELLO_NEXT_VERSION}"
