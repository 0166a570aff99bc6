"""A fleet of three hosts behind a load balancer, run as AWX runs it.

The hosts are found by tags through the aws_ec2 inventory (moto's EC2), the jobs run
through ansible-runner with the extra vars a survey sends, and a watcher describes the
target group every 50 ms while they run. The tests run in file order and build on each
other: the gateway moves to the next release on every host, then a never-healthy release stops
the roll on the first host, a new instance joins the running fleet with one deploy limited to it
(running the fleet's gateway, not the catalog's), a daemon.json change restarts Docker one host at a time (and one the daemon
refuses is undone on the first host), then a host out of service blocks the next roll before it starts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "lib"))
from bench_images import NEVER_HEALTHY, NEXT  # noqa: E402
from sgivu_fleet import TargetWatcher, aws, fleet_inventory, instance_ids, run_job, survey_vars, target_group_arn, target_states

FLEET_VARS = Path(__file__).resolve().parents[3] / "inventories" / "bench-fleet" / "group_vars" / "stack_hosts"


@pytest.fixture(scope="module")
def fleet() -> list[str]:
    """The bench hosts, as Molecule created them (its inventory), in inventory order."""
    with open(os.environ["MOLECULE_INVENTORY_FILE"], encoding="utf-8") as handle:
        inventory = yaml.safe_load(handle)
    return list(inventory["stack_hosts"]["hosts"])


@pytest.fixture(scope="module")
def inventory() -> dict:
    """`ansible-inventory --list` of the fleet's aws_ec2 inventory, read once."""
    return fleet_inventory()


@pytest.fixture(scope="module")
def run_order(inventory) -> list[str]:
    """The hosts in the order the aws_ec2 inventory gives them, which serial: 1 follows."""
    return inventory["stack_hosts"]["hosts"]


@pytest.fixture(scope="module")
def ids(fleet) -> dict[str, str]:
    """Host name -> instance ID, from moto."""
    running = instance_ids()
    return {name: running[name] for name in fleet}


@pytest.fixture(scope="module")
def secrets(ssm_parameters) -> list[str]:
    """The fleet's secret values, from the Parameter Store path its inventory reads."""
    with open(FLEET_VARS / "ssm_secrets.yml", encoding="utf-8") as handle:
        path = yaml.safe_load(handle)["ssm_secrets_path"]
    return [v for k, v in ssm_parameters(path).items() if not k.endswith("_URL")]


def gateway_containers(name: str) -> list[str]:
    """The IDs of the gateway containers that run on a host."""
    out = subprocess.run(["docker", "exec", name, "docker", "ps", "-q", "--filter", "label=com.docker.compose.service=sgivu-gateway"],
                         capture_output=True, text=True, timeout=30, check=True)
    return sorted(out.stdout.split())


def served_version(name: str) -> str:
    """The gateway version a host's Nginx serves, asked on the host itself."""
    out = subprocess.run(["docker", "exec", name, "curl", "-fsS", "http://127.0.0.1/v1/version"],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)["version"]


def docker_daemon(name: str) -> dict:
    """What a host's Docker daemon runs with, asked on the host: its main PID (a restart changes
    it), /etc/docker/daemon.json, the running containers (live-restore keeps them across a
    restart) and whether a configuration is still kept for a restart to come."""
    def run(cmd: str) -> str:
        return subprocess.run(["docker", "exec", name, "sh", "-c", cmd],
                              capture_output=True, text=True, timeout=30, check=True).stdout
    return {
        "pid": run("systemctl show docker --property MainPID --value").strip(),
        "config": json.loads(run("cat /etc/docker/daemon.json")),
        "containers": sorted(run("docker ps --quiet --no-trunc").split()),
        "kept": run("test -e /etc/docker/daemon.json.last-loaded && echo yes || echo no").strip(),
    }


def last_event(name: str, inventory: dict) -> dict:
    """The newest event in a host's audit log (/opt/<stack>/audit.log, JSON lines)."""
    stack = inventory["_meta"]["hostvars"][name]["stack_name"]
    out = subprocess.run(["docker", "exec", name, "tail", "-n", "1", f"/opt/{stack}/audit.log"],
                         capture_output=True, text=True, timeout=30, check=True)
    return json.loads(out.stdout)


def task_order(job, host: str, *tasks: str) -> list[int]:
    """Where each task (by the end of its name) first finished on a host, as positions in the job's events."""
    finished = [e["event_data"].get("task", "") for e in job.events
                if e.get("event") == "runner_on_ok" and e.get("event_data", {}).get("host") == host]
    return [next((i for i, task in enumerate(finished) if task.endswith(name)), -1) for name in tasks]


def assert_no_secret_in(job, secrets) -> None:
    leaked = [s[:4] + "..." for s in secrets if s in job.stdout]
    assert not leaked, f"secret values in the job output: {leaked}"


def test_the_update_survey_sends_what_update_yml_reads():
    answers = {"service": ["sgivu-gateway", "sgivu-user"], "version": NEXT, "health_timeout": 90, "bake_seconds": 30}
    assert survey_vars("update.yml", answers) == answers


