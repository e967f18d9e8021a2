"""hfs provider plugin: Groq."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial

from hfs_core import (
    Action,
    Counts,
    Problem,
    ProviderReply,
    ProviderSpec,
    Verdict,
    Window,
    hookimpl,
    key_shape_problems,
    openai_style_options,
    parse_duration,
)


def error_rules(reply: ProviderReply) -> Verdict | None:
    """Groq's failures as it sends them (the recorded replies and their sources are in
    ``hfs_core/testing/standin/recorded.py``; what the pool does with each: docs/reliability.md).

    - 498 ``capacity_exceeded``: flex capacity is full for everyone (console.groq.com/docs/flex-processing).
    - 413 "Request too large ... please reduce your message size": larger than the key's TPM, so
      no key can take it (ITSpecialist111/ai_automation_suggester#61).
    - 429 ``rate_limit_exceeded`` "... on tokens per day (TPD) ... Please try again in 9m38.016s":
      a per-day quota (RPD/TPD) or a per-minute one (RPM/TPM), waiting the time it names
      (continuedev/continue#10920, ago19800/HomeMind#29).
    - 400 ``organization_restricted``: the key's organization is blocked (crewAIInc/crewAI#783).
    """
    error = reply.error
    code, message = error.get("code"), str(error.get("message", ""))
    if reply.status == 498:
        return Verdict(Action.PROVIDER_BUSY, reason="flex capacity exceeded (498)")
    if reply.status == 413:
        return Verdict(Action.CALLER_ERROR, reason="request larger than the model's tokens-per-minute limit")
    if code == "organization_restricted":
        return Verdict(Action.RETIRE_KEY, reason="organization restricted")
    if reply.status == 429 and code == "rate_limit_exceeded":
        wait = re.search(r"try again in ([0-9hms.]+)", message)
        seconds = parse_duration(wait.group(1)) if wait else reply.header_seconds("retry-after")
        limit = re.search(r"per (minute|day) \(([RT])P[MD]\)", message)
        window: Window = "day" if limit and limit.group(1) == "day" else "minute"
        counts: Counts | None = None if limit is None else "requests" if limit.group(2) == "R" else "tokens"
        return Verdict(Action.COOL_KEY, seconds, window, counts, f"per-{window} limit")
    return None


SPEC = ProviderSpec(
    name="groq",
    default_model="openai/gpt-oss-120b",
    expected_keys=16,
    model_class="agno.models.groq:Groq",
    key_prefix="gsk_",
    docs_url="https://console.groq.com/keys",
    sdk_options=partial(openai_style_options, sdk="groq"),  # its own Timeout type
    error_rules=error_rules,
    limits="hfs_provider_groq:limits.toml",
    tiers={"reasoning": ["openai/gpt-oss-120b", "qwen/qwen3-32b"],
           "general": ["openai/gpt-oss-120b", "llama-3.3-70b-versatile"],
           "fast": ["llama-3.1-8b-instant", "openai/gpt-oss-20b"]},
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Groq provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Groq keys are gsk_ followed by letters and digits."""
    return key_shape_problems(spec, env, r"gsk_[A-Za-z0-9]{40,}", "gsk_ followed by letters and digits")
