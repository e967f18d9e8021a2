"""`KeyPool`: which key serves the next call, how long to wait for one, and what a failure means.

The pool's mutable state sits behind `PoolState` (see `hfs_core.pool.state`); the pool waits
for a key without polling (it knows when the next one frees up), classifies failures, and
records usage through a `UsageRecorder`. It knows no SDK and no Agno class: the SDK clients of
its keys are the rotating models' (`hfs_core.call.clients`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from hfs_core._keycycle import DEFAULT_COOLDOWN_SECONDS
from hfs_core.events import EventBus, KeyCooled, KeyRetired, LimitLearned, QuotaReached
from hfs_core.plugin import Action, Verdict
from hfs_core.pool.failures import CheckedRules, capped_wait, judge, retry_after
from hfs_core.pool.state import WINDOW_SECONDS, Lease, PoolState, PoolStatus, key_suffix
from hfs_core.pool.unavailable import (
    AllKeysDeadError,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    RequestTooLargeError,
)

if TYPE_CHECKING:
    from hfs_core.plugin import ProviderSpec
    from hfs_core.telemetry import Telemetry

log = logging.getLogger("hfs_core.pool")


_BUSY_FIRST = 0.5
_BUSY_MAX = 30.0
"""The provider's back-off after a PROVIDER_BUSY verdict: 0.5 s, doubling with each one in a row, to 30 s."""
_LONGEST_WAIT = 3600.0
"""The longest single wait for a key (a caller with ``timeout=inf`` waits in steps of this)."""
_FLAKY_FIRST = 1.0
_FLAKY_MAX = 60.0
"""A key failing transiently twice or more in a row is set aside: 1 s, doubling, to 60 s."""


class UsageRecorder(Protocol):
    """Where a pool records each successful call, and the keys kept out until a reset (the usage store)."""

    def record(self, provider: str, model: str, suffix: str, tokens: int) -> None:
        """Record one call of `model` on the key ending in `suffix`."""

    def remember_cooldown(self, provider: str, suffix: str, until: float) -> None:
        """Remember, across restarts, that the key ending in `suffix` is out until `until` (epoch seconds)."""


@dataclass(frozen=True)
class CallOptions:
    """How one model call may wait and retry.

    Attributes:
        estimated_tokens: tokens reserved against the key's token windows before the call.
        wait: wait for a key when none is free (False: fail at once).
        timeout: seconds the call may spend waiting, for a key and in back-off, in all.
        max_retries: further attempts after a rate limit or a transient fault (5xx,
            timeout). Dead keys (401/402/403) are skipped without counting: each is tried
            at most once in the pool's life.
    """

    estimated_tokens: int = 1000
    wait: bool = True
    timeout: float = 10.0
    max_retries: int = 5

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any], *, where: str = "get_model") -> CallOptions:
        """Pop the call options out of `kwargs` (a `get_model` call's keywords), each one absent at its default.

        Raises TypeError, naming `where`, for an option of the wrong type or range, so that it
        fails at `get_model` and not at the first call.
        """
        options = cls(**{f.name: kwargs.pop(f.name) for f in fields(cls) if f.name in kwargs})
        for name in ("estimated_tokens", "timeout", "max_retries"):
            value = getattr(options, name)
            whole = name != "timeout"
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)) or not value >= 0:
                kind = "a whole number" if whole else "a number of seconds (inf: wait without limit)"
                raise TypeError(f"{where}: {name} must be {kind} of at least 0, got {value!r}")
        if not isinstance(options.wait, bool):
            raise TypeError(f"{where}: wait must be True or False, got {options.wait!r}")
        return options


@dataclass(frozen=True, slots=True)
class Acquired:
    """A key reserved by `KeyPool.acquire`, and how the wait for it went."""

    lease: Lease
    waited: float
    """Seconds spent waiting for the key."""
    announced: bool
    """Whether the wait was announced (logged)."""


