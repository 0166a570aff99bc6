#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Read packages, paths, group members and a systemd unit's state on a host, in one call."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_state
short_description: Read packages, paths, group members and a systemd unit's state on a host, in one call
version_added: 2.1.0
author: SGIVU platform team
description:
  - Reads, in one round trip, what a role would otherwise ask the host one task at a time, that is which of
    the named packages are not installed (C(dpkg-query) on Debian, C(rpm -q) by name elsewhere), the type, mode, owner and
    SHA-256 of the named paths, which of the named users are not accounts or not members of a group, and a systemd unit's
    C(ActiveState) and C(UnitFileState).
  - The C(docker_host) and C(nginx) roles skip a task whose outcome these facts already settle (a no-op deploy) and
    run it otherwise, so the standard modules still do every change and every repair.
  - Reads only; changes nothing.
options:
  packages:
    description: Package names whose installation is checked.
    type: list
    elements: str
    default: []
  paths:
    description:
      - Absolute paths to describe, taken as given (no C(~) or variable expansion), so the result's keys are these
        strings. A regular file's content is hashed (SHA-256); a directory's or a symlink's is not.
    type: list
    elements: str
    default: []
  group:
    description: The group whose members are checked against O(users); required when O(users) is not empty.
    type: str
    default: ""
  users:
    description:
      - Users that must exist and be supplementary members of O(group).
      - Names are read without surrounding blanks, and empty names are dropped, so C(admin, deploy) and C(admin,deploy)
        name the same two users.
    type: list
    elements: str
    default: []
  service:
    description: A systemd unit to read; empty reads none.
    type: str
    default: ""
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Read the engine's state
  sgivu.deploy.host_state:
    packages: [docker.io, python3-requests]
    paths: [/etc/docker/daemon.json, /usr/local/lib/docker/cli-plugins/docker-compose]
    group: docker
    users: [deploy]
    service: docker
  register: engine
"""

RETURN = r"""
packages_missing:
  description: The packages of O(packages) that are not installed (all of them when neither dpkg-query nor rpm exists).
  returned: always
  type: list
  elements: str
paths:
  description:
    - Path -> C({exists, isdir, isreg, islnk, mode, uid, gid, sha256}) of the path itself (a symlink is not followed);
      C(mode) is octal text such as C("0644"); C(sha256) is hex for a regular file and empty otherwise. A path that
      does not exist has C(exists=false) only.
  returned: always
  type: dict
users_missing:
  description:
    - The users of O(users) that do not exist or are not supplementary members of O(group) (a missing group misses
      them all).
  returned: always
  type: list
  elements: str
users_unknown:
  description: The users of O(users) that are not accounts on the host (the passwd database has no such name).
  returned: always
  type: list
  elements: str
service:
  description: C({active_state, unit_file_state}) of O(service) as systemctl reports them; empty strings when unknown.
  returned: always
  type: dict
"""

import grp
import hashlib
import os
import pwd
import stat

from ansible.module_utils.basic import AnsibleModule


def packages_missing(module: AnsibleModule, names: list) -> list:
    """The names of ``names`` that are not installed, by dpkg-query or rpm; all of them when neither answers."""
    if not names:
        return []
    dpkg = module.get_bin_path("dpkg-query")
    if dpkg:
        # One line per known package; an unknown one goes to stderr and gets no line.
        _rc, out, _err = module.run_command([dpkg, "-W", "-f", "${Package} ${db:Status-Status}\\n", *names])
        installed = {line.split(" ", 1)[0].split(":", 1)[0] for line in out.splitlines() if line.endswith(" installed")}
        return [name for name in names if name not in installed]
    rpm = module.get_bin_path("rpm")
    if rpm:
        # By name, as dnf first matches a package (another package that only provides the name does not count).
        return [name for name in names if module.run_command([rpm, "-q", name])[0] != 0]
    return list(names)


def describe(path: str) -> dict:
    """Type, mode, owner and, for a regular file, SHA-256 of ``path`` itself: a symlink is described as a link
    (``islnk``, never ``isreg``), as ansible.builtin.copy replaces one with a file."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return {"exists": False}
    digest = ""
    if stat.S_ISREG(info.st_mode):
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                sha.update(block)
        digest = sha.hexdigest()
    return {
        "exists": True,
        "isdir": stat.S_ISDIR(info.st_mode),
        "isreg": stat.S_ISREG(info.st_mode),
        "islnk": stat.S_ISLNK(info.st_mode),
        "mode": "%04o" % stat.S_IMODE(info.st_mode),
        "uid": info.st_uid,
        "gid": info.st_gid,
        "sha256": digest,
    }


def users_missing(group: str, users: list) -> list:
    """The users that do not exist or are not supplementary members of ``group`` (what ansible.builtin.user's
    ``groups``/``append`` adds; a primary group does not count, as the user module does not count it)."""
    try:
        entry = grp.getgrnam(group)
    except KeyError:
        return list(users)
    missing = []
    for user in users:
        try:
            account = pwd.getpwnam(user)
        except KeyError:
            missing.append(user)
            continue
        if account.pw_name not in entry.gr_mem:
            missing.append(user)
    return missing


def users_unknown(users: list) -> list:
    """The users that are not accounts on the host (``getpwnam`` knows no such name)."""
    unknown = []
    for user in users:
        try:
            pwd.getpwnam(user)
        except KeyError:
            unknown.append(user)
    return unknown


def service_state(module: AnsibleModule, name: str) -> dict:
    """``ActiveState`` and ``UnitFileState`` of a systemd unit; empty strings without systemctl or the unit."""
    state = {"active_state": "", "unit_file_state": ""}
    systemctl = module.get_bin_path("systemctl")
    if not name or not systemctl:
        return state
    rc, out, _err = module.run_command([systemctl, "show", name, "--property=ActiveState,UnitFileState"])
    if rc != 0:
        return state
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    state["active_state"] = values.get("ActiveState", "")
    state["unit_file_state"] = values.get("UnitFileState", "")
    return state


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            packages=dict(type="list", elements="str", default=[]),
            paths=dict(type="list", elements="str", default=[]),
            group=dict(type="str", default=""),
            users=dict(type="list", elements="str", default=[]),
            service=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # "admin, deploy" from -e arrives as ["admin", " deploy"]: the blank is not part of the name.
    p["users"] = [user.strip() for user in p["users"] if user.strip()]
    if p["users"] and not p["group"]:
        module.fail_json(msg="host_state needs group to check users against")
    try:
        paths = {path: describe(path) for path in p["paths"]}
    except OSError as error:
        module.fail_json(msg=f"cannot read {error.filename}: {error.strerror}")
    module.exit_json(
        changed=False,
        packages_missing=packages_missing(module, p["packages"]),
        paths=paths,
        users_missing=users_missing(p["group"], p["users"]) if p["users"] else [],
        users_unknown=users_unknown(p["users"]),
        service=service_state(module, p["service"]),
    )


if __name__ == "__main__":
    main()
