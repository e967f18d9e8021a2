"""Hardening, second round: the call path (issue 21, findings 7, 10 and 11).

A plugin's error rules run off the caller's thread, within the call's budget, and a verdict the
core cannot act on is the plugin's failure; a closed event loop's SDK clients are closed on
that loop, not on the next one; a wait a provider names is capped at a day and two hours.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from agno.exceptions import ModelProviderError
from agno.models.groq import Groq
from agno.models.message import Message
from conftest import Heartbeat, fake_key, provider_env

from hfs_core import NoAvailableKeyError
from hfs_core.call import ClientCache, build_model
from hfs_core.plugin import Action, ErrorRules, ProviderReply, ProviderSpec, Verdict
from hfs_core.pool import CallOptions, KeyPool, LocalPoolState
from hfs_core.testing.standin import StandIn

Record = Callable[[str, object], None]
MODEL = "openai/gpt-oss-20b"
SPEC: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC
HI = [Message(role="user", content="hi")]
LONGEST = 26 * 3600.0  # a day and two hours: the longest wait a provider may name


class Cooldowns:
    """A `UsageRecorder` that keeps the cooldowns it is asked to remember."""

    def __init__(self) -> None:
        self.until: list[float] = []

    def record(self, provider: str, model: str, suffix: str, tokens: int) -> None:
        """Rows are not looked at here."""

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        self.until.append(until)


@pytest.fixture
def with_rules(standin: StandIn) -> Iterator[Callable[..., tuple[KeyPool, Any]]]:
    """Builds a rotating Groq model on `keys` fresh keys whose provider states `rules`."""
    made: list[tuple[KeyPool, ClientCache]] = []

    def build(rules: ErrorRules, keys: int = 2, **options: Any) -> tuple[KeyPool, Any]:
        spec = dataclasses.replace(SPEC, error_rules=rules)
        secrets = [fake_key("groq") for _ in range(keys)]
        pool = KeyPool(spec, secrets, LocalPoolState.build(spec, secrets, MODEL), Cooldowns())
        clients = ClientCache(secrets, Groq)
        made.append((pool, clients))
        return pool, build_model(pool, clients, MODEL, CallOptions(**options), spec.sdk_options(standin.url))

    yield build
    for pool, clients in made:
        clients.close()
        pool.close()


def rule_messages(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "hfs_core.pool" and r.levelno == level and "error_rules" in r.getMessage()]


# -- 7: a plugin's error rules run off the caller's thread, within the budget --------------------------


def test_a_slow_rule_does_not_hold_the_call_past_its_budget(with_rules: Any, standin: StandIn,
                                                           caplog: pytest.LogCaptureFixture,
                                                           record_property: Record) -> None:
    def slow(reply: ProviderReply) -> Verdict | None:
        time.sleep(3.0)
        return Verdict(Action.RETIRE_KEY, reason="a verdict that comes too late")

    pool, model = with_rules(slow, timeout=1.0)
    standin.fail_next(1, status=503, message="overloaded")
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"), pytest.raises(ModelProviderError) as caught:
        model.response(messages=HI)
    took = time.monotonic() - started
    record_property("seconds_with_a_3s_rule_and_a_1s_budget", round(took, 2))
    assert took < 2.0, f"a 3 s rule held a call with timeout=1 for {took:.1f}s"
    assert caught.value.status_code == 503  # the budget's error: the attempt's own
    assert pool.status().dead == 0, "the late verdict was acted on"
    assert any("gave no verdict within" in m for m in rule_messages(caplog))


def test_a_rule_never_runs_on_the_event_loop(with_rules: Any, standin: StandIn) -> None:
    threads: list[int] = []

    def slow(reply: ProviderReply) -> Verdict | None:
        threads.append(threading.get_ident())
        time.sleep(0.6)
        return None

    _, model = with_rules(slow, timeout=10.0)
    standin.fail_next(1, status=503, message="overloaded")

    async def main() -> tuple[Any, Heartbeat, int]:
        async with Heartbeat(interval=0.02) as beat:
            answer = await model.aresponse(messages=HI)
        return answer, beat, threading.get_ident()

    answer, beat, loop_thread = asyncio.run(main())
    assert answer.content == "stand-in reply: hi" and standin.count(503) == 1
    assert threads and loop_thread not in threads, "the rule ran on the event loop's thread"
    assert beat.worst_gap < 0.45, f"the event loop stalled {beat.worst_gap:.2f}s while a 0.6 s rule ran"


@pytest.mark.parametrize("verdict", [
    Verdict(Action.COOL_KEY, seconds="5"),  # type: ignore[arg-type]
    Verdict(Action.COOL_KEY, seconds=math.nan),
    Verdict(Action.COOL_KEY, seconds=-3.0),
    Verdict("cool", seconds=5.0),  # type: ignore[arg-type]
    Verdict(Action.COOL_KEY, window="week"),  # type: ignore[arg-type]
    Verdict(Action.COOL_KEY, counts=3),  # type: ignore[arg-type]
], ids=["seconds-str", "seconds-nan", "seconds-negative", "action-str", "window", "counts"])
def test_a_bad_verdict_is_the_plugins_failure_logged_once(verdict: Verdict, with_rules: Any, standin: StandIn,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    _, model = with_rules(lambda reply: verdict, keys=3, timeout=10.0)
    standin.fail_next(2, status=429, message="Rate limit reached", retry_after=30.0)
    with caplog.at_level(logging.DEBUG, logger="hfs_core.pool"):
        for _ in range(2):
            assert model.response(messages=HI).content == "stand-in reply: hi"
    assert standin.count(429) == 2
    warnings = rule_messages(caplog)
    assert len(warnings) == 1 and "returned" in warnings[0] and "defaults apply" in warnings[0], warnings
    assert len(rule_messages(caplog, logging.DEBUG)) == 1  # the second time: DEBUG only


# -- 10: asyncio.run() per call ------------------------------------------------------------------------

LOOPS = """
import asyncio, sys
from agno.models.message import Message
from hfs_core import Registry

