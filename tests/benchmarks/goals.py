#!/usr/bin/env python3
"""Benchmark: every row of the speed goals (issue 10) in one run, each beside its baseline.

Runs the deploy, update and fleet benchmarks in turn (each prints its own section), then the
goal table: a no-op deploy.yml on one host; a no-op on three hosts against one; deploy.yml with
the stack down against a raw `docker compose up -d --wait`; update.yml of the gateway against the
scripted start-first swap (tests/benchmarks/start_first_swap.sh); a rolling update on three hosts
against one. With --ci it also times `bash .ci/run` on a clean clone of this checkout (about
40 minutes more). Figures only: nothing here asserts on a duration.

Run it with `bench/benchmark goals [--ci]`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy  # noqa: E402  (tests/benchmarks is not a package)
import fleet  # noqa: E402
import update  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ci_minutes() -> float:
    """`bash .ci/run` on a clean clone beside this checkout (so ../shared resolves), in minutes."""
    clone = tempfile.mkdtemp(prefix="ci-", dir=os.path.dirname(ROOT))
    subprocess.run(["git", "clone", "--quiet", ROOT, clone], check=True)
    start = time.monotonic()
    done = subprocess.run(["bash", ".ci/run"], cwd=clone, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    minutes = (time.monotonic() - start) / 60
    subprocess.run(["rm", "-rf", clone], check=False)
    if done.returncode != 0:
        print(f"  (the CI run failed after {minutes:.1f} min)")
    return minutes


def main() -> None:
    d = deploy.main()
    u = update.main()
    f = fleet.main()
    rows = [
        ("no-op deploy.yml, one host", f"{d['noop']:.1f} s", "", "<= 15 s"),
        ("no-op deploy.yml, 3 hosts / 1 host", f"{f['noop3']:.1f} s / {f['noop1']:.1f} s",
         f"{f['noop3'] / f['noop1']:.2f} x", "<= 1.3 x"),
        ("stack down: deploy.yml / raw compose up -d --wait", f"{d['down']:.1f} s / {d['raw_up']:.1f} s",
         f"{d['down'] / d['raw_up']:.2f} x", "<= 1.5 x"),
        ("gateway: update.yml / scripted start-first swap", f"{u['update']:.1f} s / {u['scripted_swap']:.1f} s",
         f"{u['update'] / u['scripted_swap']:.2f} x", "<= 1.5 x"),
        ("  failed requests during each", f"{u['update_failed']} / {u['scripted_failed']}", "", "0"),
        ("rolling update, 3 hosts / 1 host", f"{f['update3']:.1f} s / {f['update1']:.1f} s",
         f"{f['update3'] / f['update1']:.2f} x", "<= 2.2 x"),
    ]
    if "--ci" in sys.argv[1:]:
        rows.append(("bash .ci/run on a clean clone", f"{ci_minutes():.1f} min", "", "<= 35 min"))
    print()
    print(f"Speed goals on this bench ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}")
    print(f"  {'measure':<52} {'figures':>22} {'ratio':>8} {'goal':>10}")
    for label, figures, ratio, goal in rows:
        print(f"  {label:<52} {figures:>22} {ratio:>8} {goal:>10}")


if __name__ == "__main__":
    main()
