"""The host side of a release (plugins/module_utils/compose_host.py), without Docker.

A fake ``run`` stands in for ``AnsibleModule.run_command``: it records every argv and
answers with canned ``(rc, stdout, stderr)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import registry
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import (
    HEADER,
    MASK,
    Compose,
    ComposeError,
    Release,
    digest_of,
    env_text,
    health_of,
    load_project,
    meta,
    pinned,
    project_text,
    read_env,
    repository,
    scrub,
    serving,
    write_atomic,
)

Answer = Tuple[int, str, str]
ROOT = "/opt/sgivu"
DIGEST = "sha256:" + "ab" * 32
SECRET = "compose-Secret-5e1a"


class FakeRun:
    """Records each argv; answers with one canned result, or with what ``answer(argv)`` returns."""

    def __init__(self, answer: Union[Answer, Callable[[List[str]], Answer]] = (0, "", "")) -> None:
        self.answer = answer
        self.calls: List[List[str]] = []

    def __call__(self, argv: List[str], **kwargs: Any) -> Answer:
        self.calls.append(list(argv))
        return self.answer(argv) if callable(self.answer) else self.answer


def env_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "stack.env"
    path.write_text(text, encoding="utf-8")
    return str(path)


def compose_error(answer: Answer, secrets: List[str], *args: str) -> ComposeError:
    with pytest.raises(ComposeError) as info:
        Compose(FakeRun(answer), ROOT, "sgivu", secrets=secrets).compose(*args)
    return info.value


# --------------------------------------------------------------------------
# read_env: raw env files
# --------------------------------------------------------------------------
def test_read_env_skips_comment_lines(tmp_path):
    assert read_env(env_file(tmp_path, "# Managed by Ansible\nA=1\n#B=2\n")) == {"A": "1"}


def test_read_env_skips_blank_lines(tmp_path):
    assert read_env(env_file(tmp_path, "\nA=1\n\n   \nB=2\n")) == {"A": "1", "B": "2"}


def test_read_env_splits_at_the_first_equals_sign(tmp_path):
    url = "https://x.example.com/?a=1&b==2"
    assert read_env(env_file(tmp_path, "URL=" + url + "\n")) == {"URL": url}


def test_read_env_keeps_leading_and_trailing_spaces(tmp_path):
    assert read_env(env_file(tmp_path, "PADDED=  two spaces each side  \n")) == {"PADDED": "  two spaces each side  "}


def test_read_env_keeps_a_hash_quotes_and_a_trailing_backslash(tmp_path):
    value = "a #b 'c' \"d\" $e \\"
    assert read_env(env_file(tmp_path, "V=" + value + "\n")) == {"V": value}


def test_read_env_keeps_an_empty_value(tmp_path):
    assert read_env(env_file(tmp_path, "EMPTY=\n")) == {"EMPTY": ""}


# --------------------------------------------------------------------------
# env_text: one service's env file
# --------------------------------------------------------------------------
ENV = {"B": "2", "A": "1", "C": " 3 "}


def test_env_text_holds_only_the_service_keys_sorted():
    assert env_text(ENV, ["C", "A"]) == "A=1\nC= 3 \n"


def test_env_text_skips_keys_the_env_lacks():
    assert env_text(ENV, ["A", "MISSING"]) == "A=1\n"


def test_env_text_writes_a_repeated_key_once():
    assert env_text(ENV, ["A", "A"]) == "A=1\n"


def test_env_text_of_no_present_key_is_empty():
    assert env_text(ENV, ["MISSING"]) == ""


# --------------------------------------------------------------------------
# scrub
# --------------------------------------------------------------------------
def test_scrub_masks_every_occurrence_of_a_value():
    assert scrub(f"{SECRET} and again {SECRET}", [SECRET]) == f"{MASK} and again {MASK}"


def test_scrub_masks_every_value():
    assert scrub("one-Secret two-Secret", ["one-Secret", "two-Secret"]) == f"{MASK} {MASK}"


def test_scrub_masks_the_longest_value_first():
    # Masking "pass" first would leave "word-Secret" of the longer value readable.
    assert scrub("pw: password-Secret", ["pass", "password-Secret"]) == f"pw: {MASK}"


def test_scrub_masks_a_value_of_four_characters():
    assert scrub("key abcd here", ["abcd"]) == f"key {MASK} here"


def test_scrub_leaves_a_value_shorter_than_four_characters():
    assert scrub("port 123 on 1", ["123", "1"]) == "port 123 on 1"


def test_scrub_leaves_text_without_a_value_alone():
    assert scrub("nothing secret here", [SECRET]) == "nothing secret here"


# --------------------------------------------------------------------------
# image references
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "ref, repo",
    [
        ("127.0.0.1:5000/sgivu/x:1.0", "127.0.0.1:5000/sgivu/x"),
        ("127.0.0.1:5000/sgivu/x@" + DIGEST, "127.0.0.1:5000/sgivu/x"),
        ("127.0.0.1:5000/sgivu/x:1.0@" + DIGEST, "127.0.0.1:5000/sgivu/x"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000/x"),
        ("postgres:16", "postgres"),
    ],
)
def test_repository_drops_tag_and_digest_but_not_the_registry_port(ref, repo):
    assert repository(ref) == repo


def test_pinned_adds_the_digest_of_the_matching_repository():
    digests = ["127.0.0.1:5000/other/y@sha256:" + "cd" * 32, "127.0.0.1:5000/sgivu/x@" + DIGEST]
    assert pinned("127.0.0.1:5000/sgivu/x:1.0", digests) == "127.0.0.1:5000/sgivu/x:1.0@" + DIGEST


def test_pinned_keeps_an_already_pinned_reference():
    ref = "127.0.0.1:5000/sgivu/x:1.0@" + DIGEST
    assert pinned(ref, ["127.0.0.1:5000/sgivu/x@sha256:" + "cd" * 32]) == ref


def test_pinned_is_none_without_a_matching_repo_digest():
    assert pinned("127.0.0.1:5000/sgivu/x:1.0", ["127.0.0.1:5000/sgivu/xy@" + DIGEST]) is None


def test_pinned_is_none_for_an_image_without_repo_digests():
    assert pinned("sgivu/x:1.0", []) is None


def test_digest_of_a_pinned_reference_is_repository_at_digest():
    assert digest_of("127.0.0.1:5000/sgivu/x:1.0@" + DIGEST) == "127.0.0.1:5000/sgivu/x@" + DIGEST


def test_digest_of_a_tag_reference_is_none():
    assert digest_of("127.0.0.1:5000/sgivu/x:1.0") is None


# --------------------------------------------------------------------------
# write_atomic
# --------------------------------------------------------------------------
def test_write_atomic_writes_the_data(tmp_path):
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    assert (tmp_path / "f").read_text(encoding="utf-8") == "A=1\n"


def test_write_atomic_reports_a_write(tmp_path):
    assert write_atomic(str(tmp_path / "f"), "A=1\n", 0o600) is True


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_write_atomic_sets_the_mode(tmp_path, mode):
    write_atomic(str(tmp_path / "f"), "A=1\n", mode)
    assert (tmp_path / "f").stat().st_mode & 0o777 == mode


def test_write_atomic_of_identical_data_returns_false(tmp_path):
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    assert write_atomic(str(tmp_path / "f"), "A=1\n", 0o600) is False


def test_write_atomic_of_identical_data_keeps_the_file(tmp_path):
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    inode = (tmp_path / "f").stat().st_ino
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    assert (tmp_path / "f").stat().st_ino == inode


def test_write_atomic_rewrites_identical_data_with_another_mode(tmp_path):
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o644)
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o600


def test_write_atomic_replaces_changed_data(tmp_path):
    write_atomic(str(tmp_path / "f"), "A=1\n", 0o600)
    write_atomic(str(tmp_path / "f"), "A=2\n", 0o600)
    assert (tmp_path / "f").read_text(encoding="utf-8") == "A=2\n"


def test_write_atomic_keeps_carriage_returns_and_leaves_no_temporary_file(tmp_path):
    write_atomic(str(tmp_path / "f"), "a\r\nb\n", 0o600)
    assert (os.listdir(tmp_path), (tmp_path / "f").read_bytes()) == (["f"], b"a\r\nb\n")


# --------------------------------------------------------------------------
# the project file
# --------------------------------------------------------------------------
PROJECT: Dict[str, Any] = {
    "name": "sgivu",
    "services": {
        "api": {"image": "127.0.0.1:5000/sgivu/api:1.0@" + DIGEST, "environment": {"GREETING": "ünï € $$HOME # x"},
                "env_file": [{"path": "env/api.env", "format": "raw"}]},
        "db": {"image": "postgres:16", "deploy": {"replicas": 1}},
    },
    "x-sgivu": {"env_keys": {"api": ["DB_PASSWORD"]}, "waves": [["db"], ["api"]], "deadlines": {"api": 150}},
}


def test_project_text_starts_with_the_header_comment():
    assert project_text(PROJECT).split("\n", 1)[0] == HEADER


def test_project_text_and_load_project_round_trip(tmp_path):
    (tmp_path / "compose.yml").write_text(project_text(PROJECT), encoding="utf-8")
    assert load_project(str(tmp_path / "compose.yml")) == PROJECT


# --------------------------------------------------------------------------
# container health from `docker ps`
# --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, health",
    [
        ("Up 3 seconds (healthy)", "healthy"),
        ("Up 1 second (health: starting)", "starting"),
        ("Up 2 minutes (unhealthy)", "unhealthy"),
        ("Up 5 minutes", "none"),
        ("Exited (0) 2 seconds ago", "none"),
    ],
)
def test_health_of_reads_the_status_text(status, health):
    assert health_of({"state": "running", "status": status}) == health


@pytest.mark.parametrize(
    "state, status, expected",
    [
        ("running", "Up 3 seconds (healthy)", True),
        ("running", "Up 1 second (health: starting)", False),
        ("running", "Up 2 minutes (unhealthy)", False),
        ("running", "Up 5 minutes", True),
        ("exited", "Exited (0) 2 seconds ago", False),
    ],
)
def test_serving_is_running_and_healthy_or_without_healthcheck(state, status, expected):
    assert serving({"state": state, "status": status}) is expected


# --------------------------------------------------------------------------
# meta: the project's x-sgivu mapping
# --------------------------------------------------------------------------
BARE = {"services": {"web": {}, "api": {}, "db": {}}}


def test_meta_defaults_env_keys_to_empty():
    assert meta(BARE)["env_keys"] == {}


def test_meta_defaults_waves_to_one_wave_of_every_service_sorted():
    assert meta(BARE)["waves"] == [["api", "db", "web"]]


def test_meta_defaults_deadlines_to_empty():
    assert meta(BARE)["deadlines"] == {}


def test_meta_keeps_what_the_project_says():
    assert meta(PROJECT) == {**PROJECT["x-sgivu"], "rotate": {}}


def test_meta_fills_a_partial_mapping_without_changing_the_project():
    project = {"services": {"api": {}}, "x-sgivu": {"waves": [["api"]]}}
    meta(project)
    assert project == {"services": {"api": {}}, "x-sgivu": {"waves": [["api"]]}}


# --------------------------------------------------------------------------
# Compose: the argv, and errors without secrets
# --------------------------------------------------------------------------
def test_compose_passes_name_directory_file_and_no_env_file():
    run = FakeRun()
    Compose(run, ROOT, "sgivu").compose("up", "--detach")
    assert run.calls == [["docker", "compose", "-p", "sgivu", "--project-directory", ROOT,
                          "-f", ROOT + "/compose.yml", "--env-file", "/dev/null", "up", "--detach"]]


def test_compose_in_another_directory_takes_its_file_from_there():
    run = FakeRun()
    Compose(run, ROOT, "sgivu").compose("config", "--quiet", root=ROOT + "/.stage", file="compose.next.yml")
    assert run.calls[0][:10] == ["docker", "compose", "-p", "sgivu", "--project-directory", ROOT + "/.stage",
                                 "-f", ROOT + "/.stage/compose.next.yml", "--env-file", "/dev/null"]


def test_compose_returns_what_the_command_printed():
    assert Compose(FakeRun((0, "out", "err")), ROOT, "sgivu").compose("ps") == (0, "out", "err")


def test_compose_without_check_returns_a_failure():
    assert Compose(FakeRun((1, "", "boom")), ROOT, "sgivu").compose("ps", check=False)[0] == 1


def test_a_failing_compose_call_raises_naming_the_call():
    assert compose_error((1, "", "boom"), [], "up").msg == "docker compose up failed: boom"


def test_a_failing_compose_call_says_what_failed_when_told():
    with pytest.raises(ComposeError, match=r"^Validating the candidate project failed: boom$"):
        Compose(FakeRun((1, "", "boom")), ROOT, "sgivu").compose("config", what="Validating the candidate project")


def test_a_failing_compose_call_masks_the_env_values():
    error = compose_error((1, "", f"invalid value {SECRET} for DB_PASSWORD"), [SECRET], "up")
    assert error.msg == f"docker compose up failed: invalid value {MASK} for DB_PASSWORD"


def test_a_failing_compose_call_without_stderr_masks_its_stdout():
    error = compose_error((1, f"value {SECRET}", ""), [SECRET], "up")
    assert SECRET not in error.msg


def test_a_failing_docker_call_masks_the_env_values():
    with pytest.raises(ComposeError) as info:
        Compose(FakeRun((1, "", f"no such container {SECRET}")), ROOT, "sgivu", secrets=[SECRET]).docker("rm", "x")
    assert SECRET not in info.value.msg


def test_logs_are_masked():
    compose = Compose(FakeRun((0, f"api-1  | password={SECRET}\n", "")), ROOT, "sgivu", secrets=[SECRET])
    assert compose.logs(["api"], 20) == f"api-1  | password={MASK}"


def test_api_version_reads_the_daemon_api_version():
    run = FakeRun((0, "1.41\n", ""))
    assert Compose(run, ROOT, "sgivu").api_version() == (1, 41)
    assert run.calls == [["docker", "version", "--format", "{{.Server.APIVersion}}"]]


@pytest.mark.parametrize("out, api", [("1.44\n", (1, 44)), ("1.9\n", (1, 9)),
                                     ("WARNING: Docker 24.0.7 is deprecated\n1.41\n", (1, 41))])
def test_api_version_takes_the_line_that_is_a_version(out, api):
    assert Compose(FakeRun((0, out, "")), ROOT, "sgivu").api_version() == api


@pytest.mark.parametrize("out", ["", "<no value>\n", "unknown\n", "1\n", "v1.41\n"])
def test_an_api_version_docker_does_not_give_is_refused_not_guessed(out):
    with pytest.raises(ComposeError) as info:
        Compose(FakeRun((0, out, "")), ROOT, "sgivu").api_version()
    assert str(info.value).startswith("`docker version` did not give the Docker daemon's API version (such as 1.41), it printed ")
    assert str(info.value).endswith("Nothing was changed.")


def test_a_failing_docker_version_names_itself():
    with pytest.raises(ComposeError) as info:
        Compose(FakeRun((1, "", "Cannot connect to the Docker daemon at unix:///var/run/docker.sock.")), ROOT, "sgivu").api_version()
    assert str(info.value) == "docker version failed: Cannot connect to the Docker daemon at unix:///var/run/docker.sock."


def test_version_reads_the_short_version():
    assert Compose(FakeRun((0, "v2.40.3\n", "")), ROOT, "sgivu").version() == (2, 40, 3)


PS_FIELDS = ("id", "state", "status", "service", "hash", "oneoff", "image", "name", "ports")


def ps_line(**fields: str) -> str:
    row = {"id": "c1", "state": "running", "status": "Up 1 minute (healthy)", "service": "api", "hash": "h1",
           "oneoff": "False", "image": "r/api:1", "name": "sgivu-api-1", "ports": ""}
    row.update(fields)
    return "\t".join(row[f] for f in PS_FIELDS)


def test_containers_lists_only_the_project_containers():
    run = FakeRun((0, "", ""))
    Compose(run, ROOT, "sgivu").containers()
    assert run.calls[0][:6] == ["docker", "ps", "-a", "--no-trunc",
                                "--filter", "label=com.docker.compose.project=sgivu"]


def test_containers_reads_each_row_of_docker_ps():
    compose = Compose(FakeRun((0, ps_line(ports="127.0.0.1:8080->8080/tcp") + "\n", "")), ROOT, "sgivu")
    assert compose.containers() == [{"id": "c1", "state": "running", "status": "Up 1 minute (healthy)",
                                     "service": "api", "hash": "h1", "oneoff": "False", "image": "r/api:1",
                                     "name": "sgivu-api-1", "ports": "127.0.0.1:8080->8080/tcp"}]


def test_containers_leave_out_one_off_run_containers():
    out = ps_line(name="sgivu-api-1") + "\n" + ps_line(id="c2", name="sgivu-api-run-1", oneoff="True") + "\n"
    assert [c["name"] for c in Compose(FakeRun((0, out, "")), ROOT, "sgivu").containers()] == ["sgivu-api-1"]


def test_images_leaves_out_an_image_not_on_the_host():
    def answer(argv: List[str]) -> Answer:
        if argv[-1] == "r/api:1":
            return 0, '{"Id": "sha256:1", "RepoDigests": ["r/api@' + DIGEST + '"]}', ""
        return 1, "", "No such image"
    found = Compose(FakeRun(answer), ROOT, "sgivu").images(["r/api:1", "r/missing:1"])
    assert found == {"r/api:1": {"Id": "sha256:1", "RepoDigests": ["r/api@" + DIGEST]}}


# --------------------------------------------------------------------------
# Release: secrets from the host's env files, and what differs from the project
# --------------------------------------------------------------------------
def test_a_release_masks_the_values_of_the_live_env_file(tmp_path):
    (tmp_path / "stack.env").write_text(f"# header\nDB_PASSWORD={SECRET}\n", encoding="utf-8")
    release = Release(FakeRun((1, "", f"bad {SECRET}")), str(tmp_path), "sgivu")
    with pytest.raises(ComposeError) as info:
        release.compose.compose("up")
    assert SECRET not in info.value.msg


def test_a_release_masks_the_values_of_the_candidate_env_file(tmp_path):
    (tmp_path / "stack.env.next").write_text(f"DB_PASSWORD={SECRET}\n", encoding="utf-8")
    release = Release(FakeRun((1, "", f"bad {SECRET}")), str(tmp_path), "sgivu")
    with pytest.raises(ComposeError) as info:
        release.compose.compose("up")
    assert SECRET not in info.value.msg


LABEL_PROJECT = {"services": {"api": {"image": "r/api:1"}, "web": {"image": "r/web:1"}},
                 "x-sgivu": {"env_keys": {"api": ["DB_PASSWORD"]}}}


def labels_of(tmp_path: Path, env: Dict[str, str], project: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    return Release(FakeRun(), str(tmp_path), "sgivu").label(json.loads(json.dumps(project or LABEL_PROJECT)), env)


def test_the_config_label_changes_with_the_service_env_values(tmp_path):
    assert labels_of(tmp_path, {"DB_PASSWORD": "a"})["api"] != labels_of(tmp_path, {"DB_PASSWORD": "b"})["api"]


def test_the_config_label_ignores_keys_the_service_does_not_get(tmp_path):
    assert labels_of(tmp_path, {"DB_PASSWORD": "a"})["web"] == labels_of(tmp_path, {"DB_PASSWORD": "b"})["web"]


def test_the_config_label_changes_with_the_image(tmp_path):
    moved = json.loads(json.dumps(LABEL_PROJECT))
    moved["services"]["api"]["image"] = "r/api:1@sha256:" + "b" * 64
    assert labels_of(tmp_path, {"DB_PASSWORD": "a"})["api"] != labels_of(tmp_path, {"DB_PASSWORD": "a"}, moved)["api"]


def test_the_config_label_is_keyed_by_the_host_salt_and_never_the_value(tmp_path):
    labels = labels_of(tmp_path, {"DB_PASSWORD": SECRET})
    salt = tmp_path / ".config-salt"
    assert (salt.stat().st_mode & 0o777) == 0o600
    assert labels["api"] != hashlib.sha256(SECRET.encode()).hexdigest()[:32]
    assert SECRET not in json.dumps(labels)


def test_the_project_carries_the_config_label_of_each_service(tmp_path):
    project = json.loads(json.dumps(LABEL_PROJECT))
    labels = Release(FakeRun(), str(tmp_path), "sgivu").label(project, {"DB_PASSWORD": "a"})
    assert project["services"]["api"]["labels"]["sgivu.deploy.config"] == labels["api"]


DIFF_PROJECT = {"services": {"api": {"image": "r/api:1"}, "web": {"image": "r/web:1", "deploy": {"replicas": 2}}}}
HASHES = {"api": "h-api", "web": "h-web"}


def row(service: str, name: str, hash_: str = "", state: str = "running",
        status: str = "Up 1 minute (healthy)") -> Dict[str, str]:
    return {"id": name, "state": state, "status": status, "service": service,
            "hash": hash_ or HASHES.get(service, "h-other"), "oneoff": "False", "image": "", "name": name, "ports": ""}


def matching_rows() -> List[Dict[str, str]]:
    return [row("api", "sgivu-api-1"), row("web", "sgivu-web-1"), row("web", "sgivu-web-2")]


def differences(tmp_path: Path, containers: List[Dict[str, str]]) -> Tuple[List[str], List[str]]:
    return Release(FakeRun(), str(tmp_path), "sgivu").differences(DIFF_PROJECT, HASHES, containers)


def test_containers_matching_the_project_differ_in_nothing(tmp_path):
    assert differences(tmp_path, matching_rows()) == ([], [])


def test_a_container_with_another_config_hash_is_changed(tmp_path):
    rows = matching_rows()
    rows[0] = row("api", "sgivu-api-1", hash_="h-old")
    assert differences(tmp_path, rows) == (["api"], [])


def test_a_missing_replica_is_changed(tmp_path):
    assert differences(tmp_path, matching_rows()[:2]) == (["web"], [])


def test_a_service_without_a_container_is_changed(tmp_path):
    assert differences(tmp_path, matching_rows()[1:]) == (["api"], [])


def test_an_unhealthy_container_is_changed(tmp_path):
    rows = matching_rows()
    rows[0] = row("api", "sgivu-api-1", status="Up 2 minutes (unhealthy)")
    assert differences(tmp_path, rows) == (["api"], [])


def test_a_stopped_container_beside_a_serving_one_is_changed(tmp_path):
    rows = matching_rows() + [row("api", "sgivu-api-2", state="exited", status="Exited (0) 2 seconds ago")]
    assert differences(tmp_path, rows) == (["api"], [])


def test_a_container_running_another_image_than_the_pinned_digest_is_changed(tmp_path):
    """A container recreated by hand from an edited project keeps its config label but runs another image."""
    pinned = {"services": {"api": {"image": "r/api:2@sha256:" + "a" * 64}}}
    release = Release(FakeRun(), str(tmp_path), "sgivu")
    by_tag = dict(row("api", "sgivu-api-1"), image="r/api:1")
    other = dict(row("api", "sgivu-api-1"), image="r/api:2@sha256:" + "b" * 64)
    same = dict(row("api", "sgivu-api-1"), image="r/api:2@sha256:" + "a" * 64)
    assert release.differences(pinned, HASHES, [by_tag]) == (["api"], [])
    assert release.differences(pinned, HASHES, [other]) == (["api"], [])
    assert release.differences(pinned, HASHES, [same]) == ([], [])


def test_container_logs_prefix_each_line_with_the_container_name_and_mask_values():
    run = FakeRun((0, f"starting\npassword={SECRET}\n", "warn\n"))
    text = Compose(run, ROOT, "sgivu", secrets=[SECRET]).container_logs([row("api", "sgivu-api-2")], 5)
    assert run.calls == [["docker", "logs", "--tail", "5", "sgivu-api-2"]]
    assert text.splitlines() == ["sgivu-api-2  | starting", f"sgivu-api-2  | password={MASK}", "sgivu-api-2  | warn"]


def test_a_failure_limited_to_the_new_containers_leaves_the_serving_ones_out(tmp_path):
    """A start-first swap that fails names the new container only: the old one serves and is not at fault."""
    ps = ps_line(id="old", name="sgivu-api-1") + "\n" + ps_line(
        id="new", name="sgivu-api-2", status="Up 9 seconds (health: starting)") + "\n"

    def answer(argv: List[str]) -> Answer:
        if argv[:2] == ["docker", "ps"]:
            return 0, ps, ""
        return 0, f"log of {argv[-1]}\n", ""

    run = FakeRun(answer)
    error = Release(run, str(tmp_path), "sgivu").failure(["api"], 20, "the new api did not become healthy", only=["new"])
    assert error.msg == "the new api did not become healthy: api (sgivu-api-2: running, health starting)."
    assert error.details["logs"] == ["sgivu-api-2  | log of new"]
    assert not any(call[:3] == ["docker", "logs", "--tail"] and call[-1] == "old" for call in run.calls)


def test_a_container_of_a_service_not_in_the_project_is_an_orphan(tmp_path):
    assert differences(tmp_path, matching_rows() + [row("old", "sgivu-old-1")]) == ([], ["sgivu-old-1"])


DIGEST_A, DIGEST_B = "sha256:" + "a" * 64, "sha256:" + "b" * 64


def decide(tmp_path: Path, policy: str, wanted: Dict[str, str], running: Dict[str, str]) -> Tuple[Dict[str, str], List[str]]:
    """(the image each service gets, the services to ask the registry for), with `running` live on the host."""
    (tmp_path / "compose.yml").write_text(project_text({"services": {n: {"image": i} for n, i in running.items()}}),
                                          encoding="utf-8")
    project = {"services": {n: {"image": i} for n, i in wanted.items()}}
    fetch = Release(FakeRun(), str(tmp_path), "sgivu").keep_running_digests(project, policy)
    return {n: s["image"] for n, s in project["services"].items()}, fetch


def test_a_deploy_keeps_the_digest_a_service_runs_for_the_tag_it_runs(tmp_path):
    """A local tag a failed update re-pulled may point at a rejected image: it is never trusted."""
    images, fetch = decide(tmp_path, "missing", {"api": "r/api:1.0"}, {"api": f"r/api:1.0@{DIGEST_A}"})
    assert (images, fetch) == ({"api": f"r/api:1.0@{DIGEST_A}"}, [])


def test_a_tag_the_service_does_not_run_is_asked_of_the_registry(tmp_path):
    images, fetch = decide(tmp_path, "missing", {"api": "r/api:1.1"}, {"api": f"r/api:1.0@{DIGEST_A}"})
    assert (images, fetch) == ({"api": "r/api:1.1"}, ["api"])


def test_a_repull_asks_the_registry_even_for_the_tag_it_runs(tmp_path):
    assert decide(tmp_path, "always", {"api": "r/api:1.0"}, {"api": f"r/api:1.0@{DIGEST_A}"})[1] == ["api"]


def test_a_reference_by_digest_is_taken_as_it_is(tmp_path):
    images, fetch = decide(tmp_path, "always", {"api": f"r/api:1.0@{DIGEST_B}"}, {"api": f"r/api:1.0@{DIGEST_A}"})
    assert (images, fetch) == ({"api": f"r/api:1.0@{DIGEST_B}"}, [])


def test_a_new_service_is_asked_of_the_registry(tmp_path):
    assert decide(tmp_path, "missing", {"api": "r/api:1.0", "web": "r/web:1.0"}, {"api": f"r/api:1.0@{DIGEST_A}"})[1] == ["web"]


# --------------------------------------------------------------------------
# prune_images: the stack's images nothing keeps
# --------------------------------------------------------------------------
def image_json(iid: str, tags: List[str], digests: List[str], size: int = 100) -> str:
    return json.dumps({"Id": iid, "RepoTags": tags, "RepoDigests": digests, "Size": size})


class DockerHost:
    """A fake Docker: images, containers (id, state, project, image id), and what was removed."""

    def __init__(self, images: List[str], containers: List[Tuple[str, str, str, str]], refuse: str = "") -> None:
        self.images, self.containers, self.refuse = images, containers, refuse
        self.removed: List[List[str]] = []

    def __call__(self, argv: List[str], **kwargs: Any) -> Answer:
        if argv[1:3] == ["image", "ls"]:
            return 0, "\n".join(json.loads(i)["Id"] for i in self.images) + "\n", ""
        if argv[1:3] == ["image", "inspect"]:
            return 0, "\n".join(self.images) + "\n", ""
        if argv[1] == "ps":
            return 0, "".join(f"{c[0]}\t{c[1]}\t{c[2]}\n" for c in self.containers), ""
        if argv[1:3] == ["container", "inspect"]:
            return 0, "".join(f"{c[0]} {c[3]}\n" for c in self.containers), ""
        if argv[2] == "rm":
            if self.refuse and self.refuse in argv:
                return 1, "", f"Error response from daemon: conflict: unable to remove {self.refuse}"
            self.removed.append(argv[1:])
            return 0, "", ""
        raise AssertionError(argv)


API = "reg/s/api"
KEPT = image_json("sha256:new", [f"{API}:2"], [f"{API}@sha256:d2"], 300)
OLD = image_json("sha256:old", [f"{API}:1"], [f"{API}@sha256:d1"], 200)
MOVED = image_json("sha256:moved", [], [f"{API}@sha256:d0"], 150)  # its tag moved on; only the digest is left
OTHER = image_json("sha256:other", ["elsewhere/app:1"], ["elsewhere/app@sha256:e"], 999)


def prune(tmp_path: Path, docker: DockerHost, keep: List[str], check_mode: bool = False) -> Dict[str, Any]:
    return Release(docker, str(tmp_path), "sgivu", check_mode=check_mode).prune_images(keep, [API])


def test_pruning_keeps_the_images_kept_releases_name_and_removes_the_others_by_reference(tmp_path):
    docker = DockerHost([KEPT, OLD, MOVED, OTHER], [("c1", "running", "sgivu", "sha256:new")])
    result = prune(tmp_path, docker, [f"{API}@sha256:d2", f"{API}@sha256:d0"])
    assert docker.removed == [["image", "rm", f"{API}:1"]]  # the tag takes its repository's digest refs along
    assert (result["images"], result["images_bytes"], result["reclaimed_bytes"]) == (2, 450, 200)


def test_pruning_removes_an_untagged_image_no_kept_release_names(tmp_path):
    docker = DockerHost([KEPT, MOVED], [])
    prune(tmp_path, docker, [f"{API}@sha256:d2"])
    assert docker.removed == [["image", "rm", f"{API}@sha256:d0"]]


def test_pruning_never_touches_another_repository(tmp_path):
    docker = DockerHost([OTHER], [])
    assert prune(tmp_path, docker, [])["removed"] == [] and docker.removed == []


def test_pruning_keeps_an_image_a_running_container_or_another_project_uses(tmp_path):
    docker = DockerHost([OLD, MOVED], [("c1", "running", "sgivu", "sha256:old"), ("c2", "exited", "tools", "sha256:moved")])
    assert prune(tmp_path, docker, [])["removed"] == [] and docker.removed == []


def test_pruning_removes_the_stopped_containers_of_the_stack_that_hold_an_old_image(tmp_path):
    docker = DockerHost([OLD], [("c9", "exited", "sgivu", "sha256:old")])
    result = prune(tmp_path, docker, [])
    assert docker.removed == [["container", "rm", "c9"], ["image", "rm", f"{API}:1"]]
    assert result["removed"][0]["containers"] == ["c9"]


def test_pruning_in_check_mode_reports_and_removes_nothing(tmp_path):
    docker = DockerHost([KEPT, OLD], [])
    result = prune(tmp_path, docker, [f"{API}@sha256:d2"], check_mode=True)
    assert docker.removed == [] and result["reclaimed_bytes"] == 200 and result["images"] == 1


def test_an_image_docker_refuses_to_remove_is_reported_and_counted_as_kept(tmp_path):
    docker = DockerHost([OLD], [], refuse=f"{API}:1")
    result = prune(tmp_path, docker, [])
    assert result["removed"] == [] and result["images"] == 1
    assert "unable to remove" in result["errors"][0]


def test_pruning_only_untags_an_image_another_repository_also_names(tmp_path):
    shared = image_json("sha256:old", [f"{API}:1", "backup/api:1"], [f"{API}@sha256:d1"], 200)
    docker = DockerHost([shared], [("c9", "exited", "sgivu", "sha256:old")])
    result = prune(tmp_path, docker, [])
    assert docker.removed == [["image", "rm", f"{API}:1"]] and result["reclaimed_bytes"] == 0


# --------------------------------------------------------------------------
# credentials changed in place (rotation)
# --------------------------------------------------------------------------
from ansible_collections.sgivu.deploy.plugins.module_utils.compose_host import (  # noqa: E402
    CONFIG_LABEL,
    changed_keys,
    saslprep,
    scram_verifier,
    redis_argument,
    rotation_statements,
    sql_literal,
)

HOSTILE = "p'a\"s s\\w$(id)`x`;--%s{}#!é"


class RecordingRun(FakeRun):
    """FakeRun that also keeps each call's keyword arguments (stdin data, environment)."""

    def __init__(self, answer=(0, "", "")):
        super().__init__(answer)
        self.kwargs: List[Dict[str, Any]] = []

    def __call__(self, argv, **kwargs):
        self.kwargs.append(kwargs)
        return super().__call__(argv, **kwargs)


