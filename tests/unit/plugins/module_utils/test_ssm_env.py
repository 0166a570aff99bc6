"""Unit tests of the env file logic (plugins/module_utils/ssm_env.py)."""

from __future__ import annotations

import string
from typing import Any, Dict

import pytest

from ansible_collections.sgivu.deploy.plugins.module_utils.ssm_env import (
    ENV_FILE_HEADER,
    SsmEnvError,
    build_env,
    env_line,
    render_env_file,
)

PATH = "/sgivu/prod"

# Distinctive values: no message may ever contain one of them.
SECRETS = {
    "pg": "pg-Secret-71b3",
    "internal": "internal-Secret-0c9e",
    "internal_other": "internal-Secret-OTHER-55aa",
    "redis": "redis-Secret-e4f2",
    "issuer": "https://issuer-Secret.example.com",
    "auth": "https://auth-Secret.example.com",
    "reserved": "reserved-Secret-9d04",
}

PARAMETERS: Dict[str, Any] = {
    PATH + "/POSTGRES_PASSWORD": SECRETS["pg"],
    PATH + "/SERVICE_INTERNAL_SECRET_KEY": SECRETS["internal"],
    PATH + "/sgivu-user/SERVICE_INTERNAL_SECRET_KEY": SECRETS["internal"],
    PATH + "/REDIS_PASSWORD": SECRETS["redis"],
    PATH + "/ISSUER_URL": SECRETS["issuer"],
    PATH + "/sgivu-gateway/SGIVU_AUTH_URL": SECRETS["issuer"],
}
REQUIRED = ["ISSUER_URL", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "SERVICE_INTERNAL_SECRET_KEY", "SGIVU_AUTH_URL"]
EQUAL = [["ISSUER_URL", "SGIVU_AUTH_URL"]]


def params(**changes: Any) -> Dict[str, Any]:
    """PARAMETERS with changes keyed by the name below PATH ('sgivu-user/KEY'); None drops one."""
    result = dict(PARAMETERS)
    for rel, value in changes.items():
        name = PATH + "/" + rel.replace("__", "/")
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def failure(*args: Any, **kwargs: Any) -> SsmEnvError:
    with pytest.raises(SsmEnvError) as info:
        build_env(*args, **kwargs)
    assert_no_secret(str(info.value))
    return info.value


def assert_no_secret(message: str) -> None:
    for value in SECRETS.values():
        assert value not in message


def read_back(text: str) -> Dict[str, str]:
    """The env a raw env file gives its reader: each line split at its first '=', '#' lines and blank lines skipped."""
    env: Dict[str, str] = {}
    for line in text.split("\n"):
        if line == "" or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        env[key] = value
    return env


# --------------------------------------------------------------------------
# the happy path
# --------------------------------------------------------------------------
def test_keys_are_the_last_component_of_the_parameter_name():
    env = build_env(PARAMETERS, PATH, REQUIRED, EQUAL)
    assert env == {
        "ISSUER_URL": SECRETS["issuer"],
        "POSTGRES_PASSWORD": SECRETS["pg"],
        "REDIS_PASSWORD": SECRETS["redis"],
        "SERVICE_INTERNAL_SECRET_KEY": SECRETS["internal"],
        "SGIVU_AUTH_URL": SECRETS["issuer"],
    }


def test_a_key_at_several_paths_with_one_value_is_kept_once():
    env = build_env(PARAMETERS, PATH)
    assert list(env).count("SERVICE_INTERNAL_SECRET_KEY") == 1


def test_a_trailing_slash_on_the_path_is_ignored():
    assert build_env(PARAMETERS, PATH + "/", REQUIRED, EQUAL) == build_env(PARAMETERS, PATH, REQUIRED, EQUAL)


def test_required_and_equal_keys_may_be_omitted():
    assert build_env({PATH + "/A": "1"}, PATH) == {"A": "1"}


def test_required_keys_may_come_from_the_plain_extras():
    env = build_env({PATH + "/A": "1"}, PATH, ["A", "SPRING_PROFILES_ACTIVE"], plain={"SPRING_PROFILES_ACTIVE": "prod"})
    assert env == {"A": "1", "SPRING_PROFILES_ACTIVE": "prod"}


def test_plain_extras_become_text():
    env = build_env({PATH + "/A": "1"}, PATH, plain={"DEBUG": False, "WORKERS": 4, "RATIO": 0.5})
    assert env == {"A": "1", "DEBUG": "false", "WORKERS": "4", "RATIO": "0.5"}


