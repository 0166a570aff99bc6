"""After deploy.yml on fresh bench hosts: the stack as an operator and an attacker see it.

Everything is checked from outside: requests through Nginx, sockets on the host, rows in
the database, the env file's mode, and the output of real ansible-playbook runs.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import pytest
import testinfra
from bench_images import BENCH, NEXT  # tests/lib (bench/images.yml), on the path from conftest.py
from testinfra.utils.ansible_runner import AnsibleRunner

PUBLIC_PORTS = {80}


# --- helpers ---------------------------------------------------------------------------------
def curl(host, path: str, method: str = "GET", data: str | None = None):
    """A request through the host's Nginx, from the host itself: (status, body)."""
    body = f"--data {data!r}" if data is not None else ""
    # The body file is emptied first: a refused connection writes none, and a body left from an earlier request
    # must not pass for this one's.
    result = host.run(f": > /tmp/.body; curl -s -o /tmp/.body -w '%{{http_code}}' -X {method} {body} 'http://127.0.0.1{path}'")
    return int(result.stdout or 0), host.file("/tmp/.body").content_string


def stack_containers(host, stack: str) -> list[dict]:
    ids = host.check_output(f"docker ps -aq --filter label=com.docker.compose.project={stack}").split()
    return json.loads(host.check_output(f"docker inspect {' '.join(ids)}")) if ids else []


def container_ids(host, stack: str) -> dict[str, str]:
    return {c["Name"]: c["Id"] for c in stack_containers(host, stack)}


def service_container_ids(host, stack: str, service: str) -> list[str]:
    """The IDs of a service's running containers."""
    return host.check_output(
        f"docker ps -q --filter label=com.docker.compose.project={stack} "
        f"--filter label=com.docker.compose.service={service}"
    ).split()


def service_exec(host, stack: str, service: str, command: str):
    ids = service_container_ids(host, stack, service)
    assert ids, f"no running container for {service}"
    return host.run(f"docker exec {ids[0]} {command}")


def nginx_workers(host) -> str:
    """The PIDs of Nginx's worker processes: a reload replaces every one of them."""
    return host.check_output("pgrep -f '^nginx: worker process' | sort -n | tr '\\n' ' '")


