"""Keys and providers misbehaving: dead keys, every key dead, provider outages, a real limit lower
than keycycle's table, and streams that break before or after their first chunk.

Every scenario runs against the provider stand-in on 127.0.0.1. The figures each test reports
(``record_property``) are the ones published in docs/results.md; run with
``--junitxml=report.xml`` to see them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from agno.agent import Agent
from agno.models.message import Message
from conftest import keys_of, provider_env

from hfs_core import NoAvailableKeyError, Registry
from hfs_core.testing.standin import StandIn, key_label

Record = Callable[[str, object], None]
# A model of keycycle's groq table: 30 requests per minute, 1000 per hour and per day.
GROQ_30_RPM = "openai/gpt-oss-20b"


def ask(model: Any, text: str = "hello") -> Any:
    return model.response(messages=[Message(role="user", content=text)])


def groq_model(make_registry: Callable[..., Registry], standin: StandIn, sqlite_url: str, keys: int,
               **kwargs: Any) -> tuple[Registry, Any, list[str]]:
    env = provider_env({"groq": keys}, db_url=sqlite_url)
    registry = make_registry(env=env)
    model = registry.get_model("groq", kwargs.pop("model_id", None), base_url=standin.url, **kwargs)
    return registry, model, keys_of(env, "groq")


def run_threads(count: int, workers: int, call: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run `call(i)` for i in range(count) on `workers` threads; results and errors."""
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            result = call(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(result)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    return results, errors


# ---------------------------------------------------------------------- dead keys


def test_half_the_keys_dead_one_exhausted(make_registry: Any, standin: StandIn, sqlite_url: str,
                                          record_property: Record) -> None:
    """16 keys (Groq's expected count): 8 answer 401, 1 answers 402, 7 live.

    keycycle's table allows 30 calls per key per minute for the default model, so 7 live keys
    can take 210 calls in the first minute: 200 calls fit without waiting a minute.
    """
    registry, model, keys = groq_model(make_registry, standin, sqlite_url, 16)
    dead, exhausted, live = keys[:8], keys[8], keys[9:]
    for key in dead:
        standin.set_key(key, 401)
    standin.set_key(exhausted, 402)
    started = time.monotonic()
    results, errors = run_threads(200, 8, lambda i: ask(model, f"call {i}"))
    elapsed = time.monotonic() - started

    assert not errors, f"{len(errors)} calls reached the caller as errors, first: {errors[0]!r}"
    assert len(results) == 200
    assert all(r.content and r.content.startswith("stand-in reply: call ") for r in results)
    tried = {key_label(k): standin.requests_for(k) for k in [*dead, exhausted]}
    assert all(n <= 1 for n in tried.values()), f"a dead key was tried more than once: {tried}"
    assert sum(standin.requests_for(k, 200) for k in live) == 200
    status = registry.pool("groq").status()
    assert status.dead == sum(tried.values())
    record_property("calls", 200)
    record_property("caller_errors", len(errors))
    record_property("dead_key_attempts", sum(tried.values()))
    record_property("max_attempts_per_dead_key", max(tried.values()))
    record_property("seconds", round(elapsed, 2))


def test_every_key_dead_fails_fast_and_clearly(make_registry: Any, standin: StandIn, sqlite_url: str,
                                               record_property: Record) -> None:
    registry, model, keys = groq_model(make_registry, standin, sqlite_url, 6, timeout=10.0)
    for key, status in zip(keys, (401, 401, 402, 402, 403, 403), strict=True):
        standin.set_key(key, status)
    started = time.monotonic()
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    first = time.monotonic() - started
    message = str(caught.value)
    assert "groq" in message and "6" in message and "dead" in message, message
    assert first <= 1.0, f"took {first:.2f}s, not at once (the wait budget is 10s)"
    assert all(standin.requests_for(k) == 1 for k in keys)

    started = time.monotonic()
    with pytest.raises(NoAvailableKeyError, match="all 6 keys are dead"):
        ask(model)
    second = time.monotonic() - started
    assert second <= 0.1
    assert standin.total == 6, "a key already known dead was tried again"
    assert registry.is_provider_healthy("groq") is False
    assert "groq" not in registry.available_providers
    record_property("first_error_seconds", round(first, 3))
    record_property("next_error_seconds", round(second, 4))
    record_property("requests_sent", standin.total)
    record_property("message", message)


def test_dead_key_concurrent_callers_try_it_once(make_registry: Any, standin: StandIn, sqlite_url: str,
                                                 record_property: Record) -> None:
    """64 callers start at once on a pool of 8 keys, 4 of them dead: still one try per dead key."""
    _, model, keys = groq_model(make_registry, standin, sqlite_url, 8)
    for key in keys[:4]:
        standin.set_key(key, 401)
    standin.latency = 0.05
    barrier = threading.Barrier(64)

    def call(i: int) -> Any:
        barrier.wait()
        return ask(model, f"call {i}")

    results, errors = run_threads(64, 64, call)
    assert not errors, repr(errors[:1])
    assert len(results) == 64
    tried = [standin.requests_for(k) for k in keys[:4]]
    assert max(tried) <= 1, f"dead keys tried {tried} times"
    record_property("calls", 64)
    record_property("dead_key_attempts", tried)


# ---------------------------------------------------------------------- provider trouble


def test_temporary_provider_trouble_is_waited_out(make_registry: Any, standin: StandIn, sqlite_url: str,
                                                  record_property: Record) -> None:
    registry, model, _ = groq_model(make_registry, standin, sqlite_url, 4)
    standin.fail_for(2, status=503, message="overloaded")
    started = time.monotonic()
    durations: list[float] = []

    def call(i: int) -> Any:
        t0 = time.monotonic()
        try:
            return ask(model, f"call {i}")
        finally:
            durations.append(time.monotonic() - t0)

    results, errors = run_threads(20, 10, call)
    elapsed = time.monotonic() - started
    assert not errors, f"{len(errors)} calls lost, first: {errors[0]!r}"
    assert len(results) == 20
    assert standin.count(503) > 0 and standin.accepted == 20
    assert max(durations) <= 10.0, "a call waited past its 10 s budget"
    registry.shutdown()
    health = registry.usage_health()
    assert health is not None and health.written == 20 and health.lost == 0
    record_property("calls", 20)
    record_property("lost", len(errors))
    record_property("503s_absorbed", standin.count(503))
    record_property("max_call_seconds", round(max(durations), 2))
    record_property("seconds", round(elapsed, 2))


def test_temporary_rate_limit_retry_after_is_honoured(make_registry: Any, standin: StandIn, sqlite_url: str,
                                                      record_property: Record) -> None:
    """A 429 with Retry-After on every key: the call waits that long (within its budget) and succeeds."""
    _, model, _ = groq_model(make_registry, standin, sqlite_url, 2, timeout=5.0)
    standin.fail_next(2, status=429, message="Rate limit reached for requests", retry_after=1.0)
    started = time.monotonic()
    response = ask(model)
    elapsed = time.monotonic() - started
    assert response.content == "stand-in reply: hello"
    assert standin.count(429) == 2 and standin.accepted == 1
    assert 0.9 <= elapsed <= 2.0, elapsed
    record_property("waited_seconds", round(elapsed, 2))


# ---------------------------------------------------------------------- a real limit below keycycle's table


def real_limit_run(model: Any, standin: StandIn, keys: list[str], *, limit: int, window: float, run_seconds: float,
                   budget: float, callers: int) -> dict[str, Any]:
    """`callers` threads call for `run_seconds` against a stand-in taking `limit` calls per key per
    `window`; checks and returns the figures."""
    standin.set_limit(limit, window)
    standin.latency = 0.01
    waits: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    start = time.monotonic()
    stop_at = start + run_seconds

    def caller() -> None:
        while time.monotonic() < stop_at:
            t0 = time.monotonic()
            try:
                ask(model)
                kind = "ok"
            except NoAvailableKeyError:
                kind = "no_key_in_budget"
            except Exception as exc:
                kind = type(exc).__name__
            with lock:
                waits.append(time.monotonic() - t0)
                outcomes[kind] = outcomes.get(kind, 0) + 1
            if kind != "ok":
                time.sleep(window / 10)  # a refused agent comes back a little later, as a real one would

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start

    accepted = standin.accepted
    # A fresh sliding window admits `limit` calls per key at t = 0, W, 2W, ... within the run.
    windows = int(elapsed // window) + (1 if elapsed % window > 0.05 else 0)
    capacity = len(keys) * limit * windows
    figures = {"accepted": accepted, "capacity": capacity, "utilization": round(accepted / capacity, 3),
               "429s": standin.count(429), "max_wait_seconds": round(max(waits), 3), "outcomes": outcomes,
               "seconds": round(elapsed, 1)}
    assert max(waits) <= budget + 1.0, f"a caller waited {max(waits):.2f}s (budget {budget}s): {figures}"
    assert accepted / capacity >= 0.9, f"too few of the calls the provider would take: {figures}"
    assert set(outcomes) <= {"ok", "no_key_in_budget"}, f"errors other than a clear refusal: {figures}"
    # Each key cools for its Retry-After, so 429s come from the rush on a key as it reopens
    # (48 to 123 in the scaled run so far); without the cooldown the callers would meet thousands.
    assert standin.count(429) <= capacity // 2, f"reopened keys were rushed (learned limits not kept): {figures}"
    assert all(standin.requests_for(k, 200) <= limit * windows for k in keys)
    return figures


@pytest.mark.slow
def test_real_limit_below_keycycle_table(make_registry: Any, standin: StandIn, sqlite_url: str,
                                         record_property: Record) -> None:
    """10 requests per key per 60 s at the provider, 30 RPM in keycycle's table, three windows
    (130 s), 12 callers with the default 10 s wait budget: only the 429s can teach the pool the
    real capacity, and the limit it learns from the first of them keeps the key from being
    rushed when it reopens. (It runs in real minutes: the learned limit is per minute, so the
    window cannot be scaled down as it once was.)"""
    _, model, keys = groq_model(make_registry, standin, sqlite_url, 3, model_id=GROQ_30_RPM)
    figures = real_limit_run(model, standin, keys, limit=10, window=60.0, run_seconds=130.0, budget=10.0,
                             callers=12)
    for name, value in figures.items():
        record_property(name, value)


# ---------------------------------------------------------------------- streaming


def _stream_text(model: Any, text: str = "one two three four five six seven eight") -> str:
    pieces = [getattr(chunk, "content", None) for chunk in
              model.response_stream(messages=[Message(role="user", content=text)])]
    return "".join(p for p in pieces if isinstance(p, str))


def test_stream_rate_limited_before_first_chunk_rotates(make_registry: Any, standin: StandIn, sqlite_url: str,
                                                        record_property: Record) -> None:
    _, model, keys = groq_model(make_registry, standin, sqlite_url, 2)
    standin.set_key(keys[0], 429)
    texts = [_stream_text(model) for _ in range(4)]
    assert texts == ["stand-in reply: one two three four five six seven eight"] * 4
    assert standin.requests_for(keys[0]) <= 1, "a key cooling after a 429 was tried again"
    assert standin.requests_for(keys[1], 200) == 4
    assert standin.stats()["streams"] == 4
    record_property("streams", 4)
    record_property("429s_before_first_chunk", standin.count(429))


async def test_async_stream_rate_limited_before_first_chunk_rotates(make_registry: Any, standin: StandIn,
                                                                    sqlite_url: str) -> None:
    _, model, keys = groq_model(make_registry, standin, sqlite_url, 2)
    standin.fail_next(1, status=429, message="Rate limit reached for requests", retry_after=30)
    pieces = [getattr(c, "content", None) async for c in
              model.aresponse_stream(messages=[Message(role="user", content="a b c d")])]
    assert "".join(p for p in pieces if isinstance(p, str)) == "stand-in reply: a b c d"
    assert standin.count(429) == 1 and standin.stats()["streams"] == 1
    used = [k for k in keys if standin.requests_for(k)]
    assert len(used) == 2, "the stream did not move to the other key"


@pytest.mark.parametrize("mode", ["error", "abort"])
def test_stream_error_after_chunks_reaches_the_caller(make_registry: Any, standin: StandIn, sqlite_url: str,
                                                      mode: str, record_property: Record) -> None:
    registry, model, _ = groq_model(make_registry, standin, sqlite_url, 3)
    standin.stream_fail_after(2, mode=mode, times=1)  # type: ignore[arg-type]
    received: list[str] = []
    with pytest.raises(Exception) as caught:
        for chunk in model.response_stream(messages=[Message(role="user", content="one two three four five")]):
            if isinstance(getattr(chunk, "content", None), str):
                received.append(chunk.content)
    assert "".join(received), "no chunk arrived before the failure"
    assert standin.total == 1, "the broken stream was silently retried (duplicate output)"
    assert not isinstance(caught.value, NoAvailableKeyError)
    record_property("requests_for_the_broken_stream", standin.total)
    # The key is not punished for a broken stream, and the next call works.
    assert _stream_text(model, "again") == "stand-in reply: again"
    assert registry.pool("groq").status().dead == 0
    record_property("mode", mode)
    record_property("chunks_before_error", len(received))
    record_property("error", type(caught.value).__name__)


def test_agent_stream_error_after_chunks_is_not_duplicated(make_registry: Any, standin: StandIn,
                                                           sqlite_url: str) -> None:
    """Through an Agno Agent: the run ends in an error event or exception, never a silent replay."""
    _, model, _ = groq_model(make_registry, standin, sqlite_url, 3)
    standin.stream_fail_after(1, mode="error", times=1)
    agent = Agent(model=model, telemetry=False)
    contents: list[str] = []
    failed = False
    try:
        for event in agent.run("one two three four five", stream=True):
            name = type(event).__name__
            if "Error" in name or getattr(event, "event", "") == "RunError":
                failed = True
            content = getattr(event, "content", None)
            if name == "RunContentEvent" and isinstance(content, str):
                contents.append(content)
    except Exception:
        failed = True
    assert failed, "the broken stream looked like a success"
    assert standin.total == 1, "the agent's stream was retried behind the caller's back"
    text = "".join(contents)
    assert text.count("stand-in reply") <= 1


async def test_async_stream_error_after_chunks_reaches_the_caller(make_registry: Any, standin: StandIn,
                                                                  sqlite_url: str) -> None:
    _, model, _ = groq_model(make_registry, standin, sqlite_url, 2)
    standin.stream_fail_after(1, mode="error", times=1)
    received: list[str] = []
    with pytest.raises(Exception):  # noqa: B017 - any error, as long as it reaches the caller
        async for chunk in model.aresponse_stream(messages=[Message(role="user", content="a b c d e f")]):
            if isinstance(getattr(chunk, "content", None), str):
                received.append(chunk.content)
    assert "".join(received)
    assert standin.total == 1
    await asyncio.sleep(0)