def test_only_keys_whose_value_changed_are_named():
    assert changed_keys({"A": "1", "B": "2", "D": "4"}, {"A": "1", "B": "3", "C": "x"}) == ["B", "C", "D"]


def test_a_sql_literal_doubles_quotes_and_keeps_everything_else():
    assert sql_literal("it's") == "'it''s'"
    assert sql_literal(HOSTILE) == "'" + HOSTILE.replace("'", "''") + "'"


def test_a_redis_argument_is_every_byte_escaped():
    argument = redis_argument(HOSTILE)
    assert argument.startswith('"') and argument.endswith('"')
    assert bytes.fromhex(argument[1:-1].replace("\\x", "")).decode("utf-8") == HOSTILE


@pytest.mark.parametrize("engine, phase, expected", [
    ("postgres", "finish", ""),
    ("redis", "begin", "ACL SETUSER default on resetpass " + redis_argument(">old") + " " + redis_argument(">new") + "\n"),
    ("redis", "finish", "ACL SETUSER default on resetpass " + redis_argument(">new") + "\n"),
    ("redis", "undo", "ACL SETUSER default on resetpass " + redis_argument(">old") + "\n"),
])
def test_each_phase_of_a_rotation(engine, phase, expected):
    user = "postgres" if engine == "postgres" else "default"
    assert rotation_statements(engine, user, "old", "new", phase) == expected


