"""update.yml on a deployed stack, watched from outside by a probe through Nginx (first of the
update scenario's files: test_2_rollback.py and test_3_moved_tag.py build on what it leaves).

The tests run in file order and build on each other: the gateway moves to the next release, then a
service behind the registry and config and ml (found by DNS name), start-first, then a release of
sgivu-user and one of sgivu-config that never get healthy, then one that took over before ml's never
got healthy (the rescue puts it back start-first), then the registry itself (stop-first) to the next
release and to one that never gets healthy, then the gateway meets a release that never gets healthy.
"""
from __future__ import annotations

import json
import time

import pytest
from bench_images import NEVER_HEALTHY, NEXT  # tests/lib, on the path from conftest.py
from bench_registry import MovedTags


def service_containers(host, stack: str, service: str) -> list[dict]:
    ids = host.check_output(
        f"docker ps -aq --filter label=com.docker.compose.project={stack} --filter label=com.docker.compose.service={service}"
    ).split()
    return json.loads(host.check_output(f"docker inspect {' '.join(ids)}")) if ids else []


def gateway_containers(host, stack: str) -> list[dict]:
    return service_containers(host, stack, "sgivu-gateway")


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


def served_within(via_nginx, path: str, seconds: float) -> bool:
    """Whether a GET of ``path`` through Nginx answers 200 within ``seconds``."""
    deadline = time.monotonic() + seconds
    while via_nginx(path)[0] != 200:
        if time.monotonic() >= deadline:
            return False
        time.sleep(1)
    return True


def test_gateway_update_drops_no_request(host, run_playbook, probe, via_nginx, changed_counts):
    """The gateway's own answer, and GET and POST through it to sgivu-user (lb://)."""
    # Right after a fresh deploy the registry may still keep its list from the clients (its 45 s
    # sync-empty wait, README "Updating a service"): the gateway has no instance to call until then.
    assert served_within(via_nginx, "/v1/users/7", 90), "the gateway does not reach sgivu-user before the update"
    gets, posts = api_probes(probe)
    with probe("/v1/version") as watch, gets, posts:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    assert run.returncode == 0, run.stdout[-3000:]
    for probed in (watch, gets, posts):
        assert len(probed.results) > 50, "the probe ran too briefly to tell anything"
        assert probed.failures == []
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_only_the_new_gateway_runs_after_the_swap(host, stack):
    containers = gateway_containers(host, stack)
    assert len(containers) == 1
    assert f"/sgivu-gateway:{NEXT}@sha256:" in containers[0]["Config"]["Image"]


