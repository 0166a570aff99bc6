"""Unit tests of the catalog filters (plugins/filter/catalog.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.filter.catalog import FilterModule
from ansible_cli import cli_bin as _bin, cli_env as _env

FILTERS = FilterModule().filters()
NAMES = ("catalog_validate", "catalog_problems", "catalog_waves", "catalog_env_keys", "catalog_routes", "bake_problems")

SERVICES = {
    "pg": {
        "image": "r/pg",
        "tag": "15",
        "port": 5432,
        "kind": "database",
        "health": {"command": ["pg_isready"]},
        "env_keys": ["POSTGRES_PASSWORD"],
    },
    "api": {
        "image": "r/api",
        "tag": "1.0.0",
        "port": 8080,
        "public": True,
        "depends_on": ["pg"],
        "health": {"path": "/health"},
        "env_keys": ["API_SECRET", "POSTGRES_PASSWORD"],
    },
    "trace": {
        "image": "r/trace",
        "tag": "3",
        "port": 9411,
        "public": True,
        "enabled": False,
        "health": {"path": "/health"},
        "env_keys": ["TRACE_PASS"],
    },
}
ROUTES = [
    {"path": "/api/", "service": "api"},
    {"path": "/trace/", "service": "trace", "allow": ["10.0.0.0/8"]},
]


def test_filter_module_exposes_the_catalog_filters():
    assert sorted(FILTERS) == sorted(NAMES)


def test_catalog_validate_returns_normalised_services():
    out = FILTERS["catalog_validate"](SERVICES, ROUTES, {"equal": [["API_SECRET", "POSTGRES_PASSWORD"]]})
    assert out["api"]["host_port"] == 8080
    assert out["pg"]["health"] == {"command": ["pg_isready"], "interval": 5, "start_interval": 5, "timeout": 120}
    assert out["trace"]["enabled"] is False


def test_catalog_validate_raises_filter_error_naming_every_offender():
    bad = dict(SERVICES, api=dict(SERVICES["api"], depends_on=["cache"]), pg=dict(SERVICES["pg"], extra=1))
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["catalog_validate"](bad, ROUTES + [{"path": "/pg/", "service": "pg"}])
    message = str(info.value)
    assert "'api' depends on unknown service 'cache'" in message
    assert "service 'pg': unknown key 'extra'" in message
    assert "route '/pg/' routes to service 'pg', which is not public" in message


def test_catalog_problems_lists_every_problem_without_failing():
    bad = {**SERVICES, "api": {**SERVICES["api"], "port": 0}, "web": {**SERVICES["api"], "tag": ""}}
    problems = FILTERS["catalog_problems"](bad, [{"path": "/x", "service": "nope"}])
    assert problems == [
        "service 'api': port must be an integer 1-65535, got 0",
        "service 'web': tag must be a quoted string like \"1.0.0\", got ''",
        "route '/x' routes to unknown service 'nope'",
    ]
    assert FILTERS["catalog_problems"](SERVICES) == []


def test_catalog_waves():
    assert FILTERS["catalog_waves"](SERVICES) == [["pg"], ["api"]]


def test_catalog_waves_raises_filter_error_on_a_cycle():
    cyclic = dict(SERVICES, pg=dict(SERVICES["pg"], depends_on=["api"]))
    with pytest.raises(AnsibleFilterError, match=r"dependency cycle between 'api', 'pg': api -> pg -> api"):
        FILTERS["catalog_waves"](cyclic)


def test_catalog_env_keys_skips_disabled_services():
    assert FILTERS["catalog_env_keys"](SERVICES) == ["API_SECRET", "POSTGRES_PASSWORD"]


def test_catalog_env_keys_raises_filter_error():
    with pytest.raises(AnsibleFilterError, match=r"service 'api': replicas"):
        FILTERS["catalog_env_keys"](dict(SERVICES, api=dict(SERVICES["api"], replicas=0)))


def test_catalog_routes_fills_defaults_and_drops_disabled_targets():
    assert FILTERS["catalog_routes"](ROUTES, SERVICES) == [
        {"path": "/api/", "match": "prefix", "service": "api", "allow": [], "timeout": 60}
    ]


def test_catalog_routes_raises_filter_error_on_unknown_service():
    with pytest.raises(AnsibleFilterError, match=r"route '/x/' routes to unknown service 'nope'"):
        FILTERS["catalog_routes"]([{"path": "/x/", "service": "nope"}], SERVICES)


def test_null_routes_are_refused_and_an_empty_list_is_none():
    # -e '{"stack_routes": null}' took every route out of Nginx: refused, naming the variable.
    assert FILTERS["catalog_problems"](SERVICES, None)[0].startswith("stack_routes is null")
    assert FILTERS["catalog_problems"](SERVICES, []) == []
    with pytest.raises(AnsibleFilterError, match="stack_routes is null"):
        FILTERS["catalog_routes"](None, SERVICES)
    assert FILTERS["catalog_routes"]([], SERVICES) == []


def test_filters_accept_their_own_output():
    normalised = FILTERS["catalog_validate"](SERVICES)
    assert FILTERS["catalog_waves"](normalised) == FILTERS["catalog_waves"](SERVICES)
    assert FILTERS["catalog_validate"](normalised) == normalised


# --------------------------------------------------------------------------
# through Ansible itself, on the shipped inventories (templating included)
# --------------------------------------------------------------------------
PROBE = """\
- name: Probe the catalog filters
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write what the filters return
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: "{{ {'waves': stack_services | sgivu.deploy.catalog_waves,
                      'keys': stack_services | sgivu.deploy.catalog_env_keys,
                      'routes': stack_routes | sgivu.deploy.catalog_routes(stack_services),
                      'services': stack_services | sgivu.deploy.catalog_validate(stack_routes, stack_env_invariants)}
                     | to_json }}"
        mode: "0600"
