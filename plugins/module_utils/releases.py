# -*- coding: utf-8 -*-
# Copyright: (c) 2026, SGIVU platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)
"""The release history of a stack on a host: what ran, by digest, who ran it, when, how it went.

Pure Python; of Ansible only its boolean words (``convert_bool``). The history is a JSON document
``{"stack": name, "releases": [release, ...]}``, oldest first; a release is::

    {"id": "20261123T124500Z", "time": "...", "who": "...", "purpose": "deploy",
     "status": "good", "format": 2,
     "services": {"<name>": {"image": "repo:tag@sha256:...", "digest": "repo@sha256:..."}},
     "compose_sha256": "...", "env_sha256": "...", "backup": "/path/or/null"}

``status`` is ``good`` (it passed the health checks; its compose file and env file are archived
under ``releases/<id>/`` and it can be brought back) or ``failed`` (it did not; ``error`` says
why, ``restored`` which good release was put back). The *last good* release is the newest good
one of ``format`` 2: releases recorded before that format (compose files with interpolations,
a single-quoted env file) are shown but never restored. A tag is a pointer that moves, so every
choice here compares digests.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

from ansible.module_utils.parsing.convert_bool import BOOLEANS
from ansible_collections.sgivu.deploy.plugins.module_utils.compose import (
    cut,
    digest_of,
    repository,
    shown,
    update_problems,
    update_targets,
)

__all__ = ["service_names", "run_problems", "load", "dumps", "same_state", "append", "find", "restorable", "last_good", "service_rollback",
           "stack_rollback", "status_lines", "unique_id", "event", "OUTCOMES", "image_retention"]

_STATE_KEYS = ("services", "compose_sha256", "env_sha256")
# How a change ended on a host: applied and healthy; failed and the last good release put back;
# failed and not put back (nothing had changed yet, no good release to go to, or the restore failed).
OUTCOMES = ("ok", "rolled_back", "failed")
EVENT_SCHEMA = 1
_ERROR_CHARS = 1000
FORMAT = 2


def service_names(value: Any) -> List[str]:
    """The services an operator named: ``a,b`` on the command line, a list from an AWX multiselect
    survey, or the newline-separated text older AWX versions send. Blank entries are dropped."""
    if value is None:
        return []
    if isinstance(value, str):
        items = value.replace("\n", ",").split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, (str, int, float)) for v in value):
        items = [str(v) for v in value]
    else:
        raise ValueError(f"service must be a name, names separated by commas, or a list of names, got {shown(value)}")
    # Each name once, in the order given: "a,a" is one update of a (and a one-service rollback).
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


_SECONDS = re.compile(r"^[0-9]+\Z")
# The longest wait a run takes: a day. A larger number is a typing error, and Compose's
# --wait-timeout (an int of Go) refuses one beyond its range only after the lock and the dump.
MAX_RUN_SECONDS = 86400
# The run's arguments that are whole seconds: the -e name, and what its 0 (or no value) means.
_RUN_SECONDS = (("health_timeout", "each service's own deadline"), ("lock_wait", "refuse at once while another run holds the lock"))
# A release id as plan makes it (UTC, to the second), with the -N a second release of that second gets.
_RELEASE_ID = re.compile(r"^[0-9]{8}T[0-9]{6}Z(-[0-9]+)?\Z")


def run_problems(run: Mapping[str, Any], services: Mapping[str, Mapping[str, Any]]) -> List[str]:
    """What is wrong with a run's arguments, each named as the operator gives it (the playbooks'
    ``-e`` names), one sentence without its full stop each; empty when nothing is.

    ``run`` holds what the operator gave, unconverted:

    * ``change``: deploy, update or rollback;
    * ``services``: a name, comma- or newline-separated names, or a list (service_names); an
      update's must all be services the catalog runs, as must a rollback's one;
    * ``version`` (update) and ``to_release`` (rollback): text, empty when not wanted - an image
      tag, a release id as plan makes them (``20261202T175831Z``, ``-2`` for a second one in that
      second); a null or a number is a problem, not converted;
    * ``health_timeout``, ``lock_wait``: whole seconds from 0 to MAX_RUN_SECONDS (a day), an int or
      a string of digits as ``-e`` gives them; missing, null or empty counts as 0;
    * ``restore_database``: a boolean or one of Ansible's boolean words (``true``/``false``,
      ``yes``/``no``, ...; any case); missing, null or empty counts as false.

    ``services`` is the catalog (``stack_services``). A value is shown as JSON, cut at 40
    characters (none of these is a secret). Nothing is read from a host: the playbooks check this
    before any host changes or a lock is taken.
    """
    problems = []
    for name, zero in _RUN_SECONDS:
        value = run.get(name)
        if value in (None, "") or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_RUN_SECONDS):
            continue
        if not isinstance(value, str) or not _SECONDS.match(value) or int(value) > MAX_RUN_SECONDS:
            problems.append(f"{name} must be a whole number of seconds from 0 to {MAX_RUN_SECONDS} (0: {zero}), "
                            f"got {shown(value)}")
    restore = run.get("restore_database", False)
    if restore not in (None, "") and not _is_boolean_word(restore):
        problems.append(f"restore_database must be true or false, got {shown(restore)}")
    change = run.get("change")
    try:
        names = service_names(run.get("services"))
    except ValueError as exc:
        problems.append(str(exc))
        names = []
    for key, what in (("version", "an image tag"), ("to_release", "a release id, as status.yml lists them")):
        value = run.get(key)
        if key in run and not isinstance(value, str):
            problems.append(f"{key} must be {what} (text), got {shown(value)}")
    to_release = run.get("to_release")
    if change == "rollback" and isinstance(to_release, str) and to_release and not _RELEASE_ID.match(to_release):
        problems.append("to_release must be a release id as status.yml lists them (the UTC time it was made, "
                        f"YYYYMMDDTHHMMSSZ, -2 added for a second one in that second), got {shown(to_release)}")
    if change == "update" or (change == "rollback" and len(names) == 1):
        version = run.get("version") if change == "update" else ""
        problems += update_problems(services, names, version if isinstance(version, str) else "")
    return problems


def _is_boolean_word(value: Any) -> bool:
    """Whether Ansible's ``bool`` takes ``value`` as a boolean (it takes any other word as false)."""
    word = value.strip().lower() if isinstance(value, str) else value
    try:
        return word in BOOLEANS
    except TypeError:  # unhashable: a list, a mapping
        return False


