"""Key pools: which key serves the next call, how long to wait for one, and what a failure means.

A pool's mutable state (rate windows, calls in flight, cooldowns, dead keys) sits behind
`PoolState`, a five-method interface that could as well live in Redis or a SQL table.
`LocalPoolState` keeps it in process, in keycycle's own per-key windows, which stay the
source of truth for limits. `KeyPool` is the front the models use: it waits for a key
without polling (it knows when the next one frees up), keeps one SDK client per key,
classifies failures, and records usage.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, cast

from hfs_core._keycycle import (
    DEFAULT_COOLDOWN_SECONDS,
    KEY_SUFFIX_LENGTH,
    KeyUsage,
    MultiProviderWrapper,
    RateLimits,
    RateLimitStrategy,
    is_rate_limit_error,
    is_temporary_rate_limit_error,
)
from hfs_core._keycycle import NoAvailableKeyError as KeycycleNoAvailableKeyError
from hfs_core.errors import HFSError

if TYPE_CHECKING:
    from hfs_core.plugin import ProviderSpec
    from hfs_core.usage import UsageStore

log = logging.getLogger("hfs_core.pool")

_WINDOWS = ((60.0, "minute"), (3600.0, "hour"), (86400.0, "day"))


def keycycle_wrapper(spec: ProviderSpec, keys: Sequence[str], default_model: str) -> Any:
    """Build the keycycle wrapper that holds a provider's key windows (the default `wrapper_factory`).

    Keys come from the registry (never from keycycle's own `.env` loader) and
    usage persistence is the registry's, so keycycle tracks usage in memory only.
    """
    logger = logging.getLogger(f"keycycle.{spec.name}")
    wrapper = MultiProviderWrapper(
        spec.keycycle_name, list(keys), default_model, model_class=None, track_usage=False, logger=logger
    )
    logger.setLevel(logging.NOTSET)  # keycycle forces INFO on it; let the application decide
    return wrapper


def key_suffix(key: str) -> str:
    """The suffix keycycle stores in usage rows (its last 8 characters)."""
    return key[-KEY_SUFFIX_LENGTH:]


class NoAvailableKeyError(HFSError, KeycycleNoAvailableKeyError):
    """No key of the provider can take the call within the caller's wait budget.

    Also a ``keycycle.NoAvailableKeyError``, so code written against keycycle still catches it.
    ``next_free_in`` is the number of seconds until a key frees up (None: unknown or never).
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model_id: str,
        wait: bool,
        timeout: float,
        total_keys: int,
        dead_keys: int,
        cooling_down: int,
        next_free_in: float | None,
    ) -> None:
        KeycycleNoAvailableKeyError.__init__(
            self, provider, model_id, wait, timeout, total_keys=total_keys, cooling_down=cooling_down
        )
        self.args = (message,)
        self.dead_keys = dead_keys
        self.next_free_in = next_free_in


@dataclass(frozen=True, slots=True)
class Lease:
    """One key reserved for one attempt of one call."""

    index: int
    model_id: str
    reserved_tokens: int


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


class PoolState(Protocol):
    """Where a pool's mutable state lives: rate windows, calls in flight, cooldowns, dead keys."""

    size: int

    def try_acquire(self, model_id: str, tokens: int) -> Lease | float:
        """Reserve a usable key, or return the seconds until one may be (``inf``: when a call ends)."""

    def settle(self, lease: Lease, tokens: int | None) -> None:
        """End a lease: count `tokens` against its key, or (None) release it unused."""

    def cool_down(self, index: int, seconds: float) -> None:
        """Keep key `index` out of rotation for `seconds`."""

    def mark_dead(self, index: int) -> None:
        """Take key `index` out of rotation for good."""

    def status(self) -> PoolStatus:
        """Counts of keys by state."""


