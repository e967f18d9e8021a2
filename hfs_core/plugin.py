"""The plugin contract: everything a provider plugin imports, and nothing else.

A plugin is one module with two hooks::

    from hfs_core import ProviderSpec, Problem, hookimpl, key_shape_problems

    @hookimpl
    def register_provider() -> ProviderSpec: ...

    @hookimpl
    def validate_env(spec, env) -> list[Problem]: ...

This module is a leaf: it imports only the standard library and pluggy, so a plugin that
imports it loads nothing of the registry, agno, keycycle or any SDK.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

import pluggy

hookspec = pluggy.HookspecMarker("hfs")
hookimpl = pluggy.HookimplMarker("hfs")

Severity = Literal["error", "warning"]

MIN_KEY_LENGTH = 20
"""Shorter values are not API keys (and their 8-character usage suffix would be most of the key)."""

TIER_NAMES = ("reasoning", "general", "fast")
"""The default tiers, which a plugin fills with its models (`ProviderSpec.tiers`)."""

MAX_KEY_COUNT = 10_000
"""A larger ``NUM_<PREFIX>`` is a typo (and checking that many variables would stall start-up)."""

_PLACEHOLDER = re.compile(
    r"your[_-]?(api[_-]?)?key|api[_-]?key[_-]?here|placeholder|changeme|change[_-]me|insert[_-]?key|"
    r"replace[_-]?me|^<.*>$|^x{6,}$|x{8,}|\.\.\.|^todo$|^none$|^null$",
    re.IGNORECASE,
)
"""Placeholder values. Runs of x must be long: a real random key holds "Xxxx" now and then."""

@dataclass(frozen=True)
class Timeouts:
    """How long one attempt may take on the wire, in seconds.

    Attributes:
        connect: to open the connection.
        read: between two pieces of the answer (an idle timeout: a long answer that keeps
            coming is never cut).
    """

    connect: float = 5.0
    read: float = 30.0


SdkOptions = Callable[..., dict[str, Any]]
"""``sdk_options(base_url, timeouts)``: the keyword arguments for the Agno model class that point
its SDK at `base_url` (None: the provider's own), give each attempt `timeouts` (a `Timeouts`), and
turn the SDK's own retries off. (A function taking only `base_url` still works, with the SDK's
own timeouts.)"""

WrapperFactory = Callable[["ProviderSpec", Sequence[str], str], Any]
"""Builds the keycycle wrapper holding a provider's key windows (None in a spec: the core's own)."""


@dataclass(frozen=True)
class ProviderReply:
    """What the provider answered to a failed attempt, as the core read it from the SDK's exception.

    The core reads the innermost SDK error, so a reply wrapped by Agno (``ModelProviderError``)
    or by the SDK's stream reader shows the provider's own status and body.

    Attributes:
        status: the HTTP status (None when nothing came back: a timeout, a dropped connection).
        body: the JSON error body as sent, ``{"error": {...}}`` included ({} when there was none).
        headers: the response headers, with lower-case names.
        message: the error's message text.
        in_stream: the error came as an event inside a stream that had started with 200.
    """

    status: int | None
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    message: str
    in_stream: bool = False

    @property
    def error(self) -> Mapping[str, Any]:
        """The error object: ``body["error"]`` when the body wraps one (OpenAI, Gemini), else the body (Cerebras)."""
        inner = self.body.get("error")
        return inner if isinstance(inner, Mapping) else self.body

    def header_seconds(self, name: str) -> float | None:
        """A header holding seconds (``retry-after: 7``) or a duration (``x-ratelimit-reset-tokens: 2m59.56s``)."""
        value = self.headers.get(name)
        return parse_duration(value) if value else None


Window = Literal["minute", "day"]
"""The window of a limit a key hit (`Verdict.window`)."""
Counts = Literal["requests", "tokens"]
"""What a limit a key hit counts (`Verdict.counts`)."""


class Action(Enum):
    """What a failed attempt means, and so what the pool does about it."""

    RETIRE_KEY = "retire_key"
    """The key cannot work (invalid, revoked, no credit, forbidden): take it out of rotation for good."""
    COOL_KEY = "cool_key"
    """This key hit one of its limits: keep it out for `Verdict.seconds`, serve the call on another key."""
    PROVIDER_BUSY = "provider_busy"
    """The provider (or its upstream) is overloaded for every key: back the provider off, keep the keys."""
    RETRY = "retry"
    """A passing fault on this attempt (5xx, a dropped stream): try again at once on another key."""
    CALLER_ERROR = "caller_error"
    """The request itself is wrong (too large, unknown model): raise it to the caller at once, keep the key."""


@dataclass(frozen=True)
class Verdict:
    """A plugin's reading of a failed attempt.

    Attributes:
        action: what the pool does (see `Action`).
        seconds: for COOL_KEY and PROVIDER_BUSY, how long; None lets the core choose (Retry-After,
            else its default back-off).
        window: for COOL_KEY, the limit that was hit: ``"minute"`` or ``"day"`` (a quota: the
            key is kept out until `seconds` have passed, remembered across restarts).
        counts: for COOL_KEY, what the limit counts: ``"requests"`` (a per-minute refusal below
            the key's table limit then teaches the pool a lower limit for it) or ``"tokens"``.
        reason: a few words for the log, e.g. ``"per-day quota"``.
    """

    action: Action
    seconds: float | None = None
    window: Window | None = None
    counts: Counts | None = None
    reason: str = ""


ErrorRules = Callable[[ProviderReply], "Verdict | None"]
"""A provider's rules: a failed attempt's reply to a `Verdict`, or None to let the core's defaults decide."""


def parse_duration(text: str) -> float | None:
    """Seconds in ``"7"``, ``"7.66s"``, ``"2m59.56s"``, ``"1h2m3s"`` or ``"250ms"``; None if not a duration."""
    text = text.strip()
    with contextlib.suppress(ValueError):
        return max(0.0, float(text))
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?"
                         r"(?:(\d+(?:\.\d+)?)ms)?", text)
    if not text or parts is None:
        return None
    hours, minutes, seconds, millis = (float(p) if p else 0.0 for p in parts.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def seconds_until_midnight(timezone: str, now: float | None = None) -> float:
    """Seconds from `now` (default: the current time) to the next midnight in `timezone`
    (an IANA name: Gemini's daily quotas reset at midnight ``"America/Los_Angeles"``)."""
    import datetime
    import zoneinfo

    zone = zoneinfo.ZoneInfo(timezone)
    local = datetime.datetime.fromtimestamp(time.time() if now is None else now, zone)
    midnight = datetime.datetime.combine(local.date() + datetime.timedelta(days=1), datetime.time(), zone)
    return midnight.timestamp() - local.timestamp()


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the environment or configuration.

    `variable` names the variable or file concerned; `hint` says what to do.
    """

    severity: Severity
    variable: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.severity}: {self.variable}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        return {"severity": self.severity, "variable": self.variable, "message": self.message, "hint": self.hint}


def openai_style_options(base_url: str | None, timeouts: Timeouts | None = None, *,
                         sdk: str = "openai") -> dict[str, Any]:
    """Model kwargs for SDKs shaped like OpenAI's: no SDK retries, an optional base URL, and the
    connect and idle-read timeouts as the SDK's own ``Timeout``.

    `sdk` names the SDK's top-level module (``"openai"``, ``"groq"``, ``"cerebras.cloud.sdk"``),
    whose re-exported ``Timeout`` is built here: each SDK sits on the HTTP library of its own
    choosing (openai moved to httpx2 while groq stays on httpx), and refuses another's type.
    A plugin on another SDK than openai's binds it once: ``partial(openai_style_options, sdk="groq")``.
    """
    options: dict[str, Any] = {"max_retries": 0}
    if base_url:
        options["base_url"] = base_url
    if timeouts is not None:
        timeout_type = importlib.import_module(sdk).Timeout
        options["timeout"] = timeout_type(timeouts.read, connect=timeouts.connect)
    return options


LONGEST_WAIT = 26 * 3600.0
"""The longest wait a provider may name, in seconds: its longest window, a day, and two hours more
(a day with a clock change has 25 hours, and a daily quota resets at local midnight). A longer
`Retry-After`, reset header or `Verdict.seconds` is capped at it, and a remembered cooldown
further ahead is not believed."""


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as a plugin describes it; the registry does the rest.

    Attributes:
        name: provider name used in `get_model("name")` and in env variable names.
        default_model: model ID used when the caller names none.
        expected_keys: how many keys the fleet is expected to have (a different count warns).
        model_class: the Agno model class as ``"module:Class"``, imported only when needed.
        env_prefix: prefix of ``NUM_<PREFIX>`` and ``<PREFIX>_API_KEY_<i>``; defaults to ``NAME``.
        key_prefix: how this provider's keys start (e.g. ``"gsk_"``), used to spot misplaced keys.
        sdk_options: a callable from a base URL (or None) and `Timeouts` to the model kwargs that
            point the SDK there, bound each attempt and turn the SDK's own retries off (default:
            `openai_style_options`, for the openai SDK; see `SdkOptions`).
        wrapper_factory: builds the keycycle wrapper that holds the key windows; None (the
            default) lets the core build keycycle's own.
        error_rules: the provider's rules for reading its failures (see `ErrorRules`); None, or
            a None verdict, leaves a reply to the core's defaults.
        keycycle_name: the provider's name in keycycle's limit tables; defaults to ``name``.
        limits: the provider's published limits per model, a TOML file shipped in the plugin's
            package, named as ``"package:file.toml"`` (format: docs/plugins.md); read only when
            limits are needed, never at discovery. "" (the default): the plugin states none.
        counts_max_tokens_up_front: the provider counts a request's ``max_completion_tokens``
            (or ``max_tokens``) against the key's token limits when the request arrives, before
            it answers (Cerebras: inference-docs.cerebras.ai/support/rate-limits, "Token Rate
            Limiting"). A call then reserves at least the cap the caller set, not only
            ``estimated_tokens``, and settles to the usage the provider reports as any call does.
        docs_url: where to get keys, shown in hints.
        tiers: which of the provider's models serve each default tier (`TIER_NAMES`), best first,
            e.g. ``{"fast": ["llama-3.1-8b-instant"]}``; a tier it names no model for gets the
            provider's default model. Other tier names are refused (a typo would go unnoticed).
    """

    name: str
    default_model: str
    expected_keys: int
    model_class: str
    env_prefix: str = ""
    key_prefix: str | None = None
    sdk_options: SdkOptions = openai_style_options
    wrapper_factory: WrapperFactory | None = None
    error_rules: ErrorRules | None = None
    keycycle_name: str = ""
    limits: str = ""
    counts_max_tokens_up_front: bool = False
    docs_url: str = ""
    tiers: Mapping[str, Sequence[str]] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"provider name must be lower-case letters, digits or '_', got {self.name!r}")
        if not self.env_prefix:
            object.__setattr__(self, "env_prefix", self.name.upper())
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.env_prefix):
            raise ValueError(f"env_prefix must be upper-case letters, digits or '_', got {self.env_prefix!r}")
        if not isinstance(self.expected_keys, int) or isinstance(self.expected_keys, bool) or self.expected_keys < 1:
            raise ValueError(f"expected_keys must be a whole number of at least 1, got {self.expected_keys!r}")
        if not self.default_model or not self.default_model.strip():
            raise ValueError("default_model must name a model")
        if not self.keycycle_name:
            object.__setattr__(self, "keycycle_name", self.name)
        if ":" not in self.model_class:
            raise ValueError(f"model_class must be 'module:Class', got {self.model_class!r}")
        if self.limits and not re.fullmatch(r"[\w.]+:[\w./-]+", self.limits):
            raise ValueError(f"limits must be 'package:file.toml', got {self.limits!r}")
        if not isinstance(self.counts_max_tokens_up_front, bool):
            raise ValueError("counts_max_tokens_up_front must be True or False, "
                             f"got {self.counts_max_tokens_up_front!r}")
        object.__setattr__(self, "tiers", _checked_tiers(self.tiers))

    @property
    def count_var(self) -> str:
        """The variable holding the key count, e.g. ``NUM_GROQ``."""
        return f"NUM_{self.env_prefix}"

    def key_var(self, index: int) -> str:
        """The variable holding key `index` (1-based), e.g. ``GROQ_API_KEY_3``."""
        return f"{self.env_prefix}_API_KEY_{index}"


