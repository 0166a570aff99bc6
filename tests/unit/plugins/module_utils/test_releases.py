"""The release history: what is recorded, what is not, and how releases are found."""
from __future__ import annotations

import json

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils import releases


def release(rid: str, tag: str = "1.0.0", env: str = "e1", digest: str = "", status: str = "good") -> dict:
    digest = digest or tag
    return {
        "id": rid, "who": "ops", "time": rid, "status": status, "format": releases.FORMAT,
        "services": {"api": {"image": f"r/api:{tag}@sha256:{digest}", "digest": f"r/api@sha256:{digest}"}},
        "compose_sha256": f"c-{tag}-{digest}", "env_sha256": env,
    }


def test_empty_text_is_an_empty_history():
    assert releases.load("", "s") == {"stack": "s", "releases": []}


def test_a_malformed_history_is_refused():
    with pytest.raises(ValueError):
        releases.load('{"releases": 3}', "s")


def test_a_new_state_is_appended():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    releases.append(history, release("r2", tag="1.1.0"), keep=5)
    assert [r["id"] for r in history["releases"]] == ["r1", "r2"]


def test_repeating_the_last_good_state_records_nothing():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    assert releases.append(history, release("r2"), keep=5) == []
    assert [r["id"] for r in history["releases"]] == ["r1"]


def test_a_changed_env_file_is_a_new_release():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    releases.append(history, release("r2", env="e2"), keep=5)
    assert len(history["releases"]) == 2


def test_old_releases_are_pruned_and_returned():
    history = releases.load("", "s")
    for i in range(4):
        releases.append(history, release(f"r{i}", tag=f"1.{i}.0"), keep=10)
    pruned = releases.append(history, release("r4", tag="1.4.0"), keep=3)
    assert [r["id"] for r in pruned] == ["r0", "r1"]
    assert [r["id"] for r in history["releases"]] == ["r2", "r3", "r4"]


def test_a_duplicate_id_is_refused():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    with pytest.raises(ValueError, match="already in the history"):
        releases.append(history, release("r1", tag="2.0.0"), keep=5)


def test_find_by_id_and_by_steps_back():
    history = releases.load("", "s")
    for i in range(3):
        releases.append(history, release(f"r{i}", tag=f"1.{i}.0"), keep=10)
    assert releases.find(history, "r1")["id"] == "r1"
    assert releases.find(history)["id"] == "r2"
    assert releases.find(history, before=1)["id"] == "r1"


def test_find_an_unknown_release_names_the_recorded_ones():
    history = releases.load("", "s")
    releases.append(history, release("r1"), keep=5)
    with pytest.raises(ValueError, match="r9 is not in the history.*r1"):
        releases.find(history, "r9")


def test_find_beyond_the_history_is_refused():
    with pytest.raises(ValueError, match="holds 0 release"):
        releases.find(releases.load("", "s"))


def _history(*tags):
    history = releases.load("", "s")
    for i, tag in enumerate(tags):
        entry = release(f"r{i}", tag=tag)
        entry["backup"] = f"/b/r{i}.sql.gz"
        releases.append(history, entry, keep=20)
    return history


def test_service_rollback_goes_to_the_last_other_version_by_digest():
    target = releases.service_rollback(_history("1.0.0", "1.1.0"), "api")
    assert target == {"release": "r0", "image": "r/api:1.0.0@sha256:1.0.0"}


def test_service_rollback_sees_a_moved_tag_as_another_version():
    """The same tag re-pushed with other content: the digest moved, so there is a version to go back to."""
    history = releases.load("", "s")
    releases.append(history, release("r0", tag="1.0.0", digest="good"), keep=20)
    releases.append(history, release("r1", tag="1.0.0", digest="moved"), keep=20)
    assert releases.service_rollback(history, "api") == {"release": "r0", "image": "r/api:1.0.0@sha256:good"}


def test_service_rollback_skips_failed_releases():
    history = releases.load("", "s")
    releases.append(history, release("r0", tag="1.0.0"), keep=20)
    releases.append(history, release("r1", tag="1.1.0"), keep=20)
    releases.append(history, release("r2", tag="0.0.0-bad", status="failed"), keep=20)
    assert releases.service_rollback(history, "api")["release"] == "r0"


def test_last_good_is_the_newest_good_release_of_this_format():
    history = releases.load("", "s")
    releases.append(history, release("r0"), keep=20)
    releases.append(history, release("r1", tag="1.1.0", status="failed"), keep=20)
    history["releases"].append({"id": "legacy", "services": {}, "compose_sha256": "x", "env_sha256": "y"})
    assert releases.last_good(history)["id"] == "r0"


