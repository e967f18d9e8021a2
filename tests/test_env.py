"""The environment checks: key counts, keys, `.env` under the real environment, and Problems."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
from conftest import PROVIDERS, fake_key, keys_of, provider_env
from hfs_provider_groq import SPEC as GROQ

from hfs_core import Problem
from hfs_core.env import check_provider_env, load_env, parse_key_count
from hfs_core.plugin import declared_keys


def secrets_of(env: Mapping[str, str]) -> list[str]:
    """Every key-looking value of `env` (the values of *_API_KEY_* variables), stripped."""
    return [v.strip() for k, v in env.items() if "_API_KEY" in k and len(v.strip()) >= 8]


def assert_no_secret(problems: Iterable[Problem], env: Mapping[str, str]) -> None:
    """No problem shows a key, nor its last 8 characters."""
    texts = [str(p) + " " + repr(p) for p in problems]
    for secret in secrets_of(env):
        for text in texts:
            assert secret not in text
            assert secret[-8:] not in text


def problems_for(problems: Iterable[Problem], variable: str) -> list[Problem]:
    return [p for p in problems if p.variable == variable]


def check(env: Mapping[str, str], expected: int = 3) -> tuple[list[str], list[Problem]]:
    keys, problems = check_provider_env(GROQ, env, expected)
    assert_no_secret(problems, env)
    return keys, problems


# -- NUM_<P> -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (None, "is not set"),
        ("", "is empty"),
        ("   ", "is empty"),
        ("abc", "whole number"),
        ("1.5", "whole number"),
        ("0", "at least 1"),
        ("-3", "at least 1"),
    ],
)
def test_bad_key_count_is_an_error_naming_the_variable(raw: str | None, says: str) -> None:
    env = {f"GROQ_API_KEY_{i}": fake_key("groq") for i in (1, 2)} if raw is not None else {}
    if raw is not None:
        env["NUM_GROQ"] = raw
    count, problem = parse_key_count(GROQ, env)
    assert count is None
    assert problem is not None
    assert problem.severity == "error"
    assert problem.variable == "NUM_GROQ"
    assert says in problem.message
    assert problem.hint
    keys, problems = check(env)
    assert keys == []
    assert [p.severity for p in problems] == ["error"]
    assert declared_keys(GROQ, env) == []


def test_huge_count_is_an_error_and_fast() -> None:
    """A typo such as NUM_GROQ=1600000000 must neither stall start-up nor build millions of problems."""
    start = time.monotonic()
    keys, problems = check({"NUM_GROQ": "1600000000", "GROQ_API_KEY_1": fake_key("groq")})
    assert time.monotonic() - start < 1.0
    assert keys == []
    [problem] = problems
    assert problem.severity == "error" and problem.variable == "NUM_GROQ"
    assert "at most" in problem.message


def test_many_missing_keys_make_one_warning() -> None:
    env = provider_env({"groq": 2})
    env["NUM_GROQ"] = "40"
    keys, problems = check(env, expected=40)
    assert len(keys) == 2
    [problem] = problems
    assert problem.severity == "warning"
    assert problem.variable.startswith("GROQ_API_KEY_3, GROQ_API_KEY_4, GROQ_API_KEY_5")
    assert "38 of the 40" in problem.message


def test_count_accepts_surrounding_space() -> None:
    env = {"NUM_GROQ": " 2 \n", "GROQ_API_KEY_1": fake_key("groq"), "GROQ_API_KEY_2": fake_key("groq")}
    assert parse_key_count(GROQ, env) == (2, None)
    keys, _ = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_2"]]


def test_count_missing_but_keys_present_says_how_many() -> None:
    env = provider_env({"groq": 3})
    del env["NUM_GROQ"]
    _, problem = parse_key_count(GROQ, env)
    assert problem is not None and problem.severity == "error"
    assert "3" in problem.message
    assert problem.hint == "set NUM_GROQ=3"
    assert_no_secret([problem], env)


def test_a_single_unnumbered_key_is_a_pool_of_one() -> None:
    """``GROQ_API_KEY`` alone (the name the groq SDK, Agno, LiteLLM and llm read) is one key, with a note."""
    env = {"GROQ_API_KEY": fake_key("groq")}
    keys, problems = check_provider_env(GROQ, env, expected=16)
    assert keys == [env["GROQ_API_KEY"]]
    [note] = problems
    assert note.severity == "warning" and note.variable == "GROQ_API_KEY" and "a pool of one key" in note.message
    assert "NUM_GROQ" in note.hint and "16" not in note.message
    assert_no_secret(problems, env)
    assert check_provider_env(GROQ, {"GROQ_API_KEY": "changeme"}, expected=16)[0] == []


def test_numbered_keys_win_over_a_single_key() -> None:
    env = {"GROQ_API_KEY": fake_key("groq"), "NUM_GROQ": "1", "GROQ_API_KEY_1": fake_key("groq")}
    keys, _ = check_provider_env(GROQ, env, expected=1)
    assert keys == [env["GROQ_API_KEY_1"]]


def test_long_garbage_count_is_not_echoed() -> None:
    key = fake_key("groq")
    _, problem = parse_key_count(GROQ, {"NUM_GROQ": key})
    assert problem is not None
    assert key not in str(problem) and key[-8:] not in str(problem)
    assert f"{len(key)}-character" in problem.message


# -- the keys --------------------------------------------------------------------------------


def test_good_keys_have_no_problem() -> None:
    env = provider_env({"groq": 3})
    keys, problems = check(env, expected=3)
    assert keys == keys_of(env, "groq")
    assert problems == []


def test_missing_key_index_warns_and_keeps_the_others() -> None:
    env = provider_env({"groq": 3})
    del env["GROQ_API_KEY_2"]
    keys, problems = check(env)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_3"]]
    [problem] = problems
    assert problem.severity == "warning"
    assert problem.variable == "GROQ_API_KEY_2"
    assert "missing" in problem.message and "NUM_GROQ=3" in problem.message


@pytest.mark.parametrize(
    "placeholder",
    ["your_api_key_here", "gsk_your_key_here_0000000000000000000000000000", "<GROQ_KEY>", "xxxxxxxxxxxxxxxxxxxxxxxx",
     "changeme", "gsk_...", "sk-PLACEHOLDER-000000000000000000"],
)
def test_placeholder_is_skipped_with_one_warning(placeholder: str) -> None:
    env = provider_env({"groq": 2})
    env["GROQ_API_KEY_2"] = placeholder
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"]]
    [problem] = problems
    assert problem.variable == "GROQ_API_KEY_2"
    assert problem.severity == "warning"
    assert "placeholder" in problem.message
    assert placeholder not in str(problem)


def test_placeholder_gets_one_warning_in_the_registry_too(make_registry) -> None:
    """The core's placeholder warning is not doubled by the plugin's key-shape check."""
    env = provider_env({"groq": 2})
    env["GROQ_API_KEY_2"] = "gsk_your_key_here_0000000000000000000000000000"
    env["NUM_GROQ"] = "2"
    report = make_registry(env=env).environment_status["groq"]
    mine = problems_for(report.problems, "GROQ_API_KEY_2")
    assert len(mine) == 1, mine
    assert "placeholder" in mine[0].message


@pytest.mark.parametrize("piece", ["Xxxx", "xxxx", "xXxXx", "none", "todo", "null", "Key"])
def test_real_keys_holding_placeholder_like_pieces_are_kept(piece: str) -> None:
    """Random keys contain short runs such as "Xxxx" now and then; they are not placeholders."""
    env = provider_env({"groq": 2})
    key = env["GROQ_API_KEY_2"]
    env["GROQ_API_KEY_2"] = key[:20] + piece + key[20 + len(piece):]
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_2"]]
    assert problems == []


def test_white_space_is_stripped_with_a_warning() -> None:
    env = provider_env({"groq": 2})
    clean = env["GROQ_API_KEY_2"]
    env["GROQ_API_KEY_2"] = f"  {clean}\r\n"
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"], clean]
    [problem] = problems
    assert problem.variable == "GROQ_API_KEY_2"
    assert problem.severity == "warning"
    assert "white space" in problem.message


def test_inner_white_space_makes_a_key_unusable() -> None:
    env = provider_env({"groq": 2})
    env["GROQ_API_KEY_2"] = env["GROQ_API_KEY_2"][:20] + " " + env["GROQ_API_KEY_2"][20:]
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"]]
    [problem] = problems
    assert "spaces" in problem.message and "skipped" in problem.message


def test_duplicate_key_is_used_once() -> None:
    env = provider_env({"groq": 3})
    env["GROQ_API_KEY_3"] = env["GROQ_API_KEY_1"]
    keys, problems = check(env)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_2"]]
    [problem] = problems
    assert problem.variable == "GROQ_API_KEY_3"
    assert "GROQ_API_KEY_1" in problem.message


def test_too_short_key_is_skipped() -> None:
    env = provider_env({"groq": 2})
    env["GROQ_API_KEY_2"] = "gsk_abc123"
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"]]
    [problem] = problems
    assert problem.variable == "GROQ_API_KEY_2"
    assert "too short" in problem.message
    assert "gsk_abc123" not in str(problem)


def test_empty_key_is_skipped() -> None:
    env = provider_env({"groq": 2})
    env["GROQ_API_KEY_2"] = "   "
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"]]
    assert [p.variable for p in problems] == ["GROQ_API_KEY_2"]
    assert "empty" in problems[0].message


def test_no_usable_key_is_an_error() -> None:
    env = {"NUM_GROQ": "2", "GROQ_API_KEY_1": "changeme", "GROQ_API_KEY_2": "short"}
    keys, problems = check(env, expected=2)
    assert keys == []
    errors = [p for p in problems if p.severity == "error"]
    assert [p.variable for p in errors] == ["NUM_GROQ"]


def test_keys_beyond_count_are_ignored_with_a_warning() -> None:
    env = provider_env({"groq": 5})
    env["NUM_GROQ"] = "2"
    keys, problems = check(env, expected=2)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_2"]]
    [problem] = problems
    assert problem.severity == "warning"
    assert "GROQ_API_KEY_3" in problem.variable and "GROQ_API_KEY_5" in problem.variable
    assert "beyond NUM_GROQ=2" in problem.message
    assert "raise NUM_GROQ" in problem.hint


def test_count_different_from_expected_warns() -> None:
    env = provider_env({"groq": 3})
    keys, problems = check(env, expected=16)
    assert len(keys) == 3
    [problem] = problems
    assert problem.variable == "NUM_GROQ"
    assert problem.severity == "warning"
    assert "16" in problem.message and "3" in problem.message
    assert "expected_keys" in problem.hint


def test_every_problem_at_once_and_none_shows_a_key() -> None:
    env = provider_env({"groq": 8})
    env["NUM_GROQ"] = "7"
    del env["GROQ_API_KEY_2"]
    env["GROQ_API_KEY_3"] = " " + env["GROQ_API_KEY_3"] + " "
    env["GROQ_API_KEY_4"] = env["GROQ_API_KEY_1"]
    env["GROQ_API_KEY_5"] = env["GROQ_API_KEY_5"][:12]
    env["GROQ_API_KEY_6"] = "your-api-key"
    env["GROQ_API_KEY_7"] = fake_key("gemini")
    keys, problems = check(env, expected=16)
    assert keys == [env["GROQ_API_KEY_1"], env["GROQ_API_KEY_3"].strip(), env["GROQ_API_KEY_7"]]
    variables = sorted({p.variable for p in problems})
    assert variables == ["GROQ_API_KEY_2", "GROQ_API_KEY_3", "GROQ_API_KEY_4", "GROQ_API_KEY_5", "GROQ_API_KEY_6",
                         "GROQ_API_KEY_7", "GROQ_API_KEY_8", "NUM_GROQ"]


# -- keys of another provider, key shapes (plugins loaded through the registry) --------------


def test_gemini_key_under_groq_gets_one_warning_naming_both(make_registry) -> None:
    env = provider_env(3)
    env["GROQ_API_KEY_2"] = fake_key("gemini")
    registry = make_registry(env=env)
    report = registry.environment_status["groq"]
    assert report.keys_found == 3
    mine = problems_for(report.problems, "GROQ_API_KEY_2")
    assert len(mine) == 1, mine
    assert mine[0].severity == "warning"
    assert "gemini" in mine[0].message and "groq" in mine[0].message
    assert "GEMINI_API_KEY_<i>" in mine[0].hint
    assert_no_secret(report.problems, env)


def test_plugin_shape_check_warns_about_a_truncated_key(make_registry) -> None:
    env = provider_env(3)
    env["GROQ_API_KEY_3"] = env["GROQ_API_KEY_3"][:30]  # long enough for the core, too short for a groq key
    env["OPENROUTER_API_KEY_1"] = env["OPENROUTER_API_KEY_1"][:-5]
    registry = make_registry(env=env)
    groq = registry.environment_status["groq"]
    [problem] = problems_for(groq.problems, "GROQ_API_KEY_3")
    assert problem.severity == "warning"
    assert "truncated" in problem.message
    assert groq.keys_found == 3
    [problem] = problems_for(registry.environment_status["openrouter"].problems, "OPENROUTER_API_KEY_1")
    assert "truncated" in problem.message
    for report in registry.environment_status.values():
        assert_no_secret(report.problems, env)


def test_real_shaped_keys_have_no_problem(make_registry) -> None:
    registry = make_registry(env=provider_env(3))
    for name in PROVIDERS:
        report = registry.environment_status[name]
        assert report.healthy and report.problems == ()
        assert "plugin's authors run" in report.notes[0]  # fewer keys than the plugin's count: a note


# -- .env under the real environment ---------------------------------------------------------


def test_load_env_reads_the_file_but_the_real_environment_wins(tmp_path: Path) -> None:
    file_key, real_key = fake_key("groq"), fake_key("groq")
    path = tmp_path / "some.env"
    path.write_text(f"NUM_GROQ=2\nGROQ_API_KEY_1={file_key}\nGROQ_API_KEY_2='{file_key}x'\nEMPTY_ONE\n")
    env = load_env(path, {"GROQ_API_KEY_1": real_key, "OTHER": "1"})
    assert env["GROQ_API_KEY_1"] == real_key
    assert env["GROQ_API_KEY_2"] == file_key + "x"
    assert env["NUM_GROQ"] == "2"
    assert env["OTHER"] == "1"
    assert "EMPTY_ONE" not in env


def test_load_env_without_a_file_is_the_environment(tmp_path: Path) -> None:
    assert load_env(tmp_path / "absent.env", {"A": "1"}) == {"A": "1"}


def test_load_env_does_not_touch_os_environ(tmp_path: Path) -> None:
    import os

    path = tmp_path / ".env"
    path.write_text("HFS_TEST_ONLY_IN_FILE=1\n")
    assert load_env(path)["HFS_TEST_ONLY_IN_FILE"] == "1"
    assert "HFS_TEST_ONLY_IN_FILE" not in os.environ


def test_registry_reads_dotenv_in_the_working_directory(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, make_registry
) -> None:
    file_env = provider_env({"groq": 2, "cerebras": 2})
    (isolated / ".env").write_text("".join(f"{k}={v}\n" for k, v in file_env.items()))
    real_key = fake_key("groq")
    monkeypatch.setenv("NUM_GROQ", "1")
    monkeypatch.setenv("GROQ_API_KEY_1", real_key)
    registry = make_registry()
    assert registry.env["GROQ_API_KEY_1"] == real_key
    assert registry.env["GROQ_API_KEY_2"] == file_env["GROQ_API_KEY_2"]
    status = registry.environment_status
    assert status["groq"].keys_found == 1  # NUM_GROQ=1 from the real environment wins over the file's 2
    assert any("beyond NUM_GROQ=1" in p.message for p in status["groq"].problems)
    assert status["cerebras"].keys_found == 2  # only in the file
    assert status["gemini"].keys_found == 0
    assert set(registry.available_providers) == {"groq", "cerebras"}
    assert registry.resources.keys["groq"] == [real_key]


def test_problems_are_logged_without_keys(caplog: pytest.LogCaptureFixture, make_registry) -> None:
    env = provider_env(3)
    env["GROQ_API_KEY_1"] = " " + env["GROQ_API_KEY_1"]
    env["GROQ_API_KEY_2"] = fake_key("gemini")
    env["GROQ_API_KEY_3"] = env["GROQ_API_KEY_3"][:25]
    env["CEREBRAS_API_KEY_2"] = env["CEREBRAS_API_KEY_1"]
    with caplog.at_level(logging.DEBUG):
        make_registry(env=env)
    text = caplog.text
    assert "GROQ_API_KEY_2" in text and "CEREBRAS_API_KEY_2" in text
    for secret in secrets_of(env):
        assert secret not in text
        assert secret[-8:] not in text
