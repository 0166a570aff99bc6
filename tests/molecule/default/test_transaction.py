"""A deploy is a transaction on a release (issue 17), played from outside on the first host.

Each case seeds its own Parameter Store path (moto) from the good one, with the values of its
kind, and runs deploy.yml as an operator would. What is checked: the host keeps serving through
Nginx, the image digests that run after a failure equal those before, the env file is untouched
where the run was refused, no seeded value shows in the run's output or in `ps` on the host, and
no second PostgreSQL ever mounts the stack's data volume. The cases run in file order after
test_deploy.py and leave the host on the good parameters.
"""
from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import string

import boto3
import pytest
from bench_images import NEVER_HEALTHY  # tests/lib (bench/images.yml), on the path from conftest.py
from bench_registry import MovedTags
from sgivu_catalog import EXTRA, upstream_named, with_public_service
from sgivu_probe import Probe

GOOD_PATH = "/sgivu/bench"
# Every printable ASCII character but the line breaks, then non-ASCII text, padded to 8 KB
# (Parameter Store's Advanced tier holds up to 8 KB).
EVERY_PRINTABLE = "".join(c for c in string.printable if c not in "\n\r\x0b\x0c") + " ünï € 日本"
HOSTILE = {
    # Compose once interpolated "$1" inside the Redis health command.
    "REDIS_PASSWORD": "pa$1wordXy9",
    # Compose once read the backslash as an escape of the closing quote.
    "SGIVU_GATEWAY_SECRET": "sgivu-gateway-secret-Canary\\",
    "SERVICE_INTERNAL_SECRET_KEY": " ${HOME} {{ x }} 'q' \"dq\" `id` $(id) # not a comment ",
    "JWT_KEYSTORE_PASSWORD": (EVERY_PRINTABLE * 90)[:8000],
    # Rotated in place (issue 13): ALTER ROLE in the running database, then every service that
    # uses it is replaced; '@', '/', '#' and '%' would break a connection URL not percent-encoded.
    "POSTGRES_PASSWORD": "p@ss/w:rd?#%25&'\"\\ $HOME `id` ünï",
}
# The row written before the hostile deploy, read back after it (by a new container, logged in
# with the new password): a rotation keeps the data.
ROW = "row written before the rotation"
# The POSTGRES_PASSWORD of the deploy that fails: taken by the database, then undone.
ROTATED_BACK = "rotated-then-undone-#@/%"


def ssm():
    return boto3.client("ssm", endpoint_url=os.environ["SGIVU_BENCH_MOTO_URL"], region_name="us-east-1")


@pytest.fixture(scope="module")
def seed(ssm_parameters):
    """Copy the good parameters to a new path with some keys changed; returns the path."""

    def _seed(path: str, changes: dict) -> str:
        good = {name.rsplit("/", 1)[1]: value for name, value in ssm_parameters(GOOD_PATH).items()}
        client = ssm()
        for key, value in {**good, **changes}.items():
            client.put_parameter(Name=f"{path}/{key}", Value=value, Type="SecureString", Overwrite=True,
                                 Tier="Advanced" if len(value.encode()) > 4096 else "Standard")
        return path

    return _seed


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def first_host(ansible_vars):
    return ansible_vars["groups"]["stack_hosts"][0]


@pytest.fixture(autouse=True)
def only_on_the_first_host(host, first_host):
    if host.backend.get_hostname() != first_host:
        pytest.skip("the transaction cases run on the first host")


