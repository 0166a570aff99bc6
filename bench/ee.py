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
A build holds ``$SGIVU_BENCH_DIR/ee.lock`` (flock, exclusive) until its image is checked, and
``run`` waits for that lock (shared) before it looks for the image: bench/test starts the build,
waits until the build holds the lock, and only then starts the first scenario, so a job of that
scenario waits for the image instead of failing on its absence.

Environment: SGIVU_BENCH_DIR (default .bench). For ``run``, also the bench's AWS and registry
variables that bench/lib.sh exports: their names are on navigator's command line, and navigator
hands their values to the container through its private data dir (0700, removed when it ends).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from images import Images, ManifestError  # noqa: E402  (bench/images.py, beside this file)

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
    """The bench's working directory: ``$SGIVU_BENCH_DIR``, by default ``.bench`` in the checkout."""
    return Path(os.environ.get("SGIVU_BENCH_DIR") or ROOT / ".bench")


def _entry(images: Images | None, key: str) -> str:
    images = images or Images()
    try:
        return str(images.data["execution_environment"][key])
    except (KeyError, TypeError):
        raise EEError(f"{images.path} has no execution_environment.{key}: it names the EE image and its base") from None


def image_ref(images: Images | None = None) -> str:
    """The bench EE's image ref (bench/images.yml, ``execution_environment.ref``). Raises EEError if unset."""
    return _entry(images, "ref")


def base_ref(images: Images | None = None) -> str:
    """The local image the bench EE builds on (the ``local:`` key that ``execution_environment.base`` names).

    Raises EEError when either is missing from bench/images.yml.
    """
    images = images or Images()
    try:
        return images.ref(_entry(images, "base"))
    except ManifestError as error:
        raise EEError(f"execution_environment.base: {error}") from None


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
            # The machine's CA bundle served the build only; the image keeps Debian's own.
            "append_final": ["RUN rm -rf /var/lib/apt/lists/* /etc/ssl/certs/sgivu-build-ca-bundle.crt",
                             "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt"],
        },
    }


def required_collections() -> List[str]:
    """The collections requirements.yml names (without their dependencies)."""
    return [c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]]


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
        try:
            member = archive.extractfile("MANIFEST.json")
        except KeyError:
            member = None
        if member is None:
            raise EEError(f"{tarball} holds no MANIFEST.json")
        return member.read()


def assemble(context: Path, base: str) -> str:
    """Write the bench definition and everything it names into ``context``; returns the content hash.

    The hash covers the definition, the copied requirement files, each collection's manifest
    (its file checksums), the CA bundle, the base image's ID and ansible-builder's version (it
    writes the Containerfile and its scripts). Deletes ``context`` first. Raises EEError when the
    CA bundle (``$PIP_CERT``, else Debian's) is not a readable file, or a collection cannot be built.
    """
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        raise EEError(f"the CA bundle for pip in the build, {bundle} (PIP_CERT), is not a file")
    if context.exists():
        shutil.rmtree(context)
    collections = context / "collections"
    collections.mkdir(parents=True)
    production = yaml.safe_load(PRODUCTION_DEFINITION.read_text())
    definition = bench_definition(production, base)
    for key in ("python", "system"):
        shutil.copy(ROOT / production["dependencies"][key], context / definition["dependencies"][key])
    shutil.copy(bundle, context / "ca-bundle.crt")

    tarballs = []
    with tempfile.TemporaryDirectory() as work:
        for name in collection_closure(required_collections()):
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
    digest.update(f"ansible-builder {builder_version()}".encode())
    return digest.hexdigest()[:16]


def builder_version() -> str:
    from importlib.metadata import version

    return version("ansible-builder")


