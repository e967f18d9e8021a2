"""Reservations as the provider makes them (issue 22).

Cerebras counts a request's ``max_completion_tokens`` against the key's token limit when the
request arrives (its plugin says so: `ProviderSpec.counts_max_tokens_up_front`), so a call whose
model sets a cap reserves at least that cap, and settles to the usage the provider reports. A
provider that does not say so (Groq) reserves ``estimated_tokens`` as before.

The pool tests run on `LocalPoolState` and on `RedisPoolState` (the real Redis, a namespace per
test). A call is held at the stand-in (its reply waits for the test) while the test reads how
many tokens the key has left, by asking the pool's own state for more and more of them. The
stand-in counts Cerebras's tokens as Cerebras does and refuses what does not fit, so a pool that
reserved too little would meet its 429.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import groq
import pytest
from agno.models.cerebras import Cerebras
from agno.models.groq import Groq
from agno.models.message import Message
from cerebras.cloud.sdk import APIStatusError as CerebrasStatusError
from cerebras.cloud.sdk import Cerebras as CerebrasClient
from conftest import fake_key
from pool_states import RedisStates
from services import needs_redis

from hfs_core.call import ClientCache, build_model
from hfs_core.plugin import ProviderSpec
from hfs_core.pool import CallOptions, KeyPool, Lease, LocalPoolState, PoolState
from hfs_core.testing.standin import StandIn
from hfs_core.testing.standin.recorded import RECORDED

CEREBRAS: ProviderSpec = importlib.import_module("hfs_provider_cerebras").SPEC
GROQ: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC
MODELS = {"cerebras": ("gpt-oss-120b", Cerebras), "groq": ("openai/gpt-oss-20b", Groq)}
TPM = 5000
CAP = 2000


class Recorder:
    """A `UsageRecorder` keeping the tokens each call was settled to."""

    def __init__(self) -> None:
        self.tokens: list[int] = []

    def record(self, provider: str, model: str, suffix: str, tokens: int) -> None:
        self.tokens.append(tokens)

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        """Not needed here."""


class Pools:
    """Builds one-key pools, and a rotating model on each, over the state under test."""

    def __init__(self, kind: str, standin: StandIn) -> None:
        self.kind = kind
        self.standin = standin
        self.usage = Recorder()
        self.made: list[tuple[KeyPool, ClientCache]] = []
        self.shared: list[RedisStates] = []

    def __call__(self, spec: ProviderSpec, tpm: int = TPM, **model_kwargs: Any) -> tuple[KeyPool, Any, str]:
        model_id, model_class = MODELS[spec.name]
        keys = [fake_key(spec.name)]
        limits = {model_id: {"tpm": tpm}}
        state: PoolState
        if self.kind == "redis":
            self.shared.append(RedisStates(spec, model_id))
            state = self.shared[-1](keys, None, limits)
        else:
            state = LocalPoolState.build(spec, keys, model_id, limits)
        pool = KeyPool(spec, keys, state, self.usage)
        clients = ClientCache(keys, model_class)
        self.made.append((pool, clients))
        model = build_model(pool, clients, model_id, CallOptions(),
                            {**spec.sdk_options(self.standin.url), **model_kwargs})
        return pool, model, keys[0]

    def close(self) -> None:
        for pool, clients in self.made:
            clients.close()
            pool.close()
        for shared in self.shared:
            shared.close()


@pytest.fixture(params=["local", pytest.param("redis", marks=needs_redis)])
def pools(request: pytest.FixtureRequest, standin: StandIn) -> Iterator[Pools]:
    made = Pools(request.param, standin)
    yield made
    made.close()


def ask(model: Any) -> Any:
    return model.response(messages=[Message(role="user", content="hi")])


def tokens_left(pool: KeyPool, most: int = TPM) -> int:
    """The most tokens the pool's one key would reserve now (each probe's lease released unused)."""
    model_id = MODELS[pool.provider][0]
    low, high = 0, most  # low fits; the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        got = pool.state.try_acquire(model_id, middle)
        if isinstance(got, Lease):
            pool.state.settle(got, None)
            low = middle
        else:
            high = middle - 1
    return low


@contextlib.contextmanager
def held_call(standin: StandIn, model: Any, calls: int = 1) -> Iterator[list[Any]]:
    """`calls` calls of `model` in threads, their replies held at the stand-in until the block ends
    (the first is at the stand-in when the block starts); the responses land in the list given."""
    gate, arrived = threading.Event(), threading.Event()

    def reply(text: str) -> str:
        arrived.set()
        return "ok" if gate.wait(60) else "released late"

    standin.reply = reply
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(ask(model))) for _ in range(calls)]
    for thread in threads:
        thread.start()
    try:
        assert arrived.wait(30), "the call never reached the stand-in"
        yield answers
    finally:
        gate.set()
        for thread in threads:
            thread.join(60)
    assert len(answers) == calls


@pytest.mark.parametrize("cap_name", ["max_completion_tokens", "max_tokens"])
def test_a_cerebras_call_reserves_its_max_tokens_and_settles_to_the_reported_usage(
        pools: Pools, standin: StandIn, cap_name: str) -> None:
    """Agno's Cerebras names the cap ``max_completion_tokens``; ``max_tokens``, the name the other
    providers' classes use, is taken as that name."""
    standin.set_token_limit(TPM)  # the stand-in counts as Cerebras does, and refuses what does not fit
    pool, model, key = pools(CEREBRAS, **{cap_name: CAP})
    assert ask(model).content  # the key's first call (a key not proven yet takes one call at a time)
    first = pools.usage.tokens[0]
    assert tokens_left(pool) == TPM - first

    with held_call(standin, model):
        reserved = TPM - first - tokens_left(pool)
        assert reserved >= CAP  # at least the cap, not estimated_tokens (1000)
        assert reserved == CAP

    second = pools.usage.tokens[1]
    assert 0 < second < CAP  # what the stand-in reported, not the reservation
    assert tokens_left(pool) == TPM - first - second
    assert standin.tokens_held(key) == first + second  # the stand-in counted the same usage
    assert standin.count(429) == 0