def sha256(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def running_digests(host, stack: str) -> dict:
    """service -> the image digest (RepoDigest) each running container of the stack runs."""
    found = {}
    for line in host.check_output(
        f"docker ps --filter label=com.docker.compose.project={stack} "
        "--format '{{.Label \"com.docker.compose.service\"}} {{.Image}}'"
    ).splitlines():
        service, image = line.split(" ", 1)
        found.setdefault(service, set()).add(image.split("@", 1)[-1])
    return found


def postgres_mounts(host) -> list[str]:
    """Every container, running or not, that mounts a volume named like the stack's data volume."""
    return host.check_output("docker ps -a --filter volume=sgivu_postgres-data --format '{{.Names}}'").split()


def assert_no_value_shown(text: str, values) -> None:
    leaked = [key for key, value in values.items() if value.strip() and value.strip()[:24] in text]
    assert leaked == [], f"the values of {leaked} appear"


def test_a_key_compose_would_obey_is_refused_before_anything_changes(host, run_playbook, first_host, seed, stack):
    path = seed("/sgivu/bench-reserved", {"COMPOSE_PROJECT_NAME": "other", "DOCKER_HOST": "tcp://127.0.0.1:2375"})
    before = (sha256(host, f"/opt/{stack}/stack.env"), sha256(host, f"/opt/{stack}/compose.yml"), running_digests(host, stack))
    run = run_playbook("deploy.yml", "--limit", first_host, "-e", f"ssm_secrets_path={path}")
    assert run.returncode != 0
    assert "COMPOSE_PROJECT_NAME is a key Compose or Docker reads for itself" in run.stdout
    assert "DOCKER_HOST is a key Compose or Docker reads for itself" in run.stdout
    assert "nothing was changed" in run.stdout
    assert (sha256(host, f"/opt/{stack}/stack.env"), sha256(host, f"/opt/{stack}/compose.yml"), running_digests(host, stack)) == before
    assert host.check_output("docker ps -aq --filter label=com.docker.compose.project=other") == ""
    assert postgres_mounts(host) == [f"{stack}-sgivu-postgres-1"]


def container_ids(host, stack: str) -> dict:
    """service -> the IDs of its running containers."""
    found = {}
    for line in host.check_output(f"docker ps --no-trunc --filter label=com.docker.compose.project={stack} "
                                  "--format '{{.Label \"com.docker.compose.service\"}} {{.ID}}'").splitlines():
        service, cid = line.split(" ", 1)
        found.setdefault(service, set()).add(cid)
    return found


def items(host, stack: str, method: str = "GET", body: str = ""):
    """GET or POST /items of sgivu-user from inside its container (the database behind it)."""
    cid = sorted(container_ids(host, stack)["sgivu-user"])[0]
    code = ("import sys, urllib.request as u; r = u.Request('http://127.0.0.1:8081/items', "
            f"data={body.encode()!r} if {method == 'POST'} else None, method={method!r}); "
            "sys.stdout.write(u.urlopen(r, timeout=10).read().decode())")
    return json.loads(host.check_output(f"docker exec {cid} python3 -c {shlex.quote(code)}"))


def logs_in(host, stack: str, service: str, value: str) -> bool:
    """Whether ``value`` opens the database ``service`` (psql / redis-cli in its container). The
    value goes on stdin, base64-encoded on the command line: never as itself."""
    cid = sorted(container_ids(host, stack)[service])[0]
    client = ('PGPASSWORD="$(cat)" psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1" 2>&1'
              if service == "sgivu-postgres" else 'REDISCLI_AUTH="$(cat)" redis-cli --no-auth-warning ping 2>&1')
    encoded = base64.b64encode(value.encode()).decode()
    out = host.run(f"echo {encoded} | base64 -d | docker exec -i {cid} sh -c {shlex.quote(client)}")
    return out.stdout.strip() in ("1", "PONG")


@pytest.fixture(scope="module")
def hostile_deploy(host, run_playbook, first_host, seed, stack, ssm_parameters):
    """deploy.yml with every hostile value in Parameter Store, at -v, with probes through Nginx on the
    gateway's session path (Redis behind it), on the login page, and through the gateway to business
    services it finds in the registry (GET and POST); a row written before it."""
    good = {name.rsplit("/", 1)[1]: value for name, value in ssm_parameters(GOOD_PATH).items()}
    written = items(host, stack, "POST", ROW)
    before = container_ids(host, stack)
    path = seed("/sgivu/bench-hostile", HOSTILE)
    base = f"http://{host.interface('eth0').addresses[0]}"
    # The rotation's finish recreates Redis (stop, then start: it cannot run twice). Meanwhile the
    # gateway holds a session request and retries, as Lettuce queues commands while it reconnects
    # (the stand-in for up to 10 s, then 503): the request is slow, not dropped, so the probe waits
    # longer than the gateway does. Under CI's load the recreate took more than 5 s once.
    probes = {"/v1/session": Probe(base + "/v1/session", timeout=20), "/login": Probe(base + "/login"),
              "GET /v1/users/7": Probe(base + "/v1/users/7", interval=0.05),
              "POST /v1/vehicles": Probe(base + "/v1/vehicles", interval=0.05, method="POST", data=b'{"plate": "ABC-123"}'),
              "GET /v1/purchase-sales/7": Probe(base + "/v1/purchase-sales/7", interval=0.05)}
    with contextlib.ExitStack() as watching:
        for watch in probes.values():
            watching.enter_context(watch)
        run = run_playbook("deploy.yml", "--limit", first_host, "-v", "-e", f"ssm_secrets_path={path}")
    run.probes = probes
    run.before, run.written, run.good = before, written, good
    return run


def test_a_deploy_with_hostile_values_succeeds(hostile_deploy):
    assert hostile_deploy.returncode == 0, hostile_deploy.stdout[-3000:]


def test_rotating_the_keys_dropped_no_request_through_nginx_or_the_gateway(hostile_deploy):
    for path, watch in hostile_deploy.probes.items():
        assert len(watch.results) > 50, f"the probe of {path} ran too briefly to tell anything"
        assert watch.failures == [], f"{path}: {watch.failures[:5]}"


def test_the_business_services_were_handed_over_together_once(hostile_deploy):
    """They use the changed SERVICE_INTERNAL_SECRET_KEY and start in one wave: one step swaps them,
    one registry hand-over (one wait of the callers' cache) moves the gateway to all of them."""
    business = ["sgivu-client", "sgivu-purchase-sale", "sgivu-user", "sgivu-vehicle"]
    # The services of each step's hand-over task, from its heading (shown for every step, run or skipped).
    steps = [line.rstrip(" *]").split("waited out), ", 1)[1].split(", ") for line in hostile_deploy.stdout.splitlines()
             if line.startswith("TASK [") and "replace | Hand over to the new containers" in line]
    assert [step for step in steps if set(step) & set(business)] == [business], steps


def test_the_databases_take_the_new_passwords_and_refuse_the_old_ones(host, hostile_deploy, stack):
    for service, key in (("sgivu-postgres", "POSTGRES_PASSWORD"), ("sgivu-redis", "REDIS_PASSWORD")):
        assert logs_in(host, stack, service, HOSTILE[key]), f"{service} refuses the new {key}"
        assert not logs_in(host, stack, service, hostile_deploy.good[key]), f"{service} still takes the old {key}"


def test_postgres_kept_its_container_and_its_rows(host, hostile_deploy, stack):
    after = container_ids(host, stack)
    assert after["sgivu-postgres"] == hostile_deploy.before["sgivu-postgres"]
    assert hostile_deploy.written["id"] in [row["id"] for row in items(host, stack)]


def test_services_that_use_no_changed_key_kept_their_containers(host, hostile_deploy, stack, ansible_vars):
    after = container_ids(host, stack)
    for name, svc in ansible_vars["stack_services"].items():
        if not svc.get("enabled", True):
            continue
        if set(svc.get("env_keys") or []) & set(HOSTILE):
            if name != "sgivu-postgres":
                assert after[name] != hostile_deploy.before[name], f"{name} still runs with the old values"
        else:
            assert after[name] == hostile_deploy.before[name], f"{name} was replaced although none of its keys changed"


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_each_hostile_value_reaches_every_container_that_uses_it_byte_for_byte(host, hostile_deploy, stack, ansible_vars, key):
    users = [name for name, svc in ansible_vars["stack_services"].items()
             if svc.get("enabled", True) and key in svc.get("env_keys", [])]
    assert users, f"no enabled service uses {key}"
    # A database changes a credential in place and keeps its container (and the env it was created with).
    users = [name for name in users if key not in (ansible_vars["stack_services"][name].get("rotate") or {})
             or name == "sgivu-redis"]
    for service in users:
        ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} "
                                f"--filter label=com.docker.compose.service={service}").split()
        assert ids, f"{service} does not run"
        seen = host.run(f"docker exec {ids[0]} printenv {key}")
        assert seen.rc == 0, seen.stderr
        assert seen.stdout[:-1] == HOSTILE[key], f"{service} sees another {key}"  # printenv adds one newline