def docker(*args: str) -> str:
    """Run the docker CLI; returns its stdout. Raises EEError with docker's own error."""
    if not shutil.which("docker"):
        raise EEError("no docker CLI on PATH: the EE is built and run with Docker")
    result = subprocess.run(["docker", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            check=False)
    if result.returncode != 0:
        raise EEError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout.strip()


@contextlib.contextmanager
def build_lock(shared: bool):
    """Hold ``$SGIVU_BENCH_DIR/ee.lock``: exclusive while a build runs, shared while a run looks.

    Blocks until the lock is free, saying once on stderr that it waits for a build.
    """
    path = bench_dir() / "ee.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as lock:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(lock, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"bench/ee.py: waiting for {path} (an EE build holds it while it runs)", file=sys.stderr, flush=True)
            fcntl.flock(lock, mode)
        yield


def build() -> str:
    """Build the bench EE image unless one with the same content hash exists; returns its ref.

    The image, new or cached, is checked (:func:`check`) before its ref is returned, so a broken
    image never passes on a second try. Raises EEError naming what failed and where its log is.
    """
    with build_lock(shared=False):
        return _build()


def _build() -> str:
    images = Images()
    ref, base = image_ref(images), base_ref(images)
    context = bench_dir() / "ee"
    content = assemble(context, base)
    try:
        current = docker("image", "inspect", "-f", '{{ index .Config.Labels "sgivu.bench.hash" }}', ref) == content
    except EEError:
        current = False  # not built yet
    if not current:
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
# The script run in the image, through its own entrypoint (as AWX and ansible-navigator run it):
# each module imported for real, each collection listed by ansible-galaxy, one JSON answer.
CHECK_SCRIPT = """
import importlib, json, subprocess, sys
failed = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception as error:
        failed[name] = f"{type(error).__name__}: {error}"
listed = subprocess.run(["ansible-galaxy", "collection", "list", "--format", "json"],
                        capture_output=True, text=True)
problem = listed.stderr[-500:] if listed.returncode else ""
try:
    collections = sorted({c for path in json.loads(listed.stdout or "{}").values() for c in path})
except (ValueError, AttributeError) as error:
    collections, problem = [], problem or f"its list is not JSON ({error})"
print(json.dumps({"failed_imports": failed, "collections": collections, "galaxy_error": problem}))
"""


def check(ref: str) -> None:
    """Prove the image holds what a job needs, by running it as AWX would (its own entrypoint).

    Every module of CONTROLLER_IMPORTS must import, and ansible-galaxy must list every collection
    of requirements.yml, their dependencies and sgivu.deploy. Raises EEError naming what is missing.
    """
    result = subprocess.run(["docker", "run", "--rm", ref, "python3", "-c", CHECK_SCRIPT, *CONTROLLER_IMPORTS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=False)
    answer = result.stdout.splitlines()
    try:
        found = json.loads(answer[-1])
        found["failed_imports"], found["collections"], found["galaxy_error"]  # noqa: B018 (present)
    except (IndexError, ValueError, KeyError, TypeError):
        tail = " | ".join((result.stderr.strip().splitlines() or answer or ["no output"])[-3:])
        raise EEError(f"the EE image {ref} did not run its check (exit {result.returncode}): {tail}") from None
    if found["failed_imports"]:
        raise EEError(f"the EE image {ref} cannot import what jobs need: " + "; ".join(
            f"{name} ({why})" for name, why in sorted(found["failed_imports"].items())))
    if found["galaxy_error"]:
        raise EEError(f"ansible-galaxy in the EE image {ref} failed: {found['galaxy_error']}")
    absent = sorted(set(collection_closure(required_collections()) + ["sgivu.deploy"]) - set(found["collections"]))
    if absent:
        raise EEError(f"the EE image {ref} lacks the collections {', '.join(absent)}")


def navigator_command(playbook: str, args: List[str], ref: str, env: Dict[str, str]) -> List[str]:
    """The ansible-navigator command that runs ``playbook`` in the EE as AWX would.

    - the bench hosts are containers reached by ``docker exec`` (community.docker.docker), so the
      EE gets the Docker socket (``/var/run/docker.sock``; ``DOCKER_HOST`` is not followed) and
      this machine's docker CLI;
    - moto listens on this machine's loopback, so the EE shares the host network;
    - the variables of PASSED_ENV are passed by name (``--penv``), so no value is on a command
      line; ansible-navigator itself also passes every ``ANSIBLE_*`` variable;
    - ansible-navigator mounts the checkout (the working directory) and each ``-i`` inventory at
      their own paths; a bench directory outside the checkout is mounted read-only;
    - the image is never pulled, no artifact is written, and navigator logs warnings only
      (at debug level it would log the passed values) to ``$SGIVU_BENCH_DIR/logs``.

    Raises EEError when there is no docker CLI, ``playbook`` is not a playbook of the checkout,
    or a passed value holds a line break or NUL (it would add variables to the container's env).
    """
    docker_cli = shutil.which("docker")
    if not docker_cli:
        raise EEError("no docker CLI on PATH: the bench hosts are reached through it")
    path = (ROOT / playbook).resolve()
    if playbook.startswith("-") or (ROOT != path and ROOT not in path.parents) or not path.is_file():
        raise EEError(f"{playbook!r} is not a playbook of {ROOT} (usage: ee.py run PLAYBOOK ARGS...)")
    passed = [name for name in PASSED_ENV if env.get(name)]
    broken = [name for name in passed if any(c in env[name] for c in "\n\r\0")]
    if broken:
        raise EEError(f"{', '.join(broken)} holds a line break or NUL, which cannot be passed to a container")
    command = ["ansible-navigator", "run", playbook, "--mode", "stdout", "--execution-environment", "true",
               "--container-engine", "docker", "--execution-environment-image", ref, "--pull-policy", "never",
               "--playbook-artifact-enable", "false", "--log-level", "warning",
               "--log-file", str(bench_dir() / "logs" / "ansible-navigator.log"),
               "--container-options=--network=host",
               f"--execution-environment-volume-mounts={DOCKER_SOCKET}:{DOCKER_SOCKET}",
               f"--execution-environment-volume-mounts={os.path.realpath(docker_cli)}:/usr/local/bin/docker:ro"]
    bench = bench_dir().resolve()
    if ROOT != bench and ROOT not in bench.parents:
        command.append(f"--execution-environment-volume-mounts={bench}:{bench}:ro")
    command += [f"--pass-environment-variable={name}" for name in passed]
    return command + args


def run(playbook: str, args: List[str]) -> int:
    """Run ``playbook`` in the EE through ansible-navigator, its output as a terminal shows it.

    Returns the playbook's exit status (128 + N when a signal N stopped navigator). Navigator runs
    in its own session, and SIGINT or SIGTERM to this process reaches it once, as SIGINT: the one
    signal on which navigator cancels the job and removes its private data dir, which holds the
    passed variables. Raises EEError when the image is missing or ansible-navigator is not installed.
    """
    ref = image_ref()
    try:
        with build_lock(shared=True):
            docker("image", "inspect", "-f", "{{.Id}}", ref)
    except EEError as error:
        raise EEError(f"the EE image {ref} cannot be used ({error}): build it with bench/ee.py build") from None
    if not shutil.which("ansible-navigator"):
        raise EEError("ansible-navigator is not installed: pip install -r requirements-dev.txt")
    command = navigator_command(playbook, args, ref, dict(os.environ))
    print("$ " + shlex.join(command), flush=True)
    navigator = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 start_new_session=True, preexec_fn=_default_sigint)
    forward = lambda _signum, _frame: navigator.send_signal(signal.SIGINT)  # noqa: E731
    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for line in navigator.stdout:
            sys.stdout.write(without_event_data(line.decode("utf-8", "replace")))
            sys.stdout.flush()
        status = navigator.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - status if status < 0 else status


def _default_sigint() -> None:
    """In navigator's process before it starts: SIGINT acts, even when this one was started ignoring it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# ansible-runner's display callback wraps each event's JSON, base64-encoded, in cursor moves
# (ESC[K <chunk> ESC[<n>D ... ESC[K) that a terminal erases as it prints them; a log keeps them.
EVENT_DATA = re.compile(r"\x1b\[K(?:[A-Za-z0-9+/=]+\x1b\[\d+D)*(?:\x1b\[K)?")


def without_event_data(text: str) -> str:
    """``text`` without the runner's encoded event data, as a terminal would show it."""
    return EVENT_DATA.sub("", text)


USAGE = "Usage:" + __doc__.split("Usage:")[1].split("Environment:")[0].rstrip()


def main(argv: List[str]) -> int:
    """The command line (see Usage); returns the exit status, never raises for an operator's mistake."""
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    try:
        if argv == ["build"]:
            print(build())
        elif argv == ["ref"]:
            print(image_ref())
        elif argv[:1] == ["run"] and len(argv) >= 2:
            return run(argv[1], argv[2:])
        else:
            wrong = "no command" if not argv else f"unknown command line {shlex.join(argv)!r}"
            print(f"bench/ee.py: {wrong}\n{USAGE}", file=sys.stderr)
            return 2
    except (EEError, ManifestError) as error:
        print(f"bench/ee.py: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"bench/ee.py: {error.strerror or error}: {error.filename or ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench/ee.py: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