def load(text: Optional[str], stack: str) -> Dict[str, Any]:
    """Parse a history document; an empty or missing one is an empty history."""
    if not text or not text.strip():
        return {"stack": stack, "releases": []}
    history = json.loads(text)
    if not isinstance(history, dict) or not isinstance(history.get("releases"), list):
        raise ValueError("the release history is not a {stack, releases} document")
    for number, release in enumerate(history["releases"], 1):
        damage = _damage(release)
        if damage:
            raise ValueError(f"release {number} of {len(history['releases'])} in the history is damaged: {damage}")
    return history


def _damage(release: Any) -> str:
    """What makes one entry of releases.json unusable (every reader takes these for granted), or ""."""
    if not isinstance(release, dict):
        return f"it is {type(release).__name__}, not a release"
    if not isinstance(release.get("id"), str) or not release["id"]:
        return f"its id is {shown(release.get('id'))}, not text"
    if not isinstance(release.get("status", "good"), str):
        return f"release {release['id']}'s status is {shown(release['status'])}, not text"
    services = release.get("services", {})
    if not isinstance(services, dict) or not all(isinstance(s, dict) for s in services.values()):
        return f"release {release['id']}'s services are not a map of service to image"
    if restorable(release) and "services" not in release:
        return f"release {release['id']} is good but names no services"
    return ""


def dumps(history: Mapping[str, Any]) -> str:
    return json.dumps(history, indent=2, sort_keys=True) + "\n"


def same_state(a: Optional[Mapping[str, Any]], b: Mapping[str, Any]) -> bool:
    """Whether two releases describe the same running state (ignoring who and when)."""
    return a is not None and all(a.get(k) == b.get(k) for k in _STATE_KEYS)


def restorable(release: Mapping[str, Any]) -> bool:
    """A good release this collection can bring back from its archive."""
    return release.get("status", "good") == "good" and release.get("format") == FORMAT