@pytest.mark.parametrize("phase, value", [("begin", "new"), ("undo", "old")])
def test_postgres_gets_the_scram_verifier_of_the_password_never_the_password(phase, value):
    statement = rotation_statements("postgres", "postgres", "old-" + HOSTILE, "new-" + HOSTILE, phase)
    found = re.fullmatch(r"ALTER ROLE \"postgres\" WITH PASSWORD 'SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):([^']+)';\n", statement)
    assert found, statement
    assert statement.count(HOSTILE) == 0
    assert scram_verifier(f"{value}-{HOSTILE}", base64.b64decode(found[1])) in statement


def test_the_scram_verifier_is_the_one_of_rfc_7677():
    # RFC 7677, section 3: user "user", password "pencil"; the server's signature in its final message.
    verifier = scram_verifier("pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="))
    server_key = base64.b64decode(verifier.rsplit(":", 1)[1])
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r={nonce}"
    signature = hmac.new(server_key, auth.encode(), hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


@pytest.mark.parametrize("value, prepared", [
    ("I\u00adX", "IX"), ("a\u00a0b", "a b"), ("\u2168", "IX"), ("\u0007", "\u0007"),
    ("a\u200bb", "a b"),                   # in both C.1.2 and B.1: PostgreSQL maps it to a space first
    ("pw\U0001F100", "pw\U0001F100"),     # unassigned in Unicode 3.2: checked before NFKC, value kept
    ("\u0627a\u0628", "\u0627a\u0628"),   # RandALCat with LCat: value kept
    ("\u00fcn\u00ef", "\u00fcn\u00ef"),
])
def test_a_password_is_saslprepped_as_postgresql_does(value, prepared):
    assert saslprep(value) == prepared


ROTATIONS = {"sgivu-postgres": {"POSTGRES_PASSWORD": {"engine": "postgres", "user": "postgres"}},
             "sgivu-redis": {"REDIS_PASSWORD": {"engine": "redis", "user": "default"}}}


def rotation_root(tmp_path: Path, old: str, new: str) -> Path:
    (tmp_path / "stack.env").write_text(f"POSTGRES_PASSWORD={old}\nREDIS_PASSWORD=same\n", encoding="utf-8")
    (tmp_path / "stack.env.next").write_text(f"POSTGRES_PASSWORD={new}\nREDIS_PASSWORD=same\n", encoding="utf-8")
    project = {"services": {"sgivu-postgres": {"image": "pg"}, "sgivu-redis": {"image": "redis"}},
               "x-sgivu": {"env_keys": {"sgivu-postgres": ["POSTGRES_PASSWORD"], "sgivu-redis": ["REDIS_PASSWORD"]},
                           "rotate": ROTATIONS}}
    (tmp_path / "compose.next.yml").write_text(project_text(project), encoding="utf-8")
    return tmp_path


def ps_answer(argv):
    if argv[:2] == ["docker", "ps"]:
        return 0, "\n".join("\t".join([cid, "running", "Up", svc, "h", "False", "img", f"sgivu-{svc}-1", ""])
                            for cid, svc in (("c1", "sgivu-postgres"), ("c2", "sgivu-redis"))), ""
    return 0, "", ""


def test_a_changed_database_password_is_changed_inside_the_database_with_no_value_on_a_command_line(tmp_path):
    root = rotation_root(tmp_path, "old-" + HOSTILE, "new-" + HOSTILE)
    run = RecordingRun(ps_answer)
    done = Release(run, str(root), "sgivu").rotate("begin")
    assert done == {"rotations": ["sgivu-postgres/POSTGRES_PASSWORD"], "errors": []}  # REDIS_PASSWORD did not change
    assert (root / "stack.env.rotating").read_text() == (root / "stack.env.next").read_text()
    assert oct((root / "stack.env.rotating").stat().st_mode & 0o777) == "0o600"
    execs = [(argv, kw) for argv, kw in zip(run.calls, run.kwargs) if argv[:2] == ["docker", "exec"]]
    assert len(execs) == 1
    argv, kwargs = execs[0]
    assert argv[:6] == ["docker", "exec", "-i", "-e", "PGPASSWORD", "c1"] and "psql" in argv
    assert not [a for a in argv if HOSTILE in a]
    assert kwargs["environ_update"] == {"PGPASSWORD": "old-" + HOSTILE}
    assert kwargs["data"].startswith("ALTER ROLE \"postgres\" WITH PASSWORD 'SCRAM-SHA-256$") and HOSTILE not in kwargs["data"]


def test_a_refused_rotation_names_the_key_and_shows_no_value(tmp_path):
    root = rotation_root(tmp_path, "old-secret-value", "new-secret-value")

    def refuse(argv):
        if argv[:2] == ["docker", "exec"]:
            return 2, "", "psql: error: password authentication failed for new-secret-value"
        return ps_answer(argv)

    with pytest.raises(ComposeError) as info:
        Release(RecordingRun(refuse), str(root), "sgivu").rotate("begin")
    assert "begin the rotation of POSTGRES_PASSWORD in sgivu-postgres failed" in info.value.msg
    assert "new-secret-value" not in info.value.msg


def test_an_undo_authenticates_with_the_new_value_and_falls_back_to_the_old_one(tmp_path):
    root = rotation_root(tmp_path, "old-secret-value", "new-secret-value")

    run = RecordingRun(ps_answer)
    answers = iter([(2, "", "password authentication failed"), (0, "", "")])
    run.answer = lambda argv: next(answers) if argv[:2] == ["docker", "exec"] else ps_answer(argv)
    assert Release(run, str(root), "sgivu").rotate("undo") == {"rotations": ["sgivu-postgres/POSTGRES_PASSWORD"], "errors": []}
    tried = [kw["environ_update"]["PGPASSWORD"] for argv, kw in zip(run.calls, run.kwargs) if argv[:2] == ["docker", "exec"]]
    assert tried == ["new-secret-value", "old-secret-value"]


def test_the_old_values_come_from_the_archive_of_the_last_good_release(tmp_path):
    root = rotation_root(tmp_path, "same", "new-secret-value")  # the candidate is already promoted
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "releases" / "r1" / "stack.env").write_text("POSTGRES_PASSWORD=old-secret-value\nREDIS_PASSWORD=same\n")
    run = RecordingRun(ps_answer)
    assert Release(run, str(root), "sgivu").rotate("begin", release="r1")["rotations"] == ["sgivu-postgres/POSTGRES_PASSWORD"]
    assert [kw["environ_update"] for argv, kw in zip(run.calls, run.kwargs) if argv[:2] == ["docker", "exec"]] == [
        {"PGPASSWORD": "old-secret-value"}]