def test_short_names_are_accepted_too():
    assert build_env({"A": "1", "B": "2"}, PATH) == {"A": "1", "B": "2"}


# --------------------------------------------------------------------------
# key map
# --------------------------------------------------------------------------
def test_key_map_by_parameter_name():
    env = build_env({PATH + "/db-password": "x"}, PATH, key_map={"db-password": "POSTGRES_PASSWORD"})
    assert env == {"POSTGRES_PASSWORD": "x"}


def test_key_map_by_path_suffix_below_the_path():
    env = build_env(
        {PATH + "/sgivu-user/db-password": "x", PATH + "/sgivu-ml/db-password": "y"},
        PATH,
        key_map={"sgivu-user/db-password": "USER_DB_PASSWORD", "sgivu-ml/db-password": "ML_DB_PASSWORD"},
    )
    assert env == {"USER_DB_PASSWORD": "x", "ML_DB_PASSWORD": "y"}


def test_key_map_by_full_name():
    env = build_env({PATH + "/a/b": "x"}, PATH, key_map={PATH + "/a/b": "AB"})
    assert env == {"AB": "x"}


def test_key_map_longest_suffix_wins():
    env = build_env(
        {PATH + "/svc/pw": "x", PATH + "/pw": "y"},
        PATH,
        key_map={"pw": "PW", "svc/pw": "SVC_PW"},
    )
    assert env == {"SVC_PW": "x", "PW": "y"}


def test_key_map_can_join_two_parameters_into_one_key_when_they_agree():
    env = build_env(
        {PATH + "/redis/password": "r", PATH + "/REDIS_PASSWORD": "r"},
        PATH,
        key_map={"redis/password": "REDIS_PASSWORD"},
    )
    assert env == {"REDIS_PASSWORD": "r"}


def test_key_map_target_must_be_a_valid_key():
    exc = failure({PATH + "/A": "1"}, PATH, key_map={"A": "not-a-key"})
    assert exc.problems == ["key map: A maps to 'not-a-key', which is not a valid env key"]


def test_key_map_must_be_a_mapping():
    exc = failure({PATH + "/A": "1"}, PATH, key_map=["A"])
    assert "the key map must be a mapping" in exc.problems[0]


# --------------------------------------------------------------------------
# every error path, by key name and never by value
# --------------------------------------------------------------------------
def test_an_empty_path_is_an_error_naming_the_path():
    exc = failure({}, PATH, REQUIRED, EQUAL)
    assert exc.problems == ["Parameter Store holds no parameter under /sgivu/prod (is the path or the region wrong?)"]
    assert str(exc).startswith("the parameters under /sgivu/prod do not make a valid env file (1 problem):")


def test_a_lookup_result_that_is_not_a_mapping_is_an_error():
    exc = failure([SECRETS["pg"]], PATH)
    assert "must be a mapping of parameter name to value, got list" in str(exc)


@pytest.mark.parametrize("prefix", ["sgivu/prod", "", None, 3])
def test_the_path_must_be_absolute(prefix):
    exc = failure(PARAMETERS, prefix)
    assert "the path must be a string starting with '/'" in str(exc)


def test_a_missing_required_key_is_named():
    exc = failure(params(REDIS_PASSWORD=None), PATH, REQUIRED, EQUAL)
    assert exc.problems == ["required keys missing under /sgivu/prod: REDIS_PASSWORD"]


def test_every_missing_required_key_is_named_in_one_problem():
    exc = failure(params(REDIS_PASSWORD=None, POSTGRES_PASSWORD=None), PATH, REQUIRED + ["JWT_KEYSTORE_PASSWORD"])
    assert exc.problems == [
        "required keys missing under /sgivu/prod: JWT_KEYSTORE_PASSWORD, POSTGRES_PASSWORD, REDIS_PASSWORD"
    ]


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_a_blank_required_key_is_named(blank):
    exc = failure(params(REDIS_PASSWORD=blank), PATH, REQUIRED, EQUAL)
    assert exc.problems == ["required keys empty: REDIS_PASSWORD"]