def test_redis_answers_with_a_password_holding_a_dollar(host, hostile_deploy, stack):
    ids = host.check_output(f"docker ps -q --filter label=com.docker.compose.project={stack} "
                            f"--filter label=com.docker.compose.service=sgivu-redis").split()
    health = json.loads(host.check_output(f"docker inspect --format '{{{{json .State.Health}}}}' {ids[0]}"))
    assert health["Status"] == "healthy"


def test_no_hostile_value_is_in_the_output_at_v(hostile_deploy):
    assert_no_value_shown(hostile_deploy.stdout, HOSTILE)


def test_no_hostile_value_is_in_the_compose_project_or_a_health_command(host, hostile_deploy, stack):
    assert_no_value_shown(host.file(f"/opt/{stack}/compose.yml").content_string, HOSTILE)
    health = host.check_output(f"docker inspect --format '{{{{json .Config.Healthcheck}}}} {{{{json .Args}}}}' "
                               f"$(docker ps -q --filter label=com.docker.compose.project={stack})")
    assert_no_value_shown(health, HOSTILE)


def test_no_hostile_value_is_on_a_command_line_on_the_host(host, hostile_deploy):
    assert_no_value_shown(host.check_output("ps -eww -o args"), HOSTILE)


def test_each_service_gets_only_its_own_keys_in_a_0600_file(host, hostile_deploy, stack, ansible_vars):
    for name, svc in ansible_vars["stack_services"].items():
        if not svc.get("enabled", True) or not svc.get("env_keys"):
            continue
        env = host.file(f"/opt/{stack}/env/{name}.env")
        assert (env.user, env.mode) == ("root", 0o600)
        keys = sorted(line.split("=", 1)[0] for line in env.content_string.splitlines() if line and not line.startswith("#"))
        assert keys == sorted(svc["env_keys"]), name


