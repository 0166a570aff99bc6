"""The bake window (issue 12): after update.yml swaps the gateway, its live traffic through host
Nginx is watched; a release that passed every health check but serves errors, or slowly, is taken
back by itself, start-first, and recorded as failed with the figures that failed it.

On the stack test_6_pruning.py leaves. Probes send requests through Nginx from this machine all
along, as users would: the bake judges what they get. The bench's routine changes have no bake
window; these runs ask for one (-e bake_seconds=N).
"""
from __future__ import annotations

import json
import time
from types import SimpleNamespace

import pytest
from bench_images import FAILING, NEXT, SLOW  # tests/lib (bench/images.yml), on the path from conftest.py
from sgivu_catalog import EXTRA, EXTRA_PATH, upstream_named, with_public_service
from sgivu_probe import Probe

WINDOW = 30  # seconds asked for; a bad release must be gone well before its window ends


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


def history(host, stack: str) -> list[dict]:
    return json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]


def served(host) -> str:
    """The gateway version host Nginx serves, asked on the host."""
    return json.loads(host.check_output("curl -fsS http://127.0.0.1/v1/version"))["version"]


def update(host, run_playbook, version: str, seconds: int, probes: int = 1) -> SimpleNamespace:
    """update.yml of the gateway to ``version`` with a bake window, ``probes`` probes running."""
    url = f"http://{host.interface('eth0').addresses[0]}/v1/version"
    watches = [Probe(url) for _ in range(probes)]
    for watch in watches:
        watch.__enter__()
    started = time.monotonic()
    try:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway",
                           "-e", f"version={version}", "-e", f"bake_seconds={seconds}")
    finally:
        for watch in watches:
            watch.__exit__(None, None, None)
    results = [r for watch in watches for r in watch.results]
    return SimpleNamespace(run=run, results=results, took=time.monotonic() - started, output=" ".join(run.stdout.split()))


def test_a_bake_window_that_is_not_a_number_is_refused_before_anything_changes(host, run_playbook, stack):
    before = history(host, stack)
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway",
                       "-e", f"version={NEXT}", "-e", "bake_seconds=soon")
    assert run.returncode != 0
    assert 'bake_seconds must be a whole number of seconds (0 turns the bake off), got "soon". Nothing was changed.' \
        in " ".join(run.stdout.split())
    assert history(host, stack) == before


@pytest.fixture(scope="module")
def failing(host, run_playbook, stack):
    before = served(host)
    good = [r for r in history(host, stack) if r["status"] == "good"][-1]
    done = update(host, run_playbook, FAILING, WINDOW)
    done.before, done.good, done.after = before, good, served(host)
    done.record = history(host, stack)[-1]
    return done


def test_a_release_that_fails_a_third_of_its_requests_is_taken_back_by_its_bake(failing):
    assert failing.run.returncode != 0, failing.run.stdout[-3000:]
    assert "sgivu-gateway failed its bake after" in failing.output
    assert "requests answered 5xx), below 99.0 %" in failing.output
    # One sentence after the other, and the service's own words, not the name of the task that watched.
    assert f"below 99.0 %. The last good release {failing.good['id']} runs again" in failing.output
    assert "bake window: sgivu-gateway" not in failing.output
    assert failing.after == failing.before != FAILING


def test_clients_met_its_errors_only_until_the_bake_failed_and_none_while_it_went_back(failing):
    bad = [r for r in failing.results if r[1] == FAILING or r[0] != 200]
    errors = [r for r in failing.results if r[0] != 200]
    assert len(bad) >= 50, "the bad release served too little to be judged"
    # Every failure is one the bad release answered itself (500); the way back is start-first.
    assert {r[0] for r in errors} == {500}, errors[:5]
    assert 0.2 < len(errors) / len(bad) < 0.4
    watched = failing.record["bake"]["sgivu-gateway"]["watched"]
    assert watched < WINDOW / 2, f"the bake watched {watched} s of {WINDOW} before it failed"


def test_the_failed_release_is_recorded_with_the_figures_that_failed_it(failing):
    record = failing.record
    assert (record["status"], record["restored"]) == ("failed", failing.good["id"])
    gateway = record["bake"]["sgivu-gateway"]
    assert gateway["verdict"] == "failed" and gateway["requests"] >= 50 and gateway["success_rate"] < 80
    assert "failed its bake" in record["error"] and "success rate" in record["error"]


