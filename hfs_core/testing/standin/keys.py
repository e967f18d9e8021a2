"""Key states and rate limits of the stand-in: `KeyRules`, one part of its behaviours.

Which keys are live, invalid, out of credits, forbidden, always rate limited or unavailable, and
how many requests a key may make per window (a sliding window over accepted requests, counted at
arrival), with the headers and messages a provider answers a refusal with. A group of keys may share
one limit as well (`KeyRules.set_group_limit`), as a provider counts a project's or an organisation's.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable

from hfs_core.testing.standin.exchange import Decision, Provider, Replay, key_digest, key_label, retry_headers
from hfs_core.testing.standin.recorded import RECORDED

#: Statuses accepted by :meth:`KeyRules.set_key`.
KEY_STATUSES: frozenset[int] = frozenset({200, 401, 402, 403, 429, 503})


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


class KeyRules:
    """Key states and per-key request limits (a part of :class:`Behaviours`, under its lock)."""

    _lock: threading.Lock

    def _init_keys(self, rpm: int | None, window: float, accept_any_key: bool, keys: Iterable[str]) -> None:
        self._rpm = rpm
        self._window = float(window)
        self._accept_any_key = accept_any_key
        self._key_status: dict[str, int] = {}
        self._key_limits: dict[str, int | None] = {}
        self._accepted_at: dict[str, collections.deque[float]] = {}
        self._group_of: dict[str, int] = {}  # key digest -> its group
        self._group_limits: dict[int, int] = {}
        self._group_accepted: dict[int, collections.deque[float]] = {}
        for key in keys:
            self._key_status[key_digest(key)] = 200

    @property
    def accept_any_key(self) -> bool:
        """Whether unregistered keys are accepted."""
        return self._accept_any_key

    @accept_any_key.setter
    def accept_any_key(self, value: bool) -> None:
        with self._lock:
            self._accept_any_key = bool(value)

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
            self._key_limits[key_digest(key)] = rpm

    def clear_key_limit(self, key: str) -> None:
        """Remove a per-key limit override; the key falls back to the default limit."""
        with self._lock:
            self._key_limits.pop(key_digest(key), None)

    def set_group_limit(self, keys: Iterable[str], rpm: int | None) -> None:
        """Count the requests of ``keys`` as one budget: at most ``rpm`` accepted among them all per
        window (``None``: the keys are in no group). Each key's own limit still applies, and a key is in
        one group at a time (a new group takes it from its old one).

        A request its group refuses is answered 429: on a Gemini route with the recorded
        ``gemini.per_minute`` reply (Gemini counts its limits per project; the reply and its source are
        in :data:`.recorded.RECORDED`), its ``retryDelay`` the time until the group's oldest request
        leaves the window; on an OpenAI-style route with a Groq-style message naming the limit.
        """
        if rpm is not None and rpm < 0:
            raise ValueError("rpm must be >= 0 or None")
        digests = [key_digest(key) for key in keys]
        with self._lock:
            for digest in digests:
                self._group_of.pop(digest, None)
            if rpm is not None:
                group = max(self._group_limits, default=0) + 1
                self._group_limits[group] = rpm
                self._group_of.update(dict.fromkeys(digests, group))

    def set_key(self, key: str, status: int = 200) -> None:
        """Register ``key`` with a state: 200 live, 401 invalid, 402 out of credits, 403 forbidden,
        429 always rate limited, 503 unavailable."""
        if status not in KEY_STATUSES:
            raise ValueError(f"status must be one of {sorted(KEY_STATUSES)}")
        with self._lock:
            self._key_status[key_digest(key)] = status

    def remove_key(self, key: str) -> None:
        """Forget a registered key (it is then accepted only when ``accept_any_key`` is on)."""
        with self._lock:
            self._key_status.pop(key_digest(key), None)

    def _clear_keys(self) -> None:
        """Forget key states, per-key limits and rate-limit windows (lock held)."""
        self._key_status.clear()
        self._key_limits.clear()
        self._accepted_at.clear()
        self._group_of.clear()
        self._group_limits.clear()
        self._group_accepted.clear()

    def _judge_key(self, key: str | None, model: str, problem: str | None, now: float,
                   wire: Provider = "openai") -> Decision:
        """Key state, validation, then rate limit, for a request no fault took (lock held)."""
        hint = f"...{key_label(key)}"
        if not key:
            return Decision(401, "Missing API key.")
        digest = key_digest(key)
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
                retry_headers(self._window),
            )
        if state != 200:
            return Decision(state, _key_state_message(state, hint))
        if problem is not None:
            return Decision(400, problem)
        return self._admit(digest, model, hint, now, wire)

    def _admit(self, digest: str, model: str, hint: str, now: float, wire: Provider) -> Decision:
        """Apply the sliding-window limit of one key (lock held)."""
        limit = self._key_limits.get(digest, self._rpm)
        window = self._window
        accepted = self._accepted_at.setdefault(digest, collections.deque())
        cutoff = now - window
        while accepted and accepted[0] <= cutoff:
            accepted.popleft()
        if limit is not None and len(accepted) >= limit:
            wait = (accepted[0] + window - now) if accepted else window
            headers = retry_headers(wait)
            headers.update(_ratelimit_headers(limit, 0, wait))
            return Decision(
                429,
                f"Rate limit reached for requests per minute (RPM) on model `{model}` for key ending in "
                f"{hint}: Limit {limit}, Used {len(accepted)}, Requested 1. "
                f"Please try again in {max(wait, 0.0):.3f}s.",
                headers,
            )
        group = self._group_of.get(digest)
        if group is not None:
            refused = self._admit_group(group, model, hint, now, wire)
            if refused is not None:
                return refused
        accepted.append(now)
        if limit is None:
            return Decision(200)
        return Decision(200, headers=_ratelimit_headers(limit, limit - len(accepted), accepted[0] + window - now))

    def _admit_group(self, group: int, model: str, hint: str, now: float, wire: Provider) -> Decision | None:
        """Count a request against its key's group, or refuse it when the group is full (lock held)."""
        limit, window = self._group_limits[group], self._window
        accepted = self._group_accepted.setdefault(group, collections.deque())
        while accepted and accepted[0] <= now - window:
            accepted.popleft()
        if len(accepted) < limit:
            accepted.append(now)
            return None
        wait = max(0.0, (accepted[0] + window - now) if accepted else window)
        if wire == "gemini":
            recorded = RECORDED["gemini.per_minute"]
            rendered = recorded.render(wait)
            return Decision(429, replay=Replay(recorded.name, 429, rendered.headers, rendered.body))
        headers = retry_headers(wait)
        headers.update(_ratelimit_headers(limit, 0, wait))
        return Decision(
            429,
            f"Rate limit reached for model `{model}` in the organization of the key ending in {hint} on requests "
            f"per minute (RPM): Limit {limit}, Used {len(accepted)}, Requested 1. Please try again in {wait:.3f}s.",
            headers,
        )