def test_the_good_parameters_deploy_again(host, run_playbook, first_host, hostile_deploy, stack, changed_counts):
    # From inside the execution environment image, as an AWX job runs it (issue 14): a deploy that
    # reads every parameter again and recreates the services whose values changed.
    run = run_playbook("deploy.yml", "--limit", first_host, in_ee=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ansible-navigator run deploy.yml" in run.stdout.splitlines()[0]
    assert changed_counts(run.stdout)[0] > 0
    assert "sgivu-gateway-secret-Canary" not in host.file(f"/opt/{stack}/stack.env").content_string


@pytest.fixture(scope="module")
def failed_deploy(host, run_playbook, first_host, stack, ansible_vars, seed):
    """A deploy whose sgivu-user never gets healthy, with a probe on a route the gateway answers.

    Its catalog also adds a public service with its route, started after sgivu-user (so never):
    the way back routes only what the last good release runs."""
    image = f"{ansible_vars['stack_registry']}/sgivu-user:{NEVER_HEALTHY}"
    added = {"image": image.rsplit(":", 1)[0], "tag": NEVER_HEALTHY, "port": 8099, "depends_on": ["sgivu-user"],
             "health": {"path": "/actuator/health", "interval": 30, "start_interval": 1, "timeout": 20}}
    before = {
        "digests": running_digests(host, stack),
        "env": sha256(host, f"/opt/{stack}/stack.env"),
        "compose": sha256(host, f"/opt/{stack}/compose.yml"),
        "last_good": [r["id"] for r in json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
                      if r["status"] == "good"][-1],
    }
    # A new POSTGRES_PASSWORD too: the database takes it first, and must have the old one back after.
    path = seed("/sgivu/bench-failed", {"POSTGRES_PASSWORD": ROTATED_BACK})
    with Probe(f"http://{host.interface('eth0').addresses[0]}/v1/version") as watch:
        run = run_playbook("deploy.yml", "--limit", first_host, "-vvv", "-e", "health_timeout=20",
                           "-e", f"ssm_secrets_path={path}",
                           "-e", json.dumps({"compose_stack_images": {"sgivu-user": image}}),
                           "-e", with_public_service(ansible_vars, added))
    return {"run": run, "before": before, "watch": watch}


def test_a_deploy_that_fails_after_the_host_changed_fails(failed_deploy):
    output = failed_deploy["run"].stdout
    assert failed_deploy["run"].returncode != 0
    assert "sgivu-user" in output and "did not become healthy" in output


def test_the_failure_names_the_last_good_release_running_again(failed_deploy):
    output = failed_deploy["run"].stdout
    # On failure, show the run's closing message (what failed, and what the rescue did).
    closing = output[output.rfind("fatal: ["):][:3000]
    assert f"The last good release {failed_deploy['before']['last_good']} runs again" in output, closing


def test_the_failure_shows_the_service_last_log_lines(failed_deploy):
    assert "Last log lines:" in failed_deploy["run"].stdout and "/actuator/health" in failed_deploy["run"].stdout


def test_after_the_failure_every_service_runs_the_digest_it_ran_before(host, failed_deploy, stack):
    assert running_digests(host, stack) == failed_deploy["before"]["digests"]


def test_after_the_failure_the_env_file_and_project_are_those_of_the_last_good_release(host, failed_deploy, stack):
    assert sha256(host, f"/opt/{stack}/stack.env") == failed_deploy["before"]["env"]
    assert sha256(host, f"/opt/{stack}/compose.yml") == failed_deploy["before"]["compose"]


def test_the_gateway_served_throughout_the_failed_deploy(failed_deploy):
    watch = failed_deploy["watch"]
    assert len(watch.results) > 50, "the probe ran too briefly to tell anything"
    assert watch.failures == []


def test_after_the_failure_postgres_takes_its_old_password_again(host, failed_deploy, stack, ssm_parameters):
    good = ssm_parameters(GOOD_PATH)[f"{GOOD_PATH}/POSTGRES_PASSWORD"]
    assert logs_in(host, stack, "sgivu-postgres", good)
    assert not logs_in(host, stack, "sgivu-postgres", ROTATED_BACK)


def test_the_way_back_neither_runs_nor_routes_the_public_service_the_change_added(host, failed_deploy, stack):
    # Its route is in the catalog the run was given: Nginx must not name an upstream the way back has no
    # container for (nginx -t would refuse it, and the restore with it).
    assert host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={stack} "
                             f"--filter label=com.docker.compose.service={EXTRA}") == ""
    assert not upstream_named(host.check_output("nginx -T 2>/dev/null"))


