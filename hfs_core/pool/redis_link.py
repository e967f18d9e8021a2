"""One Redis server as this process sees it, shared by every pool of a registry: `RedisLink`.

It names keys and calls there, keeps the fleet's clock, sends each reservation at once with the
operations queued before it, and queues the rest for its background writer, which also renews
the leases and heartbeats with the other processes (`SharedPool`, the pools it does this for).
The clients and the function library are its `RedisConnection` (`redis_connection`).
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import itertools
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hfs_core.pool.redis_connection import Op, RedisConnection, describe_failure, redis_errors

log = logging.getLogger("hfs_core.pool")

DEFAULT_SECRET = "hfs-providers shared state"
"""The key of the hash that names API keys in Redis when ``HFS_STATE_SECRET`` is not set."""
PROBE_EVERY = 1.0
"""Seconds between two pings of a Redis that does not answer."""
_BATCH = 256
"""The most background operations sent in one round trip."""
_LINGER = 0.05
"""Seconds a queued operation waits for a reservation to take it along before the writer sends it."""
_MAX_PENDING = 200_000
"""The most operations kept for a Redis that does not answer; older ones are dropped and counted."""


class SharedPool(Protocol):
    """A pool whose leases the link renews and whose processes its heartbeat counts (`RedisPoolState`)."""

    prefix: str
    digest: str

    def renew(self, until: float) -> None:
        """Extend this process's leases in Redis to `until` (fleet time)."""

    def set_peers(self, processes: Any) -> None:
        """`processes` share this pool."""


