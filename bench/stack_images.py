#!/usr/bin/env python3
"""Build the bench's images of every stack in bench/images.yml and push them to the bench registry.

No SGIVU image can be pulled here, so every application service of a catalog becomes the
stand-in image (tests/bench/images/standin) with that service's name, port, health path and
required env keys baked in, the way a real service image carries its own configuration; its
version is its tag. A sidecar that provides AWS_XRAY_DAEMON_ADDRESS plays the X-Ray daemon; the
service the others' EUREKA_URL names plays the Eureka server, and they register with it; a
service with routes in bench/images.yml (the gateway) sends the paths under each on to its
service, through the registry or by DNS name, as the real one does.
Tags pushed per application service: the catalog's own tag and every
stand-in release of bench/images.yml (`next`, `never_healthy`, ...). Database services get the
bench's PostgreSQL and Redis images under the catalog's repository and tag.

The stand-in bases are cached by a hash of their recipe (a label), as bench/lib.sh caches the
other images; the derived images are one ENV layer each.

Usage: stack_images.py REGISTRY      (the registry as this machine pushes to it, 127.0.0.1:5000)
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from images import RECIPES, Images  # noqa: E402  (bench/ is not a package)

STANDIN = RECIPES / "standin"


def run(*args: str) -> str:
    """Run a docker command; on failure exit naming it, with its own error output."""
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"bench: `{' '.join(args)}` failed (exit {done.returncode}):\n{done.stderr.strip()}")
    return done.stdout.strip()


def recipe_hash(tag: str, build_args: Dict[str, str]) -> str:
    digest = hashlib.sha256(f"{tag} {sorted(build_args.items())}\n".encode())
    digest.update(run("docker", "image", "inspect", "-f", "{{.Id}}", build_args["BASE_IMAGE"]).encode())
    for path in sorted(p for p in STANDIN.rglob("*") if p.is_file()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def standin_base(ref: str, tag: str, build_args: Dict[str, str]) -> None:
    """Build sgivu-bench/standin:<tag> unless the same recipe was built before."""
    want = recipe_hash(tag, build_args)
    have = subprocess.run(["docker", "image", "inspect", "-f", '{{ index .Config.Labels "sgivu.bench.hash" }}', ref],
                          capture_output=True, text=True, check=False).stdout.strip()
    if have == want:
        return
    args = ["--build-arg", f"VERSION={tag}"]
    for key, value in sorted(build_args.items()):
        args += ["--build-arg", f"{key}={value}"]
    run("docker", "build", "--quiet", "--label", f"sgivu.bench.hash={want}", *args, "-t", ref, str(STANDIN))
    print(f"built {ref}")


def route_uri(caller: str, callee: str, services: dict) -> str:
    """How ``caller`` reaches ``callee``, as a Spring Cloud Gateway route URI: lb://NAME through the
    Eureka registry when both name one (EUREKA_URL), else http://NAME:PORT by Docker's DNS name."""
    if callee not in services:
        sys.exit(f"bench/images.yml routes: {caller} calls {callee!r}, which its catalog does not run")
    registered = [bool((services[n].get("env") or {}).get("EUREKA_URL")) for n in (caller, callee)]
    return f"lb://{callee}" if all(registered) else f"http://{callee}:{services[callee]['port']}"


def service_env(name: str, svc: dict, services: dict, routes: Optional[Dict[str, str]] = None,
                cache_seconds: int = 35) -> Dict[str, str]:
    """The stand-in's environment that makes it play service ``name`` of catalog ``services``;
    ``routes`` (path prefix -> callee) are the calls it makes to the services behind it, the
    instance lists it fetches from the registry kept ``cache_seconds``."""
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
    # The service that the others' EUREKA_URL names plays the Eureka server; they register with it.
    registry_hosts = {urlsplit(str((s.get("env") or {}).get("EUREKA_URL", ""))).hostname for s in services.values()}
    if name in registry_hosts:
        env["STANDIN_EUREKA_SERVER"] = "true"
    if routes:
        env["STANDIN_ROUTES"] = ",".join(f"{prefix}={route_uri(name, callee, services)}"
                                         for prefix, callee in sorted(routes.items()))
        env["STANDIN_LB_CACHE_TTL"] = str(cache_seconds)
        env["STANDIN_DNS_CACHE_TTL"] = str(cache_seconds)
    if svc.get("kind") == "sidecar" and "AWS_XRAY_DAEMON_ADDRESS" in (svc.get("provides_env") or {}):
        # The X-Ray daemon: segments over UDP on its port, listed at GET /segments on the same TCP port.
        env["STANDIN_XRAY_DAEMON"] = "true"
    return env


def derived_image(base: str, env: Dict[str, str], ref: str) -> None:
    lines = [f"FROM {base}"] + [f'ENV {k}="{v.replace("$", chr(92) + "$")}"' for k, v in sorted(env.items())]
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / "Dockerfile").write_text("\n".join(lines) + "\n", encoding="utf-8")
        run("docker", "build", "--quiet", "-t", ref, ctx)


def main(registry: str) -> None:
    images = Images()
    for tag, build_args in images.standin_builds().items():
        standin_base(f"{images.standin_repository}:{tag}", tag, {"BASE_IMAGE": images.ref("debian"), **build_args})
    services_of = {stack: images.catalog(stack) for stack in images.stacks()}
    built: Dict[tuple, str] = {}  # (catalog, service, tag) -> the ref built first: stacks of one catalog share it
    for pushed in images.registry_tags():
        ref = f"{registry}/{pushed.name}"
        if pushed.service:
            services = services_of[pushed.stack]
            same = (images.stacks()[pushed.stack]["catalog"], pushed.service, pushed.tag)
            if same in built:
                run("docker", "tag", built[same], ref)
            else:
                env = service_env(pushed.service, services[pushed.service], services, images.routes(pushed.service),
                                  images.registry_cache_seconds)
                derived_image(pushed.local, env, ref)
                built[same] = ref
        else:
            run("docker", "tag", pushed.local, ref)
        run("docker", "push", "--quiet", ref)
        print(f"pushed {ref}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
