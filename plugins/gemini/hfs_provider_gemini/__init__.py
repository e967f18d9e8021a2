"""hfs provider plugin: Gemini."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfs_core import (
    Action,
    Counts,
    Problem,
    ProviderReply,
    ProviderSpec,
    Timeouts,
    Verdict,
    hookimpl,
    key_shape_problems,
    parse_duration,
    seconds_until_midnight,
)


def error_rules(reply: ProviderReply) -> Verdict | None:
    """Gemini's failures as it sends them (the recorded replies and their sources are in
    ``hfs_core/testing/standin/recorded.py``).

    - 400 ``INVALID_ARGUMENT`` with ``ErrorInfo.reason = "API_KEY_INVALID"``: a bad key, not a
      bad request (cequence-io/openai-scala-client#109).
    - 429 ``RESOURCE_EXHAUSTED`` whose ``QuotaFailure`` names a ``PerDay`` quota: the daily quota,
      which resets at midnight Pacific time (ai.google.dev/gemini-api/docs/rate-limits); its
      ``retryDelay`` is not the reset (diegosouzapw/OmniRoute#9504). Otherwise a per-minute
      quota, waiting ``RetryInfo.retryDelay``.
    - 503 ``UNAVAILABLE`` "The model is overloaded": the model is busy for everyone
      (google-gemini/cookbook#425).
    """
    error = reply.error
    details = [d for d in error.get("details") or () if isinstance(d, Mapping)]
    if any(d.get("reason") == "API_KEY_INVALID" for d in details):
        return Verdict(Action.RETIRE_KEY, reason="API key not valid (API_KEY_INVALID)")
    status = reply.status or error.get("code")
    if status == 429:
        quotas = [str(v.get("quotaId", "")) for d in details for v in d.get("violations") or ()
                  if isinstance(v, Mapping)]
        counts: Counts | None = "tokens" if any("Token" in q for q in quotas) else "requests" if quotas else None
        if any("PerDay" in quota for quota in quotas):
            return Verdict(Action.COOL_KEY, seconds_until_midnight("America/Los_Angeles"), "day", counts,
                           "per-day quota")
        delay = next((str(d["retryDelay"]) for d in details if "retryDelay" in d), "")
        return Verdict(Action.COOL_KEY, parse_duration(delay) if delay else None, "minute", counts,
                       "per-minute quota")
    if status == 503:
        return Verdict(Action.PROVIDER_BUSY, reason="model overloaded (503 UNAVAILABLE)")
    return None



def sdk_options(base_url: str | None, timeouts: Timeouts | None = None) -> dict[str, Any]:
    """google-genai takes its base URL, retry policy and timeout in ``http_options``; one attempt
    only. Its timeout is one number (milliseconds), which httpx applies to connecting and to
    each read alike: the read (idle) timeout is used for both."""
    http_options: dict[str, Any] = {"retry_options": {"attempts": 1}}
    if base_url:
        http_options["base_url"] = base_url
    if timeouts is not None:
        http_options["timeout"] = int(timeouts.read * 1000)
    return {"client_params": {"http_options": http_options}}


SPEC = ProviderSpec(
    name="gemini",
    default_model="gemini-2.5-flash",
    expected_keys=110,
    model_class="agno.models.google:Gemini",
    key_prefix="AIza",
    docs_url="https://aistudio.google.com/apikey",
    sdk_options=sdk_options,
    error_rules=error_rules,
    limits="hfs_provider_gemini:limits.toml",
    # 2.5 Pro has no free tier any more (limits.toml); 2.5 Flash thinks before it answers
    tiers={"reasoning": ["gemini-2.5-flash"], "general": ["gemini-2.5-flash"], "fast": ["gemini-2.5-flash-lite"]},
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Gemini provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Gemini keys are 39 characters starting with AIza."""
    return key_shape_problems(spec, env, r"AIza[0-9A-Za-z_-]{35}", "39 characters starting with AIza")