class RedisLink:
    """One Redis server as this process sees it, shared by every `RedisPoolState` of a registry:
    its connection, the fleet's clock, the queue of operations still to send, and whether Redis
    answers.

    Operations that change state wait in the queue a few milliseconds: the process's next
    reservation takes them along in its round trip (so a thread always sees its own changes),
    and the background writer sends what is left, a batch per round trip.

    Args:
        url: ``redis://``, ``rediss://`` or ``unix://`` URL.
        shown_url: the URL as logs may show it (password hidden).
        namespace: first part of every key's name, so several fleets can share one Redis.
        secret: key of the hash that names API keys in Redis (None: `DEFAULT_SECRET`).
        lease_seconds: how long a reservation outlives a process that stops renewing it.
        timeout: the longest one Redis operation may take before the state serves from this
            process (connect and read).
    """

    def __init__(self, url: str, *, shown_url: str, namespace: str = "hfs", secret: str | None = None,
                 lease_seconds: float = 30.0, timeout: float = 0.5) -> None:
        self.shown_url = shown_url
        self.namespace = namespace
        self.lease_seconds = float(lease_seconds)
        self.timeout = float(timeout)
        self.process_id = secrets.token_hex(6)
        self.outages = 0
        """How many times Redis stopped answering since the link was made."""
        self._secret = (secret or DEFAULT_SECRET).encode()
        self._errors = redis_errors()
        self._redis = RedisConnection(url, timeout=self.timeout)
        self._ids = itertools.count()
        self._cond = threading.Condition()
        self._pending: collections.deque[Op] = collections.deque()
        self._states: weakref.WeakSet[SharedPool] = weakref.WeakSet()
        self._up = True
        self._down_at = 0.0
        self._dropped = 0
        self._closed = False
        self._beat_now = False
        self._writer_due = 0.0  # when the writer wakes next (time.monotonic()); 0: it is awake
        self._beat_every = min(self.lease_seconds / 3, 5.0)
        try:
            self._redis.connect()
        except self._errors as exc:
            self.failed(exc)
        self._thread = threading.Thread(target=self._work, name="hfs-shared-state", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"RedisLink({self.shown_url!r}, namespace={self.namespace!r}, up={self._up})"

    # -- names and time --------------------------------------------------------------------

    def prefix(self, provider: str) -> str:
        """The start of every Redis key of `provider`'s pool; its braces make it the hash tag."""
        return f"{{{self.namespace}:{provider}}}:"

    def key_id(self, provider: str, key: str) -> str:
        """The name of an API key in Redis: a keyed hash, from which the key cannot be told."""
        return hmac.new(self._secret, f"{provider}\0{key}".encode(), hashlib.sha256).hexdigest()[:24]

    def now(self) -> float:
        """The fleet's time: Redis's clock, as this process last measured its offset."""
        return time.time() + self._redis.offset

    def new_id(self) -> str:
        """A name no other lease or call of the fleet has."""
        return f"{self.process_id}.{next(self._ids):x}"

    # -- calls -------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """Whether Redis answered the last time it was asked."""
        return self._up

    def call(self, prefix: str, args: Sequence[Any]) -> Any:
        """Run one operation now, from a thread (at most `timeout` seconds), with the queued ones before it."""
        batch = [*self._take(len(self._pending)), Op(prefix, list(args))]
        try:
            answers = self._redis.run(batch)
        except BaseException:
            self._put_back(batch[:-1])
            raise
        return self._answered(batch, answers)

    async def acall(self, prefix: str, args: Sequence[Any]) -> Any:
        """`call` from a coroutine, on this event loop's own client."""
        batch = [*self._take(len(self._pending)), Op(prefix, list(args))]
        try:
            answers = await self._redis.arun(batch)
        except BaseException:
            self._put_back(batch[:-1])
            raise
        return self._answered(batch, answers)

    def _answered(self, batch: Sequence[Op], answers: Sequence[Any]) -> Any:
        """Hand each answer to its operation; returns the last one's (raised if it is an error)."""
        for (_, args, on_result, _), answer in zip(batch[:-1], answers, strict=False):
            if isinstance(answer, Exception):
                log.warning("shared state: Redis refused %s (%s); dropped", args[0], answer)
            elif on_result is not None:
                on_result(answer)
        last = answers[len(batch) - 1]
        if isinstance(last, Exception):
            raise last
        if batch[-1][2] is not None:
            batch[-1][2](last)
        return last

    def send(self, prefix: str, args: list[Any], on_result: Callable[[Any], None] | None = None) -> None:
        """Queue an operation (kept while Redis does not answer)."""
        with self._cond:
            if len(self._pending) >= _MAX_PENDING:
                self._pending.popleft()
                self._dropped += 1
            now = time.monotonic()
            self._pending.append(Op(prefix, args, on_result, now))
            # Wake the writer only if it would sleep past this operation's time (a busy process's
            # reservations take the queue along; waking a thread per call costs more than the call).
            if len(self._pending) >= _BATCH or self._writer_due > now + _LINGER:
                self._writer_due = now + _LINGER
                self._cond.notify()

    def _take(self, most: int) -> list[Op]:
        with self._cond:
            return [self._pending.popleft() for _ in range(min(most, len(self._pending)))]

    def _put_back(self, batch: Sequence[Op]) -> None:
        with self._cond:
            self._pending.extendleft(reversed(batch))

    def failed(self, exc: BaseException) -> None:
        """Redis did not answer, or refused this process: serve from this process until it answers and
        accepts it (said once per outage)."""
        with self._cond:
            if not self._up or self._closed:
                return
            self._up = False
            self.outages += 1
            self._down_at = time.monotonic()
            self._cond.notify_all()
        reason = describe_failure(exc)
        again = "answers" if reason.startswith("does not answer") else "allows this user"
        log.warning("shared state: Redis at %s: %s; every pool goes on from this process's own state, holding "
                    "each key to its share of the limits, and shares again when Redis %s (asked every %gs)",
                    self.shown_url, reason, again, PROBE_EVERY)

    # -- pools -------------------------------------------------------------------------------

    def attach(self, state: SharedPool) -> None:
        """Renew `state`'s leases and heartbeat with the others (the first heartbeat at once)."""
        self._states.add(state)
        with self._cond:
            self._beat_now = True
            self._cond.notify()

    def detach(self, state: SharedPool) -> None:
        """Stop renewing `state`; its process leaves the pool's count."""
        self._states.discard(state)
        self.send(state.prefix, ["leave", self.now(), self.process_id])

    # -- the background writer ---------------------------------------------------------------

    def _work(self) -> None:
        next_beat = 0.0
        while True:
            closing = self._wait_for_work(next_beat)
            try:
                if not self._up:
                    if closing:
                        return
                    self._recover()
                    continue
                self._flush()
                if closing:
                    return
                if self._beat_now or time.monotonic() >= next_beat:
                    self._beat_now = False
                    self._beat()
                    next_beat = time.monotonic() + self._beat_every
            except self._errors as exc:
                log.debug("shared state: Redis at %s: %s: %s", self.shown_url, type(exc).__name__, exc)
                self.failed(exc)
                if closing:
                    return
            except Exception:  # a bug here must not stop the writer for good
                log.exception("shared state: the background writer failed; it goes on")
                time.sleep(PROBE_EVERY)

    def _wait_for_work(self, next_beat: float) -> bool:
        """Sleep until the oldest queued operation has waited `_LINGER` (or a batch is full), a
        heartbeat or a ping is due, or the link closes; returns whether it closes."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if not self._up:
                    due = self._down_at + PROBE_EVERY
                elif len(self._pending) >= _BATCH:
                    break
                elif self._pending:
                    due = self._pending[0].queued + _LINGER  # the next reservation may take them along first
                else:
                    due = 0.0 if self._beat_now else next_beat
                if now >= due:
                    break
                self._writer_due = due
                self._cond.wait(due - now)
            self._writer_due = 0.0  # awake: a new operation needs no wake-up
            return self._closed

    def _flush(self) -> int:
        """Send the queued operations, a batch per round trip; returns how many were sent."""
        sent = 0
        while True:
            batch = self._take(_BATCH)
            if not batch:
                return sent
            try:
                answers = self._redis.run(batch)
            except BaseException:
                self._put_back(batch)
                raise
            sent += len(batch)
            self._answered([*batch, Op("", [])], [*answers, None])

    def _beat(self) -> None:
        """Renew this process's leases, count the processes of each pool, and set the clock."""
        self._redis.measure_clock()
        until = self.now() + self.lease_seconds
        for state in list(self._states):
            state.renew(until)
            self.send(state.prefix, ["beat", self.now(), self.process_id, until, state.digest], state.set_peers)
        self._flush()

    def _recover(self) -> None:
        """Ask Redis whether it answers again; if so, settle what happened meanwhile, then share again."""
        with self._cond:
            self._down_at = time.monotonic()
        self._redis.ping()
        self._redis.connect()
        for state in list(self._states):
            state.renew(self.now() + self.lease_seconds)
        sent = self._flush()
        with self._cond:
            self._up = True
            dropped, self._dropped = self._dropped, 0
        lost = f"; {dropped} operations did not fit in the queue and are lost" if dropped else ""
        log.warning("shared state: Redis at %s answers again; %d operations made meanwhile are settled into it%s",
                    self.shown_url, sent, lost)

    def close(self) -> None:
        """Send what is queued (waiting at most a few timeouts), stop the writer, close the clients."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=max(2.0, 4 * self.timeout))
        self._redis.close()
