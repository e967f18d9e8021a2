"""Recorded provider failures replayed by the stand-in, read back through each provider's real SDK.

Every entry of ``RECORDED`` is driven through its provider's SDK (SDK retries off) and must raise the
exception class the SDK's own status mapping predicts, with the recorded status, body and headers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import cerebras.cloud.sdk as cerebras_sdk
import groq
import httpx
import openai
import pytest
from conftest import fake_key
from google import genai
from google.genai import errors as genai_errors

from hfs_core.testing.standin import RECORDED, Recorded, StandIn
from hfs_core.testing.standin.recorded import MARKERS, go_duration

USER: Any = [{"role": "user", "content": "hello there"}]
MODELS = {
    "groq": "llama-3.3-70b-versatile",
    "cerebras": "llama3.1-8b",
    "openrouter": "openai/gpt-4o",
    "gemini": "gemini-2.5-flash",
    "moonshot": "kimi-k2.5",  # the plugin tutorial's provider, on the openai SDK
}
STAINLESS: dict[str, Any] = {"groq": groq, "cerebras": cerebras_sdk, "openrouter": openai, "moonshot": openai}
# Stainless status -> class (groq/cerebras/openai `_client._make_status_error`); anything else is the base class.
STATUS_CLASS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}
_CLIENTS: list[Any] = []


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as server:
        yield server
    _CLIENTS.clear()


def client(s: StandIn, provider: str, key: str) -> Any:
    """The provider's real SDK client pointed at the stand-in, with its retries off."""
    made: Any
    if provider == "groq":
        made = groq.Groq(api_key=key, base_url=s.url, max_retries=0)
    elif provider == "cerebras":
        made = cerebras_sdk.Cerebras(api_key=key, base_url=s.url, max_retries=0)
    elif provider in ("openrouter", "moonshot"):
        made = openai.OpenAI(api_key=key, base_url=s.url, max_retries=0)
    else:
        made = genai.Client(api_key=key, http_options={"base_url": s.url, "retry_options": {"attempts": 1}})
    _CLIENTS.append(made)  # a google-genai client closes its HTTP client when garbage-collected
    return made


def call(s: StandIn, provider: str, key: str, *, stream: bool = False) -> str:
    """One chat call (a streamed one read to its end); returns the reply text."""
    sdk = client(s, provider, key)
    model = MODELS[provider]
    if provider == "gemini":
        if stream:
            chunks = sdk.models.generate_content_stream(model=model, contents="hello there")
            return "".join(c.text or "" for c in chunks)
        return str(sdk.models.generate_content(model=model, contents="hello there").text)
    if stream:
        chunks = sdk.chat.completions.create(model=model, messages=USER, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return str(sdk.chat.completions.create(model=model, messages=USER).choices[0].message.content)


def comparable(payload: Any) -> str:
    """``payload`` as JSON with OpenRouter's reset time (milliseconds from now) masked."""
    return re.sub(r'"X-RateLimit-Reset": "\d+"', '"X-RateLimit-Reset": "<ms>"', json.dumps(payload))


def expected_class(entry: Recorded) -> type[Exception]:
    """The exception the provider's SDK raises on this reply (research notes, section 0)."""
    if entry.provider == "gemini":
        code = entry.payload()["error"]["code"] if entry.in_stream else entry.status
        return genai_errors.ClientError if 400 <= code < 500 else genai_errors.ServerError
    sdk = STAINLESS[entry.provider]
    if entry.in_stream:
        return sdk.APIError  # type: ignore[no-any-return]
    if entry.status >= 500:
        return sdk.InternalServerError  # type: ignore[no-any-return]
    return getattr(sdk, STATUS_CLASS.get(entry.status, "APIStatusError"))  # type: ignore[no-any-return]


def raised(s: StandIn, entry: Recorded, **options: Any) -> Any:
    """Replay ``entry`` once on a fresh key and return what the SDK raised."""
    key = fake_key(entry.provider)
    s.replay(key, entry.name, times=1, **options)
    with pytest.raises(Exception) as info:
        call(s, entry.provider, key, stream=entry.in_stream)
    return info.value


# ---------------------------------------------------------------------- the catalogue itself


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_entry_is_well_formed(name: str) -> None:
    entry = RECORDED[name]
    assert entry.provider in MODELS and entry.source and entry.confidence
    rendered = entry.render(now=1_774_047_120.0)
    text = rendered.body.decode() + json.dumps(rendered.headers)
    assert not any(marker in text for marker in MARKERS)
    payload = json.loads(rendered.body)
    error = payload if entry.provider == "cerebras" else payload["error"]
    assert error.get("message") or entry.confidence == "DOCS-DESCRIBED"
    assert (entry.status == 200) == entry.in_stream
    if entry.provider == "cerebras":
        assert "error" not in payload  # Cerebras bodies are not wrapped
    if entry.wait is None:
        with pytest.raises(ValueError, match="no time-dependent"):
            entry.render(wait=5)


def test_recorded_waits_are_the_default() -> None:
    now = 1_774_047_120.5
    groq_tpm = RECORDED["groq.per_minute_tokens"].render(now=now)
    assert "Please try again in 1.984999999s." in groq_tpm.body.decode()
    assert groq_tpm.headers == {"retry-after": "2"}
    assert "Please try again in 9m38.016s." in RECORDED["groq.per_day_tokens"].render(now=now).body.decode()
    assert "Please try again in 1m26.4s." in RECORDED["groq.per_day_requests"].render(now=now).body.decode()
    assert RECORDED["cerebras.per_day_tokens"].render(now=now).headers["Retry-After"] == "86399"
    gemini_day = RECORDED["gemini.per_day"].payload(now=now)["error"]
    assert gemini_day["message"].endswith("Please retry in 36.429760048s.")
    assert gemini_day["details"][-1] == {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "36s"}
    assert RECORDED["gemini.per_minute"].payload(now=now)["error"]["details"][-1]["retryDelay"] == "26s"
    minute = RECORDED["openrouter.per_minute"].render(now=now).headers["X-RateLimit-Reset"]
    assert minute == "1774047180000"  # the recorded value: the next whole minute
    day = int(RECORDED["openrouter.per_day"].render(now=now).headers["X-RateLimit-Reset"])
    assert day % 86_400_000 == 0 and 0 < day / 1000 - now <= 86_400


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(1.984999999, "1.984999999s"), (578.016, "9m38.016s"), (86.4, "1m26.4s"), (7200, "2h0m0s"), (0.25, "250ms")],
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


