"""Tiers: one Agno model over several providers, the first that can serve each call, against the stand-in.

The pairs are groq + gemini (different wire formats, SDKs and tool-call ids: Gemini sends none, Agno
makes one up) and groq + cerebras. A provider is exhausted the ways it happens: its pool's windows
are full (a configured ``rpm``), it answers 429, 401 or 5xx (the stand-in's key states and recorded
replies), or its stream breaks. Agno's own fallback (``FallbackConfig``) is driven with plain
``get_model("groq")`` models and the registry's refusals.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import hfs_provider_cerebras
import hfs_provider_gemini
import hfs_provider_groq
import hfs_provider_openrouter
import pytest
from agno.agent import Agent
from agno.exceptions import ContextWindowExceededError, ModelAuthenticationError, ModelRateLimitError
from agno.models.fallback import FallbackConfig, get_fallback_models
from agno.models.message import Message
from agno.team import Team
from agno.team.mode import TeamMode
from conftest import keys_of, provider_env
from test_agents import numbers

import hfs_core
import hfs_core.process as process_module
import hfs_core.tier_table as tier_table_module
from hfs_core import (
    AllKeysDeadError,
    ConfigError,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    ProviderNotFoundError,
    ProviderSpec,
    ProviderUnavailableError,
    Registry,
    RequestTooLargeError,
    catalog,
    load_config,
)
from hfs_core._keycycle import NoAvailableKeyError as KeycycleNoAvailableKeyError
from hfs_core.config import Config, ProviderConfig
from hfs_core.settings import Settings
from hfs_core.testing.standin import StandIn, ToolResult

MODELS = {"groq": "openai/gpt-oss-20b", "cerebras": "gpt-oss-120b", "gemini": "gemini-2.5-flash"}
ROOMY = {"rpm": 1000, "rph": 100_000, "rpd": 100_000, "tpm": 10**8, "tph": 10**9, "tpd": 10**10}
"""Per-key limits in place of keycycle's table, so that only a test's own limits exhaust a pool."""
PAIRS = [("groq", "gemini"), ("gemini", "groq")]


def config(entries: tuple[str, ...] = ("groq", "gemini"), *, rpm: dict[str, int] | None = None,
           tiers: dict[str, tuple[str, ...]] | None = None) -> Config:
    """The tier ``fast`` over `entries` (their test models), with roomy limits or `rpm` per provider."""
    providers = {p: ProviderConfig(models={m: {**ROOMY, "rpm": (rpm or {}).get(p, ROOMY["rpm"])}})
                 for p, m in MODELS.items()}
    return Config(providers=providers, tiers=tiers or {"fast": tuple(f"{p}:{MODELS[p]}" for p in entries)})


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    return provider_env({"groq": 2, "gemini": 2, "cerebras": 2}, db_url=sqlite_url)


@pytest.fixture
def build(make_registry: Callable[..., Registry], env: dict[str, str]) -> Callable[..., Registry]:
    def make(conf: Config | None = None) -> Registry:
        return make_registry(env=env, config=conf or config(), plugins=list(MODELS))

    return make


def served(response: Any) -> str:
    """The provider a response or run says served it."""
    data = getattr(response, "provider_data", None) or getattr(response, "model_provider_data", None)
    return str(data["hfs"]["provider"])


def hi() -> list[Message]:
    return [Message(role="user", content="hi")]


def exhaust(standin: StandIn, env: dict[str, str], provider: str, status: int = 429) -> None:
    """Every key of `provider` answers `status` (429: "Rate limit reached for requests per minute")."""
    for key in keys_of(env, provider):
        standin.set_key(key, status)


def usage_rows(url: str) -> list[tuple[str, str]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return db.execute("SELECT provider, model FROM usage_logs ORDER BY id").fetchall()


def requests_to(standin: StandIn, env: dict[str, str], provider: str) -> int:
    return sum(standin.requests_for(key[-4:]) for key in keys_of(env, provider))


# -- the configuration ---------------------------------------------------------------------------


def test_tiers_are_read_in_order_of_preference(tmp_path: Path) -> None:
    (tmp_path / "hfs.toml").write_text('[tiers.fast]\nmodels = ["groq:openai/gpt-oss-20b", " cerebras : gpt-oss-120b",'
                                       ' "gemini"]\n[tiers.reasoning]\nmodels = ["gemini:gemini-2.5-pro"]\n')
    loaded = load_config(tmp_path, env={})
    assert loaded.tiers == {"fast": ("groq:openai/gpt-oss-20b", "cerebras:gpt-oss-120b", "gemini"),
                            "reasoning": ("gemini:gemini-2.5-pro",)}


@pytest.mark.parametrize(("text", "says"), [
    ("tiers = 3", "tiers must be a table of [tiers.<name>] tables"),
    ("[tiers.fast]\nmodels = []", "[tiers.fast] models must be a non-empty list"),
    ("[tiers.fast]\nmodel = [\"groq\"]", "[tiers.fast] unknown setting 'model' (known: models)"),
    ("[tiers.fast]\nmodels = [\"groq:\"]", "[tiers.fast] entry 1 must be \"provider:model\""),
    ("[tiers.fast]\nmodels = [\"groq\", 7]", "[tiers.fast] entry 2 must be \"provider:model\""),
    ("[tiers.fast]\nmodels = [\"Groq:x\"]", "[tiers.fast] entry 1 must be \"provider:model\""),
    ("[tiers.fast]\nmodels = [\"groq:a\", \"groq:a\"]", "[tiers.fast] entry 2 repeats entry 1"),
    ("[tiers.Fast]\nmodels = [\"groq\"]", "a tier's name is lower-case letters"),
    ("[tiers]\nfast = [\"groq\"]", "[tiers.fast] must be a table holding models"),
])
def test_a_malformed_tier_names_the_file_and_the_tier(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "hfs.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, env={})
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)


def test_a_malformed_tier_in_pyproject_names_the_table(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.hfs.tiers.fast]\nmodels = \"groq\"\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.hfs\] \[tiers.fast\] models must be"):
        load_config(tmp_path, env={})


# -- which tiers there are -------------------------------------------------------------------------


def test_without_tiers_in_the_configuration_each_default_tier_lists_what_the_plugins_state(
        make_registry: Callable[..., Registry], env: dict[str, str]) -> None:
    registry = make_registry(env=env, config=Config())
    # each provider's first choice before any second choice; among them the most requests a day per key first
    assert registry.tiers == {
        "reasoning": ("cerebras:gpt-oss-120b", "groq:openai/gpt-oss-120b", "openrouter:openai/gpt-oss-120b:free",
                      "gemini:gemini-2.5-flash", "groq:qwen/qwen3-32b",
                      "openrouter:nvidia/nemotron-3-super-120b-a12b:free"),
        "general": ("cerebras:gpt-oss-120b", "groq:openai/gpt-oss-120b",
                    "openrouter:nvidia/nemotron-3-super-120b-a12b:free", "gemini:gemini-2.5-flash",
                    "groq:llama-3.3-70b-versatile"),
        "fast": ("cerebras:llama3.1-8b", "groq:llama-3.1-8b-instant", "openrouter:nvidia/nemotron-3-nano-30b-a3b:free",
                 "gemini:gemini-2.5-flash-lite", "groq:openai/gpt-oss-20b", "openrouter:openai/gpt-oss-20b:free"),
    }
    assert tier_table_module.DEFAULT_TIERS == ("reasoning", "general", "fast") and registry.tiers_source == "default"
    assert [(e.name, e.problem) for e in registry.tier_entries("fast")][:2] == [
        ("cerebras:llama3.1-8b", None), ("groq:llama-3.1-8b-instant", None)]
    assert "'openrouter' is not configured: NUM_OPENROUTER is not set" in str(registry.tier_entries("fast")[2].problem)
    assert all(e.known_model for e in registry.tier_entries("reasoning") if e.problem is None)
    assert [e.id for e in registry.get_model("fast").entries] == ["llama3.1-8b", "llama-3.1-8b-instant",
                                                                   "gemini-2.5-flash-lite", "openai/gpt-oss-20b"]


@pytest.mark.parametrize("plugin", [hfs_provider_cerebras, hfs_provider_gemini, hfs_provider_groq,
                                    hfs_provider_openrouter])
def test_each_plugin_states_models_of_its_limit_table_for_every_default_tier(plugin: Any) -> None:
    spec = plugin.SPEC
    assert sorted(spec.tiers) == sorted(tier_table_module.DEFAULT_TIERS)
    table = catalog.plugin_table(spec.limits).models
    assert all(model in table for models in spec.tiers.values() for model in models), spec.tiers
    assert spec.tiers["general"][0] == spec.default_model


def test_the_default_order_follows_the_daily_budget_the_configuration_gives(
        make_registry: Callable[..., Registry], env: dict[str, str]) -> None:
    roomy = {"gemini": ProviderConfig(models={"gemini-2.5-flash-lite": {"rpd": 20_000}})}
    registry = make_registry(env=env, config=Config(providers=roomy))
    assert registry.tiers["fast"][:4] == ("gemini:gemini-2.5-flash-lite", "cerebras:llama3.1-8b",
                                          "groq:llama-3.1-8b-instant", "openrouter:nvidia/nemotron-3-nano-30b-a3b:free")


def test_a_provider_stating_no_tier_serves_its_default_model_there() -> None:
    settings = Settings({}, Config(providers={"gemini": ProviderConfig(default_model="gemma-3-27b-it")}))
    specs = {"gemini": replace(hfs_provider_gemini.SPEC, tiers={}),
             "groq": replace(hfs_provider_groq.SPEC, tiers={"fast": ["llama-3.1-8b-instant"]})}
    # gemma-3-27b-it: 14,400 requests a day per key, groq's gpt-oss-120b 1,000
    assert tier_table_module.tiers(settings, specs) == {
        "reasoning": ("gemini:gemma-3-27b-it", "groq:openai/gpt-oss-120b"),
        "general": ("gemini:gemma-3-27b-it", "groq:openai/gpt-oss-120b"),
        "fast": ("gemini:gemma-3-27b-it", "groq:llama-3.1-8b-instant"),
    }


def test_configured_tiers_replace_the_default_ones(make_registry: Callable[..., Registry],
                                                   env: dict[str, str]) -> None:
    registry = make_registry(env=env, config=Config(tiers={"fast": ("gemini", "groq:openai/gpt-oss-20b")}))
    assert registry.tiers == {"fast": ("gemini", "groq:openai/gpt-oss-20b")}


@pytest.mark.parametrize(("tiers", "says"), [
    ({"resoning": ["m"]}, "unknown tier 'resoning'; the default tiers are reasoning, general, fast"),
    ({"fast": []}, "tiers['fast'] must be a non-empty list of model IDs"),
    ({"fast": "llama-3.1-8b-instant"}, "tiers['fast'] must be a non-empty list of model IDs"),
    ({"fast": ["a", " "]}, "tiers['fast'] must be a non-empty list of model IDs"),
    ({"fast": ["a", "a"]}, "tiers['fast'] names 'a' twice"),
    (["fast"], "tiers must map tier names to lists of model IDs"),
])
def test_a_plugin_stating_tiers_wrongly_is_told_how(tiers: Any, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        ProviderSpec(name="moonshot", default_model="kimi-k2.5", expected_keys=1, model_class="m:C", tiers=tiers)


def test_get_any_model_serves_on_any_usable_provider_in_name_order(
        monkeypatch: pytest.MonkeyPatch, standin: StandIn, sqlite_url: str) -> None:
    for name, value in provider_env({"groq": 1, "gemini": 1}, db_url=sqlite_url).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(process_module, "_registry", None)
    try:
        model = hfs_core.get_any_model(base_url=standin.url)
        assert [(e.pool.provider, e.id) for e in model.entries] == [("gemini", "gemini-2.5-flash"),
                                                                   ("groq", "openai/gpt-oss-120b")]
        assert model.id == "any" and served(model.response(messages=hi())) == "gemini"
    finally:
        hfs_core.shutdown()
    assert "get_any_model" in hfs_core.__all__


def test_a_broken_entry_is_left_out_and_named(tmp_path: Path, make_registry: Callable[..., Registry],
                                             standin: StandIn, sqlite_url: str) -> None:
    (tmp_path / "hfs.toml").write_text(
        '[tiers.fast]\nmodels = ["gorq:x", "nosuch:y", "cerebras", "groq:openai/gpt-oss-20b", "groq:no-such-model"]\n')
    registry = make_registry(env=provider_env({"groq": 2}, db_url=sqlite_url), plugins=list(MODELS))
    where = f"{tmp_path / 'hfs.toml'} [tiers.fast]"
    found = {p.message: p for p in registry.problems if p.variable == where}
    assert found["entry 1 gorq:x: unknown provider 'gorq'; available: groq; tiers: fast; did you mean 'groq'?"]
    assert any(m.startswith("entry 2 nosuch:y: unknown provider 'nosuch'") and "pip install ./plugins/nosuch" in m
               for m in found)
    assert any(m.startswith("entry 3 cerebras: provider 'cerebras' is not configured") for m in found)
    assert "entry 5 groq:no-such-model: the model is in no limit table (the groq plugin's or keycycle's), so it " \
           "is held to the conservative default of 5 requests a minute, 100 an hour, 100 a day" in found
    severities = {m.split(" ")[2]: p.severity for m, p in found.items()}
    assert severities == {"gorq:x:": "error", "nosuch:y:": "error", "cerebras:": "warning",
                          "groq:no-such-model:": "warning"}  # no installed provider: a typo
    model = registry.get_model("fast", base_url=standin.url)
    assert [e.id for e in model.entries] == ["openai/gpt-oss-20b", "no-such-model"]
    assert served(model.response(messages=hi())) == "groq"


def test_a_tier_that_no_entry_can_serve_says_why(tmp_path: Path, make_registry: Callable[..., Registry]) -> None:
    (tmp_path / "hfs.toml").write_text('[tiers.fast]\nmodels = ["cerebras", "nosuch:y"]\n')
    registry = make_registry(env=provider_env({"groq": 1}), plugins=list(MODELS))
    errors = [p for p in registry.problems if p.severity == "error"]
    assert {p.variable for p in errors} == {f"{tmp_path / 'hfs.toml'} [tiers.fast]"}
    assert [p.message for p in errors][-1] == "has no entry that can serve calls"
    assert errors[0].message.startswith("entry 2 nosuch:y: unknown provider 'nosuch'")
    with pytest.raises(ProviderUnavailableError) as caught:
        registry.get_model("fast")
    text = str(caught.value)
    assert text.startswith(f"tier 'fast' ({tmp_path / 'hfs.toml'}) has no entry that can serve calls: cerebras: ")
    assert "nosuch:y: unknown provider 'nosuch'" in text


def test_a_tier_is_asked_for_by_its_name_alone(build: Callable[..., Registry]) -> None:
    registry = build()
    with pytest.raises(TypeError, match=r"get_model\('fast'\): a tier names no model of its own"):
        registry.get_model("fast", "openai/gpt-oss-20b")
    with pytest.raises(ProviderNotFoundError, match=r"unknown provider 'slow'; .*tiers: fast"):
        registry.get_model("slow")
    with pytest.raises(ProviderNotFoundError, match="'fast' is a tier, not a provider"):
        registry.get_model("fast:openai/gpt-oss-20b")


def test_a_tier_named_like_a_provider_is_reported(make_registry: Callable[..., Registry], env: dict[str, str]) -> None:
    registry = make_registry(env=env, config=config(tiers={"groq": ("gemini",)}), plugins=list(MODELS))
    assert any(p.message == "has the name of provider groq, which get_model('groq') gives instead"
               for p in registry.problems)
    assert type(registry.get_model("groq")).__name__ == "RotatingGroq"


# -- one call, several providers --------------------------------------------------------------------


def call(model: Any, how: str) -> Any:
    """One model call the way Agno makes it: response, aresponse, or a stream of either kind (the last chunk)."""
    if how == "response":
        return model.response(messages=hi())
    if how == "aresponse":
        return asyncio.run(model.aresponse(messages=hi()))
    if how == "stream":
        return [c for c in model.response_stream(messages=hi()) if getattr(c, "provider_data", None)][-1]

    async def stream() -> Any:
        return [c async for c in model.aresponse_stream(messages=hi()) if getattr(c, "provider_data", None)][-1]

    return asyncio.run(stream())


@pytest.mark.parametrize("how", ["response", "aresponse", "stream", "astream"])
def test_each_call_runs_on_the_first_entry_with_a_free_key(how: str, build: Callable[..., Registry],
                                                          standin: StandIn, env: dict[str, str],
                                                          sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    registry = build(config(rpm={"groq": 1}))  # groq's two keys take one call a minute each
    model = registry.get_model("fast", base_url=standin.url)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        assert [served(call(model, how)) for _ in range(4)] == ["groq", "groq", "gemini", "gemini"]
    assert requests_to(standin, env, "groq") == 2 and standin.count(429) == 0  # no request past the pool's limit
    # the third call asked groq's pool first; the fourth asked gemini first, groq having said when it frees
    assert [r.getMessage() for r in caplog.records if "takes the call" in r.getMessage()] == [
        "tier fast: gemini/gemini-2.5-flash takes the call (groq/openai/gpt-oss-20b: no key free now)",
        "tier fast: gemini/gemini-2.5-flash takes the call (groq/openai/gpt-oss-20b: no key free, as it said "
        "moments ago)"]
    store = registry.usage_store()
    assert store is not None and store.flush()
    assert usage_rows(sqlite_url) == \
        [("groq", MODELS["groq"])] * 2 + [("gemini", MODELS["gemini"])] * 2


def test_dead_keys_move_the_call_on_within_it(build: Callable[..., Registry], standin: StandIn,
                                              env: dict[str, str]) -> None:
    model = build().get_model("fast", base_url=standin.url)
    exhaust(standin, env, "groq", 401)
    assert served(model.response(messages=hi())) == "gemini"  # both groq keys refused, then gemini: one call
    assert served(model.response(messages=hi())) == "gemini"
    assert requests_to(standin, env, "groq") == 2 and standin.count(401) == 2


def test_a_provider_that_keeps_failing_loses_the_call(build: Callable[..., Registry], standin: StandIn,
                                                      env: dict[str, str]) -> None:
    model = build().get_model("fast", base_url=standin.url)
    exhaust(standin, env, "groq", 503)
    assert served(model.response(messages=hi())) == "gemini"
    assert requests_to(standin, env, "groq") == 2  # each of its keys once, then no back-off: the next entry


def test_a_stream_broken_before_content_moves_on_and_after_content_reaches_the_caller(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str]) -> None:
    model = build().get_model("fast", base_url=standin.url)
    standin.stream_fail_after(0, times=2)  # both groq keys' streams break before any content
    assert served(call(model, "stream")) == "gemini"
    standin.reset_stats()
    standin.stream_fail_after(1, times=1)  # content was handed over: the caller sees the failure
    with pytest.raises(Exception, match="stream interrupted by stand-in"):
        list(model.response_stream(messages=hi()))
    assert requests_to(standin, env, "gemini") == 0


def test_traffic_returns_to_the_first_entry_when_it_frees(build: Callable[..., Registry], standin: StandIn,
                                                          env: dict[str, str]) -> None:
    model = build().get_model("fast", base_url=standin.url)
    for key in keys_of(env, "groq"):  # "Please try again in 1.5s" on tokens: each key cools 1.5 s, once
        standin.replay(key, "groq.per_minute_tokens", times=1, wait=1.5)
    first = model.response(messages=hi())
    assert served(first) == "gemini" and standin.count(429) == 2
    seen = [served(model.response(messages=hi())) for _ in range(3)]
    for _ in range(200):  # until groq's keys have cooled (1.5 s); the pool sends it nothing meanwhile
        seen.append(served(model.response(messages=hi())))
        if seen[-1] == "groq":
            break
        time.sleep(0.05)
    assert seen[-1] == "groq" and "gemini" in seen and standin.count(429) == 2


def test_the_wait_budget_is_shared_along_the_tier(build: Callable[..., Registry], standin: StandIn,
                                                  env: dict[str, str]) -> None:
    registry = build(config(("groq", "gemini"), rpm={"groq": 1}))
    model = registry.get_model("fast", base_url=standin.url, timeout=5.0)
    for _ in range(2):
        model.response(messages=hi())  # groq's keys are spent for a minute
    for key in keys_of(env, "gemini"):  # gemini refuses once per key, retryDelay 1 s
        standin.replay(key, "gemini.per_minute", times=1, wait=1.0)
    assert served(model.response(messages=hi())) == "gemini"  # waited for gemini, the first to free, in the call
    for key in keys_of(env, "gemini"):
        standin.replay(key, "gemini.per_minute", times=1, wait=30.0)
    hurry = registry.get_model("fast", base_url=standin.url, timeout=2.0)
    with pytest.raises(PoolExhaustedError) as caught:
        hurry.response(messages=hi())  # nothing frees within 2 s: the call ends at once, not after 2 s per entry
    error = caught.value
    assert isinstance(error, NoAvailableKeyError) and isinstance(error, KeycycleNoAvailableKeyError)
    assert isinstance(error, ModelRateLimitError) and error.status_code == 429
    assert str(error).startswith("tier 'fast': no entry can take the call within a 2s wait budget: "
                                 "groq/openai/gpt-oss-20b: no key free within a 2s wait budget; 2 of 2 keys live")
    assert [line.split(":")[0] for line in error.entries] == ["groq/openai/gpt-oss-20b", "gemini/gemini-2.5-flash"]
    assert re.search(r"the first key frees in (2[0-9]|30)\.\ds \(gemini\)$", str(error)), str(error)
    assert error.next_free_in is not None and 20 < error.next_free_in <= 30
    assert not any(key[-8:] in str(error) for name, key in env.items() if "_API_KEY" in name)


def test_a_tier_whose_entries_are_all_dead_says_so_as_agno_reads_it(build: Callable[..., Registry],
                                                                   standin: StandIn, env: dict[str, str]) -> None:
    model = build().get_model("fast", base_url=standin.url)
    exhaust(standin, env, "groq", 401)
    exhaust(standin, env, "gemini", 403)
    with pytest.raises(AllKeysDeadError) as caught:
        model.response(messages=hi())
    assert isinstance(caught.value, ModelAuthenticationError) and caught.value.status_code == 401
    assert "groq: all 2 keys are dead" in str(caught.value) and "gemini: all 2 keys are dead" in str(caught.value)
    assert "the first key frees at no known time" in str(caught.value)


# -- Agno agents, tool loops and teams on a tier ----------------------------------------------------


def exhausting_adder(standin: StandIn, env: dict[str, str], provider: str) -> Callable[[int, int], int]:
    """The `add` tool, which also makes every key of `provider` refuse (429) from then on: the run's
    next model call, the one that reads the tool's result, cannot be served there."""
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first number.
            b: The second number.
        """
        exhaust(standin, env, provider)
        return a + b

    return add


@pytest.mark.parametrize("how", ["run", "stream", "arun", "astream"])
@pytest.mark.parametrize(("first", "second"), PAIRS)
def test_an_agent_tool_loop_continues_on_the_next_provider(first: str, second: str, how: str,
                                                           build: Callable[..., Registry], standin: StandIn,
                                                           env: dict[str, str]) -> None:
    standin.script_tool_call("add", numbers)
    model = build(config((first, second))).get_model("fast", base_url=standin.url)
    agent = Agent(model=model, tools=[exhausting_adder(standin, env, first)], telemetry=False)
    if how == "run":
        out = agent.run("add 20 and 22")
    elif how == "arun":
        out = asyncio.run(agent.arun("add 20 and 22"))
    else:
        async def events() -> list[Any]:
            return [e async for e in agent.arun("add 20 and 22", stream=True, yield_run_output=True)]
        chunks = list(agent.run("add 20 and 22", stream=True, yield_run_output=True)) if how == "stream" \
            else asyncio.run(events())
        text = "".join(str(e.content) for e in chunks if getattr(e, "event", "") == "RunContent" and e.content)
        assert text == "stand-in reply: add 20 and 22 [add -> 42]"
        out = chunks[-1]
    assert out is not None and out.content == "stand-in reply: add 20 and 22 [add -> 42]"
    # the tool call was made on `first`, its result read on `second` (a Gemini call id, or Gemini's
    # thought signature on the call, sent to an OpenAI-style provider and the other way round)
    assert [served(m) for m in out.messages or [] if m.role == "assistant"] == [first, second]
    assert standin.tool_results() == [ToolResult("add", "42")]
    assert standin.count(400) == 0


def test_a_team_on_a_tier_completes_across_two_providers(build: Callable[..., Registry], standin: StandIn,
                                                         env: dict[str, str]) -> None:
    standin.script_tool_call("add", numbers)
    standin.script_tool_call("delegate_task_to_members", lambda text: {"task": text})
    model = build().get_model("fast", base_url=standin.url)
    members = [Agent(name=name, model=model, tools=[exhausting_adder(standin, env, "groq")], telemetry=False)
               for name in ("first adder", "second adder")]
    team = Team(name="calculators", members=members, model=model, mode=TeamMode.broadcast, telemetry=False)
    out = team.run("add 3 and 4")
    answer = str(out.content)
    assert answer.startswith("stand-in reply: add 3 and 4 [delegate_task_to_members -> "), answer
    assert answer.count("[add -> 7]") == 2, answer
    assert served(out) == "gemini"  # the leader's last turn, after the members exhausted groq
    assert requests_to(standin, env, "groq") >= 2 and requests_to(standin, env, "gemini") >= 3
    assert [r for r in standin.tool_results() if r.name == "add"] == [ToolResult("add", "7")] * 2


@pytest.mark.slow
def test_sixteen_threads_fall_over_together_and_come_back(build: Callable[..., Registry], standin: StandIn,
                                                          env: dict[str, str]) -> None:
    model = build(config(("groq", "cerebras"))).get_model("fast", base_url=standin.url)
    lock = threading.Lock()
    log: list[str] = []
    errors: list[BaseException] = []

    def phase(calls: int) -> Iterator[None]:
        for _ in range(calls):
            try:
                response = model.response(messages=hi())
            except Exception as exc:
                errors.append(exc)
            else:
                with lock:
                    log.append(served(response))
            yield

    def run(calls: int) -> None:
        threads = [threading.Thread(target=lambda: list(phase(calls))) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def warm() -> None:
        """Serial calls until each groq key has answered one: the pool sends a key that is new, or back
        from a cooldown, one call before the crowd (the others go to the next entry meanwhile)."""
        answered = {key[-4:]: standin.requests_for(key[-4:], 200) for key in keys_of(env, "groq")}
        for _ in range(50):
            if all(standin.requests_for(label, 200) > count for label, count in answered.items()):
                return
            model.response(messages=hi())

    warm()
    run(2)
    before = list(log)
    for key in keys_of(env, "groq"):  # groq refuses on tokens from now on, each refusal cooling a key 1 s
        standin.replay(key, "groq.per_minute_tokens", wait=1.0)
    run(3)
    during = log[len(before):]
    standin.clear_replays()
    time.sleep(1.5)  # groq's keys cool down
    warm()
    run(2)
    after = log[len(before) + len(during):]
    assert errors == []
    assert (before, during, after) == (["groq"] * 32, ["cerebras"] * 48, ["groq"] * 32)


# -- Agno's own fallback reads the registry's refusals -----------------------------------------------


def test_agno_fallback_on_rate_limit_takes_over_when_the_groq_pool_is_exhausted(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str]) -> None:
    registry = build(config(rpm={"groq": 1}))
    get_model = registry.get_model
    for _ in range(2):
        get_model("groq", MODELS["groq"], base_url=standin.url).response(messages=hi())
    agent = Agent(model=get_model("groq", MODELS["groq"], base_url=standin.url), telemetry=False,
                  fallback_config=FallbackConfig(on_rate_limit=[get_model("cerebras", base_url=standin.url)]))
    out = agent.run("hi")
    assert out.content == "stand-in reply: hi" and served(out) == "cerebras"
    assert requests_to(standin, env, "groq") == 2 and standin.count(429) == 0


def test_agno_fallback_on_error_takes_over_from_a_busy_provider(build: Callable[..., Registry], standin: StandIn,
                                                                env: dict[str, str]) -> None:
    get_model = build().get_model
    for key in keys_of(env, "groq"):
        standin.replay(key, "groq.flex_capacity", times=1)  # 498: the provider is busy, backed off 0.5 s, then 1 s
    # A budget the first attempt fits in even on a loaded machine (its first SDK client is built in it), and
    # the back-offs do not: the pool refuses with ProviderBusyError (503), on which Agno's on_error takes over.
    agent = Agent(model=get_model("groq", base_url=standin.url, timeout=1.0), telemetry=False,
                  fallback_config=FallbackConfig(on_error=[get_model("cerebras", base_url=standin.url)]))
    out = agent.run("hi")
    assert out.content == "stand-in reply: hi" and served(out) == "cerebras"


def refusal(registry: Registry, standin: StandIn, env: dict[str, str], kind: str) -> NoAvailableKeyError:
    """The registry's own refusal of one kind, from a real call on groq."""
    options: dict[str, Any] = {"timeout": 0.2}
    if kind == "exhausted":
        for _ in range(2):
            registry.get_model("groq", MODELS["groq"], base_url=standin.url).response(messages=hi())
    elif kind == "dead":
        exhaust(standin, env, "groq", 401)
    elif kind == "busy":
        for key in keys_of(env, "groq"):
            standin.replay(key, "groq.flex_capacity", times=1)
    else:
        options["estimated_tokens"] = 10**9
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url, **options)
    with pytest.raises(NoAvailableKeyError) as caught:
        model.response(messages=hi())
    return caught.value


