# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters that judge and show the health of a running compose project.

Thin entry file: the logic lives in ``plugins/module_utils/health.py``. Each
filter is documented in its sidecar file beside this one (``health_report.yml``
and so on), which is where ``ansible-doc -t filter`` looks for it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors("catalog.CatalogError", "health.HealthError")
def health_report(containers: Any, services: Any, only: Any = None, elapsed: Optional[float] = None) -> Dict[str, Any]:
    """Return whether the selected services are ready, which are late, and one row per container."""
    return module_utils("health").health_report(containers, services, only, elapsed)


@operator_errors("health.HealthError")
def health_table(report: Any, routes: Any = None) -> List[str]:
    """Return the summary table of a health report as a list of lines."""
    return module_utils("health").health_table(report, routes)


@operator_errors("health.HealthError", TypeError, ValueError)
def health_failure(
    report: Any, logs: Any = None, routes: Any = None, lines: int = 20, project: Optional[str] = None
) -> str:
    """Return the failure message naming each late service with its last log lines."""
    return module_utils("health").failure_message(report, logs, routes, int(lines), project)


class FilterModule:
    """Health filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(health_report, health_table, health_failure)
