"""What the core hands each provider's SDK, and what it makes of an SDK that refuses it.

Each SDK sits on the HTTP library of its own choosing (the openai SDK moved to httpx2, groq and
cerebras stay on httpx), so each plugin passes its timeouts as its own SDK's ``Timeout``; the
connect and idle-read timeouts are then honoured on the wire, for every plugin. An error raised
before any request left (the SDK refusing an option, say) is the caller's: it is raised at once,
as it was raised, and no key is cooled, retired or counted (issue 19).
"""

from __future__ import annotations

import importlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import PROVIDERS, provider_env

from hfs_core import NoAvailableKeyError, Timeouts
from hfs_core.testing.standin import StandIn

HI = [Message(role="user", content="hi")]
SDK_OF = {"groq": "groq", "cerebras": "cerebras.cloud.sdk", "openrouter": "openai"}
"""The top-level module of each OpenAI-shaped plugin's SDK."""


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A base URL on 127.0.0.1 whose connections never complete: a listener with a backlog of
    one, filled by a connection it never accepts, so that the kernel drops every later SYN."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        filler.close()
        server.close()


@pytest.mark.parametrize("provider", sorted(SDK_OF))
def test_each_openai_shaped_plugin_passes_its_own_sdks_timeout(provider: str, make_registry: Any,
                                                                standin: StandIn, isolated: Path) -> None:
    (isolated / "hfs.toml").write_text(f"[providers.{provider}]\nconnect_timeout = 2\nread_timeout = 7.5\n")
    model = make_registry(env=provider_env({provider: 1})).get_model(provider, base_url=standin.url)
    assert type(model.timeout) is importlib.import_module(SDK_OF[provider]).Timeout
    assert model.response(messages=HI).content == "stand-in reply: hi"
    client = model.get_client()
    assert (client.timeout.connect, client.timeout.read) == (2.0, 7.5)


def test_the_default_sdk_options_build_the_openai_sdks_timeout() -> None:
    from hfs_core import openai_style_options

    options = openai_style_options("http://127.0.0.1:1", Timeouts(connect=1.5, read=9.0))
    timeout = options["timeout"]
    assert type(timeout) is importlib.import_module("openai").Timeout
    assert (timeout.connect, timeout.read, options["max_retries"]) == (1.5, 9.0, 0)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_connection_that_never_opens_is_given_up_after_the_connect_timeout(provider: str, make_registry: Any,
                                                                             black_hole: str) -> None:
    # google-genai takes one timeout for connecting and reading: its plugin gives it the read timeout.
    connect, read = (0.5, 30.0) if provider != "gemini" else (30.0, 0.5)
    model = make_registry(env=provider_env({provider: 2})).get_model(
        provider, base_url=black_hole, timeout=0.5, connect_timeout=connect, read_timeout=read)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out|timeout"):
        model.response(messages=HI)
    took = time.monotonic() - started
    assert took < 5, f"{provider}: a connection that never opened held the call {took:.1f}s (timeout 0.5 s)"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_silent_upstream_is_given_up_after_the_read_timeout(provider: str, make_registry: Any,
                                                              standin: StandIn) -> None:
    standin.latency = 20.0  # accepts the request and says nothing for 20 s
    model = make_registry(env=provider_env({provider: 2})).get_model(
        provider, base_url=standin.url, timeout=0.5, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed? ?out|timeout"):
        model.response(messages=HI)
    took = time.monotonic() - started
    assert standin.total >= 1, "the request never reached the stand-in"
    assert took < 10, f"{provider}: a silent upstream held the call {took:.1f}s (read timeout 1 s)"


# -- an SDK that refuses its options: the caller's error, no key touched -----------------------------------

REFUSED = {"client_params": {"no_such_option": 1}}
"""An option every SDK client refuses when it is built ("unexpected keyword argument")."""


@pytest.mark.parametrize("provider", ["groq", "openrouter"])
@pytest.mark.parametrize("stream", [False, True])
def test_an_sdk_that_refuses_its_options_leaves_every_key_untouched(provider: str, stream: bool, make_registry: Any,
                                                                    standin: StandIn, isolated: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    model_id = "hfs-test-model"
    (isolated / "hfs.toml").write_text(f'[providers.{provider}.models."{model_id}"]\nrpm = 1\n')
    registry = make_registry(env=provider_env({provider: 1}))
    broken = registry.get_model(provider, model_id, base_url=standin.url, wait=False, **REFUSED)
    with caplog.at_level(logging.INFO, logger="hfs_core"), pytest.raises(TypeError, match="no_such_option") as raised:
        if stream:
            list(broken.response_stream(messages=HI))
        else:
            broken.response(messages=HI)
    assert "ModelProviderError" not in repr(raised.value), "the caller gets the SDK's own error, not Agno's wrapper"
    status = broken.pool.status()
    assert (status.dead, status.cooling, status.in_flight) == (0, 0, 0)
    assert standin.total == 0 and not [r for r in caplog.records if r.name.startswith("hfs_core.pool")]

    # The one request a minute the key has was not spent on the refused call: it serves now, then refuses.
    working = registry.get_model(provider, model_id, base_url=standin.url, wait=False)
    assert working.response(messages=HI).content == "stand-in reply: hi"
    with pytest.raises(NoAvailableKeyError):
        working.response(messages=HI)


async def test_an_async_call_refused_by_the_sdk_raises_at_once(make_registry: Any, standin: StandIn) -> None:
    model = make_registry(env=provider_env({"groq": 2})).get_model("groq", base_url=standin.url, **REFUSED)
    with pytest.raises(TypeError, match="no_such_option"):
        await model.aresponse(messages=HI)
    status = model.pool.status()
    assert (status.dead, status.cooling, status.in_flight, standin.total) == (0, 0, 0, 0)


def test_a_timeout_of_another_http_library_is_the_callers_error(make_registry: Any, standin: StandIn) -> None:
    # The groq SDK (on httpx) given the openai SDK's Timeout (httpx2) fails as it sends, and wraps
    # that TypeError in its APIConnectionError: a programming error, not a connection that failed.
    foreign = importlib.import_module("openai").Timeout(5.0)
    model = make_registry(env=provider_env({"groq": 2})).get_model(
        "groq", base_url=standin.url, client_params={"timeout": foreign})
    with pytest.raises(TypeError):
        model.response(messages=HI)
    status = model.pool.status()
    assert (status.dead, status.cooling, status.in_flight, standin.total) == (0, 0, 0, 0)
