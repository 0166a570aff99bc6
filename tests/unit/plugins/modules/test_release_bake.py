"""The bake module, run as Ansible runs it, on a log that a thread writes as Nginx would while it watches."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import ansible_cli  # tests/lib
import pytest

NEW, OLD = "127.0.0.1:32771", "127.0.0.1:8080"


class Traffic:
    """Appends one log line per request to the upstream log, `rate` a second, while it runs."""

    def __init__(self, log: Path, statuses: list, seconds: str = "0.003", rate: int = 50, address: str = NEW) -> None:
        self.log, self.statuses, self.seconds, self.rate, self.address = log, statuses, seconds, rate, address
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            status = self.statuses[n % len(self.statuses)]
            entry = {"time": time.time(), "upstream": self.address, "status": status, "upstream_status": str(status),
                     "upstream_time": self.seconds, "request_time": float(self.seconds)}
            with open(self.log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry) + "\n")
            n += 1
            self.stop.wait(1 / self.rate)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "sgivu.upstream.log"
    # Requests before the watch began (an old release's errors) never count.
    path.write_text("".join(json.dumps({"time": 1, "upstream": NEW, "status": 500, "upstream_time": "0.001",
                                        "request_time": 0.001}) + "\n" for _ in range(100)), encoding="utf-8")
    return path


def bake(log: Path, seconds: int, **args) -> dict:
    return ansible_cli.run_module("release_bake", {"log": str(log), "upstreams": {"sgivu-gateway": [NEW]},
                                                   "seconds": seconds, "poll_interval": 1, **args})


def test_a_release_that_fails_a_third_of_its_requests_is_failed_before_its_window_ends(log):
    started = time.monotonic()
    with Traffic(log, [200, 200, 500]):
        result = bake(log, 30)
    assert result.get("failed"), result
    assert time.monotonic() - started < 20, "the bake waited out its window"
    gateway = result["bake"]["sgivu-gateway"]
    assert gateway["verdict"] == "failed" and gateway["requests"] >= 50 and 60 < gateway["success_rate"] < 72
    assert result["msg"].startswith("sgivu-gateway failed its bake after ")
    assert "requests answered 5xx), below 99.0 %" in result["msg"]


def test_a_slow_release_is_failed_on_its_p99(log):
    with Traffic(log, [200], seconds="0.812"):
        result = bake(log, 30, defaults={"min_requests": 10})
    assert result.get("failed") and result["bake"]["sgivu-gateway"]["p99_ms"] == 812
    assert "p99 latency 812 ms, above 500 ms" in result["msg"]


def test_a_good_release_passes_once_its_window_has_run(log):
    started = time.monotonic()
    with Traffic(log, [200, 404]):
        result = bake(log, 4)
    assert not result.get("failed"), result
    assert time.monotonic() - started >= 4
    gateway = result["bake"]["sgivu-gateway"]
    assert (gateway["verdict"], gateway["success_rate"], gateway["watched"]) == ("passed", 100.0, 4)
    assert result["summary"][0].startswith("sgivu-gateway passed its bake of 4 s: ")


def test_traffic_to_the_old_release_is_not_the_new_ones(log):
    with Traffic(log, [500], address=OLD):
        result = bake(log, 3)
    assert not result.get("failed") and result["bake"]["sgivu-gateway"]["verdict"] == "unjudged"


def test_a_window_of_zero_watches_nothing(log):
    started = time.monotonic()
    result = bake(log, 0)
    assert result["bake"] == {} and not result.get("failed") and time.monotonic() - started < 15


def test_the_catalog_sets_a_service_s_own_window(log):
    result = ansible_cli.run_module("release_bake", {"log": str(log), "upstreams": {"sgivu-gateway": [NEW]},
                                                     "catalog": {"sgivu-gateway": {"bake": {"seconds": 0}}},
                                                     "defaults": {"seconds": 600}})
    assert result["bake"] == {} and not result.get("failed")


def test_a_bad_threshold_is_named_before_anything_is_watched(log):
    result = bake(log, 5, defaults={"max_p99_ms": "fast"})
    assert result.get("failed") and result["msg"] == "the bake max_p99_ms of sgivu-gateway must be a whole number >= 1, got 'fast'"


def test_check_mode_watches_nothing(log):
    result = ansible_cli.run_module("release_bake", {"log": str(log), "upstreams": {"sgivu-gateway": [NEW]}, "seconds": 60},
                                    check=True)
    assert result["bake"] == {} and not result.get("failed")


def test_an_old_container_kept_as_backup_is_not_the_new_release(log):
    with Traffic(log, [500], address=OLD):
        result = ansible_cli.run_module("release_bake", {"log": str(log), "seconds": 3, "poll_interval": 1,
                                                         "upstreams": {"sgivu-gateway": [NEW, f"{OLD} backup"]}})
    assert not result.get("failed") and result["bake"]["sgivu-gateway"]["requests"] == 0


def test_a_site_without_the_upstream_log_is_not_judged_and_says_so(tmp_path):
    result = bake(tmp_path / "none.log", 2)
    assert not result.get("failed") and result["bake"]["sgivu-gateway"]["verdict"] == "unjudged"
    assert any("does not exist: the site predates the bake window" in w for w in result.get("warnings", []))


def _served(log: Path, count: int, status: int = 500) -> None:
    with open(log, "a", encoding="utf-8") as handle:
        for _ in range(count):
            handle.write(json.dumps({"time": 2, "upstream": NEW, "status": status, "upstream_time": "0.002",
                                     "request_time": 0.002}) + "\n")


def test_requests_the_release_served_before_its_window_count_from_the_offset(log):
    """The caller takes the log's size before the swap: what the new release answered while the stack's
    health was checked and the host went back in counts, and what came before the swap does not."""
    before_swap = log.stat().st_size
    _served(log, 60)  # 5xx answered by the new release before the window began
    counted = bake(log, 2, offset=before_swap)
    assert counted.get("failed"), counted
    assert counted["bake"]["sgivu-gateway"]["requests"] == 60 and counted["bake"]["sgivu-gateway"]["errors"] == 60
    from_the_end = bake(log, 2)
    assert not from_the_end.get("failed") and from_the_end["bake"]["sgivu-gateway"]["requests"] == 0


def test_a_log_rotated_since_the_offset_is_read_from_its_start(log):
    before_swap = log.stat().st_size
    log.write_text("", encoding="utf-8")  # rotated (copytruncate) after the caller looked
    _served(log, 55, status=200)
    result = bake(log, 2, offset=before_swap)
    assert not result.get("failed") and result["bake"]["sgivu-gateway"]["requests"] == 55
    assert result["bake"]["sgivu-gateway"]["verdict"] == "passed"
