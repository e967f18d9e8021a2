"""End to end: registry -> rotating model -> Agno Agent -> the real SDK -> the stand-in -> the usage table."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from agno.agent import Agent
from conftest import PROVIDERS, keys_of, provider_env

from hfs_core import CallOptions, Registry
from hfs_core.testing.standin import StandIn


def run(model: Any, prompt: str = "hi") -> str | None:
    return Agent(model=model, telemetry=False).run(prompt).content


def usage_rows(url: str) -> list[dict[str, Any]]:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM usage_logs ORDER BY id")]


def file_bytes(url: str) -> bytes:
    return Path(url.removeprefix("sqlite:///")).read_bytes()


def label_with(standin: StandIn, status: int) -> list[str]:
    """Last-4 labels of the keys the stand-in answered `status` to."""
    return [label for label, counts in standin.stats()["by_key"].items() if counts.get(str(status))]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_end_to_end(provider: str, standin: StandIn, sqlite_url: str) -> None:
    env = provider_env(3, db_url=sqlite_url)
    registry = Registry(env=env)
    try:
        model = registry.get_model(provider, base_url=standin.url)
        assert run(model, "hi") == "stand-in reply: hi"
    finally:
        registry.shutdown()
    assert standin.accepted == 1
    [used] = list(standin.stats()["by_key"])
    rows = usage_rows(sqlite_url)
    assert len(rows) == 1
    [row] = rows
    keys = keys_of(env, provider)
    assert row["provider"] == provider
    assert row["model"] == registry.specs[provider].default_model
    assert row["api_key_suffix"] in [k[-8:] for k in keys]
    assert row["api_key_suffix"].endswith(used)
    assert row["tokens"] > 0
    assert abs(row["timestamp"] - time.time()) < 60
    raw = file_bytes(sqlite_url)
    for key in keys:
        assert key.encode() not in raw


def test_all_four_through_one_registry(standin: StandIn, sqlite_url: str) -> None:
    env = provider_env(3, db_url=sqlite_url)
    registry = Registry(env=env)
    try:
        for provider in PROVIDERS:
            assert run(registry.get_model(provider, base_url=standin.url), provider) == f"stand-in reply: {provider}"
    finally:
        registry.shutdown()
    rows = usage_rows(sqlite_url)
    assert sorted(r["provider"] for r in rows) == sorted(PROVIDERS)
    for row in rows:
        assert row["api_key_suffix"] in [k[-8:] for k in keys_of(env, row["provider"])]


MODULE_LEVEL = """
import json, sqlite3, sys
from pathlib import Path
from agno.agent import Agent
import hfs_core

url = sys.argv[1]
out = {"available": hfs_core.list_available_providers(), "answers": {}}
for provider in out["available"]:
    model = hfs_core.get_model(provider, base_url=url)
    out["answers"][provider] = Agent(model=model, telemetry=False).run("hi " + provider).content
