# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters over the stack's service catalog.

Thin entry file: the logic lives in ``plugins/module_utils/catalog.py``. Each
filter is documented in its sidecar file beside this one (``catalog_waves.yml``
and so on), which is where ``ansible-doc -t filter`` looks for it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors("catalog.CatalogError")
def catalog_validate(services: Any, routes: Any = None, env_invariants: Any = None) -> Dict[str, Dict[str, Any]]:
    """Return ``stack_services`` normalised; fail naming every problem."""
    return module_utils("catalog").validate_catalog(services, routes, env_invariants)


@operator_errors("catalog.CatalogError")
def catalog_waves(services: Any) -> List[List[str]]:
    """Return the enabled services grouped into start-up waves."""
    return module_utils("catalog").start_waves(services)


@operator_errors("catalog.CatalogError")
def catalog_env_keys(services: Any) -> List[str]:
    """Return the sorted env keys that enabled services require."""
    return module_utils("catalog").env_keys(services)


@operator_errors("catalog.CatalogError")
def catalog_routes(routes: Any, services: Any) -> List[Dict[str, Any]]:
    """Return the routes to enabled services, with defaults filled in. ``routes`` is ``stack_routes`` as given:
    ``None`` (``-e stack_routes=null``) fails, as it would leave Nginx with no route."""
    catalog = module_utils("catalog")
    if routes is None:
        raise catalog.CatalogError([catalog.NULL_ROUTES])
    return catalog.enabled_routes(routes, services)


def catalog_problems(services: Any, routes: Any = (), env_invariants: Any = None) -> List[str]:
    """Return every problem of the catalog (empty: none); never fails. ``routes`` is ``stack_routes`` as given:
    ``None`` is a problem (an empty list is not)."""
    catalog = module_utils("catalog")
    problems = [catalog.NULL_ROUTES] if routes is None else []
    try:
        catalog.validate_catalog(services, routes, env_invariants)
    except catalog.CatalogError as error:
        problems.extend(error.problems)
    return problems


def bake_problems(stack_bake: Any, seconds: Any = "") -> List[str]:
    """Return what is wrong with the stack's bake window and thresholds and the run's window (empty: nothing)."""
    return module_utils("catalog").stack_bake_problems(stack_bake, seconds)


class FilterModule:
    """Catalog filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(catalog_validate, catalog_problems, catalog_waves, catalog_env_keys, catalog_routes, bake_problems)
