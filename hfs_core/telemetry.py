"""OpenTelemetry spans and metrics of model calls, after the GenAI semantic conventions.

A registry's `Telemetry` hands each call a `CallTrace` (or None when OpenTelemetry is not
installed, or no tracer or meter provider is configured: then a call pays one check). The trace
gathers what the call does as it goes, and when the call ends makes its one span (``chat
{model}``, started when the call began, one event per failed attempt) and records its metrics.
Only ``opentelemetry-api`` is used (the extra ``hfs-core[otel]``), imported on first use; the
application brings the SDK and its exporters. See docs/observability.md.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Tracer, TracerProvider

SCOPE = "hfs_core"
PROVIDER_NAMES = {"gemini": "gcp.gemini"}
"""The conventions' well-known ``gen_ai.provider.name`` where it differs from the registry's provider
name ("groq" is the same; Cerebras and OpenRouter are not listed, so they keep their own)."""
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
"""The conventions' advised bucket boundaries of the duration (s) and token usage ({token}) histograms."""


class Status(Protocol):
    """What the key gauge reads of a pool (`hfs_core.pool.PoolStatus`)."""

    @property
    def total(self) -> int: ...
    @property
    def dead(self) -> int: ...
    @property
    def cooling(self) -> int: ...


def provider_name(provider: str) -> str:
    """`provider` as the conventions' ``gen_ai.provider.name``."""
    return PROVIDER_NAMES.get(provider, provider)


@functools.cache
def _api() -> Any:
    """The ``opentelemetry`` API's trace, metrics and context modules, and the provider classes that
    mean none is set (the API's proxies and no-ops); None when the extra is not installed."""
    try:
        from opentelemetry import context, metrics, trace
        from opentelemetry.metrics._internal import _ProxyMeterProvider  # the API's stand-in until one is set
    except ImportError:
        return None
    unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider, _ProxyMeterProvider, metrics.NoOpMeterProvider)
    return trace, metrics, context, unset


def _configured() -> bool:
    """Whether the application has set a global tracer or meter provider."""
    api = _api()
    if api is None:
        return False
    trace, metrics, _, unset = api
    return not isinstance(trace.get_tracer_provider(), unset) or not isinstance(metrics.get_meter_provider(), unset)


