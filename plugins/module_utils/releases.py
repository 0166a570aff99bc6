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

__all__ = ["load", "dumps", "same_state", "append", "find", "service_rollback", "stack_rollback", "status_lines"]

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


def _pinned_ref(entry: Mapping[str, Any]) -> str:
    """A release's image of a service by digest when known (a tag can move), else as recorded."""
    return entry.get("digest") or entry["image"]


def service_rollback(history: Mapping[str, Any], service: str, release_id: Optional[str] = None) -> Dict[str, Any]:
    """Where ``service`` goes back to: ``{"release": id, "image": ref-by-digest}``.

    Without ``release_id``: the newest earlier release in which the service ran something
    other than what it runs in the latest release.
    """
    releases = history.get("releases", [])
    if not releases:
        raise ValueError("the release history is empty: there is nothing to roll back to")
    current = releases[-1]["services"].get(service)
    if current is None:
        raise ValueError(f"{service} is not in the latest release")
    if release_id:
        target = find(history, release_id)
        if service not in target["services"]:
            raise ValueError(f"{service} did not run in release {release_id}")
    else:
        target = next(
            (r for r in reversed(releases[:-1])
             if service in r["services"] and _pinned_ref(r["services"][service]) != _pinned_ref(current)),
            None,
        )
        if target is None:
            raise ValueError(f"no earlier release ran another version of {service}")
    return {"release": target["id"], "image": _pinned_ref(target["services"][service])}


def stack_rollback(history: Mapping[str, Any], release_id: Optional[str] = None) -> Dict[str, Any]:
    """The release the whole stack goes back to (the previous one by default), the images it
    ran by digest, and the dump taken just before the stack moved on from it (or None)."""
    releases = history.get("releases", [])
    target = find(history, release_id) if release_id else find(history, before=1)
    index = next(i for i, r in enumerate(releases) if r["id"] == target["id"])
    following = releases[index + 1] if index + 1 < len(releases) else None
    return {
        "release": target["id"],
        "images": {name: _pinned_ref(entry) for name, entry in target["services"].items()},
        "backup": following.get("backup") if following else None,
    }


def status_lines(history: Mapping[str, Any], containers: List[Mapping[str, Any]], newest: int = 10) -> List[str]:
    """What ``status.yml`` prints: the newest releases, then every container of the stack."""
    lines = [f"RELEASES of {history.get('stack', '?')} (newest first)",
             f"{'ID':<18} {'WHEN':<21} {'WHO':<12} {'WHAT':<40} CHANGED"]
    releases = history.get("releases", [])
    shown = list(reversed(releases))[:newest]
    for index, release in enumerate(shown):
        older = shown[index + 1] if index + 1 < len(shown) else None
        changed = sorted(
            name for name, entry in release.get("services", {}).items()
            if older is None or older.get("services", {}).get(name, {}).get("digest") != entry.get("digest")
        )
        lines.append(f"{release['id']:<18} {release.get('time', ''):<21} {str(release.get('who', ''))[:12]:<12} "
                     f"{str(release.get('purpose', ''))[:40]:<40} {', '.join(changed) if older else '(first shown)'}")
    if not releases:
        lines.append("(no release recorded)")
    lines += ["", f"{'CONTAINER':<32} {'IMAGE':<60} STATUS"]
    for container in sorted(containers, key=lambda c: (c.get("Names") or [""])[0]):
        name = (container.get("Names") or ["?"])[0].lstrip("/")
        lines.append(f"{name:<32} {container.get('Image', '?'):<60} {container.get('Status', '?')}")
    return lines
