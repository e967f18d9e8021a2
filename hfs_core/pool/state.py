"""The pool's state interface: what any store of rate windows, cooldowns and dead keys offers.

`KeyPool` talks to its state only through `PoolState`, so the state can live in this process
(`LocalPoolState`) or in a shared store without a change outside this package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from hfs_core._keycycle import KEY_SUFFIX_LENGTH

WINDOW_SECONDS: Mapping[str, float] = MappingProxyType({"minute": 60.0, "hour": 3600.0, "day": 86400.0})
"""keycycle's rate windows by name, shortest first: the one definition of their lengths."""
WINDOW_LENGTHS = tuple(WINDOW_SECONDS.values())
"""The same lengths in seconds, in that order (minute, hour, day)."""
MINUTE = WINDOW_SECONDS["minute"]

HistoryRow = tuple[str, str, float, int]
"""One usage row to replay: (key suffix, model ID, timestamp, tokens)."""


def key_suffix(key: str) -> str:
    """The suffix keycycle stores in usage rows (its last 8 characters)."""
    return key[-KEY_SUFFIX_LENGTH:]


@dataclass(frozen=True, slots=True)
class Lease:
    """One key reserved for one attempt of one call."""

    index: int
    model_id: str
    reserved_tokens: int
    ticket: str = ""
    """The shared state's name for the lease ("" for a lease held in this process only)."""


@dataclass(frozen=True)
class PoolStatus:
    """A snapshot of a pool, safe to show: counts only, no keys."""

    total: int
    dead: int
    cooling: int
    in_flight: int

    @property
    def live(self) -> int:
        """Keys not marked dead."""
        return self.total - self.dead


WINDOW_NAMES = ("rpm", "rph", "rpd", "tpm", "tph", "tpd")
"""The rate windows a snapshot reports, by the names of their limits: requests, then tokens, a minute,
an hour and a day."""


@dataclass(frozen=True)
class WindowsSnapshot:
    """What one key's windows of one model hold now (`PoolState.snapshot`)."""

    used: Mapping[str, int | None]
    """Requests and tokens counted per window (`WINDOW_NAMES`); None: the state does not count that
    window (no limit there, or one a shorter or longer window always reaches first)."""
    limits: Mapping[str, int | None]
    """The limits per key (None: none)."""
    learned: int | None
    """A per-minute request cap learned from a refusal, as it stands now (None: the table's limit holds)."""


@dataclass(frozen=True)
class KeySnapshot:
    """One key as a state sees it now, safe to show: no key, only its place in the pool."""

    state: str
    """"ready", "cooling", "quota" (cooling until a daily quota resets) or "dead"."""
    until: float | None
    """When a cooldown ends (epoch seconds), or None."""
    reason: str | None
    """Why the key is cooling or dead, as its provider's reply was judged (None: not said)."""
    in_flight: int
    models: Mapping[str, WindowsSnapshot]
    """By bucket: the model ID, or "*" for a provider whose limits hold across its models."""


class PoolState(Protocol):
    """Where a pool's mutable state lives: rate windows, calls in flight, cooldowns, dead keys.

    Keys are known by index (0 .. size-1, in the order the pool was built with) and, in
    usage rows, by `key_suffix`.
    """

    @property
    def size(self) -> int:
        """Number of keys."""

    def try_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        """Reserve a usable key, or return the seconds until one may be (``inf``: when a call ends).

        Keys in `avoid` (those that just failed this call) are taken only when no other key can be.
        """

    async def atry_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        """`try_acquire` for coroutines: a state that waits on I/O to answer awaits it, never blocking
        the event loop."""

    def settle(self, lease: Lease, tokens: int | None) -> None:
        """End a lease: count `tokens` against its key, or (None) release it unused.

        This and the other methods that change state return at once, without waiting on I/O: a
        shared state applies them in this process and sends them on in the background.
        """

    def cool_down(self, index: int, seconds: float, reason: str = "", *, quota: bool = False) -> None:
        """Keep key `index` out of rotation for `seconds`; `reason` (short text) and `quota` (until a
        daily quota resets) are for `snapshot`."""

    def mark_dead(self, index: int, reason: str = "") -> None:
        """Take key `index` out of rotation until `revive` (`reason`: short text, for `snapshot`)."""

    def revive(self, index: int) -> bool:
        """Put retired key `index` back in rotation (a cooldown it has runs on; its next call tries it
        alone first); returns whether it was retired. A shared state does it for every process sharing
        it, waiting for the answer, and raises when it cannot reach them."""

    def learn_limit(self, index: int, model_id: str) -> int | None:
        """Key `index` was just refused for `model_id` by a per-minute limit: if its minute window
        holds fewer requests than its table allows, cap it there (at least 1) and return the cap.

        The cap binds the key's later calls and relaxes by one request for every minute without
        a refusal, until the table's limit is back. None: no cap (the table's limit was reached),
        or a shared state learns it in the background (and logs it).
        """

    def max_tokens(self, model_id: str) -> int | None:
        """The most tokens one call of `model_id` can ever reserve on a key (its smallest token
        limit), or None when no token limit applies."""

    def status(self) -> PoolStatus:
        """Counts of keys by state."""

    def snapshot(self, models: Sequence[str]) -> list[KeySnapshot]:
        """Each key's state and windows for `models` (and any other this state has counted), read
        without changing anything; callable from any thread. A shared state gives the fleet's view."""

    def load_history(self, rows: Iterable[HistoryRow]) -> int:
        """Count past calls (suffix, model, timestamp, tokens) against the windows; returns rows used."""

    def close(self) -> None:
        """Stop any background work and release resources. Safe to call twice."""
