"""A catalog an operator deploys next: the inventory's, with a public service it adds and routes.

Extra vars replace a variable whole, so the deploy is given the inventory's ``stack_services`` and
``stack_routes`` with the new service and its route added (their templates, such as
``{{ stack_registry }}``, are templated by the run as the inventory's are).
"""
from __future__ import annotations

import json

# The public service the catalog adds, and the path Nginx would route to it.
EXTRA = "sgivu-extra"
EXTRA_PATH = "/extra/"


def with_public_service(ansible_vars: dict, service: dict) -> str:
    """The ``-e`` JSON of a deploy whose catalog adds ``service`` as EXTRA, routed at EXTRA_PATH."""
    return json.dumps({
        "stack_services": {**ansible_vars["stack_services"], EXTRA: {"public": True, **service}},
        "stack_routes": [*ansible_vars["stack_routes"], {"path": EXTRA_PATH, "match": "prefix", "service": EXTRA}],
    })


def upstream_named(nginx_config: str) -> bool:
    """Whether Nginx's whole configuration (``nginx -T``) names EXTRA or routes EXTRA_PATH."""
    return EXTRA.replace("-", "_") in nginx_config or EXTRA in nginx_config or f"location {EXTRA_PATH}" in nginx_config
