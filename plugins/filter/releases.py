# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters over the release history a host keeps (``/opt/<stack>/releases.json``).

Thin entry file: the logic lives in ``plugins/module_utils/releases.py``; each filter is
documented in its sidecar YAML file beside this one.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors(ValueError)
def release_service_names(value: Any) -> List[str]:
    """Return the service names an operator gave (comma- or newline-separated text, or a list)."""
    return module_utils("releases").service_names(value)


def release_run_problems(run: Dict[str, Any], services: Dict[str, Any]) -> List[str]:
    """Return what is wrong with a run's arguments (-e names), for one message before any host changes."""
    return module_utils("releases").run_problems(run, services)


def release_plan_targets(history: Dict[str, Any], change: str, services: List[str], release_id: str, version: str,
                         catalog: Dict[str, Any], current: Dict[str, str], restore_database: bool = False) -> Dict[str, Any]:
    """Return what a change moves a host to, read from its release history, or the problem (never raises)."""
    return module_utils("releases").plan_targets(history, change, services, release_id, version, catalog, current, restore_database)


@operator_errors(ValueError)
def release_service_rollback(history: Dict[str, Any], service: str, release_id: Optional[str] = None) -> Dict[str, Any]:
    """Return where a service goes back to: the release and its image by digest."""
    return module_utils("releases").service_rollback(history, service, release_id or None)


@operator_errors(ValueError)
def release_stack_rollback(history: Dict[str, Any], release_id: Optional[str] = None) -> Dict[str, Any]:
    """Return the release the stack goes back to, its images by digest and the dump to restore."""
    return module_utils("releases").stack_rollback(history, release_id or None)


@operator_errors(ValueError)
def release_event(release: Dict[str, Any], outcome: str, host: str, stack: str, started: str, finished: str,
                  error: Optional[str] = None, restored: Optional[str] = None,
                  run: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return the notification of one change on one host (outcome, release, digests, who, duration)."""
    return module_utils("releases").event(release, outcome, host, stack, started, finished, error, restored, run)


def release_status(history: Dict[str, Any], containers: List[Dict[str, Any]], newest: int = 10) -> List[str]:
    """Return the lines status.yml prints: newest releases, then the stack's containers."""
    return module_utils("releases").status_lines(history, containers, newest)


class FilterModule:
    """Release history filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(release_event, release_plan_targets, release_run_problems, release_service_names, release_service_rollback, release_stack_rollback, release_status)
