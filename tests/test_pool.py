"""The key pool's behaviour, for every implementation of its state.

Each test of the first part runs once per `PoolState`: `LocalPoolState` (keycycle's windows,
in process), `DictPoolState` (tests/pool_states.py) and `RedisPoolState` (on the real Redis
on 127.0.0.1:6379, a namespace per test), so a new state joins by adding itself to `STATES`.
Calls go through `KeyPool`, a rotating Agno Groq model and the Groq SDK to the provider
stand-in on 127.0.0.1. The last part checks `LocalPoolState`'s own limits and windows
against keycycle's.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy
from agno.exceptions import ModelProviderError
from agno.models.groq import Groq
from agno.models.message import Message
from conftest import PROVIDERS, Heartbeat, fake_key, keys_of, provider_env
from pool_states import DictPoolState, RedisStates
from services import needs_redis

import hfs_core._keycycle
from hfs_core import catalog
from hfs_core.call import ClientCache, build_model
from hfs_core.plugin import Action, ProviderReply, ProviderSpec, Verdict
from hfs_core.pool import CallOptions, KeyPool, Lease, LocalPoolState, NoAvailableKeyError, PoolState, rate_limits
from hfs_core.testing.standin import StandIn

MODEL = "openai/gpt-oss-20b"  # keycycle's groq table: 30 requests/min, 1000/h, 1000/day, 8000 tokens/min
PER_MINUTE = 30
SPEC: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC
RATE_LIMITED = {"status": 429, "message": "Rate limit reached for requests"}

StateFactory = Callable[[Sequence[str]], PoolState]
STATES: dict[str, StateFactory] = {
    "local": lambda keys: LocalPoolState.build(SPEC, keys, MODEL),
    "dict": lambda keys: DictPoolState(keys, PER_MINUTE),
}


class Recorder:
    """A `UsageRecorder` that keeps the rows in a list."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, int]] = []
        self.cooldowns: list[tuple[str, str, float]] = []

    def record(self, provider: str, model: str, suffix: str, tokens: int) -> None:
        self.rows.append((provider, model, suffix, tokens))

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        self.cooldowns.append((provider, suffix, until))


class Pools:
    """Builds pools (and a rotating Groq model on each) over the state under test."""

    def __init__(self, state: StateFactory, standin: StandIn) -> None:
        self.state = state
        self.standin = standin
        self.made: list[KeyPool] = []
        self.clients: list[ClientCache] = []
        self.usage = Recorder()

    def __call__(self, count: int, *, keys: list[str] | None = None, spec: ProviderSpec = SPEC,
                 model_class: type = Groq, **options: Any) -> tuple[KeyPool, Any, list[str]]:
        keys = keys or [fake_key("groq") for _ in range(count)]
        pool = KeyPool(spec, keys, self.state(keys), self.usage)
        clients = ClientCache(keys, model_class)
        self.made.append(pool)
        self.clients.append(clients)
        model = build_model(pool, clients, MODEL, CallOptions(**options), SPEC.sdk_options(self.standin.url))
        return pool, model, keys


