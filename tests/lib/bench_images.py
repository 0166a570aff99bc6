"""The bench's images and release tags, read from bench/images.yml (the one list the bench builds from).

Tests name images through this module, never by writing a ref or a tag themselves:
``NEXT`` is the release every update test moves to, ``NEVER_HEALTHY`` the release whose health
endpoint always answers 503.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "images.py"
_SPEC = importlib.util.spec_from_file_location("sgivu_bench_images", _PATH)
images = sys.modules.setdefault(_SPEC.name, importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(images)

BENCH = images.Images()
NEXT = BENCH.tag("next")
NEVER_HEALTHY = BENCH.tag("never_healthy")
# Healthy but bad (the bake window): 3 of every 10 requests answer 500; every request takes 800 ms.
FAILING = BENCH.tag("failing")
SLOW = BENCH.tag("slow")


def local_ref(name: str) -> str:
    """The ref of a local bench image (a key under ``local:`` in bench/images.yml)."""
    return BENCH.ref(name)


def pushed(name: str) -> str:
    """repository:tag in the bench registry of a local image pushed as it is."""
    return dict((BENCH.ref(k), v) for k, v in BENCH.data["pushed"].items())[BENCH.ref(name)]