registry = Registry()
model = registry.get_model("groq", base_url=sys.argv[1])
hi = [Message(role="user", content="hi")]
for _ in range(10):
    assert asyncio.run(model.aresponse(messages=hi)).content == "stand-in reply: hi"
for _ in range(10):  # loops closed without shutdown_asyncgens, as older code does
    loop = asyncio.new_event_loop()
    assert loop.run_until_complete(model.aresponse(messages=hi)).content == "stand-in reply: hi"
    loop.close()
assert asyncio.run(model.aresponse(messages=hi)).content == "stand-in reply: hi"
registry.shutdown()
print("done")
"""


def test_a_loop_per_call_leaves_no_task_errors(isolated: Path, standin: StandIn, record_property: Record) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "HFS_", "TIDB_")) and "_API_KEY" not in k}
    env.update(provider_env({"groq": 2}))
    done = subprocess.run([sys.executable, "-c", LOOPS, standin.url], cwd=isolated, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr
    record_property("tracebacks_for_21_calls", done.stderr.count("Traceback"))
    assert "never retrieved" not in done.stderr and "Event loop is closed" not in done.stderr, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


# -- 11: a wait a provider names is capped ---------------------------------------------------------------


class Refusing(BaseHTTPRequestHandler):
    """Answers every request 429 with the headers and body its server holds."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server: Any = self.server
        body = json.dumps(server.body).encode()
        self.send_response(429)
        for name, value in server.extra.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def refusing() -> Iterator[Callable[[dict[str, str], dict[str, Any]], str]]:
    """Starts a server on 127.0.0.1 that answers 429 with the given headers and body; its URL."""
    servers: list[ThreadingHTTPServer] = []

    def start(headers: dict[str, str], body: dict[str, Any]) -> str:
        server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
        server.extra, server.body = headers, body
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


RATE_LIMITED = {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}


@pytest.mark.parametrize("value", ["1000000000", "inf", "1e400"])
def test_a_retry_after_past_any_window_is_capped(value: str, make_registry: Any, refusing: Any,
                                                caplog: pytest.LogCaptureFixture) -> None:
    url = refusing({"Retry-After": value}, RATE_LIMITED)
    registry = make_registry(env=provider_env({"groq": 1}))
    model = registry.get_model("groq", base_url=url, timeout=1.0)
    with caplog.at_level(logging.INFO, logger="hfs_core.pool"), pytest.raises(NoAvailableKeyError) as caught:
        model.response(messages=HI)
    assert caught.value.next_free_in is not None and LONGEST - 60 < caught.value.next_free_in <= LONGEST, \
        caught.value.next_free_in
    assert any("capped at 93600s" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_a_reset_header_past_any_window_is_capped(make_registry: Any, refusing: Any, sqlite_url: str) -> None:
    body = {"message": "Requests per day limit exceeded - too many requests sent.", "type": "too_many_requests_error",
            "param": "quota", "code": "request_quota_exceeded"}
    url = refusing({"x-ratelimit-reset-requests-day": "31536000000"}, body)  # a thousand years
    registry = make_registry(env=provider_env({"cerebras": 1}, db_url=sqlite_url))
    model = registry.get_model("cerebras", base_url=url, timeout=1.0)
    with pytest.raises(NoAvailableKeyError) as caught:
        model.response(messages=HI)
    assert caught.value.next_free_in is not None and caught.value.next_free_in <= LONGEST


def test_a_plugins_endless_cooldown_is_capped_and_remembered_capped(with_rules: Any, standin: StandIn) -> None:
    pool, model = with_rules(lambda reply: Verdict(Action.COOL_KEY, math.inf, "day", reason="quota"), keys=1,
                             timeout=1.0)
    standin.fail_next(1, status=429, message="Rate limit reached")
    with pytest.raises(NoAvailableKeyError) as caught:
        model.response(messages=HI)
    assert caught.value.next_free_in is not None and caught.value.next_free_in <= LONGEST
    [until] = pool.usage.until
    assert until <= time.time() + LONGEST
