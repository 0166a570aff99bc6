#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Take, release or break the deploy lock of a stack on a host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take, release or break the deploy lock of a stack on a host
version_added: 1.0.0
author: SGIVU platform team
description:
  - A lock is a directory created atomically (C(mkdir)), holding C(owner.json) - who holds it, for what, since when,
    and the run that took it (its C(token); the first 8 characters name the run to an operator).
  - C(acquired) takes the lock. When another run holds it, it waits up to C(wait) seconds for it to be given back, then
    fails naming the holder and how to clear the lock if that run died.
  - C(released) gives back the lock this run took (its C(token)); a lock another run holds is left alone.
  - C(broken) clears a lock left behind by a run that died (killed, or an AWX job cancelled), and only that one - the
    lock must still be held by the run C(holder) names (the 8-character run shown in the refusal). A lock that was
    given back meanwhile is fine; one that another run took since is refused.
  - Taking and releasing report no change (the lock exists only while a run does); breaking one reports a change.
options:
  path:
    description: Path of the lock directory.
    type: path
    required: true
  state:
    description: C(acquired), C(released) or C(broken) (see the description).
    type: str
    choices: [acquired, released, broken]
    default: acquired
  owner:
    description: Who takes the lock (user, AWX user).
    type: str
    default: unknown
  purpose:
    description: What the holder is doing (deploy, update sgivu-gateway, rollback).
    type: str
    default: deploy
  token:
    description: Identifies this run (C(acquired), C(released)).
    type: str
  wait:
    description: C(acquired) seconds to wait for a lock another run holds before failing; 0 fails at once.
    type: int
    default: 0
  holder:
    description: C(broken) the run holding the lock to clear, as a refusal names it (at least 8 characters of its token).
    type: str
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Take the deploy lock, waiting up to five minutes for a running deploy
  sgivu.deploy.deploy_lock:
    path: /opt/sgivu/.deploy.lock
    owner: "{{ lookup('ansible.builtin.env', 'USER') }}"
    purpose: deploy
    token: "{{ stack_lock_token }}"
    wait: 300

- name: Clear the lock a killed run left (the run the refusal named)
  sgivu.deploy.deploy_lock:
    path: /opt/sgivu/.deploy.lock
    state: broken
    holder: k3x9Qa1B
"""

RETURN = r"""
holder:
  description: The lock's owner file (who, purpose, since, run) when another run holds it, or the one a break cleared.
  returned: when there is one
  type: dict
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

RUN_LENGTH = 8


def _read_owner(path: str) -> dict:
    try:
        with open(os.path.join(path, "owner.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def _shown(holder: dict) -> dict:
    """The owner file as an operator may see it: the run's first characters, never the whole token."""
    shown = {k: v for k, v in holder.items() if k != "token"}
    shown["run"] = str(holder.get("token", ""))[:RUN_LENGTH] or "unknown"
    return shown


def _held_message(path: str, holder: dict) -> str:
    shown = _shown(holder)
    return (
        "another deploy holds the lock {0}: {1} ({2}) since {3}, run {4}. Nothing was changed. "
        "Wait for it to finish (or run again with -e lock_wait=SECONDS). If that run died (killed, or its AWX job "
        "cancelled), clear the lock with: ansible-playbook unlock.yml -i <inventory> --limit <host> -e force=true "
        "-e holder={4} (AWX: the unlock template)".format(
            path, shown.get("owner", "unknown"), shown.get("purpose", "unknown"), shown.get("since", "unknown"), shown["run"]
        )
    )


def _break(module: AnsibleModule, path: str, holder: str) -> None:
    if len(holder or "") < RUN_LENGTH:
        module.fail_json(msg=f"name the run whose lock to clear: holder=<the {RUN_LENGTH} characters the refusal shows>. "
                             "Nothing was cleared.")
    if not os.path.isdir(path):
        module.exit_json(changed=False, msg=f"no lock at {path}: nothing to clear")
    found = _read_owner(path)
    if not str(found.get("token", "")).startswith(holder):
        module.fail_json(msg="the lock {0} is held by run {1} ({2}, {3}), not {4}: nothing was cleared".format(
            path, _shown(found)["run"], found.get("owner", "unknown"), found.get("purpose", "unknown"), holder),
            holder=_shown(found))
    if not module.check_mode:
        shutil.rmtree(path)
    module.exit_json(changed=True, holder=_shown(found), msg=f"cleared the lock run {holder} left at {path}")


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", choices=["acquired", "released", "broken"], default="acquired"),
            owner=dict(type="str", default="unknown"),
            purpose=dict(type="str", default="deploy"),
            token=dict(type="str", no_log=False),
            wait=dict(type="int", default=0),
            holder=dict(type="str"),
        ),
        required_if=[("state", "acquired", ("token",)), ("state", "released", ("token",))],
        supports_check_mode=True,
    )
    path, token = module.params["path"], module.params["token"]

    if module.params["state"] == "broken":
        _break(module, path, module.params["holder"])

    if module.params["state"] == "released":
        holder = _read_owner(path)
        if os.path.isdir(path) and holder.get("token") == token and not module.check_mode:
            shutil.rmtree(path)
        module.exit_json(changed=False)

    deadline = time.monotonic() + max(0, module.params["wait"])
    while True:
        holder = _read_owner(path)
        if not os.path.isdir(path) or holder.get("token") == token:
            if module.check_mode:
                module.exit_json(changed=False)
            os.makedirs(os.path.dirname(path), mode=0o750, exist_ok=True)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                holder = _read_owner(path)
                if holder.get("token") == token:
                    module.exit_json(changed=False)
                if time.monotonic() < deadline:  # another run took it first: wait on
                    time.sleep(2)
                    continue
                module.fail_json(msg=_held_message(path, holder), holder=_shown(holder))
            owner = {
                "owner": module.params["owner"],
                "purpose": module.params["purpose"],
                "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "token": token,
            }
            with open(os.path.join(path, "owner.json"), "w", encoding="utf-8") as handle:
                json.dump(owner, handle)
            module.exit_json(changed=False)
        if time.monotonic() >= deadline:
            module.fail_json(msg=_held_message(path, holder), holder=_shown(holder))
        time.sleep(2)


if __name__ == "__main__":
    main()
