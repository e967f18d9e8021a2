"""The path every model call takes: SDK clients, SDK retries, 429s, waiting, spreading, shutdown.

Behaviour only, no timings beyond "well under the budget": the figures live in the benchmarks
(docs/results.md). Every call goes through the real Groq SDK and Agno's ``model.response``
to the provider stand-in on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import groq
import pytest
from agno.models.message import Message
from conftest import keys_of, provider_env

from hfs_core import HFSError, NoAvailableKeyError, Registry
from hfs_core.config import Config
from hfs_core.pool import KeyPool
from hfs_core.testing.standin import StandIn

MODEL = "openai/gpt-oss-20b"  # keycycle's groq table: 30 requests/min, 1000/h, 1000/day, 8000 tokens/min


def ask(model: Any) -> Any:
    return model.response(messages=[Message(role="user", content="hi")])


async def aask(model: Any) -> Any:
    return await model.aresponse(messages=[Message(role="user", content="hi")])


def groq_model(make_registry: Callable[..., Registry], standin: StandIn, keys: int,
               **kwargs: Any) -> tuple[Registry, Any, list[str]]:
    env = provider_env({"groq": keys})
    registry = make_registry(env=env, plugins=["groq"], config=Config(track_usage=False))
    return registry, registry.get_model("groq", MODEL, base_url=standin.url, **kwargs), keys_of(env, "groq")


def requests_by_key(standin: StandIn, keys: list[str]) -> list[int]:
    return [standin.requests_for(key) for key in keys]


def sync_clients(model: Any) -> dict[int, Any]:
    return {index: client for (index, is_async, _, _), client in model.clients.built.items() if not is_async}


# ---------------------------------------------------------------------- SDK clients


def test_one_sdk_client_per_key_reused_across_calls(make_registry: Any, standin: StandIn,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[str] = []
    original = groq.Groq.__init__

    def counting_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self.api_key)

    monkeypatch.setattr(groq.Groq, "__init__", counting_init)
    _, model, keys = groq_model(make_registry, standin, 3)
    for _ in range(30):
        ask(model)
    used = [key for key in keys if standin.requests_for(key)]
    assert sorted(built) == sorted(used)  # one client per key that served a call, never another
    first = sync_clients(model)
    for _ in range(9):
        ask(model)
    assert sync_clients(model).items() >= first.items()  # the same objects, not rebuilt
    assert len(built) == len(sync_clients(model)) <= 3


def test_each_key_has_its_own_client_sharing_one_connection_pool(make_registry: Any, standin: StandIn) -> None:
    _, model, keys = groq_model(make_registry, standin, 4)
    pool: KeyPool = model.pool
    clients = [model.clients.get(pool.state.try_acquire(MODEL, 10).index, model, False, model._hfs_signature)
               for _ in range(4)]
    by_key = {client.api_key: client for client in clients}
    assert set(by_key) <= set(keys) and len(by_key) == 4  # a first call on a key goes alone: 4 keys
    assert {client.max_retries for client in clients} == {0}
    assert len({id(client._client) for client in clients}) == 1  # copies of one client: one HTTP pool


def test_cerebras_copies_do_not_warm_a_connection_each(make_registry: Any, standin: StandIn) -> None:
    """The cerebras SDK opens and warms a connection for every new client (a blocking request);
    a key's client is a copy of the first one and uses its connections instead."""
    env = provider_env({"cerebras": 4})
    registry = make_registry(env=env, plugins=["cerebras"], config=Config(track_usage=False))
    model = registry.get_model("cerebras", base_url=standin.url)
    for _ in range(12):
        ask(model)
    assert len(sync_clients(model)) >= 2
    assert standin.stats()["warmups"] == 1


# ---------------------------------------------------------------------- 429s


def test_sdk_retries_are_off_a_429_is_one_request(make_registry: Any, standin: StandIn) -> None:
    """The SDK would re-send a 429 itself after Retry-After (groq: twice); with its retries
    off the 429 reaches the registry at once. With the registry's own retries off too, it
    reaches the caller: one request, no waiting."""
    _, model, _ = groq_model(make_registry, standin, 1, max_retries=0)
    standin.fail_next(1, status=429, message="Rate limit reached for requests", retry_after=2)
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        ask(model)
    assert time.monotonic() - started < 1.5
    assert getattr(caught.value, "status_code", None) == 429
    assert standin.total == 1 and standin.count(429) == 1