def test_a_failed_release_of_the_last_good_state_is_still_recorded():
    history = releases.load("", "s")
    releases.append(history, release("r0"), keep=20)
    releases.append(history, release("r1", status="failed"), keep=20)
    assert [r["id"] for r in history["releases"]] == ["r0", "r1"]


def test_a_release_id_taken_in_the_same_second_gets_a_suffix():
    history = releases.load("", "s")
    releases.append(history, release("20261130T120000Z"), keep=20)
    assert releases.unique_id(history, "20261130T120000Z") == "20261130T120000Z-2"


def test_stack_rollback_refuses_a_failed_release():
    history = _history("1.0.0", "1.1.0")
    releases.append(history, release("r9", tag="2.0.0", status="failed"), keep=20)
    with pytest.raises(ValueError, match="r9 cannot be gone back to: it failed .* The good releases are: r0, r1"):
        releases.stack_rollback(history, "r9")


def test_service_rollback_to_a_named_release():
    target = releases.service_rollback(_history("1.0.0", "1.1.0", "1.2.0"), "api", "r0")
    assert target["image"] == "r/api:1.0.0@sha256:1.0.0"


def test_service_rollback_without_an_earlier_version_is_refused():
    with pytest.raises(ValueError, match="no earlier good release ran another digest of api"):
        releases.service_rollback(_history("1.0.0"), "api")


def test_service_rollback_of_an_unknown_service_is_refused():
    with pytest.raises(ValueError, match="web is not in the last good release"):
        releases.service_rollback(_history("1.0.0", "1.1.0"), "web")


def test_stack_rollback_names_the_images_and_the_dump_taken_before_moving_on():
    target = releases.stack_rollback(_history("1.0.0", "1.1.0"))
    assert target == {"release": "r0", "images": {"api": "r/api:1.0.0@sha256:1.0.0"}, "backup": "/b/r1.sql.gz"}


def test_a_rollback_keeps_the_tag_so_a_later_repull_knows_what_to_pull():
    """The pinned reference names the tag and the digest: the digest decides, the tag is for updates."""
    assert releases.service_rollback(_history("1.0.0", "1.1.0"), "api")["image"].startswith("r/api:1.0.0@")


def test_status_lines_show_newest_first_with_what_changed_and_the_containers():
    lines = releases.status_lines(_history("1.0.0", "1.1.0"), [
        {"Names": ["/s-api-1"], "Image": "r/api:1.1.0", "Status": "Up 3 minutes (healthy)"},
    ])
    assert lines[2].startswith("r1") and lines[2].endswith("api") and " good " in lines[2]
    assert lines[3].startswith("r0") and lines[3].endswith("(first good release)")
    assert any(line.startswith("s-api-1") and "(healthy)" in line for line in lines)


def test_status_compares_each_release_with_the_good_release_before_it_not_a_failed_one():
    """helper-36: a release after a failed attempt showed what differed from that attempt, and a rotation nothing."""
    history = releases.load("", "s")
    moved = dict(release("r4", tag="1.2.0", env="e3"), compose_sha256="c-other")
    for entry in (release("r0", tag="1.0.0"), release("r1", tag="1.1.0", status="failed"),
                  release("r2", tag="1.0.0", env="e2"), release("r3", tag="1.2.0", env="e2"), moved):
        releases.append(history, entry, keep=20)
    rows = {line.split()[0]: line for line in releases.status_lines(history, []) if line[:1] == "r" and line[1:2].isdigit()}
    assert rows["r1"].endswith(" api") and " failed " in rows["r1"]   # what it tried to move
    assert rows["r2"].endswith("(env values only)")                   # against r0, not the failed r1
    assert rows["r3"].endswith(" api")
    assert rows["r4"].endswith("(compose project and env values only)")
    assert rows["r0"].endswith("(first good release)")


# --------------------------------------------------------------------------
# event: the notification of one change on one host
# --------------------------------------------------------------------------
def change_event(**kwargs) -> dict:
    record = dict(release("20261130T120000Z", tag="1.1.0"), purpose="update api 1.1.0")
    arguments = dict(outcome="ok", host="web-1", stack="sgivu", started="2026-11-30T12:00:00+00:00",
                     finished="2026-11-30T12:00:42.46+00:00")
    arguments.update(kwargs)
    return releases.event(record, **arguments)