def _not_restorable(history: Mapping[str, Any], release: Mapping[str, Any]) -> str:
    """Why a release cannot be gone back to, and which ones can."""
    why = ("it failed (it never passed its health checks) and was undone" if release.get("status") == "failed"
           else "it was recorded by a version before 2.0, whose files this version cannot restore")
    good = [r["id"] for r in history.get("releases", []) if restorable(r)]
    return "release {0} cannot be gone back to: {1}. The good releases are: {2}".format(
        release.get("id"), why, ", ".join(good) or "none")


def last_good(history: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The newest restorable release, or None."""
    return next((dict(r) for r in reversed(history.get("releases", [])) if restorable(r)), None)


def unique_id(history: Mapping[str, Any], wanted: str) -> str:
    """``wanted``, or ``wanted-2``, ``-3``... when a release of that id exists (two runs in one second)."""
    ids = {r.get("id") for r in history.get("releases", [])}
    candidate, n = wanted, 1
    while candidate in ids:
        n += 1
        candidate = f"{wanted}-{n}"
    return candidate


def append(history: Dict[str, Any], release: Mapping[str, Any], keep: int) -> List[Dict[str, Any]]:
    """Append a release unless a good one repeats the last good state; return the releases pruned."""
    releases = history["releases"]
    if release.get("status", "good") == "good" and same_state(last_good(history), release):
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


def plan_targets(
    history: Mapping[str, Any],
    change: str,
    names: List[str],
    release_id: str,
    version: str,
    services: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, str],
    restore_database: bool = False,
) -> Dict[str, Any]:
    """What a change moves one host to, read from that host's release history, or why it cannot.

    Returns ``{"images", "from", "backup", "problem"}``:

    * ``images``: the image each service moves to - an ``update``'s named services (new ``version``,
      or the tag each runs, re-pulled; update_targets), a one-service ``rollback``'s service (by
      digest; service_rollback); empty for a ``deploy`` and a whole-stack ``rollback``;
    * ``from``: the release id a whole-stack ``rollback`` goes back to (stack_rollback), else "";
    * ``backup``: the dump taken just before the stack moved on from that release, or None;
    * ``problem``: "" or, when the history cannot take the change (``release_id`` not recorded or
      not restorable, no earlier good release, a service pinned by digest alone with no version, a
      whole-stack rollback with ``restore_database`` to a release that has no dump), one sentence for
      the operator; ``images`` is then empty and ``from`` "".

    ``names`` are the services the operator named (service_names), ``release_id`` the rollback's
    ``to_release`` ("" for the default), ``services`` the catalog and ``current`` the image each
    service runs (catalog and host pins). The plan asserts ``problem`` is empty under the deploy
    lock: a refusal here is the operator's message, not a failed template.
    """
    targets: Dict[str, Any] = {"images": {}, "from": "", "backup": None, "problem": ""}
    try:
        if change == "update":
            targets["images"] = update_targets(services, names, version, current)
        elif change == "rollback" and names:
            targets["images"] = {names[0]: service_rollback(history, names[0], release_id or None)["image"]}
        elif change == "rollback":
            stack = stack_rollback(history, release_id or None)
            if restore_database and not stack["backup"]:
                raise ValueError(f"restore_database: release {stack['release']} has no dump to restore (one is taken just "
                                 "before the stack moves on from a release, when a database service runs); roll back "
                                 "without restore_database to keep the data as it is")
            targets.update({"from": stack["release"], "backup": stack["backup"]})
    except ValueError as exc:
        targets["problem"] = str(exc)  # nothing was assigned: each branch assigns only once it has its answer
    except (KeyError, TypeError, AttributeError) as exc:  # a history load() let through: still the operator's words
        targets["problem"] = (f"the release history of this host cannot take this change ({type(exc).__name__}: "
                              f"{cut(str(exc))}); `status.yml` shows it as recorded")
    return targets


def _pinned_ref(entry: Mapping[str, Any]) -> str:
    """A release's image of a service, pinned: ``repo:tag@sha256:...`` as recorded (the tag kept, so a
    later re-pull knows which tag), else ``repo@sha256:...``, else the reference as recorded."""
    image = entry.get("image") or ""
    if "@" in image:
        return image
    return entry.get("digest") or image


def _digest(entry: Mapping[str, Any]) -> str:
    """What tells two versions apart: the registry digest (a tag can move)."""
    return (entry.get("digest") or "").rsplit("@", 1)[-1] or _pinned_ref(entry)


def service_rollback(history: Mapping[str, Any], service: str, release_id: Optional[str] = None) -> Dict[str, Any]:
    """Where ``service`` goes back to: ``{"release": id, "image": ref-by-digest}``.

    Without ``release_id``: the newest earlier good release in which the service ran another
    digest than it runs in the last good release (a re-pushed tag counts as another version).
    """
    current_release = last_good(history)
    if current_release is None:
        raise ValueError("the release history holds no good release: there is nothing to roll back from")
    current = current_release["services"].get(service)
    if current is None:
        raise ValueError(f"{service} is not in the last good release {current_release['id']}")
    if release_id:
        target = find(history, release_id)
        if not restorable(target):
            raise ValueError(_not_restorable(history, target))
        if service not in target["services"]:
            raise ValueError(f"{service} did not run in release {release_id}")
    else:
        good = [r for r in history.get("releases", []) if restorable(r)]
        target = next(
            (r for r in reversed(good[:-1])
             if service in r["services"] and _digest(r["services"][service]) != _digest(current)),
            None,
        )
        if target is None:
            raise ValueError(f"no earlier good release ran another digest of {service}")
    return {"release": target["id"], "image": _pinned_ref(target["services"][service])}


def stack_rollback(history: Mapping[str, Any], release_id: Optional[str] = None) -> Dict[str, Any]:
    """The good release the whole stack goes back to (the one before the last good by default),
    the images it ran by digest, and the dump taken just before the stack moved on from it (or None)."""
    releases = history.get("releases", [])
    good = [r for r in releases if restorable(r)]
    if release_id:
        target = find(history, release_id)
        if not restorable(target):
            raise ValueError(_not_restorable(history, target))
    else:
        if len(good) < 2:
            raise ValueError(f"the history holds {len(good)} good release(s) this version can restore; "
                             "there is no earlier one to go back to")
        target = good[-2]
    index = next(i for i, r in enumerate(releases) if r["id"] == target["id"])
    following = next((r for r in releases[index + 1:] if r.get("backup")), None)
    return {
        "release": target["id"],
        "images": {name: _pinned_ref(entry) for name, entry in target["services"].items()},
        "backup": following.get("backup") if following else None,
    }


def bake_line(service: str, result: Mapping[str, Any]) -> str:
    """A service's bake in a release's history (sgivu.deploy.release_bake): verdict and figures."""
    p99 = result.get("p99_ms")
    return (f"{service} {result.get('verdict', '?')} after {result.get('watched', '?')} s "
            f"({result.get('requests', 0)} requests, {result.get('success_rate', '-')} % below 500, "
            f"p99 {'-' if p99 is None else p99} ms)")


def status_lines(history: Mapping[str, Any], containers: List[Mapping[str, Any]], newest: int = 10) -> List[str]:
    """What ``status.yml`` prints: the newest releases, then every container of the stack."""
    good = last_good(history)
    lines = [f"RELEASES of {history.get('stack', '?')} (newest first; last good: {good['id'] if good else 'none'})",
             f"{'ID':<20} {'WHEN':<21} {'WHO':<12} {'STATUS':<8} {'WHAT':<40} CHANGED"]
    releases = history.get("releases", [])
    # CHANGED: what a release moved from the good release the host ran before it (a failed one in
    # between changed nothing that stayed), over the whole history, not the rows shown.
    bases: List[Optional[Mapping[str, Any]]] = []
    good_before: Optional[Mapping[str, Any]] = None
    for release in releases:
        bases.append(good_before)
        if release.get("status", "good") == "good":
            good_before = release
    listed = list(reversed(list(zip(releases, bases))))[:newest]
    for release, older in listed:
        changed = sorted(
            name for name, entry in release.get("services", {}).items()
            if older is None or older.get("services", {}).get(name, {}).get("digest") != entry.get("digest")
        )
        status = release.get("status", "good") if release.get("format") == FORMAT else "legacy"
        lines.append(f"{release['id']:<20} {release.get('time', ''):<21} {str(release.get('who', ''))[:12]:<12} "
                     f"{status:<8} {str(release.get('purpose', ''))[:40]:<40} "
                     f"{(', '.join(changed) or _unchanged_images(release, older)) if older else '(first good release)'}")
        if release.get("status") == "failed":
            lines.append(f"{'':<20} failed: {str(release.get('error', ''))[:200]}"
                         + (f" -> restored {release['restored']}" if release.get("restored") else ""))
        if isinstance(release.get("bake"), Mapping) and release["bake"]:
            lines.append(f"{'':<20} bake: " + "; ".join(bake_line(name, result) for name, result in sorted(release["bake"].items())))
    if not releases:
        lines.append("(no release recorded)")
    lines += ["", f"{'CONTAINER':<32} {'IMAGE':<60} STATUS"]
    for container in sorted(containers, key=lambda c: (c.get("Names") or [""])[0]):
        name = (container.get("Names") or ["?"])[0].lstrip("/")
        lines.append(f"{name:<32} {container.get('Image', '?'):<60} {container.get('Status', '?')}")
    return lines


def _unchanged_images(release: Mapping[str, Any], older: Mapping[str, Any]) -> str:
    """What status.yml's CHANGED says of a release that runs the images of the one before it: which
    of its compose project and env file differ (each recorded as a SHA-256), if any."""
    differs = [what for key, what in (("compose_sha256", "compose project"), ("env_sha256", "env values"))
               if release.get(key) and older.get(key) and release.get(key) != older.get(key)]
    return "({0} only)".format(" and ".join(differs)) if differs else "(same images, project and env)"


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def event(release: Mapping[str, Any], outcome: str, host: str, stack: str, started: str, finished: str,
          error: Optional[str] = None, restored: Optional[str] = None, run: Optional[Mapping[str, Any]] = None
          ) -> Dict[str, Any]:
    """The notification of one change on one host: a flat JSON-ready dict, no secret in it.

    ``release`` is the record the history gets (id, who, purpose, services by digest); ``started``
    and ``finished`` are ISO 8601 times (UTC when no offset); ``error`` is the operator's message
    of a failed change (already masked by the modules that made it), cut to 1000 characters;
    ``restored`` the good release put back; ``run`` what identifies the controller's run (AWX job
    id and template). Raises ValueError on an unknown outcome or a time that is not ISO 8601.
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    begin, end = _instant(started), _instant(finished)
    services = release.get("services") or {}
    text = (error or "").strip()
    return {
        "event": "sgivu.deploy.release",
        "schema": EVENT_SCHEMA,
        "stack": stack,
        "host": host,
        "outcome": outcome,
        "release": release.get("id"),
        "purpose": release.get("purpose"),
        "who": release.get("who"),
        "images": {name: entry.get("image") for name, entry in sorted(services.items())},
        "restored": restored or None,
        "started": begin.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": end.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(max((end - begin).total_seconds(), 0.0), 1),
        "error": (text[: _ERROR_CHARS - 3] + "...") if len(text) > _ERROR_CHARS else (text or None),
        "run": {k: v for k, v in sorted((run or {}).items()) if v not in (None, "")},
    }


