# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""A compose project on its host, applied as a release: plan, apply, restore.

Runs on the host, inside the ``sgivu.deploy.compose_release`` module; it needs the Python
standard library and the ``docker`` CLI with the Compose v2 plugin (2.30 or later, for
``env_file`` entries in ``format: raw``). Nothing here imports Ansible: the module hands in a
``run`` callable (``AnsibleModule.run_command``).

Files in the project directory (``root``), all owned by root:

``compose.yml``         the running project (0640), every image by digest where the registry
                        gave one; written as JSON, which is YAML, after a comment line
``compose.next.yml``    the candidate a plan wrote, promoted by apply
``stack.env``           the running env file (0600): ``KEY=value`` lines, values verbatim
``stack.env.next``      the candidate env file (the ``ssm_secrets`` role writes it)
``env/<service>.env``   the keys one service needs, from ``stack.env`` (0600, in 0700); the
                        project names them as ``env_file: [{path, format: raw}]``, so Compose
                        passes every byte of a value to the container and interpolates none
``releases/<id>/``      archived releases (compose.yml, stack.env), see release_history

Compose is always called with the project name (``-p``), the project directory, the file and
``--env-file /dev/null``, and with every ``COMPOSE_*`` and ``DOCKER_*`` variable removed from its
environment: nothing but this module's arguments decides what Compose does, and no ``.env``
file is ever read for it.

The project carries what this module needs to start it in a top-level ``x-sgivu`` mapping
(Compose ignores ``x-`` fields): ``env_keys`` (service -> the env keys it gets), ``waves`` (the
start-up order, a list of lists of services) and ``deadlines`` (service -> seconds to become
healthy). An archived release therefore restores from its own compose file alone.

