"""What a call reads from and writes on Agno's messages and chunks, and the messages one provider is sent.

Every response and chunk says which provider and model served it, in its provider data
(``response.provider_data["hfs"] == {"provider": "groq", "model": "..."}``; Agno copies it onto the
assistant message, and onto ``RunOutput.model_provider_data``). Messages are shared between
providers as Agno keeps them, with one change: a tool call another provider made is sent with
only the fields every provider shares (`for_provider`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SERVED_BY = "hfs"
"""The provider-data key naming the provider and model that served a response."""
_SHARED_CALL_FIELDS = ("id", "type", "function")
"""The fields of a tool call every provider takes (OpenAI's shape, which Agno keeps for all)."""
_CONTENT_FIELDS = ("content", "tool_calls", "reasoning_content", "redacted_reasoning_content", "audio", "images",
                   "videos", "files", "citations")


def carries(chunk: Any) -> bool:
    """Whether a stream chunk carries something the caller uses (not an empty role or usage delta)."""
    return any(getattr(chunk, name, None) for name in _CONTENT_FIELDS)


def tokens(response: Any) -> int | None:
    """The tokens a response or chunk says it used, if it says."""
    usage = getattr(response, "response_usage", None)
    total = getattr(usage, "total_tokens", None)
    return int(total) if total else None


def tag(chunk: Any, model: Any) -> Any:
    """`chunk` with the provider and model that served it in its provider data."""
    data = getattr(chunk, "provider_data", None)
    chunk.provider_data = {**(data or {}), SERVED_BY: {"provider": model.pool.provider, "model": model.id}}
    return chunk


def _shared_only(message: Any) -> Any:
    """A copy of an assistant message whose tool calls keep only the fields every provider takes."""
    calls = [{k: call[k] for k in _SHARED_CALL_FIELDS if k in call} for call in message.tool_calls]
    return message.model_copy(update={"tool_calls": calls})


def for_provider(messages: Sequence[Any], provider: str) -> Sequence[Any]:
    """`messages` as `provider` may be sent them (the same list when nothing changes).

    A tool call made on another provider (its message's provider data names who served it) may hold
    fields of that provider's own: Gemini's ``thought_signature``, which it needs back, but which
    Groq refuses ("property ... is unsupported", as for ``reasoning`` in karthink/gptel#774). It is
    sent to `provider` with only `_SHARED_CALL_FIELDS`; the conversation itself is left as it is.
    """
    def foreign(message: Any) -> bool:
        served = (getattr(message, "provider_data", None) or {}).get(SERVED_BY)
        return (bool(getattr(message, "tool_calls", None)) and isinstance(served, Mapping)
                and served.get("provider") != provider
                and any(set(call) - set(_SHARED_CALL_FIELDS) for call in message.tool_calls))

    if not any(foreign(m) for m in messages):
        return messages
    return [_shared_only(m) if foreign(m) else m for m in messages]


def provider_kwargs(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of Agno's call, with the messages as `model`'s provider may be sent them."""
    messages = kwargs.get("messages")
    if not messages:
        return kwargs
    shown = for_provider(messages, model.pool.provider)
    return kwargs if shown is messages else {**kwargs, "messages": shown}
