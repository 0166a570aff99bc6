# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The attributes every module of sgivu.deploy shares: full check mode, no diff."""

from __future__ import annotations


class ModuleDocFragment:
    """Documentation fragment: extends_documentation_fragment: sgivu.deploy.attributes."""

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the host.
    support: full
  diff_mode:
    description: Returns no details on what has changed (or would change) in diff mode.
    support: none
"""