out["usage_url"] = hfs_core.get_registry().usage_url()
hfs_core.shutdown()
db = out["usage_url"].removeprefix("sqlite:///")
out["rows"] = sqlite3.connect(db).execute("SELECT provider, api_key_suffix FROM usage_logs").fetchall()
print("RESULT=" + json.dumps(out))
"""


@pytest.mark.slow
def test_module_level_api_in_a_fresh_process(isolated: Path, standin: StandIn) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TIDB_DB_URL"}
    keys = provider_env(3)
    env.update(keys)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MODULE_LEVEL), standin.url],
        cwd=isolated, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith("RESULT=")]
    out = json.loads(line.removeprefix("RESULT="))
    assert out["available"] == sorted(PROVIDERS)
    assert out["answers"] == {p: f"stand-in reply: hi {p}" for p in PROVIDERS}
    data_home = Path(env["XDG_DATA_HOME"])
    assert out["usage_url"] == f"sqlite:///{data_home / 'hfs-providers' / 'usage.sqlite3'}"
    assert sorted(p for p, _ in out["rows"]) == sorted(PROVIDERS)
    for provider, suffix in out["rows"]:
        assert suffix in [k[-8:] for k in keys_of(keys, provider)]
    for key in keys.values():
        if len(key) > 8:
            assert key not in result.stdout and key not in result.stderr


# -- get_model's arguments ----------------------------------------------------------------------


@pytest.fixture
def registry(make_registry, sqlite_url: str) -> Registry:
    return make_registry(env=provider_env(3, db_url=sqlite_url))


def test_provider_colon_model_string(registry: Registry, standin: StandIn, sqlite_url: str) -> None:
    model = registry.get_model("groq:openai/gpt-oss-20b", base_url=standin.url)
    assert model.id == "openai/gpt-oss-20b"
    assert run(model) == "stand-in reply: hi"
    assert registry.get_model("groq", "openai/gpt-oss-20b").id == "openai/gpt-oss-20b"
    assert registry.get_model("groq", id="openai/gpt-oss-20b").id == "openai/gpt-oss-20b"
    assert registry.get_model("groq").id == "openai/gpt-oss-120b"
    assert registry.get_model("groq:").id == "openai/gpt-oss-120b"
    assert registry.get_model(" groq : openai/gpt-oss-20b ").id == "openai/gpt-oss-20b"
    assert registry.get_model("openrouter:qwen/qwen3.8-27b:free").id == "qwen/qwen3.8-27b:free"
    registry.shutdown()
    [row] = usage_rows(sqlite_url)
    assert row["model"] == "openai/gpt-oss-20b"


def test_call_option_defaults_and_overrides(registry: Registry) -> None:
    model = registry.get_model("groq")
    assert model.call_options == CallOptions(estimated_tokens=1000, wait=True, timeout=10.0, max_retries=5)
    custom = registry.get_model("groq", estimated_tokens=50, wait=False, timeout=2.5, max_retries=1)
    assert custom.call_options == CallOptions(estimated_tokens=50, wait=False, timeout=2.5, max_retries=1)
    partial = registry.get_model("gemini", timeout=30.0)
    assert partial.call_options == CallOptions(estimated_tokens=1000, wait=True, timeout=30.0, max_retries=5)
    # the call options shape the pool's waiting and retrying; none of them reaches the SDK
    assert custom.max_retries == 0
    assert getattr(custom, "timeout", None) != 2.5
    assert not hasattr(custom, "estimated_tokens") and not hasattr(custom, "wait")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"timeout": None}, "timeout must be a number"),
        ({"timeout": "10"}, "timeout must be a number"),
        ({"timeout": -1}, "timeout must be a number"),
        ({"max_retries": 1.5}, "max_retries must be a whole number"),
        ({"max_retries": -1}, "max_retries must be a whole number"),
        ({"estimated_tokens": "many"}, "estimated_tokens must be a whole number"),
        ({"wait": "yes"}, "wait must be True or False"),
    ],
)
def test_bad_call_options_are_rejected_at_once(registry: Registry, kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(TypeError, match=says):
        registry.get_model("groq", **kwargs)


def test_call_options_accept_ints_for_timeout(registry: Registry) -> None:
    assert registry.get_model("groq", timeout=3, max_retries=0, estimated_tokens=0).call_options.timeout == 3


def test_other_kwargs_reach_the_agno_class(registry: Registry, standin: StandIn) -> None:
    model = registry.get_model("groq", temperature=0.3, max_tokens=77, base_url=standin.url)
    assert model.temperature == 0.3
    assert model.max_tokens == 77
    assert model.base_url == standin.url
    assert model.max_retries == 0  # the SDK's own retries are off; the pool retries
    assert run(model) == "stand-in reply: hi"
    assert standin.stats()["by_route"] == {"/openai/v1/chat/completions": 1}
    [sdk] = model.clients.built.values()
    assert str(sdk.base_url).startswith(standin.url)

    gemini = registry.get_model("gemini", temperature=0.3, base_url=standin.url)
    assert gemini.temperature == 0.3
    assert gemini.client_params["http_options"]["base_url"] == standin.url
    assert run(gemini) == "stand-in reply: hi"


def test_callers_client_params_keep_the_plugins_settings(registry: Registry, standin: StandIn) -> None:
    model = registry.get_model("gemini", base_url=standin.url,
                               client_params={"http_options": {"headers": {"x-test": "1"}}})
    http = model.client_params["http_options"]
    assert http["base_url"] == standin.url
    assert http["retry_options"] == {"attempts": 1}
    assert http["headers"] == {"x-test": "1"}
    assert run(model) == "stand-in reply: hi"


def test_unknown_kwarg_is_a_clear_type_error(registry: Registry) -> None:
    with pytest.raises(TypeError) as caught:
        registry.get_model("groq", temprature=0.3)
    message = str(caught.value)
    assert "get_model('groq')" in message
    assert "temprature" in message


def test_unknown_model_is_warned_about_once(
    registry: Registry, standin: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="hfs_core"):
        model = registry.get_model("groq", "my/own-model", base_url=standin.url)
        registry.get_model("groq", "my/own-model")
    assert sum("my/own-model" in r.getMessage() for r in caplog.records) == 1
    assert run(model) == "stand-in reply: hi"


# -- rotation -------------------------------------------------------------------------------------


def test_dead_key_is_tried_at_most_once(make_registry, standin: StandIn) -> None:
    env = provider_env({"groq": 3})
    dead = keys_of(env, "groq")[1]
    standin.set_key(dead, 401)
    registry = make_registry(env=env)
    model = registry.get_model("groq", base_url=standin.url)
    calls = 0
    while standin.requests_for(dead) == 0 and calls < 40:
        assert run(model, f"call {calls}") == f"stand-in reply: call {calls}"
        calls += 1
    for i in range(10):
        assert run(model, f"more {i}") == f"stand-in reply: more {i}"
        calls += 1
    assert standin.requests_for(dead) == 1
    assert standin.requests_for(dead, 401) == 1
    assert standin.accepted == calls
    status = registry.pool("groq").status()
    assert status.dead == 1 and status.live == 2
    assert registry.is_provider_healthy("groq")


def test_all_keys_dead_makes_the_provider_unhealthy(make_registry, standin: StandIn) -> None:
    from agno.models.message import Message

    from hfs_core import NoAvailableKeyError

    env = provider_env({"groq": 2})
    for key in keys_of(env, "groq"):
        standin.set_key(key, 403)
    registry = make_registry(env=env)
    model = registry.get_model("groq", base_url=standin.url)
    with pytest.raises(NoAvailableKeyError, match="all 2 keys are dead") as caught:
        model.response(messages=[Message(role="user", content="x")])
    assert caught.value.dead_keys == 2
    assert standin.total == 2
    assert not registry.is_provider_healthy("groq")
    assert "groq" not in registry.available_providers
    for key in keys_of(env, "groq"):
        assert key not in str(caught.value)


@pytest.mark.parametrize("how", ["fail_next", "set_key"])
def test_rate_limited_key_moves_on_at_once_and_cools(make_registry, standin: StandIn, how: str) -> None:
    env = provider_env({"groq": 3})
    registry = make_registry(env=env)
    model = registry.get_model("groq", base_url=standin.url)
    if how == "fail_next":
        standin.fail_next(1, status=429, retry_after=30)
    else:
        standin.set_key(keys_of(env, "groq")[0], 429)  # Retry-After: the stand-in's 60 s window
    start = time.monotonic()
    while not label_with(standin, 429):
        assert run(model, "first") == "stand-in reply: first"
        assert time.monotonic() - start < 5
    elapsed = time.monotonic() - start
    assert elapsed < 2.0, f"a 429 should move to another key at once, took {elapsed:.1f}s"
    [cooled] = label_with(standin, 429)
    assert standin.stats()["by_key"][cooled]["total"] == 1
    assert registry.pool("groq").status().cooling == 1
    for i in range(12):
        assert run(model, f"again {i}") == f"stand-in reply: again {i}"
    assert standin.stats()["by_key"][cooled]["total"] == 1, "the cooled key was retried within its Retry-After"
    assert standin.count(429) == 1


def test_transient_failure_is_retried(make_registry, standin: StandIn) -> None:
    registry = make_registry(env=provider_env({"groq": 2}))
    model = registry.get_model("groq", base_url=standin.url)
    standin.fail_next(2, status=503)
    assert run(model) == "stand-in reply: hi"
    assert standin.count(503) == 2 and standin.accepted == 1


# -- client reuse -----------------------------------------------------------------------------------


def test_one_sdk_client_per_key(make_registry, standin: StandIn) -> None:
    registry = make_registry(env=provider_env({"groq": 1}))
    model = registry.get_model("groq", base_url=standin.url)
    pool = registry.pool("groq")
    run(model, "a")
    [first] = model.clients.built.values()
    for prompt in ("b", "c", "d"):
        assert run(model, prompt) == f"stand-in reply: {prompt}"
        assert list(model.clients.built.values()) == [first]
    again = registry.get_model("groq", base_url=standin.url)
    assert again.pool is pool and again.clients is model.clients
    run(again, "e")
    assert list(model.clients.built.values()) == [first]
    assert standin.accepted == 5


def test_cerebras_warms_up_once_per_key(make_registry, standin: StandIn) -> None:
    registry = make_registry(env=provider_env({"cerebras": 1}))
    model = registry.get_model("cerebras", base_url=standin.url)
    for prompt in ("a", "b", "c", "d"):
        assert run(model, prompt) == f"stand-in reply: {prompt}"
    assert standin.accepted == 4
    assert standin.stats()["warmups"] == 1


def test_clients_stay_within_one_per_key(make_registry, standin: StandIn) -> None:
    registry = make_registry(env=provider_env({"cerebras": 3}))
    model = registry.get_model("cerebras", base_url=standin.url)
    for i in range(9):
        run(model, str(i))
    assert len(model.clients.built) <= 3
    assert standin.stats()["warmups"] <= 3
    assert standin.accepted == 9