def test_429_cools_the_key_for_retry_after_and_moves_on_at_once(make_registry: Any, standin: StandIn) -> None:
    _, model, keys = groq_model(make_registry, standin, 2)
    standin.fail_next(1, status=429, message="Rate limit reached for requests", retry_after=30)
    started = time.monotonic()
    assert ask(model).content
    assert time.monotonic() - started < 1.5  # no waiting: the other key took the retry
    limited = [key for key in keys if standin.requests_for(key, 429)]
    assert len(limited) == 1 and standin.total == 2 and standin.accepted == 1
    cooled, other = limited[0], next(key for key in keys if key != limited[0])
    assert model.pool.status().cooling == 1
    for _ in range(6):
        ask(model)
    assert standin.requests_for(cooled) == 1 and standin.requests_for(other) == 7
    # it stays out for the Retry-After: with the other key out too, the next frees in ~30 s
    standin.fail_next(1, status=429, message="Rate limit reached for requests", retry_after=60)
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    assert caught.value.next_free_in is not None and 27 <= caught.value.next_free_in <= 30


def test_a_wait_within_the_budget_waits_for_the_key(make_registry: Any, standin: StandIn) -> None:
    _, model, _ = groq_model(make_registry, standin, 1, timeout=5)
    standin.fail_next(1, status=429, message="Rate limit reached for requests", retry_after=0.5)
    started = time.monotonic()
    assert ask(model).content
    assert 0.4 <= time.monotonic() - started < 3
    assert standin.total == 2 and standin.count(429) == 1


# ---------------------------------------------------------------------- async


def test_async_clients_follow_the_event_loop(make_registry: Any, standin: StandIn) -> None:
    """An async client's connections belong to its event loop: a second asyncio.run gets
    fresh clients instead of failing on dead connections and retrying."""
    _, model, _ = groq_model(make_registry, standin, 1, max_retries=0)
    for _ in range(3):
        assert asyncio.run(aask(model)).content
    assert standin.total == 3 and standin.accepted == 3


