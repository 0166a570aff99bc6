# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that turn the catalog into a compose project and Nginx upstreams.

Thin entry file: the logic lives in ``plugins/module_utils/compose.py``; each filter is
documented in its sidecar YAML file beside this one.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.module_utils.catalog import CatalogError, validate_services
from ansible_collections.sgivu.deploy.plugins.module_utils.compose import release_services, render_project, upstreams


def compose_project(
    services: Any,
    name: str,
    subnet: str,
    public_hostname: Optional[str] = None,
    restart: str = "unless-stopped",
    log_options: Optional[Dict[str, Any]] = None,
    images: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """Return the compose project of the catalog as a dict."""
    try:
        return render_project(validate_services(services), name, subnet, public_hostname, restart, log_options, images)
    except (CatalogError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


def compose_upstreams(services: Any, subnet: str) -> Dict[str, List[str]]:
    """Return where host Nginx reaches each public service."""
    try:
        return upstreams(validate_services(services), subnet)
    except (CatalogError, ValueError) as exc:
        raise AnsibleFilterError(str(exc)) from exc


def compose_release_services(project: Dict[str, Any], image_infos: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Return per service the image reference it runs and that image's registry digest."""
    return release_services(project, image_infos)


class FilterModule:
    """Compose filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Any]:
        return {
            "compose_project": compose_project,
            "compose_upstreams": compose_upstreams,
            "compose_release_services": compose_release_services,
        }
