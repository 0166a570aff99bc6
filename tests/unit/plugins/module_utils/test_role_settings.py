"""Unit tests of the roles' settings check (plugins/module_utils/role_settings.py, filter role_setting_problems)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible_cli import cli_bin, cli_env

from ansible_collections.sgivu.deploy.plugins.filter.roles import FilterModule
from ansible_collections.sgivu.deploy.plugins.module_utils.role_settings import role_options, setting_problems

REPO_ROOT = Path(__file__).resolve().parents[4]


def test_every_role_spec_is_read():
    options = role_options()
    roles = {path.parent.parent.name for path in (REPO_ROOT / "roles").glob("*/meta/argument_specs.yml")}
    assert {role for role, _ in options.values()} == roles
    assert options["stack_health_poll_interval"] == ("stack_health", {"type": "int"})
    # Whether an option is set, and its value when it is not, are the role's business.
    assert "required" not in options["ssm_secrets_path"][1] and "default" not in options["nginx_gzip"][1]


@pytest.mark.parametrize("name, value, problem", [
    ("stack_health_poll_interval", "abc", 'stack_health_poll_interval (role stack_health) must be a whole number, got "abc"'),
    ("nginx_tls_enabled", "maybe", 'nginx_tls_enabled (role nginx) must be true or false, got "maybe"'),
    ("nginx_real_ip_from", {"a": 1}, 'nginx_real_ip_from (role nginx) must be a list, got {"a": 1}'),
    ("docker_host_daemon_options", "x", 'docker_host_daemon_options (role docker_host) must be a mapping, got "x"'),
    ("nginx_spa_mode", "weird", 'nginx_spa_mode (role nginx) must be one of s3, local, none, got "weird"'),
    ("alb_target_healthy_timeout", "x" * 60,
     'alb_target_healthy_timeout (role alb_target) must be a whole number, got "' + "x" * 35 + '..."'),
])
def test_a_value_of_the_wrong_kind_is_named_with_its_role_and_what_it_must_be(name, value, problem):
    assert setting_problems({name: value}) == [problem]


def test_values_as_minus_e_gives_them_are_taken():
    given = {"stack_health_poll_interval": "2", "nginx_tls_enabled": "false", "alb_target_group_names": "a,b",
             "docker_host_log_max_file": 3, "nginx_spa_mode": "none", "stack_release_keep": "5"}
    assert setting_problems(given) == []


def test_every_problem_is_named_at_once_by_option_name_and_other_variables_are_left_alone():
    given = {"stack_health_poll_interval": "abc", "nginx_tls_enabled": "maybe", "service": {"not": "an option"},
             "ansible_port": "not a role's"}
    assert [problem.split(" ")[0] for problem in setting_problems(given)] == ["nginx_tls_enabled", "stack_health_poll_interval"]


class _Variables(dict):
    """A host's variables where one value names what is not defined yet (it raises when templated)."""

    def __getitem__(self, name):
        if name == "alb_target_region":
            raise RuntimeError("'ansible_ec2_placement_region' is undefined")
        return super().__getitem__(name)


def test_a_value_that_cannot_be_templated_yet_is_left_to_the_role_and_the_others_are_checked():
    given = _Variables(alb_target_region="{{ ansible_ec2_placement_region }}", nginx_gzip="sometimes")
    assert setting_problems(given) == ['nginx_gzip (role nginx) must be true or false, got "sometimes"']


@pytest.fixture
def roles_dir(tmp_path):
    """A collection's roles/ with one role whose spec has a secret, sub-options and two entry points."""
    spec = {"argument_specs": {
        "other": {"options": {"r_mode": {"type": "int", "description": "not the main one's"}}},
        "main": {"options": {
            "r_token": {"type": "int", "no_log": True, "required": True},
            "r_mode": {"type": "str", "choices": ["a", "b"], "default": "a"},
            "r_users": {"type": "list", "elements": "dict", "options": {"name": {"type": "str", "required": True}}},
        }},
    }}
    meta = tmp_path / "r" / "meta"
    meta.mkdir(parents=True)
    (meta / "argument_specs.yml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    (tmp_path / "no_spec" / "tasks").mkdir(parents=True)
    return str(tmp_path)


def test_a_secret_value_is_never_shown(roles_dir):
    problems = setting_problems({"r_token": "s3cr3t-'\"$!"}, roles_dir)
    assert problems == ["r_token (role r) must be a whole number; its value is not shown, as it may hold a secret"]
    assert "s3cr3t" not in json.dumps(problems)


def test_a_webhook_given_in_the_wrong_shape_is_refused_without_its_token():
    problems = setting_problems({"stack_events_webhook_headers": ["X-Token: header-S3cret"]})
    assert problems == ["stack_events_webhook_headers (role stack_events) must be a mapping; its value is not shown, "
                        "as it may hold a secret"]


def test_the_main_entry_point_defines_an_option_and_sub_options_keep_their_own_checks(roles_dir):
    assert set(role_options(roles_dir)) == {"r_token", "r_mode", "r_users"}
    assert setting_problems({"r_mode": "c"}, roles_dir) == ['r_mode (role r) must be one of a, b, got "c"']
    # A required option the run does not set is the role's business; a required sub-option is the value's.
    assert setting_problems({"r_users": [{"name": "deploy"}]}, roles_dir) == []
    [problem] = setting_problems({"r_users": [{"nome": "deploy"}]}, roles_dir)
    assert problem.startswith("r_users (role r): ") and "missing required arguments: name" in problem
    assert problem.endswith('got [{"nome": "deploy"}]')


def test_the_filter_refuses_what_is_not_a_hosts_variables():
    role_setting_problems = FilterModule().filters()["role_setting_problems"]
    assert role_setting_problems(["nginx_gzip"]) == [
        "the roles' settings must be a host's variables (hostvars[inventory_hostname]), got list"]
    assert role_setting_problems({"nginx_gzip": "yes"}) == []


@pytest.mark.parametrize("inventory", ["bench", "prod", "bench-fleet", "lottery", "bench-lottery"])
def test_the_inventories_this_project_ships_set_nothing_a_role_refuses(tmp_path, collections_root, inventory):
    """Through Ansible itself (group_vars templated as a run templates them), on a stand-in host of each
    group the inventory's group_vars name (the dynamic ones need AWS to list their hosts)."""
    source = REPO_ROOT / "inventories" / inventory
    groups = {path.name for path in (source / "group_vars").iterdir()} - {"all"}
    hosts = {"all": {"children": {group: {"hosts": {"stand-in": None}} for group in groups | {"stack_hosts"}}}}
    (tmp_path / "group_vars").symlink_to(source / "group_vars")
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(hosts), encoding="utf-8")
    run = subprocess.run(
        [cli_bin("ansible"), "-i", str(tmp_path), "stand-in", "-m", "ansible.builtin.debug",
         "-a", "msg={{ hostvars[inventory_hostname] | sgivu.deploy.role_setting_problems | to_json }}"],
        capture_output=True, text=True, env=cli_env(tmp_path, collections_root), check=False, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"msg": "[]"' in run.stdout, run.stdout
