"""Pool state shared by many processes and machines through Redis: `RedisLink`, `RedisPoolState`.

Every process that points at the same Redis (``HFS_STATE_URL``) sees the same rate windows,
calls in flight, cooldowns, dead keys and learned limits. Choosing and reserving a key is one
round trip (`shared.lua`, atomic on the server); everything else a call changes (settling it,
cooling or retiring a key) is applied in this process at once and sent in the background, a
batch per round trip. A reservation is a lease that expires unless its process renews it, so a
process killed mid-call gives its capacity back within the lease time.

Keys never reach Redis: each is named there by a keyed hash (HMAC-SHA-256 with
``HFS_STATE_SECRET``), with no prefix or suffix of it anywhere.

When Redis does not answer (at start or mid-run), calls go on after at most one bounded wait
(``timeout``) from the in-process state this state keeps beside it: a `LocalPoolState` that
mirrors this process's own calls and the fleet's dead and cooling keys, holding each key to
this process's share of its limits. What happens meanwhile waits in the background queue and is
settled into Redis when it answers again, and sharing resumes, with no error for any caller.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import itertools
import logging
import math
import random
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib.resources import files
from typing import TYPE_CHECKING, Any, NamedTuple

from hfs_core.install import CORE, install_command
from hfs_core.pool.local import LocalPoolState
from hfs_core.pool.state import WINDOW_LENGTHS, HistoryRow, Lease, PoolStatus, key_suffix

if TYPE_CHECKING:
    from hfs_core._keycycle import RateLimits

log = logging.getLogger("hfs_core.pool")

DEFAULT_SECRET = "hfs-providers shared state"
"""The key of the hash that names API keys in Redis when ``HFS_STATE_SECRET`` is not set."""
FUNCTION = "hfs_pool_1"
"""The Redis function (in `shared.lua`) every operation calls."""
_POLL = 0.05
"""Seconds between two tries while every key is held only by calls in flight (maybe in another process)."""
_PROBE_EVERY = 1.0
"""Seconds between two pings of a Redis that does not answer."""
_BATCH = 256
"""The most background operations sent in one round trip."""
_LINGER = 0.05
"""Seconds a queued operation waits for a reservation to take it along before the writer sends it."""
_MAX_PENDING = 200_000
"""The most operations kept for a Redis that does not answer; older ones are dropped and counted."""

class Op(NamedTuple):
    """One operation for Redis: the pool's prefix, the function's arguments, what to do with its
    answer, and when it was queued (``time.monotonic()``)."""

    prefix: str
    args: list[Any]
    on_result: Callable[[Any], None] | None = None
    queued: float = 0.0


@dataclass(frozen=True)
class StateProbe:
    """What one ping of the shared state found (for ``hfs check``)."""

    reachable: bool
    detail: str


def _redis_errors() -> tuple[type[BaseException], ...]:
    import redis

    return (redis.RedisError, OSError)


class RedisLink:
    """One Redis server as this process sees it, shared by every `RedisPoolState` of a registry:
    its clients (one for threads, one per event loop for coroutines), the fleet's clock, the
    queue of operations still to send, and whether Redis answers.

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
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.shown_url = shown_url
        self.namespace = namespace
        self.lease_seconds = float(lease_seconds)
        self.timeout = float(timeout)
        self.process_id = secrets.token_hex(6)
        self.outages = 0
        """How many times Redis stopped answering since the link was made."""
        self._url = url
        self._secret = (secret or DEFAULT_SECRET).encode()
        self._errors = _redis_errors()
        self._response_error: type[Exception] = redis.exceptions.ResponseError
        self._library = (files("hfs_core.pool") / "shared.lua").read_text(encoding="utf-8")
        self._client = redis.Redis.from_url(url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                                            retry=Retry(NoBackoff(), 0))
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._ids = itertools.count()
        self._offset = 0.0  # Redis's clock minus this machine's
        self._cond = threading.Condition()
        self._pending: collections.deque[Op] = collections.deque()
        self._states: weakref.WeakSet[RedisPoolState] = weakref.WeakSet()
        self._up = True
        self._down_at = 0.0
        self._dropped = 0
        self._closed = False
        self._beat_now = False
        self._writer_due = 0.0  # when the writer wakes next (time.monotonic()); 0: it is awake
        self._beat_every = min(self.lease_seconds / 3, 5.0)
        try:
            self._connect()
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
        return time.time() + self._offset

    def new_id(self) -> str:
        """A name no other lease or call of the fleet has."""
        return f"{self.process_id}.{next(self._ids):x}"

    def _connect(self) -> None:
        """Load the function library and measure the offset of Redis's clock."""
        self._client.function_load(self._library, replace=True)
        before = time.time()
        seconds, micros = self._client.time()
        after = time.time()
        self._offset = seconds + micros / 1e6 - (before + after) / 2

    # -- calls -------------------------------------------------------------------------------

    @property
    def up(self) -> bool:
        """Whether Redis answered the last time it was asked."""
        return self._up

    def call(self, prefix: str, args: Sequence[Any]) -> Any:
        """Run one operation now, from a thread (at most `timeout` seconds), with the queued ones before it."""
        batch = [*self._take(len(self._pending)), Op(prefix, list(args))]
        try:
            answers = self._run(batch)
        except BaseException:
            self._put_back(batch[:-1])
            raise
        return self._answered(batch, answers)

    async def acall(self, prefix: str, args: Sequence[Any]) -> Any:
        """`call` from a coroutine, on this event loop's own client."""
        client = self._async_client()
        batch = [*self._take(len(self._pending)), Op(prefix, list(args))]
        try:
            for _ in range(2):
                pipe = client.pipeline(transaction=False)
                for op_prefix, op_args, *_ in batch:
                    pipe.fcall(FUNCTION, 1, op_prefix, *op_args)
                answers = list(await pipe.execute(raise_on_error=False))
                if not self._lost_library(answers):
                    break
                await client.function_load(self._library, replace=True)
        except BaseException:
            self._put_back(batch[:-1])
            raise
        return self._answered(batch, answers)

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            with self._cond:
                for old in [old for old in self._async if old.is_closed()]:
                    del self._async[old]  # its connections died with it
                client = self._async[loop] = redis.asyncio.Redis.from_url(
                    self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                    retry=Retry(NoBackoff(), 0))
        return client

    def _run(self, batch: Sequence[Op]) -> list[Any]:
        """Send `batch` in one round trip (loading the library again if Redis lost it)."""
        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            for prefix, args, *_ in batch:
                pipe.fcall(FUNCTION, 1, prefix, *args)
            answers = list(pipe.execute(raise_on_error=False))
            if not self._lost_library(answers):
                break
            self._client.function_load(self._library, replace=True)
        return answers

    def _lost_library(self, answers: Sequence[Any]) -> bool:
        """Whether Redis answered that it does not know the function (it restarted without it)."""
        return any(isinstance(a, self._response_error) and "function not found" in str(a).lower() for a in answers)

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
        """Redis did not answer: serve from this process until it does (said once per outage)."""
        with self._cond:
            if not self._up or self._closed:
                return
            self._up = False
            self.outages += 1
            self._down_at = time.monotonic()
            self._cond.notify_all()
        log.warning("shared state: Redis at %s does not answer (%s: %s); every pool goes on from this process's "
                    "own state, holding each key to its share of the limits, and shares again when Redis answers "
                    "(asked every %gs)", self.shown_url, type(exc).__name__, exc, _PROBE_EVERY)

    # -- pools -------------------------------------------------------------------------------

    def attach(self, state: RedisPoolState) -> None:
        """Renew `state`'s leases and heartbeat with the others (the first heartbeat at once)."""
        self._states.add(state)
        with self._cond:
            self._beat_now = True
            self._cond.notify()

    def detach(self, state: RedisPoolState) -> None:
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
                time.sleep(_PROBE_EVERY)

    def _wait_for_work(self, next_beat: float) -> bool:
        """Sleep until the oldest queued operation has waited `_LINGER` (or a batch is full), a
        heartbeat or a ping is due, or the link closes; returns whether it closes."""
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if not self._up:
                    due = self._down_at + _PROBE_EVERY
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
                answers = self._run(batch)
            except BaseException:
                self._put_back(batch)
                raise
            sent += len(batch)
            self._answered([*batch, Op("", [])], [*answers, None])

    def _beat(self) -> None:
        """Renew this process's leases, count the processes of each pool, and set the clock."""
        self._connect()
        until = self.now() + self.lease_seconds
        for state in list(self._states):
            state.renew(until)
            self.send(state.prefix, ["beat", self.now(), self.process_id, until, state.digest], state.set_peers)
        self._flush()

    def _recover(self) -> None:
        """Ask Redis whether it answers again; if so, settle what happened meanwhile, then share again."""
        with self._cond:
            self._down_at = time.monotonic()
        self._client.ping()
        self._connect()
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
        with contextlib.suppress(*self._errors):
            self._client.close()
        for loop, client in list(self._async.items()):
            _close_on(loop, client)
        self._async.clear()


