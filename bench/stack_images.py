#!/usr/bin/env python3
"""Build the bench's images of a stack from its catalog and push them to the bench registry.

No SGIVU image can be pulled here, so every application service of the catalog becomes the
stand-in image (tests/bench/images/standin) with that service's name, port, health path and
required env keys baked in, the way a real service image carries its own configuration; its
version is its tag. Databases become the bench's PostgreSQL and Redis images.

Tags pushed per application service: the catalog's tag, the bench's next release
(SGIVU_BENCH_NEXT_TAG, default 1.1.0) and SGIVU_BENCH_BAD_TAG (default 0.0.0-never-healthy),
whose health endpoint always answers 503.

Usage: stack_images.py CATALOG_YAML REPOSITORY_PREFIX
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STANDIN = os.path.join(ROOT, "tests", "bench", "images", "standin")
DATABASE_IMAGES = {"postgres": "sgivu-bench/postgres:15", "redis": "sgivu-bench/redis:7"}


def run(*args: str, quiet: bool = True) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL if quiet else None)


def repository_name(image: str) -> str:
    return image.rsplit("/", 1)[-1]


def standin_base(version: str, never_healthy: bool) -> str:
    ref = f"sgivu-bench/standin:{version}"
    build_args = ["--build-arg", f"VERSION={version}"]
    if never_healthy:
        build_args += ["--build-arg", "NEVER_HEALTHY=1"]
    run("docker", "build", "--quiet", *build_args, "-t", ref, STANDIN)
    return ref


def service_env(name: str, svc: dict, services: dict) -> dict[str, str]:
    health = svc.get("health") or {}
    env = {
        "STANDIN_SERVICE": name,
        "STANDIN_PORT": str(svc["port"]),
        "STANDIN_HEALTH_PATH": health.get("path") or "/actuator/health",
        "STANDIN_REQUIRED_ENV": ",".join(sorted(svc.get("env_keys") or [])),
    }
    postgres = next((n for n, s in services.items() if s.get("kind") == "database" and "postgres" in n), None)
    redis = next((n for n, s in services.items() if s.get("kind") == "database" and "redis" in n), None)
    if svc.get("databases") and postgres:
        env["STANDIN_DATABASE_URL"] = (
            f"postgresql://postgres:${{POSTGRES_PASSWORD}}@{postgres}:{services[postgres]['port']}/{svc['databases'][0]}"
        )
    if redis and "REDIS_PASSWORD" in (svc.get("env_keys") or []):
        env["STANDIN_REDIS_URL"] = f"redis://:${{REDIS_PASSWORD}}@{redis}:{services[redis]['port']}/0"
    return env


def derived_image(base: str, env: dict[str, str], ref: str) -> None:
    lines = [f"FROM {base}"] + [f'ENV {k}="{v.replace("$", chr(92) + "$")}"' for k, v in sorted(env.items())]
    with tempfile.TemporaryDirectory() as ctx:
        with open(os.path.join(ctx, "Dockerfile"), "w", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
        run("docker", "build", "--quiet", "-t", ref, ctx)


def push(ref: str) -> None:
    run("docker", "push", "--quiet", ref)


def main(catalog_path: str, prefix: str) -> None:
    with open(catalog_path, encoding="utf-8") as handle:
        services = yaml.safe_load(handle)["stack_services"]
    next_tag = os.environ.get("SGIVU_BENCH_NEXT_TAG", "1.1.0")
    bad_tag = os.environ.get("SGIVU_BENCH_BAD_TAG", "0.0.0-never-healthy")
    bases: dict[tuple[str, bool], str] = {}
    for name, svc in sorted(services.items()):
        if svc.get("enabled", True) is False:
            continue
        repo = f"{prefix}/{repository_name(svc['image'])}"
        tag = str(svc["tag"])
        if svc.get("kind") == "database":
            local = next((img for key, img in DATABASE_IMAGES.items() if key in name), None)
            if local is None:
                sys.exit(f"bench: no bench image for database service {name}")
            run("docker", "tag", local, f"{repo}:{tag}")
            push(f"{repo}:{tag}")
            continue
        env = service_env(name, svc, services)
        for version, bad in ((tag, False), (next_tag, False), (bad_tag, True)):
            key = (version, bad)
            if key not in bases:
                bases[key] = standin_base(version, bad)
            derived_image(bases[key], env, f"{repo}:{version}")
            push(f"{repo}:{version}")
        print(f"pushed {repo}: {tag}, {next_tag}, {bad_tag}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
