#!/usr/bin/env python3
"""The execution environment on the bench: built with ansible-builder, run with ansible-navigator.

AWX runs every job template inside the execution environment (EE) image that
execution-environment.yml defines. The bench builds the same content and runs the collection's
playbooks from inside it, the way AWX does, so an EE that does not build, or lacks a package the
controller side imports (boto3 for the SSM lookups, docker for community.docker), fails here.

Why the bench uses its own copy of the definition:
the production file builds on CentOS Stream 9 from quay.io and installs the collections
from Galaxy. The bench cannot reach either one, and no image can be pulled here. The bench
definition (written to ``$SGIVU_BENCH_DIR/ee/``) keeps every pin of the production file:
ansible-core, ansible-runner, requirements-ee.txt and bindep.txt. It changes only these things:
- the base is the bench's Debian 12 image (bench/images.yml, ``execution_environment.base``);
- the package manager is apt-get, and pip comes from Debian's ``python3-pip``. Debian disables
  ``ensurepip`` for the system Python;
- the collections are ``type: file`` tarballs, installed with ``--offline``:
  - community.docker, amazon.aws, community.aws and their dependencies, repacked from the
    copies that the pinned ``ansible`` package installed in .venv;
  - sgivu.deploy itself, built from this checkout. ansible-builder then reads its
    meta/execution-environment.yml, as it would in anybody's EE;
- pip in the build trusts this machine's CA bundle (``$PIP_CERT``), as pip on the machine does.
tests/unit/bench/test_ee.py proves that the pins are the same in both files.

Usage:
  ee.py build              build the image unless one with the same content exists; print its ref
                           (ansible-builder's output: $SGIVU_BENCH_DIR/logs/build-ee.log)
  ee.py ref                print the image's ref
  ee.py run PLAYBOOK ARGS  run ``ansible-navigator run PLAYBOOK`` in the image against the bench
                           (ARGS go to ansible-playbook: -i INVENTORY, --limit, -e ...), printing
                           the command first; exits with the playbook's status
Environment: SGIVU_BENCH_DIR (default .bench). For ``run``, also the bench's AWS and registry
variables that bench/lib.sh exports (their names are passed, never their values).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from images import Images  # noqa: E402  (bench/images.py, beside this file)

PRODUCTION_DEFINITION = ROOT / "execution-environment.yml"
# Collections come from the `ansible` package pinned in requirements.txt, installed in .venv.
VENV_COLLECTIONS = Path(sys.prefix) / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" \
    / "site-packages" / "ansible_collections"
# What a job needs from the controller's environment: the bench's AWS endpoint (moto) and
# credentials, and where the bench registry is (inventories/bench/group_vars reads them).
PASSED_ENV = (
    "SGIVU_BENCH_DIR", "SGIVU_BENCH_MOTO_URL", "SGIVU_BENCH_REGISTRY", "SGIVU_BENCH_REGISTRY_USER",
    "SGIVU_BENCH_REGISTRY_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
)
DOCKER_SOCKET = "/var/run/docker.sock"


class EEError(Exception):
    """The EE cannot be built or run; the message says why and where to look."""


def bench_dir() -> Path:
    return Path(os.environ.get("SGIVU_BENCH_DIR") or ROOT / ".bench")


def image_ref(images: Images | None = None) -> str:
    """The bench EE's image ref (bench/images.yml, ``execution_environment.ref``)."""
    return (images or Images()).data["execution_environment"]["ref"]


def base_ref(images: Images | None = None) -> str:
    """The local image the bench EE builds on (a key under ``local:`` named by ``execution_environment.base``)."""
    images = images or Images()
    return images.ref(images.data["execution_environment"]["base"])