def sha256(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


@pytest.fixture(scope="module")
def stack(ansible_vars) -> str:
    return ansible_vars["stack_name"]


@pytest.fixture(scope="module")
def site(ansible_vars, stack) -> str:
    """The Nginx site's file; its upstreams are beside it, in <site>-upstreams.conf."""
    return f"/etc/nginx/conf.d/{ansible_vars.get('nginx_site_name', stack)}.conf"


@pytest.fixture(scope="module")
def env_file(ansible_vars) -> str:
    return f"/opt/{ansible_vars['stack_name']}/stack.env"


@pytest.fixture(scope="module")
def registry_open(host, ansible_vars) -> None:
    """Wait until the registry (sgivu-discovery) answers reads through its allowlisted route.

    A registry that started with an empty list answers reads with 403 for
    EUREKA_SERVER_WAITTIMEINMSWHENSYNCEMPTY (45 s in the catalog) while the clients register again,
    and the gateway has no instance to call until it opens; the converge's own checks end sooner
    than that on a fresh stack. Fails when it stays closed for its window and 30 s more."""
    env = ansible_vars["stack_services"]["sgivu-discovery"].get("env") or {}
    deadline = time.monotonic() + int(env.get("EUREKA_SERVER_WAITTIMEINMSWHENSYNCEMPTY", 0)) / 1000 + 30
    while (status := curl(host, "/eureka/apps")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(2)
    assert status == 200, f"the registry still answers {status} to reads past its sync-empty window"


@pytest.fixture(scope="module")
def first_host(ansible_vars):
    return ansible_vars["groups"]["stack_hosts"][0]


# --- the stack runs ----------------------------------------------------------------------------
def test_every_enabled_service_has_a_healthy_container(host, stack, ansible_vars):
    enabled = {n for n, s in ansible_vars["stack_services"].items() if s.get("enabled", True)}
    healthy = {
        c["Config"]["Labels"]["com.docker.compose.service"]
        for c in stack_containers(host, stack)
        if c["State"].get("Health", {}).get("Status") == "healthy"
    }
    assert enabled == healthy


def test_every_service_that_names_the_registry_is_registered_up_there_with_its_port(host, ansible_vars, registry_open):
    """As an operator on the host sees the discovery service, through its allowlisted /eureka/ route."""
    enabled = {n: s for n, s in ansible_vars["stack_services"].items() if s.get("enabled", True)}
    clients = {n.upper(): s["port"] for n, s in enabled.items() if (s.get("env") or {}).get("EUREKA_URL")}
    assert len(clients) >= 5, "the bench catalog names the registry in fewer services than SGIVU does"
    listing = json.loads(host.check_output("curl -fsS -H 'Accept: application/json' http://127.0.0.1/eureka/apps"))
    registered = {app["name"]: sorted((i["status"], int(i["port"]["$"])) for i in app["instance"])
                  for app in listing["applications"]["application"]}
    assert registered == {app: [("UP", port)] for app, port in clients.items()}


def test_nginx_routes_api_paths_to_the_gateway(host):
    status, body = curl(host, "/v1/session/x")
    assert status == 200
    assert json.loads(body)["service"] == "sgivu-gateway"


@pytest.mark.parametrize("prefix,service", sorted(BENCH.routes("sgivu-gateway").items()))
def test_an_api_call_crosses_nginx_and_the_gateway_to_its_business_service(host, prefix, service, registry_open):
    """GET and POST, as the browser sends them: Nginx -> sgivu-gateway -> lb://service through the
    registry (sgivu-ml by its DNS name), answered by the business service itself."""
    for method in ("GET", "POST"):
        status, body = curl(host, f"{prefix}/7", method, "{}" if method == "POST" else None)
        assert status == 200, f"{method} {prefix}/7: {status} {body}"
        assert (json.loads(body)["service"], json.loads(body)["method"]) == (service, method)


def test_nginx_routes_login_to_auth(host):
    status, body = curl(host, "/login")
    assert status == 200
    assert json.loads(body)["service"] == "sgivu-auth"


def test_nginx_routes_oidc_discovery_to_auth(host):
    status, body = curl(host, "/.well-known/openid-configuration")
    assert status == 200
    assert json.loads(body)["service"] == "sgivu-auth"


def test_oauth2_authorization_goes_to_the_gateway_not_auth(host):
    status, body = curl(host, "/oauth2/authorization/sgivu")
    assert status == 200
    assert json.loads(body)["service"] == "sgivu-gateway"


def test_gateway_sessions_live_in_redis(host):
    first = json.loads(curl(host, "/v1/session")[1])["counter"]
    second = json.loads(curl(host, "/v1/session")[1])["counter"]
    assert second == first + 1


def test_actuator_env_is_refused_through_nginx(host):
    assert curl(host, "/v1/actuator/env")[0] == 403
    assert curl(host, "/actuator/env")[0] == 403


def test_actuator_health_stays_open_through_nginx(host):
    assert curl(host, "/v1/actuator/health")[0] == 200


def test_eureka_answers_the_allowlisted_address(host, registry_open):
    status, body = curl(host, "/eureka/apps")
    assert status == 200
    assert "SGIVU-GATEWAY" in [app["name"] for app in json.loads(body)["applications"]["application"]]


def test_eureka_is_refused_from_a_non_allowlisted_address(host):
    address = host.interface("eth0").addresses[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{address}/eureka/apps", timeout=10)
    assert refused.value.code == 403


def test_actuator_env_is_refused_from_a_non_allowlisted_address(host):
    address = host.interface("eth0").addresses[0]
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://{address}/v1/actuator/env", timeout=10)
    assert refused.value.code == 403


def test_nginx_does_not_say_its_version(host):
    headers = host.check_output("curl -sI http://127.0.0.1/v1/x")
    server = next(line for line in headers.splitlines() if line.lower().startswith("server:"))
    assert not re.search(r"\d", server)


# --- what listens on the host ------------------------------------------------------------------
def test_only_nginx_listens_on_non_loopback_addresses(host):
    public = set()
    for socket in host.socket.get_listening_sockets():
        proto, rest = socket.split("://")
        address, _, port = rest.rpartition(":")
        if proto == "tcp" and address not in ("127.0.0.1", "::1") and not address.startswith("127."):
            public.add(int(port))
    assert public == PUBLIC_PORTS


@pytest.mark.parametrize("port", [5432, 6379, 8761, 8888, 8081, 8082, 8083, 8084, 8000])
def test_internal_service_does_not_listen_on_the_host(host, port):
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert not host.socket(f"tcp://127.0.0.1:{port}").is_listening


@pytest.mark.parametrize("port", [8080, 9000])
def test_public_service_listens_on_loopback_only(host, port):
    assert host.socket(f"tcp://127.0.0.1:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening


# --- secrets -------------------------------------------------------------------------------------
def test_env_file_is_root_only(host, env_file):
    env = host.file(env_file)
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)


def test_env_file_holds_the_values_from_parameter_store(host, env_file, ansible_vars, ssm_parameters):
    expected = {name.rsplit("/", 1)[1]: value for name, value in ssm_parameters(ansible_vars["ssm_secrets_path"]).items()}
    written = {}
    for line in host.file(env_file).content_string.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            written[key] = value
    for key, value in expected.items():
        assert written.get(key) == value, f"{key} differs from Parameter Store"


# --- a second deploy ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def second_deploy(run_playbook):
    """Write a row through a service on every host, then run deploy.yml once more with -v."""
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    hosts = {
        name: testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")
        for name in AnsibleRunner(inventory).get_hosts("stack_hosts")
    }
    marker = f"row-{int(time.time())}"
    before = {}
    for name, each in hosts.items():
        stack = each.ansible.get_variables()["stack_name"]
        written = service_exec(each, stack, "sgivu-user", f"curl -fsS -X POST --data {marker} http://127.0.0.1:8081/items")
        assert written.rc == 0, written.stderr
        before[name] = container_ids(each, stack)
    run = run_playbook("deploy.yml", "-v")
    return {"marker": marker, "before": before, "run": run}


def test_second_deploy_succeeds(second_deploy):
    assert second_deploy["run"].returncode == 0, second_deploy["run"].stdout[-3000:]


def test_second_deploy_changes_nothing(second_deploy):
    recap = re.findall(r"changed=(\d+)", second_deploy["run"].stdout.split("PLAY RECAP")[-1])
    assert recap and all(int(n) == 0 for n in recap), second_deploy["run"].stdout[-3000:]


def test_second_deploy_keeps_every_container(host, stack, second_deploy):
    assert container_ids(host, stack) == second_deploy["before"][host.backend.get_hostname()]


def test_row_written_before_survives_the_second_deploy(host, stack, second_deploy):
    rows = service_exec(host, stack, "sgivu-user", "curl -fsS http://127.0.0.1:8081/items").stdout
    assert second_deploy["marker"] in rows


def test_no_secret_value_appears_in_the_playbook_output(second_deploy, ansible_vars, ssm_parameters):
    output = second_deploy["run"].stdout
    # URLs are configuration, not secrets; name what leaked, never print the value.
    leaked = [
        name for name, value in ssm_parameters(ansible_vars["ssm_secrets_path"]).items()
        if not name.endswith("_URL") and value in output
    ]
    assert leaked == []


def test_release_history_records_every_service_by_digest(host, stack, ansible_vars):
    history = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)
    latest = history["releases"][-1]
    enabled = {n for n, s in ansible_vars["stack_services"].items() if s.get("enabled", True)}
    assert set(latest["services"]) == enabled
    for service in latest["services"].values():
        assert re.match(r"^.+@sha256:[0-9a-f]{64}$", service["digest"] or "")


# --- a host that drifted is repaired --------------------------------------------------------------
def test_a_drifted_docker_host_is_repaired_though_a_no_op_deploy_skips_its_checks(host, run_playbook, ansible_vars, stack):
    """docker_host reads the host in one call and skips what is already as wanted (the no-op deploy above
    changed nothing): a Compose plugin changed by hand, a deploy user taken out of the docker group and a
    disabled Docker unit are each put back by the next deploy, with the stack left running."""
    drifted = ansible_vars["groups"]["stack_hosts"][-1]  # the Debian 13 host; the first takes the bad-input runs
    if host.backend.get_hostname() != drifted:
        pytest.skip("the drift is made on the last host")
    plugin = "/usr/local/lib/docker/cli-plugins/docker-compose"
    user = ansible_vars["docker_host_users"][0]
    with open(os.path.join(os.environ["SGIVU_BENCH_DIR"], "bin", "docker-compose"), "rb") as wanted:
        wanted_sha256 = hashlib.sha256(wanted.read()).hexdigest()
    before = container_ids(host, stack)
    host.check_output(f"printf x >> {plugin} && chmod 0700 {plugin} && gpasswd -d {user} docker && systemctl disable docker")
    run = run_playbook("deploy.yml", "--limit", drifted)
    assert run.returncode == 0, run.stdout[-3000:]
    # The three repairs and nothing else: the stack's own plan had nothing to do.
    assert re.findall(r"changed=(\d+)", run.stdout.split("PLAY RECAP")[-1]) == ["3"], run.stdout[-3000:]
    assert sha256(host, plugin) == wanted_sha256
    assert host.file(plugin).mode == 0o755
    assert "docker" in host.check_output(f"id -nG {user}").split()
    assert host.check_output("systemctl is-enabled docker") == "enabled"
    assert host.run("docker compose version").rc == 0
    assert container_ids(host, stack) == before


def test_a_stopped_nginx_with_an_edited_site_is_repaired_by_a_deploy_with_nothing_else_to_do(
    host, run_playbook, ansible_vars, stack, site
):
    """A deploy whose stack has nothing to change reads Nginx too (one call): Nginx stopped and disabled, and
    its site edited by hand, make the host change - the deploy says why, and its transaction puts the site
    back as the deploy writes it and Nginx running, answering again, the stack's containers untouched."""
    drifted = ansible_vars["groups"]["stack_hosts"][-1]
    if host.backend.get_hostname() != drifted:
        pytest.skip("the drift is made on the last host")
    written = sha256(host, site)
    before = container_ids(host, stack)
    host.check_output(f"printf '# edited by hand\\n' >> {site} && systemctl disable --now nginx")
    assert curl(host, "/v1/session/x")[0] == 0  # nothing listens on port 80 now
    run = run_playbook("deploy.yml", "--limit", drifted)
    assert run.returncode == 0, run.stdout[-3000:]
    said = " ".join(run.stdout.split())  # the callback wraps long messages
    assert "Nginx is inactive, not active; Nginx is disabled, not enabled at boot" in said, run.stdout[-3000:]
    assert f"not as the deploy writes them: {site}" in said
    assert host.check_output("systemctl is-active nginx") == "active"
    assert host.check_output("systemctl is-enabled nginx") == "enabled"
    assert sha256(host, site) == written
    assert curl(host, "/v1/session/x")[0] == 200
    assert container_ids(host, stack) == before


# --- bad input: a clear error, nothing changed ---------------------------------------------------
@pytest.fixture()
def unchanged(host, stack, env_file):
    """Fingerprint of the running stack and env file, to compare after a failed run."""
    return lambda: (sha256(host, env_file), container_ids(host, stack), sha256(host, f"/opt/{stack}/compose.yml"))


def failing_run(run_playbook, first_host, *extra):
    run = run_playbook("deploy.yml", "--limit", first_host, *extra)
    assert run.returncode != 0, "the deploy should have failed"
    return run.stdout


def test_a_missing_parameter_fails_naming_it_and_changes_nothing(host, run_playbook, first_host, unchanged):
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    output = failing_run(run_playbook, first_host, "-e", "ssm_secrets_path=/sgivu/bench-missing")
    assert "JWT_KEYSTORE_PASSWORD" in output
    assert unchanged() == before


def test_a_mismatched_issuer_fails_naming_both_keys_and_changes_nothing(host, run_playbook, first_host, unchanged):
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    output = failing_run(run_playbook, first_host, "-e", "ssm_secrets_path=/sgivu/bench-mismatch")
    assert "ISSUER_URL" in output and "SGIVU_AUTH_URL" in output
    assert unchanged() == before


def test_two_internal_keys_fail_naming_the_key_and_change_nothing(host, run_playbook, first_host, unchanged):
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    output = failing_run(run_playbook, first_host, "-e", "ssm_secrets_path=/sgivu/bench-split")
    assert "SERVICE_INTERNAL_SECRET_KEY" in output
    assert unchanged() == before


def test_a_tag_that_does_not_exist_fails_naming_the_image_and_changes_nothing(
    host, run_playbook, first_host, unchanged, ansible_vars
):
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    image = f"{ansible_vars['stack_registry']}/sgivu-gateway:9.9.9-does-not-exist"
    output = failing_run(
        run_playbook, first_host, "-e", json.dumps({"compose_stack_images": {"sgivu-gateway": image}})
    )
    assert image in output
    assert unchanged() == before


# --- a deploy that changes the running stack dumps the databases first ---------------------------
def test_a_deploy_user_that_is_no_account_is_refused_not_created_and_a_string_of_users_works(
    host, run_playbook, first_host, unchanged, ansible_vars
):
    """ansible.builtin.user would create a misspelt deploy user, in the docker group: the role refuses a name that
    is no account, before anything changes. The users given as one comma-separated string are read as a list."""
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    user = ansible_vars["docker_host_users"][0]
    output = failing_run(run_playbook, first_host, "-e", json.dumps({"docker_host_users": [user, "sgivu-no-such-admin"]}))
    assert "docker_host_users names sgivu-no-such-admin, which is not an account" in " ".join(output.split())
    assert host.run("getent passwd sgivu-no-such-admin").rc == 2
    assert unchanged() == before
    # -e docker_host_users=NAME is a string: it passes the argument spec, and the role reads it as a list.
    run = run_playbook("deploy.yml", "--limit", first_host, "-e", f"docker_host_users={user}")
    assert run.returncode == 0, run.stdout[-3000:]
    assert re.findall(r"changed=(\d+)", run.stdout.split("PLAY RECAP")[-1]) == ["0"], run.stdout[-3000:]


def test_a_stack_name_compose_would_rewrite_is_refused_before_anything_changes(host, run_playbook, first_host, unchanged):
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    output = failing_run(run_playbook, first_host, "-e", "stack_name='Sgivu Prod'")
    assert 'stack_name "Sgivu Prod" is not a Compose project name' in output
    assert unchanged() == before


def test_a_route_or_setting_nginx_would_refuse_fails_before_the_host_is_prepared(
    host, run_playbook, first_host, unchanged, ansible_vars
):
    """Nginx's inputs are checked with the run's arguments, before docker_host's play: a deploy user the same run
    would add to the docker group is not added. The message keeps the variable's name as the operator writes it."""
    if host.backend.get_hostname() != first_host:
        pytest.skip("bad-input runs use the first host")
    before = unchanged()
    assert "docker" not in host.run("id -nG www-data").stdout.split()
    routes = [{"path": "/v1/", "service": "sgivu-gateway"},
              {"path": "/actuator/env", "match": "exact", "service": "sgivu-gateway"}]
    users = [ansible_vars["docker_host_users"][0], "www-data"]
    output = failing_run(run_playbook, first_host, "-e", json.dumps({"stack_routes": routes, "docker_host_users": users}))
    assert "would expose an actuator endpoint" in output
    assert "docker" not in host.run("id -nG www-data").stdout.split()
    # helper-33: a server_name carrying a directive went live and answered every request with 418;
    # a log outside /var/log/nginx/ could be a file Nginx, as root, should never append to.
    output = " ".join(failing_run(run_playbook, first_host, "-e", json.dumps({
        "nginx_upstream_log": "/var/log/wtmp", "nginx_server_name": "_; return 418",
        "docker_host_users": users})).split())
    assert "nginx_server_name is one or more host names separated by single spaces" in output
    assert "got '_; return 418'." in output
    assert "nginx_upstream_log must be a file in /var/log/nginx/" in output
    assert "got '/var/log/wtmp'. Nothing was changed." in output
    assert "docker" not in host.run("id -nG www-data").stdout.split()
    # helper-32: null took every route out of Nginx, and a non-ASCII path went live and failed its own health check.
    output = " ".join(failing_run(run_playbook, first_host, "-e", '{"stack_routes": null}').split())
    assert "stack_routes is null; give the list of routes ([] for none)" in output
    output = " ".join(failing_run(run_playbook, first_host, "-e", json.dumps(
        {"stack_routes": [{"path": "/v1/\u00e9", "service": "sgivu-gateway"}]})).split())
    assert ": path must be printable ASCII of letters, digits and" in output
    assert unchanged() == before


def test_a_changing_deploy_dumps_first_and_a_concurrent_one_fails_fast(host, run_playbook, first_host, second_deploy, stack, ansible_vars):
    """A deploy that moves sgivu-ml: a second deploy started while it holds the lock fails at once. Nginx,
    whose site and upstreams a private service does not change, is read and left as it is: not reloaded."""
    if host.backend.get_hostname() != first_host:
        pytest.skip("the changing deploy runs on the first host")
    image = f"{ansible_vars['stack_registry']}/sgivu-ml:{NEXT}"
    workers = nginx_workers(host)
    first = run_playbook("deploy.yml", "--limit", first_host, "-e", json.dumps({"compose_stack_images": {"sgivu-ml": image}}),
                         background=True)
    try:
        deadline = time.time() + 300
        while not host.file(f"/opt/{stack}/.deploy.lock").exists:
            assert first.poll() is None, "the first deploy ended before it took the lock"
            assert time.time() < deadline, "the first deploy never took the lock"
            time.sleep(0.5)
        second = run_playbook("deploy.yml", "--limit", first_host)
    finally:
        first_output, _ = first.communicate(timeout=1200)
    assert second.returncode != 0
    assert "another deploy holds the lock" in second.stdout
    assert first.returncode == 0, first_output[-3000:]
    latest = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]
    assert latest["services"]["sgivu-ml"]["image"].startswith(image + "@sha256:")
    dump = host.file(latest["backup"])
    assert (dump.user, dump.mode) == ("root", 0o600)
    assert second_deploy["marker"] in host.check_output(f"zcat {latest['backup']}")
    assert nginx_workers(host) == workers, "Nginx was reloaded though nothing of it changed"
    assert "Render the configuration files" not in first_output, "the nginx role ran though nothing of it differed"


def test_a_killed_deploy_leaves_a_lock_only_its_run_can_be_cleared_of_and_the_next_deploy_mends_the_host(
        host, run_playbook, first_host, stack, ansible_vars, via_nginx, site):
    """A deploy killed while it applies (as a cancelled AWX job is), once it replaced sgivu-ml and before it
    recorded the release: later runs are refused naming it, unlock.yml clears that run's lock and no
    other, and the next deploy puts the host in order - it records the release that runs though nothing
    of the stack differs (a later failure would otherwise take the host back past it), and mends an Nginx
    site edited meanwhile, which that deploy's transaction reads and writes again."""
    if host.backend.get_hostname() != first_host:
        pytest.skip("the killed deploy runs on the first host")
    # The deploy must have something to apply whatever the host runs now (a no-op plan never locks).
    running = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]["services"]["sgivu-ml"]["image"]
    image = f"{ansible_vars['stack_registry']}/sgivu-ml:{NEXT}"
    moves = [] if running.startswith(image + "@") else ["-e", json.dumps({"compose_stack_images": {"sgivu-ml": image}})]
    first = run_playbook("deploy.yml", "--limit", first_host, *moves, background=True)
    seen = []
    applied = "Wait until every service answers"  # the task after the stack's start or rollout
    for line in first.stdout:  # kill it once it applied, as an operator's Ctrl-C or an AWX cancel would
        seen.append(line)
        if applied in line:
            break
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    assert any(applied in line for line in seen), "".join(seen)[-3000:]
    assert host.file(f"/opt/{stack}/.deploy.lock").exists, "the run was killed after it gave its lock back"
    refused = run_playbook("deploy.yml", "--limit", first_host)
    assert refused.returncode != 0 and "another deploy holds the lock" in refused.stdout
    run_id = re.search(r"run (\w{8})\. Nothing was changed", refused.stdout).group(1)
    wrong = run_playbook("unlock.yml", "--limit", first_host, "-e", "force=true", "-e", "holder=zzzzzzzz")
    assert wrong.returncode != 0 and f"held by run {run_id}" in wrong.stdout
    assert host.file(f"/opt/{stack}/.deploy.lock").exists
    cleared = run_playbook("unlock.yml", "--limit", first_host, "-e", "force=true", "-e", f"holder={run_id}")
    assert cleared.returncode == 0, cleared.stdout[-3000:]
    written = sha256(host, site)
    host.check_output(f"printf 'return 418;\\n' >> {site}")  # Nginx would refuse it at a reload, and reads it only then
    mended = run_playbook("deploy.yml", "--limit", first_host, *moves)
    assert mended.returncode == 0, mended.stdout[-3000:]
    assert "what runs is not recorded as a good release (sgivu-ml differ" in " ".join(mended.stdout.split())
    assert sha256(host, site) == written
    assert via_nginx("/v1/version")[0] == 200
    latest = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]
    target = image if moves else f"{ansible_vars['stack_registry']}/sgivu-ml:1.0.0"
    assert latest["status"] == "good" and latest["services"]["sgivu-ml"]["image"].startswith(target + "@sha256:")