def image_retention(history: Mapping[str, Any], keep: int) -> Dict[str, List[str]]:
    """What image pruning keeps: the digests of the newest ``keep`` restorable releases.

    Returns ``{"digests": ["repo@sha256:...", ...], "repositories": [...], "releases": [ids]}``:
    every image a kept release names, by digest, and every repository any recorded release
    used (the images of the stack; an image of another repository is never the stack's to
    remove). Failed releases are never rolled back to, so they keep nothing. Raises ValueError
    when ``keep`` is below 1: pruning must always leave the last good release's images.
    """
    if int(keep) < 1:
        raise ValueError(f"image pruning keeps at least the last good release (keep >= 1), not {keep}")
    good = [r for r in history.get("releases", []) if restorable(r)]
    kept = good[-int(keep):]
    digests, repositories = set(), set()
    for release in history.get("releases", []):
        for entry in (release.get("services") or {}).values():
            image = entry.get("image") or ""
            if image:
                repositories.add(repository(image))
    for release in kept:
        for entry in (release.get("services") or {}).values():
            image = entry.get("image") or ""
            digest = entry.get("digest") or digest_of(image)
            if digest:
                digests.add(digest)
            elif image:  # no digest recorded (a loaded or locally built image): keep it by its tag
                digests.add(image if ":" in image.rpartition("/")[2] else image + ":latest")
    return {"digests": sorted(digests), "repositories": sorted(repositories), "releases": [r["id"] for r in kept]}
