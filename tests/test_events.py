"""Events for the application: `Registry.subscribe` delivers what the pools and tiers do, on a thread of the
subscription's own, against the stand-in; a slow or failing subscriber never holds up a call."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from agno.models.message import Message
from conftest import keys_of, provider_env

from hfs_core import NoAvailableKeyError, Registry
from hfs_core.config import Config, ProviderConfig
from hfs_core.events import (
    QUEUE_SIZE,
    CallRefused,
    Event,
    EventBus,
    KeyCooled,
    KeyRetired,
    LimitLearned,
    QuotaReached,
    TierMoved,
)
from hfs_core.testing.standin import StandIn

MODELS = {"groq": "openai/gpt-oss-20b", "gemini": "gemini-2.5-flash"}
ROOMY = {"rpm": 1000, "rph": 100_000, "rpd": 100_000, "tpm": 10**8, "tph": 10**9, "tpd": 10**10}


class Seen:
    """A subscriber that keeps what it is given, and the threads it was called on."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.threads: set[str] = set()
        self._arrived = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._arrived:
            self.events.append(event)
            self.threads.add(threading.current_thread().name)
            self._arrived.notify_all()

    def wait_for(self, kind: type, count: int = 1) -> list[Any]:
        """The events of `kind` once `count` have arrived (at most 10 s)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.of(kind)) >= count, timeout=10)
        return self.of(kind)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    return provider_env({"groq": 2, "gemini": 2}, db_url=sqlite_url)


@pytest.fixture
def registry(make_registry: Callable[..., Registry], env: dict[str, str]) -> Registry:
    providers = {p: ProviderConfig(models={m: dict(ROOMY)}) for p, m in MODELS.items()}
    conf = Config(providers=providers, tiers={"fast": tuple(f"{p}:{m}" for p, m in MODELS.items())})
    return make_registry(env=env, config=conf, plugins=list(MODELS))


@pytest.fixture
def seen(registry: Registry) -> Seen:
    subscriber = Seen()
    registry.subscribe(subscriber)
    return subscriber


def hi() -> list[Message]:
    return [Message(role="user", content="hi")]


def call_until(model: Any, seen: Seen, kind: type) -> list[Any]:
    """Call `model` until an event of `kind` arrives (the pool chooses which key serves each call)."""
    for _ in range(30):
        assert model.response(messages=hi()).content
        if seen.of(kind):
            break
    return seen.wait_for(kind)


def test_a_rate_limited_key_is_said_cooled_until_when_and_why(
        registry: Registry, seen: Seen, standin: StandIn, env: dict[str, str]) -> None:
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url)
    key = keys_of(env, "groq")[0]
    standin.replay(key, "groq.per_minute_tokens", times=1, wait=30)
    before = time.time()
    [cooled] = call_until(model, seen, KeyCooled)
    assert cooled.provider == "groq" and cooled.key == key[-4:]
    assert before + 25 < cooled.until < time.time() + 35 and cooled.reason
    assert seen.threads == {"hfs-events"} and threading.current_thread().name not in seen.threads


def test_a_dead_key_is_said_retired(registry: Registry, seen: Seen, standin: StandIn, env: dict[str, str]) -> None:
    key = keys_of(env, "groq")[1]
    standin.set_key(key, 401)
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url)
    [retired] = call_until(model, seen, KeyRetired)
    assert retired == KeyRetired("groq", key[-4:], retired.reason) and "401" in retired.reason


def test_a_daily_quota_is_said_reached_until_its_reset(
        registry: Registry, seen: Seen, standin: StandIn, env: dict[str, str]) -> None:
    key = keys_of(env, "groq")[0]
    standin.replay(key, "groq.per_day_requests", times=1)
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url)
    [quota] = call_until(model, seen, QuotaReached)
    assert quota.provider == "groq" and quota.key == key[-4:] and quota.until > time.time() + 60
    assert seen.of(KeyCooled) == []


def test_a_limit_learned_from_a_refusal_is_said(make_registry: Callable[..., Registry], standin: StandIn,
                                                sqlite_url: str) -> None:
    env = provider_env({"groq": 1}, db_url=sqlite_url)
    registry = make_registry(env=env, plugins=["groq"])
    seen = Seen()
    registry.subscribe(seen)
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url, timeout=0.5)
    for _ in range(3):
        assert model.response(messages=hi()).content
    key = keys_of(env, "groq")[0]
    standin.replay(key, "groq.per_minute_requests", times=1, wait=0.2)
    with pytest.raises(NoAvailableKeyError):
        model.response(messages=hi())
    [learned] = seen.wait_for(LimitLearned)
    assert learned == LimitLearned("groq", key[-4:], MODELS["groq"], 3)
    [refused] = seen.wait_for(CallRefused)
    assert refused.model == f"groq/{MODELS['groq']}" and isinstance(refused.refusal, NoAvailableKeyError)


def test_a_tier_call_moving_on_and_a_refused_call_are_said(
        registry: Registry, seen: Seen, standin: StandIn, env: dict[str, str]) -> None:
    for key in keys_of(env, "groq"):
        standin.set_key(key, 503)
    model = registry.get_model("fast", base_url=standin.url)
    assert model.response(messages=hi()).content
    [moved] = seen.wait_for(TierMoved)
    assert moved == TierMoved("fast", f"groq/{MODELS['groq']}", f"gemini/{MODELS['gemini']}", "given up after HTTP 503")
    for key in keys_of(env, "gemini"):
        standin.set_key(key, 401)
    with pytest.raises(NoAvailableKeyError) as caught:
        registry.get_model("fast", base_url=standin.url, wait=False).response(messages=hi())
    [refused] = seen.wait_for(CallRefused)
    assert refused.model == "fast" and refused.refusal is caught.value
    shown = repr(seen.events)
    assert not any(key[:-4] in shown for provider in MODELS for key in keys_of(env, provider))


def test_a_slow_or_failing_subscriber_never_holds_up_a_call_nor_the_others(
        registry: Registry, standin: StandIn, env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    calls: list[Event] = []

    def stuck(event: Event) -> None:
        release.wait(30)

    def failing(event: Event) -> None:
        calls.append(event)
        raise RuntimeError("subscriber bug")

    seen = Seen()
    for subscriber in (stuck, failing, seen):
        registry.subscribe(subscriber)
    for key in keys_of(env, "groq"):
        standin.set_key(key, 401)
    model = registry.get_model("groq", MODELS["groq"], base_url=standin.url, wait=False)
    with caplog.at_level(logging.DEBUG, logger="hfs_core.events"):
        started = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - what matters is that the call ends, not how
            model.response(messages=hi())
        assert time.monotonic() - started < 20  # the stuck subscriber (30 s) did not hold it up
        seen.wait_for(KeyRetired, 2)
        seen.wait_for(CallRefused)
        release.set()
        registry.unsubscribe(failing)
    assert len(calls) == 3  # two retired keys and the refusal: it was kept after its first failure
    errors = [r for r in caplog.records if r.name == "hfs_core.events" and r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "subscriber bug" in (errors[0].exc_text or "")


def test_a_full_queue_drops_and_counts_events_without_waiting(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    release = threading.Event()
    subscription = bus.subscribe(lambda event: release.wait(30))
    started = time.monotonic()
    for _ in range(QUEUE_SIZE + 50):
        bus.emit(KeyRetired("groq", "abcd", "HTTP 401"))
    assert time.monotonic() - started < 5
    assert 49 <= subscription.dropped <= 50  # the first may already be with the subscriber
    assert [r.levelno for r in caplog.records if "slower than the events" in r.getMessage()] == [logging.WARNING]
    release.set()
    bus.close()
