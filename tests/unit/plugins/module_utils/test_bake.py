"""The bake window's rules: Nginx's upstream log read, the figures of a release, the verdict."""
from __future__ import annotations

import json

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import bake

NEW, OLD = "127.0.0.1:32771", "127.0.0.1:8080"
LIMITS = dict(bake.BAKE_DEFAULTS, min_requests=20)


def line(address: str = NEW, status: int = 200, seconds: str = "0.004", when: float = 1764590000.5) -> str:
    """One line as the nginx role's log_format writes it."""
    return json.dumps({"time": when, "upstream": address, "status": status, "upstream_status": str(status),
                       "upstream_time": seconds, "request_time": 0.01})


def entries(*lines: str) -> list:
    return [bake.parse_entry(text) for text in lines]


def test_an_entry_takes_the_server_that_answered_last():
    entry = bake.parse_entry(line(address=f"{OLD}, {NEW}", seconds="0.001, 0.250"))
    assert entry == {"time": 1764590000.5, "address": NEW, "status": 200, "ms": 250.0}


def test_across_an_internal_redirect_the_last_server_answered():
    assert bake.parse_entry(line(address=f"{OLD} : {NEW}", seconds="0.001 : 0.002"))["address"] == NEW


def test_a_request_nginx_answered_itself_has_no_upstream_time():
    entry = bake.parse_entry(line(address="", status=403, seconds="-"))
    assert (entry["address"], entry["ms"]) == ("", None)


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '{"time": 1}', '{"time": "x", "status": 200}'])
def test_a_line_that_is_not_a_request_is_skipped(text):
    assert bake.parse_entry(text) is None


def test_only_the_new_release_counts():
    figs = bake.figures(entries(line(NEW), line(OLD, status=502), line(NEW, status=503), line("", status=403)), [NEW])
    assert figs == {"requests": 2, "errors": 1, "success_rate": 50.0, "p99_ms": None, "timed": 2}


def test_a_4xx_is_an_answer_not_an_error():
    assert bake.figures(entries(line(status=404), line(status=401)), [NEW])["success_rate"] == 100.0


def test_p99_is_the_nearest_rank():
    lines = [line(seconds="0.010")] * 99 + [line(seconds="0.900")]
    assert bake.figures(entries(*lines), [NEW])["p99_ms"] == 10
    lines += [line(seconds="0.900")]
    assert bake.figures(entries(*lines), [NEW])["p99_ms"] == 900


def test_no_request_is_no_figure():
    assert bake.figures([], [NEW]) == {"requests": 0, "errors": 0, "success_rate": 100.0, "p99_ms": None, "timed": 0}


def figs(requests: int, errors: int = 0, p99: int = 5) -> dict:
    return {"requests": requests, "errors": errors, "p99_ms": p99, "timed": requests,
            "success_rate": round(100.0 * (requests - errors) / requests, 2) if requests else 100.0}


def test_too_few_requests_are_watched_then_unjudged():
    assert bake.judge(figs(19, errors=19), LIMITS, done=False) == (bake.WATCHING, [])
    verdict, reasons = bake.judge(figs(19, errors=19), LIMITS, done=True)
    assert verdict == bake.UNJUDGED and reasons == ["19 requests, fewer than the 20 needed to judge"]


def test_errors_fail_at_once_before_the_window_ends():
    verdict, reasons = bake.judge(figs(30, errors=9), LIMITS, done=False)
    assert verdict == bake.FAILED
    assert reasons == ["success rate 70.0 % (9 of 30 requests answered 5xx), below 99.0 %"]


def test_a_slow_release_fails_on_its_p99():
    verdict, reasons = bake.judge(figs(40, p99=812), LIMITS, done=False)
    assert (verdict, reasons) == (bake.FAILED, ["p99 latency 812 ms, above 500 ms"])


def test_both_figures_are_named():
    assert len(bake.judge(figs(40, errors=20, p99=900), LIMITS, done=True)[1]) == 2


def test_a_good_release_passes_only_when_its_window_is_done():
    assert bake.judge(figs(200, errors=1), LIMITS, done=False) == (bake.WATCHING, [])
    assert bake.judge(figs(200, errors=1), LIMITS, done=True) == (bake.PASSED, [])


def test_a_p99_needs_a_hundred_timed_requests():
    # One slow first request (a cold JIT) among a few is no 99th percentile.
    few = [line(seconds="0.900")] + [line(seconds="0.005")] * 60
    assert bake.figures(entries(*few), [NEW])["p99_ms"] is None
    assert bake.judge(bake.figures(entries(*few), [NEW]), LIMITS, done=True)[0] == bake.PASSED


