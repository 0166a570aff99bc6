"""The compose project rendered from the catalog keeps its promises, whatever the catalog."""
from __future__ import annotations

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import validate_services
from ansible_collections.sgivu.deploy.plugins.module_utils.compose import (
    for_engine,
    shown,
    effective_images,
    render_project,
    rollout_steps,
    static_addresses,
    update_targets,
    upstreams,
)

SUBNET = "172.30.0.0/24"


@pytest.fixture
def sgivu(stack_vars):
    return validate_services(stack_vars("prod")["stack_services"])


@pytest.fixture
def project(sgivu):
    return render_project(sgivu, "sgivu", SUBNET, public_hostname="sgivu.example.com")


def test_only_published_services_publish_ports_and_only_on_loopback(project, sgivu):
    published = {name for name, svc in project["services"].items() if "ports" in svc}
    assert published == {n for n, s in sgivu.items() if s["enabled"] and s["publish"]}
    for svc in project["services"].values():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:")


def test_databases_publish_nothing(project, sgivu):
    for name, svc in sgivu.items():
        if svc["enabled"] and svc["kind"] == "database":
            assert "ports" not in project["services"][name]


def test_secrets_come_from_the_service_own_raw_env_file_never_the_project(project, sgivu):
    for name, svc in sgivu.items():
        if not svc["enabled"]:
            continue
        rendered = project["services"][name]
        assert not set(svc["env_keys"]) & set(rendered.get("environment", {}))
        if svc["env_keys"]:
            assert rendered["env_file"] == [{"path": f"env/{name}.env", "format": "raw"}]
            assert project["x-sgivu"]["env_keys"][name] == sorted(svc["env_keys"])
        else:
            assert "env_file" not in rendered


def test_nothing_in_the_project_asks_compose_to_interpolate(project):
    """Every $ the project holds is an escaped $$: Compose substitutes nothing, from any env."""
    import json
    import re
    assert not re.search(r"(?<!\$)\$(?!\$)", json.dumps(project).replace("$$", ""))


def test_health_commands_read_secrets_from_the_container_environment():
    services = validate_services({
        "cache": {"image": "r/redis", "tag": "7", "port": 6379, "env_keys": ["REDIS_PASSWORD"],
                  "health": {"command": ["sh", "-c", 'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli ping']}},
    })
    test = render_project(services, "s", SUBNET)["services"]["cache"]["healthcheck"]["test"]
    assert test == ["CMD", "sh", "-c", 'REDISCLI_AUTH="$$REDIS_PASSWORD" redis-cli ping']


def test_the_project_carries_its_waves_deadlines_and_env_keys(sgivu):
    from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import start_waves
    project = render_project(sgivu, "sgivu", SUBNET, waves=start_waves(sgivu), wait_margin=30)
    meta = project["x-sgivu"]
    assert {"sgivu-postgres", "sgivu-redis"} <= set(meta["waves"][0]) and "sgivu-gateway" not in meta["waves"][0]
    assert sorted(s for wave in meta["waves"] for s in wave) == sorted(project["services"])
    assert meta["deadlines"]["sgivu-auth"] == sgivu["sgivu-auth"]["health"]["timeout"] + 30


def test_no_service_has_a_container_name(project):
    assert all("container_name" not in svc for svc in project["services"].values())


def test_disabled_services_are_left_out(project, sgivu):
    disabled = {n for n, s in sgivu.items() if not s["enabled"]}
    assert disabled and not disabled & set(project["services"])


def _checked(**health):
    services = validate_services({"app": {"image": "r/app", "tag": "1", "port": 8080,
                                          "health": dict({"path": "/actuator/health"}, **health)}})
    return render_project(services, "s", SUBNET)


def test_a_healthcheck_probes_at_its_start_interval_while_starting_then_at_its_interval():
    check = _checked(interval=30, start_interval=2, timeout=90)["services"]["app"]["healthcheck"]
    assert check == {"test": ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/actuator/health"],
                     "interval": "30s", "start_interval": "2s", "timeout": "3s", "retries": 3, "start_period": "90s"}


def test_a_healthcheck_without_a_start_interval_probes_at_its_interval_while_starting_too():
    """Written even when equal: left out, Docker 25+ would probe a starting service every 5 s (moby's default)."""
    check = _checked(interval=30, timeout=120)["services"]["app"]["healthcheck"]
    assert (check["interval"], check["start_interval"], check["timeout"]) == ("30s", "30s", "30s")