def test_a_loops_first_async_client_is_built_off_the_loop(make_registry: Any, standin: StandIn,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first async client of an event loop (a new HTTP client and TLS context) is built in a
    worker thread while the loop runs on; the other keys' clients are copies of it, on the loop.
    The process's first one also has a copy made in that thread, for the SDK's first request
    (answered in the process)."""
    built: list[tuple[str, bool]] = []
    original = groq.AsyncGroq.__init__

    def spying_init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append((self.api_key, threading.current_thread() is threading.main_thread()))

    monkeypatch.setattr(groq.AsyncGroq, "__init__", spying_init)
    _, model, keys = groq_model(make_registry, standin, 4)

    async def calls() -> list[Any]:
        return await asyncio.gather(*(aask(model) for _ in range(12)))

    for _ in range(2):  # each event loop gets its own first client
        before = len(built)
        assert all(r.content == "stand-in reply: hi" for r in asyncio.run(calls()))
        [(template_key, template_on_loop), *others] = built[before:]
        assert not template_on_loop, built  # the template, off the loop's thread
        copies = [key for key, on_loop in others if on_loop]  # copies, made where asked for
        rehearsals = [key for key, on_loop in others if not on_loop]
        assert copies and rehearsals in ([], [template_key]), built
    assert standin.accepted == standin.total == 24 and {key for key, _ in built} <= set(keys)
    assert len(built) <= 2 * (1 + len(keys)) + 1


# ---------------------------------------------------------------------- spreading


def test_concurrent_callers_spread_over_the_keys(make_registry: Any, standin: StandIn) -> None:
    """keycycle as it comes fills key 1 first; the pool picks the less loaded of two keys."""
    standin.latency = 0.02
    _, model, keys = groq_model(make_registry, standin, 8)
    errors: list[BaseException] = []

    def worker() -> None:
        for _ in range(5):
            try:
                ask(model)
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    counts = requests_by_key(standin, keys)
    assert sum(counts) == 40
    assert max(counts) <= 5 + 3, counts  # a fair share is 5


# ---------------------------------------------------------------------- shutdown


async def test_shutdown_closes_the_clients(make_registry: Any, standin: StandIn) -> None:
    registry, model, _ = groq_model(make_registry, standin, 3)
    for _ in range(4):
        await asyncio.to_thread(ask, model)
        await aask(model)
    clients = list(model.clients.built.values())
    assert clients and any(isinstance(c, groq.AsyncGroq) for c in clients)
    assert not any(c.is_closed() for c in clients)
    registry.shutdown()
    await asyncio.sleep(0.05)  # async clients close in a task on their loop
    assert all(c.is_closed() for c in clients)
    assert not model.clients.built


# ---------------------------------------------------------------------- new models


def test_get_model_does_not_wait_for_a_busy_pool(make_registry: Any, standin: StandIn) -> None:
    """A model for a built pool is made without asking the pool anything: `get_model` returns while
    another thread holds the pool's state (here, replaying a usage history), and its first call
    then runs once the replay is over."""
    registry, model, _ = groq_model(make_registry, standin, 2)
    pool = model.pool
    replaying, release = threading.Event(), threading.Event()

    def history() -> Any:
        yield (pool.suffix(0), MODEL, time.time() - 5, 10)
        replaying.set()
        release.wait(30)

    replay = threading.Thread(target=pool.state.load_history, args=(history(),))
    replay.start()
    made: list[Any] = []
    try:
        assert replaying.wait(10)
        getter = threading.Thread(target=lambda: made.append(registry.get_model("groq", MODEL, base_url=standin.url)))
        getter.start()
        getter.join(10)
        assert made, "get_model waited for the pool's replay"
    finally:
        release.set()
        replay.join(10)
    assert ask(made[0]).content == "stand-in reply: hi"


def test_models_of_one_shape_are_made_alike_and_share_nothing_mutable(make_registry: Any, standin: StandIn) -> None:
    """The second `get_model` of a shape reuses what the first worked out (the plugin's SDK options
    are asked once), yet each model is its own object: its fields and nested dicts are its own, and
    both serve calls on the pool's shared clients."""
    asked: list[str | None] = []
    registry, first, _ = groq_model(make_registry, standin, 2, temperature=0.5)
    spec = registry.pool("groq").spec
    original = spec.sdk_options

    def counting(base_url: str | None, *rest: Any) -> dict[str, Any]:
        asked.append(base_url)
        return {**original(base_url, *rest), "default_headers": {"x-test": "1"}}

    object.__setattr__(spec, "sdk_options", counting)  # the plugin's own spec: put back below
    try:
        one = registry.get_model("groq", MODEL, base_url=standin.url, top_p=0.9)
        two = registry.get_model("groq", MODEL, base_url=standin.url, top_p=0.9)
        other = registry.get_model("groq", MODEL, base_url=standin.url, top_p=0.8)
    finally:
        object.__setattr__(spec, "sdk_options", original)
    assert asked == [standin.url, standin.url]  # once per shape: (top_p=0.9) and (top_p=0.8)
    assert one is not two and (one.top_p, two.top_p, other.top_p) == (0.9, 0.9, 0.8)
    assert one.default_headers == two.default_headers == {"x-test": "1"}
    assert one.default_headers is not two.default_headers
    one.default_headers["x-test"] = "changed"
    assert two.default_headers == {"x-test": "1"}
    assert first.temperature == 0.5 and one.temperature is None
    assert one.clients is two.clients is first.clients
    assert [ask(m).content for m in (one, two, other, first)] == ["stand-in reply: hi"] * 4


def test_a_shape_kept_still_checks_each_call_of_get_model(make_registry: Any, standin: StandIn) -> None:
    """What is kept never skips a check: a value equal to a kept one but of another type (``wait=1``
    after ``wait=True``) is still refused, a value that cannot be hashed still works, and a registry
    shut down makes no more models."""
    registry, _, _ = groq_model(make_registry, standin, 1, wait=True)
    with pytest.raises(TypeError, match="wait must be True or False, got 1"):
        registry.get_model("groq", MODEL, base_url=standin.url, wait=1)
    model = registry.get_model("groq", MODEL, base_url=standin.url, client_params={"max_retries": 0})
    assert ask(model).content == "stand-in reply: hi"
    registry.shutdown()
    with pytest.raises(HFSError, match="shut down"):
        registry.get_model("groq", MODEL, base_url=standin.url, wait=True)


COLD_LOOP_WORKER = Path(__file__).with_name("cold_loop_worker.py")


@pytest.mark.parametrize("shape", ["each", "shared"])
def test_a_cold_loops_first_calls_leave_the_loop_free(standin: StandIn, shape: str) -> None:
    """In a process whose first calls are 24 at once on a fresh event loop, each model obtained with
    `get_model` in a worker thread (a model each, or one shared): the loop's thread opens no file,
    imports nothing and compiles nothing (a model's limits read from keycycle's table, the SDK's
    first evaluation of its request types) while the calls run; that first-time work is done in
    `get_model` and in the thread that builds the loop's first SDK client."""
    env = {**os.environ, **provider_env({"groq": 4}), "AGNO_TELEMETRY": "false"}
    done = subprocess.run([sys.executable, str(COLD_LOOP_WORKER), standin.url, shape], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["outcomes"] == {"ok": 24}, result
    assert result["on_loop"] == [], result["on_loop"]
    assert standin.total == 24  # the SDK's first request, rehearsed in the worker thread, was sent nowhere
