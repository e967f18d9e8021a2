"""Rotating Agno models: an Agno model class whose every call runs on a leased key.

`rotating_class(Groq)` is ``RotatingGroq``: the provider's own Agno class with the four
invoke methods wrapped. Each attempt leases a key from the pool, runs the provider's
own code with that key's SDK client (one per key, reused), and on failure cools the key,
marks it dead or backs off before trying another. The model object holds no key and no
per-call state, so one instance can serve many threads and tasks at once.

The four methods share one attempt loop, `_Call.attempts`: a generator that yields steps
(lease a key, pull the next chunk, pause, hand a chunk over) and is driven by `_run` in
threads or `_arun` in coroutines, which differ only in how they wait and call. ``invoke``
is a stream of one chunk, the response.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, cast

from hfs_core.plugin import Action
from hfs_core.pool import CallOptions, KeyPool, Lease

_log = logging.getLogger("hfs_core.pool")
_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("hfs_lease", default=None)
_CLIENT_FIELDS = ("base_url", "timeout", "max_retries", "default_headers", "default_query", "client_params",
                  "http_client", "vertexai", "project_id", "location")
_BACKOFF_FIRST = 0.25
_BACKOFF_MAX = 4.0
_END = object()
"""What a driver sends back for a `_Pull` of an exhausted source."""


_CONTENT_FIELDS = ("content", "tool_calls", "reasoning_content", "redacted_reasoning_content", "audio", "images",
                   "videos", "files", "citations")


def _carries(chunk: Any) -> bool:
    """Whether a stream chunk carries something the caller uses (not an empty role or usage delta)."""
    return any(getattr(chunk, name, None) for name in _CONTENT_FIELDS)


def _tokens(response: Any) -> int | None:
    usage = getattr(response, "response_usage", None)
    total = getattr(usage, "total_tokens", None)
    return int(total) if total else None


class _Lease:
    """Step: lease a key (the driver sends the `Lease` back)."""


@dataclass(frozen=True, slots=True)
class _Pull:
    """Step: the next chunk of `source` (the driver sends it back, or `_END`)."""

    source: Any


@dataclass(frozen=True, slots=True)
class _Pause:
    """Step: wait `seconds` before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class _Emit:
    """Step: hand `chunk` to the caller."""

    chunk: Any


_LEASE_STEP = _Lease()
_Step = _Lease | _Pull | _Pause | _Emit


def _single(call: Callable[[], Any]) -> Iterator[Any]:
    """A source whose one chunk is what `call` returns (made in the first pull)."""
    yield call()


async def _asingle(call: Callable[[], Any]) -> AsyncIterator[Any]:
    """`_single` for a coroutine function."""
    yield await call()