def test_finishing_a_redis_rotation_recreates_redis_alone_and_postgres_keeps_its_container(tmp_path):
    root = tmp_path
    (root / "stack.env").write_text("POSTGRES_PASSWORD=a-old\nREDIS_PASSWORD=r-old\n")
    (root / "stack.env.next").write_text("POSTGRES_PASSWORD=a-new\nREDIS_PASSWORD=r-new\n")
    project = {"services": {"sgivu-postgres": {"image": "pg"}, "sgivu-redis": {"image": "redis"}},
               "x-sgivu": {"env_keys": {"sgivu-postgres": ["POSTGRES_PASSWORD"], "sgivu-redis": ["REDIS_PASSWORD"]},
                           "rotate": ROTATIONS, "waves": [["sgivu-postgres", "sgivu-redis"]]}}
    for name in ("compose.next.yml", "compose.yml"):
        (root / name).write_text(project_text(project), encoding="utf-8")
    healthy = lambda argv: (0, "\n".join("\t".join([c, "running", "Up (healthy)", s, "h", "False", "img", f"x-{s}-1", ""])
                                         for c, s in (("c1", "sgivu-postgres"), ("c2", "sgivu-redis"))), "") \
        if argv[:2] == ["docker", "ps"] else (0, "", "")
    run = RecordingRun(healthy)
    (root / "stack.env.rotating").write_text("POSTGRES_PASSWORD=a-new\nREDIS_PASSWORD=r-new\n")
    done = Release(run, str(root), "sgivu").rotate("finish")
    assert done["rotations"] == ["sgivu-postgres/POSTGRES_PASSWORD", "sgivu-redis/REDIS_PASSWORD"]
    assert not (root / "stack.env.rotating").exists()
    ups = [argv for argv in run.calls if "up" in argv]
    assert len(ups) == 1 and ups[0][-3:] == ["--force-recreate", "--no-deps", "sgivu-redis"]
    assert not [argv for argv in run.calls if argv[:2] == ["docker", "exec"]]


