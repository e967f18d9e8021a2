"""Tests for the provider stand-in server, driven through the real provider SDKs."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import groq
import httpx
import openai
import pytest
from cerebras.cloud.sdk import APIStatusError as CerebrasStatusError
from cerebras.cloud.sdk import Cerebras
from google import genai
from google.genai import errors as genai_errors

from hfs_core.testing.standin import StandIn, key_label

ALPHABET = string.ascii_letters + string.digits
USER: Any = [{"role": "user", "content": "hello there"}]


def fake_key(prefix: str = "gsk_") -> str:
    """A realistic-length random fake API key."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(40))


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_agno_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGNO_TELEMETRY", "false")


def groq_client(s: StandIn, key: str) -> groq.Groq:
    return groq.Groq(api_key=key, base_url=s.url, max_retries=0)


def openai_client(s: StandIn, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=s.url, max_retries=0)


def cerebras_client(s: StandIn, key: str) -> Cerebras:
    return Cerebras(api_key=key, base_url=s.url, max_retries=0)


_GEMINI_CLIENTS: list[genai.Client] = []


def gemini_client(s: StandIn, key: str) -> genai.Client:
    # Keep a reference: a google-genai Client closes its HTTP client when garbage-collected, which
    # breaks ``gemini_client(...).models.generate_content(...)`` chains mid-call.
    client = genai.Client(api_key=key, http_options={"base_url": s.url, "retry_options": {"attempts": 1}})
    _GEMINI_CLIENTS.append(client)
    return client


@pytest.fixture(autouse=True)
def _drop_gemini_clients() -> Iterator[None]:
    yield
    _GEMINI_CLIENTS.clear()


# ---------------------------------------------------------------------- happy paths per SDK


def test_groq_plain_and_stream(standin: StandIn) -> None:
    client = groq_client(standin, fake_key())
    resp = client.chat.completions.create(model="openai/gpt-oss-120b", messages=USER)
    assert resp.choices[0].message.content == "stand-in reply: hello there"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "openai/gpt-oss-120b"
    assert (
        resp.usage is not None
        and resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    )

    chunks = list(client.chat.completions.create(model="m", messages=USER, stream=True))
    assert len(chunks) >= 4
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "stand-in reply: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].x_groq is not None and chunks[-1].x_groq.usage is not None
    assert standin.accepted == 2 and standin.stats()["streams"] == 1


def test_cerebras_plain_and_stream(standin: StandIn) -> None:
    client = cerebras_client(standin, fake_key("csk-"))
    resp: Any = client.chat.completions.create(model="llama3.1-8b", messages=USER)
    assert resp.choices[0].message.content == "stand-in reply: hello there"
    assert resp.usage.completion_tokens >= 1
    stream: Any = client.chat.completions.create(model="llama3.1-8b", messages=USER, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "stand-in reply: hello there"
    stats = standin.stats()
    assert stats["by_route"]["/v1/chat/completions"] == 2
    assert stats["warmups"] >= 1  # cerebras warms its TCP connection with GET /v1/tcp_warming
    assert stats["total"] == 2


def test_openai_plain_and_stream_with_usage(standin: StandIn) -> None:
    client = openai_client(standin, fake_key("sk-"))
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert resp.choices[0].message.content == "stand-in reply: hello there"
    assert resp.object == "chat.completion"
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        == "stand-in reply: hello there"
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert standin.stats()["by_route"] == {"/chat/completions": 2}


async def test_async_openai(standin: StandIn) -> None:
    async with openai.AsyncOpenAI(api_key=fake_key("sk-"), base_url=standin.url, max_retries=0) as client:
        resp = await client.chat.completions.create(model="m", messages=USER)
        assert resp.choices[0].message.content == "stand-in reply: hello there"
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
        assert "".join(parts) == "stand-in reply: hello there"


def test_gemini_plain_and_stream(standin: StandIn) -> None:
    client = gemini_client(standin, fake_key("AIza"))
    resp = client.models.generate_content(model="gemini-2.5-flash", contents="hello gemini")
    assert resp.text == "stand-in reply: hello gemini"
    assert resp.candidates and resp.candidates[0].finish_reason == genai.types.FinishReason.STOP
    assert resp.usage_metadata is not None and resp.usage_metadata.total_token_count == 6
    assert resp.model_version == "gemini-2.5-flash"

    pieces = list(
        client.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three four")
    )
    assert len(pieces) >= 3
    assert "".join(p.text or "" for p in pieces) == "stand-in reply: one two three four"
    assert pieces[-1].usage_metadata is not None and pieces[-1].usage_metadata.candidates_token_count == 6
    assert standin.accepted == 2


def test_reply_config_and_latency(standin: StandIn) -> None:
    client = openai_client(standin, fake_key("sk-"))
    standin.reply = "fixed answer"
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "fixed answer"
    )
    standin.reply = str.upper
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "HELLO THERE"
    )
    standin.reply = None
    standin.latency = 0.2
    started = time.monotonic()
    client.chat.completions.create(model="m", messages=USER)
    assert time.monotonic() - started >= 0.2


