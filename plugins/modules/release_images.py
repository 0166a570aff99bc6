#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The stack's images on the host: what they take, and removing those no kept release uses."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: release_images
short_description: Report the disk a stack's images take on the host, or remove those no kept release uses
version_added: 2.1.0
author: SGIVU platform team
description:
  - Reads the host's release history (C(<root>/releases.json)) and keeps, by registry digest, every image
    the newest I(keep) good releases name, so a rollback to any of them needs no pull. The stack's images are
    those with a reference in a repository any recorded release used; images of other repositories are never
    touched.
  - C(pruned) removes each other image of the stack that no running container (and no container of another
    project) uses, by its references and without C(--force), with the stopped containers of this project that
    still hold it. An untagged image keeps its digest, so a tag that moved never takes a rollback target
    with it. A reference Docker refuses to remove is reported in C(errors); the module never fails for it.
  - C(listed) changes nothing and reports the same figures (what C(pruned) would remove).
options:
  root:
    description: The stack's directory on the host (where C(releases.json) is).
    type: path
    required: true
  stack:
    description: Stack (compose project) name.
    type: str
    required: true
  state:
    description: C(pruned) removes; C(listed) only reports.
    type: str
    choices: [pruned, listed]
    default: listed
  keep:
    description: Good releases whose images are kept (at least 1, the last good release).
    type: int
    default: 5
extends_documentation_fragment:
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Remove the images no release among the last five uses
  sgivu.deploy.release_images:
    root: /opt/sgivu
    stack: sgivu
    state: pruned
    keep: 5
"""

RETURN = r"""
removed:
  description: Each image removed (or, for C(listed) and in check mode, that would be) - C(refs), C(size) in bytes, C(containers).
  returned: always
  type: list
  elements: dict
errors:
  description: What Docker said for each image it refused to remove (masked).
  returned: always
  type: list
  elements: str
images:
  description: Number of the stack's images kept on the host.
  returned: always
  type: int
images_bytes:
  description: Bytes those images take (Docker's C(Size) of each; layers two images share count twice).
  returned: always
  type: int
reclaimed_bytes:
  description: Bytes of the images removed (or that would be).
  returned: always
  type: int
releases:
  description: Ids of the releases whose images are kept.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sgivu.deploy.plugins.module_utils import releases
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import ComposeError, Release, clear_docker_environment


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            root=dict(type="path", required=True),
            stack=dict(type="str", required=True),
            state=dict(type="str", choices=["pruned", "listed"], default="listed"),
            keep=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    clear_docker_environment()
    path = os.path.join(p["root"], "releases.json")
    try:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        retention = releases.image_retention(releases.load(text, p["stack"]), p["keep"])
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot decide which images to keep from {path}: {exc}")
    release = Release(module.run_command, p["root"], p["stack"], check_mode=module.check_mode or p["state"] == "listed")
    if not retention["releases"]:
        module.exit_json(changed=False, removed=[], errors=[], images=0, images_bytes=0, reclaimed_bytes=0, releases=[])
    try:
        result = release.prune_images(retention["digests"], retention["repositories"])
    except ComposeError as error:
        module.fail_json(msg=error.msg, **error.details)
    changed = p["state"] == "pruned" and bool(result["removed"])
    module.exit_json(changed=changed, releases=retention["releases"], **result)


if __name__ == "__main__":
    main()
