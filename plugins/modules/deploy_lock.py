#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Take or release the deploy lock of a stack on a host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the deploy lock of a stack on a host
version_added: 1.0.0
author: SGIVU platform team
description:
  - A lock is a directory created atomically (C(mkdir)), holding C(owner.json) with who holds it,
    since when and for what. A second deploy fails at once naming the holder, instead of waiting.
  - Taking and releasing the lock report no change: the lock exists only while a run does.
options:
  path:
    description: Path of the lock directory.
    type: path
    required: true
  state:
    description: C(acquired) takes the lock (fails when someone else holds it); C(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  owner:
    description: Who takes the lock (user, AWX job).
    type: str
    default: unknown
  purpose:
    description: What the holder is doing (deploy, update sgivu-gateway, rollback).
    type: str
    default: deploy
  token:
    description: Identifies this run; C(released) only removes a lock that this token took.
    type: str
    required: true
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Take the deploy lock
  sgivu.deploy.deploy_lock:
    path: /opt/sgivu/.deploy.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}"
    purpose: deploy
    token: "{{ __compose_stack_run_id }}"
"""

RETURN = r"""
holder:
  description: Contents of the lock's owner file when the lock is held by another run.
  returned: failure
  type: dict
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule


def _read_owner(path: str) -> dict:
    try:
        with open(os.path.join(path, "owner.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released"], default="acquired"),
            owner=dict(type="str", default="unknown"),
            purpose=dict(type="str", default="deploy"),
            token=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    path, token = module.params["path"], module.params["token"]

    if module.params["state"] == "released":
        holder = _read_owner(path)
        if os.path.isdir(path) and holder.get("token") == token and not module.check_mode:
            shutil.rmtree(path)
        module.exit_json(changed=False)

    if module.check_mode:
        if os.path.isdir(path) and _read_owner(path).get("token") != token:
            holder = _read_owner(path)
            module.fail_json(msg=_held_message(path, holder), holder=holder)
        module.exit_json(changed=False)

    os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        holder = _read_owner(path)
        if holder.get("token") == token:
            module.exit_json(changed=False)
        module.fail_json(msg=_held_message(path, holder), holder=holder)
    owner = {
        "owner": module.params["owner"],
        "purpose": module.params["purpose"],
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pid": os.getppid(),
        "token": token,
    }
    with open(os.path.join(path, "owner.json"), "w", encoding="utf-8") as handle:
        json.dump(owner, handle)
    module.exit_json(changed=False)


def _held_message(path: str, holder: dict) -> str:
    return (
        "another deploy holds the lock {0}: {1} ({2}) since {3}. Nothing was changed. "
        "Wait for it to finish; if that run died, remove {0} by hand.".format(
            path, holder.get("owner", "unknown"), holder.get("purpose", "unknown"), holder.get("since", "unknown")
        )
    )


if __name__ == "__main__":
    main()
