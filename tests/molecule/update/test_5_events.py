"""Every change on a host is told: the host's audit log, the SNS topic, a webhook (issue 13, part 5).

The bench inventory publishes to an SNS topic in moto with an SQS queue subscribed (the prepare
step makes both). By now the scenario has deployed, updated, failed and rolled back on this
host; each of those changes must be in the queue and in the host's audit log with its outcome,
and none may carry a secret. Then a webhook: an update POSTs its event to a local receiver that
answers 500, and the run still succeeds, warning without showing the URL (it can be a token).
"""
from __future__ import annotations

import http.server
import json
import os
import threading

import pytest

from bench_images import NEXT  # tests/lib (bench/images.yml), on the path from conftest.py

CATALOG_TAG = "1.0.0"  # the gateway's tag in the catalog (inventories/prod/group_vars/all/stack.yml)
QUEUE = "sgivu-bench-events"  # subscribed to the topic by molecule/default/prepare.yml


def queued_events() -> list[dict]:
    """Every event in the queue (each received once, then kept hidden for the rest of this run)."""
    import boto3

    sqs = boto3.client("sqs", endpoint_url=os.environ["SGIVU_BENCH_MOTO_URL"], region_name="us-east-1")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    events, empty = [], 0
    while empty < 2:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=900).get("Messages", [])
        empty = empty + 1 if not messages else 0
        events.extend(json.loads(m["Body"]) for m in messages)
    return events


def audit_events(host, stack: str) -> list[dict]:
    log = host.file(f"/opt/{stack}/audit.log")
    assert log.exists and log.user == "root" and log.mode == 0o640
    return [json.loads(line) for line in log.content_string.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def published(host, stack) -> list[dict]:
    """This host's events in the queue since the host was created (the queue outlives a scenario's
    hosts: a host of the same name from an earlier run published there too)."""
    first = audit_events(host, stack)[0]["started"]
    return [e for e in queued_events() if e["host"] == host.backend.get_hostname() and e["started"] >= first]


def test_each_recorded_change_was_published_with_its_outcome(host, stack, published):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
    mine = {e["release"]: e for e in published if e["stack"] == stack}
    assert any(r["status"] == "failed" for r in history) and any(r["status"] == "good" for r in history)
    for release in history:
        event = mine.get(release["id"])
        assert event, f"no event for release {release['id']} ({release['purpose']})"
        wanted = "ok" if release["status"] == "good" else ("rolled_back" if release.get("restored") else "failed")
        assert (event["outcome"], event["purpose"], event["who"]) == (wanted, release["purpose"], release["who"])
        assert event["images"] == {name: entry["image"] for name, entry in release["services"].items()}
        assert all("@sha256:" in image for image in event["images"].values())
        assert event["restored"] == (release.get("restored") or None)
        assert event["duration_s"] > 0 and event["started"] <= event["finished"]


def test_a_rolled_back_change_says_what_broke_and_what_runs_again(host, stack, published):
    rolled_back = [e for e in published if e["outcome"] == "rolled_back"]
    assert rolled_back, "the never-healthy update should have been published as rolled back"
    assert all("did not become healthy" in e["error"] and e["restored"] for e in rolled_back)


def test_the_audit_log_on_the_host_holds_the_same_events(host, stack, published):
    sent = sorted((e["release"], e["outcome"]) for e in published)
    assert sorted((e["release"], e["outcome"]) for e in audit_events(host, stack)) == sent


def test_no_event_carries_a_secret(host, stack, published):
    values = [line.split("=", 1)[1] for line in host.file(f"/opt/{stack}/stack.env").content_string.splitlines()
              if "=" in line and not line.startswith("#")]
    secrets = [v for v in values if len(v) >= 8 and not v.startswith("http")]
    assert secrets, "the env file should hold secrets to look for"
    text = json.dumps(published) + json.dumps(audit_events(host, stack))
    assert [s for s in secrets if s in text] == []


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook that keeps what it is sent and answers 500, as a broken chat relay would."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length", 0))
        Receiver.received.append({"path": self.path, "token": self.headers.get("X-Token"),
                                  "body": json.loads(self.rfile.read(length))})
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_webhook_gets_the_event_and_its_refusal_does_not_fail_the_change(host, run_playbook, via_nginx, stack):
    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-in-the-path-5e1a"
    version = CATALOG_TAG if via_nginx("/v1/version")[1]["version"] != CATALOG_TAG else NEXT
    try:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway",
                           "-e", f"version={version}", "-e", f"stack_events_webhook_url={url}",
                           "-e", '{"stack_events_webhook_headers": {"X-Token": "header-S3cret-5e1a"}}')
    finally:
        server.shutdown()
    assert run.returncode == 0, run.stdout[-3000:]
    assert via_nginx("/v1/version")[1]["version"] == version
    assert len(Receiver.received) == 1
    post = Receiver.received[0]
    assert post["path"] == "/hooks/T0KEN-in-the-path-5e1a" and post["token"] == "header-S3cret-5e1a"
    assert (post["body"]["outcome"], post["body"]["host"]) == ("ok", host.backend.get_hostname())
    assert post["body"]["purpose"] == f"update sgivu-gateway {version}"
    assert "The webhook did not take the event" in run.stdout and "(HTTP 500)" in run.stdout
    assert "T0KEN-in-the-path" not in run.stdout and "header-S3cret" not in run.stdout
    assert post["body"]["release"] in {e["release"] for e in queued_events()}, "the same event should reach SNS"


def test_a_topic_that_is_not_an_arn_is_refused_before_anything_changes(host, run_playbook, stack):
    before = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} | sort")
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(), "-e", "service=sgivu-gateway",
                       "-e", f"version={NEXT}", "-e", "stack_events_sns_topic_arn=sgivu-events")
    assert run.returncode != 0
    assert 'stack_events_sns_topic_arn "sgivu-events" is not an SNS topic ARN' in run.stdout
    assert "Nothing was changed" in run.stdout
    assert host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} | sort") == before