class LocalPoolState:
    """Pool state in this process, kept in keycycle's per-key windows.

    Keys are chosen by two random choices (the less loaded of two usable keys, falling
    back to a scan from a random start), so concurrent callers and separate processes
    spread over the pool instead of filling key 1 first. Calls in flight count against
    the request limits, which keycycle only counts once a call has finished.
    """

    def __init__(self, wrapper: Any, default_model: str) -> None:
        self._wrapper = wrapper
        self._keys: list[KeyUsage] = wrapper.manager.keys
        self._lock: threading.Lock = wrapper.manager.lock
        self._global = wrapper.strategy == RateLimitStrategy.GLOBAL
        self._default_model = default_model
        self.size = len(self._keys)
        self._cool_until = [0.0] * self.size
        # A key no call has succeeded on yet takes one call at a time, so a dead key is tried
        # once, not once per concurrent caller, before its 401/402/403 marks it dead.
        self._proven = [False] * self.size
        self._probing: set[int] = set()
        self._in_flight: dict[tuple[int, str], int] = {}
        self._limits: dict[str, RateLimits] = {}
        self._random = random.Random()
        # id(token window) -> (its first entry, bucket.total_tokens, its sum) at the last check
        self._token_sums: dict[int, tuple[Any, int, int]] = {}

    def limits(self, model_id: str) -> RateLimits:
        """keycycle's limits for `model_id` (its provider default row for unknown models)."""
        found = self._limits.get(model_id)
        if found is None:
            found = self._limits[model_id] = self._wrapper._resolve_limits_internal(model_id)
        return found

    def _bucket_name(self, model_id: str) -> str:
        return "*" if self._global else model_id

    def _bucket(self, key: KeyUsage, model_id: str) -> Any:
        return key.global_bucket if self._global else key.buckets[model_id]

    def _fits(self, index: int, model_id: str, tokens: int, limits: RateLimits, now: float) -> bool:
        """keycycle's limit check (``UsageBucket.check_limits``) with calls in flight counted,
        in O(1): keycycle sums its token windows on every check, which costs O(calls in the
        last day) per key; here each window's sum is carried over between checks (`_window_tokens`)."""
        key = self._keys[index]
        if key.dead or self._cool_until[index] > now or index in self._probing:
            return False
        bucket = self._bucket(key, model_id)
        flying = self._in_flight.get((index, self._bucket_name(model_id)), 0)
        for (seconds, _), stamps, limit in zip(_WINDOWS, (bucket.requests_minute, bucket.requests_hour,
                                                          bucket.requests_day),
                                               (limits.requests_per_minute, limits.requests_per_hour,
                                                limits.requests_per_day), strict=True):
            cutoff = now - seconds
            while stamps and stamps[0] <= cutoff:
                stamps.popleft()
            if len(stamps) + flying >= limit:
                return False
        wanted = bucket.pending_tokens + tokens
        for (seconds, _), entries, token_limit in zip(_WINDOWS, (bucket.tokens_minute, bucket.tokens_hour,
                                                                 bucket.tokens_day),
                                                      (limits.tokens_per_minute, limits.tokens_per_hour,
                                                       limits.tokens_per_day), strict=True):
            if token_limit and self._window_tokens(bucket, entries, now - seconds) + wanted > token_limit:
                return False
        return True

    def _window_tokens(self, bucket: Any, entries: Any, cutoff: float) -> int:
        """Tokens in one of `bucket`'s token windows after dropping entries older than `cutoff`.

        Entries only ever join a window at its end, through keycycle's ``UsageBucket.add``,
        which also adds their tokens to ``bucket.total_tokens``; so the sum at the last check
        plus the growth of ``total_tokens`` since, minus what is dropped here, is the sum now.
        If something else dropped entries meanwhile (keycycle's cleanup thread, its stats),
        the window's first entry has changed and the sum is taken afresh.
        """
        seen = self._token_sums.get(id(entries))
        if seen is not None and entries and entries[0] is seen[0]:
            total = seen[2] + bucket.total_tokens - seen[1]
        else:
            total = sum(used for _, used in entries)
        while entries and entries[0][0] <= cutoff:
            total -= entries.popleft()[1]
        self._token_sums[id(entries)] = (entries[0] if entries else None, bucket.total_tokens, total)
        return int(total)

    def _load(self, index: int, model_id: str) -> int:
        bucket = self._bucket(self._keys[index], model_id)
        return len(bucket.requests_minute) + self._in_flight.get((index, self._bucket_name(model_id)), 0)

    def try_acquire(self, model_id: str, tokens: int) -> Lease | float:
        now = time.time()
        limits = self.limits(model_id)
        with self._lock:
            chosen = self._choose(model_id, tokens, limits, now)
            if chosen is None:
                return self._seconds_until_free(model_id, tokens, limits, now)
            key = self._keys[chosen]
            key.reserve(model_id, tokens)
            slot = (chosen, self._bucket_name(model_id))
            self._in_flight[slot] = self._in_flight.get(slot, 0) + 1
            if not self._proven[chosen]:
                self._probing.add(chosen)
            return Lease(chosen, model_id, tokens)

    def _choose(self, model_id: str, tokens: int, limits: RateLimits, now: float) -> int | None:
        n = self.size
        picks = [i for i in {self._random.randrange(n), self._random.randrange(n)}
                 if self._fits(i, model_id, tokens, limits, now)]
        if picks:
            return min(picks, key=lambda i: self._load(i, model_id))
        start = self._random.randrange(n)
        for offset in range(n):
            index = (start + offset) % n
            if self._fits(index, model_id, tokens, limits, now):
                return index
        return None

    def _seconds_until_free(self, model_id: str, tokens: int, limits: RateLimits, now: float) -> float:
        soonest = math.inf
        busy = {i for (i, _), n in self._in_flight.items() if n}
        for index, key in enumerate(self._keys):
            if key.dead:
                continue
            at = math.inf if index in self._probing else self._free_at(index, key, model_id, tokens, limits)
            if math.isinf(at) and index in busy:
                # Full only because of calls in flight (a first call, reserved tokens): it may free
                # as soon as one of them ends, which wakes the waiters, so no fixed wait applies.
                return math.inf
            soonest = min(soonest, at)
        return max(0.0, soonest - now)

    def _free_at(self, index: int, key: KeyUsage, model_id: str, tokens: int, limits: RateLimits) -> float:
        """When key `index` could take the call, going by its windows alone (``inf``: not by time)."""
        at = self._cool_until[index]
        bucket = self._bucket(key, model_id)
        bucket.clean()
        flying = self._in_flight.get((index, self._bucket_name(model_id)), 0)
        request_windows = (
            (bucket.requests_minute, limits.requests_per_minute),
            (bucket.requests_hour, limits.requests_per_hour),
            (bucket.requests_day, limits.requests_per_day),
        )
        for (seconds, _), (stamps, limit) in zip(_WINDOWS, request_windows, strict=True):
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
        for (seconds, _), (entries, token_limit) in zip(_WINDOWS, token_windows, strict=True):
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
        key = self._keys[lease.index]
        with self._lock:
            slot = (lease.index, self._bucket_name(lease.model_id))
            self._in_flight[slot] = max(0, self._in_flight.get(slot, 0) - 1)
            self._probing.discard(lease.index)
            if tokens is not None:
                self._proven[lease.index] = True
            if tokens is None:
                buckets = [key.buckets[lease.model_id]] + ([key.global_bucket] if self._global else [])
                for bucket in buckets:
                    bucket.pending_tokens = max(0, bucket.pending_tokens - lease.reserved_tokens)
            else:
                key.commit(lease.model_id, tokens, lease.reserved_tokens)

    def cool_down(self, index: int, seconds: float) -> None:
        with self._lock:
            self._cool_until[index] = max(self._cool_until[index], time.time() + seconds)
            # When the cooldown ends, one call probes the key before the waiting callers pile on it.
            self._proven[index] = False

    def mark_dead(self, index: int) -> None:
        with self._lock:
            cast(Any, self._keys[index]).mark_dead()

    def status(self) -> PoolStatus:
        now = time.time()
        with self._lock:
            dead = sum(1 for k in self._keys if k.dead)
            cooling = sum(1 for i, k in enumerate(self._keys) if not k.dead and self._cool_until[i] > now)
            return PoolStatus(self.size, dead, cooling, sum(self._in_flight.values()))

    def load_history(self, rows: Sequence[tuple[str, str, float, int]], suffixes: Sequence[str]) -> int:
        """Replay usage rows (suffix, model, timestamp, tokens) into the windows; returns rows used."""
        by_suffix = {suffix: key for suffix, key in zip(suffixes, self._keys, strict=True)}
        used = 0
        with self._lock:
            for suffix, model_id, stamp, tokens in rows:
                key = by_suffix.get(suffix)
                if key is not None:
                    key.record_usage(model_id, tokens=int(tokens or 0), timestamp=float(stamp))
                    used += 1
        return used