def test_an_older_engine_gets_the_project_rendered_before_start_interval_existed():
    old_engine = for_engine(_checked(interval=5, timeout=120), (1, 41))["services"]["app"]["healthcheck"]
    assert list(old_engine) == ["test", "interval", "timeout", "retries", "start_period"]
    assert (old_engine["interval"], old_engine["timeout"], old_engine["start_period"]) == ("5s", "5s", "120s")


def test_a_project_without_services_is_given_back_as_it_is():
    assert for_engine({"name": "s"}, (1, 41)) == {"name": "s"}
    assert for_engine({"name": "s", "services": None}, (1, 41)) == {"name": "s", "services": None}


@pytest.mark.parametrize("api", [(1, 44), (1, 45), (2, 0)])
def test_an_engine_from_api_1_44_runs_the_project_as_rendered(api):
    project = _checked(interval=30, start_interval=5, timeout=90)
    assert for_engine(project, api) == project


@pytest.mark.parametrize("api", [(1, 41), (1, 43), (1,)])
def test_an_older_engine_probes_every_start_interval_throughout(api):
    project = _checked(interval=30, start_interval=5, timeout=90)
    check = for_engine(project, api)["services"]["app"]["healthcheck"]
    assert "start_interval" not in check
    assert (check["interval"], check["timeout"], check["start_period"]) == ("5s", "5s", "90s")
    assert project["services"]["app"]["healthcheck"]["start_interval"] == "5s"  # the given project is untouched


@pytest.mark.parametrize("start, interval, pace", [(1, 30, 5), (2, 3, 3), (7, 30, 7), (5, 5, 5), (1, 1, 1)])
def test_an_older_engine_probes_no_faster_than_every_5_s_and_no_slower_than_the_interval(start, interval, pace):
    check = for_engine(_checked(interval=interval, start_interval=start, timeout=90), (1, 41))["services"]["app"]["healthcheck"]
    assert (check["interval"], check["timeout"]) == (f"{pace}s", f"{max(pace, 3)}s") and "start_interval" not in check


def test_the_prod_catalog_on_docker_20_10_renders_what_it_rendered_before_start_interval(project):
    """Debian 12's docker.io (API 1.41): every probe every 5 s, as before, so an upgrade recreates nothing there."""
    old_engine = for_engine(project, (1, 41))
    for name, service in old_engine["services"].items():
        check = service["healthcheck"]
        assert "start_interval" not in check and check["interval"] == "5s" and check["timeout"] == "5s", name


def test_dependencies_wait_for_health(project):
    gateway = project["services"]["sgivu-gateway"]
    assert gateway["depends_on"]["sgivu-redis"] == {"condition": "service_healthy"}


def test_public_hostname_maps_to_host_gateway_in_application_services(project):
    assert project["services"]["sgivu-auth"]["extra_hosts"] == ["sgivu.example.com:host-gateway"]
    assert "extra_hosts" not in project["services"]["sgivu-postgres"]


def test_named_volumes_belong_to_the_project(project):
    """No explicit name: Compose names them <project>_<volume>, so another project never mounts them."""
    assert project["volumes"]["postgres-data"] == {}
    assert "postgres-data:/var/lib/postgresql/data" in project["services"]["sgivu-postgres"]["volumes"]


def test_plain_env_dollars_are_escaped_for_compose():
    services = validate_services({
        "app": {"image": "r/app", "tag": "1", "port": 80, "health": {"path": "/h"}, "env": {"GREETING": "cost $5"}},
    })
    project = render_project(services, "s", SUBNET)
    assert project["services"]["app"]["environment"]["GREETING"] == "cost $$5"


def test_unpublished_public_service_gets_a_fixed_address_nginx_uses(project, sgivu):
    fixed = static_addresses(sgivu, SUBNET)
    assert set(fixed) == {"sgivu-discovery"}
    networks = project["services"]["sgivu-discovery"]["networks"]
    assert networks["sgivu-network"] == {"ipv4_address": fixed["sgivu-discovery"]}
    assert upstreams(sgivu, SUBNET)["sgivu-discovery"] == [f"{fixed['sgivu-discovery']}:8761"]


def test_published_services_get_twice_their_replicas_in_loopback_ports():
    services = validate_services({
        "web": {"image": "r/web", "tag": "1", "port": 8080, "public": True, "replicas": 2, "health": {"path": "/h"}},
    })
    assert upstreams(services, SUBNET) == {"web": [f"127.0.0.1:{p}" for p in range(8080, 8084)]}
    assert render_project(services, "s", SUBNET)["services"]["web"]["ports"] == ["127.0.0.1:8080-8083:8080"]


def test_a_single_published_replica_has_room_for_its_successor(project):
    assert project["services"]["sgivu-gateway"]["ports"] == ["127.0.0.1:8080-8081:8080"]


