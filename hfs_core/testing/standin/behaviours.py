"""Scripted behaviours of the stand-in: key states, rate limits, faults, broken streams, replies, tool calls
and replayed recorded provider failures.

:class:`Behaviours` holds this state behind one lock and turns a parsed :class:`Request` into a
:class:`Decision` (status, message, headers) and, for accepted requests, an :class:`Answer` (text or
tool calls). It knows nothing of HTTP or of any wire format. Full keys are kept only as SHA-256
digests. Each concern is a part of its own: :class:`KeyRules` (`keys`), :class:`TokenRules` (`tokens`:
Cerebras's token limit), :class:`Faults` (`faults`),
:class:`Replays` (`replays`) and :class:`ToolScripts` (`tool_scripts`); the plain settings (latency,
reply) and the two decisions are here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from hfs_core.testing.standin.exchange import Answer, Conversation, Decision, Provider
from hfs_core.testing.standin.faults import Faults
from hfs_core.testing.standin.keys import KeyRules
from hfs_core.testing.standin.replays import Replays
from hfs_core.testing.standin.tokens import TokenRules
from hfs_core.testing.standin.tool_scripts import ToolScripts

#: A fixed reply text, or a function from the last user message text to the reply text.
Reply = str | Callable[[str], str] | None


class Behaviours(KeyRules, TokenRules, Faults, Replays, ToolScripts):
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
        self._reply: Reply = reply
        self._init_keys(rpm, window, accept_any_key, keys)
        self._init_tokens()
        self._init_faults()
        self._init_replays()
        self._init_tool_scripts()

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

    # ------------------------------------------------------------------ reset

    def reset(self) -> None:
        """Clear faults, rate-limit windows and tokens counted, key states, per-key and group limits,
        scripted tool calls and replays."""
        with self._lock:
            self._clear_replays()
            self._clear_faults()
            self._clear_keys()
            self._clear_tokens()
            self._tool_scripts.clear()

    # ------------------------------------------------------------------ decisions

    def decide(self, key: str | None, model: str, problem: str | None, wire: Provider = "openai") -> Decision:
        """Decide the fate of one request at arrival: faults, key state, validation, rate limits.

        ``problem`` is ``None`` for a well-formed request or its 400 message otherwise; ``wire`` is the
        route's wire format. An accepted request (200) takes a place in its key's rate-limit window
        and its group's.
        """
        now = time.monotonic()
        with self._lock:
            fault = self._fault_due(now)
            return fault if fault is not None else self._judge_key(key, model, problem, now, wire)

    def answer(self, conversation: Conversation) -> Answer:
        """The model turn for an accepted request: scripted tool calls still due, else the reply text."""
        with self._lock:
            reply = self._reply
            due = self._due_tool_calls(conversation)
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