def test_the_success_rate_is_compared_unrounded():
    strict = dict(LIMITS, min_success_rate=100.0)
    verdict, reasons = bake.judge(figs(2500, errors=1), strict, done=True)
    assert verdict == bake.FAILED and reasons[0].startswith("success rate 99.96 % (1 of 2500")


def test_a_blip_is_not_a_failure_but_three_failed_checks_in_a_row_are():
    judge = bake.Judge(LIMITS)
    assert judge.check(figs(25, errors=1), done=False)[0] == bake.WATCHING  # 96 %: one 502 among the first requests
    assert judge.check(figs(200, errors=1), done=False)[0] == bake.WATCHING  # diluted: 99.5 %
    bad = bake.Judge(LIMITS)
    assert [bad.check(figs(n, errors=n // 3), done=False)[0] for n in (30, 60, 90)] == [bake.WATCHING, bake.WATCHING, bake.FAILED]


def test_a_threshold_broken_when_the_window_ends_fails_at_once():
    assert bake.Judge(LIMITS).check(figs(30, errors=9), done=True)[0] == bake.FAILED


def test_settings_take_the_run_over_the_catalog_over_the_stack_over_the_defaults():
    catalog = {"gw": {"bake": {"seconds": 120, "max_p99_ms": 900}}, "auth": {}}
    got = bake.settings(["gw", "auth"], catalog, {"seconds": 30, "min_requests": 5})
    assert got["gw"] == {"seconds": 120, "min_requests": 5, "min_success_rate": 99.0, "max_p99_ms": 900}
    assert got["auth"] == {"seconds": 30, "min_requests": 5, "min_success_rate": 99.0, "max_p99_ms": 500}
    assert {s["seconds"] for s in bake.settings(["gw", "auth"], catalog, {}, seconds=0).values()} == {0}


def test_settings_take_numbers_as_extra_vars_send_them():
    assert bake.settings(["gw"], {}, {"seconds": "45", "min_success_rate": "99.5"})["gw"]["seconds"] == 45


@pytest.mark.parametrize("stack", [{"seconds": -1}, {"seconds": "soon"}, {"seconds": 60.5}, {"min_requests": 2.5},
                                   {"min_requests": 0}, {"max_p99_ms": True}, {"max_p99_ms": 0}, {"min_success_rate": 150}])
def test_a_bad_value_is_named(stack):
    with pytest.raises(bake.BakeError, match=r"the bake \w+ of gw must be"):
        bake.settings(["gw"], {}, stack)


def test_the_log_is_read_as_it_grows_and_from_its_start_when_rotated(tmp_path):
    log = tmp_path / "up.log"
    log.write_text(line() + "\n" + line()[:10], encoding="utf-8")
    watch = bake.Watch(str(log), 0)
    watch.read()
    assert len(watch.entries) == 1, "a half-written line waits for its end"
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(line()[10:] + "\n")
    watch.read()
    assert len(watch.entries) == 2
    log.write_text(line(status=500) + "\n", encoding="utf-8")  # truncated: shorter than what was read
    watch.read()
    assert [e["status"] for e in watch.entries] == [200, 200, 500]
    log.rename(tmp_path / "up.log.1")  # logrotate: renamed away, a new file, already longer than the offset
    log.write_text((line(status=503) + "\n") * 5, encoding="utf-8")
    watch.read()
    assert [e["status"] for e in watch.entries] == [200, 200, 500] + [503] * 5


def test_a_watch_starts_where_the_log_ends(tmp_path):
    log = tmp_path / "up.log"
    log.write_text(line(status=500) + "\n", encoding="utf-8")
    watch = bake.Watch(str(log), log.stat().st_size)
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(line() + "\n")
    watch.read()
    assert [e["status"] for e in watch.entries] == [200]


def test_a_missing_log_is_no_request(tmp_path):
    watch = bake.Watch(str(tmp_path / "none.log"), 0)
    watch.read()
    assert watch.entries == []


def test_the_summary_names_the_figures():
    failed = dict(figs(30, errors=9), verdict=bake.FAILED, watched=4, reasons=["success rate 70.0 % ..."])
    assert bake.summary("gw", failed) == "gw failed its bake after 4 s: success rate 70.0 % ..."
    passed = dict(figs(300), verdict=bake.PASSED, watched=60, reasons=[])
    assert bake.summary("gw", passed) == "gw passed its bake of 60 s: 300 requests, success rate 100.0 %, p99 5 ms"
    quiet = dict(figs(60), p99_ms=None, timed=60, verdict=bake.PASSED, watched=60, reasons=[])
    assert bake.summary("gw", quiet).endswith("p99 not judged (60 timed requests, 100 needed)")