def test_an_event_names_the_release_its_images_by_digest_who_and_where():
    event = change_event()
    assert event["event"] == "sgivu.deploy.release" and event["schema"] == 1
    assert (event["stack"], event["host"], event["outcome"]) == ("sgivu", "web-1", "ok")
    assert (event["release"], event["purpose"], event["who"]) == ("20261130T120000Z", "update api 1.1.0", "ops")
    assert event["images"] == {"api": "r/api:1.1.0@sha256:1.1.0"}
    assert event["error"] is None and event["restored"] is None


def test_an_event_gives_times_in_utc_and_the_duration_in_seconds():
    event = change_event(started="2026-11-30T13:00:00+01:00", finished="2026-11-30T12:01:05Z")
    assert (event["started"], event["finished"], event["duration_s"]) == ("2026-11-30T12:00:00Z", "2026-11-30T12:01:05Z", 65.0)


def test_an_event_reads_a_time_without_offset_as_utc():
    assert change_event(started="2026-11-30T12:00:00", finished="2026-11-30T12:00:01")["duration_s"] == 1.0


def test_a_rolled_back_event_names_the_release_put_back_and_what_went_wrong():
    event = change_event(outcome="rolled_back", error="  the new api did not become healthy  ", restored="20261129T090000Z")
    assert (event["outcome"], event["restored"], event["error"]) == (
        "rolled_back", "20261129T090000Z", "the new api did not become healthy")


def test_an_event_cuts_a_long_error_to_a_thousand_characters():
    assert len(change_event(outcome="failed", error="x" * 5000)["error"]) == 1000


def test_an_event_keeps_only_the_run_facts_that_have_a_value():
    assert change_event(run={"awx_job_id": 42, "awx_job_template": None})["run"] == {"awx_job_id": 42}


@pytest.mark.parametrize("outcome", ["OK", "success", "", "rolled back"])
def test_an_unknown_outcome_is_refused_naming_the_known_ones(outcome):
    with pytest.raises(ValueError, match="ok, rolled_back, failed"):
        change_event(outcome=outcome)


def test_a_time_that_is_not_iso_8601_is_refused_naming_it():
    with pytest.raises(ValueError, match="yesterday"):
        change_event(started="yesterday")


def test_an_event_holds_nothing_of_the_record_but_what_it_lists():
    """The record may gain fields (a backup path, hashes); the event carries only its own keys."""
    event = change_event()
    assert "backup" not in event and "env_sha256" not in event and "compose_sha256" not in event


# --------------------------------------------------------------------------
# image_retention: which images pruning keeps
# --------------------------------------------------------------------------
def history_of(*entries: dict) -> dict:
    return {"stack": "s", "releases": list(entries)}


def test_retention_keeps_the_digests_of_the_newest_good_releases():
    kept = releases.image_retention(history_of(release("r1", digest="d1"), release("r2", digest="d2"),
                                               release("r3", digest="d3")), keep=2)
    assert kept["digests"] == ["r/api@sha256:d2", "r/api@sha256:d3"] and kept["releases"] == ["r2", "r3"]


def test_retention_keeps_nothing_for_a_failed_release():
    kept = releases.image_retention(history_of(release("r1", digest="d1"), release("r2", digest="d2", status="failed")),
                                    keep=1)
    assert kept["digests"] == ["r/api@sha256:d1"]


def test_retention_names_every_repository_any_release_used():
    old = release("r1", digest="d1")
    old["services"]["gone"] = {"image": "reg:5000/s/gone:1@sha256:g", "digest": "reg:5000/s/gone@sha256:g"}
    kept = releases.image_retention(history_of(old, release("r2", digest="d2")), keep=1)
    assert kept["repositories"] == ["r/api", "reg:5000/s/gone"] and kept["digests"] == ["r/api@sha256:d2"]


def test_retention_with_fewer_good_releases_keeps_them_all():
    assert releases.image_retention(history_of(release("r1", digest="d1")), keep=5)["releases"] == ["r1"]


@pytest.mark.parametrize("keep", [0, -1])
def test_retention_always_keeps_the_last_good_release(keep):
    with pytest.raises(ValueError, match="keep >= 1"):
        releases.image_retention(history_of(release("r1")), keep=keep)


def test_image_retention_keeps_an_image_recorded_without_a_digest_by_its_tag():
    history = {"releases": [{"id": "a", "status": "good", "format": 2,
                             "services": {"job": {"image": "reg/s/job:1", "digest": None}, "web": {"image": "reg/s/web"}}}]}
    assert releases.image_retention(history, 1)["digests"] == ["reg/s/job:1", "reg/s/web:latest"]