def test_a_key_with_different_values_at_several_paths_is_named_with_its_parameters():
    exc = failure(params(**{"sgivu-user__SERVICE_INTERNAL_SECRET_KEY": SECRETS["internal_other"]}), PATH, REQUIRED)
    assert exc.problems == [
        "SERVICE_INTERNAL_SECRET_KEY must hold one value, but its 2 parameters differ: "
        "/sgivu/prod/SERVICE_INTERNAL_SECRET_KEY, /sgivu/prod/sgivu-user/SERVICE_INTERNAL_SECRET_KEY"
    ]


def test_one_redis_password_for_redis_and_its_clients():
    exc = failure(params(**{"sgivu-redis__REDIS_PASSWORD": "redis-Secret-OTHER"}), PATH, REQUIRED)
    assert "REDIS_PASSWORD must hold one value" in str(exc)
    assert "redis-Secret-OTHER" not in str(exc)


def test_an_equal_group_with_different_values_names_both_keys():
    exc = failure(params(**{"sgivu-gateway__SGIVU_AUTH_URL": SECRETS["auth"]}), PATH, REQUIRED, EQUAL)
    assert exc.problems == ["ISSUER_URL, SGIVU_AUTH_URL must hold one value, but they differ"]


def test_an_equal_group_of_three_names_every_key():
    exc = failure({PATH + "/A": "1", PATH + "/B": "1", PATH + "/C": "2"}, PATH, equal_keys=[["A", "B", "C"]])
    assert exc.problems == ["A, B, C must hold one value, but they differ"]


def test_an_equal_key_that_is_not_set_and_not_required_is_named():
    exc = failure(params(**{"sgivu-gateway__SGIVU_AUTH_URL": None}), PATH, ["ISSUER_URL"], EQUAL)
    assert exc.problems == ["SGIVU_AUTH_URL (must equal ISSUER_URL) is not set"]


def test_an_equal_key_that_is_required_and_missing_is_reported_once():
    exc = failure(params(**{"sgivu-gateway__SGIVU_AUTH_URL": None}), PATH, REQUIRED, EQUAL)
    assert exc.problems == ["required keys missing under /sgivu/prod: SGIVU_AUTH_URL"]


def test_a_parameter_name_that_is_not_a_valid_key_is_named():
    exc = failure(params(**{"sgivu-user__db-password": SECRETS["pg"]}), PATH)
    assert exc.problems == [
        "/sgivu/prod/sgivu-user/db-password: 'db-password' is not a valid env key; "
        "rename the parameter or map it in the key map"
    ]


def test_a_value_that_is_not_text_is_named():
    exc = failure({PATH + "/A": ["x"]}, PATH)
    assert exc.problems == ["/sgivu/prod/A: the value is not text (got list)"]


def test_a_key_in_both_parameters_and_plain_extras_is_named():
    exc = failure(PARAMETERS, PATH, plain={"ISSUER_URL": "https://plain.example.com"})
    assert exc.problems == ["ISSUER_URL is both a parameter (/sgivu/prod/ISSUER_URL) and a plain extra; keep one"]


@pytest.mark.parametrize(
    "plain, problem",
    [
        ({"not-a-key": "x"}, "plain extras: 'not-a-key' is not a valid env key"),
        ({"A": {"b": 1}}, "plain extras: A must be a plain value (string, number, boolean), got dict"),
        ([("A", "1")], "plain extras must be a mapping of KEY: value"),
    ],
)
def test_bad_plain_extras_are_named(plain, problem):
    assert failure(PARAMETERS, PATH, plain=plain).problems == [problem]


@pytest.mark.parametrize(
    "required, equal, problem",
    [
        ("ISSUER_URL", None, "required keys must be a list of key names"),
        (None, "ISSUER_URL", "equal keys must be a list of key lists"),
        (None, [["ISSUER_URL"]], "equal keys: ['ISSUER_URL'] must list at least two key names"),
    ],
)
def test_bad_check_options_are_named(required, equal, problem):
    assert failure(PARAMETERS, PATH, required, equal).problems == [problem]


@pytest.mark.parametrize(
    "value, reason",
    [
        ("line1-Secret\nline2", "a line break"),
        ("line1-Secret\r\n", "a line break"),
        ("cr-Secret\rline2", "a line break"),
        ("nul-Secret\x00", "a NUL character"),
    ],
)
def test_a_value_one_env_line_cannot_carry_is_named(value, reason):
    exc = failure(params(REDIS_PASSWORD=value), PATH, REQUIRED)
    assert exc.problems == [
        "REDIS_PASSWORD: the value holds {0}, which one line of the env file cannot carry".format(reason)
    ]


