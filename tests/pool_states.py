"""A second `PoolState`, written for the tests: plain dicts and lists, nothing from keycycle.

The pool tests run against it, `LocalPoolState` and `RedisPoolState` (built by `RedisStates`),
so a pool behaviour they check holds for any state that keeps the `PoolState` contract.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services import drop_namespace

from hfs_core.plugin import ProviderSpec
from hfs_core.pool import HistoryRow, Lease, LocalPoolState, PoolStatus, key_suffix
from hfs_core.pool.redis_link import RedisLink
from hfs_core.pool.shared import RedisPoolState

WINDOW = 60.0


class DictPoolState:
    """Keys taken in turn; each may serve `per_minute` calls a minute (calls in flight counted),
    whatever the model. A key cools down for a while or dies for good; no token windows."""

    def __init__(self, keys: Sequence[str], per_minute: int) -> None:
        self.size = len(keys)
        self.closed = 0
        self._suffixes = [key_suffix(key) for key in keys]
        self._per_minute = per_minute
        self._calls: list[list[float]] = [[] for _ in keys]
        self._in_flight = [0] * self.size
        self._cool_until = [0.0] * self.size
        self._dead: set[int] = set()
        self._caps: dict[int, tuple[int, float]] = {}  # index -> (learned per-minute cap, when learned)
        self._next = 0
        self._lock = threading.Lock()

    def _recent(self, index: int, now: float) -> list[float]:
        calls = self._calls[index] = [stamp for stamp in self._calls[index] if stamp > now - WINDOW]
        return calls

    def _limit(self, index: int, now: float) -> int:
        """The key's calls a minute: a learned cap, one more for each minute since, until the table's."""
        cap, since = self._caps.get(index, (self._per_minute, now))
        grown = cap + int((now - since) // WINDOW)
        if grown >= self._per_minute:
            self._caps.pop(index, None)
            return self._per_minute
        return grown

    def _free_at(self, index: int, now: float) -> float:
        """When key `index` may take a call (``inf``: once a call in flight ends)."""
        calls = sorted(self._recent(index, now))
        excess = len(calls) + self._in_flight[index] - self._limit(index, now) + 1
        if excess > len(calls):
            return math.inf
        return max(self._cool_until[index], calls[excess - 1] + WINDOW if excess > 0 else now)

    def try_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        now = time.time()
        with self._lock:
            live = [(self._next + offset) % self.size for offset in range(self.size)
                    if (self._next + offset) % self.size not in self._dead]
            for index in [i for i in live if i not in avoid] + [i for i in live if i in avoid]:
                if self._free_at(index, now) <= now:
                    self._next = index + 1
                    self._in_flight[index] += 1
                    return Lease(index, model_id, tokens)
            return max(0.0, min((self._free_at(i, now) for i in live), default=math.inf) - now)

    async def atry_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        return self.try_acquire(model_id, tokens, avoid)

    def settle(self, lease: Lease, tokens: int | None) -> None:
        with self._lock:
            self._in_flight[lease.index] -= 1
            if tokens is not None:
                self._calls[lease.index].append(time.time())

    def cool_down(self, index: int, seconds: float, reason: str = "", *, quota: bool = False) -> None:
        with self._lock:
            self._cool_until[index] = max(self._cool_until[index], time.time() + seconds)

    def mark_dead(self, index: int, reason: str = "") -> None:
        with self._lock:
            self._dead.add(index)

    def max_tokens(self, model_id: str) -> int | None:
        return None  # this state has no token windows

    def learn_limit(self, index: int, model_id: str) -> int | None:
        now = time.time()
        with self._lock:
            seen = len(self._recent(index, now)) + self._in_flight[index]
            if seen >= self._limit(index, now):
                return None
            self._caps[index] = (max(1, seen), now)
            return max(1, seen)

    def status(self) -> PoolStatus:
        now = time.time()
        with self._lock:
            cooling = sum(1 for i in range(self.size) if i not in self._dead and self._cool_until[i] > now)
            return PoolStatus(self.size, len(self._dead), cooling, sum(self._in_flight))

    def load_history(self, rows: Iterable[HistoryRow]) -> int:
        used = 0
        with self._lock:
            for suffix, _, stamp, _ in rows:
                if suffix in self._suffixes:
                    self._calls[self._suffixes.index(suffix)].append(float(stamp))
                    used += 1
        return used

    def close(self) -> None:
        self.closed += 1


class RedisStates:
    """Builds `RedisPoolState`s on the real Redis of the tests, each pool in a namespace of its own;
    `close` closes their links and deletes everything they wrote."""

    def __init__(self, spec: ProviderSpec, model: str, url: str = "redis://127.0.0.1:6379/0",
                 **link_options: Any) -> None:
        self.spec = spec
        self.model = model
        self.url = url
        self.options = link_options
        self.links: list[RedisLink] = []

    def link(self, namespace: str | None = None) -> RedisLink:
        """A new link (as another process would have) to the namespace given, or a fresh one."""
        made = RedisLink(self.url, shown_url=self.url, namespace=namespace or f"hfs-test-{uuid.uuid4().hex[:10]}",
                         **self.options)
        self.links.append(made)
        return made

    def __call__(self, keys: Sequence[str], link: RedisLink | None = None,
                 limits: Mapping[str, Mapping[str, int]] | None = None) -> RedisPoolState:
        local = LocalPoolState.build(self.spec, keys, self.model, limits)
        return RedisPoolState(local, link or self.link(), self.spec.name, keys)

    def close(self) -> None:
        for made in self.links:
            made.close()
            assert made.outages == 0, f"{made} fell back to in-process state: the test did not run on Redis"
            drop_namespace(made.namespace, self.url)
