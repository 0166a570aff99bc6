# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters over the nginx role's site settings.

Thin entry file: the logic lives in ``plugins/module_utils/nginx_site.py``. Each filter is
documented in its sidecar file beside this one (``nginx_site_problems.yml``), which is where
``ansible-doc -t filter`` looks for it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils


def nginx_site_problems(settings: Any) -> List[str]:
    """Return every problem of the site settings (empty: none); never fails."""
    if not isinstance(settings, dict):
        return ["the nginx site settings must be a mapping of the role's variables, got {0}.".format(type(settings).__name__)]
    return module_utils("nginx_site").site_problems(settings)


class FilterModule:
    """Nginx filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(nginx_site_problems)