@pytest.fixture(params=[*sorted(STATES), pytest.param("redis", marks=needs_redis)])
def pools(request: pytest.FixtureRequest, standin: StandIn) -> Iterator[Pools]:
    shared = RedisStates(SPEC, MODEL) if request.param == "redis" else None
    made = Pools(shared or STATES[request.param], standin)
    yield made
    for clients in made.clients:
        clients.close()
    for pool in made.made:
        pool.close()
    if shared is not None:
        shared.close()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock for `time.time` that a test moves forward (``clock[0] += seconds``)."""
    real = time.time
    offset = [0.0]
    monkeypatch.setattr(time, "time", lambda: real() + offset[0])
    return offset


def ask(model: Any) -> Any:
    return model.response(messages=[Message(role="user", content="hi")])


async def aask(model: Any) -> Any:
    return await model.aresponse(messages=[Message(role="user", content="hi")])


def waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hfs_core.pool" and "no key free" in r.getMessage()]


# ---------------------------------------------------------------------- leases


def test_leases_spread_over_the_keys_and_settle(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(4)
    for _ in range(20):
        assert ask(model).content
    counts = [standin.requests_for(key) for key in keys]
    assert sum(counts) == 20 and min(counts) >= 1, counts
    assert pool.status() == type(pool.status())(4, 0, 0, 0)  # every lease settled
    assert len(pools.usage.rows) == 20
    assert {row[2] for row in pools.usage.rows} == {key[-8:] for key, n in zip(keys, counts, strict=True) if n}
    assert all(row[:2] == ("groq", MODEL) and row[3] > 0 for row in pools.usage.rows)


def test_a_429_cools_the_key_and_the_call_moves_to_another(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(2)
    standin.fail_next(1, retry_after=30, **RATE_LIMITED)
    assert ask(model).content
    limited = [key for key in keys if standin.requests_for(key, 429)]
    assert len(limited) == 1 and standin.total == 2 and standin.accepted == 1
    assert pool.status().cooling == 1
    for _ in range(4):
        ask(model)
    assert standin.requests_for(limited[0]) == 1  # out for its Retry-After


@pytest.mark.parametrize("status", [401, 402, 403])
def test_401_402_403_mark_the_key_dead(pools: Pools, standin: StandIn, status: int) -> None:
    pool, model, keys = pools(2)
    standin.set_key(keys[0], status)
    for _ in range(6):
        assert ask(model).content
    assert pool.status().dead == 1
    assert standin.requests_for(keys[0]) <= 1 and standin.requests_for(keys[1]) == 6


def test_all_keys_dead_raises_saying_so(pools: Pools, standin: StandIn) -> None:
    _, model, keys = pools(2)
    for key in keys:
        standin.set_key(key, 401)
    with pytest.raises(NoAvailableKeyError, match="all 2 keys are dead") as caught:
        ask(model)
    assert caught.value.dead_keys == 2 and caught.value.next_free_in is None
    assert not any(key in str(caught.value) for key in keys)


# ---------------------------------------------------------------------- waiting


def test_a_call_waits_for_a_key_that_frees_within_its_budget(pools: Pools, standin: StandIn,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _, model, keys = pools(1, timeout=5)
    standin.fail_next(2, retry_after=0.3, **RATE_LIMITED)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        assert ask(model).content
    assert time.monotonic() - started >= 0.5  # it waited out both cooldowns
    assert standin.total == 3 and standin.count(429) == 2
    [announced] = waits(caplog)  # one notice per call, however often it waits
    assert announced.startswith(f"groq/{MODEL}: no key free; waiting up to ") and "next key frees in" in announced
    assert keys[0][-4:] not in announced and keys[0] not in caplog.text


def test_a_key_free_at_once_is_not_announced(pools: Pools, caplog: pytest.LogCaptureFixture) -> None:
    _, model, _ = pools(1)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        ask(model)
    assert not waits(caplog)


def test_no_key_within_the_budget_fails_at_once_and_says_when(pools: Pools, standin: StandIn) -> None:
    _, model, _ = pools(2, timeout=5)
    standin.fail_next(2, retry_after=60, **RATE_LIMITED)
    started = time.monotonic()
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    assert time.monotonic() - started < 2  # not the 5 s budget, not the 60 s Retry-After
    assert standin.total == 2  # each key tried once
    error = caught.value
    assert error.next_free_in is not None and 55 <= error.next_free_in <= 60
    assert "frees in" in str(error) and "5s wait budget" in str(error) and "2 cooling down" in str(error)
    started = time.monotonic()
    with pytest.raises(NoAvailableKeyError):
        ask(model)
    assert time.monotonic() - started < 0.5 and standin.total == 2  # known to be out: no request sent


def test_wait_false_fails_instead_of_waiting(pools: Pools, standin: StandIn,
                                             caplog: pytest.LogCaptureFixture) -> None:
    _, model, _ = pools(1, wait=False)
    standin.fail_next(1, retry_after=0.5, **RATE_LIMITED)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"), \
            pytest.raises(NoAvailableKeyError, match="wait=False") as caught:
        ask(model)
    assert caught.value.next_free_in is not None and standin.total == 1
    assert not waits(caplog)


async def test_async_waiting_does_not_block_the_event_loop(pools: Pools, standin: StandIn) -> None:
    _, model, _ = pools(1, timeout=5)
    standin.fail_next(1, retry_after=0.8, **RATE_LIMITED)
    started = time.monotonic()
    async with Heartbeat() as beat:
        answer = await aask(model)  # 429, then waits ~0.8 s for the only key
    waited = time.monotonic() - started
    assert answer.content and standin.total == 2 and waited >= 0.6
    assert beat.ticks >= 20  # ~80 if nothing blocked; a blocking sleep would leave ~1


# ---------------------------------------------------------------------- failures and verdicts


class WrappingGroq(Groq):
    """A third-party style Agno class: every SDK error wrapped in a ``ModelProviderError`` with its
    default status 502, as Agno's Mistral class does."""

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().invoke(*args, **kwargs)
        except Exception as exc:
            raise ModelProviderError(f"wrapped: {type(exc).__name__}", model_name="m", model_id=MODEL) from exc


