"""Provider-neutral values passed between the wire formats, the behaviours and the HTTP handler."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Literal, Protocol

Provider = Literal["openai", "gemini"]


def key_label(key: str | None) -> str:
    """Return the public label of ``key``: its last four characters (``"<none>"`` when missing)."""
    if not key:
        return "<none>"
    return key[-4:]


def key_digest(key: str) -> str:
    """The name the stand-in keeps ``key`` under: its SHA-256 digest (a full key is never stored)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def retry_headers(wait: float) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1) and ``retry-after-ms`` for a wait of ``wait`` seconds."""
    wait = max(0.0, wait)
    return {
        "Retry-After": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }


def count_tokens(text: str) -> int:
    """Deterministic token estimate: the number of whitespace-separated words, at least 1."""
    return max(1, len(text.split()))


def split_pieces(text: str, pieces: int = 4) -> list[str]:
    """Split ``text`` into at most ``pieces`` non-empty parts (by words) that concatenate to it."""
    words = re.findall(r"\s*\S+\s*", text)
    if len(words) <= 1:
        return [text]
    count = min(pieces, len(words))
    size = math.ceil(len(words) / count)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


@dataclass(frozen=True)
class ToolCall:
    """One function call the stand-in answers with; ``id`` is the call id (OpenAI style only)."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """One tool result the client sent back: the tool's name and its result as text."""

    name: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """What the behaviours need to know of a request, whatever its wire format.

    ``called`` and ``results`` cover the turn since the last user message; ``fresh_results`` are the
    results sent after the model's last turn (the ones new in this request).
    """

    user_text: str = ""
    prompt_text: str = ""
    tools: tuple[str, ...] = ()
    called: frozenset[str] = frozenset()
    results: tuple[ToolResult, ...] = ()
    fresh_results: tuple[ToolResult, ...] = ()


@dataclass(frozen=True)
class Answer:
    """A successful model turn: ``text``, or ``tool_calls`` when it calls tools."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Request:
    """One parsed LLM request. ``problem`` is the 400 message of a malformed request, else ``None``."""

    provider: Provider
    route: str
    key: str | None
    model: str
    stream: bool
    problem: str | None
    conversation: Conversation
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The fate of one request, decided at arrival: an HTTP status, its message and extra headers, or a
    recorded reply to send instead of the wire format's own (``replay``)."""

    status: int
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    replay: Replay | None = None


@dataclass(frozen=True)
class StreamBreak:
    """Break this stream after ``chunks`` content chunks: send an error event, or ``abort`` the connection.

    ``event`` is the SSE frame to send instead of the wire format's own error event (a recorded one).
    """

    chunks: int
    mode: Literal["error", "abort"]
    event: bytes | None = None


@dataclass(frozen=True)
class Replay:
    """A recorded reply sent as it is, instead of a wire format's own answer.

    ``name`` is the catalogue name the statistics count it under. A plain reply is ``status``,
    ``headers`` and the exact ``body`` bytes. An error inside a 200 stream has ``stream_after`` set:
    ``body`` is then the SSE frame sent after that many content chunks.
    """

    name: str
    status: int
    headers: dict[str, str]
    body: bytes
    content_type: str = "application/json"
    stream_after: int | None = None


@dataclass(frozen=True)
class SseBody:
    """A server-sent-events body: ``events`` are complete SSE frames; ``first_content`` is the index
    of the first content-bearing frame (earlier ones are preamble); ``error_event`` ends a broken stream."""

    events: Iterator[bytes]
    first_content: int
    error_event: bytes


@dataclass(frozen=True)
class Plan:
    """Everything the HTTP handler needs to answer one request: the decision, how long to wait
    first, the delay between streamed chunks, the answer (accepted requests only), a stream break,
    and a recorded reply to send as it is (then ``answer`` is ``None``)."""

    decision: Decision
    delay: float
    chunk_delay: float
    answer: Answer | None = None
    stream_break: StreamBreak | None = None
    replay: Replay | None = None


class WireFormat(Protocol):
    """A provider wire format; the modules ``openai`` and ``gemini`` of this package are the two."""

    def parse(self, route: str, query: str, headers: Message, raw: bytes) -> Request:
        """Parse one request (key, model, stream flag, validity, conversation)."""

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """A provider-shaped error body."""

    def error_payload(self, decision: Decision) -> dict[str, Any]:
        """The error body answering a refused request."""

    def body(self, request: Request, answer: Answer) -> dict[str, Any] | SseBody:
        """The 200 answer: a JSON body, or SSE frames when the request streams."""
