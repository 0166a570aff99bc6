"""After deploy.yml on the bench: what an operator checks on every stack host."""
from __future__ import annotations


def test_stack_host_has_a_running_docker_engine(host):
    assert host.service("docker").is_running


def test_stack_host_runs_compose_v2(host):
    result = host.run("docker compose version --short")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip().lstrip("v").startswith("2.")


def test_deploy_user_can_use_docker(ansible_vars, run_as):
    for user in ansible_vars["docker_host_users"]:
        result = run_as(user, "docker info --format '{{.ServerVersion}}'")
        assert result.rc == 0, f"{user}: {result.stderr}"
