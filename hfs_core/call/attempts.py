"""The attempt loop of one call: which entry's key each attempt leases, and what a failure means.

`Call.attempts` is the loop, as steps (`hfs_core.call.steps`) for the drivers; `Call.lease` and
`Call.alease` choose the entry and wait within the budget; `Call.after_failure` is the failure
policy. What the call tells its owner, and what ends it when no entry can serve, come from the
owner's `CallHooks` (a tier passes its own; a plain model's are `PLAIN`).
"""

from __future__ import annotations

import contextvars
import functools
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hfs_core.call.entries import Entries
from hfs_core.call.messages import carries, tag, tokens
from hfs_core.call.refusal import label, plain_refusal
from hfs_core.call.steps import END, LATE, LEASE, Emit, Offload, Pause, Pull, Step
from hfs_core.events import CallRefused
from hfs_core.plugin import Action, Verdict
from hfs_core.pool import (
    Acquired,
    CallOptions,
    Lease,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    local_error,
    read_reply,
)

if TYPE_CHECKING:
    from hfs_core.telemetry import CallTrace

_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("hfs_lease", default=None)
_SERVED: contextvars.ContextVar[Any] = contextvars.ContextVar("hfs_served", default=None)
"""The entry whose attempt last succeeded in this context (a tier's streamed tool calls are
assembled by the parser of the provider that sent them)."""
_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 4.0
_RULES_LONGEST = 5.0
_RULES_SHORTEST = 0.1
"""A provider's error rules get what is left of the call's budget, at least 0.1 s and at most 5 s."""


def current_lease() -> Lease | None:
    """The lease of the attempt running in this thread or task (None outside an attempt)."""
    return _LEASE.get()


def served_model() -> Any:
    """The rotating model whose attempt last succeeded in this thread or task (None before any)."""
    return _SERVED.get()


@dataclass(frozen=True, slots=True)
class CallHooks:
    """What a call tells its owner, and asks it for."""

    refusal: Callable[[Entries, CallOptions], BaseException] = plain_refusal
    """What ends the call when no entry can serve it."""
    moved: Callable[[Entries, int], None] | None = None
    """Told when the next attempt runs on another entry than the last one (`Entries.current`)."""
    gave_up: Callable[[Entries, int, BaseException], None] | None = None
    """Told when an entry is given up for this call after an error, and others are left."""
    tier: str | None = None
    """The tier whose call it is (None: a plain model's), as its span says."""


PLAIN = CallHooks()
"""A plain model's hooks: it tells nothing, and its one entry's last error ends the call as it is."""


