"""Malformed input: every bad variable, key or file gets a clear message naming it, and the
rest of the deployment keeps working.

The table below is the catalogue published in docs/reliability.md. Each case builds a
whole `Registry` (as a process starting up would) from an environment with one thing
wrong, then checks the problem reported, that no key appears in it, and that the other
providers are unaffected. Property-based tests then throw arbitrary environments at it:
building a registry never raises for environment contents, and `get_model` raises only
`HFSError` subclasses.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import string
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import fake_key, keys_of, provider_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hfs_core import ConfigError, HFSError, ProviderNotFoundError, ProviderUnavailableError, Registry
from hfs_core.config import Config
from hfs_core.env import parse_key_count
from hfs_core.testing.standin import StandIn

Record = Callable[[str, object], None]
GROQ_KEY = fake_key("groq")


@dataclass
class Case:
    """One malformed input: what to change, and the problem it must produce."""

    env: dict[str, str | None] = field(default_factory=dict)  # None deletes the variable
    toml: str | None = None  # hfs.toml contents
    severity: str = "warning"
    variable: str = ""  # the Problem's variable must contain this
    says: str = ""  # ... and its message (or hint) this
    keys_found: int | None = None  # groq keys left usable
    global_problem: bool = False  # reported in registry.problems, not per provider


CASES: dict[str, Case] = {
    "count_not_a_number": Case({"NUM_GROQ": "abc"}, severity="error", variable="NUM_GROQ",
                               says="must be a whole number of keys, got 'abc'", keys_found=0),
    "count_zero": Case({"NUM_GROQ": "0"}, severity="error", variable="NUM_GROQ", says="at least 1, got 0",
                       keys_found=0),
    "count_negative": Case({"NUM_GROQ": "-3"}, severity="error", variable="NUM_GROQ", says="at least 1, got -3",
                           keys_found=0),
    "count_fraction": Case({"NUM_GROQ": "1.5"}, severity="error", variable="NUM_GROQ",
                           says="whole number of keys, got '1.5'", keys_found=0),
    "count_empty": Case({"NUM_GROQ": ""}, severity="error", variable="NUM_GROQ", says="is empty", keys_found=0),
    "count_huge": Case({"NUM_GROQ": "1600000000"}, severity="error", variable="NUM_GROQ", says="at most",
                       keys_found=0),
    "count_missing_keys_present": Case({"NUM_GROQ": None}, severity="error", variable="NUM_GROQ",
                                       says="is not set, but 3 GROQ_API_KEY_<i> variables are", keys_found=0),
    "unnumbered_key": Case({"NUM_GROQ": None, "GROQ_API_KEY_1": None, "GROQ_API_KEY_2": None,
                            "GROQ_API_KEY_3": None, "GROQ_API_KEY": GROQ_KEY}, severity="warning",
                           variable="GROQ_API_KEY", says="a pool of one key", keys_found=1),
    "missing_key_index": Case({"GROQ_API_KEY_2": None}, variable="GROQ_API_KEY_2", says="is missing (NUM_GROQ=3)",
                              keys_found=2),
    "duplicate_key": Case({"GROQ_API_KEY_3": "@GROQ_API_KEY_1"}, variable="GROQ_API_KEY_3",
                          says="is the same key as GROQ_API_KEY_1", keys_found=2),
    "whitespace_around_key": Case({"GROQ_API_KEY_2": "  @GROQ_API_KEY_2\n"}, variable="GROQ_API_KEY_2",
                                  says="white space around it", keys_found=3),
    "whitespace_inside_key": Case({"GROQ_API_KEY_2": "gsk_abcdefghij klmnopqrstuvwxyz0123456789"},
                                  variable="GROQ_API_KEY_2", says="contains spaces", keys_found=2),
    "placeholder_key": Case({"GROQ_API_KEY_1": "your_api_key"}, variable="GROQ_API_KEY_1", says="placeholder",
                            keys_found=2),
    "placeholder_angle_brackets": Case({"GROQ_API_KEY_1": "<paste your groq key here>"},
                                       variable="GROQ_API_KEY_1", says="placeholder", keys_found=2),
    "empty_key": Case({"GROQ_API_KEY_3": ""}, variable="GROQ_API_KEY_3", says="is empty", keys_found=2),
    "too_short_key": Case({"GROQ_API_KEY_3": "gsk_123"}, variable="GROQ_API_KEY_3", says="too short",
                          keys_found=2),
    "gemini_key_under_groq": Case({"GROQ_API_KEY_2": fake_key("gemini")}, variable="GROQ_API_KEY_2",
                                  says="like a gemini key", keys_found=3),
    "truncated_groq_key": Case({"GROQ_API_KEY_2": "gsk_" + "a1" * 12}, variable="GROQ_API_KEY_2",
                               says="does not look like a whole groq key", keys_found=3),
    "keys_beyond_count": Case({"GROQ_API_KEY_4": GROQ_KEY + "x", "GROQ_API_KEY_5": GROQ_KEY + "y"},
                              variable="GROQ_API_KEY_4, GROQ_API_KEY_5", says="ignored: beyond NUM_GROQ=3",
                              keys_found=3),
    "no_usable_key": Case({"GROQ_API_KEY_1": "changeme", "GROQ_API_KEY_2": "xxx", "GROQ_API_KEY_3": "..."},
                          severity="error", variable="NUM_GROQ", says="none of the 3 declared keys is usable",
                          keys_found=0),
    "count_differs_from_expected": Case({}, variable="NUM_GROQ", says="but expected_keys = 4 for groq",
                                        keys_found=3, toml="[providers.groq]\nexpected_keys = 4\n"),
    "tidb_url_not_a_url": Case({"TIDB_DB_URL": "tidb at db.example:4000"}, severity="error",
                               variable="TIDB_DB_URL", says="is not a database URL", global_problem=True),
    "plugins_names_missing_plugin": Case({"HFS_PLUGINS": "groq,gemini,cerebras,openrouter,mistral"},
                                         variable="HFS_PLUGINS", says="names plugin 'mistral', which is not installed",
                                         global_problem=True),
    "config_unknown_provider": Case(toml="[providers.mistral]\nenabled = true\n", variable="hfs.toml",
                                    says="[providers.mistral] names no installed provider", global_problem=True),
    "config_default_model_unknown": Case(toml='[providers.groq]\ndefault_model = "llama-9000"\n',
                                         variable="[providers.groq] default_model",
                                         says="'llama-9000' is in no limit table (the groq plugin's or keycycle's)",
                                         keys_found=3),
}


def build_env(case: Case) -> dict[str, str]:
    env = provider_env(3)
    for var, value in case.env.items():
        if value is None:
            env.pop(var, None)
        elif value.strip().startswith("@"):
            env[var] = value.replace(value.strip(), env[value.strip()[1:]])
        else:
            env[var] = value
    return env


def every_key(env: Mapping[str, str]) -> list[str]:
    return [v.strip() for k, v in env.items() if "_API_KEY" in k and len(v.strip()) >= 8]


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_input_is_reported_by_name(name: str, isolated: Path, make_registry: Any,
                                             caplog: pytest.LogCaptureFixture, record_property: Record) -> None:
    case = CASES[name]
    if case.toml is not None:
        (isolated / "hfs.toml").write_text(case.toml, encoding="utf-8")
    env = build_env(case)
    caplog.set_level(logging.INFO)
    started = time.monotonic()
    registry = make_registry(env=env)
    took = time.monotonic() - started
    assert took < 2.0, f"start-up took {took:.2f}s"
    problems = registry.problems if case.global_problem else list(registry.environment_status["groq"].problems)
    found = [p for p in problems if case.variable in p.variable and case.says in f"{p.message} ({p.hint})"]
    assert found, f"no {case.severity} naming {case.variable!r} saying {case.says!r} in {[str(p) for p in problems]}"
    assert found[0].severity == case.severity
    assert case.variable in caplog.text, "the problem was not logged at start-up"
    report = registry.environment_status["groq"]
    if case.keys_found is not None:
        assert report.keys_found == case.keys_found
    if case.keys_found == 0:
        with pytest.raises(ProviderUnavailableError) as caught:
            registry.get_model("groq")
        assert "NUM_GROQ" in str(caught.value)
    # Nothing else is affected: the other providers stay healthy, and no key is shown.
    assert {"cerebras", "gemini", "openrouter"} <= set(registry.available_providers)
    shown = caplog.text + json.dumps([r.to_dict() for r in registry.environment_status.values()]) + \
        " ".join(str(p) for p in registry.problems) + repr(registry)
    for key in every_key(env):
        assert key not in shown
    record_property("problem", str(found[0]))


# ---------------------------------------------------------------------- what the problems do


def test_whitespace_is_stripped_before_the_key_is_used(make_registry: Any, standin: StandIn) -> None:
    env = provider_env({"groq": 1})
    key = env["GROQ_API_KEY_1"]
    env["GROQ_API_KEY_1"] = f"  {key}\r\n"
    standin.accept_any_key = False
    standin.set_key(key, 200)  # only the stripped key is accepted
    model = make_registry(env=env).get_model("groq", base_url=standin.url)
    assert model.response(messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"


def test_duplicate_keys_make_one_pool_entry(make_registry: Any, standin: StandIn) -> None:
    env = provider_env({"groq": 3})
    env["GROQ_API_KEY_3"] = env["GROQ_API_KEY_1"]
    registry = make_registry(env=env)
    assert registry.pool("groq").size == 2


def test_dotenv_disagreeing_with_the_environment_loses(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                                       make_registry: Any, standin: StandIn) -> None:
    real = provider_env({"groq": 2})
    stale = fake_key("groq")
    db = isolated / "from-dotenv.sqlite3"
    (isolated / ".env").write_text(
        f"NUM_GROQ=5\nGROQ_API_KEY_1={stale}\nGROQ_API_KEY_2={stale}x\nTIDB_DB_URL=sqlite:///{db}\n",
        encoding="utf-8")
    for var, value in real.items():
        monkeypatch.setenv(var, value)
    registry = make_registry()  # reads .env under the real environment, as get_registry() does
    assert registry.environment_status["groq"].keys_found == 2
    assert registry.env["GROQ_API_KEY_1"] == real["GROQ_API_KEY_1"]
    assert registry.usage_url() == f"sqlite:///{db}"  # set only in .env: used
    standin.accept_any_key = False
    for key in keys_of(real, "groq"):
        standin.set_key(key, 200)
    model = registry.get_model("groq", base_url=standin.url)
    assert model.response(messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"
    assert standin.requests_for(stale) == 0


@pytest.mark.parametrize(
    ("toml", "says"),
    [
        ("[providers.groq\nenabled = true\n", "line 1"),
        ('plugins = ["groq",\n', "line"),
        ("track_usage = yes\n", "line 1"),
        ('[providers.groq]\ndefault_model = "a"\ndefault_model = "b"\n', "line 3"),
        ('unknown_setting = 1\n', "unknown setting 'unknown_setting'"),
        ('track_usage = "yes"\n', "track_usage must be true or false"),
        ("[providers.groq]\nexpected_keys = 0\n", "[providers.groq] expected_keys must be a whole number"),
        ('[providers.groq]\nbase_url = "localhost"\n', "[providers.groq] base_url must be a URL"),
        ('[providers.groq]\nenabled = "no"\n', "[providers.groq] enabled must be true or false"),
        ('providers = 3\n', "providers must be a table"),
    ],
)
def test_malformed_config_file_names_the_file(toml: str, says: str, isolated: Path) -> None:
    (isolated / "hfs.toml").write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Registry(env=provider_env(1))
    message = str(caught.value)
    assert str(isolated / "hfs.toml") in message and says in message, message


def test_malformed_tool_hfs_names_pyproject(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text('[tool.hfs]\nplugins = "groq"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: \[tool\.hfs\] plugins must be a list"):
        Registry(env=provider_env(1))


def test_hfs_config_pointing_nowhere_names_the_variable(isolated: Path) -> None:
    with pytest.raises(ConfigError, match=r"HFS_CONFIG=/nowhere/hfs\.toml: no such file"):
        Registry(env=provider_env(1, HFS_CONFIG="/nowhere/hfs.toml"))


def test_disabled_provider_says_where(isolated: Path, make_registry: Any) -> None:
    (isolated / "hfs.toml").write_text("[providers.groq]\nenabled = false\n", encoding="utf-8")
    registry = make_registry(env=provider_env(1))
    with pytest.raises(ProviderUnavailableError, match=r"disabled in .*hfs\.toml \(\[providers\.groq\] enabled"):
        registry.get_model("groq")


def test_bad_tidb_url_falls_back_and_calls_go_on(make_registry: Any, standin: StandIn, isolated: Path) -> None:
    registry = make_registry(env=provider_env({"groq": 1}, db_url="postgres at db:5432"))
    assert registry.usage_url() == f"sqlite:///{isolated / 'data' / 'hfs-providers' / 'usage.sqlite3'}"
    model = registry.get_model("groq", base_url=standin.url)
    assert model.response(messages=[Message(role="user", content="hi")]).content == "stand-in reply: hi"


@pytest.mark.parametrize("provider", ["", ":", "nosuch", "nosuch:model", "GROQ-", " ", "groq/x"])
def test_unknown_provider_names_are_not_found_errors(provider: str, make_registry: Any) -> None:
    registry = make_registry(env=provider_env(1))
    with pytest.raises(ProviderNotFoundError, match="available: cerebras, gemini, groq, openrouter"):
        registry.get_model(provider)


# ---------------------------------------------------------------------- arbitrary environments

PREFIXES = ["GROQ", "GEMINI", "CEREBRAS", "OPENROUTER"]
_values = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=string.digits + " +-.e_", max_size=12),
    st.sampled_from(["", " ", "0", "-1", "1", "2", "3", "10001", "99999999999999999999999", "\uff11", "\u0663", "1e3",
                     "0x10", "+2", " 2\n", "NaN", "your_api_key", "<key>", "changeme"]),
    st.builds(lambda p, k: p + k, st.sampled_from(["gsk_", "csk-", "AIza", "sk-or-v1-", ""]),
              st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=0, max_size=70)),
)
_names = st.one_of(
    st.builds(lambda p: f"NUM_{p}", st.sampled_from(PREFIXES)),
    st.builds(lambda p, i: f"{p}_API_KEY_{i}", st.sampled_from(PREFIXES), st.integers(-2, 12)),
    st.builds(lambda p, s: f"{p}_API_KEY_{s}", st.sampled_from(PREFIXES), st.text(max_size=5)),
    st.sampled_from(["TIDB_DB_URL", "HFS_PLUGINS", "GROQ_API_KEY", "NUM_", "_API_KEY_1"]),
)
environments = st.dictionaries(_names, _values, max_size=14)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(env=environments)
def test_any_environment_builds_a_registry(env: dict[str, str], isolated: Path) -> None:
    registry = Registry(env=env)  # never raises for environment contents
    try:
        json.dumps([r.to_dict() for r in registry.environment_status.values()])
        json.dumps([p.to_dict() for p in registry.problems])
        repr(registry)
        for report in registry.environment_status.values():
            assert report.keys_found >= 0
            for problem in report.problems:
                assert problem.variable and problem.message
        for name in ["groq", "gemini", "nosuch", ""]:
            with contextlib.suppress(HFSError):
                registry.get_model(name, wait=False)
    finally:
        registry.shutdown()


@settings(max_examples=300, deadline=None)
@given(raw=st.one_of(st.none(), st.text(max_size=40), st.integers().map(str)))
def test_any_key_count_parses_or_names_the_variable(raw: str | None) -> None:
    from hfs_provider_groq import SPEC

    env = {} if raw is None else {"NUM_GROQ": raw}
    count, problem = parse_key_count(SPEC, env)
    if count is None:
        assert problem is not None and problem.variable == "NUM_GROQ" and problem.severity == "error"
        if raw is not None and len(raw) > 12 and not re.fullmatch(r"\s*[+-]?\d+\s*", raw):
            # a long value (maybe a key pasted in the wrong place) is not echoed: what is said of it
            # is what is said of any value as long (raw may be a piece of that wording by chance)
            blind = parse_key_count(SPEC, {"NUM_GROQ": "z" * len(raw)})[1]
            assert raw not in str(problem) or str(problem) == str(blind)
    else:
        assert problem is None and 1 <= count <= 10_000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(1, 4), junk=st.lists(st.text(max_size=30), max_size=4))
def test_any_key_values_give_working_models_or_a_clear_error(count: int, junk: list[str], isolated: Path) -> None:
    env = provider_env({"groq": count})
    for index, value in enumerate(junk, start=1):
        env[f"GROQ_API_KEY_{index}"] = value
    registry = Registry(env=env, config=Config(track_usage=False))
    try:
        try:
            model = registry.get_model("groq", wait=False)
        except HFSError as exc:
            assert "NUM_GROQ" in str(exc) or "GROQ_API_KEY" in str(exc)
        else:
            assert model.pool.size == registry.environment_status["groq"].keys_found >= 1
    finally:
        registry.shutdown()
