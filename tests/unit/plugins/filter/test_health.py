"""Unit tests of the health filters (plugins/filter/health.py) and a run through Ansible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sgivu.deploy.plugins.filter.health import FilterModule
from ansible_cli import cli_bin as _bin, cli_env as _env

FILTERS = FilterModule().filters()
NAMES = ("health_report", "health_table", "health_failure")

SERVICES: Dict[str, Any] = {
    "good": {"image": "sgivu-bench/standin", "tag": "1.0.0", "port": 8081, "health": {"path": "/actuator/health"}},
    "bad": {
        "image": "sgivu-bench/standin",
        "tag": "9.9.9-bad",
        "port": 8082,
        "health": {"path": "/actuator/health", "interval": 1, "timeout": 15},
    },
}


# Docker's own output on the bench, shared with the module_utils tests (see module_utils/test_health.py).
FIXTURES = Path(__file__).resolve().parents[1] / "module_utils" / "fixtures"


def docker_output(name: str) -> Any:
    """The JSON of ``module_utils/fixtures/<name>.json``."""
    return json.loads((FIXTURES / (name + ".json")).read_text(encoding="utf-8"))


# From `docker inspect` on the bench.
GOOD_INSPECT: Dict[str, Any] = docker_output("inspect_good")
BAD_INSPECT: Dict[str, Any] = docker_output("inspect_bad")
# From community.docker.docker_host_info with verbose_output: true.
SUMMARY: List[Dict[str, Any]] = docker_output("host_info_containers")


def test_filter_module_exposes_the_health_filters():
    assert sorted(FILTERS) == sorted(NAMES)


def test_health_report_decides_from_inspect_output():
    report = FILTERS["health_report"]([GOOD_INSPECT, BAD_INSPECT], SERVICES)
    assert (report["ready"], report["late"]) == (False, ["bad"])
    assert [(r["service"], r["time_to_healthy"]) for r in report["rows"]] == [("bad", None), ("good", 3.3)]


def test_health_report_waits_within_the_deadline_from_summary_output():
    report = FILTERS["health_report"](SUMMARY, SERVICES, elapsed=5.0)
    assert (report["done"], report["waiting"]) == (False, ["bad"])


def test_health_report_raises_filter_error_on_an_unknown_service():
    with pytest.raises(AnsibleFilterError, match="not in the catalog: nope"):
        FILTERS["health_report"]([], SERVICES, only=["nope"])


def test_health_report_raises_filter_error_on_an_invalid_catalog():
    with pytest.raises(AnsibleFilterError, match="service 'good': replicas"):
        FILTERS["health_report"]([], dict(SERVICES, good=dict(SERVICES["good"], replicas=0)))


def test_health_table_renders_the_report():
    lines = FILTERS["health_table"](FILTERS["health_report"]([GOOD_INSPECT, BAD_INSPECT], SERVICES))
    assert lines == [
        "SERVICE  IMAGE TAG  STATE    HEALTH     TIME TO HEALTHY (s)",
        "bad      9.9.9-bad  running  unhealthy  -",
        "good     1.0.0      running  healthy    3.3",
    ]


def test_health_table_raises_filter_error_on_something_else():
    with pytest.raises(AnsibleFilterError, match="needs the result of health_report"):
        FILTERS["health_table"]({"ready": True})


def test_health_failure_names_the_late_service():
    report = FILTERS["health_report"]([GOOD_INSPECT, BAD_INSPECT], SERVICES)
    logs = [{"rc": 0, "stdout": "2026-11-23T12:48:14.29Z boom\n", "stderr": "", "item": report["unhealthy"][0]}]
    message = FILTERS["health_failure"](report, logs, lines="5", project="p")
    assert message.startswith("project 'p': 1 service not healthy in time: bad\n")
    assert message.endswith("    last 1 log line:\n      boom")


def test_health_failure_raises_filter_error_on_a_bad_line_count():
    with pytest.raises(AnsibleFilterError):
        FILTERS["health_failure"](FILTERS["health_report"]([], SERVICES), lines="many")


# --------------------------------------------------------------------------
# through Ansible itself: templating, tagged values, the elapsed expression the role uses
# --------------------------------------------------------------------------
PROBE = """\
- name: Probe the health filters
  hosts: localhost
  gather_facts: false
  vars:
    t0: "{{ now(utc=true).timestamp() }}"
  tasks:
    - name: Write what the filters return
      ansible.builtin.copy:
        dest: "{{ out }}"
        content: >-
          {{ {'waiting': (containers | sgivu.deploy.health_report(services,
                                                                   elapsed=now(utc=true).timestamp() - t0 | float)).waiting,
              'table': containers | sgivu.deploy.health_report(services) | sgivu.deploy.health_table,
              'failure': containers | sgivu.deploy.health_report(services) | sgivu.deploy.health_failure(project='p')}
             | to_json }}
        mode: "0600"
"""


def test_filters_in_a_playbook(tmp_path, collections_root):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE, encoding="utf-8")
    out = tmp_path / "out.json"
    extra = {
        "out": str(out),
        "services": SERVICES,
        "containers": [GOOD_INSPECT, BAD_INSPECT],
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
    }
    result = subprocess.run(
        [_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", json.dumps(extra), str(playbook)],
        capture_output=True,
        text=True,
        env=_env(tmp_path, collections_root),
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    got = json.loads(out.read_text(encoding="utf-8"))
    assert got["waiting"] == ["bad"]
    assert got["table"][2] == "good     1.0.0      running  healthy    3.3"
    assert got["failure"].startswith("project 'p': 1 service not healthy in time: bad")