# ---------------------------------------------------------------------- every entry through its SDK


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_sdk_raises_the_predicted_error(standin: StandIn, name: str) -> None:
    entry = RECORDED[name]
    exc = raised(standin, entry)
    raised_class: type[Exception] = type(exc)
    assert raised_class is expected_class(entry)
    payload = entry.payload()
    if entry.provider == "gemini":
        assert exc.code == payload["error"]["code"] and exc.status == payload["error"]["status"]
        assert exc.message == payload["error"]["message"]
        assert comparable(exc.details) == comparable(payload)  # google-genai keeps the whole body
    elif entry.in_stream:
        assert exc.body == payload["error"]  # openai/groq: the error object of the event
        assert not isinstance(exc, openai.APIStatusError | groq.APIStatusError)
    else:
        assert exc.status_code == entry.status
        whole = entry.provider in ("groq", "cerebras")  # groq keeps the whole body; cerebras has no wrapper
        assert comparable(exc.body) == comparable(payload if whole else payload["error"])
    if not entry.in_stream:
        headers = exc.response.headers
        for header, value in entry.render().headers.items():
            assert headers[header] == value or header == "X-RateLimit-Reset"
        assert headers.get("x-request-id") == entry.headers.get("x-request-id")  # no stand-in headers
        assert headers.get("server") == entry.headers.get("server")
    assert standin.stats()["replayed"] == {name: 1}


