# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that turn the catalog into a compose project and Nginx upstreams.

Thin entry file: the logic lives in ``plugins/module_utils/compose.py``; each filter is
documented in its sidecar YAML file beside this one.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors("catalog.CatalogError", ValueError)
def compose_project(
    services: Any,
    name: str,
    subnet: str,
    public_hostname: Optional[str] = None,
    restart: str = "unless-stopped",
    log_options: Optional[Dict[str, Any]] = None,
    images: Optional[Dict[str, str]] = None,
    wait_margin: int = 30,
) -> Dict[str, Any]:
    """Return the compose project of the catalog as a dict."""
    catalog = module_utils("catalog").validate_services(services)
    return module_utils("compose").render_project(catalog, name, subnet, public_hostname, restart, log_options, images,
                                                  waves=module_utils("catalog").start_waves(catalog), wait_margin=wait_margin)


@operator_errors("catalog.CatalogError", ValueError)
def compose_upstreams(services: Any, subnet: str) -> Dict[str, List[str]]:
    """Return where host Nginx reaches each public service."""
    return module_utils("compose").upstreams(module_utils("catalog").validate_services(services), subnet)


@operator_errors("catalog.CatalogError", ValueError)
def compose_images(services: Any, pins: Optional[Dict[str, Any]] = None, overrides: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Return the image each enabled service should run: catalog, host pins, overrides."""
    return module_utils("compose").effective_images(module_utils("catalog").validate_services(services), pins, overrides)


@operator_errors("catalog.CatalogError", ValueError)
def compose_live_upstreams(
    services: Any, containers: List[Dict[str, Any]], subnet: str, exclude: Optional[List[str]] = None, starting: bool = False
) -> Dict[str, List[str]]:
    """Return where Nginx should send each public service's traffic, from the running containers (``starting``:
    count a container whose health is still starting as live)."""
    return module_utils("compose").live_upstreams(
        module_utils("catalog").validate_services(services), containers, subnet, exclude, starting=bool(starting))


@operator_errors("catalog.CatalogError", ValueError)
def compose_update_targets(
    services: Any, names: List[str], version: str, current: Dict[str, str], explicit: Optional[Dict[str, str]] = None
) -> Dict[str, str]:
    """Return the image each named service moves to in an update."""
    return module_utils("compose").update_targets(module_utils("catalog").validate_services(services), names, version, current, explicit)


@operator_errors("catalog.CatalogError")
def compose_pins(services: Any, targets: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """Return host pins for updated services (image and the catalog tag it overrides)."""
    return module_utils("compose").pins_for(module_utils("catalog").validate_services(services), targets)


@operator_errors("catalog.CatalogError", KeyError)
def compose_rollout_steps(services: Any, names: List[str]) -> List[List[str]]:
    """Return the steps of a rollout: each published service alone, consecutive others together."""
    return module_utils("compose").rollout_steps(module_utils("catalog").validate_services(services), names)


class FilterModule:
    """Compose filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(compose_project, compose_upstreams, compose_images, compose_live_upstreams, compose_update_targets, compose_pins,
                       compose_rollout_steps)
