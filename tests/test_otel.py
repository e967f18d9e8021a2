"""OpenTelemetry: one span per model call (plain, streamed, async, each turn of a tool loop, a tier's), after
the GenAI semantic conventions, and the metrics, read back through the SDK's in-memory exporter and reader."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from agno.agent import Agent
from agno.models.message import Message
from conftest import keys_of, provider_env
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_agents import numbers

from hfs_core import Registry
from hfs_core.config import Config, ProviderConfig
from hfs_core.telemetry import Telemetry
from hfs_core.testing.standin import StandIn

MODELS = {"groq": "openai/gpt-oss-20b", "gemini": "gemini-2.5-flash"}
ROOMY = {"rpm": 1000, "rph": 100_000, "rpd": 100_000, "tpm": 10**8, "tph": 10**9, "tpd": 10**10}


class Otel:
    """An SDK tracer and meter provider of the test's own, and what they recorded."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(tracer_provider=self.tracer_provider, meter_provider=self.meter_provider)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def points(self, name: str) -> list[Any]:
        """The data points of metric `name`."""
        data = self.reader.get_metrics_data()
        assert data is not None
        return [point for resource in data.resource_metrics for scope in resource.scope_metrics
                for metric in scope.metrics if metric.name == name for point in metric.data.data_points]


@pytest.fixture
def otel() -> Otel:
    return Otel()


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    return provider_env({"groq": 2, "gemini": 2}, db_url=sqlite_url)


@pytest.fixture
def build(make_registry: Callable[..., Registry], env: dict[str, str], otel: Otel) -> Callable[..., Registry]:
    def make(**kwargs: Any) -> Registry:
        providers = {p: ProviderConfig(models={m: dict(ROOMY)}) for p, m in MODELS.items()}
        conf = Config(providers=providers, tiers={"fast": tuple(f"{p}:{m}" for p, m in MODELS.items())})
        return make_registry(env=env, config=conf, plugins=list(MODELS), telemetry=otel.telemetry, **kwargs)

    return make


def hi() -> list[Message]:
    return [Message(role="user", content="hi")]


def check_chat_span(span: ReadableSpan, provider: str, model: str, key: str) -> None:
    """`span` is one successful call's, with the conventions' attributes and the pool's."""
    attributes = dict(span.attributes or {})
    assert span.name == f"chat {model}" and span.kind is SpanKind.CLIENT
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == provider
    assert attributes["gen_ai.request.model"] == attributes["gen_ai.response.model"] == model
    assert attributes["hfs.key"] == key[-4:]
    assert attributes["hfs.attempts"] == 1 and attributes["hfs.fallbacks"] == 0
    assert isinstance(attributes["hfs.wait_s"], float)
    assert "error.type" not in attributes and span.status.status_code is not StatusCode.ERROR


def test_a_plain_call_makes_one_span_with_the_conventions_attributes_and_no_key(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str], otel: Otel) -> None:
    model = build().get_model("groq", MODELS["groq"], base_url=standin.url)
    model.response(messages=hi())
    [span] = otel.spans()
    keys = keys_of(env, "groq")
    used = next(k for k in keys if standin.requests_for(k[-4:]))
    check_chat_span(span, "groq", MODELS["groq"], used)
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.usage.input_tokens"] > 0 and attributes["gen_ai.usage.output_tokens"] > 0
    assert "hfs.tier" not in attributes and not span.events
    shown = repr(span.to_json())
    assert not any(key[:-4] in shown or key[-8:] in shown for key in keys)  # the short suffix only


def test_a_streamed_call_makes_one_span_when_the_stream_ends(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str], otel: Otel) -> None:
    model = build().get_model("gemini", MODELS["gemini"], base_url=standin.url)
    chunks = model.response_stream(messages=hi())
    next(chunks)
    assert otel.spans() == []  # the call is still under way
    list(chunks)
    [span] = otel.spans()
    used = next(k for k in keys_of(env, "gemini") if standin.requests_for(k[-4:]))
    check_chat_span(span, "gcp.gemini", MODELS["gemini"], used)


def test_an_async_call_makes_one_span(build: Callable[..., Registry], standin: StandIn, env: dict[str, str],
                                      otel: Otel) -> None:
    model = build().get_model("groq", MODELS["groq"], base_url=standin.url)
    asyncio.run(model.aresponse(messages=hi()))
    [span] = otel.spans()
    used = next(k for k in keys_of(env, "groq") if standin.requests_for(k[-4:]))
    check_chat_span(span, "groq", MODELS["groq"], used)