class _Instruments:
    """The tracer and the metric instruments of one `Telemetry`."""

    def __init__(self, tracer: Tracer, meter: Meter, pools: Callable[[], Iterable[tuple[str, Status]]]) -> None:
        self.tracer = tracer
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.wait = meter.create_histogram(
            "hfs.pool.wait", unit="s", description="Seconds a call waited for a key",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
        self.attempts = meter.create_counter(
            "hfs.pool.attempts", unit="{attempt}", description="Attempts of model calls, by outcome")
        self._pools = pools
        meter.create_observable_gauge("hfs.pool.keys", callbacks=[self._keys], unit="{key}",
                                      description="Keys of each pool, by state")

    def _keys(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        for provider, status in self._pools():
            counts = {"available": status.total - status.dead - status.cooling, "cooling": status.cooling,
                      "dead": status.dead}
            for state, count in counts.items():
                yield Observation(count, {"hfs.provider": provider, "hfs.key.state": state})


class Telemetry:
    """Where a registry's calls report: the given tracer and meter providers, else the global ones.

    ``Registry(telemetry=Telemetry(tracer_provider=..., meter_provider=...))`` picks providers of
    its own (a test's, say); by default the global ones count from the moment the application sets one.
    """

    def __init__(self, *, tracer_provider: TracerProvider | None = None,
                 meter_provider: MeterProvider | None = None) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._instruments: _Instruments | None = None
        self._pools: Callable[[], Iterable[tuple[str, Status]]] = tuple

    def watch(self, pools: Callable[[], Iterable[tuple[str, Status]]]) -> None:
        """Read the key gauge (``hfs.pool.keys``) from `pools`: each built pool's provider and status."""
        self._pools = pools

    def prepare(self) -> None:
        """Import the OpenTelemetry API now, if installed (once a process), so that a call's first
        check, perhaps on an event loop, finds it loaded (`get_model` calls this in the caller's thread)."""
        _api()

    def _resolve(self) -> _Instruments | None:
        explicit = self._tracer_provider is not None or self._meter_provider is not None
        if not explicit and not _configured():
            return None
        api = _api()
        if api is None:
            return None
        trace, metrics, _, _ = api
        tracer = trace.get_tracer(SCOPE, tracer_provider=self._tracer_provider)
        meter = metrics.get_meter(SCOPE, meter_provider=self._meter_provider)
        self._instruments = _Instruments(tracer, meter, lambda: self._pools())
        return self._instruments

    def begin(self, model: str, provider: str, tier: str | None) -> CallTrace | None:
        """A trace for a call that starts now of `model` on `provider` (a tier's: its first entry's),
        or None when nothing is configured."""
        instruments = self._instruments or self._resolve()
        if instruments is None:
            return None
        return CallTrace(instruments, model, provider, tier)


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """One failed attempt, as its span event says it."""

    at: int
    """When, in ``time.time_ns``."""
    attributes: dict[str, Any]


class CallTrace:
    """What one call did so far; `end` makes its span and records its metrics."""

    def __init__(self, instruments: _Instruments, model: str, provider: str, tier: str | None) -> None:
        self._instruments = instruments
        self.started = time.time_ns()
        self.parent = _api()[2].get_current()
        self._clock = time.perf_counter()
        self.model = model
        self.provider = provider
        self.tier = tier
        self.key: str | None = None
        self.attempts = 0
        self.fallbacks = 0
        self.waited = 0.0
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.failures: list[FailedAttempt] = []

    def leased(self, model: str, provider: str, key: str, waited: float) -> None:
        """An attempt starts on `provider`'s `model`, on the key shown as `key`; the call has waited
        `waited` seconds for keys so far."""
        self.model, self.provider, self.key = model, provider, key
        self.attempts += 1
        self.waited = waited

    def moved(self) -> None:
        """The next attempt runs on another entry of the tier."""
        self.fallbacks += 1

    def answered(self, chunk: Any) -> None:
        """A chunk of the answer: its token usage, if it says."""
        usage = getattr(chunk, "response_usage", None)
        if usage is not None:
            self.input_tokens = getattr(usage, "input_tokens", None) or self.input_tokens
            self.output_tokens = getattr(usage, "output_tokens", None) or self.output_tokens

    def failed(self, status: int | None, verdict: str, error: BaseException) -> None:
        """The attempt under way failed: `status` (HTTP, if any) and the pool's `verdict` (an `Action`'s value)."""
        attributes: dict[str, Any] = {"hfs.key": self.key or "", "hfs.verdict": verdict,
                                      "error.type": _error_type(error), "hfs.provider": self.provider}
        if status:
            attributes["http.response.status_code"] = status
        self.failures.append(FailedAttempt(time.time_ns(), attributes))
        self._instruments.attempts.add(1, {"hfs.provider": self.provider, "hfs.outcome": verdict})

    def end(self, error: BaseException | None) -> None:
        """The call ended (`error`: what reached the caller, None on success): its span and metrics."""
        instruments = self._instruments
        seconds = time.perf_counter() - self._clock
        common: dict[str, Any] = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider_name(self.provider),
                                  "gen_ai.request.model": self.model}
        if error is None:
            common["gen_ai.response.model"] = self.model
            instruments.attempts.add(1, {"hfs.provider": self.provider, "hfs.outcome": "success"})
        else:
            common["error.type"] = _error_type(error)
        instruments.duration.record(seconds, common)
        for kind, count in (("input", self.input_tokens), ("output", self.output_tokens)):
            if count is not None:
                instruments.tokens.record(count, {**common, "gen_ai.token.type": kind})
        if self.attempts:
            instruments.wait.record(self.waited, {"hfs.provider": self.provider})
        attributes = {**common, "hfs.provider": self.provider, "hfs.attempts": self.attempts,
                      "hfs.wait_s": self.waited, "hfs.fallbacks": self.fallbacks}
        if self.key is not None:
            attributes["hfs.key"] = self.key
        if self.input_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = self.output_tokens
        if self.tier is not None:
            attributes["hfs.tier"] = self.tier
            attributes["hfs.tier_entry"] = f"{self.provider}:{self.model}"
        _span(instruments.tracer, self, attributes, error)


def _span(tracer: Tracer, trace: CallTrace, attributes: dict[str, Any], error: BaseException | None) -> None:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    span = tracer.start_span(f"chat {trace.model}", context=trace.parent, kind=SpanKind.CLIENT,
                             attributes=attributes, start_time=trace.started)
    for failure in trace.failures:
        span.add_event("hfs.attempt.failed", failure.attributes, timestamp=failure.at)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()


def _error_type(error: BaseException) -> str:
    """The conventions' ``error.type`` of `error`: its class's qualified name (never its message)."""
    kind = type(error)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
