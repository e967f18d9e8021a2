"""The OpenAI-style chat-completions wire format (groq, cerebras, openrouter, openai).

Parses ``POST .../chat/completions`` bodies into a :class:`Request` and renders an :class:`Answer` as a
``chat.completion`` JSON body or as ``chat.completion.chunk`` server-sent events, plus error bodies.

Streamed tool calls follow OpenAI's delta format (the ``ChoiceDeltaToolCall`` type of the ``openai``
SDK, ``openai/types/chat/chat_completion_chunk.py``; described in "Streaming tool calls" at
https://docs.opper.ai/build/chat/streaming): the first delta of each call carries ``index``, ``id``,
``type`` and ``function.name`` with empty ``arguments``; later deltas carry only ``index`` and a
fragment of ``function.arguments``; the last chunk has ``finish_reason: "tool_calls"``.

On Groq's route (``/openai/v1/...``) a tool call sent back in the history with a field beyond ``id``,
``type`` and ``function`` is refused with a 400, as Groq refuses properties it does not know in a
message ("'messages.2' : for 'role:assistant' the following must be satisfied[('messages.2' :
property 'reasoning' is unsupported...)]", karthink/gptel#774; "property 'store' is unsupported",
fanenr/chatbot#21); the wording for a tool call's field follows that shape.

A stream reports its usage where each provider puts it (the provider is told by the route, or for
OpenRouter by its ``sk-or-`` key prefix):

- Groq (``/openai/v1/...``): ``x_groq.usage`` on the chunk with ``finish_reason``, unasked (raw
  stream in Portkey-AI/gateway#1072); with ``stream_options.include_usage`` also OpenAI's extra
  usage chunk (Portkey-AI/gateway#1338).
- Cerebras (``/v1/chat/completions``): ``usage`` and ``time_info`` on the chunk with
  ``finish_reason``, unasked (a recorded Cerebras stream without ``stream_options``:
  zanetworker/llama-stack ``tests/integration/recordings/responses/eefb4206a4a9.json``).
- OpenRouter: always, on one more chunk after the one with ``finish_reason``, whose choice has an
  empty delta and no ``finish_reason``; ``stream_options`` has no effect
  (https://openrouter.ai/docs/use-cases/usage-accounting: "included in the last SSE message ... No
  additional parameters are required"; the chunk's shape from a live stream in speakeasy-api/gram#921).
- OpenAI (any other key on ``/chat/completions``): only when ``stream_options.include_usage`` asks,
  as an extra last chunk with empty ``choices`` (the ``stream_options`` reference of the ``openai``
  SDK, ``openai/types/chat/chat_completion_stream_options_param.py``).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from email.message import Message
from typing import Any

from hfs_core.testing.standin.exchange import (
    Answer,
    Conversation,
    Decision,
    Request,
    SseBody,
    ToolResult,
    count_tokens,
    split_pieces,
)

_ERROR_KIND: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    402: ("insufficient_quota", "insufficient_quota"),
    403: ("permission_denied", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("internal_server_error", "internal_server_error"),
    502: ("internal_server_error", "bad_gateway"),
    503: ("internal_server_error", "service_unavailable"),
    504: ("internal_server_error", "timeout"),
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """An OpenAI-shaped error body."""
    err_type, code = _ERROR_KIND.get(status, ("api_error", "error"))
    return {"error": {"message": message, "type": err_type, "code": code}}


def error_payload(decision: Decision) -> dict[str, Any]:
    """The error body answering a refused request."""
    return error_body(decision.status, decision.message)


def _text(content: Any) -> str:
    """Text of a message ``content`` (a string or a list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return " ".join(t for t in texts if t)
    return ""


def _conversation(payload: dict[str, Any]) -> Conversation:
    messages = [m for m in payload.get("messages") or [] if isinstance(m, dict)]
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    turn = messages[last_user + 1 :]
    names: dict[str, str] = {}
    called: set[str] = set()
    results: list[ToolResult] = []
    fresh: list[ToolResult] = []
    for message in turn:
        if message.get("role") == "assistant":
            fresh.clear()
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                called.add(str(function.get("name")))
                names[str(call.get("id"))] = str(function.get("name"))
        elif message.get("role") == "tool":
            name = str(message.get("name") or names.get(str(message.get("tool_call_id")), "tool"))
            result = ToolResult(name, _text(message.get("content")))
            results.append(result)
            fresh.append(result)
    tools = tuple(
        str(tool["function"]["name"])
        for tool in payload.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict) and "name" in tool["function"]
    )
    return Conversation(
        user_text=_text(messages[last_user].get("content")) if last_user >= 0 else "",
        prompt_text=" ".join(_text(m.get("content")) for m in messages),
        tools=tools,
        called=frozenset(called),
        results=tuple(results),
        fresh_results=tuple(fresh),
    )


_TOOL_CALL_FIELDS = frozenset({"id", "type", "function"})