def test_status_shows_each_release_s_bake():
    baked = release("r2", "1.1.0", status="failed")
    baked["bake"] = {"gw": {"verdict": "failed", "watched": 6, "requests": 41, "success_rate": 70.7, "p99_ms": 4}}
    lines = releases.status_lines({"stack": "s", "releases": [release("r1"), baked]}, [])
    assert "bake: gw failed after 6 s (41 requests, 70.7 % below 500, p99 4 ms)" in "\n".join(lines)
    unjudged = dict(release("r3", "1.2.0"), bake={"gw": {"verdict": "unjudged", "watched": 60, "requests": 3,
                                                          "success_rate": 100.0, "p99_ms": None}})
    lines = releases.status_lines({"stack": "s", "releases": [unjudged]}, [])
    assert any(line.strip() == "bake: gw unjudged after 60 s (3 requests, 100.0 % below 500, p99 - ms)" for line in lines)


CATALOG = {"sgivu-gateway": {"image": "r/gateway", "tag": "1.0"}, "sgivu-user": {"image": "r/user", "tag": "1.0"},
           "sgivu-old": {"image": "r/old", "tag": "1.0", "enabled": False}}
WAITS = {"health_timeout": "each service's own deadline", "lock_wait": "refuse at once while another run holds the lock"}


@pytest.mark.parametrize("run", [
    {"change": "deploy"},
    {"change": "deploy", "health_timeout": 0, "lock_wait": "", "restore_database": None, "version": "", "to_release": ""},
    {"change": "deploy", "health_timeout": None, "lock_wait": "86400", "services": []},
    {"change": "update", "services": "sgivu-gateway, sgivu-user\n", "version": "1.5.0", "health_timeout": "60",
     "lock_wait": 30},
    {"change": "update", "services": ["sgivu-gateway"], "version": ""},
    {"change": "rollback", "health_timeout": "007", "restore_database": "True", "to_release": "20261202T175831Z"},
    {"change": "rollback", "services": "sgivu-user", "to_release": "20261202T175831Z-2", "restore_database": True},
    {"change": "rollback", "restore_database": " no "},
    {"change": "rollback", "restore_database": 0},
])
def test_run_arguments_an_operator_may_give_pass(run):
    assert releases.run_problems(run, CATALOG) == []


@pytest.mark.parametrize("name, value", [
    ("health_timeout", "-5"), ("health_timeout", -5), ("health_timeout", "abc"), ("health_timeout", "2.5"),
    ("health_timeout", 2.5), ("health_timeout", True), ("health_timeout", False), ("health_timeout", " 60"),
    ("health_timeout", "60\n"), ("health_timeout", "١٢"), ("health_timeout", "86401"), ("health_timeout", 10 ** 30),
    ("lock_wait", "-1"), ("lock_wait", "1e3"), ("lock_wait", ["30"]), ("lock_wait", []), ("lock_wait", {"s": 1}),
    ("lock_wait", "1" + "0" * 30),
])
def test_a_wait_that_is_not_whole_seconds_up_to_a_day_is_named_with_its_value(name, value):
    problems = releases.run_problems({"change": "deploy", name: value}, CATALOG)
    shown = json.dumps(value, ensure_ascii=False)
    assert problems == [f"{name} must be a whole number of seconds from 0 to 86400 (0: {WAITS[name]}), got "
                        + (shown if len(shown) <= 40 else shown[:36] + '..."')]


@pytest.mark.parametrize("value", ["ture", "maybe", 2, ["true"], "truee", {"a": 1}])
def test_a_restore_database_that_is_no_boolean_word_is_refused(value):
    # Ansible's bool filter would take each of these as false: the rollback would not load the dump.
    assert releases.run_problems({"change": "rollback", "restore_database": value}, CATALOG) == [
        f"restore_database must be true or false, got {json.dumps(value)}"]


@pytest.mark.parametrize("value", [{"sgivu-gateway": 1}, 5, True])
def test_services_that_are_neither_names_nor_a_list_are_named(value):
    assert releases.run_problems({"change": "update", "services": value, "version": "1.5.0"}, CATALOG) == [
        f"service must be a name, names separated by commas, or a list of names, got {json.dumps(value)}"]


@pytest.mark.parametrize("key, value", [("version", None), ("version", 1.5), ("version", True), ("version", ["1.5"]),
                                        ("to_release", None), ("to_release", ["x"]), ("to_release", 20261202)])
