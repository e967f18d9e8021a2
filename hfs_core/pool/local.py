"""Pool state in this process, kept in keycycle's per-key windows (`LocalPoolState`)."""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from hfs_core import catalog
from hfs_core._keycycle import PROVIDER_STRATEGIES, KeyUsage, RateLimits, RateLimitStrategy
from hfs_core.pool.state import (
    MINUTE,
    WINDOW_LENGTHS,
    WINDOW_NAMES,
    HistoryRow,
    KeySnapshot,
    Lease,
    PoolStatus,
    WindowsSnapshot,
    key_suffix,
)

if TYPE_CHECKING:
    from hfs_core.plugin import ProviderSpec


class KeyWindows:
    """keycycle's per-key windows of a provider's keys, held in memory: what a pool takes from
    keycycle's ``MultiProviderWrapper`` (``provider``, ``strategy``, ``manager.keys``,
    ``manager.lock``, ``manager.stop()``) without the wrapper's clients, database and cleanup
    thread, whose import alone (the openai SDK, SQLAlchemy) costs a cold process over a second.
    `LocalPoolState` drops expired entries from a window each time it checks it."""

    def __init__(self, provider: str, keys: Sequence[str]) -> None:
        self.provider = provider.lower()
        self.strategy = cast(RateLimitStrategy, PROVIDER_STRATEGIES.get(self.provider, RateLimitStrategy.PER_MODEL))
        self.keys = [KeyUsage(api_key=key, strategy=self.strategy) for key in keys]
        self.lock = threading.Lock()
        self.manager = self

    def stop(self) -> None:
        """Nothing runs in the background to stop."""


def keycycle_wrapper(spec: ProviderSpec, keys: Sequence[str], default_model: str) -> KeyWindows:
    """The keycycle windows that hold a provider's keys (the default `wrapper_factory`).

    Keys come from the registry (never from keycycle's own `.env` loader) and
    usage persistence is the registry's, so keycycle tracks usage in memory only.
    """
    return KeyWindows(spec.keycycle_name, keys)


_UNLIMITED = 10**12
"""A request window that nothing limits (keycycle's windows need a number)."""


def rate_limits(spec: ProviderSpec, model_id: str, configured: Mapping[str, int] | None = None) -> RateLimits:
    """The limits `model_id` of `spec`'s provider is held to per key (`catalog.resolve_limits`: the
    configuration's `configured`, the plugin's table, keycycle's, the default), as keycycle's `RateLimits`."""
    found = catalog.resolve_limits(spec, model_id, configured)
    return RateLimits(*(found.value(name) or _UNLIMITED for name in ("rpm", "rph", "rpd")),
                      *(found.value(name) for name in ("tpm", "tph", "tpd")))


class _TokenSums:
    """The sum of each token window at its last check, carried over to the next (see `window`)."""

    def __init__(self) -> None:
        # id(token window) -> (its first entry, bucket.total_tokens, its sum) at the last check
        self._seen: dict[int, tuple[Any, int, int]] = {}

    def window(self, bucket: Any, entries: Any, cutoff: float) -> int:
        """Tokens in one of `bucket`'s token windows after dropping entries older than `cutoff`.

        Entries only ever join a window at its end, through keycycle's ``UsageBucket.add``,
        which also adds their tokens to ``bucket.total_tokens``; so the sum at the last check
        plus the growth of ``total_tokens`` since, minus what is dropped here, is the sum now.
        If something else dropped entries meanwhile (keycycle's cleanup thread, its stats),
        the window's first entry has changed and the sum is taken afresh.
        """
        seen = self._seen.get(id(entries))
        if seen is not None and entries and entries[0] is seen[0]:
            total = seen[2] + bucket.total_tokens - seen[1]
        else:
            total = sum(used for _, used in entries)
        while entries and entries[0][0] <= cutoff:
            total -= entries.popleft()[1]
        self._seen[id(entries)] = (entries[0] if entries else None, bucket.total_tokens, total)
        return int(total)