def test_image_overrides_replace_the_catalog_tag(sgivu):
    project = render_project(sgivu, "sgivu", SUBNET, images={"sgivu-gateway": "r/sgivu-gateway@sha256:abc"})
    assert project["services"]["sgivu-gateway"]["image"] == "r/sgivu-gateway@sha256:abc"


def test_too_small_subnet_is_refused(sgivu):
    with pytest.raises(ValueError, match="too small"):
        static_addresses(sgivu, "172.30.0.0/29")


def test_effective_images_apply_a_pin_while_the_catalog_tag_is_unchanged(sgivu):

    pins = {"sgivu-gateway": {"image": "r/sgivu-gateway:1.1.0", "catalog_tag": sgivu["sgivu-gateway"]["tag"]}}
    assert effective_images(sgivu, pins)["sgivu-gateway"] == "r/sgivu-gateway:1.1.0"


def test_effective_images_drop_a_pin_once_the_catalog_moves(sgivu):

    pins = {"sgivu-gateway": {"image": "r/sgivu-gateway:1.1.0", "catalog_tag": "0.9.0"}}
    images = effective_images(sgivu, pins)
    assert images["sgivu-gateway"].endswith(":" + sgivu["sgivu-gateway"]["tag"])


def test_effective_images_let_overrides_win(sgivu):

    pins = {"sgivu-auth": {"image": "r/sgivu-auth:1.1.0", "catalog_tag": sgivu["sgivu-auth"]["tag"]}}
    images = effective_images(sgivu, pins, {"sgivu-auth": "r/sgivu-auth@sha256:abc"})
    assert images["sgivu-auth"] == "r/sgivu-auth@sha256:abc"


def _ps(cid: str, service: str, public_port: int, status: str = "Up 5 seconds (healthy)", private: int = 8080) -> dict:
    return {
        "Id": cid, "State": "running", "Status": status,
        "Labels": {"com.docker.compose.service": service},
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": private, "PublicPort": public_port, "Type": "tcp"}],
    }


def test_live_upstreams_follow_the_ports_healthy_containers_hold(sgivu):
    from ansible_collections.sgivu.deploy.plugins.module_utils.compose import live_upstreams

    containers = [_ps("old", "sgivu-gateway", 8080), _ps("new", "sgivu-gateway", 8081)]
    assert live_upstreams(sgivu, containers, SUBNET)["sgivu-gateway"] == ["127.0.0.1:8080", "127.0.0.1:8081"]


def test_live_upstreams_leave_out_a_container_still_starting(sgivu):
    from ansible_collections.sgivu.deploy.plugins.module_utils.compose import live_upstreams

    containers = [_ps("old", "sgivu-gateway", 8080), _ps("new", "sgivu-gateway", 8081, "Up 2 seconds (health: starting)")]
    assert live_upstreams(sgivu, containers, SUBNET)["sgivu-gateway"] == ["127.0.0.1:8080", "127.0.0.1:8081 backup"]
    # What a no-op deploy compares with the upstreams file: a container restarting now is still the one rendered.
    assert live_upstreams(sgivu, containers, SUBNET, starting=True)["sgivu-gateway"] == ["127.0.0.1:8080", "127.0.0.1:8081"]
    unhealthy = [_ps("old", "sgivu-gateway", 8080, "Up 9 minutes (unhealthy)"), containers[1]]
    assert live_upstreams(sgivu, unhealthy, SUBNET, starting=True)["sgivu-gateway"] == ["127.0.0.1:8081", "127.0.0.1:8080 backup"]


def test_live_upstreams_leave_out_a_container_being_retired(sgivu):
    from ansible_collections.sgivu.deploy.plugins.module_utils.compose import live_upstreams

    containers = [_ps("old", "sgivu-gateway", 8080), _ps("new", "sgivu-gateway", 8081)]
    assert live_upstreams(sgivu, containers, SUBNET, exclude=["old"])["sgivu-gateway"] == ["127.0.0.1:8081", "127.0.0.1:8080 backup"]


def test_live_upstreams_keep_the_fixed_address_of_unpublished_services(sgivu):
    from ansible_collections.sgivu.deploy.plugins.module_utils.compose import live_upstreams

    assert live_upstreams(sgivu, [], SUBNET)["sgivu-discovery"] == upstreams(sgivu, SUBNET)["sgivu-discovery"]


