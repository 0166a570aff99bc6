#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Record a release of the stack on the host, or read the history."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_history
short_description: Record a stack release on the host, or read the history
version_added: 1.0.0
author: SGIVU platform team
description:
  - Keeps a JSON history of what ran on the host (per service image and digest), who ran it and when,
    and an archive per release of the compose file and the env file (0600) it ran with, for rollbacks.
  - A release that repeats the latest recorded state is not recorded again, so a no-op deploy changes nothing.
options:
  path:
    description: The history file.
    type: path
    required: true
  stack:
    description: Stack (compose project) name.
    type: str
    required: true
  state:
    description: C(recorded) appends I(release); C(query) only reads.
    type: str
    choices: [recorded, query]
    default: query
  release:
    description: The release to record (id, time, who, purpose, services, backup).
    type: dict
  compose_file:
    description: Compose file the release ran with; archived and hashed.
    type: path
  env_file:
    description: Env file the release ran with; archived (mode 0600) and hashed, never printed.
    type: path
  archive_dir:
    description: Directory holding one folder per release.
    type: path
  keep:
    description: Releases kept; older ones and their archives are removed.
    type: int
    default: 20
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
"""

EXAMPLES = r"""
- name: Record the release
  sgivu.deploy.release_history:
    path: /opt/sgivu/releases.json
    stack: sgivu
    state: recorded
    release: "{{ __compose_stack_release }}"
    compose_file: /opt/sgivu/compose.yml
    env_file: /opt/sgivu/.env
    archive_dir: /opt/sgivu/releases
"""

RETURN = r"""
history:
  description: The history after the call.
  returned: always
  type: dict
release:
  description: The recorded release (with its hashes), or the latest one for C(query).
  returned: when there is one
  type: dict
"""

import hashlib
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils import releases


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomic(path: str, text: str, mode: int) -> None:
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".release-history.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            stack=dict(type="str", required=True),
            state=dict(type="str", choices=["recorded", "query"], default="query"),
            release=dict(type="dict"),
            compose_file=dict(type="path"),
            env_file=dict(type="path", no_log=False),
            archive_dir=dict(type="path"),
            keep=dict(type="int", default=20),
        ),
        required_if=[("state", "recorded", ("release", "compose_file", "env_file", "archive_dir"))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        text = open(p["path"], encoding="utf-8").read() if os.path.exists(p["path"]) else ""
        history = releases.load(text, p["stack"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the release history {p['path']}: {exc}")

    if p["state"] == "query":
        latest = history["releases"][-1] if history["releases"] else None
        module.exit_json(changed=False, history=history, release=latest)

    release = dict(p["release"])
    release["compose_sha256"] = _sha256(p["compose_file"])
    release["env_sha256"] = _sha256(p["env_file"])
    try:
        pruned = releases.append(history, release, p["keep"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    latest = history["releases"][-1] if history["releases"] else None
    if latest is None or latest.get("id") != release["id"]:
        module.exit_json(changed=False, history=history, release=latest)
    if not module.check_mode:
        folder = os.path.join(p["archive_dir"], release["id"])
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(p["archive_dir"], 0o700)
        shutil.copyfile(p["compose_file"], os.path.join(folder, "compose.yml"))
        env_copy = os.path.join(folder, "env")
        fd = os.open(env_copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as target, open(p["env_file"], "rb") as source:
            shutil.copyfileobj(source, target)
        os.chmod(env_copy, 0o600)
        for old in pruned:
            shutil.rmtree(os.path.join(p["archive_dir"], old["id"]), ignore_errors=True)
        _write_atomic(p["path"], releases.dumps(history), 0o640)
    module.exit_json(changed=True, history=history, release=release)


if __name__ == "__main__":
    main()
