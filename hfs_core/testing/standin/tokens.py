"""Cerebras's token limit in the stand-in: `TokenRules`, one part of its behaviours.

Cerebras counts a request against its key's tokens when it arrives: the prompt's tokens plus the
request's ``max_completion_tokens`` (or ``max_tokens``, the SDK's other name for it); when that is
more than the tokens left, it refuses the request before processing it
(inference-docs.cerebras.ai/support/rate-limits, "Token Rate Limiting"), here with its recorded
429 ``token_quota_exceeded`` (``cerebras.per_minute_tokens`` in `recorded`). Once the answer is
sent, the request counts the tokens its usage reports instead. A request with no cap counts its
prompt alone: Cerebras then adds its own bound on the answer, which the stand-in, knowing no
model's length, does not.

Only requests on Cerebras's route (``/v1/chat/completions``, where its SDK sends them) count, and
only once a limit is set (`set_token_limit`), per key over the request limit's sliding window.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

from hfs_core.testing.standin.exchange import Replay, Request, count_tokens, key_digest
from hfs_core.testing.standin.recorded import RECORDED

_REFUSAL = RECORDED["cerebras.per_minute_tokens"]


@dataclass
class TokenHold:
    """The tokens one accepted request counts against its key since `at` (`time.monotonic`)."""

    at: float
    tokens: int


class TokenRules:
    """Cerebras's per-key token limit (a part of :class:`Behaviours`, under its lock)."""

    _lock: threading.Lock
    _window: float

    def _init_tokens(self) -> None:
        self._tpm: int | None = None
        self._holds: dict[str, collections.deque[TokenHold]] = {}

    def set_token_limit(self, tpm: int | None) -> None:
        """Hold each key to ``tpm`` tokens per window on Cerebras's route (``None`` = unlimited)."""
        if tpm is not None and tpm < 0:
            raise ValueError("tpm must be >= 0 or None")
        with self._lock:
            self._tpm = tpm

    def _clear_tokens(self) -> None:
        """Forget the tokens counted (lock held)."""
        self._holds.clear()

    def tokens_held(self, key: str) -> int:
        """The tokens counted against ``key`` in the window now."""
        with self._lock:
            return sum(hold.tokens for hold in self._live(key_digest(key), time.monotonic()))

    def hold_tokens(self, request: Request) -> TokenHold | Replay | None:
        """Count a request on arrival as Cerebras does: its hold, Cerebras's refusal when the key has
        too few tokens left, or None when the request is not counted (no limit, not Cerebras's route)."""
        if self._tpm is None or not request.options.get("cerebras") or not request.key or request.problem:
            return None
        wanted = count_tokens(request.conversation.prompt_text) + int(request.options.get("answer_cap", 0))
        now = time.monotonic()
        with self._lock:
            holds = self._live(key_digest(request.key), now)
            if self._tpm is not None and sum(hold.tokens for hold in holds) + wanted > self._tpm:
                rendered = _REFUSAL.render()
                return Replay(_REFUSAL.name, rendered.status, rendered.headers, rendered.body)
            hold = TokenHold(now, wanted)
            holds.append(hold)
            return hold

    def settle_tokens(self, hold: TokenHold, used: int) -> None:
        """Count `used` tokens for the request of `hold` instead of what it held (0: it was refused)."""
        with self._lock:
            hold.tokens = used

    def _live(self, digest: str, now: float) -> collections.deque[TokenHold]:
        """The holds of one key still in the window (lock held)."""
        holds = self._holds.setdefault(digest, collections.deque())
        while holds and holds[0].at <= now - self._window:
            holds.popleft()
        return holds