def test_the_inventory_plugin_finds_the_fleet_by_tags(fleet, inventory):
    assert sorted(inventory["stack_hosts"]["hosts"]) == sorted(fleet)


def test_the_inventory_groups_by_role_and_environment(fleet, inventory):
    assert sorted(inventory["role_app"]["hosts"]) == sorted(fleet)
    assert sorted(inventory["env_bench"]["hosts"]) == sorted(fleet)


def test_an_instance_of_another_environment_is_left_out(inventory):
    assert "sgivu-staging-1" in instance_ids()
    assert "sgivu-staging-1" not in inventory["_meta"]["hostvars"]


def test_each_host_knows_its_target_id(ids, inventory):
    hostvars = inventory["_meta"]["hostvars"]
    assert {name: hostvars[name]["alb_target_id"] for name in ids} == ids


def test_every_host_is_in_the_target_group_and_healthy(ids):
    assert target_states(target_group_arn()) == {i: "healthy" for i in ids.values()}


def test_container_logs_go_to_cloudwatch_one_stream_per_service(inventory):
    hostvars = next(iter(inventory["_meta"]["hostvars"].values()))
    enabled = {name for name, spec in hostvars["stack_services"].items() if spec.get("enabled", True)}
    streams = aws("logs").describe_log_streams(logGroupName=hostvars["stack_awslogs_group"])["logStreams"]
    assert {s["logStreamName"] for s in streams} == enabled


def test_a_service_log_line_reaches_its_stream(inventory):
    group = next(iter(inventory["_meta"]["hostvars"].values()))["stack_awslogs_group"]
    events = aws("logs").get_log_events(logGroupName=group, logStreamName="sgivu-gateway")["events"]
    assert events, "the gateway's stream has no log events"


def test_a_rolling_update_keeps_all_but_one_host_in_service(fleet, ids, secrets):
    with TargetWatcher(list(ids.values())) as watch:
        job = run_job("update.yml", survey_vars("update.yml", {"service": ["sgivu-gateway"], "version": NEXT}))
    assert job.status == "successful", job.stdout[-3000:]
    assert not watch.errors
    assert watch.most_out == 1
    assert watch.ever_out == set(ids.values()), "the watcher did not see every host take its turn"
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}
    assert target_states(watch.arn) == {i: "healthy" for i in ids.values()}
    assert_no_secret_in(job, secrets)


def test_the_job_leaves_awx_artifacts(fleet):
    job = run_job("status.yml")
    assert job.status == "successful" and job.rc == 0
    assert {"rc", "status", "stdout", "job_events"} <= set(job.artifact_files)
    assert job.job_events == len(job.events) > 0
    assert any(e["event"] == "playbook_on_stats" for e in job.events)
    assert job.hosts == set(fleet)
    assert job.stats["failures"] == {} and job.stats["dark"] == {}


def test_a_failing_host_stops_the_roll_and_the_others_stay_untouched(fleet, ids, run_order):
    first = run_order[0]
    others = {name: gateway_containers(name) for name in fleet if name != first}
    with TargetWatcher(list(ids.values())) as watch:
        job = run_job("update.yml", survey_vars("update.yml", {
            "service": ["sgivu-gateway"], "version": NEVER_HEALTHY, "health_timeout": 20}))
    assert job.status == "failed"
    assert set(job.stats["failures"]) == {first}
    # Every host planned the update (pulled the image); only the first one began to apply it.
    assert {name: gateway_containers(name) for name in others} == others, "the roll went on past the failing host"
    applied = {e["event_data"]["host"] for e in job.events
               if e.get("event", "").startswith("runner_on_") and "Apply the update" in e["event_data"].get("task", "")}
    assert applied <= {first}, f"{sorted(applied - {first})} began to apply the update"
    assert watch.ever_out == {ids[first]}, "another host left the target group"
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}


def test_the_failed_host_serves_again_and_is_back_in_the_group(ids):
    assert target_states(target_group_arn()) == {i: "healthy" for i in ids.values()}


def test_a_new_instance_joins_the_running_fleet_with_one_limited_deploy(fleet, ids, run_order, inventory):
    """What AWX's provisioning callback runs for an instance the Auto Scaling group launched
    ("<stack> deploy new instance": deploy.yml limited to it). The instance is the last host made
    new: out of the target group, no containers, volumes, images or /opt/<stack> (Docker and
    Nginx stay, as on an AMI that has them). The fleet runs the gateway the update moved to, not
    the catalog's tag: the new instance must run that too, and keep it pinned."""
    new = run_order[-1]
    others = [name for name in fleet if name != new]
    if ids[new] in target_states(target_group_arn()):
        aws("elbv2").deregister_targets(TargetGroupArn=target_group_arn(), Targets=[{"Id": ids[new], "Port": 80}])
    root = f"/opt/{inventory['_meta']['hostvars'][new]['stack_name']}"
    subprocess.run(["docker", "exec", new, "sh", "-c",
                    "docker ps -aq | xargs -r docker rm -f >/dev/null && docker system prune -af --volumes >/dev/null"
                    f" && rm -rf {root}"], check=True, timeout=300)
    before = {name: gateway_containers(name) for name in others}
    with TargetWatcher(list(ids.values())) as watch:
        job = run_job("deploy.yml", limit=new)
    assert job.status == "successful", job.stdout[-3000:]
    assert job.hosts == {new}
    assert {name: gateway_containers(name) for name in others} == before
    assert watch.ever_out == {ids[new]}, "a host of the running fleet left the target group"
    healthy, registered = task_order(job, new, "report | Show the health of every selected service",
                                     "register | Put the host in its target groups and wait until it is healthy")
    assert -1 < healthy < registered, "the new instance joined the target group before its stack was healthy"
    assert target_states(target_group_arn()) == {i: "healthy" for i in ids.values()}
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}
    pins = {name: subprocess.run(["docker", "exec", name, "cat", f"{root}/pins.json"], capture_output=True,
                                 text=True, timeout=30, check=True).stdout for name in (new, others[0])}
    assert json.loads(pins[new]) == json.loads(pins[others[0]])


