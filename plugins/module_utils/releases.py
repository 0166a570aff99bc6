# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The release history of a stack on a host: what ran, by digest, who ran it, when.

Pure Python, no Ansible imports. The history is a JSON document
``{"stack": name, "releases": [release, ...]}``, oldest first; a release is::

    {"id": "20261123T124500Z", "time": "...", "who": "...", "purpose": "deploy",
     "services": {"<name>": {"image": "repo:tag", "digest": "repo@sha256:..."}},
     "compose_sha256": "...", "env_sha256": "...", "backup": "/path/or/null"}
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Mapping, Optional

__all__ = ["load", "dumps", "same_state", "append", "find"]

_STATE_KEYS = ("services", "compose_sha256", "env_sha256")


def load(text: Optional[str], stack: str) -> Dict[str, Any]:
    """Parse a history document; an empty or missing one is an empty history."""
    if not text or not text.strip():
        return {"stack": stack, "releases": []}
    history = json.loads(text)
    if not isinstance(history, dict) or not isinstance(history.get("releases"), list):
        raise ValueError("the release history is not a {stack, releases} document")
    return history


def dumps(history: Mapping[str, Any]) -> str:
    return json.dumps(history, indent=2, sort_keys=True) + "\n"


def same_state(a: Optional[Mapping[str, Any]], b: Mapping[str, Any]) -> bool:
    """Whether two releases describe the same running state (ignoring who and when)."""
    return a is not None and all(a.get(k) == b.get(k) for k in _STATE_KEYS)


def append(history: Dict[str, Any], release: Mapping[str, Any], keep: int) -> List[Dict[str, Any]]:
    """Append a release unless it repeats the latest state; return the releases pruned."""
    releases = history["releases"]
    if same_state(releases[-1] if releases else None, release):
        return []
    if any(r.get("id") == release["id"] for r in releases):
        raise ValueError(f"release id {release['id']} is already in the history")
    releases.append(dict(release))
    pruned = releases[:-keep] if keep > 0 and len(releases) > keep else []
    del releases[: len(pruned)]
    return pruned


def find(history: Mapping[str, Any], release_id: Optional[str] = None, before: int = 0) -> Dict[str, Any]:
    """A release by id, or the one ``before`` steps back from the latest (0 = latest)."""
    releases = history.get("releases", [])
    if release_id:
        for release in releases:
            if release.get("id") == release_id:
                return release
        known = ", ".join(r.get("id", "?") for r in releases) or "none"
        raise ValueError(f"release {release_id} is not in the history (recorded: {known})")
    if before >= len(releases):
        raise ValueError(f"the history holds {len(releases)} release(s); there is no release {before} back")
    return releases[-1 - before]