class Outcome(Enum):
    """What a failed attempt says about its key."""

    DEAD = "dead"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """A classified failure: what it was, its HTTP status, and the provider's Retry-After."""

    outcome: Outcome
    status: int | None
    retry_after: float | None


_TRANSIENT_NAMES = ("Timeout", "ConnectError", "ConnectionError", "APIConnectionError", "RemoteProtocolError",
                    "ReadError", "WriteError", "ServerDisconnected")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retry_after(exc: BaseException) -> float | None:
    for err in _chain(exc):
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            with contextlib.suppress(TypeError, ValueError):
                if headers.get("retry-after-ms"):
                    return float(headers["retry-after-ms"]) / 1000.0
                if headers.get("retry-after"):
                    return float(headers["retry-after"])
        delay = re.search(r'"retryDelay":\s*"(\d+(?:\.\d+)?)s"', str(getattr(err, "message", "")) or str(err))
        if delay:
            return float(delay.group(1))
    return None


def classify(exc: BaseException) -> Failure:
    """Sort a model call's exception into dead key, rate limit, transient fault or fatal error."""
    status: int | None = None
    for err in _chain(exc):
        for attr in ("status_code", "code"):
            value = getattr(err, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                status = value
                break
        if status is not None:
            break
    transport = any(any(name in cls.__name__ for name in _TRANSIENT_NAMES)
                    for err in _chain(exc) for cls in type(err).__mro__)
    if status in (401, 402, 403):
        return Failure(Outcome.DEAD, status, None)
    if status == 429 or (status is None and isinstance(exc, Exception) and is_rate_limit_error(exc)):
        if isinstance(exc, Exception) and is_temporary_rate_limit_error(exc):
            return Failure(Outcome.TRANSIENT, status, _retry_after(exc))
        return Failure(Outcome.RATE_LIMITED, status, _retry_after(exc))
    if transport or status in (408, 409) or (status is not None and status >= 500):
        return Failure(Outcome.TRANSIENT, status, _retry_after(exc))
    return Failure(Outcome.FATAL, status, None)


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


class KeyPool:
    """One provider's keys: leases, waiting, SDK clients and failure handling."""

    def __init__(
        self,
        spec: ProviderSpec,
        keys: Sequence[str],
        wrapper: Any,
        state: PoolState,
        usage: UsageStore | None,
        model_class: Any,
    ) -> None:
        self.spec = spec
        self.provider = spec.name
        self.wrapper = wrapper
        self.state = state
        self.usage = usage
        self.model_class = model_class
        self._keys = tuple(keys)
        self._suffixes = tuple(key_suffix(k) for k in keys)
        self._cond = threading.Condition()
        self._generation = 0
        self._async_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._waiters_lock = threading.Lock()
        # SDK clients by (key index, async, client settings, event loop or None). An async client's
        # connections belong to the event loop that opened them, so each loop gets its own.
        self._clients: dict[tuple[int, bool, str, asyncio.AbstractEventLoop | None], Any] = {}
        # The first client built for some settings (and loop): the others are its copies with
        # another key, sharing its HTTP connection pool (see `_build_client`).
        self._templates: dict[tuple[bool, str, asyncio.AbstractEventLoop | None], Any] = {}
        self._clients_lock = threading.Lock()
        self._closed = False

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

    def status(self) -> PoolStatus:
        """Counts of keys by state."""
        return self.state.status()

    # -- waiting for a key -------------------------------------------------------------

    def _unavailable(self, model_id: str, options: CallOptions, delay: float) -> NoAvailableKeyError:
        status = self.state.status()
        if status.dead == status.total:
            message = (f"{self.provider}: all {status.total} keys are dead (401/402/403 from the provider); "
                       f"replace {self.spec.env_prefix}_API_KEY_<i>")
            next_free: float | None = None
        else:
            next_free = None if math.isinf(delay) else delay
            when = "when a call in flight ends" if next_free is None else f"in {next_free:.1f}s"
            budget = "wait=False" if not options.wait else f"a {options.timeout:g}s wait budget"
            message = (f"{self.provider}/{model_id}: no key free within {budget}; "
                       f"{status.live} of {status.total} keys live, {status.cooling} cooling down, "
                       f"{status.in_flight} calls in flight; the next key frees {when}")
        return NoAvailableKeyError(
            message, provider=self.provider, model_id=model_id, wait=options.wait, timeout=options.timeout,
            total_keys=status.total, dead_keys=status.dead, cooling_down=status.cooling, next_free_in=next_free,
        )

    def _check_wait(self, model_id: str, options: CallOptions, delay: float, left: float) -> None:
        status = self.state.status()
        if status.dead == status.total or not options.wait or left <= 0 or (delay > left and delay != math.inf):
            raise self._unavailable(model_id, options, delay)

    def acquire(self, model_id: str, options: CallOptions, budget: float) -> tuple[Lease, float]:
        """Reserve a key, waiting up to `budget` seconds; returns the lease and the time waited."""
        start = time.monotonic()
        while True:
            generation = self._generation
            got = self.state.try_acquire(model_id, options.estimated_tokens)
            if isinstance(got, Lease):
                return got, time.monotonic() - start
            left = budget - (time.monotonic() - start)
            self._check_wait(model_id, options, got, left)
            with self._cond:
                if generation == self._generation:
                    self._cond.wait(min(got, left) + 0.002)

    async def acquire_async(self, model_id: str, options: CallOptions, budget: float) -> tuple[Lease, float]:
        """`acquire` for coroutines: waits with ``await``, never blocking the event loop."""
        loop = asyncio.get_running_loop()
        start = time.monotonic()
        while True:
            waiter = (loop, loop.create_future())
            with self._waiters_lock:
                self._async_waiters.add(waiter)
            try:
                got = self.state.try_acquire(model_id, options.estimated_tokens)
                if isinstance(got, Lease):
                    return got, time.monotonic() - start
                left = budget - (time.monotonic() - start)
                self._check_wait(model_id, options, got, left)
                await asyncio.wait({waiter[1]}, timeout=min(got, left) + 0.002)
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
        if self.usage is not None:
            self.usage.record(self.provider, lease.model_id, self._suffixes[lease.index], used)
        self._wake()

    def failed(self, lease: Lease, exc: BaseException) -> Failure:
        """Release a failed attempt's key and act on what the failure says about it."""
        failure = classify(exc)
        self.state.settle(lease, None)
        where = f"{self.provider} key {self.spec.key_var(lease.index + 1)} (…{self._keys[lease.index][-4:]})"
        if failure.outcome is Outcome.DEAD:
            self.state.mark_dead(lease.index)
            status = self.state.status()
            log.warning("%s answered %s: marked dead, %d of %d keys left", where, failure.status,
                        status.live, status.total)
        elif failure.outcome is Outcome.RATE_LIMITED:
            seconds = failure.retry_after if failure.retry_after is not None else DEFAULT_COOLDOWN_SECONDS
            self.state.cool_down(lease.index, seconds)
            log.info("%s rate limited (429): cooling for %.1fs", where, seconds)
        elif failure.outcome is Outcome.TRANSIENT:
            log.info("%s failed with %s (transient): retrying", where, failure.status or type(exc).__name__)
        self._wake()
        return failure

    # -- SDK clients ---------------------------------------------------------------------

    def client(self, lease: Lease | None, model: Any, is_async: bool, signature: str) -> Any:
        """The SDK client for the lease's key, built once per key, client settings and event loop."""
        index = lease.index if lease is not None else self._any_live_index()
        loop = _running_loop() if is_async else None
        slot = (index, is_async, signature, loop)
        client = self._clients.get(slot)
        if client is not None and not _is_closed(client):
            return client
        with self._clients_lock:
            client = self._clients.get(slot)
            if client is None or _is_closed(client):
                if loop is not None:
                    self._forget_closed_loops()
                client = self._build_client(index, model, is_async, (is_async, signature, loop))
                self._clients[slot] = client
        return client

    def _forget_closed_loops(self) -> None:
        """Drop async clients of event loops that have closed (their connections died with them)."""
        for slot in [s for s in self._clients if s[3] is not None and s[3].is_closed()]:
            del self._clients[slot]
        for kind in [k for k in self._templates if k[2] is not None and k[2].is_closed()]:
            del self._templates[kind]

    def _any_live_index(self) -> int:
        status = self.state.status()
        if status.dead == status.total:
            raise self._unavailable(self.spec.default_model, CallOptions(wait=False), math.inf)
        return random.randrange(self.size)

    def _build_client(self, index: int, model: Any, is_async: bool,
                      kind: tuple[bool, str, asyncio.AbstractEventLoop | None]) -> Any:
        """Key `index`'s SDK client: a copy of the template for these settings when the SDK can
        copy a client with another key (groq, openai, cerebras: ``client.copy(api_key=...)``,
        which shares the template's HTTP connection pool and costs microseconds), else one built
        by the Agno class as it would build its own (tens of milliseconds: a new HTTP client)."""
        template = self._templates.get(kind)
        if template is not None and not _is_closed(template):
            copier = getattr(template, "copy", None)
            if callable(copier):
                # cerebras warms a connection for each new client (a blocking request, with a
                # throwaway sync client even for the async one); a copy uses the template's.
                extra = {"warm_tcp_connection": False} if _accepts(copier, "warm_tcp_connection") else {}
                with contextlib.suppress(TypeError):
                    return copier(api_key=self._keys[index], **extra)
        proto = copy.copy(model)
        proto.api_key = self._keys[index]
        for attr in ("client", "async_client"):
            if hasattr(proto, attr):
                setattr(proto, attr, None)
        build: Callable[[Any], Any] = self.model_class.get_async_client if is_async else \
            self.model_class.get_client
        client = build(proto)
        self._templates[kind] = client
        return client

    def close(self) -> None:
        """Close every SDK client and stop keycycle's cleanup thread. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with self._clients_lock:
            clients = list(self._clients.items())
            self._clients.clear()
            self._templates.clear()
        closed: set[int] = set()
        for (_, _, _, loop), client in clients:
            # Copies of one template share its HTTP client: close that once.
            shared = id(getattr(client, "_client", client))
            if shared not in closed:
                closed.add(shared)
                _close_client(client, loop)
        self.wrapper.manager.stop()
        self._wake()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _accepts(function: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _is_closed(client: Any) -> bool:
    check = getattr(client, "is_closed", None)
    return bool(check()) if callable(check) else False


_closing: set[asyncio.Task[Any]] = set()


def _close_client(client: Any, loop: asyncio.AbstractEventLoop | None) -> None:
    """Close an SDK client; an async one on the event loop its connections belong to."""
    close = getattr(client, "close", None)
    try:
        result = close() if callable(close) else None
        if not asyncio.iscoroutine(result):
            return
        current = _running_loop()
        if loop is None or loop.is_closed():
            if current is None and loop is None:
                asyncio.run(result)
            else:
                result.close()  # its loop is gone, and its connections with it
        elif loop is current:
            task = loop.create_task(result)  # shutdown() called from a coroutine on this loop
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        elif loop.is_running():
            asyncio.run_coroutine_threadsafe(result, loop)
        elif current is None:
            loop.run_until_complete(result)
        else:
            result.close()
    except Exception as exc:  # closing is best effort at shutdown
        log.debug("closing %s failed: %s", type(client).__name__, exc)