@pytest.mark.parametrize(("kind", "cls", "agno", "status", "fallback"), [
    ("exhausted", PoolExhaustedError, ModelRateLimitError, 429, "on_rate_limit"),
    ("dead", AllKeysDeadError, ModelAuthenticationError, 401, None),
    ("busy", ProviderBusyError, None, 503, "on_error"),
    ("too large", RequestTooLargeError, ContextWindowExceededError, 413, "on_context_overflow"),
])
def test_agno_reads_each_refusal_as_it_means(kind: str, cls: type, agno: type | None, status: int,
                                             fallback: str | None, build: Callable[..., Registry],
                                             standin: StandIn, env: dict[str, str]) -> None:
    registry = build(config(rpm={"groq": 1}))
    error = refusal(registry, standin, env, kind)
    assert type(error) is cls and isinstance(error, KeycycleNoAvailableKeyError) and error.status_code == status
    assert agno is None or isinstance(error, agno)
    chosen = FallbackConfig(on_error=[object()], on_rate_limit=[object()], on_context_overflow=[object()])
    picked = get_fallback_models(chosen, error)
    assert picked is (getattr(chosen, fallback) if fallback else None)  # an auth failure is never masked
    plain = registry.get_model("groq", base_url=standin.url)
    assert plain._is_retryable_error(error) is (kind in ("exhausted", "busy"))