@pytest.mark.parametrize("value", ["line1-Secret\nline2", "line1-Secret\r\n", "cr-Secret\rline2", "nul-Secret\x00"])
def test_a_value_one_env_line_cannot_carry_is_not_shown(value):
    exc = failure(params(REDIS_PASSWORD=value), PATH, REQUIRED)
    assert "Secret" not in str(exc)


def test_a_value_with_a_newline_is_refused_naming_the_key():
    exc = failure({PATH + "/JWT_KEYSTORE_PASSWORD": "first-Secret-line\nsecond-Secret-line"}, PATH)
    assert exc.problems == [
        "JWT_KEYSTORE_PASSWORD: the value holds a line break, which one line of the env file cannot carry"
    ]


def test_a_value_with_a_newline_is_refused_without_showing_it():
    value = "first-Secret-line\nsecond-Secret-line"
    exc = failure({PATH + "/JWT_KEYSTORE_PASSWORD": value}, PATH)
    message = str(exc)
    assert value not in message and "first-Secret-line" not in message and "second-Secret-line" not in message


def test_a_single_quote_in_a_value_is_accepted():
    # The env file used to be single-quoted and refused a value holding "'"; a raw env file carries it.
    assert build_env({PATH + "/A": "it's-a-'quote'"}, PATH) == {"A": "it's-a-'quote'"}


RESERVED = [
    ("COMPOSE_PROJECT_NAME", "COMPOSE_"),
    ("COMPOSE_FILE", "COMPOSE_"),
    ("COMPOSE_PROFILES", "COMPOSE_"),
    ("DOCKER_HOST", "DOCKER_"),
    ("docker_config", "DOCKER_"),
    ("BUILDKIT_PROGRESS", "BUILDKIT_"),
]


@pytest.mark.parametrize("key, prefix", RESERVED)
def test_a_key_compose_or_docker_reads_for_itself_is_refused_by_name(key, prefix):
    exc = failure({PATH + "/" + key: SECRETS["reserved"]}, PATH)
    assert exc.problems == [
        "{0} is a key Compose or Docker reads for itself ({1}*); rename the parameter "
        "or map it to another key".format(key, prefix)
    ]


@pytest.mark.parametrize("key", [key for key, _ in RESERVED])
def test_a_key_compose_or_docker_reads_for_itself_is_refused_without_its_value(key):
    exc = failure({PATH + "/" + key: SECRETS["reserved"]}, PATH)
    assert SECRETS["reserved"] not in str(exc)


def test_a_reserved_key_from_the_plain_extras_is_refused():
    exc = failure({PATH + "/A": "1"}, PATH, plain={"COMPOSE_PROFILES": "debug"})
    assert [p.split(" ", 1)[0] for p in exc.problems] == ["COMPOSE_PROFILES"]


def test_a_reserved_key_reached_through_the_key_map_is_refused():
    exc = failure({PATH + "/docker-host": SECRETS["reserved"]}, PATH, key_map={"docker-host": "DOCKER_HOST"})
    assert [p.split(" ", 1)[0] for p in exc.problems] == ["DOCKER_HOST"]


@pytest.mark.parametrize("key", ["MY_DOCKER_HOST", "COMPOSER_HOME", "DOCKERFILE", "SGIVU_COMPOSE_FILE"])
def test_a_key_that_only_resembles_a_reserved_one_is_accepted(key):
    assert build_env({PATH + "/" + key: "x"}, PATH) == {key: "x"}


def every_problem() -> SsmEnvError:
    broken = params(
        REDIS_PASSWORD=None,
        COMPOSE_PROJECT_NAME=SECRETS["reserved"],
        **{
            "sgivu-user__SERVICE_INTERNAL_SECRET_KEY": SECRETS["internal_other"],
            "sgivu-gateway__SGIVU_AUTH_URL": SECRETS["auth"],
            "POSTGRES_PASSWORD": "newline-Secret\nsecond-line",
        },
    )
    return failure(broken, PATH, REQUIRED, EQUAL)


def test_every_problem_is_collected_before_failing():
    assert len(every_problem().problems) == 5


def test_every_problem_is_counted_in_one_message():
    assert str(every_problem()).startswith(
        "the parameters under /sgivu/prod do not make a valid env file (5 problems):\n- "
    )


