"""The call's budget and each attempt's time on the wire (hardening findings 9 and 11).

`timeout` bounds a call's waiting and, since no new attempt starts once it is spent, the call;
`connect_timeout` and `read_timeout` bound one attempt on the wire, the read timeout being
the longest silence between two pieces of the answer, so a long answer that keeps coming is
never cut while a hung upstream is given up on.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import Heartbeat, provider_env

from hfs_core import ConfigError, NoAvailableKeyError, Registry
from hfs_core.testing.standin import StandIn

Record = Callable[[str, object], None]
HI = [Message(role="user", content="hi")]


PAST_THE_DEFAULT = 10.5
"""A Retry-After just past the default 10 s budget: a call with the default refuses at once."""


def one_key_cooling(make_registry: Any, standin: StandIn, retry_after: float = 1.0, **kwargs: Any) -> Any:
    """A one-key groq model whose key answers its first call 429 with Retry-After: `retry_after`."""
    standin.fail_next(1, status=429, message="Rate limit reached", retry_after=retry_after)
    return make_registry(env=provider_env({"groq": 1})).get_model("groq", base_url=standin.url, **kwargs)


# -- 9: inf waits without limit; nan and negatives are rejected ----------------------------------------


def test_timeout_inf_waits_past_the_default_budget_sync(make_registry: Any, standin: StandIn,
                                                        record_property: Record) -> None:
    standin.fail_next(1, status=429, message="Rate limit reached", retry_after=PAST_THE_DEFAULT)
    registry = make_registry(env=provider_env({"groq": 1}))
    with pytest.raises(NoAvailableKeyError, match="a 10s wait budget"):  # what the default budget does here
        registry.get_model("groq", base_url=standin.url).response(messages=HI)
    model = registry.get_model("groq", base_url=standin.url, timeout=math.inf)
    started = time.monotonic()
    assert model.response(messages=HI).content == "stand-in reply: hi"
    waited = time.monotonic() - started
    record_property("waited_seconds", round(waited, 2))
    assert standin.count(429) == 1 and waited > 9, f"waited {waited:.1f}s for a key cooling 10.5s"


@pytest.mark.slow
async def test_timeout_inf_waits_past_the_default_budget_async(make_registry: Any, standin: StandIn) -> None:
    model = one_key_cooling(make_registry, standin, PAST_THE_DEFAULT, timeout=float("inf"))
    started = time.monotonic()
    answer = await model.aresponse(messages=HI)
    waited = time.monotonic() - started
    assert answer.content == "stand-in reply: hi" and standin.count(429) == 1 and waited > 9, waited


@pytest.mark.parametrize("value", [float("nan"), -1, "10", None])
def test_bad_timeouts_are_rejected_naming_the_argument(value: Any, make_registry: Any) -> None:
    registry = make_registry(env=provider_env({"groq": 1}))
    with pytest.raises(TypeError, match=r"get_model\('groq'\): timeout must be a number of seconds"):
        registry.get_model("groq", timeout=value)


def run_ask(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    full.update(env)
    return subprocess.run([sys.executable, "-m", "hfs_core.cli", "ask", *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("value", ["nan", "-1"])
def test_ask_rejects_a_bad_timeout(value: str, isolated: Path) -> None:
    done = run_ask(isolated, provider_env({"groq": 1}), "--timeout", value, "hi")
    assert done.returncode == 2 and "--timeout" in done.stderr and "0 or more seconds" in done.stderr


@pytest.mark.slow
def test_ask_takes_timeout_inf(isolated: Path, standin: StandIn) -> None:
    done = run_ask(isolated, provider_env({"groq": 1}), "--timeout", "inf", "--base-url", standin.url,
                   "-p", "groq", "hi")
    assert done.returncode == 0, done.stderr
    assert "stand-in reply: hi" in done.stdout


# -- 11: a hung upstream costs one idle timeout, a long answer is never cut ---------------------------------


def test_a_hung_upstream_is_given_up_after_the_read_timeout(make_registry: Any, standin: StandIn,
                                                            record_property: Record) -> None:
    standin.latency = 20.0  # accepts the request and says nothing for 20 s
    registry = make_registry(env=provider_env({"groq": 2}))
    model = registry.get_model("groq", base_url=standin.url, timeout=1.0, read_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(Exception, match=r"(?i)timed out"):
        model.response(messages=HI)
    took = time.monotonic() - started
    record_property("seconds_on_a_hung_upstream", round(took, 2))
    assert took < 10, f"a hung upstream held the call {took:.1f}s (budget 1 s, read timeout 1 s)"


def test_a_long_answer_that_keeps_coming_is_not_cut(make_registry: Any, standin: StandIn,
                                                    record_property: Record) -> None:
    standin.configure(chunk_delay=0.6)  # each piece 0.6 s after the last: ~3 s in all, over the 1 s read timeout
    model = make_registry(env=provider_env({"groq": 1})).get_model("groq", base_url=standin.url, read_timeout=1.0)
    started = time.monotonic()
    text = "".join(getattr(c, "content", None) or "" for c in model.response_stream(messages=HI))
    took = time.monotonic() - started
    record_property("stream_seconds", round(took, 2))
    assert text == "stand-in reply: hi" and took > 1.0


def test_timeouts_reach_the_sdk_client(make_registry: Any, standin: StandIn, isolated: Path) -> None:
    (isolated / "hfs.toml").write_text("[providers.groq]\nconnect_timeout = 2\nread_timeout = 7.5\n")
    model = make_registry(env=provider_env({"groq": 1})).get_model("groq", base_url=standin.url)
    assert model.response(messages=HI).content == "stand-in reply: hi"
    client = model.clients.get(0, model, False, model._hfs_signature)
    assert client.timeout.connect == 2.0 and client.timeout.read == 7.5
    gemini = make_registry(env=provider_env({"gemini": 1})).get_model("gemini", base_url=standin.url, read_timeout=4)
    assert gemini.client_params["http_options"]["timeout"] == 4000


@pytest.mark.parametrize("toml", ["read_timeout = 0", "connect_timeout = -1", 'read_timeout = "30"',
                                  "read_timeout = inf"])
def test_bad_timeout_settings_name_the_file(toml: str, isolated: Path) -> None:
    (isolated / "hfs.toml").write_text(f"[providers.groq]\n{toml}\n")
    with pytest.raises(ConfigError, match=r"hfs\.toml: \[providers\.groq\] \w+_timeout must be a number of seconds"):
        Registry(env=provider_env({"groq": 1}))


def test_the_async_loop_is_not_blocked_while_waiting_with_inf(make_registry: Any, standin: StandIn) -> None:
    model = one_key_cooling(make_registry, standin, timeout=math.inf)

    async def main() -> int:
        async with Heartbeat(interval=0.05) as beat:
            await model.aresponse(messages=HI)
        return beat.ticks

    assert asyncio.run(main()) >= 5  # the loop kept running during the ~1 s wait
