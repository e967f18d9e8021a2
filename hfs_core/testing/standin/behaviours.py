"""Scripted behaviours of the stand-in: key states, rate limits, faults, broken streams, replies, tool calls
and replayed recorded provider failures.

:class:`Behaviours` holds this state behind one lock and turns a parsed :class:`Request` into a
:class:`Decision` (status, message, headers) and, for accepted requests, an :class:`Answer` (text or
tool calls). It knows nothing of HTTP or of any wire format. Full keys are kept only as SHA-256
digests.
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hfs_core.testing.standin.exchange import (
    Answer,
    Conversation,
    Decision,
    Provider,
    Replay,
    StreamBreak,
    ToolCall,
    key_label,
)
from hfs_core.testing.standin.recorded import RECORDED, Recorded

#: Statuses accepted by :meth:`Behaviours.set_key`.
KEY_STATUSES: frozenset[int] = frozenset({200, 401, 402, 403, 429, 503})

#: A fixed reply text, or a function from the last user message text to the reply text.
Reply = str | Callable[[str], str] | None

#: Tool-call arguments: a fixed mapping, or a function of the last user message text.
ToolArguments = Mapping[str, Any] | Callable[[str], Mapping[str, Any]]

StreamFailMode = Literal["error", "abort"]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _retry_headers(wait: float) -> dict[str, str]:
    wait = max(0.0, wait)
    return {
        "Retry-After": str(max(1, math.ceil(wait))),
        "retry-after-ms": str(max(1, math.ceil(wait * 1000))),
    }


def _ratelimit_headers(limit: int, remaining: int, reset: float) -> dict[str, str]:
    return {
        "x-ratelimit-limit-requests": str(limit),
        "x-ratelimit-remaining-requests": str(max(0, remaining)),
        "x-ratelimit-reset-requests": f"{max(0.0, reset):.3f}s",
    }


def _key_state_message(state: int, hint: str) -> str:
    if state == 401:
        return f"Invalid API Key (key ending in {hint})."
    if state == 402:
        return f"Payment required: credits exhausted for the key ending in {hint}."
    if state == 403:
        return f"Permission denied: the organization of the key ending in {hint} is restricted."
    return "Service unavailable. Please try again later."


@dataclass(frozen=True)
class _Fault:
    status: int
    message: str
    retry_after: float | None

    def decision(self) -> Decision:
        headers = _retry_headers(self.retry_after) if self.retry_after is not None else {}
        return Decision(self.status, self.message, headers)


class ReplayMismatchError(ValueError):
    """A recorded reply was due for a request whose route speaks another wire format (a test's mistake)."""


@dataclass
class _PendingReplay:
    entry: Recorded
    left: int | None
    wait: float | None
    after_chunks: int

    def claim(self) -> Replay:
        rendered = self.entry.render(self.wait)
        if self.entry.in_stream:
            event = self.entry.sse_event(rendered.body)
            return Replay(self.entry.name, 200, {}, event, stream_after=self.after_chunks)
        return Replay(self.entry.name, rendered.status, rendered.headers, rendered.body)


@dataclass(frozen=True)
class _ToolScript:
    name: str
    arguments: ToolArguments

    def call(self, user_text: str) -> ToolCall:
        args = self.arguments(user_text) if callable(self.arguments) else self.arguments
        return ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=self.name, arguments=dict(args))