def _checked_tiers(tiers: object) -> dict[str, tuple[str, ...]]:
    """`ProviderSpec.tiers` as tuples, or a `ValueError` saying what is wrong with it."""
    if not isinstance(tiers, Mapping):
        raise ValueError(f"tiers must map tier names to lists of model IDs, got {tiers!r}")
    checked = {}
    for tier, models in tiers.items():
        if tier not in TIER_NAMES:
            raise ValueError(f"tiers: unknown tier {tier!r}; the default tiers are {', '.join(TIER_NAMES)}")
        if (isinstance(models, str) or not isinstance(models, Sequence) or not models
                or not all(isinstance(model, str) and model.strip() for model in models)):
            raise ValueError(f"tiers[{tier!r}] must be a non-empty list of model IDs, best first, got {models!r}")
        repeated = next((model for model in models if models.count(model) > 1), None)
        if repeated is not None:
            raise ValueError(f"tiers[{tier!r}] names {repeated!r} twice")
        checked[tier] = tuple(models)
    return checked


def unusable_key_reason(value: str) -> str:
    """Why `value` cannot be an API key ("" when it can): empty, a placeholder, spaces, too short."""
    if not value:
        return "is empty"
    if _PLACEHOLDER.search(value):
        return "is a placeholder, not a key"
    if any(ch.isspace() for ch in value) or not value.isprintable():
        return "contains spaces or control characters"
    if not value.isascii():
        return "contains non-ASCII characters, which an HTTP header cannot carry"
    if len(value) < MIN_KEY_LENGTH:
        return f"is only {len(value)} characters long, too short for an API key"
    return ""