class _Call:
    """One model call: its wait budget, its retry count, and what each failure costs.

    ``timeout`` bounds the waiting (for a key, in back-off), and no new attempt or wait starts
    once that much time has passed since the call began: a slow or hung upstream costs at most
    the attempt under way (its SDK's idle-read timeout) past the budget.
    """

    def __init__(self, pool: KeyPool, model_id: str, options: CallOptions, model: Any = None,
                 signature: str = "") -> None:
        self.pool = pool
        self.model_id = model_id
        self.options = options
        self.model = model
        self.signature = signature
        self.started = time.monotonic()
        self.budget = options.timeout
        self.retries = 0
        self.rate_limits = 0
        self.announced = False
        self.avoid: frozenset[int] = frozenset()  # keys that failed this call: tried again only as a last resort

    def lease(self) -> Lease:
        lease, waited, announced = self.pool.acquire(self.model_id, self.options, self.budget, not self.announced,
                                                     self.avoid)
        self.budget -= waited
        self.announced = self.announced or announced
        return lease

    async def alease(self) -> Lease:
        """A lease, waited for with ``await`` (the loop's first SDK client built off the loop first)."""
        if self.model is not None:
            await self.pool.clients.ready(self.model, self.signature)
        lease, waited, announced = await self.pool.acquire_async(self.model_id, self.options, self.budget,
                                                                 not self.announced, self.avoid)
        self.budget -= waited
        self.announced = self.announced or announced
        return lease

    def after_failure(self, lease: Lease, exc: BaseException) -> float:
        """Decide on a failed attempt: re-raise it, or return the back-off before the next one.

        The pool has already acted on the key (retired, cooled, set aside) or the provider
        (backed off, which the next lease waits out within the budget). Rate limits may
        come once per key and retry (up to `max_retries` each); other faults count against
        `max_retries`; a caller's error is raised at once.
        """
        verdict = self.pool.failed(lease, exc)
        self.avoid = self.avoid | {lease.index}
        if verdict.action is Action.CALLER_ERROR:
            raise exc
        elapsed = time.monotonic() - self.started
        if elapsed >= self.options.timeout:
            raise exc  # the budget is spent (on a slow provider): no new attempt starts
        self.budget = min(self.budget, self.options.timeout - elapsed)
        if verdict.action is Action.RETIRE_KEY:
            return 0.0
        if verdict.action is Action.COOL_KEY:
            self.rate_limits += 1
            if self.rate_limits > self.options.max_retries * self.pool.size:
                raise exc
            return 0.0
        if self.retries >= self.options.max_retries:
            raise exc
        self.retries += 1
        if verdict.action is Action.PROVIDER_BUSY or len(self.avoid) < self.pool.status().live:
            return 0.0  # the next lease waits out the provider's back-off, or takes another key now
        step = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (self.retries - 1))
        delay = step / 2 + random.uniform(0, step / 2)
        if delay > self.budget:
            raise exc
        self.budget -= delay
        return delay

    def attempts(self, start: Callable[[], Any]) -> Generator[_Step, Any, None]:
        """The attempt loop, as steps for `_run` or `_arun`; `start` opens one attempt's source.

        Each attempt leases a key and pulls chunks with the lease set for the provider's code.
        A failure before the first chunk with content rotates (after `after_failure`'s back-off;
        empty role or usage deltas may have been handed over, which a retry makes no worse); one
        after it reaches the caller. A stream closed early (GeneratorExit) counts as a success.
        """
        while True:
            lease: Lease = yield _LEASE_STEP
            source = start()
            usage: int | None = None
            started = False
            try:
                while True:
                    token = _LEASE.set(lease)
                    try:
                        chunk = yield _Pull(source)
                    finally:
                        _LEASE.reset(token)
                    if chunk is _END:
                        break
                    started = started or _carries(chunk)
                    usage = _tokens(chunk) or usage
                    yield _Emit(chunk)
            except GeneratorExit:
                self.pool.succeeded(lease, usage)
                raise
            except Exception as exc:
                if started:
                    self.pool.failed(lease, exc)
                    raise
                yield _Pause(self.after_failure(lease, exc))
                continue
            self.pool.succeeded(lease, usage)
            return


def _run(call: _Call, start: Callable[[], Iterator[Any]]) -> Iterator[Any]:
    """Drive `call.attempts` in a thread: blocking waits, ``next`` on the source."""
    plan = call.attempts(start)
    send: Callable[[Any], _Step] = plan.send
    value: Any = None
    while True:
        try:
            step = send(value)
        except StopIteration:
            return
        try:
            if isinstance(step, _Lease):
                value = call.lease()
            elif isinstance(step, _Pull):
                value = next(step.source, _END)
            elif isinstance(step, _Pause):
                time.sleep(step.seconds)
                value = None
            else:
                value = yield step.chunk
            send = plan.send
        except BaseException as exc:
            send, value = plan.throw, exc