class KeyPool:
    """One provider's keys: leases, waiting and failure handling."""

    def __init__(
        self,
        spec: ProviderSpec,
        keys: Sequence[str],
        state: PoolState,
        usage: UsageRecorder | None,
        *,
        budgets: Sequence[int] = (),
        events: EventBus | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.spec = spec
        self.provider = spec.name
        self.state = state
        self.usage = usage
        self.rules = CheckedRules(spec.error_rules, spec.name) if spec.error_rules is not None else None
        """The provider's error rules, checked (None: it states none); a call asks them off its thread."""
        self._keys = tuple(keys)
        self._suffixes = tuple(key_suffix(k) for k in keys)
        self._budgets = tuple(budgets) or tuple(range(len(keys)))  # the state's key groups (`catalog.budgets`)
        self._cond = threading.Condition()
        self._generation = 0
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._waiters_lock = threading.Lock()
        self._closed = False
        self._verdicts = threading.Lock()  # guards the back-off counts below, updated by concurrent calls
        self._busy_until = 0.0  # time.monotonic() until which the provider is backed off
        self._busy_streak = 0
        self._busy_reason = ""
        self._flaky = [0] * len(self._keys)  # transient failures in a row, per key
        self.events = events if events is not None else EventBus()
        """Where the pool tells what it did to its keys (the registry's subscribers)."""
        self.telemetry = telemetry
        """Where the calls on this pool report their spans and metrics (None: nowhere)."""

    def __repr__(self) -> str:
        status = self.state.status()
        return (f"KeyPool(provider={self.provider!r}, keys={status.total}, dead={status.dead}, "
                f"cooling={status.cooling}, in_flight={status.in_flight})")

    @property
    def size(self) -> int:
        """Number of keys in the pool."""
        return len(self._keys)

    def suffix(self, index: int) -> str:
        """The usage-row suffix of key `index`."""
        return self._suffixes[index]

    def shown(self, index: int) -> str:
        """Key `index` as spans, metrics and events show it: its last four characters."""
        return self._keys[index][-4:]

    def status(self) -> PoolStatus:
        """Counts of keys by state."""
        return self.state.status()

    def prepare(self, model_id: str) -> None:
        """Look up `model_id`'s limits now (reading keycycle's table from disk the first time), and load
        the OpenTelemetry API if installed, so that its first call, perhaps on an event loop, finds
        them at hand."""
        self.state.max_tokens(model_id)
        if self.telemetry is not None:
            self.telemetry.prepare()

    # -- waiting for a key -------------------------------------------------------------

    def _unavailable(self, model_id: str, options: CallOptions, delay: float) -> NoAvailableKeyError:
        status = self.state.status()
        busy = self._busy_until - time.monotonic()
        kind: type[NoAvailableKeyError] = PoolExhaustedError
        if status.dead == status.total:
            kind = AllKeysDeadError
            message = (f"{self.provider}: all {status.total} keys are dead (401/402/403 from the provider); "
                       f"replace {self.spec.env_prefix}_API_KEY_<i>")
            next_free: float | None = None
        elif busy > 0:
            kind = ProviderBusyError
            next_free = busy
            message = (f"{self.provider}/{model_id}: the provider is busy ({self._busy_reason}) and backed off "
                       f"for {busy:.1f}s more, past a {options.timeout:g}s wait budget; its keys are kept")
        else:
            next_free = None if math.isinf(delay) else delay
            when = f"in {next_free:.1f}s" if next_free is not None else \
                "when a call in flight ends" if status.in_flight else "at no known time"
            budget = "wait=False" if not options.wait else f"a {options.timeout:g}s wait budget"
            message = (f"{self.provider}/{model_id}: no key free within {budget}; "
                       f"{status.live} of {status.total} keys live, {status.cooling} cooling down, "
                       f"{status.in_flight} calls in flight; the next key frees {when}")
        return kind(
            message, provider=self.provider, model_id=model_id, wait=options.wait, timeout=options.timeout,
            total_keys=status.total, dead_keys=status.dead, cooling_down=status.cooling, next_free_in=next_free,
        )

    def _check_wait(self, model_id: str, options: CallOptions, delay: float, left: float) -> None:
        status = self.state.status()
        if status.dead == status.total or not options.wait or left <= 0 or (delay > left and delay != math.inf):
            raise self._unavailable(model_id, options, delay)

    def _announce(self, model_id: str, delay: float, left: float) -> None:
        when = "when a call in flight ends" if math.isinf(delay) else f"in {delay:.1f}s"
        log.info("%s/%s: no key free; waiting up to %.0fs (the next key frees %s)", self.provider, model_id,
                 left, when)

    def _check_estimate(self, model_id: str, options: CallOptions) -> None:
        """Fail at once when no key could ever take `estimated_tokens` (waiting would not help)."""
        most = self.state.max_tokens(model_id)
        if most is not None and options.estimated_tokens > most:
            status = self.state.status()
            raise RequestTooLargeError(
                f"{self.provider}/{model_id}: estimated_tokens={options.estimated_tokens} is more than any key "
                f"can ever take (at most {most} tokens in its smallest window); pass a smaller estimated_tokens "
                "to get_model",
                provider=self.provider, model_id=model_id, wait=options.wait, timeout=options.timeout,
                total_keys=status.total, dead_keys=status.dead, cooling_down=status.cooling, next_free_in=None)

    def _try(self, model_id: str, options: CallOptions, avoid: frozenset[int]) -> Lease | float:
        """A lease now, or the seconds until one may be had (the provider's back-off counts)."""
        busy = self._busy_until - time.monotonic()
        return busy if busy > 0 else self.state.try_acquire(model_id, options.estimated_tokens, avoid)

    async def _atry(self, model_id: str, options: CallOptions, avoid: frozenset[int]) -> Lease | float:
        """`_try` for coroutines."""
        busy = self._busy_until - time.monotonic()
        return busy if busy > 0 else await self.state.atry_acquire(model_id, options.estimated_tokens, avoid)

    def acquire(self, model_id: str, options: CallOptions, *, budget: float, announce: bool = True,
                avoid: frozenset[int] = frozenset()) -> Acquired:
        """Reserve a key, waiting up to `budget` seconds, preferring keys not in `avoid`.

        With `announce`, a call that has to wait logs it once (INFO on ``hfs_core.pool``).
        Raises `NoAvailableKeyError` (of its kind) when no key frees within the budget.
        """
        self._check_estimate(model_id, options)
        start = time.monotonic()
        announced = False
        while True:
            generation = self._generation
            got = self._try(model_id, options, avoid)
            if isinstance(got, Lease):
                return Acquired(got, time.monotonic() - start, announced)
            left = budget - (time.monotonic() - start)
            self._check_wait(model_id, options, got, left)
            if announce and not announced:
                self._announce(model_id, got, left)
                announced = True
            with self._cond:
                if generation == self._generation:
                    self._cond.wait(min(got, left, _LONGEST_WAIT) + 0.002)

    async def acquire_async(self, model_id: str, options: CallOptions, *, budget: float, announce: bool = True,
                            avoid: frozenset[int] = frozenset()) -> Acquired:
        """`acquire` for coroutines: waits with ``await``, never blocking the event loop."""
        self._check_estimate(model_id, options)
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        announced = False
        while True:
            waiter = (loop, loop.create_future())
            with self._waiters_lock:
                self._async_waiters.add(waiter)
            try:
                got = await self._atry(model_id, options, avoid)
                if isinstance(got, Lease):
                    return Acquired(got, time.monotonic() - start, announced)
                left = budget - (time.monotonic() - start)
                self._check_wait(model_id, options, got, left)
                if announce and not announced:
                    self._announce(model_id, got, left)
                    announced = True
                await asyncio.wait({waiter[1]}, timeout=min(got, left, _LONGEST_WAIT) + 0.002)
            finally:
                with self._waiters_lock:
                    self._async_waiters.discard(waiter)

    def _wake(self) -> None:
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        with self._waiters_lock:
            waiters = list(self._async_waiters)
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, future)

    # -- ending an attempt ---------------------------------------------------------------

    def succeeded(self, lease: Lease, tokens: int | None) -> None:
        """Count a successful attempt against its key and record it in the usage store."""
        used = tokens if tokens else lease.reserved_tokens
        self.state.settle(lease, used)
        with self._verdicts:
            self._flaky[lease.index] = 0
            self._busy_streak = 0
        if self.usage is not None:
            self.usage.record(self.provider, lease.model_id, self._suffixes[lease.index], used)
        self._wake()

    def failed(self, lease: Lease, exc: BaseException, ruled: Verdict | None) -> Verdict:
        """Release a failed attempt's key and act on what the provider's reply says (see `Action`):
        `ruled`, the verdict of the provider's `rules` on it, else the core's defaults."""
        reply, verdict = judge(exc, ruled)
        self.state.settle(lease, None)
        index = lease.index
        where = f"{self.provider} key {self.spec.key_var(index + 1)} (…{self.shown(index)})"
        what = "an error event in its stream" if reply.in_stream else str(reply.status or "no answer")
        why = f": {verdict.reason}" if verdict.reason and verdict.reason != what else ""
        if verdict.action is Action.RETIRE_KEY:
            self.state.mark_dead(index, f"{what}{why}")
            status = self.state.status()
            log.warning("%s answered %s%s: retired, %d of %d keys left", where, what, why, status.live, status.total)
            self._emit(KeyRetired, index, reason=verdict.reason or what)
        elif verdict.action is Action.COOL_KEY:  # no wait named: until the window it hit has passed
            seconds = capped_wait(next((s for s in (verdict.seconds, retry_after(reply)) if s is not None),
                                       WINDOW_SECONDS.get(verdict.window or "", DEFAULT_COOLDOWN_SECONDS)), where)
            self.state.cool_down(index, seconds, f"{what}{why}", quota=verdict.window == "day")
            if verdict.window == "day":
                if self.usage is not None:
                    self.usage.remember_cooldown(self.provider, self._suffixes[index], time.time() + seconds)
                log.info("%s answered %s%s: out for %.0fs, until its quota resets", where, what, why, seconds)
                self._emit(QuotaReached, index, until=time.time() + seconds)
            else:
                cap = self.state.learn_limit(index, lease.model_id) if verdict.counts == "requests" else None
                learned = f"; {self._whose(index)} now takes at most {cap} a minute" if cap is not None else ""
                log.info("%s answered %s%s: cooling for %.1fs%s", where, what, why, seconds, learned)
                self._emit(KeyCooled, index, until=time.time() + seconds, reason=verdict.reason or what)
                if cap is not None:
                    self._emit(LimitLearned, index, model=lease.model_id, per_minute=cap)
        elif verdict.action is Action.PROVIDER_BUSY:
            with self._verdicts:
                self._busy_streak += 1
                pause = capped_wait(verdict.seconds, self.provider) if verdict.seconds is not None else \
                    min(_BUSY_MAX, _BUSY_FIRST * 2 ** (self._busy_streak - 1))
                self._busy_until = max(self._busy_until, time.monotonic() + pause)
                self._busy_reason = verdict.reason or f"HTTP {reply.status}"
            log.info("%s answered %s%s: the provider is busy, backing it off for %.1fs (keys kept)", where, what,
                     why, pause)
        elif verdict.action is Action.RETRY:
            with self._verdicts:
                self._flaky[index] += 1
                streak = self._flaky[index]
            if streak >= 2:
                aside = min(_FLAKY_MAX, _FLAKY_FIRST * 2 ** (streak - 2))
                self.state.cool_down(index, aside, f"failed again ({what}{why})")
                log.info("%s failed again (%s%s): set aside for %.0fs", where, what, why, aside)
                self._emit(KeyCooled, index, until=time.time() + aside, reason=f"failed again ({what}{why})")
            else:
                log.info("%s failed (%s%s): retrying on another key", where, what, why)
        self._wake()
        return verdict

    def _emit(self, kind: type[KeyCooled | KeyRetired | QuotaReached | LimitLearned], index: int,
              **fields: Any) -> None:
        """Tell the subscribers, if any, an event of `kind` about key `index`."""
        if self.events.wanted:
            self.events.emit(kind(provider=self.provider, key=self.shown(index), **fields))

    # -- the pool's keys ------------------------------------------------------------------

    def _whose(self, index: int) -> str:
        """Whose windows key `index` counts in, for the log: "it", or its group's keys (by variable)."""
        group = [i for i, budget in enumerate(self._budgets) if budget == self._budgets[index]]
        if len(group) == 1:
            return "it"
        return f"its group ({', '.join(self.spec.key_var(i + 1) for i in group)})"

    def any_key(self) -> int:
        """A key index for an SDK client asked for outside an attempt: any key, at random.

        Raises `AllKeysDeadError` when every key is dead.
        """
        status = self.state.status()
        if status.dead == status.total:
            raise self._unavailable(self.spec.default_model, CallOptions(wait=False), math.inf)
        return random.randrange(self.size)

    def restore_cooldowns(self, rows: Sequence[tuple[str, float]]) -> int:
        """Keep out the keys a previous process saw refused until a reset: (suffix, until) rows."""
        by_suffix = {suffix: index for index, suffix in enumerate(self._suffixes)}
        restored = 0
        for suffix, until in rows:
            index = by_suffix.get(suffix)
            if index is not None and until > time.time():
                self.state.cool_down(index, until - time.time(), "daily quota (seen before a restart)", quota=True)
                restored += 1
        return restored

    def close(self) -> None:
        """Close the state's background work. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.state.close()
        self._wake()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
