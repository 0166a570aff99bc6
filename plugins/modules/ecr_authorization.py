#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Get a registry login for Amazon ECR (a 12-hour token) through amazon.aws."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: ecr_authorization
short_description: Get a Docker registry login for Amazon ECR
version_added: 1.0.0
author: SGIVU platform team
description:
  - Calls ECR C(GetAuthorizationToken) with the amazon.aws connection options (instance role,
    profile or keys; C(endpoint_url) for moto) and returns the user, password and registry
    address that C(community.docker.docker_login) takes. Run it on the controller or the
    instance, with C(no_log), and hand the result to the login task.
  - Reports no change; it only reads.
options:
  registry_ids:
    description: Account IDs of the registries; the caller's own registry when empty.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - sgivu.deploy.attributes
"""

EXAMPLES = r"""
- name: Get an ECR login on the controller
  sgivu.deploy.ecr_authorization:
    region: us-east-1
  delegate_to: localhost
  register: ecr
  no_log: true
"""

RETURN = r"""
username:
  description: Always C(AWS).
  returned: success
  type: str
password:
  description: The token's password part (valid for 12 hours).
  returned: success
  type: str
registry:
  description: The registry endpoint, for example C(https://123456789012.dkr.ecr.us-east-1.amazonaws.com).
  returned: success
  type: str
expires_at:
  description: When the token expires (ISO 8601).
  returned: success
  type: str
"""

import base64

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing dependency

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(registry_ids=dict(type="list", elements="str", default=[])),
        supports_check_mode=True,
    )
    client = module.client("ecr")
    params = {"registryIds": module.params["registry_ids"]} if module.params["registry_ids"] else {}
    try:
        data = client.get_authorization_token(**params)["authorizationData"][0]
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        module.fail_json_aws(exc, msg="could not get an ECR authorization token")
    username, _, password = base64.b64decode(data["authorizationToken"]).decode("utf-8").partition(":")
    expires = data.get("expiresAt")
    module.exit_json(
        changed=False,
        username=username,
        password=password,
        registry=data["proxyEndpoint"],
        expires_at=expires.isoformat() if hasattr(expires, "isoformat") else str(expires),
    )


if __name__ == "__main__":
    main()
