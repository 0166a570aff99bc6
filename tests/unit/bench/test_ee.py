"""bench/ee.py: the bench's execution environment has the production EE's pins, and runs jobs as AWX does."""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
_SPEC = importlib.util.spec_from_file_location("sgivu_bench_ee", ROOT / "bench" / "ee.py")
ee = sys.modules.setdefault(_SPEC.name, importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(ee)

PRODUCTION = yaml.safe_load((ROOT / "execution-environment.yml").read_text(encoding="utf-8"))
BASE = ee.base_ref()


@pytest.fixture(scope="module")
def bench():
    return ee.bench_definition(PRODUCTION, BASE)


def test_the_bench_ee_keeps_every_pin_of_the_production_ee(bench):
    for key in ("ansible_core", "ansible_runner"):
        assert bench["dependencies"][key] == PRODUCTION["dependencies"][key]
    # The requirement files are copied under their own names, so the same lines reach pip and bindep.
    assert bench["dependencies"]["python"] == Path(PRODUCTION["dependencies"]["python"]).name
    assert bench["dependencies"]["system"] == Path(PRODUCTION["dependencies"]["system"]).name


def test_the_bench_ee_builds_on_the_local_debian_base_with_apt_and_no_download_of_collections(bench):
    assert bench["images"]["base_image"]["name"] == BASE
    assert bench["options"]["package_manager_path"] == "/usr/bin/apt-get"
    assert bench["options"]["skip_pip_install"] is True  # Debian's Python has no ensurepip
    assert "python3-pip" in bench["dependencies"]["python_interpreter"]["package_system"].split()
    assert bench["build_arg_defaults"]["ANSIBLE_GALAXY_CLI_COLLECTION_OPTS"] == "--offline"
    assert "RUN apt-get update" in bench["additional_build_steps"]["prepend_base"]


@pytest.mark.parametrize("broken", [
    {"version": 1, "dependencies": PRODUCTION["dependencies"]},
    {"version": 3, "dependencies": {k: v for k, v in PRODUCTION["dependencies"].items() if k != "python"}},
])
def test_a_production_definition_it_cannot_follow_is_refused_naming_it(broken):
    with pytest.raises(ee.EEError, match="execution-environment.yml is not an ansible-builder version 3"):
        ee.bench_definition(broken, BASE)


def test_the_collections_include_what_they_depend_on():
    required = [c["name"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]]
    closure = ee.collection_closure(required)
    assert set(required) <= set(closure)
    # community.docker 4 needs it, and an offline install without it fails.
    assert "community.library_inventory_filtering_v1" in closure


def test_a_collection_that_is_not_installed_is_named(tmp_path):
    with pytest.raises(ee.EEError, match="collection example.ghost is not installed in"):
        ee.collection_closure(["example.ghost"], source=tmp_path)


def test_the_navigator_command_passes_variables_by_name_and_never_pulls(monkeypatch):
    secret = "p@ss word;$(reboot)'\""
    env = {"SGIVU_BENCH_REGISTRY_PASSWORD": secret, "AWS_SECRET_ACCESS_KEY": secret, "UNRELATED": "x"}
    monkeypatch.setattr(ee.shutil, "which", lambda name: "/usr/bin/docker")
    command = ee.navigator_command("update.yml", ["-i", "inventories/bench", "-e", "service=sgivu-user"],
                                   "example/ee:1", env)
    assert command[:3] == ["ansible-navigator", "run", "update.yml"]
    assert command[-4:] == ["-i", "inventories/bench", "-e", "service=sgivu-user"]
    assert not [arg for arg in command if secret in arg]
    # One --penv=NAME each: a list form would swallow a bare argument that follows it.
    assert [a.split("=", 1)[1] for a in command if a.startswith("--pass-environment-variable=")] == [
        "SGIVU_BENCH_REGISTRY_PASSWORD", "AWS_SECRET_ACCESS_KEY"]
    assert command[command.index("--pull-policy") + 1] == "never"
    # At debug level navigator would log the passed values.
    assert command[command.index("--log-level") + 1] == "warning"
    assert command[command.index("--execution-environment-image") + 1] == "example/ee:1"
    assert "--container-options=--network=host" in command
    assert f"--execution-environment-volume-mounts={ee.DOCKER_SOCKET}:{ee.DOCKER_SOCKET}" in command


@pytest.mark.parametrize("value", ["s3cr3t\nLD_PRELOAD=/tmp/evil.so", "a\rb", "a\0b"])
def test_a_passed_value_with_a_line_break_is_refused_naming_the_variable_only(monkeypatch, value):
    monkeypatch.setattr(ee.shutil, "which", lambda name: "/usr/bin/docker")
    with pytest.raises(ee.EEError, match="AWS_SECRET_ACCESS_KEY holds a line break or NUL") as refused:
        ee.navigator_command("deploy.yml", [], "example/ee:1", {"AWS_SECRET_ACCESS_KEY": value})
    assert value not in str(refused.value)


@pytest.mark.parametrize("playbook", ["-i", "no-such-playbook.yml", "roles"])
def test_something_that_is_not_a_playbook_of_the_checkout_is_refused(monkeypatch, playbook):
    monkeypatch.setattr(ee.shutil, "which", lambda name: "/usr/bin/docker")
    with pytest.raises(ee.EEError, match="is not a playbook of"):
        ee.navigator_command(playbook, ["deploy.yml"], "example/ee:1", {})


def test_a_playbook_outside_the_checkout_is_refused_by_absolute_or_relative_path(monkeypatch, tmp_path):
    monkeypatch.setattr(ee.shutil, "which", lambda name: "/usr/bin/docker")
    outside = tmp_path / "play.yml"
    outside.write_text("- hosts: all\n")
    for playbook in (str(outside), os.path.relpath(outside, ee.ROOT)):
        with pytest.raises(ee.EEError, match="is not a playbook of"):
            ee.navigator_command(playbook, [], "example/ee:1", {})


def test_without_a_docker_cli_the_run_is_refused_saying_why(monkeypatch):
    monkeypatch.setattr(ee.shutil, "which", lambda name: None)
    with pytest.raises(ee.EEError, match="no docker CLI on PATH"):
        ee.navigator_command("deploy.yml", [], "example/ee:1", {})
    assert ee.main(["run", "deploy.yml"]) == 1  # the whole command line says so too, without a traceback


def test_an_image_list_without_the_ee_is_refused_naming_the_key(tmp_path, capsys, monkeypatch):
    manifest = yaml.safe_load((ROOT / "bench" / "images.yml").read_text(encoding="utf-8"))
    del manifest["execution_environment"]
    path = tmp_path / "images.yml"
    path.write_text(yaml.safe_dump(manifest), encoding="utf-8")
    original = ee.Images
    monkeypatch.setattr(ee, "Images", lambda: original(path))
    assert ee.main(["ref"]) == 1
    assert "has no execution_environment.ref" in capsys.readouterr().err


def test_a_wrong_command_line_prints_what_was_wrong_and_the_usage(capsys):
    assert ee.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command line 'frobnicate'" in err and "Usage:" in err and "ee.py build" in err
    assert ee.main(["--help"]) == 0


def test_the_runner_event_data_is_taken_out_of_the_log_as_a_terminal_would():
    line = ("\x1b[Ke30=\x1b[4D\x1b[K\x1b[KeyJ1dWlkIjogIjAy\x1b[16D\x1b[K"
            "TASK [plan | Give the lock back] ****\n")
    assert ee.without_event_data(line) == "TASK [plan | Give the lock back] ****\n"
    assert ee.without_event_data("ok: [sgivu-update-deb12]\n") == "ok: [sgivu-update-deb12]\n"


def test_a_run_waits_for_a_build_in_progress_and_goes_on_when_it_ends(tmp_path, monkeypatch, capsys):
    """A job of the scenario bench/test starts beside the build looks for the image only after it."""
    import fcntl
    import threading

    monkeypatch.setenv("SGIVU_BENCH_DIR", str(tmp_path))
    entered = threading.Event()

    def job():
        with ee.build_lock(shared=True):
            entered.set()

    with open(tmp_path / "ee.lock", "a", encoding="utf-8") as build:
        fcntl.flock(build, fcntl.LOCK_EX)  # as ee.py build holds it
        waiting = threading.Thread(target=job)
        waiting.start()
        assert not entered.wait(0.5), "the job went on while the build held the lock"
        fcntl.flock(build, fcntl.LOCK_UN)
    assert entered.wait(5), "the job still waits after the build ended"
    waiting.join(5)
    assert f"waiting for {tmp_path / 'ee.lock'}" in capsys.readouterr().err