def test_a_tool_loop_makes_one_span_per_model_turn(build: Callable[..., Registry], standin: StandIn,
                                                   otel: Otel) -> None:
    standin.script_tool_call("add", numbers)

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    model = build().get_model("groq", MODELS["groq"], base_url=standin.url)
    agent = Agent(model=model, tools=[add], telemetry=False)
    assert agent.run("add 20 and 22").content == "stand-in reply: add 20 and 22 [add -> 42]"
    spans = otel.spans()
    assert [s.name for s in spans] == [f"chat {MODELS['groq']}"] * 2
    assert all(dict(s.attributes or {})["hfs.attempts"] == 1 for s in spans)


def test_a_tier_call_that_moved_says_so_and_shows_each_failed_attempt(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str], otel: Otel) -> None:
    for key in keys_of(env, "groq"):
        standin.set_key(key, 401)
    build().get_model("fast", base_url=standin.url).response(messages=hi())
    [span] = otel.spans()
    attributes = dict(span.attributes or {})
    assert span.name == f"chat {MODELS['gemini']}"
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["hfs.tier"] == "fast" and attributes["hfs.tier_entry"] == f"gemini:{MODELS['gemini']}"
    assert attributes["hfs.fallbacks"] == 1 and attributes["hfs.attempts"] == 3
    events = [(e.name, dict(e.attributes or {})) for e in span.events]
    shown = sorted(attributes.pop("hfs.key") for _, attributes in events)
    assert shown == sorted(key[-4:] for key in keys_of(env, "groq"))
    assert events == [("hfs.attempt.failed", {"hfs.provider": "groq", "hfs.verdict": "retire_key",
                                              "http.response.status_code": 401,
                                              "error.type": "agno.exceptions.ModelProviderError"})] * 2


def test_a_failing_call_has_its_error_type_and_one_event_per_failed_attempt(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str], otel: Otel) -> None:
    model = build().get_model("groq", MODELS["groq"], base_url=standin.url, max_retries=2, timeout=30)
    for key in keys_of(env, "groq"):
        standin.set_key(key, 503)
    with pytest.raises(Exception) as caught:
        model.response(messages=hi())
    [span] = otel.spans()
    attributes = dict(span.attributes or {})
    kind = type(caught.value)
    assert attributes["error.type"] == f"{kind.__module__}.{kind.__qualname__}"
    assert span.status.status_code is StatusCode.ERROR and "gen_ai.response.model" not in attributes
    assert attributes["hfs.attempts"] == standin.count(503) == len(span.events) == 3
    assert {dict(e.attributes or {})["hfs.verdict"] for e in span.events} == {"retry"}
    assert {dict(e.attributes or {})["http.response.status_code"] for e in span.events} == {503}


def test_the_metrics_count_calls_tokens_attempts_waits_and_keys(
        build: Callable[..., Registry], standin: StandIn, env: dict[str, str], otel: Otel) -> None:
    model = build().get_model("groq", MODELS["groq"], base_url=standin.url)
    standin.fail_next(1, status=503)
    for _ in range(3):
        model.response(messages=hi())
    [duration] = otel.points("gen_ai.client.operation.duration")
    assert duration.count == 3 and dict(duration.attributes) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "groq", "gen_ai.request.model": MODELS["groq"],
        "gen_ai.response.model": MODELS["groq"]}
    tokens = {p.attributes["gen_ai.token.type"]: p for p in otel.points("gen_ai.client.token.usage")}
    assert set(tokens) == {"input", "output"} and tokens["input"].count == tokens["output"].count == 3
    attempts = {p.attributes["hfs.outcome"]: p.value for p in otel.points("hfs.pool.attempts")}
    assert attempts == {"success": 3, "retry": 1}
    [wait] = otel.points("hfs.pool.wait")
    assert wait.count == 3 and dict(wait.attributes) == {"hfs.provider": "groq"}
    keys = {p.attributes["hfs.key.state"]: p.value for p in otel.points("hfs.pool.keys")
            if p.attributes["hfs.provider"] == "groq"}
    assert keys == {"available": 2, "cooling": 0, "dead": 0}


def test_without_a_configured_provider_a_call_keeps_no_trace(
        make_registry: Callable[..., Registry], standin: StandIn, env: dict[str, str]) -> None:
    model = make_registry(env=env, plugins=["groq"]).get_model("groq", MODELS["groq"], base_url=standin.url)
    assert model.pool.telemetry.begin("m", "groq", None) is None  # the API is installed, no SDK set globally
    assert model.response(messages=hi()).content


def test_without_the_api_installed_telemetry_is_off_and_never_imported() -> None:
    code = ("import sys; sys.modules['opentelemetry'] = None\n"
            "import hfs_core\nfrom hfs_core.telemetry import Telemetry\n"
            "assert Telemetry().begin('m', 'groq', None) is None\n"
            "assert [m for m in sys.modules if m.startswith('opentelemetry.')] == []\nprint('off')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "off", done.stderr