DAEMON_STEPS = ("Take the host out and wait until its connections have drained",
                "restart | Restart the Docker daemon",
                "Put the host in its target groups and wait until it is healthy")


def test_a_daemon_change_restarts_docker_one_host_at_a_time(fleet, ids, secrets, inventory):
    before = {name: docker_daemon(name) for name in fleet}
    size = "31m" if before[fleet[0]]["config"]["log-opts"]["max-size"] != "31m" else "29m"
    with TargetWatcher(list(ids.values())) as watch:
        job = run_job("deploy.yml", {"docker_host_log_max_size": size})
    assert job.status == "successful", job.stdout[-3000:]
    after = {name: docker_daemon(name) for name in fleet}
    assert not watch.errors
    assert watch.most_out == 1
    assert watch.ever_out == set(ids.values())
    for name in fleet:
        out, restarted, back = task_order(job, name, *DAEMON_STEPS)
        assert -1 < out < restarted < back, f"{name} did not restart its daemon between leaving and rejoining the group"
    assert [name for name in fleet if after[name]["pid"] == before[name]["pid"]] == [], "a daemon did not restart"
    assert {name: after[name]["config"]["log-opts"]["max-size"] for name in fleet} == {name: size for name in fleet}
    # live-restore: the stack's containers ran on through the restart.
    assert {name: after[name]["containers"] for name in fleet} == {name: before[name]["containers"] for name in fleet}
    assert {name: after[name]["kept"] for name in fleet} == {name: "no" for name in fleet}
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}
    assert target_states(watch.arn) == {i: "healthy" for i in ids.values()}
    events = {name: last_event(name, inventory) for name in fleet}
    assert {name: (e["outcome"], e["purpose"]) for name, e in events.items()} == \
        {name: ("ok", "restart the Docker daemon to load a changed daemon.json") for name in fleet}
    assert_no_secret_in(job, secrets)


def test_a_daemon_json_the_daemon_refuses_is_undone_on_the_first_host_only(fleet, ids, run_order, inventory):
    first = run_order[0]
    before = {name: docker_daemon(name) for name in fleet}
    with TargetWatcher(list(ids.values())) as watch:
        job = run_job("deploy.yml", {"docker_host_log_max_size": before[first]["config"]["log-opts"]["max-size"],
                                     "docker_host_daemon_options": {"sgivu-no-such-option": True}})
    assert job.status == "failed"
    assert set(job.stats["failures"]) == {first}
    assert "don't match any configuration option: sgivu-no-such-option" in job.stdout, \
        "the daemon's own error is not in the job output"
    assert "The previous daemon.json is back and the daemon runs with it again" in job.stdout
    assert "before any stack changed" in job.stdout
    after = {name: docker_daemon(name) for name in fleet}
    assert {name: after[name]["config"] for name in fleet} == {name: before[name]["config"] for name in fleet}
    assert after[first]["pid"] != before[first]["pid"], "the first host's daemon was not restarted with its old file"
    assert {name: after[name]["pid"] for name in fleet if name != first} == \
        {name: before[name]["pid"] for name in fleet if name != first}, "the roll went on past the failing host"
    assert {name: after[name]["kept"] for name in fleet} == {name: "no" for name in fleet}
    assert watch.ever_out == {ids[first]}
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}
    assert target_states(watch.arn) == {i: "healthy" for i in ids.values()}
    event = last_event(first, inventory)
    assert event["outcome"] == "rolled_back" and "sgivu-no-such-option" in event["error"]


def test_a_host_out_of_service_blocks_the_next_roll_before_anything_changes(fleet, ids, run_order):
    ec2, last = aws("ec2"), run_order[-1]
    ec2.stop_instances(InstanceIds=[ids[last]])
    try:
        job = run_job("update.yml", survey_vars("update.yml", {"service": ["sgivu-gateway"], "version": "1.0.0"}))
    finally:
        ec2.start_instances(InstanceIds=[ids[last]])
    assert job.status == "failed"
    assert "stays in its target groups" in job.stdout and f"{ids[last]} is unused" in job.stdout
    assert {name: served_version(name) for name in fleet} == {name: NEXT for name in fleet}