def test_update_targets_take_the_new_tag_the_current_image_or_an_exact_one(sgivu):

    current = {"sgivu-gateway": "r/sgivu-gateway:1.0.0", "sgivu-auth": "r/sgivu-auth:1.0.0"}
    repo = sgivu["sgivu-gateway"]["image"]
    assert update_targets(sgivu, ["sgivu-gateway"], "1.1.0", current) == {"sgivu-gateway": f"{repo}:1.1.0"}
    assert update_targets(sgivu, ["sgivu-auth"], "", current) == {"sgivu-auth": "r/sgivu-auth:1.0.0"}
    exact = {"sgivu-auth": "r/sgivu-auth@sha256:abc"}
    assert update_targets(sgivu, ["sgivu-auth"], "1.1.0", current, exact) == exact


def test_an_override_for_a_service_the_catalog_does_not_run_is_refused(sgivu):
    with pytest.raises(ValueError, match="unknown service.s. sgivu-nope"):
        effective_images(sgivu, {}, {"sgivu-nope": "r/x:1"})


def test_an_update_of_a_service_the_catalog_does_not_run_is_refused(sgivu):
    with pytest.raises(ValueError, match='service "sgivu-nope" is not a service the catalog runs; its enabled services are'):
        update_targets(sgivu, ["sgivu-nope"], "1.1.0", {})


@pytest.mark.parametrize("version", ["1.1.0 ", "-rc1", ".hidden", "a" * 129, "v1;rm", "1.0.0@sha256:abc", "ünï", "1.2.0\n"])
def test_a_version_that_is_not_an_image_tag_is_refused_before_anything_is_pulled(sgivu, version):
    with pytest.raises(ValueError, match="is not a valid image tag"):
        update_targets(sgivu, ["sgivu-gateway"], version, {})


def test_an_update_without_a_version_repulls_the_tag_it_runs_not_its_digest(sgivu):
    current = {"sgivu-user": "r/sgivu-user:1.1.0@sha256:" + "a" * 64}
    assert update_targets(sgivu, ["sgivu-user"], "", current) == {"sgivu-user": "r/sgivu-user:1.1.0"}


def test_an_update_without_a_version_of_a_service_pinned_by_digest_alone_is_refused(sgivu):
    with pytest.raises(ValueError, match="pinned by digest alone: there is no tag to pull again"):
        update_targets(sgivu, ["sgivu-user"], "", {"sgivu-user": "r/sgivu-user@sha256:" + "a" * 64})


def test_a_rollout_swaps_start_first_services_of_one_wave_together_published_ones_alone_and_recreates_stop_first_runs(sgivu):
    names = ["sgivu-postgres", "sgivu-redis", "sgivu-discovery", "sgivu-auth", "sgivu-user", "sgivu-gateway", "sgivu-ml"]
    assert rollout_steps(sgivu, names) == [
        ["sgivu-postgres", "sgivu-redis", "sgivu-discovery"], ["sgivu-auth"], ["sgivu-user"], ["sgivu-gateway"], ["sgivu-ml"]]
    assert rollout_steps(sgivu, ["sgivu-gateway", "sgivu-redis", "sgivu-auth"]) == [["sgivu-gateway"], ["sgivu-redis"], ["sgivu-auth"]]
    assert rollout_steps(sgivu, []) == []
    # A shared key's users: the business services (one wave) in one step; config (an earlier wave)
    # and ml (a later one) each in their own, though all are start-first and unpublished.
    shared = ["sgivu-config", "sgivu-auth", "sgivu-client", "sgivu-purchase-sale", "sgivu-user", "sgivu-vehicle",
              "sgivu-gateway", "sgivu-ml"]
    assert rollout_steps(sgivu, shared) == [
        ["sgivu-config"], ["sgivu-auth"], ["sgivu-client", "sgivu-purchase-sale", "sgivu-user", "sgivu-vehicle"],
        ["sgivu-gateway"], ["sgivu-ml"]]
    assert rollout_steps(sgivu, ["sgivu-config", "sgivu-user"]) == [["sgivu-config"], ["sgivu-user"]]
    assert rollout_steps(sgivu, ["sgivu-user", "sgivu-client", "sgivu-user"]) == [["sgivu-user", "sgivu-client"]]


@pytest.mark.parametrize("value, text", [
    ("1.2.0\n", '"1.2.0\\n"'),
    ("20261201T000000Z\u200b", '"20261201T000000Z\\u200b"'),  # looks like an id; the message shows it is not
    ("x" * 80, '"' + "x" * 35 + '..."'),
    ("ünï", '"ünï"'),
    (["a", ["x"]], '["a", ["x"]]'),
    (5, "5"),
])
def test_a_value_is_shown_as_json_with_what_does_not_print_escaped_and_cut_inside_its_quotes(value, text):
    assert shown(value) == text