"""


@pytest.mark.parametrize(
    "inventory, waves",
    [
        (
            "prod",
            [
                ["sgivu-config", "sgivu-postgres", "sgivu-redis"],
                ["sgivu-discovery"],
                ["sgivu-auth"],
                ["sgivu-client", "sgivu-gateway", "sgivu-purchase-sale", "sgivu-user", "sgivu-vehicle"],
                ["sgivu-ml"],
            ],
        ),
        ("lottery", [["printer", "ticket", "xray-daemon"], ["lottery"]]),
    ],
)
def test_filters_in_a_playbook_on_the_shipped_inventory(
    tmp_path, repo_root, collections_root, stack_vars, inventory, waves
):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE, encoding="utf-8")
    out = tmp_path / "out.json"
    env = _env(tmp_path, collections_root)
    result = subprocess.run(
        [
            _bin("ansible-playbook"),
            "-i",
            str(repo_root / "inventories" / inventory),
            "-c",
            "local",
            "-e",
            "out=" + str(out),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["waves"] == waves
    stack = stack_vars(inventory)
    assert data["services"][waves[0][0]]["image"] == stack["stack_registry"] + "/" + waves[0][0]
    assert all(r["service"] in data["services"] for r in data["routes"])


@pytest.mark.parametrize("stack_bake, seconds", [
    ({}, ""), ({"seconds": 0}, "0"), ({"seconds": 120, "min_requests": 1, "min_success_rate": 99.5, "max_p99_ms": 800}, 30),
    ({"min_success_rate": 100}, ""),
])
def test_a_bake_that_can_work_has_no_problem(stack_bake, seconds):
    assert FILTERS["bake_problems"](stack_bake, seconds) == []


@pytest.mark.parametrize("stack_bake, seconds, problem", [
    ({}, "soon", 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "soon"'),
    ({}, "-5", 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "-5"'),
    ({}, "3.5", 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "3.5"'),
    ({}, "\u00b2", 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "\u00b2"'),
    ({}, -5, 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "-5"'),
    ("fast", "", "stack_bake must be a mapping of seconds, min_requests, min_success_rate, max_p99_ms, got 'fast'"),
    ({"window": 60}, "", "stack_bake: unknown key 'window' (allowed: seconds, min_requests, min_success_rate, max_p99_ms)"),
    ({"seconds": 60.5}, "", "stack_bake.seconds must be an integer >= 0, got 60.5"),
    ({"seconds": "60"}, "", "stack_bake.seconds must be an integer >= 0, got '60'"),
    ({"min_requests": 0}, "", "stack_bake.min_requests must be an integer >= 1, got 0"),
    ({"min_success_rate": 150}, "", "stack_bake.min_success_rate must be a number >= 0 and <= 100 (percent), got 150"),
    ({"max_p99_ms": True}, "", "stack_bake.max_p99_ms must be an integer >= 1, got True"),
])
def test_a_bake_that_cannot_work_is_named_before_anything_changes(stack_bake, seconds, problem):
    assert FILTERS["bake_problems"](stack_bake, seconds) == [problem]