def test_a_provider_that_does_not_count_max_tokens_up_front_reserves_estimated_tokens(
        pools: Pools, standin: StandIn) -> None:
    assert not GROQ.counts_max_tokens_up_front
    pool, model, _ = pools(GROQ, max_tokens=CAP)
    assert ask(model).content
    first = pools.usage.tokens[0]
    with held_call(standin, model):
        assert TPM - first - tokens_left(pool) == CallOptions().estimated_tokens
    assert tokens_left(pool) == TPM - first - pools.usage.tokens[1]


def test_a_cap_in_request_params_counts_too(pools: Pools, standin: StandIn) -> None:
    """Agno sends a model's ``request_params`` with every request, so a cap there is the request's
    (shown on Groq's model as a provider that would count caps up front; Agno's Cerebras class
    cannot send ``request_params`` at all: it passes the dict itself to the SDK, which refuses it)."""
    counting = dataclasses.replace(GROQ, counts_max_tokens_up_front=True)
    pool, model, _ = pools(counting, request_params={"max_tokens": CAP})
    assert ask(model).content
    first = pools.usage.tokens[0]
    with held_call(standin, model):
        assert TPM - first - tokens_left(pool) == CAP
    assert tokens_left(pool) == TPM - first - pools.usage.tokens[1]


def test_a_cap_below_the_estimate_reserves_the_estimate(pools: Pools, standin: StandIn) -> None:
    pool, model, _ = pools(CEREBRAS, max_completion_tokens=10)
    assert ask(model).content
    first = pools.usage.tokens[0]
    with held_call(standin, model):
        assert TPM - first - tokens_left(pool) == CallOptions().estimated_tokens


def test_a_second_cerebras_call_waits_for_tokens_rather_than_meeting_cerebras_refusal(
        pools: Pools, standin: StandIn) -> None:
    """One key with 3000 tokens a minute and calls capped at 2000: the pool holds the second call
    until the first has settled, where reserving `estimated_tokens` (1000 each) would send both
    and have the stand-in, counting as Cerebras does, refuse the second."""
    standin.set_token_limit(3000)
    _, model, _ = pools(CEREBRAS, tpm=3000, max_completion_tokens=CAP)
    assert ask(model).content
    with held_call(standin, model, calls=2):
        time.sleep(0.3)  # room for the second call to reach the stand-in, were it sent
        assert standin.stats()["in_flight"] == 1  # the held call; the third waits in the pool
    assert standin.count(429) == 0 and standin.accepted == 3


def test_the_standin_refuses_a_cerebras_cap_above_the_tokens_left_as_cerebras_does(standin: StandIn) -> None:
    standin.set_token_limit(100)
    key = fake_key("cerebras")
    client = CerebrasClient(api_key=key, base_url=standin.url, max_retries=0)
    user: Any = [{"role": "user", "content": "hello there"}]  # 2 tokens, as the stand-in counts
    with pytest.raises(CerebrasStatusError) as refused:
        client.chat.completions.create(model="llama3.1-8b", messages=user, max_completion_tokens=99)
    assert refused.value.status_code == 429
    assert refused.value.response.content == RECORDED["cerebras.per_minute_tokens"].render().body
    assert json.loads(refused.value.response.content)["code"] == "token_quota_exceeded"  # the plugin's token limit
    assert standin.tokens_held(key) == 0  # a refused request counts nothing

    answer: Any = client.chat.completions.create(model="llama3.1-8b", messages=user, max_tokens=98)
    assert standin.tokens_held(key) == answer.usage.total_tokens  # settled to its usage once answered
    assert client.chat.completions.create(model="llama3.1-8b", messages=user, max_completion_tokens=90)
    assert standin.count(429) == 1

    with pytest.raises(CerebrasStatusError):  # more than is left now
        client.chat.completions.create(model="llama3.1-8b", messages=user, max_completion_tokens=90)


def test_the_standin_counts_tokens_only_on_cerebras_route(standin: StandIn) -> None:
    standin.set_token_limit(10)
    key = fake_key("groq")
    client = groq.Groq(api_key=key, base_url=standin.url, max_retries=0)
    user: Any = [{"role": "user", "content": "hello there"}]
    assert client.chat.completions.create(model="openai/gpt-oss-20b", messages=user, max_tokens=500)
    assert standin.tokens_held(key) == 0
