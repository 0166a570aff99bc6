"""host_state, run as Ansible runs it (the module on localhost, this Debian controller)."""
from __future__ import annotations

import grp
import hashlib
import os
import pwd

import ansible_cli  # tests/lib


def run_module(args: dict, check: bool = False) -> dict:
    return ansible_cli.run_module("host_state", args, check)


def test_an_installed_package_is_not_missing_and_an_absent_or_unknown_one_is():
    result = run_module({"packages": ["dpkg", "sgivu-no-such-package", "coreutils"]})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["packages_missing"] == ["sgivu-no-such-package"]


def test_a_file_is_described_with_its_mode_owner_and_sha256_and_a_missing_one_as_absent(tmp_path):
    wanted = tmp_path / "daemon.json"
    wanted.write_bytes(b'{\n  "live-restore": true\n}\n')
    wanted.chmod(0o640)
    result = run_module({"paths": [str(wanted), str(tmp_path), str(tmp_path / "gone")]})
    assert result["paths"][str(wanted)] == {
        "exists": True, "isdir": False, "isreg": True, "islnk": False, "mode": "0640", "uid": os.getuid(), "gid": os.getgid(),
        "sha256": hashlib.sha256(wanted.read_bytes()).hexdigest(),
    }
    assert result["paths"][str(tmp_path)]["isdir"] is True
    assert result["paths"][str(tmp_path)]["sha256"] == ""
    assert result["paths"][str(tmp_path / "gone")] == {"exists": False}


def test_the_sha256_is_that_of_jinja_hash_of_the_same_text(tmp_path):
    # docker_host compares it with `__docker_host_daemon_json | hash('sha256')`: the same bytes, the same digest.
    text = '{\n  "log-opts": {"max-file": "5"},\n  "registry-mirrors": ["https://m\u00e9.example"]\n}\n'
    path = tmp_path / "daemon.json"
    path.write_text(text, encoding="utf-8")
    assert run_module({"paths": [str(path)]})["paths"][str(path)]["sha256"] == hashlib.sha256(text.encode()).hexdigest()


def test_a_user_outside_the_group_or_unknown_is_missing_and_a_member_is_not():
    root_group = grp.getgrgid(0).gr_name
    member = next((name for name in grp.getgrgid(0).gr_mem), None)
    users = ["root", "sgivu-no-such-user"] + ([member] if member else [])
    result = run_module({"group": root_group, "users": users})
    # root's primary group is root, but it is no supplementary member: ansible.builtin.user would add it.
    assert "root" in result["users_missing"] or "root" in grp.getgrgid(0).gr_mem
    assert "sgivu-no-such-user" in result["users_missing"]
    if member:
        assert member not in result["users_missing"]
    assert run_module({"group": "sgivu-no-such-group", "users": ["root"]})["users_missing"] == ["root"]
    assert pwd.getpwnam("root")


def test_a_user_with_no_account_is_unknown_whatever_the_group():
    result = run_module({"group": "sgivu-no-such-group", "users": ["root", "sgivu-no-such-user"]})
    assert result["users_unknown"] == ["sgivu-no-such-user"]
    # A comma-separated string is a list, as Ansible's own argument specs read it.
    assert run_module({"group": "root", "users": "root,sgivu-no-such-user"})["users_unknown"] == ["sgivu-no-such-user"]
    assert run_module({"paths": []})["users_unknown"] == []


def test_names_are_read_without_blanks_and_empty_names_are_dropped():
    # -e docker_host_users="root, sgivu-no-such-user" and a stray comma: the same two names, no empty one.
    result = run_module({"group": "sgivu-no-such-group", "users": "root, sgivu-no-such-user ,,"})
    assert result["users_unknown"] == ["sgivu-no-such-user"]
    assert result["users_missing"] == ["root", "sgivu-no-such-user"]
    # Blanks only: no user at all, so no group is needed either.
    result = run_module({"users": [" ", ""]})
    assert not result.get("failed"), result
    assert result["users_missing"] == [] and result["users_unknown"] == []


def test_an_unknown_unit_has_empty_states_and_check_mode_reads_the_same(tmp_path):
    result = run_module({"service": "sgivu-no-such-unit", "paths": [str(tmp_path)]}, check=True)
    assert not result.get("failed"), result
    assert result["service"]["active_state"] in ("", "inactive")
    assert result["service"]["unit_file_state"] in ("", "not-found")
    assert result["paths"][str(tmp_path)]["exists"] is True


def test_an_unreadable_path_fails_naming_it(tmp_path):
    if os.getuid() == 0:
        # root reads any mode: a FIFO without a writer would block instead, so use a directory named as a file.
        target = tmp_path / "dir"
        target.mkdir()
        assert run_module({"paths": [str(target)]})["paths"][str(target)]["isreg"] is False
        return
    locked = tmp_path / "locked"
    locked.write_text("x")
    locked.chmod(0)
    result = run_module({"paths": [str(locked)]})
    assert result["failed"] is True and str(locked) in result["msg"]


def test_a_symlink_is_described_as_a_link_not_as_the_file_it_points_at(tmp_path):
    # ansible.builtin.copy replaces a link with a file: a linked daemon.json is never "as wanted".
    target = tmp_path / "real.json"
    target.write_text("{}\n")
    link = tmp_path / "daemon.json"
    link.symlink_to(target)
    described = run_module({"paths": [str(link)]})["paths"][str(link)]
    assert described["islnk"] is True and described["isreg"] is False and described["sha256"] == ""


def test_users_without_a_group_are_refused_and_no_users_need_none():
    refused = run_module({"users": ["root"]})
    assert refused["failed"] is True and "needs group" in refused["msg"]
    assert run_module({"paths": []})["users_missing"] == []
