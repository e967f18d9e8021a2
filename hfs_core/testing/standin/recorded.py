"""Recorded provider failures the stand-in can replay: status, headers and body as the providers send them.

Every entry of :data:`RECORDED` was copied from a provider's docs, a public bug report or a public
test fixture (collected in the project's research notes on provider errors); ``source`` says where
and ``confidence`` how close it is to a raw capture:

* ``VERBATIM``: a docs page, or an issue with the raw response pasted;
* ``VERBATIM (client-wrapped)``: an issue where the client showed it as a Python ``repr`` or an
  escaped string; only the quoting was turned back into JSON;
* ``FIXTURE``: a test fixture or notes file in a public repository (weaker than an issue);
* ``DOCS-DESCRIBED``: the docs give the status and code in prose; the entry holds only what they state.

Bodies keep the recorded text and key order. Values that depend on time are written as markers
that :meth:`Recorded.render` fills from a ``wait`` in seconds (by default the recorded value):

* ``{{wait_s}}``: whole seconds, rounded up (``Retry-After: 2``);
* ``{{wait_go}}``: a Go duration, as Groq writes it (``1.984999999s``, ``9m38.016s``);
* ``{{wait_decimal}}``: seconds with up to nine decimals (Gemini's ``Please retry in 36.429760048s``);
* ``{{wait_floor_s}}``: whole seconds, rounded down, with ``s`` (Gemini's ``retryDelay: "36s"``);
* ``{{reset_epoch_ms}}``: the Unix time in milliseconds ``wait`` seconds from now (OpenRouter's
  ``X-RateLimit-Reset``).

Scenarios the research did not find (Groq 402/403/503 bodies, Cerebras 403/503/requests-per-day and
stream errors, Gemini billing errors and error headers, OpenRouter 503) are left out on purpose.
"""

# ruff: noqa: E501  (the pretty-printed Gemini bodies keep their recorded lines)

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hfs_core.testing.standin.exchange import Provider

Confidence = Literal["VERBATIM", "VERBATIM (client-wrapped)", "FIXTURE", "DOCS-DESCRIBED"]

#: How an in-stream error is framed: a plain ``data:`` event, or ``event: error`` then ``data:``.
SseShape = Literal["data", "event: error"]

#: A default wait: fixed seconds, or a function of the current Unix time.
Wait = float | Callable[[float], float]

#: The time markers a body or header may hold.
MARKERS: tuple[str, ...] = ("{{wait_s}}", "{{wait_go}}", "{{wait_decimal}}", "{{wait_floor_s}}", "{{reset_epoch_ms}}")