def shown_name(name: str) -> str:
    """A plugin, provider or model name as messages show it: one that cannot be a name (too long,
    or with characters names do not have: a key pasted in the wrong place, say) is not echoed."""
    if re.fullmatch(r"[a-z0-9][a-z0-9_.\-]{0,31}", name):
        return name
    return f"<a {len(name)}-character name>"


def declared_keys(spec: ProviderSpec, env: Mapping[str, str]) -> list[tuple[str, str]]:
    """(variable, stripped value) for each non-empty key among 1..``NUM_<PREFIX>``, without judging them.

    A missing or malformed count gives no keys (the core reports it).
    """
    raw = env.get(spec.count_var, "").strip().lstrip("+")
    count = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) and int(raw) <= MAX_KEY_COUNT else 0
    pairs = []
    for index in range(1, count + 1):
        value = env.get(spec.key_var(index), "").strip()
        if value:
            pairs.append((spec.key_var(index), value))
    return pairs


def key_shape_problems(spec: ProviderSpec, env: Mapping[str, str], shape: str, description: str) -> list[Problem]:
    """Warn about keys that carry the provider's prefix but not its full shape (truncated, padded).

    For a plugin's `validate_env`: `shape` is a regular expression a whole key must match.
    Keys the core already skips (placeholders, too short...) get no second warning here.
    """
    pattern = re.compile(shape)
    return [
        Problem("warning", var, f"does not look like a whole {spec.name} key ({description}); it may be "
                "truncated or have extra characters", f"copy the key again into {var}")
        for var, value in declared_keys(spec, env)
        if (not spec.key_prefix or value.startswith(spec.key_prefix)) and not unusable_key_reason(value)
        and not pattern.fullmatch(value)
    ]


@hookspec
def register_provider() -> ProviderSpec:  # type: ignore[empty-body]
    """Return the ProviderSpec that describes this plugin's provider."""


@hookspec
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:  # type: ignore[empty-body]
    """Return this provider's own problems with the environment (the core's checks run anyway)."""