def test_the_failed_release_is_recorded_with_what_was_put_back(host, failed_deploy, stack):
    latest = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]
    assert latest["status"] == "failed"
    assert latest["restored"] == failed_deploy["before"]["last_good"]
    assert "sgivu-user" in latest["error"]


def test_no_secret_is_in_the_output_of_a_failed_run_at_vvv(failed_deploy, ssm_parameters):
    secrets = {name: value for name, value in ssm_parameters(GOOD_PATH).items() if not name.endswith("_URL")}
    secrets["rotated POSTGRES_PASSWORD"] = ROTATED_BACK
    assert_no_value_shown(failed_deploy["run"].stdout, secrets)


def test_a_deploy_after_the_failure_changes_nothing(run_playbook, first_host, failed_deploy, changed_counts):
    run = run_playbook("deploy.yml", "--limit", first_host)
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_counts(run.stdout) == [0]


def test_no_second_postgres_ever_mounted_the_data_volume(host, stack):
    assert postgres_mounts(host) == [f"{stack}-sgivu-postgres-1"]


# --- a failed re-pull leaves nothing behind for the next deploy ------------------------------------
@pytest.fixture(scope="module")
def vehicle_tag_moved(host, registry, repositories, run_playbook, first_host, stack, ansible_vars):
    """sgivu-vehicle's catalog tag re-pushed with the never-healthy image, then a re-pull update of it."""
    tag = str(ansible_vars["stack_services"]["sgivu-vehicle"]["tag"])
    before = running_digests(host, stack)["sgivu-vehicle"]
    moved = MovedTags(registry, f"{repositories}/sgivu-vehicle")
    try:
        moved.move(tag, NEVER_HEALTHY)
        update = run_playbook("update.yml", "--limit", first_host, "-e", "service=sgivu-vehicle", "-e", "health_timeout=20")
        deploy = run_playbook("deploy.yml", "--limit", first_host)
        yield {"before": before, "update": update, "deploy": deploy}
    finally:
        moved.put_back()


def test_a_repull_of_a_moved_tag_that_never_gets_healthy_fails(vehicle_tag_moved):
    assert vehicle_tag_moved["update"].returncode != 0
    assert "sgivu-vehicle" in vehicle_tag_moved["update"].stdout and "did not become healthy" in vehicle_tag_moved["update"].stdout


def test_a_deploy_after_it_keeps_the_digest_and_does_not_pick_up_the_rejected_image(host, vehicle_tag_moved, stack,
                                                                                 changed_counts):
    """The failed re-pull moved the host's local tag; a deploy never trusts a local tag over the digest it runs."""
    assert vehicle_tag_moved["deploy"].returncode == 0, vehicle_tag_moved["deploy"].stdout[-3000:]
    assert changed_counts(vehicle_tag_moved["deploy"].stdout) == [0]
    assert running_digests(host, stack)["sgivu-vehicle"] == vehicle_tag_moved["before"]
