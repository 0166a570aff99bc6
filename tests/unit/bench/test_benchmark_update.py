"""bench/benchmark update: reading where update.yml spent its time (ansible.posix.profile_tasks)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "benchmarks" / "update.py"


@pytest.fixture(scope="module")
def update():
    spec = importlib.util.spec_from_file_location("benchmark_update", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What the callback prints after the play recap (ansible.posix 1.x/2.x), a task name with dashes of its own.
RECAP = """\
PLAY RECAP *********************************************************************
sgivu-update-deb12         : ok=97   changed=9    unreachable=0    failed=0    skipped=60   rescued=0    ignored=0


TASKS RECAP ********************************************************************
Wednesday 02 December 2026  09:17:25 +0000 (0:00:00.050)       0:00:39.682 ****
===============================================================================
sgivu.deploy.compose_rollout : replace | Start the new containers -- beside the old ones --- 11.27s
sgivu.deploy.stack_backup : Dump every database -------------------------- 3.10s
Gathering Facts ---------------------------------------------------------- 0.95s
"""


def test_the_recap_gives_each_task_and_its_seconds_slowest_first(update):
    assert update.slowest_tasks("TASK [x] ****\nok: [h]\n" + RECAP) == [
        ("sgivu.deploy.compose_rollout : replace | Start the new containers -- beside the old ones", 11.27),
        ("sgivu.deploy.stack_backup : Dump every database", 3.10),
        ("Gathering Facts", 0.95),
    ]


def test_a_name_too_long_for_the_padding_is_read_too(update):
    # As profile_tasks printed it on the bench (2026-12-03): the wave start, missed while the pattern wanted "---".
    long = ("sgivu.deploy.compose_stack : Start the planned release in start-up order, health-gated -- 11.43s\n"
            "sgivu.deploy.compose_rollout : replace | Start the new containers beside the running ones, healthy first - 102.50s\n"
            "sgivu.deploy.stack_release : Watch the replaced public services through Nginx for their bake window  1000.00s\n")
    assert update.slowest_tasks(RECAP + long)[-3:] == [
        ("sgivu.deploy.compose_stack : Start the planned release in start-up order, health-gated", 11.43),
        ("sgivu.deploy.compose_rollout : replace | Start the new containers beside the running ones, healthy first", 102.5),
        ("sgivu.deploy.stack_release : Watch the replaced public services through Nginx for their bake window", 1000.0),
    ]


def test_a_run_without_the_recap_gives_nothing(update):
    assert update.slowest_tasks(RECAP.split("TASKS RECAP")[0]) == []


def test_the_last_recap_in_the_output_is_the_one_read(update):
    earlier = RECAP.replace("11.27s", "99.00s")
    assert update.slowest_tasks(earlier + RECAP)[0][1] == 11.27


def test_where_the_time_went_shows_the_slowest_then_the_rest_and_each_role(update):
    tasks = [(f"sgivu.deploy.compose_rollout : step {i}", 2.0) for i in range(update.SHOWN_TASKS)]
    tasks += [("sgivu.deploy.stack_lock : Take the lock", 0.5), ("Gathering Facts", 0.25), ("sgivu.deploy.nginx : Reload", 0.25)]
    lines = update.time_spent(30.0, tasks)
    assert lines[0] == f"  where update.yml's 30.0 s went, its {update.SHOWN_TASKS} slowest tasks ({2.0 * update.SHOWN_TASKS:.1f} s):"
    assert lines[update.SHOWN_TASKS + 1].split() == ["the", "other", "3", "tasks,", "0.5", "s", "at", "most", "each", "1.0", "s"]
    assert lines[-2] == (f"  by role (tasks, seconds): compose_rollout {update.SHOWN_TASKS}, {2.0 * update.SHOWN_TASKS:.1f} s, "
                         "stack_lock 1, 0.5 s, the playbook 1, 0.2 s, nginx 1, 0.2 s")
    assert lines[-1] == f"  outside any task (start-up, forks, the recap): {30.0 - 2.0 * update.SHOWN_TASKS - 1.0:.1f} s"


def test_where_the_time_went_names_the_run_it_read(update):
    # bench/benchmark deploy reads its no-op and stack-down runs the same way.
    lines = update.time_spent(16.0, [("sgivu.deploy.docker_host : state | Read", 0.8)], "the no-op deploy.yml")
    assert lines[0] == "  where the no-op deploy.yml's 16.0 s went, its 1 slowest tasks (0.8 s):"


def test_where_the_time_went_is_not_said_without_a_recap(update):
    assert update.time_spent(30.0, []) == []


class Watched:
    """A finished probe as row() reads it: its outcomes and the failed ones."""

    def __init__(self, results, failures):
        self.results, self.failures = results, failures


def test_a_row_gives_the_time_and_the_failed_requests(update):
    assert update.row("update.yml", 39.64, Watched([1] * 617, [])) == (
        "  update.yml" + " " * 48 + "    39.6 s   failed    0 of   617 requests")


def test_a_row_with_a_post_probe_counts_gets_and_posts_apart(update):
    line = update.row("sgivu-user: pull + up -d", 6.7, Watched([1] * 348, [1] * 324), Watched([1] * 340, [1] * 300))
    assert line.endswith("6.7 s   failed  324 of   348 GETs,  300 of   340 POSTs")


def test_the_inventory_is_this_checkouts_even_when_another_clone_ran_the_scenario_later(update, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    ours = tmp_path / ".ansible/tmp/molecule.AAAA.fleet/inventory"
    clone = tmp_path / ".ansible/tmp/molecule.ZZZZ.fleet/inventory"
    for inventory, root in ((ours, update.ROOT), (clone, str(tmp_path / "ci45"))):
        inventory.mkdir(parents=True)
        (inventory / "group_vars").symlink_to(os.path.join(root, "inventories/bench/group_vars"))
    os.utime(ours, (1, 1))  # the clone's is the newer one
    assert update.molecule_inventory("fleet") == str(ours)
    with pytest.raises(SystemExit, match="cannot find the Molecule inventory of the default scenario"):
        update.molecule_inventory("default")
