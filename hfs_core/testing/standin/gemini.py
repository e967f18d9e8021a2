"""The Gemini ``generateContent``/``streamGenerateContent`` wire format (google-genai's REST shape).

Parses ``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (SSE with
``?alt=sse``) into a :class:`Request` and renders an :class:`Answer` as ``GenerateContentResponse``
JSON or SSE events, plus ``google.rpc.Status``-shaped error bodies.

Tools arrive as ``tools[].functionDeclarations[].name``; a tool call is answered with
``candidates[0].content.parts=[{"functionCall": {"name", "args"}, "thoughtSignature": ...}]`` (no
``id``, as the Gemini Developer API sends it; Agno makes up a call id then), in one event when
streaming, as Gemini does. The part carries a ``thoughtSignature`` (opaque base64 bytes), as Gemini
2.5 and later send with function calls when thinking is on, their default
(ai.google.dev/gemini-api/docs/thought-signatures); Agno keeps it on the tool call, to send it back.
Tool results come back as ``functionResponse`` parts (``{"name", "response"}``) in a ``user`` turn.

Every streamed event carries ``usageMetadata`` with the running counts: the prompt's tokens, the
answer's so far, and their total, so the last event's is the call's (a raw ``?alt=sse`` stream in
simonw/llm-gemini#97: both events carry it, ``candidatesTokenCount`` growing from 39 to 44).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator
from email.message import Message
from typing import Any
from urllib.parse import parse_qs

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

#: Paths this format serves.
PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$")

_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RATE_LIMIT_MESSAGE = "Resource has been exhausted (e.g. check quota)."
_BROKEN = "stream interrupted by stand-in"


def _signature() -> str:
    """An opaque thought signature (random bytes, base64), as Gemini attaches to a function call."""
    return base64.b64encode(uuid.uuid4().bytes * 2).decode("ascii")


def error_body(status: int, message: str) -> dict[str, Any]:
    """A Gemini-shaped error body."""
    return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}


def error_payload(decision: Decision) -> dict[str, Any]:
    """The error body answering a refused request; a 429 carries its back-off as ``RetryInfo``."""
    if decision.status != 429:
        return error_body(decision.status, decision.message)
    payload = error_body(429, _RATE_LIMIT_MESSAGE)
    if "retry-after-ms" in decision.headers:
        delay = int(decision.headers["retry-after-ms"]) / 1000
        payload["error"]["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay:.3f}s"}
        ]
    return payload


def _parts(content: Any) -> list[dict[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text(content: Any) -> str:
    return " ".join(str(p["text"]) for p in _parts(content) if isinstance(p.get("text"), str))


def _result_text(response: Any) -> str:
    """A ``functionResponse.response`` as text: Agno's ``{"result": ...}`` unwrapped, else JSON."""
    if isinstance(response, dict) and set(response) == {"result"}:
        response = response["result"]
    return response if isinstance(response, str) else json.dumps(response)


def _conversation(payload: dict[str, Any]) -> Conversation:
    contents = [c for c in payload.get("contents") or [] if isinstance(c, dict)]
    users = [i for i, c in enumerate(contents) if c.get("role", "user") == "user" and _text(c)]
    last_user = users[-1] if users else -1
    called: set[str] = set()
    results: list[ToolResult] = []
    fresh: list[ToolResult] = []
    for content in contents[last_user + 1 :]:
        if content.get("role") == "model":
            fresh.clear()
        for part in _parts(content):
            if isinstance(call := part.get("functionCall"), dict):
                called.add(str(call.get("name")))
            if isinstance(response := part.get("functionResponse"), dict):
                result = ToolResult(str(response.get("name")), _result_text(response.get("response")))
                results.append(result)
                fresh.append(result)
    tools = tuple(
        str(declaration["name"])
        for tool in payload.get("tools") or []
        if isinstance(tool, dict)
        for declaration in tool.get("functionDeclarations") or tool.get("function_declarations") or []
        if isinstance(declaration, dict) and "name" in declaration
    )
    texts = [_text(c) for c in contents]
    texts.append(_text(payload.get("systemInstruction") or payload.get("system_instruction")))
    return Conversation(
        user_text=_text(contents[last_user]) if last_user >= 0 else "",
        prompt_text=" ".join(t for t in texts if t),
        tools=tools,
        called=frozenset(called),
        results=tuple(results),
        fresh_results=tuple(fresh),
    )


def parse(route: str, query: str, headers: Message, raw: bytes) -> Request:
    """Parse one generateContent request; the key comes from ``x-goog-api-key`` or ``?key=``."""
    key = headers.get("x-goog-api-key") or next(iter(parse_qs(query).get("key") or []), None)
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
    match = PATH.search(route)
    if problem is None and not isinstance(payload.get("contents"), list):
        problem = "* GenerateContentRequest.contents: contents is not specified"
    return Request(
        provider="gemini",
        route=route,
        key=key or None,
        model=match.group("model") if match else "unknown",
        stream=bool(match and match.group("method") == "streamGenerateContent"),
        problem=problem,
        conversation=_conversation(payload) if problem is None else Conversation(),
    )


def body(request: Request, answer: Answer) -> dict[str, Any] | SseBody:
    """The 200 answer: a ``GenerateContentResponse``, or a series of them as SSE when streaming."""
    response_id = uuid.uuid4().hex[:22]
    prompt = count_tokens(request.conversation.prompt_text)
    if answer.tool_calls:
        pieces: list[list[dict[str, Any]]] = [
            [
                {"functionCall": {"name": call.name, "args": call.arguments}, "thoughtSignature": _signature()}
                for call in answer.tool_calls
            ]
        ]
        completion = count_tokens(json.dumps([p["functionCall"] for p in pieces[0]]))
    else:
        texts = split_pieces(answer.text) if request.stream else [answer.text]
        pieces = [[{"text": text}] for text in texts]
        completion = count_tokens(answer.text)

    def usage(completed: int) -> dict[str, int]:
        return {"promptTokenCount": prompt, "candidatesTokenCount": completed, "totalTokenCount": prompt + completed}

    def event(parts: list[dict[str, Any]], last: bool, completed: int) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if last:
            candidate["finishReason"] = "STOP"
        return {"candidates": [candidate], "usageMetadata": usage(completed), "modelVersion": request.model,
                "responseId": response_id}

    if not request.stream:
        return event(pieces[0], True, completion)

    def events() -> Iterator[bytes]:
        said = ""
        for i, parts in enumerate(pieces):
            last = i == len(pieces) - 1
            said += "".join(str(part.get("text", "")) for part in parts)
            so_far = completion if last else count_tokens(said)
            yield b"data: " + json.dumps(event(parts, last, so_far)).encode() + b"\r\n\r\n"

    error_event = b"data: " + json.dumps(error_body(503, _BROKEN)).encode() + b"\r\n\r\n"
    return SseBody(events(), first_content=0, error_event=error_event)