async def _arun(call: _Call, start: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Drive `call.attempts` in a coroutine: waits with ``await``, ``anext`` on the source."""
    plan = call.attempts(start)
    send: Callable[[Any], _Step] = plan.send
    value: Any = None
    while True:
        try:
            step = send(value)
        except StopIteration:
            return
        try:
            if isinstance(step, _Lease):
                value = await call.alease()
            elif isinstance(step, _Pull):
                value = await anext(step.source, _END)
            elif isinstance(step, _Pause):
                await asyncio.sleep(step.seconds)
                value = None
            else:
                value = yield step.chunk
            send = plan.send
        except BaseException as exc:
            send, value = plan.throw, exc


class RotatingModel:
    """Mixin placed before an Agno model class; see `rotating_class`."""

    _hfs_pool: KeyPool
    _hfs_options: CallOptions
    _hfs_signature: str

    def _hfs_attach(self, pool: KeyPool, options: CallOptions) -> None:
        self._hfs_pool = pool
        self._hfs_options = options
        self._hfs_signature = repr(tuple(getattr(self, f, None) for f in _CLIENT_FIELDS))

    @property
    def pool(self) -> KeyPool:
        """The key pool this model draws from."""
        return self._hfs_pool

    @property
    def call_options(self) -> CallOptions:
        """How this model's calls wait and retry."""
        return self._hfs_options

    def __repr__(self) -> str:
        model = cast(Any, self)
        return (f"{type(self).__name__}(id={model.id!r}, provider={self._hfs_pool.provider!r}, "
                f"keys={self._hfs_pool.size}, options={self._hfs_options})")

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        memo[id(self._hfs_pool)] = self._hfs_pool
        return cast(Any, super()).__deepcopy__(memo)

    def get_client(self) -> Any:
        """The SDK client of the key leased for the current attempt."""
        return self._hfs_pool.client(_LEASE.get(), self, False, self._hfs_signature)

    def get_async_client(self) -> Any:
        """The async SDK client of the key leased for the current attempt."""
        return self._hfs_pool.client(_LEASE.get(), self, True, self._hfs_signature)

    def _hfs_call(self) -> _Call:
        return _Call(self._hfs_pool, cast(Any, self).id, self._hfs_options, self, self._hfs_signature)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's invoke on a leased key, rotating keys on failure."""
        parent = cast(Any, super())
        [response] = _run(self._hfs_call(), lambda: _single(lambda: parent.invoke(*args, **kwargs)))
        return response

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's ainvoke on a leased key; waits for keys and backs off with ``await``."""
        parent = cast(Any, super())
        [response] = [r async for r in _arun(self._hfs_call(),
                                             lambda: _asingle(lambda: parent.ainvoke(*args, **kwargs)))]
        return response

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Agno's invoke_stream on a leased key. A failure before the first chunk with content
        rotates to another key; a failure after content was yielded reaches the caller."""
        parent = cast(Any, super())
        return _run(self._hfs_call(), lambda: parent.invoke_stream(*args, **kwargs))

    def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Async `invoke_stream`."""
        parent = cast(Any, super())
        return _arun(self._hfs_call(), lambda: parent.ainvoke_stream(*args, **kwargs))


class _RecoveredAttempts(logging.Filter):
    """Keeps Agno's ERROR line for a failed attempt ("Error calling Groq API: ...") out of the
    application's log while the pool is still working on the call: the pool logs the attempt
    itself (INFO), and what reaches the caller reaches it as an exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and _LEASE.get() is not None:
            _log.debug("%s (attempt failed; the pool retries or raises): %s", record.name, record.getMessage())
            return False
        return True


@functools.cache
def rotating_class(model_class: type) -> type:
    """The rotating subclass of an Agno model class (built once per class)."""
    _quiet_agno()
    return type(f"Rotating{model_class.__name__}", (RotatingModel, model_class), {"__module__": __name__})


@functools.cache
def _quiet_agno() -> None:
    for name in ("agno", "agno-team", "agno-workflow"):
        logging.getLogger(name).addFilter(_RecoveredAttempts())


def build_model(pool: KeyPool, model_id: str, options: CallOptions, kwargs: dict[str, Any]) -> Any:
    """A rotating model of the pool's provider, with `kwargs` passed to the Agno class."""
    cls = rotating_class(pool.model_class)
    model = cls(id=model_id, **kwargs)
    model._hfs_attach(pool, options)
    return model
