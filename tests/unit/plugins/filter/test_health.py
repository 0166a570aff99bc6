"""Unit tests of the health filters (plugins/filter/health.py), their docs, and a run through Ansible."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import pytest
import yaml
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


def _labels(service: str) -> Dict[str, str]:
    return {
        "com.docker.compose.container-number": "1",
        "com.docker.compose.oneoff": "False",
        "com.docker.compose.project": "h-health-fixture",
        "com.docker.compose.service": service,
        "com.docker.compose.version": "2.40.3",
    }


# From `docker inspect` on the bench (trimmed to what the filters read).
GOOD_INSPECT: Dict[str, Any] = {
    "Id": "f00338ce764daaafb0c2bf3cd677885161553a0fff7d9d953bebac5d547a2b98",
    "Name": "/h-health-fixture-good-1",
    "State": {
        "Status": "running",
        "Running": True,
        "StartedAt": "2026-11-23T12:47:55.546205616Z",
        "FinishedAt": "0001-01-01T00:00:00Z",
        "Health": {
            "Status": "healthy",
            "FailingStreak": 0,
            "Log": [
                {
                    "Start": "2026-11-23T12:47:56.550795643Z",
                    "End": "2026-11-23T12:47:56.619801269Z",
                    "ExitCode": 7,
                    "Output": "curl: (7) Failed to connect to 127.0.0.1 port 8081 after 0 ms: Couldn't connect to server\n",
                },
                {
                    "Start": "2026-11-23T12:47:58.705273301Z",
                    "End": "2026-11-23T12:47:58.816565842Z",
                    "ExitCode": 0,
                    "Output": '{"status": "UP", "service": "good", "version": "1.0.0"}\n',
                },
            ],
        },
    },
    "Config": {
        "Image": "sgivu-bench/standin:1.0.0",
        "Labels": _labels("good"),
        "Healthcheck": {
            "Test": ["CMD", "curl", "-fsS", "http://127.0.0.1:8081/actuator/health"],
            "Interval": 1000000000,
            "Timeout": 2000000000,
            "Retries": 3,
        },
    },
}
BAD_INSPECT: Dict[str, Any] = {
    "Id": "15faa32817cd200bafcbb808654cebcefbf1ed4af2fefc8726199504eacd8834",
    "Name": "/h-health-fixture-bad-1",
    "State": {
        "Status": "running",
        "Running": True,
        "StartedAt": "2026-11-23T12:47:55.464697457Z",
        "Health": {
            "Status": "unhealthy",
            "FailingStreak": 9,
            "Log": [
                {
                    "Start": "2026-11-23T12:48:05.291838283Z",
                    "End": "2026-11-23T12:48:05.380830556Z",
                    "ExitCode": 22,
                    "Output": "curl: (22) The requested URL returned error: 503\n",
                }
            ],
        },
    },
    "Config": {"Image": "sgivu-bench/standin:9.9.9-bad", "Labels": _labels("bad")},
}
# From community.docker.docker_host_info with verbose_output: true (trimmed).
SUMMARY: List[Dict[str, Any]] = [
    {
        "Id": GOOD_INSPECT["Id"],
        "Image": "sgivu-bench/standin:1.0.0",
        "Labels": _labels("good"),
        "Names": ["/h-health-fixture-good-1"],
        "State": "running",
        "Status": "Up 16 seconds (healthy)",
    },
    {
        "Id": BAD_INSPECT["Id"],
        "Image": "sgivu-bench/standin:9.9.9-bad",
        "Labels": _labels("bad"),
        "Names": ["/h-health-fixture-bad-1"],
        "State": "running",
        "Status": "Up 16 seconds (unhealthy)",
    },
]


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
# documentation sidecars
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_every_filter_has_a_sidecar_doc(repo_root, name):
    doc = yaml.safe_load((repo_root / "plugins" / "filter" / (name + ".yml")).read_text(encoding="utf-8"))
    assert sorted(doc) == ["DOCUMENTATION", "EXAMPLES", "RETURN"]
    assert doc["DOCUMENTATION"]["name"] == name
    assert "_input" in doc["DOCUMENTATION"]["options"]
    assert "sgivu.deploy." + name in doc["EXAMPLES"]
    assert "_value" in doc["RETURN"]


@pytest.mark.parametrize("name", NAMES)
def test_ansible_doc_finds_the_filter(tmp_path, collections_root, name):
    result = subprocess.run(
        [_bin("ansible-doc"), "-t", "filter", "--json", "sgivu.deploy." + name],
        capture_output=True,
        text=True,
        env=_env(tmp_path, collections_root),
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)["sgivu.deploy." + name]["doc"]
    assert doc["name"] == name and doc["collection"] == "sgivu.deploy"


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