def bench_definition(production: dict, base: str) -> dict:
    """The bench's ansible-builder (version 3) definition, derived from the production one.

    Keeps ``ansible_core``, ``ansible_runner``, ``python`` and ``system`` exactly as they are in
    ``production``. Replaces the base image, the interpreter, Galaxy and the build options.
    Raises EEError when ``production`` lacks one of the kept keys.
    """
    dependencies = production.get("dependencies") or {}
    missing = [key for key in ("ansible_core", "ansible_runner", "python", "system") if key not in dependencies]
    if production.get("version") != 3 or missing:
        raise EEError(f"{PRODUCTION_DEFINITION.name} is not an ansible-builder version 3 definition "
                      f"with dependencies {', '.join(missing) or 'as expected'}")
    return {
        "version": 3,
        "images": {"base_image": {"name": base}},
        # The galaxy stage installs the tarballs copied into the context; nothing is downloaded.
        "build_arg_defaults": {"ANSIBLE_GALAXY_CLI_COLLECTION_OPTS": "--offline"},
        "dependencies": {
            "python_interpreter": {"package_system": "python3 python3-pip python3-venv",
                                   "python_path": "/usr/bin/python3"},
            "ansible_core": dependencies["ansible_core"],
            "ansible_runner": dependencies["ansible_runner"],
            "galaxy": "requirements.yml",
            "python": Path(dependencies["python"]).name,
            "system": Path(dependencies["system"]).name,
        },
        "additional_build_files": [
            {"src": "collections", "dest": "collections"},
            {"src": "ca-bundle.crt", "dest": "certs"},
        ],
        "options": {"package_manager_path": "/usr/bin/apt-get", "skip_pip_install": True},
        "additional_build_steps": {
            "prepend_base": [
                "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8",
                # python3-pip recommends a compiler; nothing here builds from source.
                "RUN echo 'APT::Install-Recommends \"false\";' > /etc/apt/apt.conf.d/90-no-recommends",
                "COPY _build/certs/ca-bundle.crt /etc/ssl/certs/sgivu-build-ca-bundle.crt",
                "ENV PIP_CERT=/etc/ssl/certs/sgivu-build-ca-bundle.crt",
                # mmdebstrap leaves no package lists in the base.
                "RUN apt-get update",
            ],
            "append_final": ["RUN rm -rf /var/lib/apt/lists/*"],
        },
    }


def collection_closure(names: Iterable[str], source: Path = VENV_COLLECTIONS) -> List[str]:
    """``names`` and every collection they depend on (MANIFEST.json), as installed under ``source``.

    Raises EEError naming a collection that is not installed there.
    """
    wanted, seen = list(names), []
    while wanted:
        name = wanted.pop(0)
        if name in seen:
            continue
        manifest = source.joinpath(*name.split("."), "MANIFEST.json")
        if not manifest.is_file():
            raise EEError(f"collection {name} is not installed in {source} (pip install -r requirements-dev.txt)")
        seen.append(name)
        wanted += list(json.loads(manifest.read_text())["collection_info"].get("dependencies") or {})
    return seen


def repack(name: str, work: Path, out: Path, source: Path = VENV_COLLECTIONS) -> Path:
    """Build a Galaxy tarball of an installed collection; returns its path.

    An installed collection has MANIFEST.json but no galaxy.yml, and the ``ansible`` wheel left
    out files that its FILES.json still lists. So the tarball is rebuilt with
    ``ansible-galaxy collection build`` from a galaxy.yml written from the manifest.
    """
    namespace, collection = name.split(".")
    src = source / namespace / collection
    info = json.loads((src / "MANIFEST.json").read_text())["collection_info"]
    copy = work / namespace / collection
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__", "MANIFEST.json", "FILES.json"))
    galaxy = {key: value for key, value in info.items() if value not in (None, "", [], {})}
    if galaxy.get("license"):
        galaxy.pop("license_file", None)
    (copy / "galaxy.yml").write_text(yaml.safe_dump(galaxy))
    return galaxy_build(copy, out)