# ---------------------------------------------------------------------- Agno end to end


def test_agno_groq_agent(standin: StandIn) -> None:
    from agno.agent import Agent
    from agno.models.groq import Groq

    model = Groq(id="openai/gpt-oss-120b", api_key=fake_key(), base_url=standin.url, max_retries=0)
    out = Agent(model=model, telemetry=False).run("hi agno")
    assert out.content is not None and "stand-in reply: hi agno" in str(out.content)
    assert standin.accepted == 1


def test_agno_gemini_agent(standin: StandIn) -> None:
    from agno.agent import Agent
    from agno.models.google import Gemini

    model = Gemini(
        id="gemini-2.5-flash",
        api_key=fake_key("AIza"),
        client_params={"http_options": {"base_url": standin.url, "retry_options": {"attempts": 1}}},
    )
    out = Agent(model=model, telemetry=False).run("hi gemini")
    assert out.content is not None and "stand-in reply: hi gemini" in str(out.content)
    assert standin.accepted == 1


# ---------------------------------------------------------------------- key states and errors


@pytest.mark.parametrize("status", [401, 402, 403, 503])
def test_key_states_surface_as_status_errors(standin: StandIn, status: int) -> None:
    key = fake_key()
    standin.set_key(key, status)
    with pytest.raises(groq.APIStatusError) as groq_err:
        groq_client(standin, key).chat.completions.create(model="m", messages=USER)
    assert groq_err.value.status_code == status
    with pytest.raises(openai.APIStatusError) as openai_err:
        openai_client(standin, key).chat.completions.create(model="m", messages=USER)
    assert openai_err.value.status_code == status
    with pytest.raises(CerebrasStatusError) as cerebras_err:
        cerebras_client(standin, key).chat.completions.create(model="m", messages=USER)
    assert cerebras_err.value.status_code == status
    with pytest.raises(genai_errors.APIError) as gemini_err:
        gemini_client(standin, key).models.generate_content(model="gemini-2.5-flash", contents="x")
    assert gemini_err.value.code == status
    # Error bodies never carry the full key, at most its last 4 characters.
    for err in (groq_err.value, openai_err.value, cerebras_err.value):
        assert key not in err.response.text and key[:-4] not in err.response.text
    assert key not in str(gemini_err.value)
    assert standin.count(status) == 4
    assert standin.requests_for(key[-4:], status) == 4


def test_specific_exception_classes(standin: StandIn) -> None:
    key = fake_key()
    standin.set_key(key, 401)
    with pytest.raises(groq.AuthenticationError):
        groq_client(standin, key).chat.completions.create(model="m", messages=USER)
    standin.set_key(key, 429)
    with pytest.raises(groq.RateLimitError) as err:
        groq_client(standin, key).chat.completions.create(model="m", messages=USER)
    assert int(err.value.response.headers["retry-after"]) >= 1
    standin.set_key(key, 503)
    with pytest.raises(openai.InternalServerError):
        openai_client(standin, key).chat.completions.create(model="m", messages=USER)
    with pytest.raises(genai_errors.ServerError):
        gemini_client(standin, key).models.generate_content(model="gemini-2.5-flash", contents="x")
    standin.set_key(key, 200)
    assert groq_client(standin, key).chat.completions.create(model="m", messages=USER).choices


