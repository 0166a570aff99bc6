#!/usr/bin/env python3
"""Print the Debian archive URI this machine's apt is configured with.

The bench bootstraps its images from the same mirror the machine uses, read at run time,
so no mirror host name is ever written into the repository.
"""
from __future__ import annotations

import glob
import sys

EXCLUDED_SUFFIXES = ("-security", "-updates", "-backports", "-proposed-updates")


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current = {}
            continue
        if line.startswith("#") or line[0].isspace() or ":" not in line:
            continue
        key, value = line.split(":", 1)
        current[key.strip().lower()] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _is_archive(suites: list[str], components: list[str]) -> bool:
    return "main" in components and any(not s.endswith(EXCLUDED_SUFFIXES) for s in suites)


def find_mirror() -> str | None:
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path, encoding="utf-8") as handle:
            for stanza in _deb822_stanzas(handle.read()):
                if stanza.get("enabled", "yes").lower() == "no" or "deb" not in stanza.get("types", "").split():
                    continue
                if _is_archive(stanza.get("suites", "").split(), stanza.get("components", "").split()):
                    return stanza.get("uris", "").split()[0]
    for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            continue
        for line in lines:
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 4 and words[0] == "deb" and _is_archive([words[2]], words[3:]):
                return words[1]
    return None


if __name__ == "__main__":
    mirror = find_mirror()
    if not mirror:
        sys.exit("bench: no Debian archive found in /etc/apt/sources.list(.d); the bench images bootstrap from it")
    print(mirror.rstrip("/"))