def test_nginx_follows_the_new_container(host, ansible_vars, stack):
    port = gateway_containers(host, stack)[0]["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    upstreams = host.file(f"/etc/nginx/conf.d/{stack}-upstreams.conf").content_string
    assert f"server 127.0.0.1:{port};" in upstreams


def api_probes(probe):
    """GET and POST through Nginx and the gateway to sgivu-user (lb://, found in the registry)."""
    return probe("/v1/users/7", interval=0.05), probe("/v1/users", interval=0.05, method="POST", data=b'{"name": "ana"}')


def watched_update(host, run_playbook, probe, service: str, version: str, *extra: str, until=None, **kw):
    """update.yml of ``service`` to ``version`` with api_probes running, until it ends and then
    ``until(run)`` returned; (the run, the GET probe, the POST probe)."""
    gets, posts = api_probes(probe)
    with gets, posts:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", f"service={service}", "-e", f"version={version}", *extra, **kw)
        if until is not None:
            until(run)
    return run, gets, posts


def test_a_service_behind_the_registry_is_swapped_start_first_dropping_no_request(host, run_playbook, probe, stack):
    """Issue 11: the new sgivu-user is UP in the registry before the old one leaves service there, and
    the old one stops only once the gateway's cached instance list expired."""
    ml = [(c["Id"], c["State"]["StartedAt"]) for c in service_containers(host, stack, "sgivu-ml")]
    assert ml, "no sgivu-ml to watch"
    # From inside the execution environment image, as an AWX job template runs it (issue 14).
    run, gets, posts = watched_update(host, run_playbook, probe, "sgivu-user", NEXT, in_ee=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ansible-navigator run update.yml" in run.stdout.splitlines()[0]
    assert "Hand over to the new containers (in the registry or under the DNS name; the callers' cache waited out), sgivu-user" in run.stdout
    for watch in (gets, posts):
        assert len(watch.results) > 100, "the probe ran too briefly to tell anything"
        assert watch.failures == []
    assert NEXT in gets.versions and len(gets.versions) == 2 and gets.results[-1][1] == NEXT
    containers = service_containers(host, stack, "sgivu-user")
    assert len(containers) == 1 and f"/sgivu-user:{NEXT}@sha256:" in containers[0]["Config"]["Image"]
    # sgivu-ml depends on sgivu-user: it was left running, not restarted with it.
    assert [(c["Id"], c["State"]["StartedAt"]) for c in service_containers(host, stack, "sgivu-ml")] == ml


@pytest.mark.parametrize("service", ["sgivu-config", "sgivu-ml"])
def test_a_service_found_by_its_dns_name_is_swapped_start_first_dropping_no_request(host, run_playbook, probe, stack,
                                                                                     ansible_vars, service):
    """Issue 11: sgivu-config (read at start-up) and sgivu-ml (the gateway calls it at http://sgivu-ml:8000,
    keeping what DNS answered for a while, as the JVM does): the new container starts beside the old one
    and is healthy; the old one leaves the name, serves on while the callers' DNS cache passes, then stops.
    Probed through Nginx and the gateway: sgivu-user (lb://) and sgivu-ml (by its DNS name)."""
    ml_gets = probe("/v1/ml/predictions/7", interval=0.05)
    ml_posts = probe("/v1/ml/predictions", interval=0.05, method="POST", data=b'{"vehicle": 7}')
    with ml_gets, ml_posts:
        run, gets, posts = watched_update(host, run_playbook, probe, service, NEXT)
    assert run.returncode == 0, run.stdout[-3000:]
    assert f"Start the new containers beside the running ones, healthy before they take traffic, of {service}" in run.stdout
    for watch in (gets, posts, ml_gets, ml_posts):
        assert len(watch.results) > 100, "the probe ran too briefly to tell anything"
        assert watch.failures == []
    if service == "sgivu-ml":
        assert NEXT in ml_gets.versions and ml_gets.results[-1][1] == NEXT and ml_posts.results[-1][1] == NEXT
    containers = service_containers(host, stack, service)
    assert len(containers) == 1 and f"/{service}:{NEXT}@sha256:" in containers[0]["Config"]["Image"]
    # What its callers reach under the name now.
    assert by_dns_name(host, stack, service, ansible_vars["stack_services"][service]["port"], "/version") == NEXT


def by_dns_name(host, stack: str, service: str, port: int, path: str) -> str:
    """What ``service`` answers at ``path``, asked by its DNS name from inside the gateway, as its
    callers on the stack network ask it."""
    (gateway,) = [c["Id"] for c in gateway_containers(host, stack) if c["State"]["Running"]]
    return host.check_output(f"docker exec {gateway} curl -fsS --max-time 5 http://{service}:{port}{path}").strip()


@pytest.mark.parametrize("service", ["sgivu-user", "sgivu-config"])
def test_a_never_healthy_service_leaves_the_old_one_serving(host, run_playbook, probe, stack, ansible_vars, service):
    """Issue 11: a release that never gets healthy is removed; the old container never leaves service:
    the gateway's calls to sgivu-user go on throughout and it is UP in the registry afterwards;
    afterwards sgivu-config runs the same container and answers under its DNS name with the release
    it ran (the name is asked once the run ended, not during it)."""
    before = [c["Id"] for c in service_containers(host, stack, service)]
    run, gets, posts = watched_update(host, run_playbook, probe, service, NEVER_HEALTHY, "-e", "health_timeout=20")
    assert run.returncode != 0
    assert f"the new {service} did not become healthy" in run.stdout, run.stdout[-3000:]
    for watch in (gets, posts):
        assert len(watch.results) > 100, "the probe ran too briefly to tell anything"
        assert watch.failures == []
        assert watch.versions == {NEXT}
    assert [c["Id"] for c in service_containers(host, stack, service)] == before
    if service == "sgivu-user":
        assert registry_shows(host, "SGIVU-USER")
    else:
        port = ansible_vars["stack_services"][service]["port"]
        assert by_dns_name(host, stack, service, port, "/version") == NEXT


def running_ref(host, stack: str, service: str) -> tuple[str, str, str]:
    """(the Id, the tag, the repository@digest) of the one container of ``service``."""
    (container,) = service_containers(host, stack, service)
    name, digest = container["Config"]["Image"].split("@", 1)
    repository, tag = name.rsplit(":", 1)
    return container["Id"], tag, f"{repository}@{digest}"


def test_a_service_that_took_over_before_a_later_step_failed_comes_back_start_first_dropping_no_request(
        host, run_playbook, probe, stack, registry, repositories, ansible_vars):
    """sgivu-user takes over (start-first, in the registry), then the new sgivu-ml never gets healthy
    (its tag moved to a release that never does; `update.yml` without a version re-pulls the tags).
    The rescue puts the last good sgivu-user back start-first: beside the one that took over, UP in
    the registry before that one leaves service, the callers' cache waited out, then the SIGTERM. No
    call through Nginx and the gateway fails, to sgivu-user (lb://) or to sgivu-ml, whose old container
    kept its DNS name while the new one, taken out of it before it started, never got healthy."""
    user_id, user_tag, user_ref = running_ref(host, stack, "sgivu-user")
    ml_id, ml_tag, ml_ref = running_ref(host, stack, "sgivu-ml")
    other = NEXT if user_tag != NEXT else str(ansible_vars["stack_services"]["sgivu-user"]["tag"])
    user_tags, ml_tags = MovedTags(registry, f"{repositories}/sgivu-user"), MovedTags(registry, f"{repositories}/sgivu-ml")
    try:
        user_tags.move(user_tag, other)        # healthy, another release: sgivu-user takes it
        ml_tags.move(ml_tag, NEVER_HEALTHY)    # then sgivu-ml fails
        gets, posts = api_probes(probe)
        ml_gets = probe("/v1/ml/predictions/7", interval=0.05)
        with gets, posts, ml_gets:
            run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                               "-e", "service=sgivu-user,sgivu-ml", "-e", "health_timeout=20")
    finally:
        user_tags.put_back()
        ml_tags.put_back()
        # The host pulled the moved tags: they name what they named before again there too.
        host.check_output(f"docker tag {user_ref} {user_ref.split('@')[0]}:{user_tag}")
        host.check_output(f"docker tag {ml_ref} {ml_ref.split('@')[0]}:{ml_tag}")
    assert run.returncode != 0
    assert "the new sgivu-ml did not become healthy" in run.stdout
    # Named: the one service the way back replaced (sgivu-ml's old container never stopped).
    assert "runs again (health checked): sgivu-user was put back;" in " ".join(run.stdout.split()), run.stdout[-3000:]
    # The rescue's hand-over ran (the default callback prints a skipped task's banner too).
    handover = run.stdout.split("Hand the restored services over in their registry or under their DNS name", 1)
    assert len(handover) == 2 and handover[1].split("TASK [", 1)[0].count("changed: [") == 1, run.stdout[-3000:]
    for watch in (gets, posts, ml_gets):
        assert len(watch.results) > 100, "the probe ran too briefly to tell anything"
        assert watch.failures == []
    assert other in gets.versions, "the probe never saw the release sgivu-user took over with"
    assert gets.results[-1][1] == user_tag and posts.results[-1][1] == user_tag
    (new_id, _, ref), ml_after = running_ref(host, stack, "sgivu-user"), running_ref(host, stack, "sgivu-ml")
    assert ref == user_ref and new_id != user_id, "sgivu-user runs the digest it ran before, in a new container"
    assert ml_after == (ml_id, ml_tag, ml_ref), "the old sgivu-ml kept running"


def registry_shows(host, app: str) -> bool:
    """Whether the registry lists an UP instance of ``app``, read as an operator on the host reads it
    (its allowlisted /eureka/ route); a registry that keeps its list from the clients answers 403."""
    out = host.run(f"curl -s -H 'Accept: application/json' -w '\\n%{{http_code}}' http://127.0.0.1/eureka/apps/{app}")
    body, _, code = out.stdout.rpartition("\n")
    if code != "200":
        return False
    found = json.loads(body)["application"]["instance"]
    return any(i["status"] == "UP" for i in ([found] if isinstance(found, dict) else found))


def wait_until_the_registry_shows_sgivu_user(host, ansible_vars) -> None:
    """Until the new registry shows its list again, sgivu-user registered there, and the gateway's
    cached list expired once after that (it fetches the new registry's)."""
    deadline = time.monotonic() + 120
    while not registry_shows(host, "SGIVU-USER") and time.monotonic() < deadline:
        time.sleep(2)
    assert registry_shows(host, "SGIVU-USER"), "sgivu-user did not register again with the new registry"
    time.sleep(int(ansible_vars["stack_registry_cache_seconds"]))


@pytest.mark.parametrize("version,outcome", [(NEXT, 0), (NEVER_HEALTHY, 1)], ids=["next", "never-healthy"])
def test_the_registry_itself_is_recreated_without_a_failed_call_through_the_gateway(host, run_playbook, probe, stack,
                                                                                   ansible_vars, version, outcome):
    """Issue 11: sgivu-discovery is stop-first (one fixed address). The new registry keeps its list from
    the clients for its wait when sync is empty (the catalog's 45 s) while every instance registers again
    at its next renewal; the gateway keeps calling the instances it knew, through the restart and after.
    A release that never gets healthy is replaced by the last good one again, the same way."""
    assert registry_shows(host, "SGIVU-USER")
    before = [c["Id"] for c in service_containers(host, stack, "sgivu-discovery")]
    run, gets, posts = watched_update(host, run_playbook, probe, "sgivu-discovery", version, "-e", "health_timeout=20",
                                      until=lambda run: wait_until_the_registry_shows_sgivu_user(host, ansible_vars))
    assert (run.returncode != 0) == bool(outcome), run.stdout[-3000:]
    if outcome:
        assert "sgivu-discovery" in run.stdout and "did not become healthy" in run.stdout
    for watch in (gets, posts):
        assert len(watch.results) > 300, "the probe ran too briefly to tell anything"
        assert watch.failures == []
    containers = service_containers(host, stack, "sgivu-discovery")
    assert len(containers) == 1 and f"/sgivu-discovery:{NEXT}@sha256:" in containers[0]["Config"]["Image"]
    assert containers[0]["Id"] not in before, "the registry was not recreated"
    port = ansible_vars["stack_services"]["sgivu-discovery"]["port"]
    assert by_dns_name(host, stack, "sgivu-discovery", port, "/version") == NEXT


def test_the_same_update_again_changes_nothing(host, run_playbook, changed_counts):
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                       "-e", "service=sgivu-gateway", "-e", f"version={NEXT}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert changed_counts(run.stdout) == [0]


def test_a_deploy_after_the_update_keeps_the_new_versions(host, run_playbook, changed_counts, via_nginx):
    # Also from inside the execution environment: every SSM lookup, compose call and health check.
    run = run_playbook("deploy.yml", "--limit", host.backend.get_hostname(), in_ee=True)
    assert run.returncode == 0, run.stdout[-3000:]
    assert "ansible-navigator run deploy.yml" in run.stdout.splitlines()[0]
    assert changed_counts(run.stdout) == [0]
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_a_never_healthy_release_is_undone_by_itself_and_drops_no_request(host, run_playbook, probe, via_nginx, stack):
    before = [c["Id"] for c in gateway_containers(host, stack)]
    gets, posts = api_probes(probe)
    with probe("/v1/version") as watch, gets, posts:
        run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                           "-e", "service=sgivu-gateway", "-e", f"version={NEVER_HEALTHY}", "-e", "health_timeout=20")
    assert run.returncode != 0
    assert "sgivu-gateway" in run.stdout and "did not become healthy" in run.stdout
    assert "listening on" in run.stdout, "the failure should show the service's last log lines"
    # The step is named as written, and only the new container is blamed and quoted: the old one serves.
    assert "Start the new containers beside the running ones" in run.stdout
    assert f"{NEVER_HEALTHY} starting" in run.stdout
    # One sentence each, as the operator reads them (the step's message ended with its own full stop).
    said = " ".join(run.stdout.split())
    assert "the running ones never stopped. Last log lines:" in said
    assert "runs again (health checked): nothing had to be put back, its containers never stopped;" in said
    assert not [c["Name"] for c in gateway_containers(host, stack) if c["Name"].lstrip("/") in run.stdout]
    for probed in (watch, gets, posts):
        assert len(probed.results) > 100, "the probe ran too briefly to tell anything"
        assert probed.failures == []
    assert watch.versions == {NEXT}
    assert [c["Id"] for c in gateway_containers(host, stack)] == before
    assert via_nginx("/v1/version")[1]["version"] == NEXT


