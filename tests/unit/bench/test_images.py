"""The bench's one image list (bench/images.yml) and the check that stops a run missing an image."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bench_images import BENCH, NEVER_HEALTHY, NEXT, images

ROOT = Path(__file__).resolve().parents[3]
LIB_SH = (ROOT / "bench" / "lib.sh").read_text(encoding="utf-8")
# Where tests and benchmarks live that run against the bench (unit fixtures are data, not images).
BENCH_USERS = ["tests/molecule", "tests/integration", "tests/benchmarks", "tests/lib", "molecule", ".config/molecule"]


def test_every_local_image_has_a_recipe_the_bench_knows():
    for line in BENCH.plan():
        kind, ref, *rest = line.split("\t")
        if kind == "rootfs":
            hooks = rest[2]
            assert hooks == "" or re.search(rf"^\s+{hooks}\)$", LIB_SH, re.M), f"{ref}: bench/lib.sh has no hooks {hooks!r}"
        else:
            assert Path(rest[0], "Dockerfile").is_file(), f"{ref}: no Dockerfile in {rest[0]}"


def test_release_tags_are_read_from_the_list():
    releases = yaml.safe_load((ROOT / "bench" / "images.yml").read_text(encoding="utf-8"))["standin"]["releases"]
    assert (NEXT, NEVER_HEALTHY) == (releases["next"]["tag"], releases["never_healthy"]["tag"])


def test_every_application_service_gets_every_release_in_the_registry():
    pushed = {p.name for p in BENCH.registry_tags()}
    for stack, spec in BENCH.stacks().items():
        for name, svc in BENCH.catalog(stack).items():
            repository = f"{spec['prefix']}/{svc['image'].rsplit('/', 1)[-1]}"
            tags = [str(svc["tag"])] if svc.get("kind") == "database" else [str(svc["tag"]), NEXT, NEVER_HEALTHY]
            for tag in tags:
                assert f"{repository}:{tag}" in pushed, f"{stack}/{name}: {repository}:{tag} is never pushed"


def test_an_unknown_name_is_refused_naming_it():
    with pytest.raises(images.ManifestError, match="no stand-in release 'sometimes_healthy'"):
        BENCH.tag("sometimes_healthy")
    with pytest.raises(images.ManifestError, match="no local image 'ghost'"):
        BENCH.ref("ghost")


@pytest.mark.parametrize("value", sorted({r["ref"] for r in BENCH.data["local"].values()}
                                         | {str(r["tag"]) for r in BENCH.data["standin"]["releases"].values()}
                                         | set(BENCH.data["pushed"].values())
                                         | {BENCH.data["execution_environment"]["ref"]}))
def test_no_test_names_a_bench_image_or_release_itself(value):
    """Tests read refs and tags from the list: a second list in a test goes stale (issue 15)."""
    for folder in BENCH_USERS:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh", ".yml") and path.name != "bench_images.py":
                named = value in path.read_text(encoding="utf-8")
                assert not named, f"{path.relative_to(ROOT)} names {value} itself; read it from bench/images.yml"


def test_check_fails_naming_a_missing_image(tmp_path):
    """What `bench/lib.sh` runs after building: an image the list names but nobody built stops the run."""
    manifest = yaml.safe_load((ROOT / "bench" / "images.yml").read_text(encoding="utf-8"))
    manifest["local"]["ghost"] = {"ref": "sgivu-bench/ghost:never-built", "build": {"context": "hello"}}
    path = tmp_path / "images.yml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SGIVU_BENCH_REGISTRY")}
    env["SGIVU_BENCH_IMAGES"] = str(path)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "images.py"), "check"], env=env,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "missing: image sgivu-bench/ghost:never-built is not in this machine's Docker engine" in done.stderr


def test_the_lottery_tracing_sidecar_plays_the_xray_daemon_and_nothing_else_does():
    sys.path.insert(0, str(ROOT / "bench"))
    from stack_images import service_env

    played = {(stack, name) for stack in BENCH.stacks() for name, svc in BENCH.catalog(stack).items()
              if service_env(name, svc, BENCH.catalog(stack)).get("STANDIN_XRAY_DAEMON") == "true"}
    assert played == {("lottery", "xray-daemon")}


def test_the_discovery_service_the_others_name_plays_the_eureka_server_and_nothing_else_does():
    sys.path.insert(0, str(ROOT / "bench"))
    from stack_images import service_env

    played = {(stack, name) for stack in BENCH.stacks() for name, svc in BENCH.catalog(stack).items()
              if service_env(name, svc, BENCH.catalog(stack)).get("STANDIN_EUREKA_SERVER") == "true"}
    assert played == {(stack, "sgivu-discovery") for stack in BENCH.stacks() if stack != "lottery"}


def test_the_gateway_calls_registered_services_through_the_registry_and_the_others_by_name():
    sys.path.insert(0, str(ROOT / "bench"))
    from stack_images import service_env

    def routes(stack, name):
        services = BENCH.catalog(stack)
        return service_env(name, services[name], services, BENCH.routes(name)).get("STANDIN_ROUTES")

    assert routes("sgivu", "sgivu-gateway") == (
        "/v1/companies=lb://sgivu-client,/v1/ml=http://sgivu-ml:8000,/v1/persons=lb://sgivu-client,"
        "/v1/purchase-sales=lb://sgivu-purchase-sale,/v1/users=lb://sgivu-user,/v1/vehicles=lb://sgivu-vehicle")
    assert routes("sgivu-fleet", "sgivu-gateway") == routes("sgivu", "sgivu-gateway")
    assert routes("lottery", "lottery") == "/bbb-lotto/print=http://printer:80,/bbb-lotto/ticket=http://ticket:80"
    assert routes("sgivu", "sgivu-user") is None


def test_a_route_to_a_service_the_catalog_does_not_run_stops_the_build_naming_it():
    sys.path.insert(0, str(ROOT / "bench"))
    from stack_images import service_env

    services = BENCH.catalog("lottery")
    with pytest.raises(SystemExit, match="lottery calls 'sgivu-user', which its catalog does not run"):
        service_env("lottery", services["lottery"], services, {"/v1/users": "sgivu-user"})


@pytest.mark.parametrize("key,inventories", [("stack_registry_cache_seconds", ("bench", "bench-fleet")),
                                              ("stack_dns_cache_seconds", ("bench", "bench-fleet", "bench-lottery"))])
def test_the_bench_waits_out_a_little_more_than_its_callers_caches(key, inventories):
    """A start-first update stops an old instance stack_registry_cache_seconds after it left service
    in the registry, stack_dns_cache_seconds after it left its DNS name; the stand-in callers keep
    both for registry_cache_seconds (STANDIN_LB_CACHE_TTL, STANDIN_DNS_CACHE_TTL)."""
    for inventory in inventories:
        with open(ROOT / "inventories" / inventory / "group_vars" / "stack_hosts" / "stack.yml", encoding="utf-8") as handle:
            waited = yaml.safe_load(handle)[key]
        assert BENCH.registry_cache_seconds < waited <= BENCH.registry_cache_seconds + 5, inventory


def test_a_caller_keeps_the_registry_s_list_and_dns_answers_as_long_as_the_bench_says():
    from stack_images import service_env

    services = BENCH.catalog("sgivu")
    env = service_env("sgivu-gateway", services["sgivu-gateway"], services, BENCH.routes("sgivu-gateway"),
                      BENCH.registry_cache_seconds)
    assert env["STANDIN_LB_CACHE_TTL"] == env["STANDIN_DNS_CACHE_TTL"] == str(BENCH.registry_cache_seconds)