Secrets: the env values are read only to split the env file and to scrub text. Every piece of
text that leaves this module (Compose's errors, container logs) goes through :func:`scrub`, so
no value of the env file is ever returned, in success or in failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import stringprep
import tempfile
import time
import unicodedata
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

from ansible_collections.sgivu.deploy.plugins.module_utils import registry
from ansible_collections.sgivu.deploy.plugins.module_utils.compose import digest_of, for_engine, repository, shown

# What `docker version --format {{.Server.APIVersion}}` prints: major.minor, alone on its line.
_API_VERSION = re.compile(r"^[0-9]+\.[0-9]+\Z")
LIVE = "compose.yml"
CANDIDATE = "compose.next.yml"
ENV_LIVE = "stack.env"
ENV_CANDIDATE = "stack.env.next"
ENV_ROTATING = "stack.env.rotating"
ENV_DIR = "env"
ARCHIVE = "releases"
LEGACY_ENV = ".env"
SALT = ".config-salt"
CONFIG_LABEL = "sgivu.deploy.config"
HEADER = "# Managed by Ansible (sgivu.deploy.compose_stack): the running release of the stack; do not edit."
MASK = "********"
# Values shorter than this are not scrubbed ("1" or "no" would blank every digit and word); from
# this length on every value is, plain ones like "true" or "prod" included: a log line loses a
# word rather than keep a secret.
SCRUB_MIN_LENGTH = 4
MIN_COMPOSE = (2, 30, 0)

Run = Callable[..., Tuple[int, str, str]]


class ComposeError(Exception):
    """A step failed; ``msg`` is for the operator and holds no secret, ``details`` are extra facts."""

    def __init__(self, msg: str, **details: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


# --- env files ----------------------------------------------------------------------------
def read_env(path: str, quoted: bool = False) -> Dict[str, str]:
    """The ``KEY=value`` lines of a raw env file (comments and blank lines skipped).

    ``quoted`` reads the single-quoted ``KEY='value'`` lines of the env file versions before 2.0
    wrote (``.env``), only to know its values for scrubbing."""
    env: Dict[str, str] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle.read().split("\n"):
            if not line.strip() or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            if quoted and len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            env[key] = value
    return env


def env_text(env: Mapping[str, str], keys: Iterable[str]) -> str:
    """A service's env file: one ``KEY=value`` line per key it needs that the env holds."""
    lines = [f"{key}={env[key]}" for key in sorted(set(keys)) if key in env]
    return "\n".join(lines) + ("\n" if lines else "")


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` with every value of the env file (of at least SCRUB_MIN_LENGTH characters) masked.

    Each value is masked as written, without its surrounding whitespace, and with each run of
    whitespace in it as one space (how an error message may have been reflowed). Scrub first,
    then reformat: a message trimmed or reflowed before this may no longer match a value."""
    forms = set()
    for value in values:
        for form in (value, value.strip(), re.sub(r"\s+", " ", value.strip())):
            if len(form) >= SCRUB_MIN_LENGTH:
                forms.add(form)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def brief(text: str, values: Iterable[str], limit: int) -> str:
    """Scrubbed, then on one line, then its last ``limit`` characters: for an operator's message."""
    return re.sub(r"\s+", " ", scrub(text, values)).strip()[-limit:]


def sha256_file(path: str) -> Optional[str]:
    if not os.path.exists(path):
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: str, data: str, mode: int) -> bool:
    """Write ``data`` to ``path`` (root-owned, ``mode``) unless it already holds it; True when written."""
    if os.path.exists(path):
        with open(path, encoding="utf-8", newline="") as handle:
            if handle.read() == data and (os.stat(path).st_mode & 0o777) == mode:
                return False
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".sgivu-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return True


def project_text(project: Mapping[str, Any]) -> str:
    """The compose file's text: a comment line, then the project as indented JSON (valid YAML)."""
    return HEADER + "\n" + json.dumps(project, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def load_project(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return json.loads("\n".join(line for line in text.split("\n") if not line.startswith("#")))


# --- image references ---------------------------------------------------------------------
def pinned(ref: str, repo_digests: Sequence[str]) -> Optional[str]:
    """``repo:tag@sha256:...`` for a tag ref, from the image's RepoDigests (None when it has none)."""
    if "@" in ref:
        return ref
    repo = repository(ref)
    digest = next((d for d in repo_digests or [] if repository(d) == repo), None)
    return f"{ref}@{digest.split('@', 1)[1]}" if digest else None


def clear_docker_environment() -> None:
    """Drop every variable that could steer Compose or the Docker CLI (COMPOSE_*, DOCKER_*,
    BUILDKIT_*) from this process's environment: only explicit arguments decide what they do."""
    for key in list(os.environ):
        if key.startswith(("COMPOSE_", "DOCKER_", "BUILDKIT_")):
            del os.environ[key]


# --- the Compose CLI ----------------------------------------------------------------------
class Compose:
    """``docker compose`` for one project, with nothing but explicit arguments deciding what it does."""

    def __init__(self, run: Run, root: str, name: str, secrets: Iterable[str] = ()) -> None:
        self._run = run
        self.root = root
        self.name = name
        self.secrets = list(secrets)

    def scrub(self, text: str) -> str:
        return scrub(text, self.secrets)

    def docker(self, *args: str, check: bool = True, what: str = "") -> str:
        rc, out, err = self._run(["docker", *args])
        if check and rc != 0:
            raise ComposeError(f"{what or 'docker ' + args[0]} failed: {brief(err or out, self.secrets, 1500)}")
        return out

    def docker_stdin(self, args: Sequence[str], data: str, environ: Mapping[str, str]) -> Tuple[int, str, str]:
        """``docker <args>`` with ``data`` on stdin and ``environ`` added to its environment (for
        ``docker exec -e NAME``, which takes the value from there): values stay off the command line."""
        return self._run(["docker", *args], data=data, binary_data=True, environ_update=dict(environ))

    def attempt(self, *args: str) -> Optional[str]:
        """Run ``docker <args>``; None when it worked, else what it printed (masked)."""
        rc, out, err = self._run(["docker", *args])
        return None if rc == 0 else brief(err or out, self.secrets, 600)

    def compose(self, *args: str, file: str = LIVE, root: Optional[str] = None, check: bool = True,
                what: str = "") -> Tuple[int, str, str]:
        base = root or self.root
        argv = ["docker", "compose", "-p", self.name, "--project-directory", base,
                "-f", os.path.join(base, file), "--env-file", "/dev/null", *args]
        rc, out, err = self._run(argv)
        if check and rc != 0:
            raise ComposeError(f"{what or 'docker compose ' + args[0]} failed: {brief(err or out, self.secrets, 1500)}")
        return rc, out, err

    def version(self) -> Tuple[int, ...]:
        out = self.docker("compose", "version", "--short", what="docker compose version").strip().lstrip("v")
        return tuple(int(p) for p in re.findall(r"\d+", out)[:3])

    def api_version(self) -> Tuple[int, ...]:
        """The Docker daemon's API version, such as (1, 41) for Docker 20.10 (``docker version``)."""
        out = self.docker("version", "--format", "{{.Server.APIVersion}}", what="docker version")
        found = [line.strip() for line in out.splitlines() if _API_VERSION.match(line.strip())]
        if not found:
            raise ComposeError("`docker version` did not give the Docker daemon's API version (such as 1.41), it "
                               f"printed {shown(out.strip())}. Nothing was changed.")
        return tuple(int(part) for part in found[-1].split("."))

    def containers(self) -> List[Dict[str, str]]:
        """Every container of the project (one-off `run` containers left out), from one `docker ps -a`."""
        fmt = "\t".join(["{{.ID}}", "{{.State}}", "{{.Status}}", '{{.Label "com.docker.compose.service"}}',
                         '{{.Label "%s"}}' % CONFIG_LABEL, '{{.Label "com.docker.compose.oneoff"}}',
                         "{{.Image}}", "{{.Names}}", "{{.Ports}}"])
        out = self.docker("ps", "-a", "--no-trunc", "--filter", f"label=com.docker.compose.project={self.name}",
                          "--format", fmt, what="listing the stack's containers")
        rows = []
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) < 9 or parts[5] == "True":
                continue
            rows.append(dict(zip(("id", "state", "status", "service", "hash", "oneoff", "image", "name", "ports"), parts)))
        return rows

    def images(self, refs: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """``docker image inspect`` of each ref that exists locally: ref -> {Id, RepoDigests}."""
        found: Dict[str, Dict[str, Any]] = {}
        for ref in sorted(set(refs)):
            rc, out, _ = self._run(["docker", "image", "inspect", "--format", "{{json .}}", ref])
            if rc == 0 and out.strip():
                info = json.loads(out)
                found[ref] = {"Id": info.get("Id"), "RepoDigests": info.get("RepoDigests") or []}
        return found

    def logs(self, services: Sequence[str], lines: int) -> str:
        if not services or lines <= 0:
            return ""
        rc, out, err = self.compose("logs", "--no-color", "--tail", str(lines), *services, check=False)
        return self.scrub(out + err).strip()

    def container_logs(self, containers: Sequence[Mapping[str, str]], lines: int) -> str:
        """The last ``lines`` log lines of each given container (rows of ``containers()``), masked.

        Each line is prefixed with the container's name, as ``docker compose logs`` does; used
        where the service also has containers that are not at fault (a start-first swap).
        """
        if lines <= 0:
            return ""
        text = []
        for row in containers:
            rc, out, err = self._run(["docker", "logs", "--tail", str(lines), row["id"]])
            text.extend(f"{row['name']}  | {line}" for line in (out + err).splitlines() if line.strip())
        return self.scrub("\n".join(text)).strip()


def health_of(row: Mapping[str, str]) -> str:
    """healthy / unhealthy / starting / none (no healthcheck), from `docker ps` status text."""
    status = row.get("status", "")
    for word in ("healthy", "unhealthy", "starting"):
        if f"({word})" in status or f"(health: {word})" in status:
            return word
    return "none"


def serving(row: Mapping[str, str]) -> bool:
    return row.get("state") == "running" and health_of(row) in ("healthy", "none")


def by_name(service: Mapping[str, Any]) -> bool:
    """Whether callers find a service of a Compose project by its DNS name: it publishes no port
    (Nginx reaches those) and names no registry (``EUREKA_URL``) in its environment."""
    return not service.get("ports") and not (service.get("environment") or {}).get("EUREKA_URL")


def among(cid: str, ids: Iterable[str]) -> bool:
    """Whether a container ID is one of ``ids``, each written in full or shortened (``docker ps``)."""
    return any(i and (cid.startswith(i) or i.startswith(cid)) for i in ids)


_PORT = re.compile(r"^(?:(?P<ip>[0-9.]+|\[[0-9a-f:]*\]|::):(?P<public>\d+)->)?(?P<private>\d+)/(?P<proto>\w+)$")


def summary(row: Mapping[str, str], project: str) -> Dict[str, Any]:
    """A container as `docker_host_info` (verbose) lists it: what the upstream filters read."""
    ports = []
    for item in (row.get("ports") or "").split(", "):
        found = _PORT.match(item.strip())
        if found:
            port = {"PrivatePort": int(found["private"]), "Type": found["proto"]}
            if found["public"]:
                port.update(IP=found["ip"], PublicPort=int(found["public"]))
            ports.append(port)
    return {
        "Id": row["id"], "Names": ["/" + row["name"]], "Image": row["image"], "State": row["state"],
        "Status": row["status"], "Ports": ports,
        "Labels": {"com.docker.compose.project": project, "com.docker.compose.service": row["service"]},
    }


def replicas(service: Mapping[str, Any]) -> int:
    return int((service.get("deploy") or {}).get("replicas", 1))


def meta(project: Mapping[str, Any]) -> Dict[str, Any]:
    """The project's ``x-sgivu`` mapping: env_keys, waves, deadlines (empty defaults)."""
    found = dict(project.get("x-sgivu") or {})
    found.setdefault("env_keys", {})
    found.setdefault("waves", [sorted(project.get("services", {}))])
    found.setdefault("deadlines", {})
    found.setdefault("rotate", {})
    return found


def without_labels(project: Mapping[str, Any], images: bool = False) -> Dict[str, Any]:
    """A copy of the project without the config labels (they change with the env file) and, with
    ``images``, without each service's image (a new release of it)."""
    copy = json.loads(json.dumps(project))
    for svc in copy.get("services", {}).values():
        (svc.get("labels") or {}).pop(CONFIG_LABEL, None)
        if images:
            svc.pop("image", None)
    return copy


# --- credentials changed in place (rotation) ---------------------------------------------
# Each phase of a rotation, as statements for the database's own client. Every value goes in
# escaped, on the client's stdin, never on a command line:
#   begin   the new value works (redis: beside the old one; postgres has one password a role)
#   finish  only the new value works (redis drops the old one; postgres: nothing left to do)
#   undo    only the old value works again
ROTATION_PHASES = ("begin", "finish", "undo")


def sql_literal(value: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings: only ``'`` is special)."""
    if "\0" in value:
        raise ComposeError("a PostgreSQL password cannot hold a NUL character")
    return "'" + value.replace("'", "''") + "'"


def saslprep(value: str) -> str:
    """SASLprep (RFC 4013) of a password in the order PostgreSQL's ``pg_saslprep`` applies it for
    SCRAM: ASCII as it is; else map (non-ASCII spaces to a space, then drop what maps to nothing),
    check the mapped text (prohibited, unassigned, bidi) and NFKC-normalise it. Where a check
    fails, PostgreSQL uses the value unchanged, and so does this."""
    if value.isascii():
        return value
    mapped = [" " if stringprep.in_table_c12(c) else c for c in value
              if stringprep.in_table_c12(c) or not stringprep.in_table_b1(c)]
    prohibited = (stringprep.in_table_c21_c22, stringprep.in_table_c3, stringprep.in_table_c4, stringprep.in_table_c5,
                  stringprep.in_table_c6, stringprep.in_table_c7, stringprep.in_table_c8, stringprep.in_table_c9,
                  stringprep.in_table_a1)
    if not mapped or any(check(c) for c in mapped for check in prohibited):
        return value
    if any(stringprep.in_table_d1(c) for c in mapped) and (
            any(stringprep.in_table_d2(c) for c in mapped)
            or not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1]))):
        return value
    return unicodedata.normalize("NFKC", "".join(mapped))


def scram_verifier(value: str, salt: Optional[bytes] = None, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677), made here so
    that ``ALTER ROLE`` carries the verifier and never the password (a server log of the statement
    shows no secret)."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(value).encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    encode = lambda raw: base64.b64encode(raw).decode("ascii")  # noqa: E731
    return "SCRAM-SHA-256${0}:{1}${2}:{3}".format(iterations, encode(salt), encode(hashlib.sha256(client_key).digest()),
                                                  encode(server_key))


def redis_argument(value: str) -> str:
    """A redis-cli argument that stands for ``value`` byte for byte: every byte ``\\xHH`` in double quotes."""
    return '"' + "".join("\\x{0:02x}".format(b) for b in value.encode("utf-8")) + '"'


def rotation_statements(engine: str, user: str, old: str, new: str, phase: str) -> str:
    """What the database's client reads on stdin for one phase of rotating ``user``'s password."""
    if phase not in ROTATION_PHASES:
        raise ValueError(phase)
    if engine == "postgres":
        if phase == "finish":
            return ""
        value = new if phase == "begin" else old
        return 'ALTER ROLE "{0}" WITH PASSWORD {1};\n'.format(user, sql_literal(scram_verifier(value)))
    if engine == "redis":
        # resetpass first: the result does not depend on which passwords an interrupted run left.
        acl = {"begin": [">" + old, ">" + new], "finish": [">" + new], "undo": [">" + old]}[phase]
        return "ACL SETUSER {0} on resetpass {1}\n".format(user, " ".join(redis_argument(a) for a in acl))
    raise ValueError(engine)


def all_rotate_keys(project: Mapping[str, Any]) -> List[str]:
    """Every env key some database of the project rotates in place (``x-sgivu.rotate``)."""
    return sorted(k for spec in meta(project)["rotate"].values() for k in spec)


def changed_keys(before: Mapping[str, str], after: Mapping[str, str]) -> List[str]:
    """The names of the keys whose value differs (added and removed ones too); never a value."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


# --- the steps ----------------------------------------------------------------------------
class Release:
    """The release operations on one stack root. ``run`` is ``AnsibleModule.run_command``."""

    def __init__(self, run: Run, root: str, name: str, check_mode: bool = False) -> None:
        self.root = root
        self.name = name
        self.check_mode = check_mode
        values: List[str] = []
        for env_file in (ENV_LIVE, ENV_CANDIDATE, LEGACY_ENV):
            path = self.path(env_file)
            if os.path.exists(path):
                try:
                    values += read_env(path, quoted=env_file == LEGACY_ENV).values()
                except (OSError, UnicodeDecodeError):
                    pass
        self.compose = Compose(run, root, name, values)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # --- plan ---------------------------------------------------------------------------
    def require_compose(self) -> None:
        version = self.compose.version()
        if version < MIN_COMPOSE:
            raise ComposeError(
                "Docker Compose {0} is too old: the stack needs {1} or later (env files in format raw). "
                "Nothing was changed.".format(".".join(map(str, version)), ".".join(map(str, MIN_COMPOSE))))

    def keep_running_digests(self, project: Dict[str, Any], policy: str) -> List[str]:
        """Decide where each tag's digest comes from; return the services to ask the registry for.

        With ``policy`` missing, a service whose tag is the one it runs keeps the digest it runs
        (tags are immutable releases; a local tag is never trusted, since a pull that a failed or
        unapplied change made may have moved it). Any other tag, and every tag with ``policy``
        always, is pulled fresh: its digest is the one the registry gives now. References that
        already name a digest are taken as they are.
        """
        live = load_project(self.path(LIVE)) if os.path.exists(self.path(LIVE)) else {"services": {}}
        running = {name: svc.get("image", "") for name, svc in live.get("services", {}).items()}
        fetch = []
        for name, svc in project["services"].items():
            ref = svc["image"]
            if "@" in ref:
                continue
            current = running.get(name, "")
            if policy == "missing" and "@" in current and current.split("@", 1)[0] == ref:
                svc["image"] = current
            else:
                fetch.append(name)
        return fetch

    def pull(self, project: Mapping[str, Any], fetch: Sequence[str], directory: str) -> bool:
        """Pull, in the project staged in ``directory``, the services in ``fetch`` fresh from the
        registry and any image by digest the host lacks. True when an image changed (a new image,
        or a tag whose digest moved)."""
        refs = [svc["image"] for svc in project["services"].values()]
        before = {ref: info["Id"] for ref, info in self.compose.images(refs).items()}
        missing = [name for name, svc in project["services"].items() if name not in fetch and svc["image"] not in before]
        if self.check_mode:
            return bool(fetch or missing)
        for policy, services in (("always", list(fetch)), ("missing", missing)):
            if not services:
                continue
            rc, out, err = self.compose.compose("pull", "--quiet", "--policy", policy, *services, root=directory, check=False)
            if rc != 0:
                raise ComposeError(
                    "Pulling the stack's images failed, so nothing was started or stopped. Images: {0}. Docker said: {1}".format(
                        ", ".join(sorted(project["services"][s]["image"] for s in services)),
                        brief(err or out, self.compose.secrets, 900)))
        after = {ref: info["Id"] for ref, info in self.compose.images(refs).items()}
        return after != before

    def pin_digests(self, project: Dict[str, Any]) -> Dict[str, str]:
        """Rewrite every service's image as ``repo:tag@sha256:...``; return service -> image."""
        infos = self.compose.images([svc["image"] for svc in project["services"].values()])
        images = {}
        for name, svc in project["services"].items():
            info = infos.get(svc["image"])
            ref = pinned(svc["image"], info["RepoDigests"]) if info else None
            if ref:
                svc["image"] = ref
            images[name] = svc["image"]
        return images

    def stage(self, project: Mapping[str, Any], env: Mapping[str, str], directory: str) -> None:
        """Write the project and its per-service env files into ``directory`` (a scratch or the root)."""
        os.makedirs(os.path.join(directory, ENV_DIR), mode=0o700, exist_ok=True)
        write_atomic(os.path.join(directory, LIVE), project_text(project), 0o640)
        env_keys = meta(project)["env_keys"]
        for service in project["services"]:
            keys = env_keys.get(service) or []
            if keys:
                write_atomic(os.path.join(directory, ENV_DIR, f"{service}.env"), env_text(env, keys), 0o600)

    def scratch(self) -> str:
        """A private directory under the root for staging a project with its env files (0700)."""
        os.makedirs(self.root, mode=0o750, exist_ok=True)
        directory = tempfile.mkdtemp(prefix=".sgivu-stage-", dir=self.root)
        os.chmod(directory, 0o700)
        return directory

    def validate(self, directory: str) -> None:
        """Let Compose validate the project staged in ``directory`` (with its env files)."""
        self.compose.compose("config", "--quiet", root=directory, what="Validating the candidate project")

    def salt(self) -> bytes:
        """The host's key for the config labels (0600): a label tells configurations apart, never a value."""
        path = self.path(SALT)
        if not os.path.exists(path):
            if self.check_mode:
                return os.urandom(32)
            write_atomic(path, os.urandom(32).hex() + "\n", 0o600)
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip().encode()

    def label(self, project: Dict[str, Any], env: Mapping[str, str]) -> Dict[str, str]:
        """Label each service with a keyed digest of its configuration and its env file.

        Compose's own config hash of a service with an env file covers the file's path but not,
        before ``up``, its content; this label covers both, so a container started from an older
        project or env file is told apart. A database's credentials that it changes in place
        (``x-sgivu.rotate``) are left out: their change is made inside the running container, which
        stays. Returns service -> label.
        """
        key = self.salt()
        env_keys, rotate = meta(project)["env_keys"], meta(project)["rotate"]
        labels = {}
        for name, svc in project["services"].items():
            svc.setdefault("labels", {}).pop(CONFIG_LABEL, None)
            keys = [k for k in env_keys.get(name) or [] if k not in (rotate.get(name) or {})]
            text = json.dumps(svc, sort_keys=True) + "\n" + env_text(env, keys)
            labels[name] = hmac.new(key, text.encode(), hashlib.sha256).hexdigest()[:32]
            svc["labels"][CONFIG_LABEL] = labels[name]
        return labels

    def differences(self, project: Mapping[str, Any], labels: Mapping[str, str],
                    containers: List[Dict[str, str]]) -> Tuple[List[str], List[str]]:
        """(services whose containers do not match the project, orphan container names)."""
        changed = []
        for name, svc in project["services"].items():
            mine = [c for c in containers if c["service"] == name]
            # The label says which configuration a container was made from; the image it runs
            # must be the pinned digest too: a container recreated by hand from an edited project
            # (the seed's rebuild-service) keeps the old label but runs another image.
            digest = str(svc.get("image", "")).partition("@")[2]
            good = [c for c in mine if c["hash"] == labels.get(name) and serving(c)
                    and (not digest or c["image"].endswith("@" + digest))]
            # Exactly its replicas, each of this config and serving: an extra one (a swap cut
            # short before the old containers were retired) is a change too.
            if len(good) != replicas(svc) or len(mine) != len(good):
                changed.append(name)
        orphans = [c["name"] for c in containers if c["service"] not in project["services"]]
        return sorted(changed), sorted(orphans)

    def plan(self, project: Optional[Dict[str, Any]], policy: str, env_source: str = "next",
             release: str = "") -> Dict[str, Any]:
        """Stage, pull, pin by digest and validate the candidate; say what apply would change.

        The candidate is ``project`` with the env file ``stack.env.next`` (``env_source`` next,
        written by ssm_secrets) or the running ``stack.env`` (live); or, with ``release``, an
        archived release's own compose file and env file. Writes only the candidate files
        (``compose.next.yml``, and ``stack.env.next`` when it comes from elsewhere). Raises
        ComposeError before anything that runs is touched.
        """
        self.require_compose()
        if release:
            folder = self.path(ARCHIVE, release)
            if not os.path.exists(os.path.join(folder, LIVE)):
                raise ComposeError(f"release {release} has no archive in {folder}. Nothing was changed.")
            project = load_project(os.path.join(folder, LIVE))
            env_path = os.path.join(folder, ENV_LIVE)
        else:
            env_path = self.path(ENV_CANDIDATE if env_source == "next" else ENV_LIVE)
        if not os.path.exists(env_path):
            raise ComposeError(f"{env_path} is missing: deploy.yml writes it (ssm_secrets) before an update or a "
                               "rollback can use it. Nothing was changed.")
        if env_path != self.path(ENV_CANDIDATE) and not self.check_mode:
            with open(env_path, encoding="utf-8", newline="") as handle:
                write_atomic(self.path(ENV_CANDIDATE), handle.read(), 0o600)
            env_path = self.path(ENV_CANDIDATE)
        env = read_env(env_path)
        self.compose.secrets += list(env.values())
        project = for_engine(project, self.compose.api_version())
        env_keys = meta(project)["env_keys"]
        missing = sorted({k for keys in (env_keys.get(s) or [] for s in project["services"]) for k in keys} - set(env))
        if missing:
            raise ComposeError("the env file {0} lacks {1}. Nothing was changed.".format(env_path, ", ".join(missing)))
        fetch = self.keep_running_digests(project, policy)
        directory = self.scratch()
        try:
            self.stage(project, env, directory)
            pulled = self.pull(project, fetch, directory)
            images = self.pin_digests(project)
            labels = self.label(project, env)
            self.stage(project, env, directory)
            self.validate(directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        if not self.check_mode:
            write_atomic(self.path(CANDIDATE), project_text(project), 0o640)
        containers = self.compose.containers()
        changed, orphans = self.differences(project, labels, containers)
        live = self.path(LIVE)
        live_text = open(live, encoding="utf-8").read() if os.path.exists(live) else None
        reasons = []
        if live_text != project_text(project):
            reasons.append("the compose project changes" if live_text else "no project runs yet")
        if sha256_file(self.path(ENV_LIVE)) != sha256_file(env_path):
            reasons.append("the env file changes" if os.path.exists(self.path(ENV_LIVE)) else "no env file is live yet")
        if changed:
            reasons.append("services to (re)start: " + ", ".join(changed))
        if orphans:
            reasons.append("containers of services no longer in the project: " + ", ".join(orphans))
        keys = changed_keys(read_env(self.path(ENV_LIVE)), env) if os.path.exists(self.path(ENV_LIVE)) else []
        unfinished = os.path.exists(self.path(ENV_ROTATING))
        rotate_keys = all_rotate_keys(project) if unfinished else []
        rotations = self.rotations(project, keys + rotate_keys, containers)
        if rotations:
            reasons.append("credentials to change inside the running databases: " + ", ".join(rotations)
                           + (" (a run that began rotating them was stopped before it finished)" if unfinished else ""))
        return {
            "pending": bool(reasons),
            "reasons": reasons,
            "pulled": pulled,
            "services": changed,
            "orphans": orphans,
            "changed_keys": keys,
            "rotations": rotations,
            "rollout": self.rollout_order(project, live_text, changed, orphans, containers),
            "images": images,
            "digests": {name: digest_of(ref) for name, ref in images.items()},
            "release_services": {name: {"image": ref, "digest": digest_of(ref)} for name, ref in images.items()},
            "candidate": {"compose_sha256": hashlib.sha256(project_text(project).encode()).hexdigest(),
                          "env_sha256": sha256_file(env_path)},
            "live": {"compose_sha256": sha256_file(live), "env_sha256": sha256_file(self.path(ENV_LIVE))},
            "containers": [summary(c, self.name) for c in containers],
        }

    @staticmethod
    def rotations(project: Mapping[str, Any], keys: Sequence[str], containers: Sequence[Mapping[str, str]]) -> List[str]:
        """``service/KEY`` of each credential in ``keys`` that a running database changes in place."""
        running = {c["service"] for c in containers if c["state"] == "running"}
        return ["{0}/{1}".format(service, key) for service, spec in sorted(meta(project)["rotate"].items())
                for key in sorted(spec) if key in keys and service in running]

    @staticmethod
    def rollout_order(project: Mapping[str, Any], live_text: Optional[str], changed: Sequence[str],
                      orphans: Sequence[str], containers: Sequence[Mapping[str, str]]) -> List[str]:
        """The changed services when only their env values or images change (else ``[]``): those
        that publish no port first, then those that do (each swapped alone, Nginx following it),
        each part in start-up order; the rollout makes steps of them (``compose.rollout_steps``),
        start-first where the catalog says, as update.yml replaces a service.

        Only then can the services be replaced this way in place of a whole-project start (which
        recreates each changed service stop-first, its port closed until the new one listens): the
        project is the running one but for the config labels and the images, no container is an
        orphan, and each changed service has a container now."""
        if not changed or orphans or live_text is None:
            return []
        live = json.loads("\n".join(line for line in live_text.split("\n") if not line.startswith("#")))
        if without_labels(live, images=True) != without_labels(project, images=True):
            return []
        present = {c["service"] for c in containers}
        if any(service not in present for service in changed):
            return []
        ordered = [s for wave in meta(project)["waves"] for s in wave if s in changed]
        published = [s for s in ordered if project["services"][s].get("ports")]
        return [s for s in ordered if s not in published] + published

    # --- apply --------------------------------------------------------------------------
    def promote(self, project_path: str, env_path: str) -> Dict[str, Any]:
        """Make a project and an env file the running ones, with each service's env file."""
        project = load_project(project_path)
        with open(env_path, encoding="utf-8", newline="") as handle:
            env_all = handle.read()
        env = read_env(env_path)
        self.compose.secrets += list(env.values())
        if self.check_mode:
            return project
        write_atomic(self.path(ENV_LIVE), env_all, 0o600)
        self.stage(project, env, self.root)
        wanted = {f"{s}.env" for s in project["services"] if meta(project)["env_keys"].get(s)}
        for stale in set(os.listdir(self.path(ENV_DIR))) - wanted:
            os.unlink(self.path(ENV_DIR, stale))
        return project

    def wait_healthy(self, services: Sequence[str], project: Mapping[str, Any], deadline: float) -> List[str]:
        """Poll `docker ps` until every service serves its replicas or the deadline passes; the late ones."""
        while True:
            idle = set(self.idle(project))
            late = [s for s in services if s in idle]
            if not late or time.monotonic() >= deadline:
                return late
            time.sleep(1)

    def failure(self, services: Sequence[str], log_lines: int, why: str,
                only: Optional[Sequence[str]] = None) -> ComposeError:
        """ComposeError naming each service's containers, their state and their last log lines.

        ``only``: ids of the containers at fault (the new ones of a start-first swap); the
        service's other containers are then left out of the states and the logs.
        """
        rows = [r for r in self.compose.containers() if only is None or r["id"] in only]
        states = []
        for service in services:
            mine = [r for r in rows if r["service"] == service]
            text = "; ".join(f"{r['name']}: {r['state']}, health {health_of(r)}" for r in mine) or "no container"
            states.append(f"{service} ({text})")
        if only is None:
            logs = self.compose.logs(list(services), log_lines)
        else:
            logs = self.compose.container_logs([r for r in rows if r["service"] in services], log_lines)
        return ComposeError(f"{why}: {', '.join(states)}.", failed_services=list(services), logs=logs.splitlines())

    def up(self, project: Mapping[str, Any], only: Optional[Sequence[str]], log_lines: int,
           timeout: int = 0, recreate: bool = False) -> List[str]:
        """Start the project (or ``only`` some services, without their dependencies), health-gated;
        return the services started, in start-up order.

        The whole project goes up in one Compose call: every ``depends_on`` waits for its service
        to be healthy, so Compose starts each service as soon as what it needs is ready, in the
        order of the start-up waves, without waiting for the slowest service of a wave. The wait
        is bounded by ``timeout`` seconds, or by the sum of each wave's longest deadline.
        """
        waves = [[s for s in wave if s in project["services"] and (not only or s in only)] for wave in meta(project)["waves"]]
        waves = [wave for wave in waves if wave]
        services = [s for wave in waves for s in wave]
        if not services or self.check_mode:
            return services
        deadlines = meta(project)["deadlines"]
        wait = timeout or sum(max(int(deadlines.get(s, 120)) for s in wave) for wave in waves)
        args = ["up", "--detach", "--wait", "--wait-timeout", str(wait), "--pull", "never", "--quiet-pull"]
        if recreate:
            args += ["--force-recreate"]
        if only:
            args += ["--no-deps", *services]
        rc, out, err = self.compose.compose(*args, check=False)
        # Compose was once seen returning success for a container still starting: ask Docker too.
        late = self.wait_healthy(services, project, time.monotonic() + (5 if rc == 0 else 0))
        if rc != 0 or late:
            why = "did not become healthy within {0} s".format(wait)
            if rc != 0 and not late:
                why = "could not be started: Compose said {0}".format(brief(err or out, self.compose.secrets, 600))
            raise self.failure(late or services, log_lines, ("the release" if not only else ", ".join(services)) + " " + why)
        return services

    def rotate(self, phase: str, release: str = "", log_lines: int = 20,
               only: Optional[Sequence[str]] = None) -> Dict[str, Any]:
        """One phase of changing database credentials in place: ``{"rotations": [service/KEY],
        "errors": [...]}`` (errors only from ``undo``, which never raises).

        What rotates is the candidate project's ``x-sgivu.rotate`` (service -> KEY -> {engine,
        user}), for each key whose value differs between the old env file and the candidate
        (``stack.env.next``); every rotate key when ``stack.env.rotating`` says that a run began a
        rotation and never finished or undid it (it was killed). The old values are the archived
        env file of ``release`` (the host's last good release), else the running ``stack.env``.

        * ``begin`` (before any service gets the new value): the new value works beside the old
          one - PostgreSQL: ``ALTER ROLE ... PASSWORD`` with the new value's SCRAM verifier
          (connections already open stay open); Redis: ``ACL SETUSER user on resetpass >old >new``.
          Writes ``stack.env.rotating`` (0600, the candidate) first.
        * ``finish`` (once every service runs with the new value): only the new value works -
          Redis: its container is recreated from the running project, whose env file holds the new
          value alone (a Redis password lives in its process and its container's env), health-gated;
          PostgreSQL keeps its container (the role's password is in the data directory). Removes
          ``stack.env.rotating``.
        * ``undo`` (the change failed): the old value works again. Each key is tried on its own and
          a failure is reported, not raised, so that the last good release is still put back.

        The client authenticates with each value that may work at that moment (old, new, the one
        an interrupted run left) until one does; it runs in the database's container with the value
        in ``docker exec -e NAME`` (from this process's environment) and the statements on stdin:
        no value is ever on a command line. Raises ComposeError naming the service and key, scrubbed.
        """
        if phase not in ROTATION_PHASES:
            raise ComposeError(f"unknown rotation phase {phase!r}")
        archived = self.path(ARCHIVE, release, ENV_LIVE) if release else ""
        old_path = archived if archived and os.path.exists(archived) else self.path(ENV_LIVE)
        if not os.path.exists(old_path) or not os.path.exists(self.path(ENV_CANDIDATE)):
            raise ComposeError("rotating credentials needs the env file that runs and the candidate; {0} is missing"
                               .format(old_path if not os.path.exists(old_path) else self.path(ENV_CANDIDATE)))
        marker = self.path(ENV_ROTATING)
        old, new = read_env(old_path), read_env(self.path(ENV_CANDIDATE))
        left = read_env(marker) if os.path.exists(marker) else {}
        self.compose.secrets += list(old.values()) + list(new.values()) + list(left.values())
        project = load_project(self.path(CANDIDATE))
        containers = self.compose.containers()
        running = {c["service"]: c for c in containers if c["state"] == "running"}
        keys = changed_keys(old, new) + (all_rotate_keys(project) if left else [])
        done, errors = [], []
        if phase == "begin" and not self.check_mode:
            with open(self.path(ENV_CANDIDATE), encoding="utf-8", newline="") as handle:
                write_atomic(marker, handle.read(), 0o600)
        # ``only``: the plan's rotations. The marker this run's own begin wrote must not widen
        # finish or undo to every rotate key (a Redis restart for a PostgreSQL rotation).
        for item in [i for i in self.rotations(project, keys, containers) if only is None or i in only]:
            service, key = item.split("/", 1)
            how = meta(project)["rotate"][service][key]
            if key not in old or key not in new:
                raise ComposeError(f"{service}: {key} is not in both env files; a credential cannot be rotated "
                                   "from or to nothing.")
            done.append(item)
            if self.check_mode:
                continue
            if phase == "finish":
                if how["engine"] == "redis":
                    self.up(load_project(self.path(LIVE)), [service], log_lines, recreate=True)
                continue
            statements = rotation_statements(how["engine"], how["user"], old[key], new[key], phase)
            tries = [old[key], left.get(key), new[key]] if phase == "begin" else [new[key], left.get(key), old[key]]
            tries = [v for i, v in enumerate(tries) if v is not None and v not in tries[:i]]
            try:
                self.exec_client(running[service]["id"], how["engine"], how["user"], tries, statements,
                                 f"{phase} the rotation of {key} in {service}")
            except ComposeError as error:
                if phase != "undo":
                    raise
                errors.append(error.msg)
        if phase in ("finish", "undo") and not self.check_mode and not errors and os.path.exists(marker):
            os.unlink(marker)
        return {"rotations": done, "errors": errors}

    def exec_client(self, container: str, engine: str, user: str, passwords: Sequence[str], statements: str,
                    what: str) -> None:
        """Run the database's client in ``container`` with ``statements`` on stdin, logged in with the
        first of ``passwords`` that works; raise ComposeError (scrubbed) when none does or it fails."""
        if engine == "postgres":
            name, argv = "PGPASSWORD", ["psql", "-h", "127.0.0.1", "-U", user, "-d", "postgres", "-X", "-q",
                                        "-v", "ON_ERROR_STOP=1", "-f", "-"]
        else:
            name, argv = "REDISCLI_AUTH", ["redis-cli", "--user", user, "--no-auth-warning"]
        said = ""
        for password in passwords:
            rc, out, err = self.compose.docker_stdin(["exec", "-i", "-e", name, container, *argv], statements,
                                                     {name: password})
            answer = (out or "").strip().splitlines()
            if rc == 0 and (engine != "redis" or (answer and all(line.strip() == "OK" for line in answer))):
                return
            said = brief(err or out, self.compose.secrets, 600)
        raise ComposeError(f"{what} failed: {said}")

    def remove_orphans(self, project: Mapping[str, Any]) -> List[str]:
        orphans = [c for c in self.compose.containers() if c["service"] not in project["services"]]
        if orphans and not self.check_mode:
            self.compose.docker("stop", "--time", "30", *[c["id"] for c in orphans], what="stopping removed services")
            self.compose.docker("rm", *[c["id"] for c in orphans], what="removing removed services")
        return [c["name"] for c in orphans]

    def live_hashes(self) -> Dict[str, Optional[str]]:
        return {"compose_sha256": sha256_file(self.path(LIVE)), "env_sha256": sha256_file(self.path(ENV_LIVE))}

    def candidate_hashes(self) -> Dict[str, Optional[str]]:
        return {"compose_sha256": sha256_file(self.path(CANDIDATE)), "env_sha256": sha256_file(self.path(ENV_CANDIDATE))}

    def promote_planned(self, expect: Mapping[str, Any]) -> Dict[str, Any]:
        """Promote the planned candidate, once: refuse when the host or the candidate moved since the plan.

        In check mode the plan wrote no candidate: nothing is compared or promoted, and the running
        project (or an empty one) stands for what would run."""
        if self.check_mode:
            return load_project(self.path(LIVE)) if os.path.exists(self.path(LIVE)) else {"services": {}}
        live, candidate = self.live_hashes(), self.candidate_hashes()
        if dict(expect.get("candidate") or {}) != candidate:
            raise ComposeError("the candidate files changed since this run planned (another run planned since); "
                               "run it again. Nothing was changed.")
        if live == candidate:
            return load_project(self.path(LIVE))
        if dict(expect.get("live") or {}) != live:
            raise ComposeError("the running project or env file changed since this run planned (another run?); "
                               "run it again. Nothing was changed.")
        return self.promote(self.path(CANDIDATE), self.path(ENV_CANDIDATE))

    def apply(self, expect: Mapping[str, Any], only: Optional[Sequence[str]], log_lines: int,
              timeout: int = 0) -> Dict[str, Any]:
        """Promote the planned candidate and start it; raises ComposeError naming what is not healthy.

        Without ``only``, the services the plan found changed (``expect["services"]``) and those
        that do not serve now (a database dump loaded since the plan stopped its clients) are
        started, in start-up order, without touching the others: a database whose credential
        changed in place keeps its container, although Compose would recreate it for its env file."""
        project = self.promote_planned(expect)
        if only:
            started = self.up(project, only, log_lines, timeout)
        else:
            wanted = set(expect.get("services") or []) | set(self.idle(project))
            changed = [s for s in project["services"] if s in wanted]
            started = self.up(project, changed, log_lines, timeout) if changed else []
        removed = [] if only else self.remove_orphans(project)
        self.rejoin_names(project, started)
        if not self.check_mode and os.path.exists(self.path(LEGACY_ENV)):
            os.unlink(self.path(LEGACY_ENV))
        return {"started": started, "removed": removed, "containers": self.summaries()}

    def idle(self, project: Mapping[str, Any]) -> List[str]:
        """The project's services with fewer serving containers than their replicas."""
        rows = [r for r in self.compose.containers() if serving(r)]
        return [s for s, svc in project["services"].items() if len([r for r in rows if r["service"] == s]) < replicas(svc)]

    def summaries(self) -> List[Dict[str, Any]]:
        return [summary(c, self.name) for c in self.compose.containers()]

    def start_beside(self, expect: Mapping[str, Any], services: Sequence[str], log_lines: int, timeout: int = 0,
                     drain: int = 0) -> Dict[str, Any]:
        """Start-first: new containers of ``services`` next to the running ones, healthy before anything else.

        Scales each service to twice its replicas without recreating the running containers (one
        Compose call for all of them), then waits until each new container is healthy. When one is
        not healthy in time, every new container is withdrawn (see :meth:`withdraw`; ``drain``), so
        the old ones keep serving, and ComposeError names the late ones with their log lines.
        """
        if not services:
            raise ComposeError("a start-first swap needs at least one service; none was named. Nothing was changed.")
        project = self.promote_planned(expect)
        old = [c["id"] for c in self.compose.containers() if c["service"] in services and c["state"] == "running"]
        if self.check_mode:
            return {"old": old, "new": [], "containers": self.summaries()}
        new = self.beside(project, services, old, log_lines, timeout, drain)
        return {"old": old, "new": new, "containers": self.summaries()}

    def beside(self, project: Mapping[str, Any], services: Sequence[str], old: Sequence[str], log_lines: int,
               timeout: int = 0, drain: int = 0) -> List[str]:
        """Start new containers of ``services`` from ``project`` next to the ``old`` ones (their
        running containers' IDs, in full or shortened), in one Compose call, and wait until they are
        healthy; returns their IDs. ``timeout`` seconds (0: the longest deadline of the services).
        When any is not healthy in time, the new containers of every service are withdrawn (see
        :meth:`withdraw`; ``drain``) and ComposeError names the late ones with their log lines.

        The new containers of a service its callers find by its DNS name (no published port, no
        ``EUREKA_URL``) are created first and leave the name before they start (see
        :meth:`leave_dns`; Docker puts a container under its aliases as it starts, healthy or not),
        and join it once healthy (see :meth:`rejoin_names`): a caller never looks up a container
        that does not answer yet.

        A container of ``services`` that does not run and is not among ``old`` (a killed run's
        created one, an exited or crash-looping one) is removed first: Compose's ``--scale`` would
        count it, and ``--no-recreate`` start it again with the configuration it has."""
        rows = self.compose.containers()
        stale = [c["id"] for c in rows if c["service"] in services and not among(c["id"], old) and c["state"] != "running"]
        if stale:
            self.compose.docker("rm", "--force", *stale, what="removing the containers of {0} that do not run".format(
                ", ".join(sorted({c["service"] for c in rows if c["id"] in stale}))))
            rows = [c for c in rows if c["id"] not in stale]
        wanted = {s: replicas(project["services"][s]) for s in services}
        scale = []
        for service in services:
            running = len([c for c in rows if c["service"] == service and among(c["id"], old)])
            scale += ["--scale", f"{service}={running + wanted[service]}"]
        wait = timeout or max(int(meta(project)["deadlines"].get(s, 120)) for s in services)
        named = [s for s in services if by_name(project["services"][s])]
        args = ("--no-deps", "--no-recreate", "--pull", "never", "--quiet-pull", *scale, *services)
        rc, out, err = self.compose.compose("up", "--no-start", *args, check=False) if named else (0, "", "")
        if rc == 0 and named:
            self.leave_dns({c["id"]: c["service"] for c in self.compose.containers()
                            if c["service"] in named and not among(c["id"], old) and c["state"] == "created"})
        if rc == 0:
            rc, out, err = self.compose.compose("up", "--detach", *args, check=False)
        deadline = time.monotonic() + wait
        while True:
            new = [c for c in self.compose.containers() if c["service"] in services and not among(c["id"], old)]
            late = [s for s in services if len([c for c in new if c["service"] == s and serving(c)]) < wanted[s]]
            if rc != 0 or not late or time.monotonic() >= deadline or any(c["state"] == "exited" for c in new):
                break
            time.sleep(1)
        if rc != 0 or late:
            raise self.withdraw(late or list(services), [c["id"] for c in new], log_lines,
                                "the new {0} did not become healthy within {1} s{2}".format(
                                    ", ".join(late or services), wait,
                                    "" if rc == 0 else " (" + brief(err or out, self.compose.secrets, 400) + ")"),
                                "never stopped", project, drain)
        self.rejoin_names(project, named)
        return [c["id"] for c in new]

    def withdraw(self, services: Sequence[str], new: Sequence[str], log_lines: int, why: str, old_state: str,
                 project: Optional[Mapping[str, Any]] = None, drain: int = 0) -> ComposeError:
        """A start-first swap that failed before the old containers stepped aside: ComposeError naming
        the ``new`` ones of ``services`` (states, log lines); every ``new`` one is then removed, the old
        ones ``old_state``.

        A new container that serves (healthy) and whose service has a registry may be registered UP
        there, and a caller may have it in its cached list already (another service of the step was
        the late one): it leaves the registry first (OUT_OF_SERVICE, then ``drain`` seconds, the
        callers' cache), then gets SIGTERM (its client cancels); the others are removed at once.
        """
        error = self.failure(services, log_lines, why, only=list(new))
        everyone = self.compose.containers()
        rows = [c for c in everyone if among(c["id"], new)]
        project = project if project is not None else load_project(self.path(LIVE))
        found, where = self.registries(project, sorted({c["service"] for c in rows if serving(c)}), [c["id"] for c in rows], everyone)
        if found:
            ready = [c for c in rows if serving(c) and c["service"] in found]
            taken = []
            for service, (base, _) in found.items():
                try:
                    taken += registry.take_out_of_service(base, service, [where[c["id"]] for c in ready
                                                                          if c["service"] == service and c["id"] in where])
                except registry.RegistryError:
                    pass  # its graceful stop still cancels it
            if taken and drain > 0:
                time.sleep(drain)
            self.compose.docker("stop", "--time", "30", *[c["id"] for c in ready], what="stopping the new containers")
        if new:
            self.compose.docker("rm", "--force", *new, what="removing the new containers")
        others = sorted({c["service"] for c in rows} - set(services))
        error.msg += " They were removed{0}; the running ones {1}.".format(
            ", as were the new ones of " + ", ".join(others) if others else "", old_state)
        return error

    def registries(self, project: Mapping[str, Any], services: Sequence[str], also: Sequence[str],
                   rows: Sequence[Mapping[str, str]]) -> Tuple[Dict[str, Tuple[str, str]], Dict[str, str]]:
        """Where each of ``services`` with ``EUREKA_URL`` (in the project) is registered: service ->
        (the URL to call, the URL shown: without user and password); a registry that is a service of
        the project is called at its container's address, its user and password kept. And the
        addresses of the containers of ``also`` (ID -> address), from the same ``docker inspect``.
        ``rows``: the project's containers (Compose.containers), where a registry service is found.
        ComposeError when a URL's port is not a number."""
        urls = {s: str((project["services"][s].get("environment") or {}).get("EUREKA_URL") or "") for s in services}
        behind = [s for s in services if urls[s]]
        if not behind:
            return {}, {}
        parts, ports = {}, {}
        for service in behind:
            parts[service] = urlsplit(urls[service])
            try:
                ports[service] = parts[service].port
            except ValueError:
                raise ComposeError("the EUREKA_URL of {0} has no valid port.".format(service), failed_services=[service]) from None
        server = {s: [c["id"] for c in rows if c["service"] == parts[s].hostname and c["state"] == "running"][:1] for s in behind}
        where = self.addresses(list(also) + [i for s in behind for i in server[s]])
        found: Dict[str, Tuple[str, str]] = {}
        for service in behind:
            part, port = parts[service], ports[service]
            user = part.netloc.rpartition("@")[0]
            host = "{0}:{1}".format(where[server[service][0]], port or 80) if server[service] else part.netloc.rpartition("@")[2]
            found[service] = (urlunsplit(part._replace(netloc=(user + "@" if user else "") + host)),
                              urlunsplit(part._replace(netloc=(part.hostname or "") + (":%d" % port if port else ""))))
        return found, where

    def drain(self, services: Sequence[str], old: Sequence[str], log_lines: int, timeout: int = 0, seconds: int = 0,
              dns_seconds: int = 0) -> Dict[str, Any]:
        """The hand-over of a start-first swap of unpublished services, from the ``old`` containers
        to the new ones (running containers of the services not in ``old``), so that the caller may
        then stop the old ones without a failed call.

        For each of ``services`` with ``EUREKA_URL`` in its environment (its registry; a project
        service named there is reached at its container's address): waits until each new container
        is registered UP. Every other service is found by its callers under its DNS name (Docker's,
        the service name): its old containers leave that name (leave_dns) and serve on at their
        address until they stop. Then the registry services' old containers are set
        OUT_OF_SERVICE. Then waits once: ``seconds`` (the callers' cache of the instance list) when
        a service behind a registry had old containers (taken out, or unknown to a registry that was
        recreated since: its callers may still hold them), ``dns_seconds`` (the callers' DNS cache)
        when a name lost one, the longer of the two when both did.
        When a new container does not register UP within ``timeout`` seconds (0: the longest
        deadline of the services), the new containers of every service are withdrawn (those that
        registered leave the registry first, ``seconds``), the old ones having never left service
        nor their name, and ComposeError says so. A service without a new container that serves
        (healthy, or running without a health check) is refused before anything changes.
        """
        if not services:
            raise ComposeError("a hand-over needs at least one service; none was named. Nothing was changed.")
        project = load_project(self.path(LIVE))
        rows = self.compose.containers()
        new = {s: [c["id"] for c in rows if c["service"] == s and not among(c["id"], old) and c["state"] == "running"]
               for s in services}
        done: Dict[str, Any] = {"registry": None, "registered": [], "out_of_service": [], "left_dns": [], "readdressed": [],
                                "drained": 0}
        if self.check_mode:
            return dict(done, containers=self.summaries())
        mine = {c["id"]: c["service"] for c in rows if among(c["id"], old)}
        ready = {c["service"] for c in rows if c["service"] in services and not among(c["id"], old) and serving(c)}
        alone = [s for s in services if s not in ready and s in mine.values()]
        if alone:  # never take every instance out of service
            raise ComposeError("no new container of {0} serves beside the old ones; they stay in service.".format(", ".join(alone)),
                               failed_services=alone)
        # One inspect: where the registries are, and the addresses they know the instances by.
        found, where = self.registries(project, services, [i for s in services for i in new[s]] + list(mine), rows)
        behind = [s for s in services if s in found]
        if behind:
            self.await_registered(done, project, services, behind, new, found, where, log_lines, timeout, seconds)
        named = [s for s in services if s not in found]
        done["left_dns"], done["readdressed"] = self.leave_dns(
            {c: s for c, s in mine.items() if s in named},
            " Nothing left the registry." if behind else "")
        for service in behind:
            try:
                done["out_of_service"] += registry.take_out_of_service(
                    found[service][0], service, [where[c] for c, s in mine.items() if s == service and c in where])
            except registry.RegistryError as error:
                raise ComposeError("taking the old {0} out of service in its registry {1} failed: {2}. Both the old and the new "
                                   "containers run; the old ones of {0} are still in service{3}{4}.".format(
                                       service, found[service][1], error,
                                       "" if service == behind[0] else ", those of " + ", ".join(behind[:behind.index(service)])
                                       + " left it",
                                       "; the old ones of {0} left their DNS name".format(", ".join(named)) if done["left_dns"] else ""),
                                   failed_services=[service]) from None
        # A registry's callers may hold an old instance in the list they fetched even when the registry
        # no longer has it to take out (the registry itself was recreated since): wait for them too.
        wait = max(seconds if any(s in behind for s in mine.values()) else 0, dns_seconds if done["left_dns"] else 0)
        if wait > 0:
            time.sleep(wait)
            done["drained"] = wait
        return dict(done, containers=self.summaries())

    def await_registered(self, done: Dict[str, Any], project: Mapping[str, Any], services: Sequence[str],
                         behind: Sequence[str], new: Mapping[str, List[str]], found: Mapping[str, Tuple[str, str]],
                         where: Mapping[str, str], log_lines: int, timeout: int, seconds: int) -> None:
        """drain's wait until the new containers of the services ``behind`` a registry are UP there;
        when one is not in time, every new container of ``services`` is withdrawn (ComposeError)."""
        done["registry"] = ", ".join(sorted({found[s][1] for s in behind}))
        wait = timeout or max(int(meta(project)["deadlines"].get(s, 120)) for s in behind)
        deadline = time.monotonic() + wait
        for service in behind:
            try:
                done["registered"] += registry.wait_up(found[service][0], service, [where[c] for c in new[service]],
                                                       max(1, math.ceil(deadline - time.monotonic())))
            except registry.RegistryError as error:
                raise self.withdraw([service], [i for s in services for i in new[s]], log_lines,
                                    "the new {0} did not register UP with its registry {1} within {2} s ({3})".format(
                                        service, found[service][1], wait, error), "never left service", project, seconds) from None

    def leave_dns(self, containers: Mapping[str, str], note: str = "") -> Tuple[List[str], List[str]]:
        """Take running containers (ID -> service) out of Docker's DNS answers for their service's
        name, while they serve on: each leaves every network where the name is one of its aliases
        and joins it again at the same address without Compose's aliases (its container name
        still resolves). Callers that look the name up from then on find only the other
        containers; connections already open go on (the same address; TCP resends what was sent
        in the moment between). Returns the IDs (12 characters) that left a name, and those that
        came back at another address (a network that takes no fixed address, no configured
        subnet: their open connections were lost). ComposeError when Docker refuses, naming the
        container, what had left before it and whether it is still on the network; ``note`` is
        added to the message."""
        left: List[str] = []
        readdressed: List[str] = []
        if not containers:
            return left, readdressed
        for cid, networks in self.networks(list(containers), "inspecting the old containers' networks").items():
            service = next((s for c, s in containers.items() if among(c, [cid])), None)
            if service is None:
                continue
            for network, settings in sorted(networks.items()):
                if service not in ((settings or {}).get("Aliases") or []):
                    continue  # not found by the name there (or left it already)
                address = settings.get("IPAddress") or ""
                before = " {0} had left the name before.".format(", ".join(left)) if left else ""
                what = "taking the old {0} ({1}) out of the name {0} on {2}".format(service, cid[:12], network)
                error = self.compose.attempt("network", "disconnect", network, cid)
                if error is not None:
                    raise ComposeError("{0} failed: {1}. It is still on {2} under the name.{3}{4}".format(
                        what, error, network, before, note), failed_services=[service])
                if not address or self.compose.attempt("network", "connect", "--ip", address, network, cid) is not None:
                    error = self.compose.attempt("network", "connect", network, cid)
                    if error is not None:
                        raise ComposeError("{0} failed: {1}. It left {2} and could not join it again: it serves no one "
                                           "there.{3}{4}".format(what, error, network, before, note), failed_services=[service])
                    readdressed.append(cid[:12])
                if cid[:12] not in left:
                    left.append(cid[:12])
        return left, readdressed

    def networks(self, ids: Sequence[str], what: str) -> Dict[str, Dict[str, Any]]:
        """Container ID (in full) -> its networks (``NetworkSettings.Networks``: name -> settings,
        Aliases and IPAddress among them), from one ``docker inspect``."""
        out = self.compose.docker("inspect", "--format", "{{.Id}} {{json .NetworkSettings.Networks}}", *ids, what=what)
        found = {}
        for line in out.splitlines():
            cid, _, networks = line.partition(" ")
            if cid:
                found[cid] = {n: settings or {} for n, settings in (json.loads(networks or "null") or {}).items()}
        return found

    def rejoin_names(self, project: Mapping[str, Any], services: Sequence[str]) -> List[str]:
        """Give each running container of ``services`` found by their DNS name (see :func:`by_name`;
        the others are left alone) its service's DNS name back on each network of the service where
        it lacks it (it left the name in a start-first hand-over whose run was
        killed or failed before the container stopped, and Compose kept it when it scaled the
        service down): it leaves the network (when on it) and joins it again, at the same address,
        with the name among its aliases. Returns the IDs (12 characters); in check mode nothing
        changes."""
        services = [s for s in services if by_name(project["services"].get(s) or {})]  # only those ever leave it
        if not services or self.check_mode:
            return []
        rows = [c for c in self.compose.containers() if c["service"] in services and c["state"] == "running"]
        if not rows:
            return []
        declared = project.get("networks") or {}
        rejoined: List[str] = []
        for cid, attached in self.networks([c["id"] for c in rows], "inspecting the containers' networks").items():
            service = next((c["service"] for c in rows if among(c["id"], [cid])), None)
            if service is None:
                continue
            keys = (project["services"].get(service) or {}).get("networks") or {}
            for key in keys:
                network = str((declared.get(key) or {}).get("name") or "{0}_{1}".format(self.name, key))
                settings = attached.get(network)
                if settings is not None and service in (settings.get("Aliases") or []):
                    continue
                what = "giving {0} ({1}) its name back on {2}".format(service, cid[:12], network)
                address = (settings or {}).get("IPAddress") or ""
                if settings is not None:
                    self.compose.docker("network", "disconnect", network, cid, what=what)
                self.compose.docker("network", "connect", *(["--ip", address] if address else []), "--alias", service,
                                    network, cid, what=what)
                if cid[:12] not in rejoined:
                    rejoined.append(cid[:12])
        return rejoined

    def addresses(self, ids: Sequence[str]) -> Dict[str, str]:
        """Container id -> its address on the project's network (``docker inspect``)."""
        if not ids:
            return {}
        out = self.compose.docker("inspect", "--format", "{{.Id}}{{range .NetworkSettings.Networks}} {{.IPAddress}}{{end}}",
                                  *ids, what="inspecting the containers' addresses")
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                found[parts[0]] = parts[1]
        return {i: found[f] for i in ids for f in found if f.startswith(i) or i.startswith(f)}

    def stack_images(self, repositories: Sequence[str]) -> List[Dict[str, Any]]:
        """Every image on the host with a reference in one of ``repositories``, from ``docker image inspect``:
        ``{id, tags, digests, size}`` (size in bytes). Images of other repositories are left out."""
        ids = sorted(set(self.compose.docker("image", "ls", "--quiet", "--no-trunc", what="listing the images").split()))
        if not ids:
            return []
        out = self.compose.docker("image", "inspect", "--format", "{{json .}}", *ids, what="inspecting the images")
        wanted, found = set(repositories), []
        for line in out.splitlines():
            if not line.strip():
                continue
            info = json.loads(line)
            tags, digests = info.get("RepoTags") or [], info.get("RepoDigests") or []
            if any(repository(ref) in wanted for ref in tags + digests):
                found.append({"id": info["Id"], "tags": tags, "digests": digests, "size": int(info.get("Size") or 0)})
        return found

    def prune_images(self, digests: Sequence[str], repositories: Sequence[str]) -> Dict[str, Any]:
        """Remove the stack's images that nothing keeps; report what the stack's images take.

        An image of ``repositories`` stays when one of its RepoDigests is in ``digests`` (a kept
        release names it), or when a container uses it that is running or belongs to another
        project. Otherwise it goes, by each of its references (no ``--force``), together with the
        stopped containers of this project that still hold it (leftovers of an old release). An
        untagged image that still has a digest is removed only when no kept release names that
        digest: a moved tag never takes a rollback target with it. In check mode nothing is removed.
        A reference Docker refuses to remove is reported in ``errors``; it never raises.
        """
        keep = set(digests)
        fmt = "\t".join(["{{.ID}}", "{{.State}}", '{{.Label "com.docker.compose.project"}}'])
        containers = [dict(zip(("id", "state", "project"), line.split("\t")))
                      for line in self.compose.docker("ps", "--all", "--no-trunc", "--format", fmt,
                                                      what="listing the containers").splitlines() if line.strip()]
        image_of: Dict[str, str] = {}
        if containers:
            out = self.compose.docker("container", "inspect", "--format", "{{.Id}} {{.Image}}",
                                      *[c["id"] for c in containers], what="inspecting the containers")
            image_of = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
        kept, removed, errors, wanted = [], [], [], set(repositories)
        for image in self.stack_images(repositories):
            users = [c for c in containers if image_of.get(c["id"]) == image["id"]]
            held = [c for c in users if c["state"] == "running" or c["project"] != self.name]
            if held or any(r in keep for r in image["digests"] + image["tags"]):
                kept.append(image)
                continue
            mine = [r for r in image["tags"] + image["digests"] if repository(r) in wanted]
            shared = len(mine) < len(image["tags"]) + len(image["digests"])  # another repository names it too
            tagged = {repository(t) for t in image["tags"] if t in mine}
            # Removing a repository's last tag drops its digest references too: name those only when untagged.
            refs = [r for r in mine if "@" not in r or repository(r) not in tagged]
            users = [] if shared else users
            if not self.check_mode:
                error = self.compose.attempt("container", "rm", *[c["id"] for c in users]) if users else None
                error = error or self.compose.attempt("image", "rm", *refs)
                if error and self.compose.attempt("image", "inspect", "--format", "{{.Id}}", image["id"]) is None:
                    errors.append(error)
                    kept.append(image)
                    continue
            removed.append({"refs": refs, "size": 0 if shared else image["size"],
                            "containers": [c["id"][:12] for c in users]})
        return {"removed": removed, "errors": errors, "images": len(kept),
                "images_bytes": sum(i["size"] for i in kept), "reclaimed_bytes": sum(r["size"] for r in removed)}

    def retire(self, containers: Sequence[str], grace: int = 30) -> Dict[str, Any]:
        """Stop containers gracefully (SIGTERM, then ``grace`` seconds to finish) and remove them."""
        mine = {c["id"] for c in self.compose.containers()}
        gone = [c for c in containers if among(c, mine)]
        if gone and not self.check_mode:
            self.compose.docker("stop", "--time", str(grace), *gone, what="stopping the old containers")
            self.compose.docker("rm", *gone, what="removing the old containers")
        return {"removed": gone, "containers": self.summaries()}

    def restore(self, release: Optional[str], log_lines: int, start_first: Sequence[str] = ()) -> Dict[str, Any]:
        """Bring an archived release back (images by digest, its env file), health-gated.

        A service that runs and differs (a release that was healthy but bad, or one a later step
        of the change failed after), none of its containers stopped or restarting, comes back
        start-first when it publishes ports, or when it is among ``start_first`` (the catalog's
        start-first services) and a container of it serves (healthy, or no health check; one with
        no healthy container now has no caller worth keeping and is recreated): the restored
        containers start beside the running ones (see :meth:`beside`), healthy before anything
        else, and ``old`` lists the running ones for the caller to retire once Nginx moved and, for
        the unpublished ones returned in ``handover``, once they were handed over (see
        :meth:`drain`). The other services that differ are recreated in start-up order.
        Without a release (the host never had a good one) the stack's containers are stopped
        and removed; its volumes are kept.
        """
        if not release:
            if not self.check_mode and os.path.exists(self.path(LIVE)):
                self.compose.compose("down", "--timeout", "30", what="stopping the stack")
            return {"started": [], "removed": ["all"], "old": [], "handover": [], "containers": self.summaries()}
        folder = self.path(ARCHIVE, release)
        project = load_project(os.path.join(folder, LIVE))
        env = read_env(os.path.join(folder, ENV_LIVE))
        self.compose.secrets += list(env.values())
        directory = self.scratch()
        try:
            self.stage(project, env, directory)
            self.pull(project, [], directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        project = self.promote(os.path.join(folder, LIVE), os.path.join(folder, ENV_LIVE))
        if not self.check_mode:
            # The failed candidate is dropped: what runs is the candidate again, so the next run
            # with the values that run now finds nothing to change.
            for live, candidate in ((LIVE, CANDIDATE), (ENV_LIVE, ENV_CANDIDATE)):
                with open(self.path(live), encoding="utf-8", newline="") as handle:
                    write_atomic(self.path(candidate), handle.read(), 0o640 if live == LIVE else 0o600)
        # Only the services that differ from it (or do not serve) start again, as in apply: a
        # database whose credential a rotation changed in place is not recreated for its env file.
        labels = {n: (svc.get("labels") or {}).get(CONFIG_LABEL) for n, svc in project["services"].items()}
        old: List[str] = []
        handover: List[str] = []
        if all(labels.values()) and not self.check_mode:
            containers = self.compose.containers()
            changed, _ = self.differences(project, labels, containers)
            # Every running container of the service, healthy or not, is the failed release's (as in start_beside).
            running = {s: [c["id"] for c in containers if c["service"] == s and c["state"] == "running"] for s in changed}
            # A container of it in another state (exited, restarting, created) would count as one of the new
            # ones in Compose's --scale, or be started as one: such a service is recreated instead.
            stray = {c["service"] for c in containers if c["service"] in changed and c["state"] != "running"}
            # Start-first where the service runs now and publishes (Nginx follows it), or is start-first
            # in the catalog and a container of it serves (its callers follow it in the registry or
            # under its DNS name: handover). One with no healthy container now (a registry client
            # reports DOWN then) has no caller worth keeping: it is recreated.
            swapped = [s for s in changed if running[s] and s not in stray
                       and (project["services"][s].get("ports")
                            or (s in start_first and any(serving(c) for c in containers if c["service"] == s)))]
            rest = [s for s in changed if s not in swapped]
            started = self.up(project, rest, log_lines) if rest else []
            if swapped:
                old = [i for s in swapped for i in running[s]]
                try:
                    self.beside(project, swapped, old, log_lines)
                except ComposeError as error:
                    self.rejoin_names(project, started)
                    error.msg = "Starting the last good release of {0} beside the running one: {1}".format(
                        ", ".join(swapped), error.msg)
                    raise
                started += swapped
                handover = [s for s in swapped if not project["services"][s].get("ports")]
        else:
            started = self.up(project, None, log_lines)
        # A container of the restored release that left its DNS name in the failed hand-over gets it back.
        self.rejoin_names(project, started)
        return {"started": started, "removed": self.remove_orphans(project), "old": old, "handover": handover,
                "containers": self.summaries()}