@pytest.mark.parametrize(
    "key", ["REDIS_PASSWORD", "SERVICE_INTERNAL_SECRET_KEY", "ISSUER_URL, SGIVU_AUTH_URL", "POSTGRES_PASSWORD",
            "COMPOSE_PROJECT_NAME"],
)
def test_every_problem_names_its_key_in_the_one_message(key):
    assert key in str(every_problem())


def test_every_problem_is_collected_without_showing_a_value():
    message = str(every_problem())
    assert "newline-Secret" not in message and "second-line" not in message


# --------------------------------------------------------------------------
# rendering: raw env lines, KEY=value with the value verbatim
# --------------------------------------------------------------------------
def test_render_writes_the_header_then_sorted_key_value_lines():
    assert render_env_file({"B": "2", "A": "1"}) == ENV_FILE_HEADER + "\nA=1\nB=2\n"


def test_the_header_is_a_comment_line():
    assert ENV_FILE_HEADER == "# Managed by Ansible (sgivu.deploy.ssm_secrets); do not edit."


@pytest.mark.parametrize(
    "value",
    ["p$ss ${X} $$", "has # hash", " spaced  ", 'dq "x"', "it's", "back\\slash\\n", "`tick`", "a=b", "ünïcode", ""],
)
def test_render_keeps_values_verbatim_after_the_equals_sign(value):
    assert env_line("K", value) == "K=" + value


# Values a shell, Compose's default env format or Jinja would change; a raw env file must not.
HOSTILE = {
    "printable": "".join(c for c in string.printable if c not in "\n\r\x0b\x0c"),
    "dollar_digit": "pa$1wordXy9",
    "trailing_backslash": "ends-in-Canary\\",
    "braced_variable": "${HOME}",
    "jinja": "{{ x }}",
    "backticks": "`id`",
    "padded": " \t padded value\t ",
    "non_ascii": "ünï €",
    "long_8192": "x$\\'\"# `" * 1024,  # 8 characters, 1024 times
}


def hostile_env_text(value: str) -> str:
    return render_env_file(build_env({PATH + "/HOSTILE_VALUE": value, PATH + "/OTHER": "x"}, PATH))


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_value_is_written_as_key_equals_value(value):
    assert hostile_env_text(value).split("\n")[1] == "HOSTILE_VALUE=" + value


@pytest.mark.parametrize("value", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_value_reads_back_byte_for_byte(value):
    assert read_back(hostile_env_text(value))["HOSTILE_VALUE"].encode("utf-8") == value.encode("utf-8")


def test_render_of_an_empty_env_is_the_header_alone():
    assert render_env_file({}) == ENV_FILE_HEADER + "\n"


def test_render_is_deterministic():
    env = {k: str(i) for i, k in enumerate(["Z", "A", "M", "B"])}
    assert render_env_file(env) == render_env_file(dict(reversed(list(env.items()))))


def test_render_turns_plain_values_into_text():
    assert render_env_file({"F": True, "N": 3}) == ENV_FILE_HEADER + "\nF=true\nN=3\n"


@pytest.mark.parametrize(
    "value, reason",
    [("cr-Secret\rline", "a line break"), ("two-Secret\nlines", "a line break"), ("nul-Secret\x00", "a NUL character")],
)
def test_render_refuses_an_unsafe_value_naming_the_key(value, reason):
    with pytest.raises(SsmEnvError) as info:
        render_env_file({"OK": "fine", "BAD": value})
    assert info.value.problems == [
        "BAD: the value holds {0}, which one line of the env file cannot carry".format(reason)
    ]


@pytest.mark.parametrize("value", ["cr-Secret\rline", "two-Secret\nlines", "nul-Secret\x00"])
def test_render_refuses_an_unsafe_value_without_showing_it(value):
    with pytest.raises(SsmEnvError) as info:
        render_env_file({"OK": "fine", "BAD": value})
    assert "Secret" not in str(info.value)


def test_render_collects_every_unsafe_value_in_one_error():
    with pytest.raises(SsmEnvError) as info:
        render_env_file({"A": "a\nb", "B": "fine", "C": "c\x00"})
    assert [p.split(":", 1)[0] for p in info.value.problems] == ["A", "C"]


def test_render_refuses_a_bad_key():
    with pytest.raises(SsmEnvError, match=r"'1BAD' is not a valid env key"):
        render_env_file({"1BAD": "x"})


def test_render_refuses_a_non_mapping():
    with pytest.raises(SsmEnvError, match=r"the env must be a mapping"):
        render_env_file(["A=1"])