def test_known_keys_only() -> None:
    good, other = fake_key(), fake_key()
    with StandIn(accept_any_key=False, keys=[good]) as s:
        assert openai_client(s, good).chat.completions.create(model="m", messages=USER).choices
        with pytest.raises(openai.AuthenticationError) as err:
            openai_client(s, other).chat.completions.create(model="m", messages=USER)
        assert other not in err.value.response.text
        assert err.value.body is not None and err.value.code == "invalid_api_key"


def test_bad_json_and_unknown_path(standin: StandIn) -> None:
    headers = {"Authorization": f"Bearer {fake_key()}", "Content-Type": "application/json"}
    with httpx.Client(base_url=standin.url) as http:
        bad = http.post("/v1/chat/completions", content=b"{not json", headers=headers)
        assert bad.status_code == 400 and "error" in bad.json()
        missing = http.post("/v1/chat/completions", json={"model": "m"}, headers=headers)
        assert missing.status_code == 400
        # the connection survives errors (keep-alive) and still serves
        ok = http.post("/v1/chat/completions", json={"model": "m", "messages": USER}, headers=headers)
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]
        assert http.post("/nope", json={}).status_code == 404
        gem = http.post("/v1beta/models/g:generateContent?key=" + fake_key("AIza"), content=b"[")
        assert gem.status_code == 400 and gem.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert standin.count(400) == 3


# ---------------------------------------------------------------------- rate limits


def test_per_key_rate_limit_with_retry_after(standin: StandIn) -> None:
    standin.set_limit(2, window=1.0)
    key_a, key_b = fake_key(), fake_key()
    a = groq_client(standin, key_a)
    for _ in range(2):
        a.chat.completions.create(model="m", messages=USER)
    with pytest.raises(groq.RateLimitError) as err:
        a.chat.completions.create(model="m", messages=USER)
    headers = err.value.response.headers
    assert headers["retry-after"] == "1"
    assert 0 < int(headers["retry-after-ms"]) <= 1000
    body = err.value.response.json()["error"]
    assert body["code"] == "rate_limit_exceeded" and body["message"].startswith(
        "Rate limit reached for requests"
    )
    assert key_a not in err.value.response.text
    # the limit is per key: another key still works
    assert groq_client(standin, key_b).chat.completions.create(model="m", messages=USER).choices
    # the rejected request did not consume a slot; once the oldest leaves the window, key A works again
    time.sleep(int(headers["retry-after-ms"]) / 1000 + 0.05)
    assert a.chat.completions.create(model="m", messages=USER).choices
    assert standin.count(429) == 1 and standin.stats()["rate_limited"] == 1
    assert standin.requests_for(key_a) == 4 and standin.requests_for(key_b) == 1


def test_gemini_rate_limit_shape(standin: StandIn) -> None:
    standin.set_limit(1, window=5.0)
    client = gemini_client(standin, fake_key("AIza"))
    client.models.generate_content(model="gemini-2.5-flash", contents="x")
    with pytest.raises(genai_errors.ClientError) as err:
        client.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
    assert err.value.message == "Resource has been exhausted (e.g. check quota)."
    details = err.value.details["error"]["details"]
    assert details[0]["@type"].endswith("RetryInfo") and details[0]["retryDelay"].endswith("s")


def test_per_key_limit_override(standin: StandIn) -> None:
    slow, fast = fake_key(), fake_key()
    standin.set_limit(5, window=5.0)
    standin.set_key_limit(slow, 1)
    client_slow, client_fast = openai_client(standin, slow), openai_client(standin, fast)
    client_slow.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.RateLimitError):
        client_slow.chat.completions.create(model="m", messages=USER)
    for _ in range(5):
        client_fast.chat.completions.create(model="m", messages=USER)
    with pytest.raises(openai.RateLimitError):
        client_fast.chat.completions.create(model="m", messages=USER)


def test_stats_never_contain_full_key(standin: StandIn) -> None:
    keys = [fake_key() for _ in range(3)]
    standin.set_key(keys[2], 402)
    for key in keys:
        with contextlib.suppress(groq.APIStatusError):
            groq_client(standin, key).chat.completions.create(model="m", messages=USER)
    dumped = json.dumps(standin.stats())
    with httpx.Client() as http:
        dumped += http.get(standin.url + "/stats").text
    for key in keys:
        assert key not in dumped and key[:-4] not in dumped
        assert key_label(key) in standin.stats()["by_key"]
    assert standin.stats()["by_key"][keys[2][-4:]] == {"402": 1, "total": 1}


