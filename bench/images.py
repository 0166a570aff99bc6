#!/usr/bin/env python3
"""The bench's image list (bench/images.yml): what to build, what to push, and proof it exists.

bench/lib.sh builds from ``plan``, bench/stack_images.py pushes the stand-in releases, and
``check`` proves, once the bench is up, that every image and every registry tag the tests may
use exists; a missing one fails the run with its name. Tests read refs and tags through
tests/lib/bench_images.py, which loads this file, so the list is written in one place.

Usage:
  images.py plan                 the local images, one per line, as bench/lib.sh builds them:
                                 rootfs<TAB>ref<TAB>suite<TAB>packages,...<TAB>hooks
                                 build<TAB>ref<TAB>context dir<TAB>ARG=VALUE ...
  images.py pushed               local ref<TAB>repository:tag, for each image pushed as it is
  images.py ref NAME             the ref of local image NAME (a key under `local:`)
  images.py standin KIND         the ref of the stand-in release KIND (`next`, `never_healthy`, ...)
  images.py tag KIND             the tag of the stand-in release KIND
  images.py check                every image and registry tag exists; exit 1 naming each missing one
                                 (registry: SGIVU_BENCH_REGISTRY_LOCAL, _USER, _PASSWORD)
"""
from __future__ import annotations

import base64
import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "bench" / "images.yml"
RECIPES = ROOT / "tests" / "bench" / "images"
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
))


class ManifestError(Exception):
    """The image list names something it does not define."""