def test_documented_fields_reach_the_caller(standin: StandIn) -> None:
    gemini_key = raised(standin, RECORDED["gemini.invalid_key"])
    assert [d.get("reason") for d in gemini_key.details["error"]["details"]] == ["API_KEY_INVALID", None]
    gemini_day = raised(standin, RECORDED["gemini.per_day"])
    violation = gemini_day.details["error"]["details"][0]["violations"][0]
    assert violation["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    router = raised(standin, RECORDED["openrouter.per_minute"], wait=42)
    reset = int(router.body["metadata"]["headers"]["X-RateLimit-Reset"])
    assert abs(reset / 1000 - (time.time() + 42)) < 5
    assert router.response.headers["X-RateLimit-Reset"] == str(reset) and router.code == "429"
    assert raised(standin, RECORDED["openrouter.no_credits"]).status_code == 402
    queue = raised(standin, RECORDED["cerebras.queue_exceeded"])
    assert queue.body["code"] == "queue_exceeded" and queue.response.headers["x-should-retry"] == "false"
    flex = raised(standin, RECORDED["groq.flex_capacity"])
    assert type(flex) is groq.APIStatusError and flex.status_code == 498
    assert flex.body == {"error": {"code": "capacity_exceeded"}}
    tpm = raised(standin, RECORDED["groq.per_minute_tokens"], wait=7.66)
    assert "Please try again in 7.66s." in tpm.body["error"]["message"] and tpm.response.headers["retry-after"] == "8"
    day = raised(standin, RECORDED["cerebras.per_day_tokens"])
    assert day.response.headers["Retry-After"] == "86399"
    assert raised(standin, RECORDED["gemini.stream_error"]).code == 503
    assert raised(standin, RECORDED["openrouter.stream_error"]).body["code"] == 429
    assert raised(standin, RECORDED["groq.stream_error"]).body["code"] == "invalid_tool_call"


# ---------------------------------------------------------------------- the replay API


@pytest.mark.parametrize("provider", sorted(e.provider for e in RECORDED.values() if e.name.endswith(".invalid_key")))
def test_one_bad_key_and_one_healthy_key_ten_calls(standin: StandIn, provider: str) -> None:
    bad, good = fake_key(provider), fake_key(provider)
    standin.replay(bad, f"{provider}.invalid_key")
    failures = 0
    for index in range(10):
        if index % 2:
            assert call(standin, provider, good) == "stand-in reply: hello there"
        else:
            with pytest.raises(Exception) as info:
                call(standin, provider, bad)
            assert type(info.value) is expected_class(RECORDED[f"{provider}.invalid_key"])
            failures += 1
    status = RECORDED[f"{provider}.invalid_key"].status
    assert failures == 5 and standin.requests_for(bad, status) == 5 and standin.requests_for(good, 200) == 5
    assert standin.stats()["replayed"] == {f"{provider}.invalid_key": 5}


def test_times_and_queue_order(standin: StandIn) -> None:
    key = fake_key("cerebras")
    standin.replay(key, "cerebras.per_minute_requests", times=2)
    standin.replay(key, "cerebras.payment_required", times=1)
    codes = []
    for _ in range(4):
        try:
            call(standin, "cerebras", key)
            codes.append(200)
        except cerebras_sdk.APIStatusError as exc:
            codes.append(exc.status_code)
    assert codes == [429, 429, 402, 200]
    assert standin.stats()["replayed"] == {"cerebras.payment_required": 1, "cerebras.per_minute_requests": 2}


def test_replay_all_hits_every_key_after_the_keys_own(standin: StandIn) -> None:
    first, second = fake_key("gemini"), fake_key("gemini")
    standin.replay(first, "gemini.invalid_key", times=1)
    standin.replay_all("gemini.overloaded", times=2)
    with pytest.raises(genai_errors.ClientError):
        call(standin, "gemini", first)
    for key in (first, second):
        with pytest.raises(genai_errors.ServerError) as info:
            call(standin, "gemini", key)
        assert info.value.code == 503
    assert call(standin, "gemini", second) == "stand-in reply: hello there"


def test_stream_reply_waits_for_a_stream_and_can_come_after_chunks(standin: StandIn) -> None:
    key = fake_key("openrouter")
    standin.replay(key, "openrouter.stream_error", times=1, after_chunks=2)
    assert call(standin, "openrouter", key) == "stand-in reply: hello there"  # not streamed: not replayed
    sdk = client(standin, "openrouter", key)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as info:
        for chunk in sdk.chat.completions.create(model="m", messages=USER, stream=True):
            seen.extend(c.delta.content for c in chunk.choices if c.delta.content)
    body: Any = info.value.body
    assert len(seen) == 2 and body["code"] == 429
    assert call(standin, "openrouter", key, stream=True) == "stand-in reply: hello there"


def test_clear_replays_and_reset(standin: StandIn) -> None:
    key = fake_key("groq")
    standin.replay(key, "groq.invalid_key")
    standin.clear_replays()
    assert call(standin, "groq", key) == "stand-in reply: hello there"
    standin.replay_all("groq.too_large")
    standin.reset()
    assert call(standin, "groq", key) == "stand-in reply: hello there"
    assert standin.stats()["replayed"] == {}


def test_wrong_wire_format_is_a_clear_500(standin: StandIn) -> None:
    key = fake_key("groq")
    standin.replay(key, "gemini.overloaded")
    with pytest.raises(groq.InternalServerError) as info:
        call(standin, "groq", key)
    assert "stand-in misuse" in str(info.value) and "gemini" in str(info.value)
    errors = standin.stats()["replay_errors"]
    assert len(errors) == 1 and "'gemini.overloaded'" in errors[0]
    assert standin.stats()["replayed"] == {} and key not in json.dumps(standin.stats())


def test_bad_arguments_are_refused(standin: StandIn) -> None:
    with pytest.raises(ValueError, match="unknown recorded reply"):
        standin.replay("k", "groq.nope")
    with pytest.raises(ValueError, match="times"):
        standin.replay_all("groq.invalid_key", times=0)
    with pytest.raises(ValueError, match="time-dependent"):
        standin.replay("k", "groq.invalid_key", wait=3)
    with pytest.raises(ValueError, match="after_chunks"):
        standin.replay("k", "groq.invalid_key", after_chunks=1)


def test_control_endpoint_replays(standin: StandIn) -> None:
    key = fake_key("groq")
    command = {"replay": [{"key": key, "name": "groq.per_day_requests", "times": 1, "wait": 3}]}
    assert httpx.post(f"{standin.url}/control", json=command).json() == {"ok": True}
    with pytest.raises(groq.RateLimitError) as info:
        call(standin, "groq", key)
    body: Any = info.value.body
    assert "Please try again in 3s." in body["error"]["message"]
    httpx.post(f"{standin.url}/control", json={"replay": [{"name": "groq.too_large"}], "clear_replays": True})
    with pytest.raises(groq.APIStatusError) as too_large:
        call(standin, "groq", key)
    assert too_large.value.status_code == 413