def galaxy_build(collection: Path, out: Path) -> Path:
    """``ansible-galaxy collection build`` of a collection directory into ``out``; returns the tarball."""
    before = set(out.glob("*.tar.gz"))
    result = subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out),
                             str(collection)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            check=False)
    built = set(out.glob("*.tar.gz")) - before
    if result.returncode != 0 or len(built) != 1:
        raise EEError(f"ansible-galaxy collection build {collection} failed:\n{result.stdout}")
    return built.pop()


def manifest_of(tarball: Path) -> bytes:
    """The MANIFEST.json inside a collection tarball: its name, version and file checksums."""
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("MANIFEST.json")
        if member is None:
            raise EEError(f"{tarball} holds no MANIFEST.json")
        return member.read()


def assemble(context: Path, base: str) -> str:
    """Write the bench definition and everything it names into ``context``; returns the content hash.

    The hash covers the definition, the copied requirement files, each collection's manifest
    (its file checksums), the CA bundle and the base image's ID.
    """
    if context.exists():
        shutil.rmtree(context)
    collections = context / "collections"
    collections.mkdir(parents=True)
    production = yaml.safe_load(PRODUCTION_DEFINITION.read_text())
    definition = bench_definition(production, base)
    for key in ("python", "system"):
        shutil.copy(ROOT / production["dependencies"][key], context / definition["dependencies"][key])
    shutil.copy(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt", context / "ca-bundle.crt")

    required = [c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]]
    tarballs = []
    with tempfile.TemporaryDirectory() as work:
        for name in collection_closure(required):
            tarballs.append(repack(name, Path(work), collections))
    tarballs.append(galaxy_build(ROOT, collections))
    (context / "requirements.yml").write_text(yaml.safe_dump(
        {"collections": [{"name": f"collections/{t.name}", "type": "file"} for t in sorted(tarballs)]}))
    (context / "execution-environment.yml").write_text(yaml.safe_dump(definition, sort_keys=False))

    digest = hashlib.sha256()
    for path in ("execution-environment.yml", "requirements.yml", definition["dependencies"]["python"],
                 definition["dependencies"]["system"], "ca-bundle.crt"):
        digest.update((context / path).read_bytes())
    for tarball in sorted(tarballs):
        digest.update(manifest_of(tarball))
    digest.update(docker("image", "inspect", "-f", "{{.Id}}", base).encode())
    return digest.hexdigest()[:16]


def docker(*args: str) -> str:
    result = subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            check=False)
    if result.returncode != 0:
        raise EEError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


def build() -> str:
    """Build the bench EE image unless one with the same content hash exists; returns its ref."""
    images = Images()
    ref, base = image_ref(images), base_ref(images)
    context = bench_dir() / "ee"
    content = assemble(context, base)
    try:
        if docker("image", "inspect", "-f", '{{ index .Config.Labels "sgivu.bench.hash" }}', ref) == content:
            return ref
    except EEError:
        pass  # not built yet
    log = bench_dir() / "logs" / "build-ee.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = ["ansible-builder", "build", "--container-runtime", "docker", "-v", "3",
               "-f", str(context / "execution-environment.yml"), "-c", str(context / "context"),
               "-t", ref, "--extra-build-cli-args", f"--label sgivu.bench.hash={content}"]
    with open(log, "w", encoding="utf-8") as output:
        result = subprocess.run(command, cwd=context, stdout=output, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-25:]
        raise EEError("ansible-builder build failed (whole log: {}):\n{}".format(log, "\n".join(tail)))
    check(ref)
    return ref


# What a job imports on the controller side: the AWS lookups and modules, the Docker connection
# and modules. A missing one would fail every AWX job, so the build fails instead.
CONTROLLER_IMPORTS = ("boto3", "botocore", "docker", "requests", "ansible_runner")