class LocalPoolState:
    """Pool state in this process, kept in keycycle's per-key windows.

    Keys are chosen by two random choices (the less loaded of two usable keys, falling
    back to a scan from a random start), so concurrent callers and separate processes
    spread over the pool instead of filling key 1 first. Calls in flight count against
    the request limits, which keycycle only counts once a call has finished.

    The keys of a group (`budgets`) count in the windows of the group's first key, and so
    share each limit; a key's cooldown, dead flag, first-call probe and calls in flight stay
    its own.
    """

    def __init__(self, spec: ProviderSpec, wrapper: Any, default_model: str,
                 model_limits: Mapping[str, Mapping[str, int]] | None = None,
                 budgets: Sequence[int] = ()) -> None:
        self._spec = spec
        self._wrapper = wrapper
        self._configured = dict(model_limits or {})
        self._provider: str = wrapper.provider
        self._keys: list[KeyUsage] = wrapper.manager.keys
        self._suffixes = [key_suffix(key.api_key) for key in self._keys]
        self._lock: threading.Lock = wrapper.manager.lock
        self._global = wrapper.strategy == RateLimitStrategy.GLOBAL
        self._default_model = default_model
        self.size = len(self._keys)
        self.budgets = tuple(budgets) or tuple(range(self.size))
        """For each key, the key whose windows it counts in: the first of its group, or itself."""
        self._grouped = self.budgets != tuple(range(self.size))
        if len(self.budgets) != self.size or any(self.budgets[b] != b for b in self.budgets):
            raise ValueError(f"budgets must name, for each of the {self.size} keys, the first key of its group")
        self._cool_until = [0.0] * self.size
        # Why each key cools or died, for `snapshot`: (reason, whether it waits for a daily quota)
        self._why: list[tuple[str, bool]] = [("", False)] * self.size
        self._dead_why = [""] * self.size
        # A key no call has succeeded on yet takes one call at a time, so a dead key is tried
        # once, not once per concurrent caller, before its 401/402/403 marks it dead.
        self._proven = [False] * self.size
        self._probing: set[int] = set()
        self._in_flight: dict[tuple[int, str], int] = {}  # (key, bucket) -> its calls in flight
        # (budget, bucket) -> the calls in flight its windows count: those of every key of the group
        self._flight = self._in_flight if not self._grouped else {}
        self._table: dict[str, RateLimits] = {}
        self._limits: dict[str, RateLimits] = {}
        self._share = 1
        self._random = random.Random()
        self._token_sums = _TokenSums()
        # (budget, bucket) -> (learned requests per minute, when it was learned or last relaxed)
        self._caps: dict[tuple[int, str], tuple[int, float]] = {}
        self._closed = False

    @classmethod
    def build(cls, spec: ProviderSpec, keys: Sequence[str], default_model: str,
              model_limits: Mapping[str, Mapping[str, int]] | None = None,
              budgets: Sequence[int] = ()) -> LocalPoolState:
        """The state of `spec`'s pool over `keys`, in the wrapper its `wrapper_factory` builds
        (keycycle's own, `keycycle_wrapper`, by default), with `model_limits` from the configuration
        and the key groups' `budgets` (`catalog.budgets`; none: each key its own)."""
        return cls(spec, (spec.wrapper_factory or keycycle_wrapper)(spec, keys, default_model), default_model,
                   model_limits, budgets)

    def __repr__(self) -> str:
        status = self.status()
        return f"LocalPoolState(provider={self._provider!r}, keys={status.total}, dead={status.dead})"

    def table_limits(self, model_id: str) -> RateLimits:
        """The limits of `model_id` per key (`rate_limits`, with the configuration's `model_limits`)."""
        found = self._table.get(model_id)
        if found is None:
            model = model_id or self._default_model
            found = self._table[model_id] = rate_limits(self._spec, model, self._configured.get(model))
        return found

    def limits(self, model_id: str) -> RateLimits:
        """The limits this state holds `model_id` to: `table_limits`, or its share of them (`set_share`)."""
        found = self._limits.get(model_id)
        if found is None:
            table = self.table_limits(model_id)
            if self._share > 1:
                values = {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}
                table = dataclasses.replace(table, **{name: math.ceil(v / self._share) if v else v
                                                      for name, v in values.items()})
            found = self._limits[model_id] = table
        return found

    def set_share(self, processes: int) -> None:
        """Hold each key to 1/`processes` of its limits: the part of one of that many processes
        that draw on the same keys without seeing each other's calls."""
        processes = max(1, int(processes))
        if processes != self._share:
            with self._lock:
                self._share = processes
                self._limits.clear()

    def max_tokens(self, model_id: str) -> int | None:
        limits = self.table_limits(model_id)  # a share (`set_share`) is for a while, not for ever
        found = [int(v) for v in (limits.tokens_per_minute, limits.tokens_per_hour, limits.tokens_per_day) if v]
        return min(found) if found else None

    def bucket(self, model_id: str) -> str:
        """The name of the windows `model_id` counts in: the model's own, or ``"*"`` for a provider
        whose limits hold across its models (keycycle's global strategy, e.g. OpenRouter)."""
        return "*" if self._global else model_id

    def _windows(self, index: int, model_id: str) -> Any:
        """The keycycle bucket key `index` counts `model_id` in: its budget's (`budgets`)."""
        key = self._keys[self.budgets[index]]
        return key.global_bucket if self._global else key.buckets[model_id]

    def _per_minute(self, index: int, model_id: str, limits: RateLimits, now: float) -> int:
        """The requests per minute of key `index`'s budget: the table's, or a learned cap below it,
        relaxed by one a minute."""
        slot = (self.budgets[index], self.bucket(model_id))
        learned = self._caps.get(slot)
        if learned is None:
            return int(limits.requests_per_minute)
        cap, since = learned
        grown = cap + int((now - since) // MINUTE)
        if grown >= limits.requests_per_minute:
            del self._caps[slot]
            return int(limits.requests_per_minute)
        return grown

    def learn_limit(self, index: int, model_id: str) -> int | None:
        """As `PoolState.learn_limit`; a key of a group counts in its group's window, so the cap is
        the group's (the provider counted the group's requests, not the key's)."""
        now = time.time()
        limits = self.limits(model_id)
        budget = self.budgets[index]
        with self._lock:
            bucket = self._windows(index, model_id)
            cutoff = now - MINUTE
            seen = sum(1 for stamp in bucket.requests_minute if stamp > cutoff)
            seen += self._flight.get((budget, self.bucket(model_id)), 0)
            if seen >= self._per_minute(index, model_id, limits, now):
                return None
            cap = max(1, seen)
            self._caps[(budget, self.bucket(model_id))] = (cap, now)
            return cap

    def _fits(self, index: int, model_id: str, tokens: int, limits: RateLimits, now: float) -> bool:
        """keycycle's limit check (``UsageBucket.check_limits``) with calls in flight counted,
        in O(1): keycycle sums its token windows on every check, which costs O(calls in the
        last day) per key; here each window's sum is carried over between checks (`_TokenSums`)."""
        if self._keys[index].dead or self._cool_until[index] > now or index in self._probing:
            return False
        bucket = self._windows(index, model_id)
        flying = self._flight.get((self.budgets[index], self.bucket(model_id)), 0)
        for seconds, stamps, limit in zip(WINDOW_LENGTHS, (bucket.requests_minute, bucket.requests_hour,
                                                          bucket.requests_day),
                                               (self._per_minute(index, model_id, limits, now),
                                                limits.requests_per_hour, limits.requests_per_day), strict=True):
            cutoff = now - seconds
            while stamps and stamps[0] <= cutoff:
                stamps.popleft()
            if len(stamps) + flying >= limit:
                return False
        wanted = bucket.pending_tokens + tokens
        for seconds, entries, token_limit in zip(WINDOW_LENGTHS, (bucket.tokens_minute, bucket.tokens_hour,
                                                                 bucket.tokens_day),
                                                      (limits.tokens_per_minute, limits.tokens_per_hour,
                                                       limits.tokens_per_day), strict=True):
            if token_limit and self._token_sums.window(bucket, entries, now - seconds) + wanted > token_limit:
                return False
        return True

    def _load(self, index: int, model_id: str) -> int:
        bucket = self._windows(index, model_id)
        return len(bucket.requests_minute) + self._flight.get((self.budgets[index], self.bucket(model_id)), 0)

    async def atry_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        """`try_acquire` (it never waits on anything but this process's lock)."""
        return self.try_acquire(model_id, tokens, avoid)

    def try_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        now = time.time()
        limits = self.limits(model_id)
        with self._lock:
            chosen = self._choose(model_id, tokens, limits, now, avoid)
            if chosen is None:
                return self._seconds_until_free(model_id, tokens, limits, now)
            self._keys[self.budgets[chosen]].reserve(model_id, tokens)
            slot = (chosen, self.bucket(model_id))
            self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
            if self._grouped:
                slot = (self.budgets[chosen], slot[1])
                self._flight[slot] = self._flight.get(slot, 0) + 1
            if not self._proven[chosen]:
                self._probing.add(chosen)
            return Lease(chosen, model_id, tokens)

    def _choose(self, model_id: str, tokens: int, limits: RateLimits, now: float,
                avoid: frozenset[int]) -> int | None:
        n = self.size
        picks = [i for i in {self._random.randrange(n), self._random.randrange(n)}
                 if i not in avoid and self._fits(i, model_id, tokens, limits, now)]
        if picks:
            return min(picks, key=lambda i: self._load(i, model_id))
        start = self._random.randrange(n)
        order = [(start + offset) % n for offset in range(n)]
        for index in [i for i in order if i not in avoid] + [i for i in order if i in avoid]:
            if self._fits(index, model_id, tokens, limits, now):
                return index
        return None

    def _seconds_until_free(self, model_id: str, tokens: int, limits: RateLimits, now: float) -> float:
        soonest = math.inf
        busy = {i for (i, _), n in self._flight.items() if n}
        for index, key in enumerate(self._keys):
            if key.dead:
                continue
            at = math.inf if index in self._probing else self._free_at(index, model_id, tokens, limits)
            if math.isinf(at) and self.budgets[index] in busy:
                # Full only because of calls in flight (a first call, reserved tokens): it may free
                # as soon as one of them ends, which wakes the waiters, so no fixed wait applies.
                return math.inf
            soonest = min(soonest, at)
        return max(0.0, soonest - now)

    def _free_at(self, index: int, model_id: str, tokens: int, limits: RateLimits) -> float:
        """When key `index` could take the call, going by its windows alone (``inf``: not by time)."""
        at = self._cool_until[index]
        bucket = self._windows(index, model_id)
        bucket.clean()
        flying = self._flight.get((self.budgets[index], self.bucket(model_id)), 0)
        request_windows = (
            (bucket.requests_minute, self._per_minute(index, model_id, limits, time.time())),
            (bucket.requests_hour, limits.requests_per_hour),
            (bucket.requests_day, limits.requests_per_day),
        )
        for seconds, (stamps, limit) in zip(WINDOW_LENGTHS, request_windows, strict=True):
            excess = len(stamps) + flying - limit + 1
            if excess > len(stamps):
                return math.inf
            if excess > 0:
                at = max(at, stamps[excess - 1] + seconds)
        token_windows = (
            (bucket.tokens_minute, limits.tokens_per_minute),
            (bucket.tokens_hour, limits.tokens_per_hour),
            (bucket.tokens_day, limits.tokens_per_day),
        )
        for seconds, (entries, token_limit) in zip(WINDOW_LENGTHS, token_windows, strict=True):
            if not token_limit:
                continue
            need = sum(t for _, t in entries) + bucket.pending_tokens + tokens - token_limit
            if need <= 0:
                continue
            if need <= bucket.pending_tokens:
                return math.inf  # full only by the estimates reserved for calls in flight: frees when one ends
            dropped = 0
            for stamp, used in entries:
                dropped += used
                if dropped >= need:
                    at = max(at, stamp + seconds)
                    break
            else:
                return math.inf
        return at

    def settle(self, lease: Lease, tokens: int | None) -> None:
        key = self._keys[self.budgets[lease.index]]
        with self._lock:
            slot = (lease.index, self.bucket(lease.model_id))
            self._in_flight[slot] = max(0, self._in_flight.get(slot, 0) - 1)
            if self._grouped:
                slot = (self.budgets[lease.index], slot[1])
                self._flight[slot] = max(0, self._flight.get(slot, 0) - 1)
            self._probing.discard(lease.index)
            if tokens is not None:
                self._proven[lease.index] = True
            if tokens is None:
                buckets = [key.buckets[lease.model_id]] + ([key.global_bucket] if self._global else [])
                for bucket in buckets:
                    bucket.pending_tokens = max(0, bucket.pending_tokens - lease.reserved_tokens)
            else:
                key.commit(lease.model_id, tokens, lease.reserved_tokens)

    def record(self, index: int, model_id: str, tokens: int) -> None:
        """Count a call that ran on key `index` without a lease of this state (a shared state's
        lease, mirrored here for when this state has to serve on its own)."""
        with self._lock:
            self._keys[self.budgets[index]].record_usage(model_id, tokens=tokens)

    def cool_down(self, index: int, seconds: float, reason: str = "", *, quota: bool = False) -> None:
        with self._lock:
            until = time.time() + seconds
            if until > self._cool_until[index]:
                self._cool_until[index] = until
                self._why[index] = (reason, quota)
            # When the cooldown ends, one call probes the key before the waiting callers pile on it.
            self._proven[index] = False

    def mark_dead(self, index: int, reason: str = "") -> None:
        with self._lock:
            self._dead_why[index] = reason
            cast(Any, self._keys[index]).mark_dead()

    def revive(self, index: int) -> bool:
        if not self._keys[index].dead:
            return False
        with self._lock:
            cast(Any, self._keys[index]).dead = False
            self._dead_why[index] = ""
            self._proven[index] = False
        return True

    def status(self) -> PoolStatus:
        now = time.time()
        with self._lock:
            dead = sum(1 for k in self._keys if k.dead)
            cooling = sum(1 for i, k in enumerate(self._keys) if not k.dead and self._cool_until[i] > now)
            return PoolStatus(self.size, dead, cooling, sum(self._in_flight.values()))

    def snapshot(self, models: Sequence[str]) -> list[KeySnapshot]:
        now = time.time()
        with self._lock:
            buckets = dict.fromkeys(self.bucket(m) for m in models)
            if not self._global:  # and every model a call of this process has counted in
                for key in self._keys:
                    buckets.update(dict.fromkeys(key.buckets))
            flights: dict[int, int] = {}
            for (index, _), count in self._in_flight.items():
                flights[index] = flights.get(index, 0) + count
            out = []
            for index, key in enumerate(self._keys):
                cooling = self._cool_until[index] > now and not key.dead
                reason, quota = self._why[index] if cooling else ("", False)
                state = "dead" if key.dead else "quota" if cooling and quota else "cooling" if cooling else "ready"
                out.append(KeySnapshot(
                    state, self._cool_until[index] if cooling else None,
                    (self._dead_why[index] if key.dead else reason) or None, flights.get(index, 0),
                    {bucket: self._windows_now(index, bucket, now) for bucket in buckets}))
            return out

    def _windows_now(self, index: int, bucket_name: str, now: float) -> WindowsSnapshot:
        """What key `index`'s windows of `bucket_name` hold at `now` (the lock held)."""
        model_id = self._default_model if bucket_name == "*" else bucket_name
        limits = self.table_limits(model_id)
        budget = self._keys[self.budgets[index]]
        bucket = budget.global_bucket if self._global else budget.buckets.get(model_id)
        used: dict[str, int | None] = dict.fromkeys(WINDOW_NAMES, 0)
        if bucket is not None:
            for name, seconds, stamps in zip(WINDOW_NAMES[:3], WINDOW_LENGTHS, (
                    bucket.requests_minute, bucket.requests_hour, bucket.requests_day), strict=True):
                used[name] = sum(1 for stamp in stamps if stamp > now - seconds)
            for name, seconds, entries in zip(WINDOW_NAMES[3:], WINDOW_LENGTHS, (
                    bucket.tokens_minute, bucket.tokens_hour, bucket.tokens_day), strict=True):
                used[name] = self._token_sums.window(bucket, entries, now - seconds)
        per_minute = self._per_minute(index, model_id, limits, now)
        table = (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day,
                 limits.tokens_per_minute, limits.tokens_per_hour, limits.tokens_per_day)
        return WindowsSnapshot(used, {name: int(v) if v and v < _UNLIMITED else None
                                      for name, v in zip(WINDOW_NAMES, table, strict=True)},
                               per_minute if per_minute < limits.requests_per_minute else None)

    def load_history(self, rows: Iterable[HistoryRow]) -> int:
        by_suffix = {suffix: self._keys[budget] for suffix, budget in zip(self._suffixes, self.budgets, strict=True)}
        used = 0
        with self._lock:
            for suffix, model_id, stamp, tokens in rows:
                key = by_suffix.get(suffix)
                if key is not None:
                    key.record_usage(model_id, tokens=int(tokens or 0), timestamp=float(stamp))
                    used += 1
        return used

    def close(self) -> None:
        """Stop the wrapper's background work (keycycle's cleanup thread, for its own wrapper)."""
        if not self._closed:
            self._closed = True
            self._wrapper.manager.stop()