def _close_on(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Close an async Redis client on the event loop its connections belong to."""
    if loop.is_closed():
        return  # its connections died with it
    try:
        current = asyncio.get_running_loop()
    except RuntimeError:
        current = None
    if loop is current:
        loop.create_task(client.aclose())
    elif loop.is_running():
        asyncio.run_coroutine_threadsafe(client.aclose(), loop)
    elif current is None:
        loop.run_until_complete(client.aclose())


class RedisPoolState:
    """A `PoolState` in Redis, shared by every process whose registry points at the same server.

    Keeps a `LocalPoolState` beside it, for when Redis does not answer: it counts this
    process's own calls (served through Redis or not) and the fleet's dead and cooling keys as
    Redis reports them, and holds each key to 1/N of its limits, N being the processes that
    shared the pool at the last heartbeat.
    """

    def __init__(self, local: LocalPoolState, link: RedisLink, provider: str, keys: Sequence[str]) -> None:
        self._local = local
        self._link = link
        self.provider = provider
        self.prefix = link.prefix(provider)
        self.size = len(keys)
        self._kids = [link.key_id(provider, key) for key in keys]
        self.digest = hashlib.sha256(",".join(self._kids).encode()).hexdigest()[:16]
        """Names the pool's kids, in order, in Redis (``ids:<digest>``)."""
        self._suffixes = [key_suffix(key) for key in keys]  # to match usage rows, never sent
        self._leases: dict[str, tuple[Lease, str]] = {}  # ticket -> lease and when it was made (as sent)
        self._lock = threading.Lock()
        self._random = random.Random()
        self._shapes: dict[str, tuple[list[int], str]] = {}
        self._closed = False
        link.send(self.prefix, self._ids_args())
        link.attach(self)

    def __repr__(self) -> str:
        return f"RedisPoolState(provider={self.provider!r}, keys={self.size}, link={self._link!r})"

    # -- choosing a key ----------------------------------------------------------------------

    def _shape(self, model_id: str) -> tuple[list[int], str]:
        """The limits of `model_id` as the function takes them, and the mask of the slot windows
        they keep (rh, rd, tm, th, td)."""
        found = self._shapes.get(model_id)
        if found is None:
            limits = _limit_args(self._local.table_limits(model_id))
            found = self._shapes[model_id] = (limits, "".join("1" if v else "0" for v in limits[1:]))
        return found

    def _acquire_args(self, model_id: str, tokens: int, avoid: frozenset[int]) -> tuple[str, list[Any]]:
        ticket = self._link.new_id()
        first, second = self._random.randrange(self.size), self._random.randrange(self.size)
        args: list[Any] = ["acquire", f"{self._link.now():.6f}", ticket, f"{self._link.lease_seconds:.3f}",
                           f"{first + 1}:{second + 1}", self._local.bucket(model_id), tokens,
                           *self._shape(model_id)[0], len(avoid), *(index + 1 for index in sorted(avoid)),
                           self.digest, self._kids[first], self._kids[second]]
        return ticket, args

    def _ids_args(self) -> list[Any]:
        """Tell Redis which kids the digest stands for."""
        return ["ids", f"{self._link.now():.6f}", self.digest, *self._kids]

    def _acquired(self, model_id: str, tokens: int, ticket: str, args: Sequence[Any],
                  reply: Sequence[Any]) -> Lease | float:
        if int(reply[0]) == 1:
            lease = Lease(int(reply[1]), model_id, tokens, ticket)
            with self._lock:
                self._leases[ticket] = (lease, args[1])
            return lease
        self._mirror(reply[5:])
        wait = float(reply[1])
        return _POLL if wait == -1 else math.inf if wait == -2 else wait

    def _mirror(self, states: Sequence[Any]) -> None:
        """Take the fleet's dead and cooling keys into the local state (for `status` and for when
        Redis does not answer)."""
        now = self._link.now()
        for index, state in enumerate(states):
            value = float(state)
            if value == -1:
                self._local.mark_dead(index)
            elif value > now:
                self._local.cool_down(index, value - now)

    def try_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        if self._link.up:
            ticket, args = self._acquire_args(model_id, tokens, avoid)
            try:
                reply = self._link.call(self.prefix, args)
                if int(reply[0]) == -1:  # Redis lost the pool's kids (restarted, flushed): tell it again
                    self._link.send(self.prefix, self._ids_args())
                    reply = self._link.call(self.prefix, args)
            except _redis_errors() as exc:
                self._abandon(model_id, args, exc)
            else:
                return self._acquired(model_id, tokens, ticket, args, reply)
        return self._local.try_acquire(model_id, tokens, avoid)

    async def atry_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        if self._link.up:
            ticket, args = self._acquire_args(model_id, tokens, avoid)
            try:
                reply = await self._link.acall(self.prefix, args)
                if int(reply[0]) == -1:  # Redis lost the pool's kids (restarted, flushed): tell it again
                    self._link.send(self.prefix, self._ids_args())
                    reply = await self._link.acall(self.prefix, args)
            except _redis_errors() as exc:
                self._abandon(model_id, args, exc)
            else:
                return self._acquired(model_id, tokens, ticket, args, reply)
        return self._local.try_acquire(model_id, tokens, avoid)

    def _abandon(self, model_id: str, args: Sequence[Any], exc: BaseException) -> None:
        """A reservation of `model_id` (made with `args`) got no answer: serve from this process, and
        undo it in Redis should it have been made there all the same (a slow Redis, not a dead one)."""
        self._link.failed(exc)
        _, sent_at, ticket, _, _, bucket, tokens = args[:7]
        self._link.send(self.prefix, ["abandon", f"{self._link.now():.6f}", ticket, bucket, tokens, sent_at,
                                      self._shape(model_id)[1], self.digest])

    # -- what calls change (applied here at once, sent in the background) --------------------

    def settle(self, lease: Lease, tokens: int | None) -> None:
        kid, bucket = self._kids[lease.index], self._local.bucket(lease.model_id)
        now, mask = f"{self._link.now():.6f}", self._shape(lease.model_id)[1]
        if not lease.ticket:  # served while Redis did not answer: count it there when it does
            self._local.settle(lease, tokens)
            if tokens is not None:
                self._link.send(self.prefix, ["record", now, kid, bucket, self._link.new_id(), tokens, mask])
            return
        with self._lock:
            _, sent_at = self._leases.pop(lease.ticket)
        self._link.send(self.prefix, ["settle", now, kid, bucket, lease.ticket, lease.reserved_tokens, sent_at,
                                      -1 if tokens is None else tokens, mask])
        if tokens is not None:
            self._local.record(lease.index, lease.model_id, tokens)

    def cool_down(self, index: int, seconds: float) -> None:
        self._local.cool_down(index, seconds)
        now = self._link.now()
        self._link.send(self.prefix, ["cool", f"{now:.6f}", self._kids[index], f"{now + seconds:.3f}"])

    def mark_dead(self, index: int) -> None:
        self._local.mark_dead(index)
        self._link.send(self.prefix, ["dead", f"{self._link.now():.6f}", self._kids[index]])

    def learn_limit(self, index: int, model_id: str) -> int | None:
        if not self._link.up:
            return self._local.learn_limit(index, model_id)
        per_minute = int(self._local.table_limits(model_id).requests_per_minute)

        def learned(cap: Any) -> None:
            if int(cap):
                log.info("%s key #%d was refused below its table's %d requests a minute: it now takes at most "
                         "%d a minute, in every process", self.provider, index + 1, per_minute, int(cap))

        self._link.send(self.prefix, ["learn", f"{self._link.now():.6f}", self._kids[index],
                                      self._local.bucket(model_id), per_minute], learned)
        return None

    # -- the link's heartbeat ----------------------------------------------------------------

    def renew(self, until: float) -> None:
        """Extend this process's leases in Redis to `until` (fleet time)."""
        now = f"{self._link.now():.6f}"
        with self._lock:
            leases = list(self._leases.values())
        for lease, sent_at in leases:
            self._link.send(self.prefix, ["renew", now, self._kids[lease.index], self._local.bucket(lease.model_id),
                                          lease.ticket, lease.reserved_tokens, sent_at, f"{until:.3f}"])

    def set_peers(self, processes: Any) -> None:
        """`processes` share this pool: this one's part of each limit, when Redis does not answer."""
        self._local.set_share(int(processes))

    # -- reading -------------------------------------------------------------------------------

    def max_tokens(self, model_id: str) -> int | None:
        return self._local.max_tokens(model_id)

    def status(self) -> PoolStatus:
        """Counts from this process's view: the fleet's dead and cooling keys as Redis last
        reported them, and this process's calls in flight."""
        local = self._local.status()
        with self._lock:
            flying = len(self._leases)
        return PoolStatus(local.total, local.dead, local.cooling, local.in_flight + flying)

    def load_history(self, rows: Iterable[HistoryRow]) -> int:
        """Replay past calls into the local state, and into Redis if it knows nothing of the pool yet
        (the first process of a fleet on a new or emptied Redis; later ones would count them twice)."""
        rows = list(rows)
        by_suffix = dict(zip(self._suffixes, self._kids, strict=True))
        offset = self._link.now() - time.time()
        args: list[Any] = ["seed", f"{self._link.now():.6f}"]
        for suffix, model_id, stamp, tokens in rows:
            kid = by_suffix.get(suffix)
            if kid is not None:
                args += [kid, self._local.bucket(model_id), f"{float(stamp) + offset:.6f}", int(tokens or 0),
                         self._shape(model_id)[1]]
        self._link.send(self.prefix, args)
        return self._local.load_history(rows)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._link.detach(self)
            self._local.close()


def _limit_args(limits: RateLimits) -> list[int]:
    """rpm, rph, rpd, tpm, tph, tpd for the function (0: no limit, or one that never refuses first).

    A window is left out when another of its kind always refuses first: a longer one whose limit
    is no higher (it holds at least what the shorter one does), or a shorter one whose limit, times
    how many of it fit, is no higher (the longer one can never fill). Redis then neither reads nor
    keeps it. The minute's requests are always kept: a cap learned from a 429 binds there.
    """
    out: list[int] = []
    for requests, family in ((True, (limits.requests_per_minute, limits.requests_per_hour, limits.requests_per_day)),
                             (False, (limits.tokens_per_minute, limits.tokens_per_hour, limits.tokens_per_day))):
        values = [int(v or 0) for v in family]
        for i, mine in enumerate(values):
            if not mine or (requests and i == 0):
                continue
            for j, other in enumerate(values):
                if other and j != i and (other <= mine if j > i else
                                         other * _WINDOW_SECONDS[i] / _WINDOW_SECONDS[j] <= mine):
                    values[i] = 0
                    break
        out += values
    return out


_WINDOW_SECONDS = WINDOW_LENGTHS


def probe(url: str, timeout: float = 2.0) -> StateProbe:
    """Ping the Redis at `url` once (for ``hfs check``): its version and round trip, or why not."""
    try:
        import redis
    except ImportError:
        return StateProbe(False, f"the redis client is not installed: {install_command(CORE, 'redis')}")
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        start = time.perf_counter()
        client.ping()
        took = time.perf_counter() - start
        version = client.info("server").get("redis_version", "?")
    except _redis_errors() as exc:
        return StateProbe(False, f"does not answer: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    return StateProbe(True, f"Redis {version} answers in {took * 1000:.1f} ms")
