"""hfs provider plugin: Cerebras."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from hfs_core import (
    Action,
    Counts,
    Problem,
    ProviderReply,
    ProviderSpec,
    Verdict,
    hookimpl,
    key_shape_problems,
    openai_style_options,
)


def error_rules(reply: ProviderReply) -> Verdict | None:
    """Cerebras' failures as it sends them: bodies not wrapped in ``{"error": ...}`` (the recorded
    replies and their sources are in ``hfs_core/testing/standin/recorded.py``).

    - 429 ``queue_exceeded`` "We're experiencing high traffic right now!": the service's queue is
      full for everyone, not this key's limit.
    - 429 ``request_quota_exceeded`` / ``token_quota_exceeded``: the key's limit; "per day" in the
      message is the daily quota, reset after ``Retry-After`` (86399 s seen) or the
      ``x-ratelimit-reset-*-day`` header (seconds; inference-docs.cerebras.ai/support/rate-limits).
    """
    code, message = reply.error.get("code"), str(reply.error.get("message", ""))
    if reply.status != 429:
        return None
    if code == "queue_exceeded":
        return Verdict(Action.PROVIDER_BUSY, reason="Cerebras queue full (queue_exceeded)")
    if code in ("request_quota_exceeded", "token_quota_exceeded"):
        counts: Counts = "requests" if code == "request_quota_exceeded" else "tokens"
        if "per day" in message:
            reset = (reply.header_seconds("retry-after") or reply.header_seconds("x-ratelimit-reset-requests-day")
                     or reply.header_seconds("x-ratelimit-reset-tokens-day"))
            return Verdict(Action.COOL_KEY, reset, "day", counts, f"per-day quota ({code})")
        reset = reply.header_seconds("retry-after") or reply.header_seconds("x-ratelimit-reset-tokens-minute")
        return Verdict(Action.COOL_KEY, reset, "minute", counts, f"per-minute limit ({code})")
    return None


SPEC = ProviderSpec(
    name="cerebras",
    default_model="gpt-oss-120b",
    expected_keys=51,
    model_class="agno.models.cerebras:Cerebras",
    key_prefix="csk-",
    docs_url="https://cloud.cerebras.ai",
    sdk_options=partial(openai_style_options, sdk="cerebras.cloud.sdk"),  # its own Timeout type
    error_rules=error_rules,
    limits="hfs_provider_cerebras:limits.toml",
    # Cerebras counts a request on arrival as its prompt's tokens plus max_completion_tokens (else its
    # own bound on the answer) and refuses it before processing when that is over the tokens left
    # (inference-docs.cerebras.ai/support/rate-limits, "Token Rate Limiting")
    counts_max_tokens_up_front=True,
    tiers={"reasoning": ["gpt-oss-120b"], "general": ["gpt-oss-120b"], "fast": ["llama3.1-8b"]},
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Cerebras provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Cerebras keys are csk- followed by letters and digits."""
    return key_shape_problems(spec, env, r"csk-[A-Za-z0-9]{32,}", "csk- followed by letters and digits")