class Call:
    """One model call over its entries (rotating models, in order of preference) sharing one wait budget.

    Each lease goes to the first entry with a key free now; when none has, the call waits for the
    entry whose key frees first, within the budget. An entry is given up for this call when its
    provider cannot serve it: no key ever frees (all dead, or `estimated_tokens` too large), its
    rate limits or faults use up `max_retries`, or (with another entry left) every live key failed
    and it would have to back off, or it does not know the model (404). A plain model's loop is
    the pool's own: its last error reaches the caller as it is. ``timeout`` bounds the waiting
    (for a key, in back-off), and no new attempt or wait starts once that much time has passed
    since the call began: a slow or hung upstream costs at most the attempt under way (its SDK's
    idle-read timeout) past the budget.
    """

    def __init__(self, entries: Entries, options: CallOptions, hooks: CallHooks = PLAIN) -> None:
        self.entries = entries
        self.options = options
        self.hooks = hooks
        self.started = time.monotonic()
        self.budget = options.timeout
        self.announced = False
        self.waited = 0.0
        """Seconds this call has waited for keys so far."""
        first = entries.models[0]
        telemetry = first.pool.telemetry
        self.trace = None if telemetry is None else telemetry.begin(first.id, first.pool.provider, hooks.tier)
        """What the call did so far, for its span and metrics (None: OpenTelemetry is not configured)."""

    # -- leasing ---------------------------------------------------------------------------

    def _free_now(self) -> Lease | None:
        """A lease on the first entry with a key free now (it becomes the current one), else None."""
        entries = self.entries
        for index in entries.in_turn():
            model = entries.models[index]
            try:
                lease = model.pool.acquire(model.id, model._hfs_reserving(self.options), budget=0.0,
                                           announce=False, avoid=entries.avoid[index]).lease
            except NoAvailableKeyError as exc:
                entries.no_key_now(index, exc)
                continue
            entries.leased(index)
            self._take(index)
            return lease
        return None

    async def _afree_now(self) -> Lease | None:
        """`_free_now` for coroutines (a shared state's reservation is awaited, never blocking the loop)."""
        entries = self.entries
        for index in entries.in_turn():
            model = entries.models[index]
            try:
                lease = (await model.pool.acquire_async(model.id, model._hfs_reserving(self.options), budget=0.0,
                                                        announce=False, avoid=entries.avoid[index])).lease
            except NoAvailableKeyError as exc:
                entries.no_key_now(index, exc)
                continue
            entries.leased(index)
            self._take(index)
            return lease
        return None

    def _to_wait_for(self) -> int:
        """The entry whose key frees first (it becomes the current one); raises when waiting cannot help."""
        index = self.entries.frees_first()
        if index is None or not self.options.wait:
            raise self._refusal()
        self._take(index)
        return index

    def _take(self, index: int) -> None:
        """Run the next attempt on entry `index`."""
        if index != self.entries.current:
            if self.hooks.moved is not None:
                self.hooks.moved(self.entries, index)
            if self.trace is not None:
                self.trace.moved()
        self.entries.current = index

    def _refusal(self) -> BaseException:
        """What ends the call when no entry can serve it (the subscribers are told)."""
        refusal = self.hooks.refusal(self.entries, self.options)
        events = self.entries.models[0].pool.events
        if events.wanted:
            events.emit(CallRefused(self.hooks.tier or label(self.entries.models[0]), refusal))
        return refusal

    def _refused_waiting(self, index: int, refusal: NoAvailableKeyError) -> BaseException:
        """What ends the call when entry `index`, waited for, gave no key within the budget."""
        self.entries.refused[index] = refusal
        return self._refusal()

    def _waited(self, got: Acquired) -> Lease:
        self.budget -= got.waited
        self.waited += got.waited
        self.announced = self.announced or got.announced
        return got.lease

    def lease(self) -> Lease:
        """A lease for the next attempt: a key free now, else one waited for within the budget."""
        lease = self._free_now()
        if lease is None:
            index = self._to_wait_for()
            model = self.entries.models[index]
            try:
                got = model.pool.acquire(model.id, model._hfs_reserving(self.options), budget=self.budget,
                                         announce=not self.announced, avoid=self.entries.avoid[index])
            except NoAvailableKeyError as exc:
                raise self._refused_waiting(index, exc) from None
            lease = self._waited(got)
        return lease

    async def alease(self) -> Lease:
        """`lease` waited for with ``await``; then the entry gets ready (its loop's first SDK client
        is built off the loop, if it is not yet)."""
        lease = await self._afree_now()
        if lease is None:
            index = self._to_wait_for()
            model = self.entries.models[index]
            try:
                got = await model.pool.acquire_async(model.id, model._hfs_reserving(self.options),
                                                     budget=self.budget, announce=not self.announced,
                                                     avoid=self.entries.avoid[index])
            except NoAvailableKeyError as exc:
                raise self._refused_waiting(index, exc) from None
            lease = self._waited(got)
        await self.entries.models[self.entries.current]._hfs_ready()
        return lease

    # -- failures --------------------------------------------------------------------------

    def _give_up(self, index: int, exc: BaseException, kind: type[NoAvailableKeyError] = ProviderBusyError) -> float:
        """Take entry `index` out of this call (`kind`: what it amounts to); raises when it was the last one."""
        self.entries.give_up(index, exc, kind)
        if not self.entries.live():
            raise self._refusal()
        if self.hooks.gave_up is not None:
            self.hooks.gave_up(self.entries, index, exc)
        return 0.0

    def _ruling(self, model: Any, exc: BaseException) -> Generator[Step, Any, Verdict | None]:
        """The verdict of `model`'s provider rules on `exc`, asked in a thread of their own within what
        is left of the budget (between `_RULES_SHORTEST` and `_RULES_LONGEST`); None: the defaults decide."""
        rules = model.pool.rules
        if rules is None or local_error(exc) is not None:
            return None
        left = self.options.timeout - (time.monotonic() - self.started)
        seconds = min(_RULES_LONGEST, max(_RULES_SHORTEST, left))
        verdict = yield Offload(functools.partial(rules, read_reply(exc)), seconds)
        if verdict is LATE:
            rules.fault(f"gave no verdict within {seconds:.1f}s")
            return None
        return verdict if isinstance(verdict, Verdict) else None

    def after_failure(self, lease: Lease, exc: BaseException, ruled: Verdict | None) -> float:
        """Decide on a failed attempt: re-raise it, give its entry up, or return the back-off before the next.

        The pool has already acted on the key (retired, cooled, set aside) or the provider
        (backed off, which the next lease waits out within the budget). Rate limits may
        come once per key and retry (up to `max_retries` each); other faults count against
        `max_retries`; a caller's error is raised at once (one raised before any request left,
        such as an SDK refusing its options, as it was raised, not as Agno wrapped it). `ruled`:
        the provider's rules' verdict (`_ruling`).
        """
        entries = self.entries
        index = entries.current
        pool = entries.models[index].pool
        verdict = pool.failed(lease, exc, ruled)
        if self.trace is not None:
            self.trace.failed(read_reply(exc).status, verdict.action.value, exc)
        entries.key_failed(index, lease.index)
        others = len(entries.live()) > 1
        if verdict.action is Action.CALLER_ERROR:
            local = local_error(exc)
            if local is not None:
                raise local from None  # no request left: the caller's own error, as it was raised
            if others and read_reply(exc).status == 404:
                return self._give_up(index, exc)  # this provider does not know the model: an entry's fault
            raise exc
        elapsed = time.monotonic() - self.started
        if elapsed >= self.options.timeout:
            raise exc  # the budget is spent (on a slow provider): no new attempt starts
        self.budget = min(self.budget, self.options.timeout - elapsed)
        if verdict.action is Action.RETIRE_KEY:
            return 0.0
        if verdict.action is Action.COOL_KEY:
            entries.rate_limits[index] += 1
            if entries.rate_limits[index] > self.options.max_retries * pool.size:
                return self._give_up(index, exc, PoolExhaustedError)
            return 0.0
        if entries.retries[index] >= self.options.max_retries:
            return self._give_up(index, exc)
        entries.retries[index] += 1
        if verdict.action is Action.PROVIDER_BUSY or len(entries.avoid[index]) < pool.status().live:
            return 0.0  # the next lease waits out the provider's back-off, or takes another key now
        if others:
            return self._give_up(index, exc)  # every live key failed: another provider, rather than back off
        step = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (entries.retries[index] - 1))
        delay = step / 2 + random.uniform(0, step / 2)
        if delay > self.budget:
            raise exc
        self.budget -= delay
        return delay

    # -- the loop --------------------------------------------------------------------------

    def attempts(self, start: Callable[[Any], Any]) -> Generator[Step, Any, None]:
        """The attempt loop (`_attempts`), its span and metrics made when it ends if a trace is kept."""
        return self._attempts(start) if self.trace is None else self._traced(start, self.trace)

    def _traced(self, start: Callable[[Any], Any], trace: CallTrace) -> Generator[Step, Any, None]:
        try:
            yield from self._attempts(start)
        except GeneratorExit:  # a stream closed early: a success
            trace.end(None)
            raise
        except BaseException as exc:
            trace.end(exc)
            raise
        trace.end(None)

    def _attempts(self, start: Callable[[Any], Any]) -> Generator[Step, Any, None]:
        """The attempt loop, as steps for `run` or `arun`; `start(entry)` opens one attempt's source.

        Each attempt leases a key and pulls chunks with the lease set for the provider's code.
        A failure is judged by the provider's rules, run off the caller's thread (`_ruling`). One
        before the first chunk with content rotates (after `after_failure`'s back-off; empty role
        or usage deltas may have been handed over, which a retry makes no worse); one after it
        reaches the caller. A stream closed early (GeneratorExit) counts as a success.
        Each chunk carries the provider and model that served it (`SERVED_BY` in its provider data).
        """
        trace = self.trace
        while True:
            lease: Lease = yield LEASE
            model = self.entries.models[self.entries.current]
            if trace is not None:
                trace.leased(model.id, model.pool.provider, model.pool.shown(lease.index), self.waited)
            source = start(model)
            usage: int | None = None
            started = False
            try:
                while True:
                    token = _LEASE.set(lease)
                    try:
                        chunk = yield Pull(source)
                    finally:
                        _LEASE.reset(token)
                    if chunk is END:
                        break
                    started = started or carries(chunk)
                    usage = tokens(chunk) or usage
                    if trace is not None:
                        trace.answered(chunk)
                    yield Emit(tag(chunk, model))
            except GeneratorExit:
                model.pool.succeeded(lease, usage)
                raise
            except Exception as exc:
                ruled = yield from self._ruling(model, exc)
                if started:
                    verdict = model.pool.failed(lease, exc, ruled)
                    if trace is not None:
                        trace.failed(read_reply(exc).status, verdict.action.value, exc)
                    raise
                yield Pause(self.after_failure(lease, exc, ruled))
                continue
            model.pool.succeeded(lease, usage)
            _SERVED.set(model)
            return