def test_a_rotated_credential_is_left_out_of_the_database_label_only(tmp_path):
    project = {"services": {"db": {"image": "pg"}, "app": {"image": "app"}},
               "x-sgivu": {"env_keys": {"db": ["PW"], "app": ["PW"]}, "rotate": {"db": {"PW": {"engine": "postgres", "user": "u"}}}}}
    release = Release(FakeRun(), str(tmp_path), "sgivu")
    first = release.label(json.loads(json.dumps(project)), {"PW": "one"})
    second = release.label(json.loads(json.dumps(project)), {"PW": "two"})
    assert first["db"] == second["db"] and first["app"] != second["app"]


def test_an_env_or_image_only_change_is_rolled_out_in_start_up_order():
    live = {"services": {"a": {"image": "x", "labels": {CONFIG_LABEL: "1"}}, "b": {"image": "y", "labels": {CONFIG_LABEL: "2"}}},
            "x-sgivu": {"waves": [["b"], ["a"]]}}
    new = json.loads(json.dumps(live))
    new["services"]["a"]["labels"][CONFIG_LABEL] = "3"
    new["services"]["b"]["labels"][CONFIG_LABEL] = "4"
    rows = [{"service": "a"}, {"service": "b"}]
    assert Release.rollout_order(new, project_text(live), ["a", "b"], [], rows) == ["b", "a"]
    published = json.loads(json.dumps(new))
    published["services"]["b"]["ports"] = ["127.0.0.1:8080:8080"]
    live_published = json.loads(json.dumps(live))
    live_published["services"]["b"]["ports"] = ["127.0.0.1:8080:8080"]
    # What publishes goes last (start-first, alone); the rest first, in one start.
    assert Release.rollout_order(published, project_text(live_published), ["a", "b"], [], rows) == ["a", "b"]
    # A new release of a service (a catalog tag moved) is rolled out too, not started stop-first.
    new["services"]["a"]["image"] = "x2"
    assert Release.rollout_order(new, project_text(live), ["a", "b"], [], rows) == ["b", "a"]
    # Anything else of the project changes: a whole start.
    new["services"]["a"]["environment"] = {"X": "1"}
    assert Release.rollout_order(new, project_text(live), ["a", "b"], [], rows) == []
    added = json.loads(json.dumps(live))
    added["services"]["c"] = {"image": "z"}
    assert Release.rollout_order(added, project_text(live), ["a", "c"], [], rows) == []
    assert Release.rollout_order(live, project_text(live), ["a"], ["orphan-1"], rows) == []
    assert Release.rollout_order(live, None, ["a"], [], rows) == []


def test_a_restored_release_is_the_candidate_again(tmp_path):
    project = {"services": {"api": {"image": "r/api:1@sha256:" + "a" * 64}}, "x-sgivu": {"env_keys": {"api": ["K"]}}}
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "releases" / "r1" / "compose.yml").write_text(project_text(project), encoding="utf-8")
    (tmp_path / "releases" / "r1" / "stack.env").write_text("K=good\n", encoding="utf-8")
    (tmp_path / "compose.next.yml").write_text("failed candidate\n", encoding="utf-8")
    (tmp_path / "stack.env.next").write_text("K=failed\n", encoding="utf-8")
    healthy = lambda argv: (0, "\t".join(["c1", "running", "Up (healthy)", "api", "h", "False", "img", "x-api-1", ""]), "") \
        if argv[:2] == ["docker", "ps"] else (0, "", "")
    Release(FakeRun(healthy), str(tmp_path), "sgivu").restore("r1", 5)
    assert (tmp_path / "stack.env.next").read_text() == "K=good\n"
    assert (tmp_path / "compose.next.yml").read_text() == project_text(project)
    assert oct((tmp_path / "stack.env.next").stat().st_mode & 0o777) == "0o600"


def archive_release(root: Path, project: dict, release: str = "r1") -> None:
    """An archived good release under ``root`` (its compose file and env file), as restore reads it."""
    (root / "releases" / release).mkdir(parents=True)
    (root / "releases" / release / "compose.yml").write_text(project_text(project), encoding="utf-8")
    (root / "releases" / release / "stack.env").write_text("K=good\n", encoding="utf-8")


def running_row(cid: str, service: str, label: str, image: str) -> str:
    """A healthy running container as `docker ps` shows it to Release (ID, state, status, service, config label, ...)."""
    return "\t".join([cid, "running", "Up 1 minute (healthy)", service, label, "False", image, "sgivu-" + cid, ""])


def test_a_published_service_that_was_healthy_but_bad_comes_back_start_first(tmp_path):
    # The gateway of the failed release serves (its bake failed): the restored one starts beside
    # it, and the module hands the bad one to the caller to retire once Nginx moved.
    good = "r/gw:1@sha256:" + "a" * 64
    project = {"services": {"gw": {"image": good, "ports": ["127.0.0.1:8080-8081:8080"], "labels": {CONFIG_LABEL: "good"}},
                            "api": {"image": "r/api:1", "labels": {CONFIG_LABEL: "api"}}},
               "x-sgivu": {"env_keys": {}, "waves": [["api"], ["gw"]]}}
    archive_release(tmp_path, project)
    scaled = []

    def answer(argv):
        if argv[:2] == ["docker", "ps"]:
            rows = [running_row("bad1", "gw", "bad", "r/gw:2@sha256:" + "b" * 64), running_row("api1", "api", "api", "r/api:1")]
            return 0, "\n".join(rows + ([running_row("new1", "gw", "good", good)] if scaled else [])), ""
        if "--scale" in argv:
            scaled.append(argv)
        return 0, "", ""

    run = FakeRun(answer)
    done = Release(run, str(tmp_path), "sgivu").restore("r1", 5)
    assert done["old"] == ["bad1"] and done["started"] == ["gw"]
    assert scaled and scaled[0][-3:] == ["--scale", "gw=2", "gw"] and "--no-recreate" in scaled[0]
    assert not [argv for argv in run.calls if "up" in argv and "--scale" not in argv], "nothing was recreated"
    assert not [argv for argv in run.calls if argv[:2] in (["docker", "stop"], ["docker", "rm"])], "the caller retires"


@pytest.mark.parametrize("start_first, swapped", [(["user"], True), ([], False)])
def test_an_unpublished_start_first_service_a_later_step_failed_after_comes_back_start_first(tmp_path, start_first, swapped):
    # sgivu-user's new release took over (start-first, in the registry), then a later step failed: the
    # last good user starts beside the failed one and is handed back to the caller for the hand-over
    # (drained) and the retire; the database, stop-first in the catalog, is recreated. A service the
    # catalog does not call start-first is recreated as before.
    project = {"services": {"user": {"image": "r/user:1", "labels": {CONFIG_LABEL: "good"}},
                            "pg": {"image": "r/pg:15", "labels": {CONFIG_LABEL: "pg-good"}}},
               "x-sgivu": {"env_keys": {}, "waves": [["pg"], ["user"]]}}
    archive_release(tmp_path, project)
    scaled = []

    def answer(argv):
        if argv[:2] == ["docker", "ps"]:
            rows = [running_row("bad1", "user", "bad", "r/user:2"), running_row("pg1", "pg", "pg-rotated", "r/pg:15")]
            return 0, "\n".join(rows + ([running_row("new1", "user", "good", "r/user:1")] if scaled else [])), ""
        if "--scale" in argv and "--detach" in argv:
            scaled.append(argv)
        return 0, "", ""

    run = FakeRun(answer)
    done = Release(run, str(tmp_path), "sgivu").restore("r1", 5, start_first)
    recreated = [argv for argv in run.calls if "up" in argv and "--scale" not in argv]
    assert len(recreated) == 1 and "pg" in recreated[0], "the database is recreated"
    if swapped:
        assert done["old"] == ["bad1"] and done["handover"] == ["user"]
        assert scaled and scaled[0][-3:] == ["--scale", "user=2", "user"] and "--no-recreate" in scaled[0]
        assert "user" not in recreated[0]
        assert not [argv for argv in run.calls if argv[:2] in (["docker", "stop"], ["docker", "rm"])], "the caller retires"
    else:
        assert done["old"] == [] and done["handover"] == [] and not scaled
        assert recreated[0][-2:] == ["pg", "user"], "recreated in start-up order"


def test_an_undo_that_fails_is_reported_and_keeps_the_marker_never_raised(tmp_path):
    root = rotation_root(tmp_path, "old-secret-value", "new-secret-value")
    (root / "stack.env.rotating").write_text("POSTGRES_PASSWORD=new-secret-value\n")
    refuse = lambda argv: (2, "", "FATAL: password authentication failed for new-secret-value") \
        if argv[:2] == ["docker", "exec"] else ps_answer(argv)
    done = Release(RecordingRun(refuse), str(root), "sgivu").rotate("undo")
    # The marker says a rotation was under way: every rotate key is given its old value back.
    assert done["rotations"] == ["sgivu-postgres/POSTGRES_PASSWORD", "sgivu-redis/REDIS_PASSWORD"]
    assert "undo the rotation of POSTGRES_PASSWORD in sgivu-postgres" in done["errors"][0]
    assert not [e for e in done["errors"] if "new-secret-value" in e]
    assert (root / "stack.env.rotating").exists()


def test_after_a_killed_rotation_every_rotate_key_is_taken_again_and_begin_logs_in_with_what_it_left(tmp_path):
    # Killed after the promotion: the running env file already holds the new value, the database
    # may hold either; the plan and begin take every rotate key again.
    root = rotation_root(tmp_path, "new-secret-value", "new-secret-value")
    (root / "stack.env.rotating").write_text("POSTGRES_PASSWORD=new-secret-value\nREDIS_PASSWORD=same\n")
    (root / "releases" / "r1").mkdir(parents=True)
    (root / "releases" / "r1" / "stack.env").write_text("POSTGRES_PASSWORD=old-secret-value\nREDIS_PASSWORD=same\n")
    answers = {"old-secret-value": (2, "", "password authentication failed"), "new-secret-value": (0, "", "")}
    run = RecordingRun(lambda argv: ps_answer(argv))
    run.answer = lambda argv: (answers.get(run.kwargs[-1]["environ_update"].get("PGPASSWORD"), (0, "OK", ""))
                               if argv[:2] == ["docker", "exec"] else ps_answer(argv))
    done = Release(run, str(root), "sgivu").rotate("begin", release="r1")
    assert done["rotations"] == ["sgivu-postgres/POSTGRES_PASSWORD", "sgivu-redis/REDIS_PASSWORD"]
    tried = [kw["environ_update"] for argv, kw in zip(run.calls, run.kwargs) if argv[:2] == ["docker", "exec"]]
    assert tried[:2] == [{"PGPASSWORD": "old-secret-value"}, {"PGPASSWORD": "new-secret-value"}]


