"""Rotating Agno models: an Agno model class whose every call runs on a leased key.

`rotating_class(Groq)` is ``RotatingGroq``: the provider's own Agno class with the four
invoke methods wrapped. Each attempt leases a key from the pool, runs the provider's
own code with that key's SDK client (one per key, reused), and on failure cools the key,
marks it dead or backs off before trying another. The model object holds no key and no
per-call state, so one instance can serve many threads and tasks at once.

The four methods share one attempt loop, `_Call.attempts`: a generator that yields steps
(lease a key, pull the next chunk, pause, hand a chunk over) and is driven by `_run` in
threads or `_arun` in coroutines, which differ only in how they wait and call. ``invoke``
is a stream of one chunk, the response. A call runs over routes, rotating models in order of
preference: a plain model's one route is itself; a tier (`hfs_core.tier`) passes its entries
to `run_call` / `arun_call`, so that each attempt runs one provider's own Agno code from its
message formatting to its parsing, and a provider's reply is never read by another's parser.

Every response and chunk says which provider and model served it, in its provider data
(``response.provider_data["hfs"] == {"provider": "groq", "model": "..."}``; Agno copies it
onto the assistant message, and onto ``RunOutput.model_provider_data``). Messages are shared
between providers as Agno keeps them, with one change: a tool call another provider made
is sent with only the fields every provider shares (`_for_provider`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from hfs_core.plugin import Action
from hfs_core.pool import (
    Acquired,
    AllKeysDeadError,
    CallOptions,
    KeyPool,
    Lease,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    RequestTooLargeError,
    local_error,
    read_reply,
)

_log = logging.getLogger("hfs_core.pool")
_LEASE: contextvars.ContextVar[Lease | None] = contextvars.ContextVar("hfs_lease", default=None)
_SERVED: contextvars.ContextVar[Any] = contextvars.ContextVar("hfs_served", default=None)
"""The rotating model whose attempt last succeeded in this context (a tier's streamed tool calls are
assembled by the parser of the provider that sent them)."""
SERVED_BY = "hfs"
"""The provider-data key naming the provider and model that served a response."""
_SHARED_CALL_FIELDS = ("id", "type", "function")
"""The fields of a tool call every provider takes (OpenAI's shape, which Agno keeps for all)."""
_HOPE = (PoolExhaustedError, ProviderBusyError, RequestTooLargeError, AllKeysDeadError)
"""Kinds of refusal, the most hopeful first (a rate limit passes; dead keys stay dead)."""
_REFUSED = {PoolExhaustedError: "no key free now", ProviderBusyError: "backed off (busy)",
            RequestTooLargeError: "estimated_tokens too large", AllKeysDeadError: "all keys dead"}
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


def _label(model: Any) -> str:
    return f"{model.pool.provider}/{model.id}"


def _free_in(refusal: NoAvailableKeyError) -> float:
    return refusal.next_free_in if refusal.next_free_in is not None else math.inf


def _what_failed(exc: BaseException) -> str:
    """A failed attempt in a few words that hold nothing the provider wrote (which might echo a key)."""
    reply = read_reply(exc)
    if reply.status:
        return f"HTTP {reply.status}"
    return "an error event in its stream" if reply.in_stream else "no answer"


def _tag(chunk: Any, model: Any) -> Any:
    """`chunk` with the provider and model that served it in its provider data."""
    data = getattr(chunk, "provider_data", None)
    chunk.provider_data = {**(data or {}), SERVED_BY: {"provider": model.pool.provider, "model": model.id}}
    return chunk


def _shared_only(message: Any) -> Any:
    """A copy of an assistant message whose tool calls keep only the fields every provider takes."""
    calls = [{k: call[k] for k in _SHARED_CALL_FIELDS if k in call} for call in message.tool_calls]
    return message.model_copy(update={"tool_calls": calls})


def _for_provider(messages: Sequence[Any], provider: str) -> Sequence[Any]:
    """`messages` as `provider` may be sent them (the same list when nothing changes).

    A tool call made on another provider (its message's provider data names who served it) may hold
    fields of that provider's own: Gemini's ``thought_signature``, which it needs back, but which
    Groq refuses ("property ... is unsupported", as for ``reasoning`` in karthink/gptel#774). It is
    sent to `provider` with only `_SHARED_CALL_FIELDS`; the conversation itself is left as it is.
    """
    def foreign(message: Any) -> bool:
        served = (getattr(message, "provider_data", None) or {}).get(SERVED_BY)
        return (bool(getattr(message, "tool_calls", None)) and isinstance(served, Mapping)
                and served.get("provider") != provider
                and any(set(call) - set(_SHARED_CALL_FIELDS) for call in message.tool_calls))

    if not any(foreign(m) for m in messages):
        return messages
    return [_shared_only(m) if foreign(m) else m for m in messages]


def _provider_kwargs(model: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of Agno's call, with the messages as `model`'s provider may be sent them."""
    messages = kwargs.get("messages")
    if not messages:
        return kwargs
    shown = _for_provider(messages, model.pool.provider)
    return kwargs if shown is messages else {**kwargs, "messages": shown}


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
    """One model call over its routes: rotating models, in order of preference, sharing one wait budget.

    A plain model's call has one route, itself; a tier's has one per entry. Each lease goes to the
    first route with a key free now; when none has, the call waits for the route whose key frees
    first, within the budget. A route is given up for this call when its provider cannot serve it:
    no key ever frees (all dead, or `estimated_tokens` too large), its rate limits or faults use up
    `max_retries`, or (with another route left) every live key failed and it would have to back off,
    or it does not know the model (404). A plain model's loop is the pool's own: its last error
    reaches the caller as it is. ``timeout`` bounds the waiting (for a key, in back-off), and no new
    attempt or wait starts once that much time has passed since the call began: a slow or hung
    upstream costs at most the attempt under way (its SDK's idle-read timeout) past the budget.
    """

    def __init__(self, routes: Sequence[Any], options: CallOptions, tier: str | None = None,
                 refused_until: list[float] | None = None) -> None:
        self.routes = tuple(routes)
        self.options = options
        self.tier = tier
        self.refused_until = refused_until  # a tier's, shared by its calls: see `_free_now`
        self.started = time.monotonic()
        self.budget = options.timeout
        self.announced = False
        self.route = 0  # the route of the attempt under way
        self.retries = [0] * len(self.routes)
        self.rate_limits = [0] * len(self.routes)
        self.avoid: list[frozenset[int]] = [frozenset()] * len(self.routes)  # keys that failed this call
        self.refused: dict[int, NoAvailableKeyError] = {}  # each route's last "no key free now"
        self.given_up: dict[int, tuple[BaseException, type[NoAvailableKeyError]]] = {}  # out of this call: why, as
        # the kind of refusal it amounts to

    def _live(self) -> list[int]:
        return [index for index in range(len(self.routes)) if index not in self.given_up]

    def _free_now(self) -> Lease | None:
        """A lease on the first route with a key free now (`route` becomes it), else None.

        A tier remembers until when each route said no key frees (`refused_until`, shared by its
        calls): such a route is asked after the others, so that while it is exhausted a call does
        not pay for asking it first (an exhausted pool scans its windows to say when it frees).
        """
        for index in self._in_turn():
            pool: KeyPool = self.routes[index].pool
            try:
                lease = pool.acquire(self.routes[index].id, self.options, budget=0.0, announce=False,
                                     avoid=self.avoid[index]).lease
            except NoAvailableKeyError as exc:
                self._no_key_now(index, exc)
                continue
            return self._leased(index, lease)
        return None

    async def _afree_now(self) -> Lease | None:
        """`_free_now` for coroutines (a shared state's reservation is awaited, never blocking the loop)."""
        for index in self._in_turn():
            pool: KeyPool = self.routes[index].pool
            try:
                lease = (await pool.acquire_async(self.routes[index].id, self.options, budget=0.0, announce=False,
                                                  avoid=self.avoid[index])).lease
            except NoAvailableKeyError as exc:
                self._no_key_now(index, exc)
                continue
            return self._leased(index, lease)
        return None

    def _in_turn(self) -> list[int]:
        """The live routes in the order to ask them now: those not known to be exhausted first."""
        now = time.monotonic()
        live = self._live()
        later = [i for i in live if self.refused_until is not None and self.refused_until[i] > now]
        return [i for i in live if i not in later] + later

    def _no_key_now(self, index: int, exc: NoAvailableKeyError) -> None:
        self.refused[index] = exc
        if not exc.may_free:
            self.given_up[index] = (exc, type(exc))
        elif self.refused_until is not None and exc.next_free_in is not None:
            self.refused_until[index] = time.monotonic() + exc.next_free_in

    def _leased(self, index: int, lease: Lease) -> Lease:
        if self.refused_until is not None:
            self.refused_until[index] = 0.0
        self._take(index)
        return lease

    def _route_to_wait_for(self) -> int:
        """The route whose key frees first (the earlier one on a tie); raises when waiting cannot help."""
        live = self._live()
        if not live or not self.options.wait:
            raise self._unavailable()
        index = min(live, key=lambda i: (_free_in(self.refused[i]), i))
        self._take(index)
        return index

    def _take(self, index: int) -> None:
        """Run the next attempt on route `index` (said when a tier moves off its first choice)."""
        if index != self.route and self.tier is not None:
            passed = "; ".join(f"{_label(self.routes[i])}: {self._why_not(i)}" for i in range(index)
                               if i in self.refused or i in self.given_up or self._refused_lately(i))
            _log.info("tier %s: %s takes the call%s", self.tier, _label(self.routes[index]),
                      f" ({passed})" if passed else "")
        self.route = index

    def _refused_lately(self, index: int) -> bool:
        return self.refused_until is not None and self.refused_until[index] > time.monotonic()

    def _why_not(self, index: int) -> str:
        """Why route `index` is not serving, in a few words."""
        if index in self.given_up and not isinstance(self.given_up[index][0], NoAvailableKeyError):
            return f"given up after {_what_failed(self.given_up[index][0])}"
        if index in self.refused:
            return _REFUSED[type(self.refused[index])]
        return "no key free, as it said moments ago"

    def _waited(self, got: Acquired) -> None:
        self.budget -= got.waited
        self.announced = self.announced or got.announced

    def lease(self) -> Lease:
        lease = self._free_now()
        if lease is None:
            index = self._route_to_wait_for()
            model = self.routes[index]
            try:
                got = model.pool.acquire(model.id, self.options, budget=self.budget, announce=not self.announced,
                                         avoid=self.avoid[index])
            except NoAvailableKeyError as exc:
                self.refused[index] = exc
                raise self._unavailable() from None
            self._waited(got)
            lease = got.lease
        return lease

    async def alease(self) -> Lease:
        """A lease, waited for with ``await``; then the loop's first SDK client of the lease's route is
        built off the loop (see `ClientCache.ready`), if it is not yet."""
        lease = await self._afree_now()
        if lease is None:
            index = self._route_to_wait_for()
            model = self.routes[index]
            try:
                got = await model.pool.acquire_async(model.id, self.options, budget=self.budget,
                                                     announce=not self.announced, avoid=self.avoid[index])
            except NoAvailableKeyError as exc:
                self.refused[index] = exc
                raise self._unavailable() from None
            self._waited(got)
            lease = got.lease
        route = self.routes[self.route]
        await route.pool.clients.ready(route, route._hfs_signature)
        return lease

    def _give_up(self, index: int, exc: BaseException, kind: type[NoAvailableKeyError] = ProviderBusyError) -> float:
        """Take route `index` out of this call (`kind`: what it amounts to); raises when it was the last one."""
        self.given_up[index] = (exc, kind)
        if not self._live():
            raise self._unavailable()
        _log.info("tier %s: %s is given up for this call (after %s)", self.tier, _label(self.routes[index]),
                  _what_failed(exc))
        return 0.0

    def after_failure(self, lease: Lease, exc: BaseException) -> float:
        """Decide on a failed attempt: re-raise it, give its route up, or return the back-off before the next.

        The pool has already acted on the key (retired, cooled, set aside) or the provider
        (backed off, which the next lease waits out within the budget). Rate limits may
        come once per key and retry (up to `max_retries` each); other faults count against
        `max_retries`; a caller's error is raised at once (one raised before any request left,
        such as an SDK refusing its options, as it was raised, not as Agno wrapped it).
        """
        index = self.route
        pool = self.routes[index].pool
        verdict = pool.failed(lease, exc)
        self.avoid[index] = self.avoid[index] | {lease.index}
        others = len(self._live()) > 1
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
            self.rate_limits[index] += 1
            if self.rate_limits[index] > self.options.max_retries * pool.size:
                return self._give_up(index, exc, PoolExhaustedError)
            return 0.0
        if self.retries[index] >= self.options.max_retries:
            return self._give_up(index, exc)
        self.retries[index] += 1
        if verdict.action is Action.PROVIDER_BUSY or len(self.avoid[index]) < pool.status().live:
            return 0.0  # the next lease waits out the provider's back-off, or takes another key now
        if others:
            return self._give_up(index, exc)  # every live key failed: another provider, rather than back off
        step = min(_BACKOFF_MAX, _BACKOFF_FIRST * 2.0 ** (self.retries[index] - 1))
        delay = step / 2 + random.uniform(0, step / 2)
        if delay > self.budget:
            raise exc
        self.budget -= delay
        return delay

    def _unavailable(self) -> BaseException:
        """What ends a call no route can serve: a plain model's own error, or one naming every entry of the tier.

        The tier's error is of the most hopeful kind among its entries (a rate limit before a busy
        provider, before a request too large, before dead keys), so that Agno's fallback reads it
        as it would that entry's; ``next_free_in`` is the soonest any entry frees up.
        """
        if self.tier is None:
            return self.given_up[0][0] if 0 in self.given_up else self.refused[0]
        lines: list[str] = []
        kinds: set[type[NoAvailableKeyError]] = set()
        free_in: list[tuple[float, str]] = []
        total = dead = cooling = 0
        for index, model in enumerate(self.routes):
            label = _label(model)
            status = model.pool.status()
            total, dead, cooling = total + status.total, dead + status.dead, cooling + status.cooling
            refusal = self.refused.get(index)
            if index in self.given_up and not isinstance(self.given_up[index][0], NoAvailableKeyError):
                error, kind = self.given_up[index]
                lines.append(f"{label}: {_what_failed(error)}, given up for this call")
            elif refusal is not None:
                kind = type(refusal)
                lines.append(str(refusal))
                if refusal.may_free and refusal.next_free_in is not None:
                    free_in.append((refusal.next_free_in, model.pool.provider))
            else:
                lines.append(f"{label}: not tried")
                continue
            kinds.add(kind)
        kind = next((k for k in _HOPE if k in kinds), PoolExhaustedError)
        soonest = min(free_in, default=None)
        when = f"in {soonest[0]:.1f}s ({soonest[1]})" if soonest else "at no known time"
        budget = "wait=False" if not self.options.wait else f"a {self.options.timeout:g}s wait budget"
        message = f"tier {self.tier!r}: no entry can take the call within {budget}: {'; '.join(lines)}; " \
                  f"the first key frees {when}"
        return kind(message, provider=str(self.tier), model_id=", ".join(m.id for m in self.routes),
                    wait=self.options.wait, timeout=self.options.timeout, total_keys=total, dead_keys=dead,
                    cooling_down=cooling, next_free_in=soonest[0] if soonest else None, entries=tuple(lines))

    def attempts(self, start: Callable[[Any], Any]) -> Generator[_Step, Any, None]:
        """The attempt loop, as steps for `_run` or `_arun`; `start(route)` opens one attempt's source.

        Each attempt leases a key and pulls chunks with the lease set for the provider's code.
        A failure before the first chunk with content rotates (after `after_failure`'s back-off;
        empty role or usage deltas may have been handed over, which a retry makes no worse); one
        after it reaches the caller. A stream closed early (GeneratorExit) counts as a success.
        Each chunk carries the provider and model that served it (`SERVED_BY` in its provider data).
        """
        while True:
            lease: Lease = yield _LEASE_STEP
            model = self.routes[self.route]
            source = start(model)
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
                    yield _Emit(_tag(chunk, model))
            except GeneratorExit:
                model.pool.succeeded(lease, usage)
                raise
            except Exception as exc:
                if started:
                    model.pool.failed(lease, exc)
                    raise
                yield _Pause(self.after_failure(lease, exc))
                continue
            model.pool.succeeded(lease, usage)
            _SERVED.set(model)
            return


def _run(call: _Call, start: Callable[[Any], Iterator[Any]]) -> Iterator[Any]:
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


async def _arun(call: _Call, start: Callable[[Any], AsyncIterator[Any]]) -> AsyncIterator[Any]:
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


def _opener(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[Any], Any]:
    """What opens one attempt's source on a route: its provider's own Agno `method`, given the
    call's messages as that provider may be sent them (``invoke``/``ainvoke``: a source of one chunk)."""
    def start(model: Any) -> Any:
        provider_method = getattr(super(RotatingModel, model), method)
        call_kwargs = _provider_kwargs(model, kwargs)
        if method == "invoke":
            return _single(lambda: provider_method(*args, **call_kwargs))
        if method == "ainvoke":
            return _asingle(lambda: provider_method(*args, **call_kwargs))
        return provider_method(*args, **call_kwargs)

    return start


def run_call(routes: Sequence[Any], options: CallOptions, method: str, args: tuple[Any, ...],
             kwargs: dict[str, Any], tier: str | None = None, refused_until: list[float] | None = None
             ) -> Iterator[Any]:
    """Agno's `method` (``"invoke"``: one chunk, the response; or ``"invoke_stream"``) as a call over
    `routes` (rotating models, in order of preference), in a thread. A tier passes its name, for
    messages, and its `refused_until` (one ``time.monotonic`` per route, shared by its calls)."""
    return _run(_Call(routes, options, tier, refused_until), _opener(method, args, kwargs))


def arun_call(routes: Sequence[Any], options: CallOptions, method: str, args: tuple[Any, ...],
              kwargs: dict[str, Any], tier: str | None = None, refused_until: list[float] | None = None
              ) -> AsyncIterator[Any]:
    """`run_call` for ``"ainvoke"`` and ``"ainvoke_stream"``, in a coroutine."""
    return _arun(_Call(routes, options, tier, refused_until), _opener(method, args, kwargs))


def served_model() -> Any:
    """The rotating model whose attempt last succeeded in this thread or task (None before any)."""
    return _SERVED.get()


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

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's invoke on a leased key, rotating keys on failure."""
        [response] = run_call((self,), self._hfs_options, "invoke", args, kwargs)
        return response

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's ainvoke on a leased key; waits for keys and backs off with ``await``."""
        [response] = [r async for r in arun_call((self,), self._hfs_options, "ainvoke", args, kwargs)]
        return response

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Agno's invoke_stream on a leased key. A failure before the first chunk with content
        rotates to another key; a failure after content was yielded reaches the caller."""
        return run_call((self,), self._hfs_options, "invoke_stream", args, kwargs)

    def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Async `invoke_stream`."""
        return arun_call((self,), self._hfs_options, "ainvoke_stream", args, kwargs)


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
