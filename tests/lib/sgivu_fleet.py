"""The bench fleet seen from outside: its load balancer in moto, and jobs run as AWX runs them.

Shared by the fleet scenario's verifier and the fleet benchmark.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import boto3

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sgivu_probe import Poller  # noqa: E402  (tests/lib is not a package)

REPO_ROOT = Path(__file__).resolve().parents[2]
FLEET_INVENTORY = REPO_ROOT / "inventories" / "bench-fleet"
TARGET_GROUP = "sgivu-bench-web"


def aws(service: str):
    """A client of moto, the bench's AWS."""
    return boto3.client(service, endpoint_url=os.environ["SGIVU_BENCH_MOTO_URL"], region_name="us-east-1")


def target_group_arn(name: str = TARGET_GROUP) -> str:
    return aws("elbv2").describe_target_groups(Names=[name])["TargetGroups"][0]["TargetGroupArn"]


def target_states(arn: str) -> Dict[str, str]:
    """Target ID -> state of every target the group lists."""
    described = aws("elbv2").describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    return {d["Target"]["Id"]: d["TargetHealth"]["State"] for d in described}


def instance_ids() -> Dict[str, str]:
    """Name tag -> instance ID of the running instances in moto."""
    found = {}
    reservations = aws("ec2").describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["running"]}])["Reservations"]
    for reservation in reservations:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
            found[tags.get("Name", instance["InstanceId"])] = instance["InstanceId"]
    return found


class TargetWatcher(Poller):
    """Describe the target group's health every `interval` seconds in a thread; keep every sample.

    A sample is the set of the fleet's targets that are not registered and healthy.
    """

    def __init__(self, fleet: List[str], interval: float = 0.05, max_seconds: float = 1200):
        self.fleet, self.interval, self.max_seconds = list(fleet), interval, max_seconds
        self.arn = target_group_arn()
        self.samples: List[frozenset] = []
        self.errors: List[str] = []
        super().__init__()

    def _run(self) -> None:
        client = aws("elbv2")
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                described = client.describe_target_health(TargetGroupArn=self.arn)["TargetHealthDescriptions"]
                healthy = {d["Target"]["Id"] for d in described if d["TargetHealth"]["State"] == "healthy"}
                self.samples.append(frozenset(set(self.fleet) - healthy))
            except Exception as error:  # recorded: a watcher that cannot see proves nothing
                self.errors.append(repr(error))
            self._stop.wait(self.interval)

    @property
    def most_out(self) -> int:
        """The most targets out of service at one moment."""
        return max((len(s) for s in self.samples), default=0)

    @property
    def ever_out(self) -> set:
        """Every target seen out of service at least once."""
        return set().union(*self.samples) if self.samples else set()


def _plain(value: Any) -> Any:
    """ansible-inventory marks templated values as {"__ansible_unsafe": value}; unwrap them."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def fleet_inventory() -> Dict[str, Any]:
    """`ansible-inventory --list` of the bench fleet's aws_ec2 inventory (moto's EC2)."""
    out = subprocess.run(
        ["ansible-inventory", "-i", str(FLEET_INVENTORY / "aws_ec2.yml"), "--list"],
        cwd=REPO_ROOT, env=dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg")),
        check=True, capture_output=True, text=True, timeout=300,
    )
    return _plain(json.loads(out.stdout))


def survey_vars(playbook: str, answers: Dict[str, Any]) -> Dict[str, Any]:
    """The extra vars AWX sends when the survey of the job template running `playbook`
    (awx/vars/job_templates.yml, choices from the prod catalog) is answered with `answers`."""
    import yaml

    sys.path.insert(0, str(REPO_ROOT / "collections"))
    from ansible_collections.sgivu.deploy.plugins.module_utils import awx

    templates = yaml.safe_load((REPO_ROOT / "awx" / "vars" / "job_templates.yml").read_text())["awx_templates"]
    text = (REPO_ROOT / "inventories" / "prod" / "group_vars" / "all" / "stack.yml").read_text()
    registry = yaml.safe_load(text)["stack_registry"]
    catalog = yaml.safe_load(text.replace("{{ stack_registry }}", registry))
    template = next(t for t in awx.job_templates(templates, catalog["stack_services"]) if t["playbook"] == playbook)
    return awx.survey_extra_vars(template["survey_spec"], answers)


def run_job(playbook: str, extravars: Optional[Dict[str, Any]] = None, limit: str = "") -> "Job":
    """Run a playbook the way an AWX job runs it: ansible-runner, a private data dir holding the
    project, the inventory (the aws_ec2 source) and the survey's extra vars, credentials as
    environment variables, no TTY. Returns the runner's Runner object; its artifacts stay in
    the private data dir, read into the returned Job before the dir is removed."""
    import ansible_runner

    private = Path(tempfile.mkdtemp(prefix="sgivu-awx-job-"))
    (private / "project").symlink_to(REPO_ROOT, target_is_directory=True)
    # What AWX's Amazon Web Services credential injects (moto's bench values here); the rest
    # of the bench's environment is inherited, as an execution node's is. Written to
    # env/envvars as AWX does; the private data dir is removed by remove_job().
    envvars = {
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_ENDPOINT_URL": os.environ["SGIVU_BENCH_MOTO_URL"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    }
    return Job(ansible_runner.run(
        private_data_dir=str(private),
        playbook=playbook,
        inventory=str(FLEET_INVENTORY / "aws_ec2.yml"),
        extravars=extravars or {},
        envvars=envvars,
        limit=limit or None,
        quiet=True,
        timeout=1800,
    ))


class Job:
    """What a finished job left, read before its private data dir (whose env/envvars holds the
    credentials, as AWX's does) is removed: status, rc, stdout, events, stats, artifact files."""

    def __init__(self, runner) -> None:
        import shutil

        self.status, self.rc, self.stats = runner.status, runner.rc, runner.stats
        self.stdout = runner.stdout.read()
        self.events = list(runner.events)
        artifacts = Path(runner.config.artifact_dir)
        self.artifact_files = sorted(p.name for p in artifacts.iterdir())
        self.job_events = len(list((artifacts / "job_events").glob("*.json")))
        # The job's output stays in the bench's logs (the tests check it holds no secret).
        logs = Path(os.environ.get("SGIVU_BENCH_DIR", tempfile.gettempdir())) / "logs" / "awx-jobs"
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{time.strftime('%H%M%S')}-{artifacts.name}.log").write_text(self.stdout)
        shutil.rmtree(runner.config.private_data_dir, ignore_errors=True)

    @property
    def hosts(self) -> set:
        """Hosts that any task of the job touched."""
        return {e["event_data"]["host"] for e in self.events
                if e.get("event", "").startswith("runner_on_") and e.get("event_data", {}).get("host")}