def test_a_version_or_release_that_is_not_text_is_refused_not_converted(key, value):
    change = "update" if key == "version" else "rollback"
    problems = releases.run_problems({"change": change, "services": ["sgivu-user"], key: value}, CATALOG)
    assert problems[0].startswith(f"{key} must be ") and problems[0].endswith(f"(text), got {json.dumps(value)}")


@pytest.mark.parametrize("value", ["$(id)", "latest", "20261202T175831", "x" * 3000, "20261202T175831Z;id"])
def test_a_rollback_to_something_that_is_no_release_id_is_refused(value):
    shown = json.dumps(value)
    assert releases.run_problems({"change": "rollback", "to_release": value}, CATALOG) == [
        "to_release must be a release id as status.yml lists them (the UTC time it was made, YYYYMMDDTHHMMSSZ, -2 added "
        "for a second one in that second), got "
        + (shown if len(shown) <= 40 else shown[:36] + '..."')]


def test_every_problem_of_an_update_is_named_at_once_and_long_values_are_cut():
    problems = releases.run_problems({"change": "update", "services": ["sgivu-nope", "sgivu-old", "sgivu-user", "y" * 80],
                                      "version": "-" + "b" * 200, "health_timeout": "x" * 80, "lock_wait": "abc"}, CATALOG)
    assert problems == [
        "health_timeout must be a whole number of seconds from 0 to 86400 (0: each service's own deadline), got \""
        + "x" * 35 + "...\"",
        "lock_wait must be a whole number of seconds from 0 to 86400 (0: refuse at once while another run holds the lock), "
        "got \"abc\"",
        "service \"sgivu-nope\", \"sgivu-old\", \"" + "y" * 35 + "...\" are not services the catalog runs; its enabled "
        "services are sgivu-gateway, sgivu-user",
        "version \"-" + "b" * 34 + "...\" is not a valid image tag (letters, digits, '_', '.', '-'; at most 128, not starting "
        "with '.' or '-')",
    ]


def test_a_rollback_of_one_service_names_a_service_the_catalog_runs():
    assert releases.run_problems({"change": "rollback", "services": "sgivu-nope"}, CATALOG) == [
        "service \"sgivu-nope\" is not a service the catalog runs; its enabled services are sgivu-gateway, sgivu-user"]


def test_the_services_of_a_deploy_or_a_whole_stack_rollback_are_not_checked_against_the_catalog():
    # A deploy takes no service; a rollback of two is refused by its own message (one service or none).
    assert releases.run_problems({"change": "deploy", "services": ["sgivu-old"]}, CATALOG) == []
    assert releases.run_problems({"change": "rollback", "services": ["sgivu-nope", "sgivu-x"]}, CATALOG) == []


API = {"api": {"image": "r/api", "tag": "1.0.0"}}


def test_plan_targets_of_each_change_read_from_the_history():
    history = _history("1.0.0", "1.1.0")
    current = {"api": "r/api:1.1.0"}

    def targets(change, names=(), release_id="", version=""):
        return releases.plan_targets(history, change, list(names), release_id, version, API, current)

    assert targets("deploy") == {"images": {}, "from": "", "backup": None, "problem": ""}
    assert targets("update", ["api"], version="1.2.0")["images"] == {"api": "r/api:1.2.0"}
    assert targets("update", ["api"])["images"] == {"api": "r/api:1.1.0"}, "no version: the tag it runs, re-pulled"
    assert targets("rollback", ["api"]) == {"images": {"api": "r/api:1.0.0@sha256:1.0.0"}, "from": "", "backup": None,
                                            "problem": ""}
    assert targets("rollback") == {"images": {}, "from": "r0", "backup": "/b/r1.sql.gz", "problem": ""}
    assert targets("rollback", release_id="r1")["from"] == "r1"


@pytest.mark.parametrize("change, names, release_id, problem", [
    # A release id of the right form that this host never recorded (another host's, or a typo).
    ("rollback", [], "19990101T000000Z", "release 19990101T000000Z is not in the history (recorded: r0)"),
    ("rollback", ["api"], "19990101T000000Z", "release 19990101T000000Z is not in the history (recorded: r0)"),
    ("rollback", [], "", "the history holds 1 good release(s) this version can restore; there is no earlier one to go back to"),
    ("rollback", ["api"], "", "no earlier good release ran another digest of api"),
])
def test_plan_targets_name_what_the_history_cannot_take_instead_of_raising(change, names, release_id, problem):
    targets = releases.plan_targets(_history("1.0.0"), change, names, release_id, "", API, {"api": "r/api:1.0.0"})
    assert targets == {"images": {}, "from": "", "backup": None, "problem": problem}