def test_request_log_lists_each_request_in_order_by_key_suffix(standin: StandIn) -> None:
    live, revoked = fake_key(), fake_key()
    standin.set_key(revoked, 401)
    for key in (live, revoked, live):
        with contextlib.suppress(groq.AuthenticationError):
            groq_client(standin, key).chat.completions.create(model="m", messages=USER)
    log = standin.request_log()
    assert [(r["key"], r["status"]) for r in log] == [(live[-4:], 200), (revoked[-4:], 401), (live[-4:], 200)]
    assert [r["t"] for r in log] == sorted(r["t"] for r in log) and log[0]["t"] >= 0
    with httpx.Client(base_url=standin.url) as http:
        assert http.get("/log", params={"since": 2}).json() == {"requests": log[2:]}
        assert live not in http.get("/log").text and revoked not in http.get("/log").text
    standin.reset_stats()
    assert standin.request_log() == []


# ---------------------------------------------------------------------- faults


def test_fail_next_and_fail_for(standin: StandIn) -> None:
    client = groq_client(standin, fake_key())
    standin.fail_next(2, status=503, message="overloaded", retry_after=2)
    for _ in range(2):
        with pytest.raises(groq.InternalServerError) as err:
            client.chat.completions.create(model="m", messages=USER)
        assert err.value.status_code == 503 and err.value.response.headers["retry-after"] == "2"
    assert client.chat.completions.create(model="m", messages=USER).choices
    standin.fail_for(0.3, status=500, message="boom")
    with pytest.raises(groq.InternalServerError) as err:
        client.chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == 500
    time.sleep(0.35)
    assert client.chat.completions.create(model="m", messages=USER).choices
    standin.fail_next(1, status=429)
    with pytest.raises(genai_errors.ClientError) as gerr:
        gemini_client(standin, fake_key("AIza")).models.generate_content(
            model="gemini-2.5-flash", contents="x"
        )
    assert gerr.value.code == 429


def test_stream_fail_after_error_event(standin: StandIn) -> None:
    standin.stream_fail_after(2)
    received: list[str] = []
    with pytest.raises(openai.APIError):
        stream = openai_client(standin, fake_key("sk-")).chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "one two three four five six"}],
            stream=True,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 2
    with pytest.raises(groq.APIError):
        list(groq_client(standin, fake_key()).chat.completions.create(model="m", messages=USER, stream=True))
    gemini_parts: list[str] = []
    with pytest.raises(genai_errors.ServerError):
        for piece in gemini_client(standin, fake_key("AIza")).models.generate_content_stream(
            model="gemini-2.5-flash", contents="one two three four five six"
        ):
            gemini_parts.append(piece.text or "")
    assert len(gemini_parts) == 2
    standin.stream_fail_after(None)
    assert (
        len(
            list(
                openai_client(standin, fake_key("sk-")).chat.completions.create(
                    model="m", messages=USER, stream=True
                )
            )
        )
        > 2
    )


def test_stream_fail_after_abort(standin: StandIn) -> None:
    standin.stream_fail_after(1, mode="abort", times=1)
    client = openai_client(standin, fake_key("sk-"))
    received: list[str] = []
    with pytest.raises((httpx.HTTPError, openai.APIError)):
        for chunk in client.chat.completions.create(model="m", messages=USER, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)
    assert len(received) == 1
    # times=1: the next stream is whole again
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="m", messages=USER, stream=True)
        if c.choices
    )
    assert text == "stand-in reply: hello there"


def test_reset_clears_everything(standin: StandIn) -> None:
    key = fake_key()
    standin.set_key(key, 401)
    standin.fail_next(5)
    standin.stream_fail_after(0)
    standin.reset()
    assert standin.stats()["total"] == 0
    assert groq_client(standin, key).chat.completions.create(model="m", messages=USER).choices
    assert standin.accepted == 1
    standin.reset_stats()
    assert standin.accepted == 0 and standin.stats()["by_key"] == {}