def check(ref: str) -> None:
    """Prove the image holds what a job needs: the Python imports and each collection of requirements.yml.

    Raises EEError naming what is missing.
    """
    probe = ("import importlib.util, sys\n"
             "missing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]\n"
             "print(' '.join(missing))")
    missing = docker("run", "--rm", "--entrypoint", "python3", ref, "-c", probe, *CONTROLLER_IMPORTS)
    if missing:
        raise EEError(f"the EE image {ref} lacks the Python packages {missing}")
    listed = docker("run", "--rm", "--entrypoint", "ansible-galaxy", ref, "collection", "list", "--format", "json")
    installed = {name for collections in json.loads(listed).values() for name in collections}
    required = [c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]]
    absent = sorted(set(required + ["sgivu.deploy"]) - installed)
    if absent:
        raise EEError(f"the EE image {ref} lacks the collections {', '.join(absent)}")


def navigator_command(playbook: str, args: List[str], ref: str, env: Dict[str, str]) -> List[str]:
    """The ansible-navigator command that runs ``playbook`` in the EE as AWX would.

    - the bench hosts are containers reached by ``docker exec`` (community.docker.docker), so the
      EE gets the Docker socket and this machine's docker CLI;
    - moto listens on this machine's loopback, so the EE shares the host network;
    - environment variables are passed by name (``--penv``), so no value is on a command line;
    - the image is never pulled (``--pull-policy never``);
    - ansible-navigator itself mounts the working directory (the checkout) and each ``-i``
      inventory at their own paths;
    - no artifact file or log is written into the checkout.
    """
    docker_cli = shutil.which("docker")
    if not docker_cli:
        raise EEError("no docker CLI on PATH: the bench hosts are reached through it")
    command = ["ansible-navigator", "run", playbook, "--mode", "stdout", "--execution-environment", "true",
               "--container-engine", "docker", "--execution-environment-image", ref, "--pull-policy", "never",
               "--playbook-artifact-enable", "false",
               "--log-file", str(bench_dir() / "logs" / "ansible-navigator.log"),
               "--container-options=--network=host",
               "--execution-environment-volume-mounts", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
               "--execution-environment-volume-mounts", f"{os.path.realpath(docker_cli)}:/usr/local/bin/docker:ro"]
    passed = [name for name in PASSED_ENV if env.get(name)]
    if passed:
        command += ["--pass-environment-variable", *passed]
    return command + args


def run(playbook: str, args: List[str]) -> int:
    ref = image_ref()
    try:
        docker("image", "inspect", "-f", "{{.Id}}", ref)
    except EEError:
        raise EEError(f"the EE image {ref} is not built: run bench/ee.py build") from None
    command = navigator_command(playbook, args, ref, dict(os.environ))
    print("$ " + shlex.join(command), flush=True)
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as navigator:
        for line in navigator.stdout:
            sys.stdout.write(without_event_data(line.decode("utf-8", "replace")))
            sys.stdout.flush()
    return navigator.returncode


# ansible-runner's display callback wraps each event's JSON, base64-encoded, in cursor moves
# (ESC[K <chunk> ESC[<n>D ... ESC[K) that a terminal erases as it prints them; a log keeps them.
EVENT_DATA = re.compile(r"\x1b\[K(?:[A-Za-z0-9+/=]+\x1b\[\d+D)*(?:\x1b\[K)?")


def without_event_data(text: str) -> str:
    """``text`` without the runner's encoded event data, as a terminal would show it."""
    return EVENT_DATA.sub("", text)


def main(argv: List[str]) -> int:
    try:
        if argv[:1] == ["build"] and len(argv) == 1:
            print(build())
        elif argv[:1] == ["ref"] and len(argv) == 1:
            print(image_ref())
        elif argv[:1] == ["run"] and len(argv) >= 2:
            return run(argv[1], argv[2:])
        else:
            print(__doc__.split("Usage:")[1].split("Environment:")[0].rstrip(), file=sys.stderr)
            return 2
    except EEError as error:
        print(f"bench/ee.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