def test_the_catalog_version_comes_back_with_a_plain_deploy(host, run_playbook, first_host, stack):
    if host.backend.get_hostname() != first_host:
        pytest.skip("the changing deploy runs on the first host")
    run = run_playbook("deploy.yml", "--limit", first_host)
    assert run.returncode == 0, run.stdout[-3000:]
    latest = json.loads(host.file(f"/opt/{stack}/releases.json").content_string)["releases"][-1]
    assert ":1.0.0@sha256:" in latest["services"]["sgivu-ml"]["image"]


def test_a_public_service_removed_by_hand_comes_back_and_nginx_follows_it_to_its_new_port(
        host, run_playbook, first_host, stack, via_nginx, site):
    """A published service's container removed by hand (docker rm -f): the next deploy starts it again,
    Docker gives it a port of its range (the next one, as its allocator goes round), and Nginx sends the
    service's traffic there - the upstreams file rewritten and reloaded, the site as it was."""
    if host.backend.get_hostname() != first_host:
        pytest.skip("the removal is made on the first host")
    service = "sgivu-auth"
    upstreams = site.removesuffix(".conf") + "-upstreams.conf"
    written = sha256(host, site)

    def container_and_port() -> tuple[str, str]:
        ids = service_container_ids(host, stack, service)
        assert len(ids) == 1, ids
        ports = json.loads(host.check_output(f"docker inspect {ids[0]}"))[0]["NetworkSettings"]["Ports"]
        bound = sorted({binding["HostPort"] for bindings in ports.values() if bindings for binding in bindings})
        assert len(bound) == 1, ports
        return ids[0], bound[0]

    old, old_port = container_and_port()
    host.check_output(f"docker rm -f {old}")
    run = run_playbook("deploy.yml", "--limit", first_host)
    assert run.returncode == 0, run.stdout[-3000:]
    _, port = container_and_port()
    assert port != old_port, "Docker gave the recreated container its old port: this test needs its allocator's round"
    block = re.search(r"upstream \S+__" + service.replace("-", "_") + r" \{(.*?)\}", host.file(upstreams).content_string,
                      re.S).group(1)
    assert f"server 127.0.0.1:{port};" in block, block  # the live port first, not as a backup
    assert sha256(host, site) == written
    # The upstreams file alone was written (the narrow entry a swap uses), not the site through the whole role.
    assert f"changed: [{first_host}] => (item={upstreams})" in run.stdout, run.stdout[-3000:]
    assert f"(item={site})" not in run.stdout
    assert curl(host, "/login")[0] not in (0, 502, 503, 504)
    assert via_nginx("/v1/version")[0] == 200