def test_control_endpoint(standin: StandIn) -> None:
    key = fake_key()
    with httpx.Client(base_url=standin.url) as http:
        r = http.post(
            "/control",
            json={"reply": "via control", "keys": [{"key": key, "status": 402}], "fail_next": {"n": 1}},
        )
        assert r.json() == {"ok": True}
        assert http.post("/control", content=b"[1]").status_code == 400
    client = openai_client(standin, fake_key("sk-"))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER)
    assert (
        client.chat.completions.create(model="m", messages=USER).choices[0].message.content == "via control"
    )
    with pytest.raises(openai.APIStatusError) as err:
        openai_client(standin, key).chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == 402
    with httpx.Client(base_url=standin.url) as http:
        http.post("/control", json={"reset": True, "limit": {"rpm": 0, "window": 1.0}})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="m", messages=USER)


# ---------------------------------------------------------------------- robustness


def test_two_hundred_concurrent_requests(capfd: pytest.CaptureFixture[str]) -> None:
    n = 200
    with StandIn(latency=0.3) as s:
        barrier = threading.Barrier(n)
        results: list[int] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        body = {"model": "m", "messages": USER}

        def worker() -> None:
            headers = {"Authorization": f"Bearer {fake_key()}"}
            try:
                # One client (so one connection) per thread: a single httpx pool shared by 200 threads
                # is the bottleneck, not the server. verify=False only skips building an SSL context.
                with httpx.Client(base_url=s.url, timeout=10, verify=False) as http:
                    barrier.wait(timeout=10)
                    status = http.post("/openai/v1/chat/completions", json=body, headers=headers).status_code
                with lock:
                    results.append(status)
            except BaseException as exc:  # pragma: no cover - reported below
                with lock:
                    errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(n)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=15)
        elapsed = time.monotonic() - started
        stats = s.stats()
    assert not errors, errors[:3]
    assert results == [200] * n
    assert stats["accepted"] == n and stats["max_in_flight"] >= n // 2
    assert elapsed < 3
    assert capfd.readouterr().err == ""


def test_client_disconnects_are_silent(capfd: pytest.CaptureFixture[str]) -> None:
    with StandIn(latency=0.1) as s:
        host, port = "127.0.0.1", s.port
        # a client that sends half a request and hangs up
        with socket.create_connection((host, port)) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{")
        # a client that hangs up before the (delayed) answer
        with socket.create_connection((host, port)) as sock:
            payload = json.dumps({"model": "m", "messages": USER}).encode()
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + fake_key().encode()
                + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
        # a streaming client that stops reading after the first chunk
        s.configure(chunk_delay=0.05)
        stream = openai_client(s, fake_key("sk-")).chat.completions.create(
            model="m", messages=USER, stream=True
        )
        next(iter(stream))
        stream.close()
        time.sleep(0.4)
        assert openai_client(s, fake_key("sk-")).chat.completions.create(model="m", messages=USER).choices
    assert capfd.readouterr().err == ""


def test_cli_subprocess(tmp_path: Path) -> None:
    stats_path = tmp_path / "stats.json"
    key = fake_key()
    cmd = [
        sys.executable,
        "-m",
        "hfs_core.testing.standin",
        "--port",
        "0",
        "--rpm",
        "30",
        "--window",
        "60",
        "--latency",
        "0.05",
        "--stats-on-exit",
        str(stats_path),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("STANDIN_URL=http://127.0.0.1:")
        url = line.removeprefix("STANDIN_URL=")
        resp = groq.Groq(api_key=key, base_url=url, max_retries=0).chat.completions.create(
            model="m",
            messages=USER,
        )
        assert resp.choices[0].message.content == "stand-in reply: hello there"
        assert httpx.get(url + "/stats").json()["accepted"] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert out == "" and "Traceback" not in err
    stats = json.loads(stats_path.read_text())
    assert stats["accepted"] == 1 and key not in stats_path.read_text()


def test_cli_known_keys_only() -> None:
    key = fake_key()
    proc = subprocess.Popen(
        [sys.executable, "-m", "hfs_core.testing.standin", "--key", key],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().removeprefix("STANDIN_URL=")
        assert (
            openai.OpenAI(api_key=key, base_url=url, max_retries=0)
            .chat.completions.create(
                model="m",
                messages=USER,
            )
            .choices
        )
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(api_key=fake_key(), base_url=url, max_retries=0).chat.completions.create(
                model="m",
                messages=USER,
            )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