def test_apply_starts_the_changed_services_and_those_that_do_not_serve_now(tmp_path):
    project = {"services": {"db": {"image": "pg"}, "api": {"image": "api"}, "web": {"image": "web"}},
               "x-sgivu": {"waves": [["db"], ["api", "web"]]}}
    for name in ("compose.yml", "compose.next.yml"):
        (tmp_path / name).write_text(project_text(project), encoding="utf-8")
    for name in ("stack.env", "stack.env.next"):
        (tmp_path / name).write_text("")
    rows = [("c1", "db", "Up (healthy)", "running"), ("c2", "api", "Exited (0)", "exited"), ("c3", "web", "Up (healthy)", "running")]
    answer = lambda argv: (0, "\n".join("\t".join([c, st, status, s, "h", "False", "img", f"x-{s}-1", ""])
                                         for c, s, status, st in rows), "") if argv[:2] == ["docker", "ps"] else (0, "", "")
    run = FakeRun(lambda argv: answer(argv) if not any("up" in c for c in run.calls) else (0, "\n".join(
        "\t".join([c, "running", "Up (healthy)", s, "h", "False", "img", f"x-{s}-1", ""]) for c, s, _, _ in rows), "")
        if argv[:2] == ["docker", "ps"] else (0, "", ""))
    release = Release(run, str(tmp_path), "sgivu")
    hashes = release.live_hashes()
    release.apply({"candidate": hashes, "live": hashes, "services": ["web"]}, None, 5)
    up = next(argv for argv in run.calls if "up" in argv)
    assert up[-3:] == ["--no-deps", "api", "web"]


def test_finish_acts_on_the_plan_s_rotations_only_though_begin_wrote_the_marker(tmp_path):
    root = tmp_path
    (root / "stack.env").write_text("POSTGRES_PASSWORD=a-old\nREDIS_PASSWORD=same\n")
    (root / "stack.env.next").write_text("POSTGRES_PASSWORD=a-new\nREDIS_PASSWORD=same\n")
    (root / "stack.env.rotating").write_text("POSTGRES_PASSWORD=a-new\nREDIS_PASSWORD=same\n")  # this run's begin
    project = {"services": {"sgivu-postgres": {"image": "pg"}, "sgivu-redis": {"image": "redis"}},
               "x-sgivu": {"env_keys": {"sgivu-postgres": ["POSTGRES_PASSWORD"], "sgivu-redis": ["REDIS_PASSWORD"]},
                           "rotate": ROTATIONS, "waves": [["sgivu-postgres", "sgivu-redis"]]}}
    for name in ("compose.next.yml", "compose.yml"):
        (root / name).write_text(project_text(project), encoding="utf-8")
    run = RecordingRun(ps_answer)
    done = Release(run, str(root), "sgivu").rotate("finish", only=["sgivu-postgres/POSTGRES_PASSWORD"])
    assert done["rotations"] == ["sgivu-postgres/POSTGRES_PASSWORD"]
    assert not [argv for argv in run.calls if "up" in argv]  # Redis is not restarted


# --------------------------------------------------------------------------
# drain: the registry hand-over of a start-first swap
# --------------------------------------------------------------------------
DRAIN_PROJECT = {"services": {
    "sgivu-user": {"image": "r/user:2", "environment": {"EUREKA_URL": "http://eureka:pw@sgivu-discovery:8761/eureka"}},
    "sgivu-client": {"image": "r/client:2", "environment": {"EUREKA_URL": "http://eureka:pw@sgivu-discovery:8761/eureka"}},
    "sgivu-ml": {"image": "r/ml:2"},
    "sgivu-discovery": {"image": "r/discovery:1"}},
    "x-sgivu": {"deadlines": {"sgivu-user": 7, "sgivu-client": 9}}}


def drain_host(tmp_path: Path, ml: Tuple[str, ...] = (), refuse: Tuple[str, ...] = ()) -> FakeRun:
    """The stack of DRAIN_PROJECT, an old and a new container of sgivu-user and of sgivu-client, and
    those of sgivu-ml named in ``ml`` ("mlold" on the network under the name sgivu-ml, "mlgone"
    that left it, "mlnew"); Docker refuses each command that begins with one of ``refuse``."""
    (tmp_path / "compose.yml").write_text(HEADER + "\n" + json.dumps(DRAIN_PROJECT), encoding="utf-8")
    ps = "\n".join([ps_line(id="old", name="sgivu-sgivu-user-1", service="sgivu-user"),
                    ps_line(id="new", name="sgivu-sgivu-user-2", service="sgivu-user"),
                    ps_line(id="cold", name="sgivu-sgivu-client-1", service="sgivu-client"),
                    ps_line(id="cnew", name="sgivu-sgivu-client-2", service="sgivu-client"),
                    ps_line(id="disc", name="sgivu-sgivu-discovery-1", service="sgivu-discovery")]
                   + [ps_line(id=i + "0" * 60, name="sgivu-sgivu-ml-" + i, service="sgivu-ml") for i in ml]) + "\n"
    addresses = {"old": "172.30.0.8", "new": "172.30.0.9", "cold": "172.30.0.10", "cnew": "172.30.0.11", "disc": "172.30.0.3"}
    networks = {i + "0" * 60: {"sgivu_sgivu": {"IPAddress": "172.30.0.%d" % (20 + n),
                                              "Aliases": [i[:12]] + (["sgivu-ml"] if i != "mlgone" else [])}}
                for n, i in enumerate(ml)}
    addresses.update({i: settings["sgivu_sgivu"]["IPAddress"] for i, settings in networks.items()})
    services = {"old": "sgivu-user", "new": "sgivu-user", "cold": "sgivu-client", "cnew": "sgivu-client", "disc": "sgivu-discovery"}

    def answer(argv: List[str]) -> Answer:
        if any(" ".join(argv[1:]).startswith(r) for r in refuse):
            return 1, "", "Error response from daemon: refused"
        if argv[:2] == ["docker", "ps"]:
            return 0, ps, ""
        if argv[:2] == ["docker", "inspect"] and "json .NetworkSettings.Networks" in argv[3]:
            return 0, "".join(f"{i} {json.dumps(networks.get(i, {'sgivu_sgivu': {'IPAddress': addresses.get(i), 'Aliases': [i, services.get(i)]}}))}\n"
                              for i in argv[4:]), ""
        if argv[:2] == ["docker", "inspect"]:
            return 0, "".join(f"{i} {addresses[i]}\n" for i in argv[4:]), ""
        return 0, "", ""
    return FakeRun(answer)


def test_drain_waits_for_the_new_instance_takes_the_old_out_and_waits_the_callers_cache(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(registry, "wait_up", lambda base, service, addresses, timeout: seen.update(
        up=(base, service, addresses, timeout)) or ["new-id"])
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: seen.update(
        out=(base, service, addresses)) or ["old-id"])
    monkeypatch.setattr(time, "sleep", lambda seconds: seen.update(slept=seconds))
    done = Release(drain_host(tmp_path), str(tmp_path), "sgivu").drain(["sgivu-user"], ["old"], 20, 0, 35)
    # The registry is reached at the discovery container's address with its user and password (basic
    # auth, registry.http_call), which are never shown.
    assert seen == {"up": ("http://eureka:pw@172.30.0.3:8761/eureka", "sgivu-user", ["172.30.0.9"], 7),
                    "out": ("http://eureka:pw@172.30.0.3:8761/eureka", "sgivu-user", ["172.30.0.8"]), "slept": 35}
    assert "pw" not in json.dumps(done)
    assert (done["registry"], done["registered"], done["out_of_service"], done["drained"]) == (
        "http://sgivu-discovery:8761/eureka", ["new-id"], ["old-id"], 35)


ML_OLD, ML_NEW = "mlold" + "0" * 60, "mlnew" + "0" * 60


def network_calls(run: FakeRun) -> List[List[str]]:
    return [call[2:] for call in run.calls if call[:2] == ["docker", "network"]]


def test_the_old_container_of_a_service_found_by_its_dns_name_leaves_the_name_at_its_address(tmp_path, monkeypatch):
    """Issue 11: sgivu-ml, which the gateway calls by its DNS name. The old container leaves the
    network and joins it again at the same address without the alias sgivu-ml: callers that look
    the name up find only the new one, the connections open to the old one go on, and it stops
    once the callers' DNS cache passed."""
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(registry, "take_out_of_service", lambda *args: pytest.fail("no registry"))
    run = drain_host(tmp_path, ml=("mlold", "mlnew"))
    done = Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], [ML_OLD[:12]], 20, 0, 35, 7)
    assert network_calls(run) == [["disconnect", "sgivu_sgivu", ML_OLD], ["connect", "--ip", "172.30.0.20", "sgivu_sgivu", ML_OLD]]
    assert slept == [7]
    assert (done["registry"], done["out_of_service"], done["left_dns"], done["drained"]) == (None, [], [ML_OLD[:12]], 7)
    assert not any(call[:2] in (["docker", "stop"], ["docker", "rm"]) for call in run.calls)  # retire stops it


def test_a_container_that_left_its_name_already_is_left_alone_and_nothing_is_waited(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("slept"))
    run = drain_host(tmp_path, ml=("mlgone", "mlnew"))
    done = Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlgone"], 20, 0, 35, 7)
    assert network_calls(run) == [] and (done["left_dns"], done["drained"]) == ([], 0)


def test_a_network_without_fixed_addresses_gives_the_old_container_a_new_one(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"), refuse=("network connect --ip",))
    done = Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)
    assert network_calls(run)[-1] == ["connect", "sgivu_sgivu", ML_OLD] and done["left_dns"] == [ML_OLD[:12]]


def test_a_refused_disconnect_fails_naming_the_container_and_the_name(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail("slept"))
    run = drain_host(tmp_path, ml=("mlold", "mlnew"), refuse=("network disconnect",))
    with pytest.raises(ComposeError, match=r"^taking the old sgivu-ml \(mlold0000000\) out of the name sgivu-ml on "
                                           r"sgivu_sgivu failed: Error response from daemon: refused"):
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)


def test_a_container_left_without_its_name_by_a_killed_hand_over_gets_it_back_when_its_service_starts(tmp_path):
    """A run killed while the old sgivu-ml waited out the callers' DNS cache, and Compose kept that
    one when the next deploy scaled sgivu-ml down: the name sgivu-ml would answer nothing."""
    project = {"services": {"sgivu-ml": {"image": "r/ml:2", "networks": {"sgivu": None}},
                            "sgivu-user": {"image": "r/user:2", "networks": {"sgivu": None}}},
               "networks": {"sgivu": {"name": "sgivu_sgivu"}}}
    run = drain_host(tmp_path, ml=("mlgone", "mlold"))
    rejoined = Release(run, str(tmp_path), "sgivu").rejoin_names(project, ["sgivu-ml", "sgivu-user"])
    gone = "mlgone" + "0" * 60
    assert network_calls(run) == [["disconnect", "sgivu_sgivu", gone],
                                  ["connect", "--ip", "172.30.0.20", "--alias", "sgivu-ml", "sgivu_sgivu", gone]]
    assert rejoined == [gone[:12]]
    assert Release(run, str(tmp_path), "sgivu").rejoin_names(project, []) == []


