# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""Filters for the AWX job templates of the stack (``awx/apply.yml``).

Thin entry file: the logic lives in ``plugins/module_utils/awx.py``; each filter is
documented in its sidecar YAML file beside this one.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

from ansible_collections.sgivu.deploy.plugins.plugin_utils.filters import filters, module_utils, operator_errors


@operator_errors(ValueError)
def awx_job_templates(services: Any, templates: Any) -> List[Dict[str, Any]]:
    """Return the job templates with their surveys, choices taken from the catalog."""
    return module_utils("awx").job_templates(templates, services)


@operator_errors(ValueError)
def awx_survey_extra_vars(spec: Any, answers: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Return the extra vars AWX sends for these survey answers; fail as AWX would refuse them."""
    return module_utils("awx").survey_extra_vars(spec, answers)


class FilterModule:
    """AWX filters of sgivu.deploy."""

    def filters(self) -> Dict[str, Callable[..., Any]]:
        return filters(awx_job_templates, awx_survey_extra_vars)