def _unsupported_tool_call_field(messages: list[Any]) -> str | None:
    """Groq's 400 message for the first tool call in the history with a field it does not take, else None."""
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        for number, call in enumerate(message.get("tool_calls") or []):
            extra = sorted(set(call) - _TOOL_CALL_FIELDS) if isinstance(call, dict) else []
            if extra:
                where = f"messages.{index}"
                return (f"'{where}' : for 'role:{message.get('role')}' the following must be satisfied"
                        f"[('{where}.tool_calls.{number}' : property '{extra[0]}' is unsupported)]")
    return None


def _answer_cap(payload: dict[str, Any]) -> int:
    """The request's cap on its answer: the larger of ``max_completion_tokens`` and ``max_tokens``
    (0 when neither is set; Cerebras takes -1 for none)."""
    caps = [value for value in (payload.get("max_completion_tokens"), payload.get("max_tokens"))
            if isinstance(value, int) and not isinstance(value, bool) and value > 0]
    return max(caps, default=0)


def parse(route: str, query: str, headers: Message, raw: bytes) -> Request:
    """Parse one chat-completions request; the key comes from ``Authorization: Bearer <key>``."""
    scheme, _, token = (headers.get("Authorization") or "").partition(" ")
    key = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    payload: dict[str, Any] = {}
    problem: str | None = None
    try:
        loaded = json.loads(raw) if raw else None
        if isinstance(loaded, dict):
            payload = loaded
        else:
            problem = "Request body must be a JSON object."
    except (ValueError, UnicodeDecodeError):
        problem = "Invalid JSON in request body."
    model = str(payload.get("model") or "")
    groq = route.startswith("/openai/")
    if problem is None and not model:
        problem = "'model' : property 'model' is missing"
    elif problem is None and not isinstance(payload.get("messages"), list):
        problem = "'messages' : property 'messages' is missing or not an array"
    elif problem is None and groq:
        problem = _unsupported_tool_call_field(payload["messages"])
    return Request(
        provider="openai",
        route=route,
        key=key,
        model=model or "unknown",
        stream=bool(payload.get("stream")),
        problem=problem,
        conversation=_conversation(payload) if problem is None else Conversation(),
        options={
            "groq": groq,
            "cerebras": route == "/v1/chat/completions",
            "openrouter": not groq and (key or "").startswith("sk-or-"),
            "answer_cap": _answer_cap(payload),
            "include_usage": bool((payload.get("stream_options") or {}).get("include_usage")),
        },
    )


def _tool_calls(answer: Answer) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
        }
        for call in answer.tool_calls
    ]


def usage(request: Request, answer: Answer) -> dict[str, int]:
    """The usage an answer reports: the prompt's tokens, the answer's and their total."""
    prompt = count_tokens(request.conversation.prompt_text)
    completion = count_tokens(answer.text or json.dumps(_tool_calls(answer)))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def body(request: Request, answer: Answer) -> dict[str, Any] | SseBody:
    """The 200 answer: a ``chat.completion`` object, or chunk events when the request streams."""
    if request.stream:
        return SseBody(_events(request, answer), first_content=1, error_event=_sse(error_body(503, _BROKEN)))
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = _tool_calls(answer)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "system_fingerprint": "fp_standin",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if answer.tool_calls else "stop",
            }
        ],
        "usage": usage(request, answer),
    }


_BROKEN = "stream interrupted by stand-in"


def _sse(event: Any) -> bytes:
    return b"data: " + json.dumps(event).encode() + b"\n\n"


def _events(request: Request, answer: Answer) -> Iterator[bytes]:
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    used = usage(request, answer)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        return _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "system_fingerprint": "fp_standin",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
        )

    if answer.tool_calls:
        for index, call in enumerate(answer.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            first: dict[str, Any] = {"role": "assistant", "content": None} if index == 0 else {}
            yield chunk({**first, "tool_calls": [head]})
            for fragment in split_pieces(json.dumps(call.arguments), 3):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        finish = "tool_calls"
    else:
        yield chunk({"role": "assistant", "content": ""})
        for piece in split_pieces(answer.text):
            yield chunk({"content": piece})
        finish = "stop"
    extra: dict[str, Any] = {}
    if request.options.get("groq"):
        extra["x_groq"] = {"id": f"req_{uuid.uuid4().hex[:24]}", "usage": used}
    elif request.options.get("cerebras"):
        extra["usage"] = used
        extra["time_info"] = {"queue_time": 0.0001, "prompt_time": 0.001, "completion_time": 0.002,
                              "total_time": 0.003, "created": created}
    yield chunk({}, finish, **extra)
    if request.options.get("openrouter"):
        yield chunk({"role": "assistant", "content": ""}, usage=used)
    elif request.options.get("include_usage") and not request.options.get("cerebras"):
        yield _sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": request.model,
                "system_fingerprint": "fp_standin",
                "choices": [],
                "usage": used,
            }
        )
    yield b"data: [DONE]\n\n"