@pytest.mark.parametrize("playbook, args, problems", [
    ("update.yml", ["service=sgivu-nope,sgivu-gateway", f"version={NEXT}", "health_timeout=-5", "lock_wait=abc"],
     ['service "sgivu-nope" is not a service the catalog runs;', 'health_timeout must be a whole number of seconds', 'got "-5"',
      'lock_wait must be a whole number of seconds', 'got "abc"']),
    # Ansible's bool would take "ture" as false: the rollback would run without the dump asked for.
    ("rollback.yml", ["restore_database=ture", "health_timeout=2.5", "to_release=latest"],
     ['restore_database must be true or false, got "ture"', 'health_timeout must be', 'got "2.5"',
      'to_release must be a release id as status.yml lists them (the UTC time it was made, YYYYMMDDTHHMMSSZ, -2 added for a '
      'second one in that second), got "latest"']),
    ("deploy.yml", ["lock_wait=-1"], ['lock_wait must be a whole number of seconds', 'got "-1"']),
    # update.yml's arguments: deploy.yml would deploy the catalog and say nothing of them.
    ("deploy.yml", ["service=sgivu-gateway", f"version={NEXT}"],
     ["deploy.yml deploys the whole catalog and takes no -e service, -e version: update.yml moves named services"]),
    # Options of roles the transaction includes only once the new release runs (stack_health,
    # alb_target's register): Ansible would refuse them there, after the swap, and the rollback follow.
    ("update.yml", ["service=sgivu-gateway", f"version={NEXT}", "stack_health_poll_interval=abc",
                    "alb_target_healthy_timeout=soon", "nginx_tls_enabled=maybe"],
     ["Settings the roles cannot take (3 problems): alb_target_healthy_timeout (role alb_target) must be a whole number, "
      'got "soon"; nginx_tls_enabled (role nginx) must be true or false, got "maybe"; stack_health_poll_interval (role '
      'stack_health) must be a whole number, got "abc". Nothing was changed.']),
    # A catalog problem too, before docker_host touches the host: a start-first Eureka client that
    # would register UP before it is healthy (the catalog as an inventory might hold it).
    ("deploy.yml", ['{"stack_services": {"sgivu-user": {"image": "r/sgivu-user", "tag": "1.0.0", "port": 8081, '
                    '"health": {"path": "/actuator/health"}, "env": {"EUREKA_URL": "http://sgivu-discovery:8761/eureka"}}}}'],
     ["The stack catalog is invalid", "service 'sgivu-user': is updated start-first and registers with Eureka (EUREKA_URL), "
      "so its env must set EUREKA_CLIENT_HEALTHCHECK_ENABLED:", "(it is not set)"]),
])
def test_bad_run_arguments_are_refused_together_before_anything_changes(host, run_playbook, stack, playbook, args,
                                                                         problems):
    running = f"docker ps -q --no-trunc --filter label=com.docker.compose.project={stack}"
    before = sorted(host.check_output(running).split())
    run = run_playbook(playbook, "--limit", host.backend.get_hostname(), *[a for arg in args for a in ("-e", arg)])
    assert run.returncode != 0
    # The message as the operator reads it: YAML output folds long lines and doubles a single quote.
    said = " ".join(run.stdout.split()).replace("''", "'")
    for problem in problems:
        assert problem in said, run.stdout[-3000:]
    assert "Nothing was changed." in said
    # Our message, not Ansible's words for a filter that raised, and before any host was prepared or locked.
    assert "filter plugin" not in said and "Error while resolving" not in said and "argument_spec_data" not in said
    assert "docker_host" not in said and "Take the deploy lock" not in said
    assert sorted(host.check_output(running).split()) == before