def test_plan_targets_name_a_service_pinned_by_digest_alone_when_no_version_is_given():
    targets = releases.plan_targets(_history("1.0.0"), "update", ["api"], "", "", API, {"api": "r/api@sha256:abc"})
    assert targets["images"] == {}
    assert targets["problem"].startswith("api runs r/api@sha256:abc, pinned by digest alone: there is no tag to pull again")


@pytest.mark.parametrize("releases_json, damage", [
    ('[1, 2]', "release 1 of 2 in the history is damaged: it is int, not a release"),
    ('[{"id": 20260101, "services": {}}]', "release 1 of 1 in the history is damaged: its id is 20260101, not text"),
    ('[{"status": "good", "format": 2, "services": {}}]', "release 1 of 1 in the history is damaged: its id is null, not text"),
    ('[{"id": "r0", "services": {}}, {"id": "r1", "status": null}]',
     "release 2 of 2 in the history is damaged: release r1's status is null, not text"),
    ('[{"id": "r0", "services": {"api": "r/api:1"}}]',
     "release 1 of 1 in the history is damaged: release r0's services are not a map of service to image"),
    ('[{"id": "r0", "status": "good", "format": 2}]', "release 1 of 1 in the history is damaged: release r0 is good but names no services"),
])
def test_a_damaged_release_history_is_refused_naming_the_entry(releases_json, damage):
    # Every reader (plan, status, pruning) takes an entry's shape for granted: load() is the one gate.
    with pytest.raises(ValueError) as raised:
        releases.load('{"stack": "s", "releases": %s}' % releases_json, "s")
    assert str(raised.value) == damage


def test_a_failed_release_without_services_still_loads():
    history = releases.load('{"stack": "s", "releases": [{"id": "r0", "status": "failed"}]}', "s")
    assert releases.last_good(history) is None


def test_plan_targets_name_a_history_that_escaped_the_checks_instead_of_raising():
    # A history handed over without load() (a dict with a good release missing its services).
    targets = releases.plan_targets({"releases": [{"id": "r0", "status": "good", "format": 2}] * 2}, "rollback", ["api"],
                                    "", "", API, {"api": "r/api:1.0.0"})
    assert targets["images"] == {} and targets["from"] == ""
    assert targets["problem"] == ("the release history of this host cannot take this change (KeyError: 'services'); "
                                  "`status.yml` shows it as recorded")


def test_plan_targets_refuse_a_database_restore_from_a_release_without_a_dump():
    history = _history("1.0.0", "1.1.0")
    history["releases"][0]["backup"] = None
    history["releases"][1]["backup"] = None
    targets = releases.plan_targets(history, "rollback", [], "", "", API, {"api": "r/api:1.1.0"}, restore_database=True)
    assert targets == {"images": {}, "from": "", "backup": None, "problem": (
        "restore_database: release r0 has no dump to restore (one is taken just before the stack moves on from a release, "
        "when a database service runs); roll back without restore_database to keep the data as it is")}
    assert releases.plan_targets(history, "rollback", [], "", "", API, {"api": "r/api:1.1.0"})["from"] == "r0"


def test_plan_targets_take_a_database_restore_from_a_release_with_a_dump():
    targets = releases.plan_targets(_history("1.0.0", "1.1.0"), "rollback", [], "", "", API, {"api": "r/api:1.1.0"},
                                    restore_database=True)
    assert targets == {"images": {}, "from": "r0", "backup": "/b/r1.sql.gz", "problem": ""}


@pytest.mark.parametrize("value", [["a", ["x"]], [{"name": "a"}], [None]])
def test_a_service_list_holding_anything_but_names_is_refused(value):
    with pytest.raises(ValueError, match="service must be a name, names separated by commas, or a list of names, got "):
        releases.service_names(value)


@pytest.mark.parametrize("value, names", [
    ("sgivu-gateway,sgivu-gateway", ["sgivu-gateway"]),
    (" a , b ,a", ["a", "b"]),
    ("b\na,,b", ["b", "a"]),
    (["a", " ", "b", "a"], ["a", "b"]),
    (None, []),
])
def test_the_services_named_are_each_taken_once_in_the_order_given(value, names):
    assert releases.service_names(value) == names
