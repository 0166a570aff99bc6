"""Unit tests of the env file filters (plugins/filter/ssm_env.py) and the ssm_secrets role's documentation."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.filter.ssm_env import FilterModule
from ansible_cli import cli_bin as _bin, cli_env as _env

FILTERS = FilterModule().filters()
NAMES = ("ssm_env", "env_file_content")

PATH = "/sgivu/prod"
PARAMETERS = {
    PATH + "/ISSUER_URL": "https://sgivu.example.com",
    PATH + "/sgivu-gateway/SGIVU_AUTH_URL": "https://sgivu.example.com",
    PATH + "/SERVICE_INTERNAL_SECRET_KEY": "Filter-Secret-1",
    PATH + "/sgivu-user/SERVICE_INTERNAL_SECRET_KEY": "Filter-Secret-1",
}


def test_filter_module_exposes_the_env_filters():
    assert sorted(FILTERS) == sorted(NAMES)


def test_ssm_env_returns_the_checked_env():
    env = FILTERS["ssm_env"](PARAMETERS, PATH, ["ISSUER_URL"], [["ISSUER_URL", "SGIVU_AUTH_URL"]], {}, {"MODE": "x"})
    assert env == {
        "ISSUER_URL": "https://sgivu.example.com",
        "MODE": "x",
        "SERVICE_INTERNAL_SECRET_KEY": "Filter-Secret-1",
        "SGIVU_AUTH_URL": "https://sgivu.example.com",
    }


def test_ssm_env_defaults_check_nothing_but_the_parameters():
    assert FILTERS["ssm_env"]({PATH + "/A": "1"}, PATH) == {"A": "1"}


def test_ssm_env_raises_filter_error_naming_the_key_only():
    broken = dict(PARAMETERS, **{PATH + "/sgivu-user/SERVICE_INTERNAL_SECRET_KEY": "Filter-Secret-2"})
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["ssm_env"](broken, PATH, ["ISSUER_URL", "MISSING_KEY"])
    message = str(info.value)
    assert "SERVICE_INTERNAL_SECRET_KEY must hold one value" in message
    assert "required keys missing under /sgivu/prod: MISSING_KEY" in message
    assert "Filter-Secret" not in message


def test_ssm_env_error_does_not_chain_the_original_exception():
    # A chained exception's traceback would carry the filter's arguments (the values).
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["ssm_env"]({}, PATH)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_env_file_content_renders_the_file():
    text = FILTERS["env_file_content"]({"B": "b$x", "A": "a"})
    assert text == "# Managed by Ansible (sgivu.deploy.ssm_secrets); do not edit.\nA=a\nB=b$x\n"


def test_env_file_content_raises_filter_error_naming_the_key():
    with pytest.raises(AnsibleFilterError, match=r"REDIS_PASSWORD: the value holds a line break"):
        FILTERS["env_file_content"]({"REDIS_PASSWORD": "two-Filter-Secret\nlines"})


def test_env_file_content_raises_filter_error_without_the_value():
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["env_file_content"]({"REDIS_PASSWORD": "two-Filter-Secret\nlines"})
    assert "Filter-Secret" not in str(info.value)


def test_ssm_env_refuses_a_key_compose_reads_for_itself():
    with pytest.raises(AnsibleFilterError, match=r"COMPOSE_FILE is a key Compose or Docker reads for itself"):
        FILTERS["ssm_env"]({PATH + "/COMPOSE_FILE": "Filter-Secret-3"}, PATH)


def test_env_file_content_reads_back_literally_through_docker_compose(tmp_path):
    """Compose reads every value exactly as it was through `format: raw`: no interpolation, no unescaping."""
    compose = _bin("docker-compose")
    env = {
        "DOLLAR": "p$ss ${HOME} $$ $1 $",
        "HASH": "a #b",
        "SPACES": " \t padded\t  ",
        "QUOTES": "say \"hi\" it's",
        "BACKSLASH": "c:\\dir\\n\\",
        "EQUALS": "k=v",
        "JINJA": "{{ x }}",
        "TICKS": "`id`",
        "UNICODE": "ünï €",
    }
    (tmp_path / "stack.env").write_text(FILTERS["env_file_content"](env), encoding="utf-8")
    # As the compose_release module calls Compose: a raw env_file, and no env file of Compose's own.
    (tmp_path / "compose.yml").write_text(
        "services:\n  app:\n    image: scratch\n    env_file:\n      - path: stack.env\n        format: raw\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [compose, "--project-directory", str(tmp_path), "-f", str(tmp_path / "compose.yml"),
         "--env-file", "/dev/null", "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker-config")),
    )
    assert result.returncode == 0, result.stderr
    environment = json.loads(result.stdout)["services"]["app"]["environment"]
    # `config` re-escapes `$` as `$$` in its output; undo that to get the value a container sees.
    assert {k: v.replace("$$", "$") for k, v in environment.items()} == env


# --------------------------------------------------------------------------
# the role's documentation
# --------------------------------------------------------------------------
def test_ansible_doc_reads_the_role_argument_spec(tmp_path, collections_root):
    result = subprocess.run(
        [_bin("ansible-doc"), "-t", "role", "--json", "sgivu.deploy.ssm_secrets"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, collections_root),
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)["sgivu.deploy.ssm_secrets"]["entry_points"]["main"]["options"]
    assert options["ssm_secrets_path"]["required"] is True
    assert all(options[k]["no_log"] for k in ("ssm_secrets_access_key", "ssm_secrets_secret_key", "ssm_secrets_session_token"))