def test_a_tag_that_does_not_exist_is_refused_before_anything_stops(host, run_playbook, stack, via_nginx):
    before = [c["Id"] for c in gateway_containers(host, stack)]
    run = run_playbook("update.yml", "--limit", host.backend.get_hostname(),
                       "-e", "service=sgivu-gateway", "-e", "version=9.9.9-does-not-exist")
    assert run.returncode != 0
    assert "sgivu-gateway:9.9.9-does-not-exist" in run.stdout
    assert [c["Id"] for c in gateway_containers(host, stack)] == before
    assert via_nginx("/v1/version")[1]["version"] == NEXT


def test_every_update_is_in_the_release_history(host, stack):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
    good = [r for r in history if r["status"] == "good"]
    purposes = [r["purpose"] for r in good]
    assert any(p.startswith("update sgivu-gateway") for p in purposes)
    assert any(p.startswith("update sgivu-user") for p in purposes)
    assert f":{NEXT}@sha256:" in good[-1]["services"]["sgivu-gateway"]["image"]


def test_the_never_healthy_attempt_is_recorded_as_failed_and_put_back(host, stack):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"]
    failed = [r for r in history if r["status"] == "failed" and NEVER_HEALTHY in r["purpose"]]
    assert failed and failed[-1]["restored"], "the failed update should name the release put back"