def test_a_service_found_by_its_dns_name_without_a_new_container_keeps_its_name(tmp_path, monkeypatch):
    run = drain_host(tmp_path, ml=("mlold",))
    with pytest.raises(ComposeError, match="^no new container of sgivu-ml serves beside the old ones; they stay in service.$"):
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)
    assert network_calls(run) == []


def test_one_step_with_a_registry_and_a_dns_name_waits_the_longer_cache_once(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(registry, "wait_up", lambda base, service, addresses, timeout: ["n"])
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: ["o"])
    run = drain_host(tmp_path, ml=("mlold", "mlnew"))
    done = Release(run, str(tmp_path), "sgivu").drain(["sgivu-user", "sgivu-ml"], ["old", "mlold"], 20, 0, 7, 30)
    assert slept == [30] and done["drained"] == 30
    assert (done["out_of_service"], done["left_dns"]) == (["o"], [ML_OLD[:12]])


def test_a_new_instance_that_never_registers_leaves_the_old_ones_under_their_dns_name_too(tmp_path, monkeypatch):
    def never(base, service, addresses, timeout):
        raise registry.RegistryError("no instance UP at 172.30.0.9")
    monkeypatch.setattr(registry, "wait_up", never)
    monkeypatch.setattr(registry, "take_out_of_service", lambda *args: [])
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"))
    with pytest.raises(ComposeError, match="did not register UP"):
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-user", "sgivu-ml"], ["old", "mlold"], 20, 0, 7, 30)
    assert network_calls(run) == []
    assert any(call[:3] == ["docker", "rm", "--force"] and ML_NEW in call for call in run.calls)


def test_a_new_instance_that_never_registers_up_is_removed_and_the_old_stays_in_service(tmp_path, monkeypatch):
    def never(base, service, addresses, timeout):
        raise registry.RegistryError("no instance UP at 172.30.0.9")
    monkeypatch.setattr(registry, "wait_up", never)
    taken = []
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: taken.append(addresses) or [])
    run = drain_host(tmp_path)
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-user"], ["old"], 20, 9, 35)
    assert error.value.msg.startswith("the new sgivu-user did not register UP with its registry "
                                      "http://sgivu-discovery:8761/eureka within 9 s (no instance UP at 172.30.0.9): ")
    assert error.value.msg.endswith(" They were removed; the running ones never left service.")
    assert ["docker", "rm", "--force", "new"] in run.calls
    assert not any("old" in call and call[:2] in (["docker", "rm"], ["docker", "stop"]) for call in run.calls)
    assert taken == [["172.30.0.9"]]  # only the new one, healthy, leaves the registry (if it is there)


def test_drain_without_a_new_container_takes_nothing_out_of_service(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "take_out_of_service", lambda *args: pytest.fail("the old one left service"))
    with pytest.raises(ComposeError, match="^no new container of sgivu-user serves beside the old ones; they stay in service.$"):
        Release(drain_host(tmp_path), str(tmp_path), "sgivu").drain(["sgivu-user"], ["old", "new"], 20, 0, 35)


def test_one_hand_over_moves_the_callers_of_several_services_and_waits_their_cache_once(tmp_path, monkeypatch):
    ups, outs, slept = [], [], []
    monkeypatch.setattr(registry, "wait_up", lambda base, service, addresses, timeout: ups.append(
        (service, addresses, timeout)) or [service + "-new"])
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: outs.append(
        (service, addresses)) or [service + "-old"])
    monkeypatch.setattr(time, "sleep", slept.append)
    done = Release(drain_host(tmp_path), str(tmp_path), "sgivu").drain(
        ["sgivu-user", "sgivu-client", "sgivu-ml"], ["old", "cold"], 20, 0, 35)
    # Both wait within one deadline, the longest of theirs (9 s); ml is found by DNS: nothing to do.
    assert [(s, a) for s, a, _ in ups] == [("sgivu-user", ["172.30.0.9"]), ("sgivu-client", ["172.30.0.11"])]
    assert all(1 <= t <= 9 for _, _, t in ups)
    # Every old container leaves service before the one wait, and only its own service's.
    assert outs == [("sgivu-user", ["172.30.0.8"]), ("sgivu-client", ["172.30.0.10"])]
    assert slept == [35]
    assert (done["registry"], done["registered"], done["out_of_service"], done["drained"]) == (
        "http://sgivu-discovery:8761/eureka", ["sgivu-user-new", "sgivu-client-new"], ["sgivu-user-old", "sgivu-client-old"], 35)


def test_when_one_of_several_never_registers_every_new_container_goes_and_no_old_one_left_service(tmp_path, monkeypatch):
    def up(base, service, addresses, timeout):
        if service == "sgivu-client":
            raise registry.RegistryError("no instance UP at 172.30.0.11")
        return [service]
    monkeypatch.setattr(registry, "wait_up", up)
    taken, slept = [], []
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: taken.append(
        (service, addresses)) or [service + "-new"])
    monkeypatch.setattr(time, "sleep", slept.append)
    run = drain_host(tmp_path)
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-user", "sgivu-client"], ["old", "cold"], 20, 0, 35)
    assert error.value.msg.startswith("the new sgivu-client did not register UP with its registry")
    assert error.value.msg.endswith(" They were removed, as were the new ones of sgivu-user; the running ones never left service.")
    assert error.value.details["failed_services"] == ["sgivu-client"]
    # The new sgivu-user was UP, maybe in the gateway's list already: it leaves the registry, the
    # callers' cache passes, and it stops gracefully (its client cancels) before it is removed.
    assert taken == [("sgivu-client", ["172.30.0.11"]), ("sgivu-user", ["172.30.0.9"])]
    assert slept == [35]
    stops = [call for call in run.calls if call[:2] == ["docker", "stop"]]
    assert stops == [["docker", "stop", "--time", "30", "new", "cnew"]]
    assert run.calls.index(stops[0]) < run.calls.index(["docker", "rm", "--force", "new", "cnew"])


def beside_host(tmp_path: Path, late: str = "") -> FakeRun:
    """Two services with one replica each running; after the scale-up each has a new container,
    healthy but for ``late``'s, which stays starting."""
    registry = {"EUREKA_URL": "http://sgivu-discovery:8761/eureka"}
    project = {"services": {"sgivu-user": {"image": "r/user:2", "environment": registry},
                            "sgivu-client": {"image": "r/client:2", "environment": registry}},
               "x-sgivu": {"deadlines": {"sgivu-user": 1, "sgivu-client": 2}, "waves": [["sgivu-client", "sgivu-user"]]}}
    (tmp_path / "compose.yml").write_text(HEADER + "\n" + json.dumps(project), encoding="utf-8")
    before = [ps_line(id="old", service="sgivu-user"), ps_line(id="cold", service="sgivu-client")]
    after = before + [ps_line(id="new", service="sgivu-user", status="Up 2 seconds (healthy)"),
                      ps_line(id="cnew", service="sgivu-client", status="Up 2 seconds (health: starting)" if late else
                              "Up 2 seconds (healthy)")]
    run = FakeRun(lambda argv: (0, "\n".join(after if any("--scale" in c for c in run.calls) else before) + "\n", "")
                  if argv[:2] == ["docker", "ps"] else (0, "", ""))
    return run


def test_services_swapped_together_start_beside_their_old_ones_in_one_compose_call(tmp_path):
    run = beside_host(tmp_path)
    release = Release(run, str(tmp_path), "sgivu")
    new = release.beside(load_project(str(tmp_path / "compose.yml")), ["sgivu-user", "sgivu-client"], ["old", "cold"], 5)
    ups = [argv for argv in run.calls if "up" in argv]
    assert len(ups) == 1 and ups[0][-6:] == ["--scale", "sgivu-user=2", "--scale", "sgivu-client=2", "sgivu-user", "sgivu-client"]
    assert "--no-recreate" in ups[0] and "--no-deps" in ups[0]
    assert new == ["new", "cnew"]


@pytest.mark.parametrize("state", ["exited", "created", "restarting"])
def test_a_container_of_the_service_that_does_not_run_is_removed_before_the_scale_up(tmp_path, state):
    """A killed run's created container, an exited or a crash-looping one: Compose's --scale would
    count it and --no-recreate start it with its own configuration, taken then for the new one."""
    run = beside_host(tmp_path)
    leftover = ps_line(id="gone", service="sgivu-user", state=state, status=state.capitalize())
    answer = run.answer
    run.answer = lambda argv: ((0, leftover + "\n" + answer(argv)[1], "") if argv[:2] == ["docker", "ps"]
                               and not any(c[:3] == ["docker", "rm", "--force"] for c in run.calls) else answer(argv))
    new = Release(run, str(tmp_path), "sgivu").beside(load_project(str(tmp_path / "compose.yml")),
                                                      ["sgivu-user", "sgivu-client"], ["old", "cold"], 5)
    removed = [i for i, argv in enumerate(run.calls) if argv[:3] == ["docker", "rm", "--force"]]
    ups = [i for i, argv in enumerate(run.calls) if "up" in argv]
    assert removed and run.calls[removed[0]][3:] == ["gone"] and removed[0] < ups[0]
    assert run.calls[ups[0]][-6:] == ["--scale", "sgivu-user=2", "--scale", "sgivu-client=2", "sgivu-user", "sgivu-client"]
    assert new == ["new", "cnew"]


