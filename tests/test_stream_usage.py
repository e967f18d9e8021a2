"""Streamed usage as each provider sends it: on the wire (the real SDKs against the stand-in) and in
the usage row of a streamed call through the registry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import groq
import openai
import pytest
from agno.models.message import Message
from cerebras.cloud.sdk import Cerebras
from conftest import PROVIDERS, fake_key, provider_env
from google import genai

from hfs_core import Registry
from hfs_core.testing.standin import StandIn

PROMPT = "count the words of this prompt please"
REPLY = " ".join(f"word{i}" for i in range(40))
TOTAL = len(PROMPT.split()) + len(REPLY.split())
"""What the stand-in reports for one call: the prompt's words plus the reply's."""
USER: Any = [{"role": "user", "content": PROMPT}]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn(reply=REPLY) as server:
        yield server


def test_groq_sends_usage_in_x_groq_on_the_last_chunk(standin: StandIn) -> None:
    client = groq.Groq(api_key=fake_key("groq"), base_url=standin.url, max_retries=0)
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    *rest, last = chunks
    assert last.choices[0].finish_reason == "stop"
    assert last.x_groq is not None and last.x_groq.usage is not None
    assert last.x_groq.usage.total_tokens == TOTAL
    assert all(c.x_groq is None or c.x_groq.usage is None for c in rest)


def test_cerebras_sends_usage_on_the_last_chunk_unasked(standin: StandIn) -> None:
    client = Cerebras(api_key=fake_key("cerebras"), base_url=standin.url, max_retries=0)
    chunks: list[Any] = list(client.chat.completions.create(model="llama3.1-8b", messages=USER, stream=True))
    *rest, last = chunks
    assert last.choices[0].finish_reason == "stop"
    assert last.usage is not None and last.usage.total_tokens == TOTAL
    assert last.time_info is not None
    assert all(c.usage is None for c in rest)


def test_openrouter_sends_usage_after_the_finish_chunk_unasked(standin: StandIn) -> None:
    client = openai.OpenAI(api_key=fake_key("openrouter"), base_url=standin.url, max_retries=0)
    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    *rest, finish, last = chunks
    assert finish.choices[0].finish_reason == "stop" and finish.usage is None
    assert last.choices[0].finish_reason is None and not last.choices[0].delta.content
    assert last.usage is not None and last.usage.total_tokens == TOTAL
    assert all(c.usage is None for c in rest)


def test_openai_sends_usage_only_when_asked(standin: StandIn) -> None:
    client = openai.OpenAI(api_key=fake_key("openai"), base_url=standin.url, max_retries=0)
    plain = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert all(c.usage is None for c in plain)
    asked = list(client.chat.completions.create(model="m", messages=USER, stream=True,
                                                stream_options={"include_usage": True}))
    assert asked[-1].choices == [] and asked[-1].usage is not None and asked[-1].usage.total_tokens == TOTAL
    assert all(c.usage is None for c in asked[:-1])


def test_gemini_sends_running_usage_metadata_on_every_chunk(standin: StandIn) -> None:
    client = genai.Client(api_key=fake_key("gemini"), http_options={"base_url": standin.url})
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))
    assert len(chunks) > 1
    usages = [c.usage_metadata for c in chunks]
    assert all(u is not None and u.prompt_token_count == len(PROMPT.split()) for u in usages)
    answered = [u.candidates_token_count or 0 for u in usages if u is not None]
    assert answered == sorted(answered) and answered[0] < answered[-1]
    assert usages[-1] is not None and usages[-1].total_token_count == TOTAL


def usage_tokens(url: str) -> list[int]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        return [row[0] for row in db.execute("SELECT tokens FROM usage_logs ORDER BY id")]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_streamed_call_records_the_providers_tokens(provider: str, standin: StandIn, sqlite_url: str) -> None:
    registry = Registry(env=provider_env(1, db_url=sqlite_url))
    try:
        model = registry.get_model(provider, base_url=standin.url)
        chunks = list(model.response_stream(messages=[Message(role="user", content=PROMPT)]))
        assert "".join(getattr(c, "content", None) or "" for c in chunks) == REPLY
    finally:
        registry.shutdown()
    assert usage_tokens(sqlite_url) == [TOTAL]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_async_streamed_call_records_the_providers_tokens(
    provider: str, standin: StandIn, sqlite_url: str
) -> None:
    registry = Registry(env=provider_env(1, db_url=sqlite_url))
    try:
        model = registry.get_model(provider, base_url=standin.url)
        text = "".join([getattr(c, "content", None) or ""
                        async for c in model.aresponse_stream(messages=[Message(role="user", content=PROMPT)])])
        assert text == REPLY
    finally:
        registry.shutdown()
    assert usage_tokens(sqlite_url) == [TOTAL]
