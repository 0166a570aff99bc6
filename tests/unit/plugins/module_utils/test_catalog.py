"""Unit tests of the catalog logic (plugins/module_utils/catalog.py)."""

from __future__ import annotations

import copy
from typing import Any, Dict

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import (
    CatalogError,
    enabled_routes,
    env_keys,
    normalize_routes,
    reserved_host_ports,
    start_waves,
    validate_catalog,
    validate_services,
)


def svc(**overrides: Any) -> Dict[str, Any]:
    """A minimal valid service, with overrides; a value of None drops the key."""
    base: Dict[str, Any] = {
        "image": "registry.example.com/app",
        "tag": "1.0.0",
        "port": 8080,
        "health": {"path": "/actuator/health"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def db(**overrides: Any) -> Dict[str, Any]:
    return svc(**{"kind": "database", "port": 5432, "health": {"command": ["pg_isready"]}, **overrides})


def problems_of(services: Any, routes: Any = None, invariants: Any = None) -> list:
    with pytest.raises(CatalogError) as info:
        validate_catalog(services, routes, invariants)
    return info.value.problems


def one_problem(services: Any, routes: Any = None, invariants: Any = None) -> str:
    problems = problems_of(services, routes, invariants)
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------
def test_minimal_service_gets_every_default():
    assert validate_services({"app": svc()}) == {
        "app": {
            "image": "registry.example.com/app",
            "tag": "1.0.0",
            "port": 8080,
            "enabled": True,
            "kind": "service",
            "public": False,
            "publish": False,
            "host_port": None,
            "replicas": 1,
            "depends_on": [],
            "health": {"path": "/actuator/health", "interval": 5, "start_interval": 5, "timeout": 120},
            "volumes": {},
            "env_keys": [],
            "env": {},
            "databases": [],
            "provides_env": {},
            "rotate": {},
            "bake": {},
            "update_order": "start-first",
        }
    }


def test_public_service_host_port_defaults_to_port():
    assert validate_services({"web": svc(public=True)})["web"]["host_port"] == 8080


def test_explicit_host_port_is_kept():
    assert validate_services({"web": svc(public=True, host_port=18080)})["web"]["host_port"] == 18080


def test_env_values_become_strings():
    out = validate_services({"app": svc(env={"A": 1, "B": True, "C": False, "D": "x", "E": 1.5})})
    assert out["app"]["env"] == {"A": "1", "B": "true", "C": "false", "D": "x", "E": "1.5"}


def test_unquoted_integer_tag_becomes_string():
    assert validate_services({"pg": db(tag=15)})["pg"]["tag"] == "15"


def test_validation_is_idempotent():
    once = validate_services({"pg": db(volumes={"pg-data": "/data"}), "app": svc(depends_on=["pg"], public=True)})
    assert validate_services(once) == once


def test_validation_does_not_modify_its_input():
    services = {"pg": db(), "app": svc(depends_on=["pg"], env={"A": 1})}
    before = copy.deepcopy(services)
    validate_services(services)
    assert services == before


def test_null_lists_and_maps_count_as_empty():
    out = validate_services({"app": svc(depends_on=None, env=None)})
    assert out["app"]["depends_on"] == [] and out["app"]["env"] == {}


# --------------------------------------------------------------------------
# service-level errors
# --------------------------------------------------------------------------
def test_unknown_key_names_service_and_key():
    message = one_problem({"app": svc(imagee="x")})
    assert "'app'" in message and "'imagee'" in message


def test_unknown_health_key_names_service_and_key():
    message = one_problem({"app": svc(health={"path": "/h", "retries": 3})})
    assert "'app'" in message and "'retries'" in message


@pytest.mark.parametrize("key", ["image", "tag", "port"])
def test_missing_required_key_names_service(key):
    message = one_problem({"app": svc(**{key: None})})
    assert "'app'" in message and key in message


def test_public_service_without_health_check_is_refused():
    message = one_problem({"web": svc(public=True, health=None)})
    assert "'web'" in message and "health is required" in message


def test_database_without_health_check_is_refused():
    message = one_problem({"pg": db(health=None)})
    assert "'pg'" in message and "health is required" in message


@pytest.mark.parametrize(
    "health",
    [
        {"path": "/h", "command": ["true"]},
        {"interval": 5},
    ],
)
def test_health_needs_exactly_one_of_path_or_command(health):
    message = one_problem({"app": svc(health=health)})
    assert "'app'" in message and "exactly one of path or command" in message


@pytest.mark.parametrize(
    "health, text",
    [
        ({"path": "actuator/health"}, "path must be a string starting with '/'"),
        ({"command": []}, "command must be a non-empty list of strings"),
        ({"command": "pg_isready"}, "command must be a non-empty list of strings"),
        ({"path": "/h", "interval": 0}, "health.interval must be a whole number of seconds from 1 to 86400 (a day), got 0"),
        ({"path": "/h", "timeout": "3m"}, "health.timeout must be a whole number of seconds from 1 to 86400 (a day), got '3m'"),
        ({"path": "/h", "timeout": 86401}, "health.timeout must be a whole number of seconds from 1 to 86400 (a day), got 86401"),
        ({"path": "/h", "interval": 30000000000, "start_interval": 5}, "health.interval must be a whole number of seconds"),
        ({"path": "/h", "interval": 10, "timeout": 5}, "timeout (5) is shorter than the time between probes while it starts (10 s"),
        ({"path": "/h", "interval": 30, "start_interval": 5, "timeout": 3},
         "timeout (3) is shorter than the time between probes while it starts (5 s"),
        ({"path": "/h", "start_interval": 0}, "health.start_interval must be a whole number of seconds from 1 to 86400 (a day), got 0"),
        ({"path": "/h", "start_interval": "2s"}, "health.start_interval must be a whole number of seconds from 1 to 86400 (a day), got '2s'"),
        ({"path": "/h", "start_interval": True}, "health.start_interval must be a whole number of seconds from 1 to 86400 (a day), got True"),
        ({"path": "/h", "start_interval": None}, "health.start_interval must be a whole number of seconds from 1 to 86400 (a day), got None"),
        ({"path": "/h", "start_interval": 10}, "start_interval (10) is longer than its interval (5, the default)"),
        ({"path": "/h", "interval": 5, "start_interval": 10}, "start_interval (10) is longer than its interval (5)"),
    ],
)
def test_bad_health_fields_name_the_service(health, text):
    message = one_problem({"app": svc(health=health)})
    assert "'app'" in message and text in message


def test_start_interval_defaults_to_the_interval():
    assert validate_services({"app": svc(health={"path": "/h", "interval": 7})})["app"]["health"]["start_interval"] == 7


def test_a_start_interval_below_the_interval_is_kept():
    health = validate_services({"app": svc(health={"path": "/h", "interval": 30, "start_interval": 2,
                                                    "timeout": 60})})["app"]["health"]
    assert (health["interval"], health["start_interval"], health["timeout"]) == (30, 2, 60)


@pytest.mark.parametrize("replicas", [0, -1, "2", True, 1.5])
def test_bad_replicas_value_names_service(replicas):
    message = one_problem({"app": svc(replicas=replicas)})
    assert "'app'" in message and "replicas must be an integer >= 1" in message


def test_database_cannot_have_replicas():
    message = one_problem({"pg": db(replicas=2)})
    assert "'pg'" in message and "a database runs exactly one container" in message


def test_service_with_volumes_cannot_have_replicas():
    message = one_problem({"app": svc(replicas=2, volumes={"uploads": "/srv/uploads"})})
    assert "'app'" in message and "only stateless services scale" in message and "uploads" in message


def test_stateless_services_may_scale_public_or_not():
    out = validate_services({"web": svc(public=True, replicas=3), "worker": svc(port=9000, replicas=4)})
    assert out["web"]["replicas"] == 3 and out["worker"]["replicas"] == 4


@pytest.mark.parametrize("kind", ["db", "Service", "worker"])
def test_bad_kind_names_service(kind):
    message = one_problem({"app": svc(kind=kind)})
    assert "'app'" in message and "kind must be one of database | service" in message


@pytest.mark.parametrize("port", [0, 70000, "8080", True])
def test_bad_port_names_service(port):
    message = one_problem({"app": svc(port=port)})
    assert "'app'" in message and "port must be an integer 1-65535" in message


@pytest.mark.parametrize("image", ["registry.example.com/app:1.0.0", "app@sha256:abc"])
def test_image_must_not_carry_a_tag(image):
    message = one_problem({"app": svc(image=image)})
    assert "'app'" in message and "must not carry a tag or digest" in message


def test_registry_with_port_is_not_mistaken_for_a_tag():
    assert validate_services({"app": svc(image="127.0.0.1:5000/app")})["app"]["image"] == "127.0.0.1:5000/app"


def test_float_tag_is_refused_with_a_hint_to_quote_it():
    message = one_problem({"app": svc(tag=15.1)})
    assert "'app'" in message and "quoted string" in message


@pytest.mark.parametrize("flag", ["enabled", "public"])
def test_flags_must_be_booleans(flag):
    message = one_problem({"app": svc(**{flag: "yes"})})
    assert "'app'" in message and flag in message and "true or false" in message


def test_host_port_on_a_service_that_is_not_public_is_refused():
    message = one_problem({"app": svc(host_port=18080)})
    assert "'app'" in message and "not public" in message


def test_key_both_plain_and_secret_is_refused():
    message = one_problem({"app": svc(env={"TOKEN": "x"}, env_keys=["TOKEN"])})
    assert "'app'" in message and "TOKEN" in message and "both in env and env_keys" in message


@pytest.mark.parametrize("keys", [["9LIVES"], ["BAD-KEY"], "TOKEN"])
def test_bad_env_keys_name_the_service(keys):
    message = one_problem({"app": svc(env_keys=keys)})
    assert "'app'" in message and "env_keys" in message


def test_env_value_must_be_plain():
    message = one_problem({"app": svc(env={"LIST": [1, 2]})})
    assert "'app'" in message and "LIST" in message


def test_volume_needs_absolute_mount_path():
    message = one_problem({"pg": db(volumes={"pg-data": "var/lib/postgresql"})})
    assert "'pg'" in message and "'pg-data'" in message and "absolute mount path" in message


def test_database_names_must_be_identifiers():
    message = one_problem({"app": svc(databases=["user-db"])})
    assert "'app'" in message and "'user-db'" in message


def test_service_name_must_be_a_compose_name():
    message = one_problem({"My_App": svc()})
    assert "'My_App'" in message and "not a valid compose service name" in message


def test_empty_catalog_is_refused():
    assert "non-empty mapping" in one_problem({})


def test_every_problem_is_reported_at_once():
    problems = problems_of({"a": svc(bogus=1), "b": svc(replicas=0), "c": svc(depends_on=["nope"])})
    assert len(problems) == 3
    assert any("'a'" in p and "'bogus'" in p for p in problems)
    assert any("'b'" in p and "replicas" in p for p in problems)
    assert any("'c'" in p and "'nope'" in p for p in problems)
    # The exception text itself carries them all, for the operator.
    with pytest.raises(CatalogError, match=r"3 problems"):
        validate_services({"a": svc(bogus=1), "b": svc(replicas=0), "c": svc(depends_on=["nope"])})


# --------------------------------------------------------------------------
# dependencies
# --------------------------------------------------------------------------
def test_unknown_dependency_names_service_and_dependency():
    message = one_problem({"app": svc(depends_on=["sgivu-cache"])})
    assert "'app'" in message and "'sgivu-cache'" in message and "unknown service" in message


def test_self_dependency_is_refused():
    message = one_problem({"app": svc(depends_on=["app"])})
    assert "'app' depends on itself" in message


def test_duplicate_dependency_is_refused():
    message = one_problem({"pg": db(), "app": svc(depends_on=["pg", "pg"])})
    assert "'app'" in message and "'pg' twice" in message


def test_dependency_cycle_names_every_service_in_it():
    message = one_problem(
        {
            "a": svc(depends_on=["b"]),
            "b": svc(depends_on=["c"]),
            "c": svc(depends_on=["a"]),
            "d": svc(depends_on=["a"]),  # depends on the cycle, is not in it
        }
    )
    assert "dependency cycle between 'a', 'b', 'c'" in message
    assert "a -> b -> c -> a" in message
    assert "'d'" not in message


def test_each_dependency_cycle_is_reported():
    problems = problems_of(
        {
            "a": svc(depends_on=["b"]),
            "b": svc(depends_on=["a"]),
            "x": svc(depends_on=["y"]),
            "y": svc(depends_on=["x"]),
        }
    )
    assert sorted(problems) == [
        "dependency cycle between 'a', 'b': a -> b -> a",
        "dependency cycle between 'x', 'y': x -> y -> x",
    ]


def test_cycle_through_a_larger_component_is_a_real_cycle():
    services = {
        "a": svc(depends_on=["b", "c"]),
        "b": svc(depends_on=["c"]),
        "c": svc(depends_on=["a"]),
    }
    message = one_problem(services)
    assert "'a', 'b', 'c'" in message
    path = message.split(": ", 1)[1].split(" -> ")
    assert path[0] == path[-1]
    for here, there in zip(path, path[1:]):
        assert there in services[here]["depends_on"]


def test_enabled_service_depending_on_disabled_one_names_both():
    message = one_problem({"pg": db(enabled=False), "app": svc(depends_on=["pg"])})
    assert "'app'" in message and "'pg'" in message and "disabled" in message


def test_disabled_service_may_depend_on_disabled_one():
    out = validate_services({"pg": db(enabled=False), "app": svc(depends_on=["pg"], enabled=False)})
    assert out["app"]["enabled"] is False


# --------------------------------------------------------------------------
# host ports
# --------------------------------------------------------------------------
def test_duplicate_host_port_names_both_services():
    message = one_problem({"auth": svc(port=9000, public=True, host_port=8080), "gateway": svc(port=8080, public=True)})
    assert "'auth'" in message and "'gateway'" in message and "collide on host ports" in message


def test_same_container_port_collides_only_when_both_are_public():
    message = one_problem({"lottery": svc(port=80, public=True, host_port=8080), "ticket": svc(port=8080, public=True)})
    assert "'lottery'" in message and "'ticket'" in message
    # Not public: no port is published, nothing collides.
    validate_services({"a": svc(port=80), "b": svc(port=80), "c": svc(port=80, public=True, host_port=8080)})


def test_same_container_port_on_two_public_services_explains_the_default():
    message = one_problem({"a": svc(port=9000, public=True), "b": svc(port=9000, public=True)})
    assert "'a'" in message and "'b'" in message and "host_port defaults to port" in message


def test_replicas_reserve_a_range_for_the_swap():
    assert reserved_host_ports({"public": True, "host_port": 8080, "replicas": 1}) == (8080, 8081)
    assert reserved_host_ports({"public": True, "host_port": 8080, "replicas": 3}) == (8080, 8085)
    assert reserved_host_ports({"public": False, "host_port": None, "replicas": 3}) is None


def test_scaled_public_service_range_collides_with_a_neighbour():
    message = one_problem({"gateway": svc(public=True, replicas=2), "auth": svc(port=8083, public=True)})
    assert "'gateway'" in message and "'auth'" in message and "8080-8083" in message


def test_disabled_public_services_do_not_hold_ports():
    validate_services({"a": svc(public=True), "b": svc(public=True, enabled=False)})


@pytest.mark.parametrize("port", [80, 443])
def test_host_port_may_not_take_nginx_ports(port):
    message = one_problem({"web": svc(port=port, public=True)})
    assert "'web'" in message and "Nginx" in message and str(port) in message


# --------------------------------------------------------------------------
# routes
# --------------------------------------------------------------------------
SERVICES = {
    "gateway": svc(public=True),
    "auth": svc(port=9000, public=True),
    "config": svc(port=8888),
    "zipkin": svc(port=9411, public=True, enabled=False),
}


def test_route_defaults_are_filled_in():
    routes = normalize_routes([{"path": "/v1/", "service": "gateway"}], SERVICES)
    assert routes == [{"path": "/v1/", "match": "prefix", "service": "gateway", "allow": [], "timeout": 60}]


def test_route_to_unknown_service_names_it():
    message = one_problem(SERVICES, [{"path": "/x/", "service": "sgivu-nope"}])
    assert "'/x/'" in message and "'sgivu-nope'" in message and "unknown service" in message


def test_route_on_non_public_service_names_it():
    message = one_problem(SERVICES, [{"path": "/config/", "service": "config"}])
    assert "'config'" in message and "not public" in message


def test_route_to_disabled_service_is_valid_but_not_rendered():
    routes = [
        {"path": "/v1/", "service": "gateway"},
        {"path": "/zipkin/", "service": "zipkin", "allow": ["10.0.0.0/8"]},
    ]
    validate_catalog(SERVICES, routes)
    assert [r["path"] for r in enabled_routes(routes, SERVICES)] == ["/v1/"]


def test_duplicate_route_is_refused():
    routes = [{"path": "/v1/", "service": "gateway"}, {"path": "/v1/", "service": "auth", "match": "prefix"}]
    message = one_problem(SERVICES, routes)
    assert "'/v1/'" in message and "listed twice" in message


def test_same_path_with_another_match_is_not_a_duplicate():
    normalize_routes(
        [{"path": "/v1", "service": "gateway"}, {"path": "/v1", "match": "exact", "service": "auth"}], SERVICES
    )


@pytest.mark.parametrize(
    "route, text",
    [
        ({"path": "/v1/", "service": "gateway", "match": "glob"}, "match must be one of prefix | exact | regex"),
        ({"path": "v1/", "service": "gateway"}, "path must start with '/'"),
        ({"path": "^/v1/(", "service": "gateway", "match": "regex"}, "not a valid regular expression"),
        ({"path": "/v1/", "service": "gateway", "allow": ["10.0.0.300/8"]}, "not an IP address or a CIDR"),
        # What helper-33 found: forms Python's ipaddress takes and Nginx refuses at `nginx -t`.
        ({"path": "/v1/", "service": "gateway", "allow": ["10.0.0.0/255.0.0.0"]}, "a CIDR with a prefix length"),
        ({"path": "/v1/", "service": "gateway", "allow": ["10.0.0.0/0.255.255.255"]}, "a CIDR with a prefix length"),
        ({"path": "/v1/", "service": "gateway", "allow": ["fe80::1%eth0"]}, "a CIDR with a prefix length"),
        ({"path": "/v1/", "service": "gateway", "allow": ["10.0.0.0/8; return 200"]}, "a CIDR with a prefix length"),
        ({"path": "/v1/", "service": "gateway", "allow": "10.0.0.0/8"}, "allow must be a list of CIDRs"),
        ({"path": "/v1/", "service": "gateway", "timeout": 0}, "timeout must be an integer number of seconds, 1-3600"),
        ({"path": "/v1/", "service": "gateway", "timeout": 100000000000000000000}, "seconds, 1-3600, got 100000000000000000000"),
        ({"path": "/v1/", "service": "gateway", "timeout": "60"}, "seconds, 1-3600, got '60'"),
        ({"path": "/v1/", "service": "gateway", "upstream": "x"}, "unknown key 'upstream'"),
        ({"service": "gateway"}, "path is required"),
        ({"path": "/v1/"}, "service is required"),
        # What helper-32 deployed: a path Nginx, the health check or the log cannot take as written.
        ({"path": "/v1/\u00e9", "service": "gateway"}, "path must be printable ASCII"),
        ({"path": "/v1/;}", "service": "gateway"}, "path must be printable ASCII"),
        ({"path": "/v1/\n", "service": "gateway"}, "path must be printable ASCII"),
        ({"path": "/v1/../x", "service": "gateway"}, "no '.' or '..' segment"),
        ({"path": "/v1/./", "match": "exact", "service": "gateway"}, "no '.' or '..' segment"),
        ({"path": '/v1/"x', "service": "gateway"}, "path must be printable ASCII"),
        ({"path": "/v1/$x", "service": "gateway"}, "path must be printable ASCII"),
        ({"path": '^/v1/"', "match": "regex", "service": "gateway"}, "a regex path must be printable ASCII"),
        ({"path": "^/v1/\n", "match": "regex", "service": "gateway"}, "a regex path must be printable ASCII"),
    ],
)
def test_bad_route_fields_are_named(route, text):
    message = one_problem(SERVICES, [route])
    assert text in message


def test_addresses_and_prefix_length_networks_are_allowed():
    allow = ["10.0.0.0/8", "10.0.0.1/8", "203.0.113.7", "2001:db8::/32", "::1"]
    routes = normalize_routes([{"path": "/v1/", "service": "gateway", "allow": allow, "timeout": 3600}], SERVICES)
    assert (routes[0]["allow"], routes[0]["timeout"]) == (allow, 3600)


def test_regex_route_is_accepted():
    routes = normalize_routes([{"path": "^/api/v[0-9]+/", "match": "regex", "service": "gateway"}], SERVICES)
    assert routes[0]["match"] == "regex"


def test_route_paths_of_every_allowed_character_are_accepted():
    routes = normalize_routes([{"path": "/v1/a.b_c~d!e&(f)*g+h,i=j:k@l%20m-n/...x/", "service": "gateway"},
                               {"path": "/", "match": "exact", "service": "gateway"},
                               {"path": "^/api/v[0-9]{1,3}/(a|b)$", "match": "regex", "service": "gateway"}], SERVICES)
    assert [route["path"] for route in routes][1] == "/"


# --------------------------------------------------------------------------
# env keys and invariants
# --------------------------------------------------------------------------
def test_env_keys_are_the_sorted_union_over_enabled_services():
    services = {
        "pg": db(env_keys=["POSTGRES_PASSWORD"]),
        "app": svc(env_keys=["SECRET", "POSTGRES_PASSWORD"]),
        "off": svc(port=9000, env_keys=["ONLY_WHEN_ON"], enabled=False),
    }
    assert env_keys(services) == ["POSTGRES_PASSWORD", "SECRET"]


def test_invariant_keys_must_be_required_by_an_enabled_service():
    services = {"app": svc(env_keys=["ISSUER_URL"])}
    message = one_problem(services, None, {"equal": [["ISSUER_URL", "SGIVU_AUTH_URL"]]})
    assert "SGIVU_AUTH_URL" in message and "no enabled service" in message


@pytest.mark.parametrize("invariants", [{"equal": [["ONLY_ONE"]]}, {"same": []}, ["ISSUER_URL"]])
def test_malformed_invariants_are_refused(invariants):
    problems_of({"app": svc(env_keys=["ONLY_ONE"])}, None, invariants)


# --------------------------------------------------------------------------
# waves
# --------------------------------------------------------------------------
def test_waves_put_each_service_after_all_its_dependencies():
    services = {
        "pg": db(),
        "redis": db(port=6379),
        "api": svc(depends_on=["pg"]),
        "web": svc(depends_on=["api", "redis"]),
        "cron": svc(depends_on=["pg"]),
    }
    assert start_waves(services) == [["pg", "redis"], ["api", "cron"], ["web"]]


def test_waves_leave_out_disabled_services():
    services = {"pg": db(), "zipkin-db": db(enabled=False), "zipkin": svc(depends_on=["zipkin-db"], enabled=False)}
    assert start_waves(services) == [["pg"]]


def test_waves_refuse_an_invalid_catalog():
    with pytest.raises(CatalogError, match="'a' depends on unknown service 'b'"):
        start_waves({"a": svc(depends_on=["b"])})


def test_waves_of_the_sgivu_catalog(stack_vars):
    assert start_waves(stack_vars("prod")["stack_services"]) == [
        ["sgivu-config", "sgivu-postgres", "sgivu-redis"],
        ["sgivu-discovery"],
        ["sgivu-auth"],
        ["sgivu-client", "sgivu-gateway", "sgivu-purchase-sale", "sgivu-user", "sgivu-vehicle"],
        ["sgivu-ml"],
    ]


def test_waves_of_the_lottery_catalog(stack_vars):
    assert start_waves(stack_vars("lottery")["stack_services"]) == [["printer", "ticket", "xray-daemon"], ["lottery"]]


# --------------------------------------------------------------------------
# the shipped catalogs
# --------------------------------------------------------------------------
@pytest.mark.parametrize("inventory", ["prod", "lottery"])
def test_shipped_catalog_is_valid(stack_vars, inventory):
    stack = stack_vars(inventory)
    validate_catalog(stack["stack_services"], stack["stack_routes"], stack["stack_env_invariants"])


def test_sgivu_catalog_matches_the_guide(stack_vars):
    services = validate_services(stack_vars("prod")["stack_services"])
    ports = {name: s["port"] for name, s in services.items()}
    assert ports == {
        "sgivu-postgres": 5432,
        "sgivu-redis": 6379,
        "sgivu-mysql": 3306,
        "sgivu-config": 8888,
        "sgivu-discovery": 8761,
        "sgivu-auth": 9000,
        "sgivu-user": 8081,
        "sgivu-client": 8082,
        "sgivu-vehicle": 8083,
        "sgivu-purchase-sale": 8084,
        "sgivu-gateway": 8080,
        "sgivu-ml": 8000,
        "sgivu-zipkin": 9411,
    }
    assert sorted(n for n, s in services.items() if not s["enabled"]) == ["sgivu-mysql", "sgivu-zipkin"]
    assert services["sgivu-ml"]["health"]["path"] == "/health"
    assert all(s["image"].endswith("/" + n) for n, s in services.items())
    assert all(s["tag"] == "1.0.0" for n, s in services.items() if s["kind"] == "service" and n != "sgivu-zipkin")


def test_sgivu_catalog_publishes_only_what_nginx_routes_to(stack_vars):
    stack = stack_vars("prod")
    services = validate_services(stack["stack_services"])
    public = sorted(n for n, s in services.items() if s["public"])
    assert public == sorted({r["service"] for r in stack["stack_routes"]})
    assert all(services[n]["kind"] == "service" for n in public)


def test_sgivu_routes(stack_vars):
    stack = stack_vars("prod")
    routes = {r["path"]: r for r in enabled_routes(stack["stack_routes"], stack["stack_services"])}
    assert routes["/oauth2/"]["service"] == "sgivu-auth"
    assert routes["/oauth2/authorization/"]["service"] == "sgivu-gateway"
    assert routes["/login/oauth2/code/"]["service"] == "sgivu-gateway"
    assert routes["/eureka/"]["allow"] == ["127.0.0.1/32"]
    assert routes["/v1/"]["allow"] == []
    assert "/zipkin/" not in routes  # zipkin is disabled


def test_sgivu_env_keys(stack_vars):
    assert env_keys(stack_vars("prod")["stack_services"]) == [
        "ISSUER_URL",
        "JWT_KEYSTORE_PASSWORD",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "SERVICE_INTERNAL_SECRET_KEY",
        "SGIVU_AUTH_URL",
        "SGIVU_GATEWAY_SECRET",
    ]


def test_sgivu_internal_key_reaches_every_backend_service(stack_vars):
    services = validate_services(stack_vars("prod")["stack_services"])
    backends = [n for n, s in services.items() if s["kind"] == "service" and s["enabled"]]
    lacking = [
        n
        for n in backends
        if n not in ("sgivu-config", "sgivu-discovery") and "SERVICE_INTERNAL_SECRET_KEY" not in services[n]["env_keys"]
    ]
    assert lacking == []


def test_lottery_catalog_takes_only_its_settings_from_the_env_file_and_has_one_route(stack_vars):
    stack = stack_vars("lottery")
    assert env_keys(stack["stack_services"]) == ["LOTTERY_BUCKET", "LOTTERY_TABLE"]
    routes = enabled_routes(stack["stack_routes"], stack["stack_services"])
    assert [(r["path"], r["service"]) for r in routes] == [("/bbb-lotto/", "lottery")]
    assert validate_services(stack["stack_services"])["lottery"]["host_port"] == 8080


def test_public_service_that_does_not_publish_has_no_host_port():
    web = validate_services({"web": svc(public=True, publish=False)})["web"]
    assert web["publish"] is False
    assert web["host_port"] is None


def test_publish_without_public_is_refused_naming_the_service():
    with pytest.raises(CatalogError, match="service 'web': publish is true but the service is not public"):
        validate_services({"web": svc(publish=True)})


def test_host_port_on_an_unpublished_service_is_refused_naming_the_service():
    with pytest.raises(CatalogError, match="service 'web': host_port is set but publish is false"):
        validate_services({"web": svc(public=True, publish=False, host_port=18080)})


# --------------------------------------------------------------------------
# sidecars
# --------------------------------------------------------------------------
def xray(**overrides: Any) -> Dict[str, Any]:
    return svc(**{"kind": "sidecar", "port": 2000, "health": {"command": ["curl", "-s", "http://127.0.0.1:2000/"]},
                  "provides_env": {"AWS_XRAY_DAEMON_ADDRESS": "xray-daemon:2000"}, **overrides})


def test_every_other_enabled_service_gets_what_a_sidecar_provides():
    out = validate_services({"xray-daemon": xray(), "ticket": svc(), "web": svc(public=True, env={"A": "1"}),
                             "postgres": db()})
    assert {name: s["env"].get("AWS_XRAY_DAEMON_ADDRESS") for name, s in out.items()} == {
        "xray-daemon": None, "ticket": "xray-daemon:2000", "web": "xray-daemon:2000", "postgres": None}
    assert out["web"]["env"]["A"] == "1"


def test_a_service_that_sets_the_key_itself_keeps_its_own_value():
    out = validate_services({"xray-daemon": xray(), "a": svc(env={"AWS_XRAY_DAEMON_ADDRESS": "elsewhere:2000"})})
    assert out["a"]["env"]["AWS_XRAY_DAEMON_ADDRESS"] == "elsewhere:2000"


def test_a_sidecar_may_not_replace_a_key_from_the_env_file():
    problem = one_problem({"xray-daemon": xray(provides_env={"LOTTERY_TABLE": "evil"}), "a": svc(env_keys=["LOTTERY_TABLE"])})
    assert problem == ("sidecar 'xray-daemon': provides_env LOTTERY_TABLE is an env key services read from the env file; "
                       "a sidecar may not replace it")


def test_a_sidecar_may_not_set_the_containers_own_environment():
    problem = one_problem({"xray-daemon": xray(provides_env={"PATH": "/evil"}), "a": svc()})
    assert problem == "sidecar 'xray-daemon': provides_env PATH is the container's own; a sidecar may not set it"


def test_a_disabled_sidecar_provides_nothing():
    out = validate_services({"xray-daemon": xray(enabled=False), "a": svc()})
    assert out["a"]["env"] == {}


def test_a_disabled_service_gets_nothing():
    assert validate_services({"xray-daemon": xray(), "a": svc(enabled=False)})["a"]["env"] == {}


def test_the_normalised_catalog_validates_to_itself():
    once = validate_services({"xray-daemon": xray(), "a": svc()})
    assert validate_services(copy.deepcopy(once)) == once


def test_two_sidecars_may_not_provide_one_key():
    problem = one_problem({"xray-a": xray(), "xray-b": xray(), "a": svc()})
    assert problem == "sidecars 'xray-a' and 'xray-b' both provide AWS_XRAY_DAEMON_ADDRESS; only one may"


def test_provides_env_is_for_sidecars_only():
    problem = one_problem({"a": svc(provides_env={"X": "y"})})
    assert problem.startswith("service 'a': provides_env is for kind: sidecar")


@pytest.mark.parametrize("overrides, expected", [
    ({"public": True}, "service 'xray-daemon': a sidecar is not public (services reach it on the stack network)"),
    ({"replicas": 2}, "service 'xray-daemon': a sidecar runs one container per host, not replicas: 2"),
    ({"provides_env": {"1BAD": "x"}}, "service 'xray-daemon': provides_env key '1BAD' is not a valid variable name"),
    ({"provides_env": ["A=b"]}, "service 'xray-daemon': provides_env must be a mapping of NAME: value, got list"),
])
def test_a_sidecar_is_checked(overrides, expected):
    assert one_problem({"xray-daemon": xray(**overrides)}) == expected


# --------------------------------------------------------------------------
# credentials a database changes in place (rotate)
# --------------------------------------------------------------------------
def test_a_database_names_the_credentials_it_can_change_in_place():
    out = validate_services({
        "pg": db(env_keys=["POSTGRES_PASSWORD"], rotate={"POSTGRES_PASSWORD": {"engine": "postgres", "user": "postgres"}}),
        "redis": db(port=6379, env_keys=["REDIS_PASSWORD"], rotate={"REDIS_PASSWORD": {"engine": "redis"}}),
    })
    assert out["pg"]["rotate"] == {"POSTGRES_PASSWORD": {"engine": "postgres", "user": "postgres"}}
    assert out["redis"]["rotate"] == {"REDIS_PASSWORD": {"engine": "redis", "user": "default"}}
    assert validate_services(copy.deepcopy(out)) == out


@pytest.mark.parametrize("service, problem", [
    (svc(env_keys=["A"], rotate={"A": {"engine": "postgres", "user": "app"}}),
     "service 'x': rotate is for kind: database (a credential the database changes in place), not kind: service"),
    (db(env_keys=["A"], rotate={"B": {"engine": "postgres", "user": "app"}}),
     "service 'x': rotate B: not one of the service's env_keys (A)"),
    (db(env_keys=["A"], rotate={"A": {"engine": "mysql", "user": "app"}}),
     "service 'x': rotate A: engine must be one of postgres | redis, got 'mysql'"),
    (db(env_keys=["A"], rotate={"A": {"engine": "postgres"}}),
     "service 'x': rotate A: user must be a plain identifier (the role whose password it is), got None"),
    (db(env_keys=["A"], rotate={"A": {"engine": "postgres", "user": "app; DROP ROLE app"}}),
     "service 'x': rotate A: user must be a plain identifier (the role whose password it is), "
     "got 'app; DROP ROLE app'"),
    (db(env_keys=["A"], rotate={"A": {"engine": "redis", "user": "app"}}),
     "service 'x': rotate A: a Redis rotation is of the default user's password (requirepass), got user 'app'"),
    (db(env_keys=["A"], rotate={"A": "postgres"}), "service 'x': rotate A: must be {engine, user}, got 'postgres'"),
    (db(env_keys=["A"], rotate=["A"]), "service 'x': rotate must map env keys to {engine, user}, got ['A']"),
])
def test_a_rotation_the_database_cannot_do_is_refused_naming_it(service, problem):
    assert one_problem({"x": service}) == problem


def test_an_unknown_rotation_field_is_refused():
    problems = problems_of({"x": db(env_keys=["A"], rotate={"A": {"engine": "redis", "grace": 30}})})
    assert problems == ["service 'x': rotate A: unknown field(s) grace"]


# --------------------------------------------------------------------------
# a public service's own bake window (bake)
# --------------------------------------------------------------------------
def test_a_public_service_sets_its_own_bake_window():
    out = validate_services({"web": svc(public=True, bake={"seconds": 120, "min_success_rate": 99.5, "max_p99_ms": 800})})
    assert out["web"]["bake"] == {"seconds": 120, "min_success_rate": 99.5, "max_p99_ms": 800}


def test_a_bake_of_zero_seconds_turns_it_off_for_the_service():
    assert validate_services({"web": svc(public=True, bake={"seconds": 0})})["web"]["bake"] == {"seconds": 0}


def test_only_a_public_service_is_baked():
    assert "only a public service has a bake window" in one_problem({"app": svc(bake={"seconds": 60})})


@pytest.mark.parametrize("bake, says", [
    ({"seconds": -5}, "bake.seconds must be an integer >= 0, got -5"),
    ({"seconds": "60"}, "bake.seconds must be an integer >= 0, got '60'"),
    ({"min_requests": 0}, "bake.min_requests must be an integer >= 1, got 0"),
    ({"min_success_rate": 101}, "bake.min_success_rate must be a number >= 0 and <= 100 (percent), got 101"),
    ({"max_p99_ms": True}, "bake.max_p99_ms must be an integer >= 1, got True"),
    ({"window": 60}, "bake: unknown key 'window'"),
    ([60], "bake must be a mapping of seconds, min_requests, min_success_rate, max_p99_ms, got [60]"),
])
def test_a_bad_bake_is_named(bake, says):
    assert says in one_problem({"web": svc(public=True, bake=bake)})


# --------------------------------------------------------------------------
# update_order: start-first where two containers may run at once
# --------------------------------------------------------------------------
def test_update_order_is_start_first_by_default_and_stop_first_for_what_must_run_once():
    services = validate_services({
        "app": svc(), "web": svc(public=True), "pg": db(),
        "daemon": svc(kind="sidecar", provides_env={"DAEMON": "daemon:2000"}),
        "registry": svc(public=True, publish=False),
    })
    assert {n: s["update_order"] for n, s in services.items()} == {
        "app": "start-first", "web": "start-first", "pg": "stop-first", "daemon": "stop-first", "registry": "stop-first"}


def test_a_service_may_choose_stop_first():
    assert validate_services({"app": svc(update_order="stop-first")})["app"]["update_order"] == "stop-first"


@pytest.mark.parametrize("service,problem", [
    (svc(update_order="rolling"), "service 'app': update_order must be one of start-first | stop-first, got 'rolling'"),
    (db(update_order="start-first"),
     "service 'app': update_order start-first needs two containers at once; it is a database, so it is updated stop-first"),
    (svc(update_order="start-first", public=True, publish=False),
     "service 'app': update_order start-first needs two containers at once; it is reached at one fixed address, "
     "so it is updated stop-first"),
])
def test_an_update_order_the_service_cannot_have_is_named(service, problem):
    assert one_problem({"app": service}) == problem


EUREKA = {"EUREKA_URL": "http://sgivu-discovery:8761/eureka"}


def no_healthcheck(found: str) -> str:
    return ("service 'app': is updated start-first and registers with Eureka (EUREKA_URL), so its env must set "
            "EUREKA_CLIENT_HEALTHCHECK_ENABLED: \"true\" (" + found + "); without it Spring registers a new container "
            "UP before it is healthy, and its callers send it requests while it starts and when it never gets healthy "
            "(or set update_order: stop-first)")


@pytest.mark.parametrize("service,found", [
    (svc(env=EUREKA), "it is not set"),
    (svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": "false"}), "got 'false'"),
    (svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": False}), "got 'false'"),
    (svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": " False "}), "got ' False '"),
    (svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": ""}), "got ''"),
    (svc(env={"EUREKA_CLIENT_HEALTHCHECK_ENABLED": "false"}, env_keys=["EUREKA_URL"]), "got 'false'"),
    (svc(env=EUREKA, env_keys=["EUREKA_CLIENT_HEALTHCHECK_ENABLED"]),
     "it is in env_keys, whose value the catalog cannot see: set it in env"),
    (svc(env=EUREKA, public=True), "it is not set"),
], ids=["unset", "false", "boolean false", "False padded", "empty", "url from the env file", "in env_keys", "published"])
def test_a_start_first_eureka_client_must_register_by_its_health(service, found):
    assert one_problem({"app": service}) == no_healthcheck(found)


def test_a_eureka_url_a_sidecar_provides_counts_and_so_does_its_healthcheck():
    sidecar = svc(kind="sidecar", provides_env=EUREKA)
    assert one_problem({"app": svc(), "agent": sidecar}) == no_healthcheck("it is not set")
    both = svc(kind="sidecar", provides_env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": "true"})
    assert validate_services({"app": svc(), "agent": both})["app"]["env"]["EUREKA_CLIENT_HEALTHCHECK_ENABLED"] == "true"


def test_a_database_asking_for_start_first_is_told_once():
    assert one_problem({"app": db(update_order="start-first", env=EUREKA)}) == (
        "service 'app': update_order start-first needs two containers at once; it is a database, so it is updated "
        "stop-first")


def test_a_null_healthcheck_value_is_named_once():
    assert one_problem({"app": svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": None})}).startswith(
        "service 'app': env EUREKA_CLIENT_HEALTHCHECK_ENABLED must be a plain value")


@pytest.mark.parametrize("service", [
    svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": "true"}),
    svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": True}),
    svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": "TRUE"}),
    svc(env={**EUREKA, "EUREKA_CLIENT_HEALTHCHECK_ENABLED": "yes"}),
    svc(env={"EUREKA_URL": ""}),
    svc(env=EUREKA, update_order="stop-first"),
    svc(env=EUREKA, public=True, publish=False),
    svc(env={"SPRING_PROFILES_ACTIVE": "prod"}),
    svc(env=EUREKA, enabled=False),
], ids=["true", "boolean true", "upper case", "yes (Spring: any but false)", "empty url", "stop-first", "one fixed address",
        "no registry", "disabled"])
def test_a_eureka_client_that_registers_by_its_health_or_is_stop_first_is_taken(service):
    # validate_services raises CatalogError naming every problem; this one has none.
    assert set(validate_services({"app": service})) == {"app"}


@pytest.mark.parametrize("catalog, named", [
    ({"app\n": svc()}, "not a valid compose service name"),
    ({"app": svc(tag="1.0.0\n")}, "'app'"),
    ({"app": svc(databases=["users\n"])}, "'app'"),
    ({"pg": db(volumes={"pg-data\n": "/var/lib/postgresql/data"})}, "'pg'"),
])
def test_a_name_or_tag_ending_in_a_line_break_is_refused(catalog, named):
    # A "$"-anchored pattern takes "x\n" as "x": the name would reach Compose and the host with its line break.
    assert named in one_problem(catalog)
