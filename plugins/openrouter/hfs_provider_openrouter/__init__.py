"""hfs provider plugin: OpenRouter."""

from __future__ import annotations

import time
from collections.abc import Mapping

from hfs_core import (
    Action,
    Counts,
    Problem,
    ProviderReply,
    ProviderSpec,
    Verdict,
    hookimpl,
    key_shape_problems,
)


def _reset_in(reply: ProviderReply) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch milliseconds), given in the error's metadata or as a header."""
    metadata = reply.error.get("metadata") or {}
    headers = metadata.get("headers") if isinstance(metadata, Mapping) else None
    raw = (headers or {}).get("X-RateLimit-Reset") or reply.headers.get("x-ratelimit-reset")
    try:
        return max(0.0, float(raw) / 1000 - time.time()) if raw else None
    except (TypeError, ValueError):
        return None


def error_rules(reply: ProviderReply) -> Verdict | None:
    """OpenRouter's failures as it sends them (the recorded replies and their sources are in
    ``hfs_core/testing/standin/recorded.py``; openrouter.ai/docs/api/reference/errors-and-debugging).

    - 429 "... is temporarily rate-limited upstream" (in ``metadata.raw``, also inside a stream):
      the upstream provider's pool shared by every OpenRouter user, not this key (HacxGPT-CLI#31).
    - 429 ``free-models-per-day`` / ``free-models-per-min``: this key's free-model limit, until
      ``X-RateLimit-Reset`` (epoch ms) in ``metadata.headers`` (Gitlawb/openclaude#936).
    - 403 with ``metadata.reasons`` (moderation) or ``metadata.patterns`` (guardrail), and 403
      "not available in your region": the request, not the key. Other 403s ("Key limit exceeded")
      and 401/402 retire the key (the core's default).
    - 503 (``provider_overloaded``): no provider can serve the model now.
    """
    error = reply.error
    metadata = error.get("metadata") or {}
    metadata = metadata if isinstance(metadata, Mapping) else {}
    message = f"{error.get('message', '')} {metadata.get('raw', '')}"
    status = reply.status if reply.status and reply.status != 200 else error.get("code")
    if "rate-limited upstream" in message or metadata.get("limit_source") == "upstream_provider_shared_pool":
        return Verdict(Action.PROVIDER_BUSY, reason="upstream provider rate-limited for all OpenRouter users")
    if status == 429 and "free-models-per-day" in message:
        return Verdict(Action.COOL_KEY, _reset_in(reply), "day", "requests", "free models per day")
    if status == 429:
        counts: Counts | None = "requests" if "free-models-per-min" in message else None
        return Verdict(Action.COOL_KEY, _reset_in(reply), "minute", counts, "rate limit")
    if status == 403 and ("reasons" in metadata or "patterns" in metadata or "region" in message):
        return Verdict(Action.CALLER_ERROR, reason="request refused by moderation, a guardrail or region")
    if status == 503:
        return Verdict(Action.PROVIDER_BUSY, reason="no provider available (503)")
    return None


SPEC = ProviderSpec(
    name="openrouter",
    default_model="nvidia/nemotron-3-super-120b-a12b:free",
    expected_keys=31,
    model_class="agno.models.openrouter:OpenRouter",
    key_prefix="sk-or-",
    docs_url="https://openrouter.ai/keys",
    error_rules=error_rules,
    limits="hfs_provider_openrouter:limits.toml",
    # one budget per account across every free model (limits.toml): a second choice adds no requests
    tiers={"reasoning": ["openai/gpt-oss-120b:free", "nvidia/nemotron-3-super-120b-a12b:free"],
           "general": ["nvidia/nemotron-3-super-120b-a12b:free"],
           "fast": ["nvidia/nemotron-3-nano-30b-a3b:free", "openai/gpt-oss-20b:free"]},
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The OpenRouter provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """OpenRouter keys are sk-or-v1- followed by 64 hex digits."""
    return key_shape_problems(spec, env, r"sk-or-v1-[0-9a-f]{64}", "sk-or-v1- followed by 64 hex digits")