class Behaviours:
    """Thread-safe, live-adjustable behaviour of the stand-in (the configuration half of ``StandIn``)."""

    def __init__(
        self,
        latency: float = 0.0,
        rpm: int | None = None,
        window: float = 60.0,
        accept_any_key: bool = True,
        keys: Iterable[str] = (),
        *,
        reply: Reply = None,
        error_latency: float | None = None,
        chunk_delay: float = 0.0,
    ) -> None:
        self._lock = threading.Lock()
        self._latency = float(latency)
        self._error_latency = error_latency
        self._chunk_delay = float(chunk_delay)
        self._rpm = rpm
        self._window = float(window)
        self._accept_any_key = accept_any_key
        self._reply: Reply = reply
        self._tool_scripts: dict[str, _ToolScript] = {}
        self._key_status: dict[str, int] = {}
        self._key_limits: dict[str, int | None] = {}
        self._accepted_at: dict[str, collections.deque[float]] = {}
        self._fail_next: collections.deque[_Fault] = collections.deque()
        self._fail_until = 0.0
        self._fail_for_fault: _Fault | None = None
        self._stream_fail_chunks: int | None = None
        self._stream_fail_mode: StreamFailMode = "error"
        self._stream_fail_times: int | None = None
        self._replays: dict[str, collections.deque[_PendingReplay]] = {}
        self._replays_all: collections.deque[_PendingReplay] = collections.deque()
        for key in keys:
            self._key_status[_digest(key)] = 200

    # ------------------------------------------------------------------ plain settings

    @property
    def latency(self) -> float:
        """Seconds slept before answering each LLM request."""
        return self._latency

    @latency.setter
    def latency(self, value: float) -> None:
        with self._lock:
            self._latency = float(value)

    @property
    def reply(self) -> Reply:
        """The reply text (or function of the last user message); ``None`` means the default echo."""
        return self._reply

    @reply.setter
    def reply(self, value: Reply) -> None:
        with self._lock:
            self._reply = value

    @property
    def accept_any_key(self) -> bool:
        """Whether unregistered keys are accepted."""
        return self._accept_any_key

    @accept_any_key.setter
    def accept_any_key(self, value: bool) -> None:
        with self._lock:
            self._accept_any_key = bool(value)

    def configure(
        self,
        *,
        latency: float | None = None,
        error_latency: float | None = None,
        chunk_delay: float | None = None,
        reply: str | None = None,
        accept_any_key: bool | None = None,
    ) -> None:
        """Change several plain settings at once (``None`` leaves a setting unchanged)."""
        with self._lock:
            if latency is not None:
                self._latency = float(latency)
            if error_latency is not None:
                self._error_latency = float(error_latency)
            if chunk_delay is not None:
                self._chunk_delay = float(chunk_delay)
            if reply is not None:
                self._reply = reply
            if accept_any_key is not None:
                self._accept_any_key = bool(accept_any_key)

    def delays(self) -> tuple[float, float, float]:
        """``(latency, error_latency, chunk_delay)`` in seconds."""
        with self._lock:
            error_latency = self._latency if self._error_latency is None else self._error_latency
            return self._latency, error_latency, self._chunk_delay

    # ------------------------------------------------------------------ keys and limits

    def set_limit(self, rpm: int | None, window: float | None = None) -> None:
        """Set the default per-key limit: ``rpm`` requests per ``window`` seconds (``None`` = unlimited)."""
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 or None")
        with self._lock:
            self._rpm = rpm
            if window is not None:
                if window <= 0:
                    raise ValueError("window must be > 0")
                self._window = float(window)

    def set_key_limit(self, key: str, rpm: int | None) -> None:
        """Override the request limit for one key (``None`` = unlimited for that key)."""
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 or None")
        with self._lock:
            self._key_limits[_digest(key)] = rpm

    def clear_key_limit(self, key: str) -> None:
        """Remove a per-key limit override; the key falls back to the default limit."""
        with self._lock:
            self._key_limits.pop(_digest(key), None)

    def set_key(self, key: str, status: int = 200) -> None:
        """Register ``key`` with a state: 200 live, 401 invalid, 402 out of credits, 403 forbidden,
        429 always rate limited, 503 unavailable."""
        if status not in KEY_STATUSES:
            raise ValueError(f"status must be one of {sorted(KEY_STATUSES)}")
        with self._lock:
            self._key_status[_digest(key)] = status

    def remove_key(self, key: str) -> None:
        """Forget a registered key (it is then accepted only when ``accept_any_key`` is on)."""
        with self._lock:
            self._key_status.pop(_digest(key), None)

    # ------------------------------------------------------------------ faults

    def fail_next(
        self, n: int = 1, status: int = 503, message: str = "overloaded", retry_after: float | None = None
    ) -> None:
        """Make the next ``n`` LLM requests (any key) fail with ``status``.

        ``retry_after`` (seconds) adds ``Retry-After``/``retry-after-ms`` headers.
        """
        with self._lock:
            self._fail_next.extend(_Fault(status, message, retry_after) for _ in range(max(0, n)))

    def fail_for(
        self, seconds: float, status: int = 503, message: str = "overloaded", retry_after: float | None = None
    ) -> None:
        """Fail every LLM request with ``status`` for the next ``seconds`` seconds."""
        with self._lock:
            self._fail_until = time.monotonic() + seconds
            self._fail_for_fault = _Fault(status, message, retry_after)

    def stream_fail_after(
        self, chunks: int | None, *, mode: StreamFailMode = "error", times: int | None = None
    ) -> None:
        """Break streamed responses after ``chunks`` content chunks (``None`` turns this off).

        ``mode="error"`` sends a provider-shaped error event and closes the stream (the SDKs raise
        their ``APIError``); ``mode="abort"`` drops the connection mid-body. ``times`` limits how many
        streams break (``None`` = every stream until cleared).
        """
        if mode not in ("error", "abort"):
            raise ValueError("mode must be 'error' or 'abort'")
        with self._lock:
            self._stream_fail_chunks = chunks
            self._stream_fail_mode = mode
            self._stream_fail_times = times

    def clear_faults(self) -> None:
        """Drop pending ``fail_next``/``fail_for``/``stream_fail_after`` faults."""
        with self._lock:
            self._clear_faults()

    # ------------------------------------------------------------------ recorded replies

    def replay(
        self, key: str, name: str, *, times: int | None = None, wait: float | None = None, after_chunks: int = 0
    ) -> None:
        """Answer requests made with ``key`` with the recorded reply ``name`` (see :data:`RECORDED`).

        ``times=None`` answers every request on the key until :meth:`clear_replays`; ``times=N`` the
        next N. Replies queued for one key are used in order. ``wait`` (seconds) fills the reply's
        time-dependent values (default: the recorded ones). An in-stream reply answers streaming
        requests only: a 200 stream whose error event comes after ``after_chunks`` content chunks.
        """
        pending = self._pending(name, times, wait, after_chunks)
        with self._lock:
            self._replays.setdefault(_digest(key), collections.deque()).append(pending)

    def replay_all(
        self, name: str, *, times: int | None = None, wait: float | None = None, after_chunks: int = 0
    ) -> None:
        """Like :meth:`replay`, for requests on any key (a provider-wide failure); a key's own replays
        come first."""
        pending = self._pending(name, times, wait, after_chunks)
        with self._lock:
            self._replays_all.append(pending)

    def clear_replays(self) -> None:
        """Drop every pending recorded reply."""
        with self._lock:
            self._replays.clear()
            self._replays_all.clear()

    def claim_replay(self, key: str | None, wire: Provider, stream: bool) -> Replay | None:
        """Take the recorded reply due for a request on ``key`` in wire format ``wire``, if any.

        Raises:
            ReplayMismatchError: the reply due belongs to the other wire format (it is not used up).
        """
        with self._lock:
            queues = [self._replays.get(_digest(key)) if key else None, self._replays_all]
            for queue in queues:
                if not queue or (queue[0].entry.in_stream and not stream):
                    continue
                pending = queue[0]
                if pending.entry.wire != wire:
                    raise ReplayMismatchError(
                        f"recorded reply {pending.entry.name!r} is in the {pending.entry.wire} wire format "
                        f"but the request came on a {wire} route"
                    )
                if pending.left is not None:
                    pending.left -= 1
                    if pending.left == 0:
                        queue.popleft()
                return pending.claim()
            return None

    @staticmethod
    def _pending(name: str, times: int | None, wait: float | None, after_chunks: int) -> _PendingReplay:
        entry = RECORDED.get(name)
        if entry is None:
            raise ValueError(f"unknown recorded reply {name!r}; known: {', '.join(sorted(RECORDED))}")
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 or None")
        if wait is not None and (wait < 0 or entry.wait is None):
            raise ValueError(f"wait must be >= 0 and {name!r} must have a time-dependent value")
        if after_chunks < 0 or (after_chunks and not entry.in_stream):
            raise ValueError("after_chunks must be >= 0, and only in-stream replies take it")
        return _PendingReplay(entry, times, wait, after_chunks)

    # ------------------------------------------------------------------ tool calls

    def script_tool_call(self, name: str, arguments: ToolArguments | None = None) -> None:
        """Call tool ``name`` with ``arguments`` whenever a request offers it and has not called it yet.

        ``arguments`` is a mapping or a function of the last user message text (default ``{}``).
        Once the conversation holds the tool's result, the model answers with text instead: the
        reply followed by ``[name -> result]`` for each tool result since the last user message.
        Scripting a name again replaces its arguments.
        """
        with self._lock:
            self._tool_scripts[name] = _ToolScript(name, {} if arguments is None else arguments)

    def clear_tool_calls(self) -> None:
        """Forget every scripted tool call (requests get text answers again)."""
        with self._lock:
            self._tool_scripts.clear()

    # ------------------------------------------------------------------ reset

    def reset(self) -> None:
        """Clear faults, rate-limit windows, key states, per-key limits, scripted tool calls and replays."""
        with self._lock:
            self._replays.clear()
            self._replays_all.clear()
            self._clear_faults()
            self._key_status.clear()
            self._key_limits.clear()
            self._accepted_at.clear()
            self._tool_scripts.clear()

    def _clear_faults(self) -> None:
        self._fail_next.clear()
        self._fail_until = 0.0
        self._fail_for_fault = None
        self._stream_fail_chunks = None
        self._stream_fail_times = None

    # ------------------------------------------------------------------ decisions

    def decide(self, key: str | None, model: str, problem: str | None) -> Decision:
        """Decide the fate of one request at arrival: faults, key state, validation, rate limit.

        ``problem`` is ``None`` for a well-formed request or its 400 message otherwise. An accepted
        request (200) takes a place in its key's rate-limit window.
        """
        now = time.monotonic()
        with self._lock:
            if self._fail_next:
                return self._fail_next.popleft().decision()
            if self._fail_for_fault is not None and now < self._fail_until:
                return self._fail_for_fault.decision()
            hint = f"...{key_label(key)}"
            if not key:
                return Decision(401, "Missing API key.")
            digest = _digest(key)
            state = self._key_status.get(digest)
            if state is None:
                if not self._accept_any_key:
                    return Decision(401, f"Invalid API Key (key ending in {hint}).")
                state = 200
            if state == 429:
                return Decision(
                    429,
                    f"Rate limit reached for requests per minute (RPM) on model `{model}` for key ending "
                    f"in {hint}. Please try again later.",
                    _retry_headers(self._window),
                )
            if state != 200:
                return Decision(state, _key_state_message(state, hint))
            if problem is not None:
                return Decision(400, problem)
            return self._admit(digest, model, hint, now)

    def _admit(self, digest: str, model: str, hint: str, now: float) -> Decision:
        """Apply the sliding-window limit of one key (lock held)."""
        limit = self._key_limits.get(digest, self._rpm)
        window = self._window
        accepted = self._accepted_at.setdefault(digest, collections.deque())
        cutoff = now - window
        while accepted and accepted[0] <= cutoff:
            accepted.popleft()
        if limit is not None and len(accepted) >= limit:
            wait = (accepted[0] + window - now) if accepted else window
            headers = _retry_headers(wait)
            headers.update(_ratelimit_headers(limit, 0, wait))
            return Decision(
                429,
                f"Rate limit reached for requests per minute (RPM) on model `{model}` for key ending in "
                f"{hint}: Limit {limit}, Used {len(accepted)}, Requested 1. "
                f"Please try again in {max(wait, 0.0):.3f}s.",
                headers,
            )
        accepted.append(now)
        if limit is None:
            return Decision(200)
        return Decision(200, headers=_ratelimit_headers(limit, limit - len(accepted), accepted[0] + window - now))

    def claim_stream_break(self) -> StreamBreak | None:
        """Claim one broken stream, if configured."""
        with self._lock:
            chunks = self._stream_fail_chunks
            if chunks is None:
                return None
            if self._stream_fail_times is not None:
                if self._stream_fail_times <= 0:
                    return None
                self._stream_fail_times -= 1
            return StreamBreak(chunks, self._stream_fail_mode)

    def answer(self, conversation: Conversation) -> Answer:
        """The model turn for an accepted request: scripted tool calls still due, else the reply text."""
        with self._lock:
            reply = self._reply
            due = [
                script
                for name, script in self._tool_scripts.items()
                if name in conversation.tools and name not in conversation.called
            ]
        if due:
            return Answer(tool_calls=tuple(script.call(conversation.user_text) for script in due))
        if reply is None:
            text = "stand-in reply: " + conversation.user_text
        elif callable(reply):
            text = reply(conversation.user_text)
        else:
            text = reply
        for result in conversation.results:
            text += f" [{result.name} -> {result.content}]"
        return Answer(text=text)
