"""Events for the application: what the pools and tiers do, delivered to subscribers on threads of their own.

``registry.subscribe(callback)`` has `callback` called with each event (a frozen dataclass below)
on a daemon thread of that subscription's own: a call only puts the event on the subscription's
queue, never waits for it. A queue that is full (a subscriber slower than the events) drops the
event and counts it (`Subscription.dropped`, a WARNING the first time). A subscriber that raises
is logged (ERROR with the traceback the first time, DEBUG after) and kept. Keys appear only as
their last four characters.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("hfs_core.events")

QUEUE_SIZE = 1000
"""Events a subscription holds before it drops new ones."""
_STOP = object()


@dataclass(frozen=True, slots=True)
class KeyCooled:
    """A key is kept out until `until` (``time.time()`` seconds): a rate limit, or failing again and again."""

    provider: str
    key: str
    until: float
    reason: str


@dataclass(frozen=True, slots=True)
class KeyRetired:
    """A key is out for good (invalid, revoked, no credit)."""

    provider: str
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class QuotaReached:
    """A key reached its daily quota: out until `until` (``time.time()`` seconds), across restarts."""

    provider: str
    key: str
    until: float


@dataclass(frozen=True, slots=True)
class LimitLearned:
    """A key (or its key group) was found to take at most `per_minute` requests a minute of `model`."""

    provider: str
    key: str
    model: str
    per_minute: int


@dataclass(frozen=True, slots=True)
class TierMoved:
    """A call of `tier` moved from entry `source` to entry `target` (``provider/model`` each), and why."""

    tier: str
    source: str
    target: str
    why: str


@dataclass(frozen=True, slots=True)
class CallRefused:
    """A call ended without an answer because no key or entry could serve it (`refusal`, as raised)."""

    model: str
    refusal: BaseException


Event = KeyCooled | KeyRetired | QuotaReached | LimitLearned | TierMoved | CallRefused
Subscriber = Callable[[Event], object]


class Subscription:
    """One subscriber's queue and the thread that calls it."""

    def __init__(self, callback: Subscriber) -> None:
        self.callback = callback
        self.dropped = 0
        """Events left out because the queue was full."""
        self.failures = 0
        """Times the subscriber raised."""
        self._queue: queue.Queue[object] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._deliver, name="hfs-events", daemon=True)
        self._thread.start()

    def put(self, event: Event) -> None:
        """Queue `event` for the subscriber, or drop it when the queue is full; never waits."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("event subscriber %r is slower than the events: dropping them (%d queued)",
                            self.callback, QUEUE_SIZE)

    def _deliver(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            try:
                self.callback(event)  # type: ignore[arg-type]
            except Exception:
                self.failures += 1
                if self.failures == 1:
                    log.exception("event subscriber %r failed on %s (kept; later failures are logged at DEBUG)",
                                  self.callback, type(event).__name__)
                else:
                    log.debug("event subscriber %r failed again (%d times)", self.callback, self.failures,
                              exc_info=True)

    def stop(self, timeout: float) -> None:
        """Deliver what is queued, then end the thread (waiting at most `timeout` seconds for it)."""
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)


class EventBus:
    """The subscribers of one registry's events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscriptions: tuple[Subscription, ...] = ()

    def subscribe(self, callback: Subscriber) -> Subscription:
        """Have `callback` called with each event from now on, on a thread of its own."""
        subscription = Subscription(callback)
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def unsubscribe(self, callback: Subscriber, timeout: float = 1.0) -> None:
        """Stop calling `callback` (its queued events are delivered first); unknown callbacks are ignored."""
        with self._lock:
            gone = [s for s in self._subscriptions if s.callback == callback]
            self._subscriptions = tuple(s for s in self._subscriptions if s.callback != callback)
        for subscription in gone:
            subscription.stop(timeout)

    def emit(self, event: Event) -> None:
        """Hand `event` to every subscriber's queue."""
        for subscription in self._subscriptions:
            subscription.put(event)

    @property
    def wanted(self) -> bool:
        """Whether anyone is subscribed (an event need not be built otherwise)."""
        return bool(self._subscriptions)

    def close(self, timeout: float = 1.0) -> None:
        """Deliver the queued events and end every subscriber's thread."""
        with self._lock:
            subscriptions, self._subscriptions = self._subscriptions, ()
        for subscription in subscriptions:
            subscription.stop(timeout)
