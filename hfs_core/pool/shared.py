"""Pool state shared by many processes and machines through Redis: `RedisPoolState`, and `probe`.

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

The process's side of the server (its clients, clock, queue and heartbeat) is the `RedisLink`
(`redis_link`) every pool of a registry shares.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hfs_core.install import CORE, install_command
from hfs_core.pool.local import LocalPoolState
from hfs_core.pool.redis_connection import FUNCTION, Op, RedisConnection, describe_failure, redis_errors
from hfs_core.pool.redis_link import RedisLink
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
    from hfs_core._keycycle import RateLimits

log = logging.getLogger("hfs_core.pool")

_POLL = 0.05
"""Seconds between two tries while every key is held only by calls in flight (maybe in another process)."""


@dataclass(frozen=True)
class StateProbe:
    """What one try of the shared state found (for ``hfs check``): whether pools are shared through
    it, what was seen, and what to do when they are not."""

    shared: bool
    detail: str
    hint: str = ""


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
        self._names = _names(self._kids, local.budgets)
        self.digest = hashlib.sha256(",".join(self._names).encode()).hexdigest()[:16]
        """Names the pool's kids, in order, in Redis (``ids:<digest>``)."""
        self._suffixes = [key_suffix(key) for key in keys]  # to match usage rows, never sent
        self._leases: dict[str, tuple[Lease, str]] = {}  # ticket -> lease and when it was made (as sent)
        self._lock = threading.Lock()
        self._random = random.Random()
        self._shapes: dict[str, tuple[list[int], str]] = {}
        self._retired: dict[int, float] = {}  # key -> when this process retired it (fleet time)
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
                           self.digest, self._names[first], self._names[second]]
        return ticket, args

    def _ids_args(self) -> list[Any]:
        """Tell Redis which kids the digest stands for."""
        return ["ids", f"{self._link.now():.6f}", self.digest, *self._names]

    def _acquired(self, model_id: str, tokens: int, ticket: str, args: Sequence[Any],
                  reply: Sequence[Any]) -> Lease | float:
        if int(reply[0]) == 1:
            lease = Lease(int(reply[1]), model_id, tokens, ticket)
            with self._lock:
                self._leases[ticket] = (lease, args[1])
            self._revived(lease.index, float(args[1]))
            return lease
        self._mirror(reply[5:], float(args[1]))
        wait = float(reply[1])
        return _POLL if wait == -1 else math.inf if wait == -2 else wait

    def _mirror(self, states: Sequence[Any], asked_at: float) -> None:
        """Take the fleet's dead and cooling keys, as a reservation sent at `asked_at` found them, into
        the local state (for `status` and for when Redis does not answer)."""
        now = self._link.now()
        for index, state in enumerate(states):
            value = float(state)
            if value == -1:
                self._local.mark_dead(index)
                self._retired[index] = max(asked_at, self._retired.get(index, 0.0))
                continue
            self._revived(index, asked_at)
            if value > now:
                self._local.cool_down(index, value - now)

    def _revived(self, index: int, asked_at: float) -> None:
        """A reservation sent at `asked_at` found key `index` live: if this process retired it before
        then (so Redis knew), it was revived since (``hfs keys revive``)."""
        if asked_at > self._retired.get(index, math.inf) and self._local.revive(index):
            log.info("%s key #%d was revived in the shared state: back in service in this process too",
                     self.provider, index + 1)

    def try_acquire(self, model_id: str, tokens: int, avoid: frozenset[int] = frozenset()) -> Lease | float:
        if self._link.up:
            ticket, args = self._acquire_args(model_id, tokens, avoid)
            try:
                reply = self._link.call(self.prefix, args)
                if int(reply[0]) == -1:  # Redis lost the pool's kids (restarted, flushed): tell it again
                    self._link.send(self.prefix, self._ids_args())
                    reply = self._link.call(self.prefix, args)
            except redis_errors() as exc:
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
            except redis_errors() as exc:
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
        kid, bucket = self._names[lease.index], self._local.bucket(lease.model_id)
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

    def cool_down(self, index: int, seconds: float, reason: str = "", *, quota: bool = False) -> None:
        self._local.cool_down(index, seconds, reason, quota=quota)
        now = self._link.now()
        self._link.send(self.prefix, ["cool", f"{now:.6f}", self._kids[index], f"{now + seconds:.3f}",
                                      "quota" if quota else "cooling", reason])

    def mark_dead(self, index: int, reason: str = "") -> None:
        self._local.mark_dead(index, reason)
        self._retired[index] = self._link.now()
        self._link.send(self.prefix, ["dead", f"{self._link.now():.6f}", self._kids[index], reason])

    def revive(self, index: int) -> bool:
        """Clear the key's dead flag in Redis (the processes sharing it take the key again at their next
        reservation) and here; raises the Redis error when Redis does not answer."""
        self._local.revive(index)
        return bool(int(self._link.call(self.prefix, ["revive", f"{self._link.now():.6f}", self._kids[index]])))

    def learn_limit(self, index: int, model_id: str) -> int | None:
        if not self._link.up:
            return self._local.learn_limit(index, model_id)
        per_minute = int(self._local.table_limits(model_id).requests_per_minute)
        group = self._local.budgets.count(self._local.budgets[index])
        whose = "it" if group == 1 else f"its group of {group} keys"

        def learned(cap: Any) -> None:
            if int(cap):
                log.info("%s key #%d was refused below its table's %d requests a minute: %s now takes at most "
                         "%d a minute, in every process", self.provider, index + 1, per_minute, whose, int(cap))

        self._link.send(self.prefix, ["learn", f"{self._link.now():.6f}", self._names[index],
                                      self._local.bucket(model_id), per_minute], learned)
        return None

    # -- the link's heartbeat ----------------------------------------------------------------

    def renew(self, until: float) -> None:
        """Extend this process's leases in Redis to `until` (fleet time)."""
        now = f"{self._link.now():.6f}"
        with self._lock:
            leases = list(self._leases.values())
        for lease, sent_at in leases:
            self._link.send(self.prefix, ["renew", now, self._names[lease.index], self._local.bucket(lease.model_id),
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

    def snapshot(self, models: Sequence[str]) -> list[KeySnapshot]:
        """The fleet's view, read from Redis in one round trip (`shared.lua`, ``snapshot``): every
        process's cooldowns, dead keys, calls in flight, windows and learned caps. While Redis does
        not answer, this process's view (its in-process state)."""
        local = self._local.snapshot(models)
        buckets = {self._local.bucket(m): m for m in [*models, *local[0].models]} if local else {}
        if not self._link.up or not buckets:
            return local
        args: list[Any] = ["snapshot", f"{self._link.now():.6f}", len(buckets)]
        for bucket, model_id in buckets.items():
            args += [bucket, self._shape(model_id)[1]]
        try:
            reply = self._link.call(self.prefix, [*args, *self._names])
        except redis_errors() as exc:
            self._link.failed(exc)
            return local
        now = self._link.now()
        width = 5 + 9 * len(buckets)
        return [_key_snapshot(reply[i * width:(i + 1) * width], buckets, local[i], now) for i in range(self.size)]

    def load_history(self, rows: Iterable[HistoryRow]) -> int:
        """Replay past calls into the local state, and into Redis if it knows nothing of the pool yet
        (the first process of a fleet on a new or emptied Redis; later ones would count them twice)."""
        rows = list(rows)
        by_suffix = dict(zip(self._suffixes, self._names, strict=True))
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


def _text(value: Any) -> str:
    """A field of a Redis reply as text ("" for none)."""
    return value.decode() if isinstance(value, bytes) else "" if value is None else str(value)


def _key_snapshot(fields: Sequence[Any], buckets: dict[str, str], local: KeySnapshot, now: float) -> KeySnapshot:
    """One key of a ``snapshot`` reply (`shared.lua`), with the limits of the in-process view `local`."""
    dead, cool, cool_as, cool_why, dead_why = (_text(v) for v in fields[:5])
    cooling = not dead and bool(cool) and float(cool) > now
    state = "dead" if dead else (cool_as or "cooling") if cooling else "ready"
    models, in_flight = {}, 0
    for place, bucket in enumerate(buckets):
        minute, flying, *windows, cap, since = (_text(v) for v in fields[5 + 9 * place:14 + 9 * place])
        in_flight += int(flying or 0)
        limits = local.models[bucket].limits
        used = dict(zip(WINDOW_NAMES, [int(minute or 0), *(int(v) if v else None for v in windows)], strict=True))
        learned = None
        if cap and limits["rpm"]:
            grown = int(cap) + int((now - float(since)) // MINUTE)
            learned = grown if grown < limits["rpm"] else None
        models[bucket] = WindowsSnapshot(used, limits, learned)
    return KeySnapshot(state, float(cool) if cooling else None,
                       (dead_why if dead else cool_why if cooling else "") or None, in_flight, models)


def _names(kids: Sequence[str], budgets: Sequence[int]) -> list[str]:
    """Each key as the function knows it: its kid, and for a key of a group the kid of the group's
    first key (its budget) after a slash (`shared.lua`)."""
    return [kid if budget == index else f"{kid}/{kids[budget]}"
            for index, (kid, budget) in enumerate(zip(kids, budgets, strict=True))]


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


def probe(url: str, timeout: float = 2.0, namespace: str = "hfs") -> StateProbe:
    """Do once what a process does first with the Redis at `url` (for ``hfs check``): ping it, load the
    function library unless it is there, and call the function in `namespace`; its version and round
    trip, or what refused."""
    if importlib.util.find_spec("redis") is None:
        return StateProbe(False, "the redis client is not installed", install_command(CORE, "redis"))
    connection = RedisConnection(url, timeout=timeout)
    try:
        start = time.perf_counter()
        connection.ping()
        took = time.perf_counter() - start
        version = connection.server_version()
        connection.connect()
        [answer] = connection.run([Op(f"{{{namespace}:hfs-check}}:", ["leave", f"{time.time():.6f}", "hfs-check"])])
        if isinstance(answer, Exception):
            raise answer
    except redis_errors() as exc:
        return StateProbe(False, describe_failure(exc), _probe_hint(exc))
    finally:
        connection.close()
    return StateProbe(True, f"Redis {version} answers in {took * 1000:.1f} ms and runs {FUNCTION}")


def _probe_hint(exc: BaseException) -> str:
    """What to do about what `probe` met."""
    import redis

    if isinstance(exc, redis.exceptions.NoPermissionError):
        return ("grant this user FUNCTION LOAD, or have an admin load hfs_core/pool/shared.lua once (FUNCTION LOAD "
                "REPLACE); it also needs FCALL and the keys of its namespace")
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return "fix the user name or password in the URL"
    return "start Redis or fix the URL"
