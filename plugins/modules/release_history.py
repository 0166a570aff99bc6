#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Record a release of the stack on the host, or read the host's release state."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_history
short_description: Record a stack release on the host, or read the host's release state
version_added: 1.0.0
author: SGIVU platform team
description:
  - Keeps a JSON history (C(<root>/releases.json)) of what ran on the host - per service the image and its
    registry digest, who ran it, when, for what, and how it went (C(good) or C(failed), with the error and
    the release put back). A good release is archived in C(<root>/releases/<id>/) (its compose file and its
    env file, 0600), so it can be brought back by digest; the newest good one is the host's I(last good)
    release.
  - C(query) returns the history, the last good release and the versions pinned on the host
    (C(<root>/pins.json), kept by updates and rollbacks so a later deploy does not undo them) in one call.
  - A good release that repeats the last good state is not recorded again, so a no-op deploy changes nothing.
  - No value of the env file is ever read into the result; only its sha256.
options:
  root:
    description: The stack's directory on the host.
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
    description:
      - The release to record (id, time, who, purpose, status C(good) or C(failed), services, backup, error,
        restored). A good release's compose file and env file are the running ones (C(compose.yml),
        C(stack.env)); they are hashed and archived.
    type: dict
  pins:
    description: With C(recorded) and a good release, service -> C({image, catalog_tag}) merged into C(pins.json).
    type: dict
    default: {}
  keep:
    description: Releases kept; older ones and their archives are removed.
    type: int
    default: 20
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Read the release state of the host
  sgivu.deploy.release_history:
    root: /opt/sgivu
    stack: sgivu
  register: state

- name: Record the release as good
  sgivu.deploy.release_history:
    root: /opt/sgivu
    stack: sgivu
    state: recorded
    release:
      id: 20261130T120000Z
      who: ops
      purpose: deploy
      status: good
      services: "{{ plan.digests }}"
"""

RETURN = r"""
history:
  description: The history after the call.
  returned: always
  type: dict
last_good:
  description: The newest good release this version can restore, or null.
  returned: always
  type: dict
pins:
  description: Service -> C({image, catalog_tag}) pinned on the host.
  returned: always
  type: dict
release:
  description: The recorded release (with its hashes and its final id), or the latest one for C(query).
  returned: when there is one
  type: dict
"""

import json
import os
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils import releases
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import sha256_file, write_atomic

COMPOSE = "compose.yml"
ENV = "stack.env"


def _read_json(path: str, default):
    if not os.path.exists(path):
        return default
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _archive(root: str, release_id: str) -> None:
    folder = os.path.join(root, "releases", release_id)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    os.chmod(os.path.join(root, "releases"), 0o700)
    shutil.copyfile(os.path.join(root, COMPOSE), os.path.join(folder, COMPOSE))
    env_copy = os.path.join(folder, ENV)
    fd = os.open(env_copy, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as target, open(os.path.join(root, ENV), "rb") as source:
        shutil.copyfileobj(source, target)
    os.chmod(env_copy, 0o600)


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            stack=dict(type="str", required=True),
            state=dict(type="str", choices=["recorded", "query"], default="query"),
            release=dict(type="dict"),
            pins=dict(type="dict", default={}),
            keep=dict(type="int", default=20),
        ),
        required_if=[("state", "recorded", ("release",))],
        supports_check_mode=True,
    )
    p = module.params
    path = os.path.join(p["root"], "releases.json")
    pins_path = os.path.join(p["root"], "pins.json")
    try:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        history = releases.load(text, p["stack"])
        pins = _read_json(pins_path, {})
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the release state in {p['root']}: {exc}")

    if p["state"] == "query":
        latest = history["releases"][-1] if history["releases"] else None
        module.exit_json(changed=False, history=history, release=latest, last_good=releases.last_good(history), pins=pins)

    release = dict(p["release"])
    release.setdefault("status", "good")
    release["format"] = releases.FORMAT
    release["id"] = releases.unique_id(history, str(release["id"]))
    good = release["status"] == "good"
    if good:
        release["compose_sha256"] = sha256_file(os.path.join(p["root"], COMPOSE))
        release["env_sha256"] = sha256_file(os.path.join(p["root"], ENV))
    try:
        pruned = releases.append(history, release, p["keep"])
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    new_pins = dict(pins, **p["pins"]) if good else pins
    recorded = bool(history["releases"]) and history["releases"][-1].get("id") == release["id"]
    if not recorded and new_pins == pins:
        module.exit_json(changed=False, history=history, release=releases.last_good(history),
                         last_good=releases.last_good(history), pins=pins)
    if not module.check_mode:
        if recorded and good:
            _archive(p["root"], release["id"])
        for old in pruned:
            shutil.rmtree(os.path.join(p["root"], "releases", old["id"]), ignore_errors=True)
        if recorded:
            write_atomic(path, releases.dumps(history), 0o640)
        if new_pins != pins:
            write_atomic(pins_path, json.dumps(new_pins, indent=2, sort_keys=True) + "\n", 0o640)
    module.exit_json(changed=True, history=history, release=release, last_good=releases.last_good(history), pins=new_pins)


if __name__ == "__main__":
    main()