def test_a_slow_release_is_taken_back_on_its_p99(host, run_playbook, stack):
    before = served(host)
    # 800 ms a request: ten probes give the 100 timed requests a 99th percentile needs well within the window.
    done = update(host, run_playbook, SLOW, WINDOW, probes=10)
    assert done.run.returncode != 0, done.run.stdout[-3000:]
    assert "sgivu-gateway failed its bake after" in done.output and "p99 latency" in done.output
    assert "ms, above 500 ms" in done.output
    assert served(host) == before
    assert [r for r in done.results if r[0] != 200] == [], "a slow release is slow, never failing"
    assert history(host, stack)[-1]["bake"]["sgivu-gateway"]["p99_ms"] >= 800


def test_a_good_release_passes_its_bake_and_is_kept(host, run_playbook, stack, ansible_vars):
    # A version other than the one that serves: the catalog's, where an earlier run left the next one.
    good = NEXT if served(host) != NEXT else str(ansible_vars["stack_services"]["sgivu-gateway"]["tag"])
    done = update(host, run_playbook, good, 8)
    assert done.run.returncode == 0, done.run.stdout[-3000:]
    assert "sgivu-gateway passed its bake of 8 s" in done.output
    assert [r for r in done.results if r[0] != 200] == []
    record = history(host, stack)[-1]
    assert record["status"] == "good" and record["purpose"] == f"update sgivu-gateway {good}"
    gateway = record["bake"]["sgivu-gateway"]
    assert (gateway["verdict"], gateway["success_rate"]) == ("passed", 100.0) and gateway["requests"] >= 100
    assert served(host) == good


def test_status_shows_each_release_s_bake(host, run_playbook):
    run = run_playbook("status.yml", "--limit", host.backend.get_hostname())
    assert run.returncode == 0, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert "bake: sgivu-gateway passed after 8 s" in text
    assert "bake: sgivu-gateway failed after" in text


def test_a_deploy_that_routes_a_new_service_which_fails_its_bake_puts_the_site_back(host, run_playbook, stack, ansible_vars,
                                                                                    changed_counts):
    """deploy.yml adds a public service with its route (the gateway's stand-in that answers 3 of 10
    requests with 500, under another name, port and no registry) and renders the site for it; the new
    service fails its bake: the way back renders the site again without that route, as the last good
    release does not run the service. What ran before was never touched: no request to it fails."""
    name = host.backend.get_hostname()
    site = f"/etc/nginx/conf.d/{ansible_vars.get('nginx_site_name', stack)}.conf"
    good = [r for r in history(host, stack) if r["status"] == "good"][-1]
    before = {"served": served(host), "site": host.file(site).content_string}
    gateway = ansible_vars["stack_services"]["sgivu-gateway"]
    added = {"image": f"{ansible_vars['stack_registry']}/sgivu-gateway", "tag": FAILING, "port": 8098,
             "env_keys": gateway["env_keys"], "env": {"STANDIN_SERVICE": EXTRA, "STANDIN_PORT": "8098"},
             "health": {"path": "/actuator/health", "interval": 30, "start_interval": 1, "timeout": 60}}
    address = host.interface("eth0").addresses[0]
    with Probe(f"http://{address}/v1/version") as kept, Probe(f"http://{address}{EXTRA_PATH}version") as new:
        run = run_playbook("deploy.yml", "--limit", name, "-e", f"bake_seconds={WINDOW}",
                           "-e", with_public_service(ansible_vars, added))
    output = " ".join(run.stdout.split())
    assert run.returncode != 0, run.stdout[-3000:]
    assert f"{EXTRA} failed its bake after" in output, output[-3000:]
    assert f"The last good release {good['id']} runs again" in output, output[-3000:]
    # The change rendered the site (the whole nginx role ran, not the upstreams alone), then the way back did.
    assert run.stdout.count("nginx : configure | Read which programs listen on TCP ports") == 2, run.stdout[-3000:]
    assert (served(host), host.file(site).content_string) == (before["served"], before["site"])
    assert not upstream_named(host.check_output("nginx -T 2>/dev/null"))
    assert host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={stack} "
                             f"--filter label=com.docker.compose.service={EXTRA}") == ""
    assert 500 in {r[0] for r in new.results}, "the new service's route never reached it"
    assert len(kept.results) > 100 and kept.failures == []
    again = run_playbook("deploy.yml", "--limit", name)
    assert again.returncode == 0 and changed_counts(again.stdout) == [0], again.stdout[-3000:]