@dataclass(frozen=True)
class Pushed:
    """One tag the bench registry must hold: repository:tag, from a local image, for a service or not."""

    repository: str
    tag: str
    local: str
    stack: Optional[str] = None
    service: Optional[str] = None

    @property
    def name(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def source(self) -> str:
        return self.local + (f" for {self.stack}/{self.service}" if self.service else "")


class Images:
    """The parsed image list. Every lookup of an unknown name raises ManifestError naming it."""

    def __init__(self, path: Path = MANIFEST) -> None:
        self.path = Path(path)
        with open(self.path, encoding="utf-8") as handle:
            self.data = yaml.safe_load(handle)

    # --- local images ---------------------------------------------------------------------
    def ref(self, name: str) -> str:
        """The ref of local image ``name`` (a key under ``local:``)."""
        try:
            return self.data["local"][name]["ref"]
        except KeyError:
            raise ManifestError(f"{self.path.name} defines no local image {name!r}") from None

    def plan(self) -> Iterator[str]:
        """The local images as bench/lib.sh builds them, one tab-separated line each."""
        for name, image in self.data["local"].items():
            if "rootfs" in image:
                rootfs = image["rootfs"]
                yield "\t".join(("rootfs", image["ref"], rootfs["suite"], ",".join(rootfs["packages"]),
                                 rootfs.get("hooks", "")))
            elif "build" in image:
                build = image["build"]
                args = [f"{k}={v}" for k, v in sorted((build.get("args") or {}).items())]
                yield "\t".join(["build", image["ref"], str(RECIPES / build["context"])] + args)
            else:
                raise ManifestError(f"local image {name!r} has neither rootfs nor build")

    def pushed(self) -> Iterator[Tuple[str, str]]:
        """(local ref, repository:tag) of each image pushed to the bench registry as it is."""
        for name, target in (self.data.get("pushed") or {}).items():
            yield self.ref(name), target

    # --- the stand-in application -------------------------------------------------------
    @property
    def standin_repository(self) -> str:
        return self.data["standin"]["repository"]

    def releases(self) -> Dict[str, dict]:
        return self.data["standin"]["releases"]

    def tag(self, kind: str) -> str:
        """The tag of stand-in release ``kind`` (``next``, ``never_healthy``, ...)."""
        try:
            return str(self.releases()[kind]["tag"])
        except KeyError:
            raise ManifestError(f"{self.path.name} defines no stand-in release {kind!r}") from None

    def standin(self, kind: str) -> str:
        """The local ref of stand-in release ``kind``."""
        return f"{self.standin_repository}:{self.tag(kind)}"

    def stacks(self) -> Dict[str, dict]:
        return self.data["stacks"]

    def catalog(self, stack: str) -> Dict[str, dict]:
        """The enabled services of a stack's catalog."""
        with open(ROOT / self.stacks()[stack]["catalog"], encoding="utf-8") as handle:
            services = yaml.safe_load(handle)["stack_services"]
        return {n: s for n, s in services.items() if s.get("enabled", True) is not False}

    def routes(self, service: str) -> Dict[str, str]:
        """Path prefix -> callee of the calls that stand-in ``service`` makes (``routes:``; empty for most)."""
        return {str(prefix): str(callee) for prefix, callee in ((self.data.get("routes") or {}).get(service) or {}).items()}

    @property
    def registry_cache_seconds(self) -> int:
        """Seconds a stand-in that calls services through the registry keeps the list it fetched."""
        return int(self.data.get("registry_cache_seconds", 35))

    def database_image(self, service: str) -> str:
        """The local image a database service of a catalog runs on the bench."""
        for key, local in self.data["databases"].items():
            if key in service:
                return self.ref(local)
        raise ManifestError(f"no bench image for database service {service!r} (bench/images.yml, databases:)")

    def standin_builds(self) -> Dict[str, Dict[str, str]]:
        """tag -> build args of every stand-in base image: each release and each catalog's tag."""
        builds: Dict[str, Dict[str, str]] = {}
        for stack in self.stacks():
            for svc in self.catalog(stack).values():
                if svc.get("kind") != "database":
                    builds.setdefault(str(svc["tag"]), {})
        for release in self.releases().values():
            builds[str(release["tag"])] = {k: str(v) for k, v in (release.get("args") or {}).items()}
        return builds

    def registry_tags(self) -> Iterator[Pushed]:
        """Every repository:tag the bench registry must hold, with what it is built from."""
        for local, target in self.pushed():
            repository, tag = target.rsplit(":", 1)
            yield Pushed(repository, tag, local)
        for stack, spec in self.stacks().items():
            for name, svc in sorted(self.catalog(stack).items()):
                repository = f"{spec['prefix']}/{svc['image'].rsplit('/', 1)[-1]}"
                if svc.get("kind") == "database":
                    yield Pushed(repository, str(svc["tag"]), self.database_image(name))
                    continue
                # A release that names its stacks and services is pushed for those alone.
                release_tags = [str(r["tag"]) for r in self.releases().values()
                                if stack in r.get("stacks", [stack]) and name in r.get("services", [name])]
                for tag in [str(svc["tag"])] + release_tags:
                    yield Pushed(repository, tag, f"{self.standin_repository}:{tag}", stack, name)

    # --- proof ----------------------------------------------------------------------------
    def local_refs(self) -> List[str]:
        refs = [image["ref"] for image in self.data["local"].values()]
        refs += [f"{self.standin_repository}:{tag}" for tag in self.standin_builds()]
        return refs

    def missing(self, registry: Optional[str], user: str = "", password: str = "") -> List[str]:
        """What the bench lacks, one line each: local images, then registry tags."""
        lines = []
        for ref in self.local_refs():
            found = subprocess.run(["docker", "image", "inspect", ref], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, check=False)
            if found.returncode != 0:
                lines.append(f"image {ref} is not in this machine's Docker engine")
        if registry:
            for pushed in self.registry_tags():
                status = manifest_status(registry, pushed.repository, pushed.tag, user, password)
                if status != 200:
                    lines.append(f"tag {pushed.name} is not in the bench registry {registry} "
                                 f"(HTTP {status}; built from {pushed.source})")
        return lines


def manifest_status(registry: str, repository: str, tag: str, user: str, password: str) -> int:
    """HTTP status of HEAD /v2/<repository>/manifests/<tag> on the registry (0: no answer)."""
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD",
                                     headers={"Accept": MANIFEST_ACCEPT})
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def main(argv: List[str]) -> int:
    images = Images(Path(os.environ.get("SGIVU_BENCH_IMAGES", MANIFEST)))
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    try:
        if command == "plan":
            print("\n".join(images.plan()))
        elif command == "pushed":
            print("\n".join(f"{ref}\t{target}" for ref, target in images.pushed()))
        elif command in ("ref", "standin", "tag") and len(args) == 1:
            print({"ref": images.ref, "standin": images.standin, "tag": images.tag}[command](args[0]))
        elif command == "check":
            missing = images.missing(os.environ.get("SGIVU_BENCH_REGISTRY_LOCAL"),
                                     os.environ.get("SGIVU_BENCH_REGISTRY_USER", ""),
                                     os.environ.get("SGIVU_BENCH_REGISTRY_PASSWORD", ""))
            for line in missing:
                print(f"bench: missing: {line}", file=sys.stderr)
            if missing:
                print(f"bench: {len(missing)} bench image(s) missing; bench/lib.sh builds them from "
                      f"{images.path}", file=sys.stderr)
                return 1
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except ManifestError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