def pool_messages(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "hfs_core.pool" and text in r.getMessage()]


def test_a_passing_fault_is_retried_at_once_on_another_key(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(2)
    standin.fail_next(1, status=500)
    assert ask(model).content
    assert [standin.requests_for(key) for key in keys] == [1, 1]  # the retry went to the other key
    assert pool.status() == type(pool.status())(2, 0, 0, 0)  # one failure sets no key aside


def test_keys_to_avoid_are_taken_only_as_a_last_resort(pools: Pools, standin: StandIn) -> None:
    pool, _, _ = pools(2)
    for _ in range(5):
        lease = pool.state.try_acquire(MODEL, 1, frozenset({0}))
        assert isinstance(lease, Lease) and lease.index == 1
        pool.state.settle(lease, 1)
    pool.state.mark_dead(1)
    lease = pool.state.try_acquire(MODEL, 1, frozenset({0}))
    assert isinstance(lease, Lease) and lease.index == 0
    pool.state.settle(lease, None)
    _, model, _ = pools(1)
    standin.fail_next(1, status=500)
    assert ask(model).content and standin.total == 2  # the only key, retried


def test_a_key_failing_again_and_again_is_set_aside_longer_until_it_succeeds(
        pools: Pools, standin: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    _, model, keys = pools(1, timeout=10)
    standin.fail_next(3, status=500)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        assert ask(model).content
        assert standin.total == 4
        aside = pool_messages(caplog, "set aside for")
        assert [m.split("set aside for ")[1] for m in aside] == ["1s", "2s"]  # 2nd and 3rd failure in a row
        caplog.clear()
        standin.fail_next(1, status=500)
        assert ask(model).content  # the success in between started the count again
    assert pool_messages(caplog, "retrying on another key") and not pool_messages(caplog, "set aside")
    assert keys[0] not in caplog.text and [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_refusal_below_the_table_limit_teaches_a_cap_that_relaxes(
        pools: Pools, standin: StandIn, clock: list[float], caplog: pytest.LogCaptureFixture) -> None:
    pool, model, keys = pools(1, timeout=5)
    for _ in range(3):
        assert ask(model).content
    standin.replay(keys[0], "groq.per_minute_requests", times=1, wait=0.2)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"), pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    assert pool_messages(caplog, "it now takes at most 3 a minute")
    assert caught.value.next_free_in is not None and caught.value.next_free_in > 30  # not the 0.2 s cooldown
    clock[0] += 61  # the three calls have left the window, and a minute without a refusal adds one
    for _ in range(4):
        assert ask(model).content
    with pytest.raises(NoAvailableKeyError):
        ask(model)
    assert standin.total == 8
    clock[0] += 40 * 60  # relaxed back to the table's 30 a minute
    leases = [pool.state.try_acquire(MODEL, 1) for _ in range(PER_MINUTE + 1)]
    assert all(isinstance(lease, Lease) for lease in leases[:PER_MINUTE]) and isinstance(leases[-1], float)
    for lease in leases[:PER_MINUTE]:
        assert isinstance(lease, Lease)
        pool.state.settle(lease, None)


def test_a_cooldown_without_seconds_takes_the_retry_after_header(pools: Pools, standin: StandIn) -> None:
    def rules(reply: ProviderReply) -> Verdict | None:
        return Verdict(Action.COOL_KEY, window="minute") if reply.status == 429 else None

    _, model, _ = pools(1, timeout=1, spec=dataclasses.replace(SPEC, error_rules=rules))
    standin.fail_next(1, retry_after=20, **RATE_LIMITED)
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    assert caught.value.next_free_in is not None and 15 < caught.value.next_free_in <= 20  # not the window's 60 s


def test_rules_that_raise_leave_the_reply_to_the_defaults(pools: Pools, standin: StandIn,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    def rules(reply: ProviderReply) -> Verdict | None:
        raise KeyError("a plugin bug")

    pool, model, keys = pools(2, spec=dataclasses.replace(SPEC, error_rules=rules))
    standin.set_key(keys[0], 401)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        for _ in range(4):
            assert ask(model).content
    assert pool.status().dead == 1 and standin.requests_for(keys[0]) == 1
    assert pool_messages(caplog, "error_rules raised KeyError")


def test_a_busy_provider_is_backed_off_and_its_keys_kept(pools: Pools, standin: StandIn,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    pool, model, _ = pools(2, timeout=10)
    standin.replay_all("groq.flex_capacity", times=1)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"):
        assert ask(model).content
    assert standin.total == 2 and pool.status() == type(pool.status())(2, 0, 0, 0)
    assert pool_messages(caplog, "the provider is busy, backing it off for 0.5s")


def test_a_provider_pause_past_the_budget_fails_saying_the_provider_is_busy(pools: Pools,
                                                                           standin: StandIn) -> None:
    pool, model, _ = pools(2, timeout=0.3)
    standin.replay_all("groq.flex_capacity", times=1)
    with pytest.raises(NoAvailableKeyError, match="the provider is busy") as caught:
        ask(model)
    assert caught.value.next_free_in is not None and 0 < caught.value.next_free_in <= 0.5
    assert standin.total == 1 and pool.status().cooling == 0 and pool.status().dead == 0
    with pytest.raises(NoAvailableKeyError, match="busy"):
        ask(model)  # the pause holds every call, not just the one that met it
    assert standin.total == 1


def test_a_daily_quota_is_remembered_and_kept_by_a_new_pool(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(2)
    standin.replay(keys[0], "groq.per_day_requests", wait=600)
    for _ in range(6):
        assert ask(model).content
    assert standin.requests_for(keys[0]) == 1
    [(provider, suffix, until)] = pools.usage.cooldowns
    assert (provider, suffix) == ("groq", pool.suffix(0)) and 590 < until - time.time() <= 600
    fresh, again, _ = pools(2, keys=keys)
    assert fresh.restore_cooldowns([(suffix, until), ("zzzzzzzz", until)]) == 1
    for _ in range(4):
        assert ask(again).content
    assert standin.requests_for(keys[0]) == 1 and fresh.status().cooling == 1


def test_a_callers_error_is_raised_at_once_and_the_key_kept(pools: Pools, standin: StandIn) -> None:
    pool, model, _ = pools(1)
    standin.replay_all("groq.too_large", times=1)
    with pytest.raises(ModelProviderError) as caught:
        ask(model)
    assert caught.value.status_code == 413 and standin.total == 1
    assert pool.status() == type(pool.status())(1, 0, 0, 0)
    assert ask(model).content and standin.total == 2


def test_an_error_that_is_no_reply_is_raised_at_once(pools: Pools, standin: StandIn) -> None:
    calls = []

    class BrokenGroq(Groq):
        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            raise TypeError("not the provider's doing")

    pool, model, _ = pools(2, model_class=BrokenGroq)
    with pytest.raises(TypeError):
        ask(model)
    assert calls == [1] and standin.total == 0
    assert pool.status() == type(pool.status())(2, 0, 0, 0)


def test_an_agno_wrapped_401_retires_the_key(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(2, model_class=WrappingGroq)
    standin.set_key(keys[0], 401)
    for _ in range(6):
        assert ask(model).content
    assert pool.status().dead == 1
    assert standin.requests_for(keys[0]) == 1 and standin.requests_for(keys[1]) == 6


def test_a_daily_quota_outlives_the_registry_in_the_usage_database(make_registry: Any, standin: StandIn,
                                                                  sqlite_url: str) -> None:
    env = provider_env({"groq": 2}, db_url=sqlite_url)
    bad, _ = keys_of(env, "groq")
    registry = make_registry(env=env)
    model = registry.get_model("groq", MODEL, base_url=standin.url)
    standin.replay(bad, "groq.per_day_requests", wait=600)
    for _ in range(6):
        assert ask(model).content
    registry.shutdown()
    with sqlalchemy.create_engine(sqlite_url).connect() as conn:
        rows = [tuple(row) for row in conn.execute(sqlalchemy.text("SELECT * FROM hfs_key_cooldowns"))]
    assert [row[:2] for row in rows] == [("groq", bad[-8:])]  # the suffix, never the key
    again = make_registry(env=env)
    model = again.get_model("groq", MODEL, base_url=standin.url)
    assert again.pool("groq").status().cooling == 1
    for _ in range(4):
        assert ask(model).content
    assert standin.requests_for(bad) == 1


# ---------------------------------------------------------------------- history and closing


def test_load_history_counts_rows_against_the_windows(pools: Pools, standin: StandIn) -> None:
    pool, model, keys = pools(2, timeout=1)
    now = time.time()
    full = [(pool.suffix(0), MODEL, now - 50 + i, 10) for i in range(PER_MINUTE)]
    assert pool.state.load_history([*full, ("zzzzzzzz", MODEL, now, 10)]) == PER_MINUTE
    for _ in range(5):
        ask(model)
    assert standin.requests_for(keys[0]) == 0 and standin.requests_for(keys[1]) == 5
    for _ in range(PER_MINUTE - 5):
        ask(model)
    with pytest.raises(NoAvailableKeyError) as caught:
        ask(model)
    assert caught.value.next_free_in is not None and 5 <= caught.value.next_free_in <= 11  # key 0's oldest row


def test_close_is_idempotent(pools: Pools) -> None:
    pool, model, _ = pools(2)
    ask(model)
    model.clients.close()
    pool.close()
    pool.close()
    pool.state.close()
    assert not model.clients.built
    if isinstance(pool.state, DictPoolState):
        assert pool.state.closed == 2  # once by the pool, once directly


# ---------------------------------------------------------------------- LocalPoolState and keycycle


@pytest.mark.parametrize("provider", PROVIDERS)
def test_limits_of_models_only_keycycle_knows_are_keycycles_own(provider: str) -> None:
    """For a model of keycycle's table (or its list) that the plugin's table leaves out, the limits
    the pool applies (read by `catalog`) equal keycycle's own resolution."""
    spec: ProviderSpec = importlib.import_module(f"hfs_provider_{provider}").SPEC
    keycycle = hfs_core._keycycle
    wrapper = keycycle.MultiProviderWrapper(spec.keycycle_name, [fake_key(provider)], spec.default_model,
                                            model_class=None, track_usage=False)
    state = LocalPoolState.build(spec, [fake_key(provider)], spec.default_model)
    try:
        models = [m for m in catalog.known_models(spec.keycycle_name) or {}
                  if m not in catalog.plugin_table(spec.limits).models]
        assert models
        for model in models:
            theirs = wrapper._resolve_limits_internal(model)
            assert rate_limits(spec, model) == theirs, model
            assert state.limits(model) == theirs, model
    finally:
        state.close()
        wrapper.manager.stop()


@pytest.mark.parametrize("provider", [*PROVIDERS, "cohere", "mistral", "moonshot", "no-such-provider"])
def test_the_light_name_scan_finds_the_models_pyyaml_reads(provider: str) -> None:
    known = catalog.known_models(provider)
    assert catalog.model_names(provider) == (None if known is None else frozenset(known))


@pytest.mark.parametrize("seed", range(5))
def test_limit_check_agrees_with_keycycle(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's O(1) check gives keycycle's ``check_limits`` answer (calls in flight
    counted as keycycle would count them once finished), whatever keycycle's own cleaning
    does to the windows in between."""
    rng = random.Random(seed)
    clock = [1_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    keycycle = hfs_core._keycycle
    wrapper = keycycle.MultiProviderWrapper("groq", [fake_key("groq") for _ in range(2)], MODEL,
                                            model_class=None, track_usage=False)
    try:
        state = LocalPoolState(SPEC, wrapper, MODEL)
        limits = keycycle.RateLimits(4, 30, 200, 150, 1200, 8000)  # each limit binds now and then
        keys = wrapper.manager.keys
        for _ in range(3000):
            index = rng.randrange(2)
            key = keys[index]
            action = rng.random()
            if action < 0.3:
                key.commit(MODEL, rng.choice([0, 10, 40, 90]), 0)
            elif action < 0.6:
                clock[0] += rng.choice([0.5, 3.0, 20.0, 61.0, 400.0, 3000.0, 20000.0])
            elif action < 0.65:
                key.buckets[MODEL].clean()  # what keycycle's cleanup thread does now and then
            else:
                tokens = rng.choice([1, 50, 200])
                flying = rng.randrange(3)
                state._in_flight[(index, MODEL)] = flying
                ours = state._fits(index, MODEL, tokens, limits, clock[0])
                theirs = key.can_use_model(MODEL, keycycle.RateLimits(
                    limits.requests_per_minute - flying, limits.requests_per_hour - flying,
                    limits.requests_per_day - flying, limits.tokens_per_minute, limits.tokens_per_hour,
                    limits.tokens_per_day), tokens)
                assert ours == theirs
    finally:
        wrapper.manager.stop()