def test_a_new_container_found_by_its_dns_name_joins_the_name_only_once_healthy(tmp_path, monkeypatch):
    """Docker puts a container under its aliases as it starts: the new sgivu-ml is created, leaves
    the name, starts, and joins the name (at its address) once healthy - no caller looks it up while
    it does not answer yet."""
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    project = {"services": {"sgivu-ml": {"image": "r/ml:2", "networks": {"sgivu": None}}},
               "networks": {"sgivu": {"name": "sgivu_sgivu"}},
               "x-sgivu": {"deadlines": {"sgivu-ml": 5}, "waves": [["sgivu-ml"]]}}
    (tmp_path / "compose.yml").write_text(HEADER + "\n" + json.dumps(project), encoding="utf-8")
    state = {"new": None, "aliases": ["sgivu-ml", "mlnew"], "address": ""}

    def answer(argv: List[str]) -> Answer:
        if argv[:2] == ["docker", "ps"]:
            rows = [ps_line(id="mlold", service="sgivu-ml")]
            if state["new"]:
                rows.append(ps_line(id="mlnew", service="sgivu-ml", state=state["new"],
                                    status="Up 3 seconds (healthy)" if state["new"] == "running" else "Created"))
            return 0, "\n".join(rows) + "\n", ""
        if "--no-start" in argv:
            state["new"] = "created"
        elif "up" in argv and "--detach" in argv:
            state["new"], state["address"] = "running", "172.30.0.30"
        if argv[:2] == ["docker", "inspect"]:
            return 0, "mlnew " + json.dumps({"sgivu_sgivu": {"IPAddress": state["address"], "Aliases": state["aliases"]}}) + "\n", ""
        if argv[:3] == ["docker", "network", "connect"]:
            state["aliases"] = ["mlnew"] + (["sgivu-ml"] if "--alias" in argv else [])
        return 0, "", ""
    run = FakeRun(answer)
    new = Release(run, str(tmp_path), "sgivu").beside(load_project(str(tmp_path / "compose.yml")), ["sgivu-ml"], ["mlold"], 5)
    assert new == ["mlnew"]
    steps = [("no-start" if "--no-start" in c else "start") if "up" in c else " ".join(c[2:]) for c in run.calls
             if "up" in c or c[:2] == ["docker", "network"]]
    assert steps == ["no-start", "disconnect sgivu_sgivu mlnew", "connect sgivu_sgivu mlnew", "start",
                     "disconnect sgivu_sgivu mlnew", "connect --ip 172.30.0.30 --alias sgivu-ml sgivu_sgivu mlnew"]


def test_when_one_of_several_is_not_healthy_in_time_every_new_container_goes_and_the_late_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    clock = iter(range(0, 1000, 1))
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    run = beside_host(tmp_path, late="sgivu-client")
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").beside(
            load_project(str(tmp_path / "compose.yml")), ["sgivu-user", "sgivu-client"], ["old", "cold"], 5)
    # The wait is the longest deadline of the two (2 s); only the late one is named.
    assert error.value.msg.startswith("the new sgivu-client did not become healthy within 2 s: sgivu-client (")
    assert error.value.msg.endswith(" They were removed, as were the new ones of sgivu-user; the running ones never stopped.")
    assert ["docker", "rm", "--force", "new", "cnew"] in run.calls


def test_a_swap_or_a_hand_over_of_no_service_is_refused_before_anything_changes(tmp_path):
    run = beside_host(tmp_path)
    release = Release(run, str(tmp_path), "sgivu")
    for call in (lambda: release.start_beside({}, [], 5), lambda: release.drain([], ["old"], 5)):
        with pytest.raises(ComposeError, match="needs at least one service; none was named. Nothing was changed."):
            call()
    assert run.calls == []


def test_drain_knows_the_old_containers_by_their_short_ids_too(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(registry, "wait_up", lambda base, service, addresses, timeout: seen.append(addresses) or ["n"])
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: seen.append(addresses) or ["o"])
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    Release(drain_host(tmp_path), str(tmp_path), "sgivu").drain(["sgivu-user"], ["ol"], 20, 0, 35)
    assert seen == [["172.30.0.9"], ["172.30.0.8"]]  # "ol" is the old one: waited for the new, took out the old


# --------------------------------------------------------------------------
# DNS hand-over under hostile conditions (a fresh review of the change)
# --------------------------------------------------------------------------


def _ml_restore_root(tmp_path: Path) -> None:
    good = "r/ml:1@sha256:" + "a" * 64
    project = {"name": "sgivu",
               "services": {"sgivu-ml": {"image": good, "labels": {CONFIG_LABEL: "good"},
                                         "networks": {"sgivu-network": None}}},
               "networks": {"sgivu-network": {"name": "sgivu-network"}},
               "x-sgivu": {"env_keys": {}, "waves": [["sgivu-ml"]]}}
    (tmp_path / "releases" / "r1").mkdir(parents=True)
    (tmp_path / "releases" / "r1" / "compose.yml").write_text(project_text(project), encoding="utf-8")
    (tmp_path / "releases" / "r1" / "stack.env").write_text("K=good\n", encoding="utf-8")


def test_restore_after_a_failed_dns_hand_over_gives_the_kept_old_container_its_name_back(tmp_path, monkeypatch):
    """The rescue (stack_release restore.yml -> state=restored) after the old ml left its name: Compose
    keeps the old container (its config is the last good one) and removes the new one; the old one
    gets the alias sgivu-ml back, else the name would answer nothing."""
    monkeypatch.setattr(time, "sleep", lambda s: None)
    _ml_restore_root(tmp_path)
    old, new = "mlold" + "0" * 60, "mlnew" + "0" * 60
    upped = []

    def row(cid, label):
        return "\t".join([cid, "running", "Up 1 minute (healthy)", "sgivu-ml", label, "False",
                          "r/ml:1@sha256:" + "a" * 64 if label == "good" else "r/ml:2@sha256:" + "b" * 64,
                          "sgivu-sgivu-ml-" + cid[:5], ""])

    def answer(argv):
        if argv[:2] == ["docker", "ps"]:
            return 0, "\n".join([row(old, "good")] + ([] if upped else [row(new, "bad")])), ""
        if "up" in argv:
            upped.append(argv)
        if argv[:2] == ["docker", "inspect"] and "json .NetworkSettings.Networks" in argv[3]:
            return 0, f"{old} " + json.dumps({"sgivu-network": {"IPAddress": "172.30.0.20", "Aliases": [old[:12]]}}) + "\n", ""
        return 0, "", ""

    run = FakeRun(answer)
    Release(run, str(tmp_path), "sgivu").restore("r1", 5)
    assert upped, "restore recreated ml"
    assert any(c[:3] == ["docker", "network", "connect"] and "--alias" in c for c in run.calls), \
        "restore left the kept old sgivu-ml without its DNS name"


def test_rejoin_names_reconnects_a_container_left_off_its_network(tmp_path):
    """leave_dns raised after its disconnect (connect refused) or the run was killed between the
    two: the container is on no project network, and joins it with its name."""
    project = {"services": {"sgivu-ml": {"image": "r/ml:2", "networks": {"sgivu": None}}},
               "networks": {"sgivu": {"name": "sgivu_sgivu"}}}
    old = "mlold" + "0" * 60
    run = FakeRun(lambda argv: (0, ps_line(id=old, service="sgivu-ml"), "") if argv[:2] == ["docker", "ps"]
                  else (0, f"{old} {{}}\n", "") if argv[:2] == ["docker", "inspect"] else (0, "", ""))
    rejoined = Release(run, str(tmp_path), "sgivu").rejoin_names(project, ["sgivu-ml"])
    assert rejoined == [old[:12]], "a container on no project network is not given its name back"


def test_rejoin_names_matches_a_network_without_an_explicit_name(tmp_path):
    """Compose names a network without `name` <project>_<key>."""
    project = {"services": {"sgivu-ml": {"image": "r/ml:2", "networks": {"sgivu": None}}},
               "networks": {"sgivu": {}}}
    run = drain_host(tmp_path, ml=("mlgone",))
    rejoined = Release(run, str(tmp_path), "sgivu").rejoin_names(project, ["sgivu-ml"])
    assert rejoined == ["mlgone" + "0" * 6]


def test_rejoin_names_survives_a_top_level_network_written_as_null(tmp_path):
    project = {"services": {"sgivu-ml": {"image": "r/ml:2", "networks": ["sgivu_sgivu"]}},
               "networks": {"sgivu_sgivu": None}}
    run = drain_host(tmp_path, ml=("mlgone",))
    assert Release(run, str(tmp_path), "sgivu").rejoin_names(project, ["sgivu-ml"]) == ["mlgone" + "0" * 6]


def test_a_refused_connect_says_the_container_is_off_its_network(tmp_path, monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"), refuse=("network connect",))
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)
    assert ["disconnect", "sgivu_sgivu", ML_OLD] in network_calls(run)
    assert error.value.msg.endswith("It left sgivu_sgivu and could not join it again: it serves no one there.")


def test_a_dns_failure_after_the_registry_hand_over_says_the_registry_ones_left_service(tmp_path, monkeypatch):
    """A step with sgivu-user (registry) and sgivu-ml (DNS): the DNS move comes before anything leaves
    the registry, so a refused one leaves the old sgivu-user in service, and the message says so."""
    taken = []
    monkeypatch.setattr(registry, "wait_up", lambda base, service, addresses, timeout: ["n"])
    monkeypatch.setattr(registry, "take_out_of_service", lambda base, service, addresses: taken.append(service) or ["o"])
    monkeypatch.setattr(time, "sleep", lambda s: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"), refuse=("network disconnect",))
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-user", "sgivu-ml"], ["old", "mlold"], 20, 0, 7, 30)
    assert taken == [], "sgivu-user's old container left service before the DNS move was known to work"
    assert error.value.msg.endswith("It is still on sgivu_sgivu under the name. Nothing left the registry.")


def test_partial_leave_of_several_old_containers_is_reported(tmp_path, monkeypatch):
    """replicas 2: the first old one left the name, Docker refuses the second."""
    monkeypatch.setattr(time, "sleep", lambda s: None)
    run = drain_host(tmp_path, ml=("mlold", "mlol2", "mlnew"), refuse=("network disconnect sgivu_sgivu mlol2",))
    with pytest.raises(ComposeError) as error:
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold", "mlol2"], 20, 0, 35, 7)
    assert ["connect", "--ip", "172.30.0.20", "sgivu_sgivu", ML_OLD] in network_calls(run)
    assert error.value.msg.endswith("It is still on sgivu_sgivu under the name. mlold0000000 had left the name before.")


def test_an_unhealthy_new_container_does_not_let_the_old_one_leave_the_name(tmp_path, monkeypatch):
    """The registry path waits for UP; the DNS path needs a new container that serves (healthy)."""
    monkeypatch.setattr(time, "sleep", lambda s: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"))
    inner = run.answer

    def answer(argv):
        rc, out, err = inner(argv)
        if argv[:2] == ["docker", "ps"]:
            out = out.replace("\t".join(["running", "Up 1 minute (healthy)", "sgivu-ml", "h1", "False", "r/api:1",
                                         "sgivu-sgivu-ml-mlnew"]),
                              "\t".join(["running", "Up 1 minute (unhealthy)", "sgivu-ml", "h1", "False", "r/api:1",
                                         "sgivu-sgivu-ml-mlnew"]))
            assert "(unhealthy)" in out
        return rc, out, err
    run.answer = answer
    with pytest.raises(ComposeError):
        Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)
    assert network_calls(run) == []


def test_a_fallback_to_a_new_address_is_reported(tmp_path, monkeypatch):
    """--ip refused: the old one gets a new address, its open connections are cut; the result says so."""
    monkeypatch.setattr(time, "sleep", lambda s: None)
    run = drain_host(tmp_path, ml=("mlold", "mlnew"), refuse=("network connect --ip",))
    done = Release(run, str(tmp_path), "sgivu").drain(["sgivu-ml"], ["mlold"], 20, 0, 35, 7)
    assert done["readdressed"] == done["left_dns"] == [ML_OLD[:12]]