def go_duration(seconds: float) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` writes it: ``1.5s``, ``1m26.4s``, ``250ms``."""
    ns = max(0, round(seconds * 1e9))
    if ns == 0:
        return "0s"
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return _decimal(ns, size) + unit
    hours, rest = divmod(ns, 3_600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return text + _decimal(rest, 10**9) + "s"


def _decimal(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    digits = len(str(unit)) - 1
    tail = f"{fraction:0{digits}d}".rstrip("0") if digits else ""
    return f"{whole}.{tail}" if tail else str(whole)


def until_next_minute(now: float) -> float:
    """Seconds from ``now`` to the next whole minute (Unix time)."""
    return 60 - now % 60


def until_midnight_utc(now: float) -> float:
    """Seconds from ``now`` to the next midnight UTC."""
    return 86_400 - now % 86_400


@dataclass(frozen=True)
class Rendered:
    """One recorded reply made ready to send: HTTP status, extra headers and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True, eq=False)
class Recorded:
    """One recorded provider failure.

    Attributes:
        name: ``"<provider>.<scenario>"``, e.g. ``"gemini.invalid_key"``.
        status: HTTP status of the reply (200 for an error inside a stream).
        body: the JSON body text as recorded, with time markers (see the module docstring).
        source: where it was recorded.
        confidence: how close it is to a raw capture (see the module docstring).
        headers: recorded response headers besides ``Content-Type``/``Content-Length`` (markers allowed).
        stream: for an error inside a 200 SSE stream, how its event is framed; ``None`` otherwise.
        wait: the recorded wait in seconds (or a function of the Unix time), for entries with markers.
        note: what was filled in or left out, and why.
    """

    name: str
    status: int
    body: str
    source: str
    confidence: Confidence
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: SseShape | None = None
    wait: Wait | None = None
    note: str = ""

    @property
    def provider(self) -> str:
        """The provider part of the name: ``groq``, ``cerebras``, ``gemini``, ``openrouter`` or ``moonshot``."""
        return self.name.partition(".")[0]

    @property
    def wire(self) -> Provider:
        """The wire format that carries it: ``"gemini"`` or ``"openai"`` (OpenAI-style chat completions)."""
        return "gemini" if self.provider == "gemini" else "openai"

    @property
    def in_stream(self) -> bool:
        """Whether it arrives as an event inside a 200 SSE stream."""
        return self.stream is not None

    def render(self, wait: float | None = None, now: float | None = None) -> Rendered:
        """Fill the time markers from ``wait`` seconds (default: the recorded wait) at Unix time ``now``."""
        if wait is not None and self.wait is None:
            raise ValueError(f"recorded reply {self.name!r} has no time-dependent value to fill")
        moment = time.time() if now is None else now
        seconds = wait if wait is not None else self._default_wait(moment)
        values = {
            "{{wait_s}}": str(max(1, math.ceil(seconds))),
            "{{wait_go}}": go_duration(seconds),
            "{{wait_decimal}}": _decimal(round(seconds * 1e9), 10**9),
            "{{wait_floor_s}}": f"{math.floor(seconds)}s",
            "{{reset_epoch_ms}}": str(round((moment + seconds) * 1000)),
        }

        def fill(text: str) -> str:
            for marker, value in values.items():
                text = text.replace(marker, value)
            return text

        return Rendered(self.status, {k: fill(v) for k, v in self.headers.items()}, fill(self.body).encode())

    def payload(self, wait: float | None = None, now: float | None = None) -> Any:
        """The rendered body, parsed."""
        return json.loads(self.render(wait, now).body)

    def sse_event(self, body: bytes) -> bytes:
        """The SSE frame carrying ``body`` in a stream of this entry's wire format."""
        if self.wire == "gemini":
            return b"data: " + body + b"\r\n\r\n"
        prefix = b"event: error\n" if self.stream == "event: error" else b""
        return prefix + b"data: " + body + b"\n\n"

    def _default_wait(self, now: float) -> float:
        if self.wait is None:
            return 0.0
        return self.wait(now) if callable(self.wait) else self.wait


_GEMINI_DOCS = "https://ai.google.dev/gemini-api/docs/rate-limits"

_ENTRIES: tuple[Recorded, ...] = (
    # ------------------------------------------------------------------ Gemini (generativelanguage v1beta, API key)
    # Gemini sends no documented Retry-After or x-ratelimit headers on errors; none were found, so none are replayed.
    Recorded(
        name="gemini.invalid_key",
        status=400,
        body="""{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {
          "service": "generativelanguage.googleapis.com"
        }
      },
      {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key."
      }
    ]
  }
}
""",
        source="cequence-io/openai-scala-client#109; same in continuedev/continue#10290, #10406, can1357/oh-my-pi#449",
        confidence="VERBATIM",
    ),
    Recorded(
        name="gemini.per_minute",
        status=429,
        body="""{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_input_token_count",
            "quotaId": "GenerateContentInputTokensPerModelPerMinute-FreeTier",
            "quotaDimensions": {
              "location": "global",
              "model": "gemini-2.5-flash"
            },
            "quotaValue": "250000"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [
          {
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "{{wait_floor_s}}"
      }
    ]
  }
}
""",
        source="RooCodeInc/Roo-Code#3883 (JSON escaped in a string, unescaped)",
        confidence="VERBATIM (client-wrapped)",
        wait=26.0,
        note="retryDelay (recorded \"26s\") carries the wait.",
    ),
    Recorded(
        name="gemini.per_day",
        status=429,
        body="""{
  "error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. To monitor your current usage, head to: https://ai.dev/rate-limit. \\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 20, model: gemini-3.6-flash\\nPlease retry in {{wait_decimal}}s.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
          {
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            "quotaDimensions": {
              "location": "global",
              "model": "gemini-3.6-flash"
            },
            "quotaValue": "20"
          }
        ]
      },
      {
        "@type": "type.googleapis.com/google.rpc.RetryInfo",
        "retryDelay": "{{wait_floor_s}}"
      }
    ]
  }
}
""",
        source="diegosouzapw/OmniRoute#9504",
        confidence="VERBATIM",
        wait=36.429760048,
        note=(
            "quotaDimensions was \"[MaxDepth]\" in the source, restored in the shape of gemini.per_minute. "
            "The recorded wait is 36.43 s although the quota is daily (Google does send that); "
            "the daily reset is midnight Pacific (" + _GEMINI_DOCS + ")."
        ),
    ),
    Recorded(
        name="gemini.overloaded",
        status=503,
        body='{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}',
        source="google-gemini/cookbook#425; google-gemini/gemini-cli#12831, #7392, #5191",
        confidence="VERBATIM",
    ),
    Recorded(
        name="gemini.too_large",
        status=400,
        body=(
            '{"error":{"code":400,"message":"The input token count (3475108) exceeds the maximum number of tokens '
            'allowed (1048576).","status":"INVALID_ARGUMENT"}}'
        ),
        source="google-gemini/gemini-cli#4231 (AI Studio API key), #4118",
        confidence="VERBATIM",
    ),
    Recorded(
        name="gemini.permission_denied",
        status=403,
        body=(
            '{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.",'
            '"status":"PERMISSION_DENIED"}}'
        ),
        source="continuedev/continue#11541, #10513",
        confidence="VERBATIM",
        note="The leaked-key form: it names no key, unlike CONSUMER_SUSPENDED, whose message quotes the full key.",
    ),
    Recorded(
        name="gemini.stream_error",
        status=200,
        body='{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}',
        source=(
            "diegosouzapw/OmniRoute#4177 (a maintainer describes a mid-stream data: {\"error\":{\"code\":503,...,"
            "\"status\":\"UNAVAILABLE\"}} chunk); body from gemini.overloaded"
        ),
        confidence="DOCS-DESCRIBED",
        stream="data",
        note="No verbatim SSE capture exists; the event is the recorded 503 envelope sent as one data: line.",
    ),
    # ------------------------------------------------------------------ Groq (OpenAI-style, {"error": {...}})
    Recorded(
        name="groq.invalid_key",
        status=401,
        body='{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}\n',
        headers={
            "server": "cloudflare",
            "via": "1.1 google",
            "vary": "Origin",
            "cache-control": "private, max-age=0, no-store, no-cache, must-revalidate",
            "x-groq-region": "us-west-1",
            "x-request-id": "req_01jngbvsctfy0bmjw87yea904b",
        },
        source="ag5826000/resume-commentor#4 (raw dump with headers); same body in nark/WiredSwift#44",
        confidence="VERBATIM",
        note="The dump's content-length 96 is this 95-byte JSON plus a newline.",
    ),
    Recorded(
        name="groq.per_minute_tokens",
        status=429,
        body=(
            '{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization '
            "`org_01kes94v04f9ramd2n1vj4gjnc` service tier `on_demand` on tokens per minute (TPM): Limit 12000, "
            "Used 2542, Requested 9855. Please try again in {{wait_go}}. Need more tokens? Upgrade to Dev Tier "
            'today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}'
        ),
        headers={"retry-after": "{{wait_s}}"},
        source="ago19800/HomeMind#29 (groq SDK repr); retry-after: https://console.groq.com/docs/rate-limits",
        confidence="VERBATIM (client-wrapped)",
        wait=1.984999999,
        note=(
            "retry-after is documented as sent on every 429 (seconds); the x-ratelimit-* values on a real 429 "
            "were not found, so they are not sent."
        ),
    ),
    Recorded(
        name="groq.per_minute_requests",
        status=429,
        body=(
            '{"error":{"message":"Rate limit reached for model `meta-llama/llama-4-scout-17b-16e-instruct` in '
            "organization `org_x` service tier `on_demand` on requests per minute (RPM): Limit 30, Used 30, "
            'Requested 1. Please try again in {{wait_go}}.","type":"requests","code":"rate_limit_exceeded"}}'
        ),
        headers={"retry-after": "{{wait_s}}"},
        source="fixture, find_string id 70404495603; retry-after: https://console.groq.com/docs/rate-limits",
        confidence="FIXTURE",
        wait=1.5,
    ),
    Recorded(
        name="groq.per_day_tokens",
        status=429,
        body=(
            '{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization '
            "`org_01kjh7p9n8f1qs6nz2bz77vy6b` service tier `on_demand` on tokens per day (TPD): Limit 100000, "
            "Used 97050, Requested 3619. Please try again in {{wait_go}}. Need more tokens? Upgrade to Dev Tier "
            'today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}'
        ),
        headers={"retry-after": "{{wait_s}}"},
        source="continuedev/continue#10920 (message); envelope as groq.per_minute_tokens",
        confidence="VERBATIM",
        wait=578.016,
        note=(
            "Only the message was printed (with Continue's \"429 \" prefix and %3F for ?, undone here); "
            "type and code follow the TPM envelope of the same provider."
        ),
    ),
    Recorded(
        name="groq.per_day_requests",
        status=429,
        body=(
            '{"error":{"message":"Rate limit reached for model `openai/gpt-oss-20b` in organization `org_x` '
            "service tier `on_demand` on requests per day (RPD): Limit 1000, Used 1000, Requested 1. Please try "
            'again in {{wait_go}}.","type":"requests","code":"rate_limit_exceeded"}}'
        ),
        headers={"retry-after": "{{wait_s}}"},
        source="fixture, find_string id 70250233324 (wording confirmed by id 62114281043, a device capture)",
        confidence="FIXTURE",
        wait=86.4,
    ),
    Recorded(
        name="groq.flex_capacity",
        status=498,
        body='{"error":{"code":"capacity_exceeded"}}',
        source=(
            "https://console.groq.com/docs/flex-processing: \"requests will fail quickly with status 498 and "
            "error capacity_exceeded\""
        ),
        confidence="DOCS-DESCRIBED",
        note=(
            "The real body was not found: only the documented status and error code are sent; "
            "message and type are unknown."
        ),
    ),
    Recorded(
        name="groq.too_large",
        status=413,
        body=(
            '{"error":{"message":"Request too large for model `llama-3.3-70b-versatile` in organization '
            "`org_01jp8byqwpfx9sp1m0dbhb6a1e` service tier `on_demand` on tokens per minute (TPM): Limit 6000, "
            "Requested 14810, please reduce your message size and try again. Visit "
            'https://console.groq.com/docs/rate-limits for more information.","type":"tokens",'
            '"code":"rate_limit_exceeded"}}'
        ),
        source="ITSpecialist111/ai_automation_suggester#61 (raw JSON)",
        confidence="VERBATIM",
    ),
    Recorded(
        name="groq.context_length",
        status=400,
        body=(
            '{"error":{"message":"Please reduce the length of the messages or completion.",'
            '"type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}'
        ),
        source="letta-ai/letta#1963 (raw); ScrapeGraphAI/Scrapegraph-ai#411",
        confidence="VERBATIM",
    ),
    Recorded(
        name="groq.organization_restricted",
        status=400,
        body=(
            '{"error":{"message":"Organization has been restricted. Please reach out to support if you believe '
            'this was in error.","type":"invalid_request_error","code":"organization_restricted"}}'
        ),
        source="crewAIInc/crewAI#783 (Python repr); NVIDIA-NeMo/Guardrails#563",
        confidence="VERBATIM (client-wrapped)",
    ),
    Recorded(
        name="groq.stream_error",
        status=200,
        body=(
            '{"error":{"message":"Invalid tool_call: tool \\"name_unknown\\" does not exist.",'
            '"type":"invalid_request_error","code":"invalid_tool_call"}}'
        ),
        source="sashabaranov/go-openai#1057, test TestStreamReaderParsesErrorEvents (\"Groq's error event format\")",
        confidence="FIXTURE",
        stream="event: error",
        note="Built by the PR author, not a raw capture; a mid-stream rate-limit or overload event was not found.",
    ),
    # ------------------------------------------------------------------ Cerebras (OpenAI-style, NOT wrapped in "error")
    Recorded(
        name="cerebras.invalid_key",
        status=401,
        body='{"message":"Wrong API Key","type":"invalid_request_error","param":"api_key","code":"wrong_api_key"}',
        source="fixtures, find_string ids 71620109237 (\"probed live\"), 59420255673, 71134648296",
        confidence="FIXTURE",
    ),
    Recorded(
        name="cerebras.payment_required",
        status=402,
        body=(
            '{"message":"Payment required to access this resource. Visit your billing tab.",'
            '"type":"payment_required_error","param":"quota","code":"payment_required"}'
        ),
        source="nminaya/grammar-nazi-bot#967 (raw body)",
        confidence="VERBATIM",
    ),
    Recorded(
        name="cerebras.per_minute_requests",
        status=429,
        body=(
            '{"message":"Requests per minute limit exceeded - too many requests sent.",'
            '"type":"too_many_requests_error","param":"quota","code":"request_quota_exceeded"}'
        ),
        source="nminaya/grammar-nazi-bot#958 (and #954-#960, raw)",
        confidence="VERBATIM",
        note="No Retry-After or x-ratelimit-* values on a real per-minute 429 were found; none are sent.",
    ),
    Recorded(
        name="cerebras.per_minute_tokens",
        status=429,
        body=(
            '{"message":"Tokens per minute limit exceeded - too many tokens processed.",'
            '"type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}'
        ),
        source="fixtures, find_string ids 51868407972, 61949016364; message in continuedev/continue#9800",
        confidence="FIXTURE",
    ),
    Recorded(
        name="cerebras.per_day_tokens",
        status=429,
        body=(
            '{"message":"Tokens per day limit exceeded - too many tokens processed.",'
            '"type":"too_many_tokens_error","param":"quota","code":"token_quota_exceeded"}'
        ),
        headers={
            "Retry-After": "{{wait_s}}",
            "Strict-Transport-Security": "max-age=3600; includeSubDomains",
        },
        source="fixture, find_string id 19110930349 (Go test, with headers)",
        confidence="FIXTURE",
        wait=86_399.0,
        note="Same code as the per-minute token limit; only the message and Retry-After tell them apart.",
    ),
    Recorded(
        name="cerebras.queue_exceeded",
        status=429,
        body=(
            '{"message":"We\'re experiencing high traffic right now! Please try again soon.",'
            '"type":"too_many_requests_error","param":"queue","code":"queue_exceeded"}'
        ),
        headers={"x-should-retry": "false"},
        source=(
            "fixtures, find_string ids 53240898168, 53134076148, 56227647463, 66046547690; "
            "x-should-retry from ids 55195780359, 55009337986"
        ),
        confidence="FIXTURE",
        note="Provider-wide (use replay_all); the x-should-retry header is plausible, not confirmed.",
    ),
    Recorded(
        name="cerebras.context_length",
        status=400,
        body=(
            '{"message":"Please reduce the length of the messages or completion. Current length is 8530 while '
            'limit is 8192","type":"invalid_request_error","param":"messages","code":"context_length_exceeded",'
            '"id":"abc"}'
        ),
        source="fixture, find_string id 66871868229; message wording in cline/cline#5140",
        confidence="FIXTURE",
        note="\"id\" is elided as \"abc\" in the fixture and its real format is unknown, so it is kept.",
    ),
    # ------------------------------------------------------------------ OpenRouter (OpenAI-style, int code)
    Recorded(
        name="openrouter.invalid_key",
        status=401,
        body='{"error":{"message":"User not found.","code":401}}',
        source="Fosowl/agenticSeek#407; apurvsinghgautam/robin#103",
        confidence="VERBATIM",
    ),
    Recorded(
        name="openrouter.no_credits",
        status=402,
        body=(
            '{"error":{"message":"Insufficient credits. This account never purchased credits. Make sure your key '
            "is on the correct account or org, and if so, purchase more at https://openrouter.ai/settings/credits"
            '","code":402}}'
        ),
        source="Gitlawb/openclaude#43; Alishahryar1/free-claude-code#772 (raw)",
        confidence="VERBATIM",
    ),
    Recorded(
        name="openrouter.key_limit",
        status=403,
        body=(
            '{"error":{"message":"Key limit exceeded (total limit). Manage it using '
            'https://openrouter.ai/workspaces/default","code":403}}'
        ),
        source="fixtures, find_string ids 60756100862, 56693207868; message in RooCodeInc/Roo-Code#515",
        confidence="FIXTURE",
    ),
    Recorded(
        name="openrouter.per_minute",
        status=429,
        body=(
            '{"error":{"message":"Rate limit exceeded: free-models-per-min. ","code":429,"metadata":{"headers":'
            '{"X-RateLimit-Limit":"16","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"{{reset_epoch_ms}}"},'
            '"provider_name":null}},"user_id":"user_30jNnbLa4KwIQ4eQZaCWceNDdCQ"}'
        ),
        headers={"X-RateLimit-Limit": "16", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "{{reset_epoch_ms}}"},
        source=(
            "fixture, find_string id 51919209943 (openai SDK repr of a live error); headers: "
            "OpenRouterTeam/docs api/reference/limits.mdx (a platform 429 carries the same X-RateLimit-* headers)"
        ),
        confidence="FIXTURE",
        wait=until_next_minute,
        note="X-RateLimit-Reset (recorded 1774047180000, a whole minute) is the next whole minute unless wait is set.",
    ),
    Recorded(
        name="openrouter.per_day",
        status=429,
        body="""{
  "error": {
    "message": "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day",
    "code": 429,
    "metadata": {
      "headers": {
        "X-RateLimit-Limit": "50",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "{{reset_epoch_ms}}"
      },
      "provider_name": null
    }
  },
  "user_id": "user_2qZtStandInReplayUserId0000"
}
""",
        headers={"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "{{reset_epoch_ms}}"},
        source="Gitlawb/openclaude#936 (raw JSON, cut off after X-RateLimit-Remaining); headers as per_minute",
        confidence="VERBATIM",
        wait=until_midnight_utc,
        note=(
            "The source stops after X-RateLimit-Remaining: X-RateLimit-Reset, provider_name and user_id follow "
            "the openrouter.per_minute shape, the reset defaults to the next midnight UTC and the user id is a "
            "stand-in value in OpenRouter's format."
        ),
    ),
    Recorded(
        name="openrouter.upstream_rate_limited",
        status=429,
        body=(
            '{"error":{"message":"Provider returned error","code":429,"metadata":{"raw":"deepseek/deepseek-chat-v3-'
            "0324:free is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate "
            'your rate limits: https://openrouter.ai/settings/integrations","provider_name":"Chutes"}},'
            '"user_id":"user_33jF90V8MuPsx2czsN5fxAmwXnx"}'
        ),
        source="HacxGPT-Official/HacxGPT-CLI#31 (openai SDK repr)",
        confidence="VERBATIM (client-wrapped)",
        note="Shared across all OpenRouter users: another key does not help (use replay_all).",
    ),
    Recorded(
        name="openrouter.provider_error",
        status=400,
        body=(
            '{"error":{"message":"Provider returned error","code":400,"metadata":{"raw":"{\\"error\\":{\\"type\\":'
            '\\"invalid_request_error\\",\\"code\\":\\"invalid_request_error\\",\\"message\\":\\"Model '
            "'moonshotai/kimi-k2.6' supports at most 1 image per prompt.\\\",\\\"request_id\\\":\\\"req_*******\\\"}}\","
            '"provider_name":"Crucible","is_byok":false}},"user_id":"user_***************"}'
        ),
        source="diegosouzapw/OmniRoute#3044 (raw)",
        confidence="VERBATIM",
        note="The request and user ids are kept as the reporter redacted them.",
    ),
    Recorded(
        name="openrouter.context_length",
        status=400,
        body=(
            '{"error":{"message":"This endpoint\'s maximum context length is 131072 tokens. However, you requested '
            "about 141607 tokens (10535 of text input, 131072 in the output). Please reduce the length of either "
            'one, or use the \\"middle-out\\" transform to compress your prompt automatically.","code":400,'
            '"metadata":{"provider_name":"Chutes"}}}'
        ),
        source="Aider-AI/aider#3721 (repr)",
        confidence="VERBATIM (client-wrapped)",
    ),
    Recorded(
        name="openrouter.stream_error",
        status=200,
        body=(
            '{"id":"gen-abc123","object":"chat.completion.chunk","created":1234567890,"model":"openai/gpt-4o",'
            '"provider":"OpenAI","error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":'
            '"rate_limit_exceeded"}},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}'
        ),
        source=(
            "OpenRouterTeam/docs api/reference/errors-and-debugging.mdx, \"Mid-Stream Errors\" "
            "(https://openrouter.ai/docs/api/reference/errors-and-debugging)"
        ),
        confidence="VERBATIM",
        stream="data",
        note="The docs' example event; the stream ends after it.",
    ),
    # ------------------------------------------------------------------ Moonshot (api.moonshot.ai/v1, OpenAI-style)
    # The provider of the plugin tutorial (docs/plugins.md); its bodies name the error in "type", no "code".
    Recorded(
        name="moonshot.no_balance",
        status=403,
        body=(
            '{"error":{"message":"Your account xx> is not active, organization <xx> exceeded current quota, please '
            'check your plan and billing details","type":"exceeded_current_quota_error"}}'
        ),
        source="MoonshotAI/Kimi-K2#5 (raw; the account and organization ids as the reporter redacted them)",
        confidence="VERBATIM",
    ),
    Recorded(
        name="moonshot.engine_overloaded",
        status=429,
        body=(
            '{"error":{"message":"The engine is currently overloaded, please try again later",'
            '"type":"engine_overloaded_error"}}'
        ),
        source="MoonshotAI/MoonshotAI-Cookbook#16 (raw)",
        confidence="VERBATIM",
        note="Capacity short for every key (free accounts are served last at peak times, per the maintainer).",
    ),
    Recorded(
        name="moonshot.project_tpm",
        status=429,
        body=(
            '{"error":{"type":"rate_limit_reached_error","message":"Your account xxxxx / proj-xxxxxx <ak-xxxxx> '
            'request reached project TPM rate limit, current: 1410, limit: 100, see '
            'https://platform.moonshot.cn/docs/pricing/limits"}}'
        ),
        source="LLM-Red-Team/kimi-cc#41 (raw)",
        confidence="VERBATIM",
    ),
)

#: Every recorded reply by name.
RECORDED: Mapping[str, Recorded] = {entry.name: entry for entry in _ENTRIES}
