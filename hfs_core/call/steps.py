"""The steps of the attempt loop, and the two drivers that run them: `run` in threads, `arun` in coroutines.

`Call.attempts` is a generator that yields steps (lease a key, pull the next chunk, pause, hand a
chunk over, run a plugin's code in a thread of its own); the drivers differ only in how they wait
and call. ``invoke`` is a stream of one chunk, the response (`single`, `asingle`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from hfs_core.pool import Lease


class LeaseKey:
    """Step: lease a key (the driver sends the `Lease` back)."""


@dataclass(frozen=True, slots=True)
class Pull:
    """Step: the next chunk of `source` (the driver sends it back, or `END`)."""

    source: Any


@dataclass(frozen=True, slots=True)
class Pause:
    """Step: wait `seconds` before the next attempt."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Emit:
    """Step: hand `chunk` to the caller."""

    chunk: Any


@dataclass(frozen=True, slots=True)
class Offload:
    """Step: run `work` in a thread of its own and wait at most `seconds` for it (the driver sends back
    what it returns, or `LATE`); `work` must not raise. Neither the caller's thread nor its event loop
    runs it, and a `work` that hangs costs the call `seconds`."""

    work: Callable[[], Any]
    seconds: float


LEASE = LeaseKey()
END = object()
"""What a driver sends back for a `Pull` of an exhausted source."""
LATE = object()
"""What a driver sends back for an `Offload` whose work did not end in time (it goes on, unused)."""
Step = LeaseKey | Pull | Pause | Emit | Offload


class Plan(Protocol):
    """What a driver runs: the attempt loop, and the leases it asks for (see `hfs_core.call.attempts.Call`)."""

    def attempts(self, start: Callable[[Any], Any]) -> Generator[Step, Any, None]:
        """The attempt loop as steps; `start(entry)` opens one attempt's source."""

    def lease(self) -> Lease:
        """A lease, waited for in this thread."""

    async def alease(self) -> Lease:
        """A lease, waited for with ``await``."""


def single(call: Callable[[], Any]) -> Iterator[Any]:
    """A source whose one chunk is what `call` returns (made in the first pull)."""
    yield call()


async def asingle(call: Callable[[], Any]) -> AsyncIterator[Any]:
    """`single` for a coroutine function."""
    yield await call()


def _in_thread(work: Callable[[], Any]) -> concurrent.futures.Future[Any]:
    """`work` started in a daemon thread of its own; its result, once it returns."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def body() -> None:
        result = work()
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # given up on (cancelled) meanwhile
            future.set_result(result)

    threading.Thread(target=body, name="hfs-offload", daemon=True).start()
    return future


def run(call: Plan, start: Callable[[Any], Iterator[Any]]) -> Iterator[Any]:
    """Drive `call.attempts` in a thread: blocking waits, ``next`` on the source."""
    plan = call.attempts(start)
    send: Callable[[Any], Step] = plan.send
    value: Any = None
    while True:
        try:
            step = send(value)
        except StopIteration:
            return
        try:
            if isinstance(step, LeaseKey):
                value = call.lease()
            elif isinstance(step, Pull):
                value = next(step.source, END)
            elif isinstance(step, Pause):
                time.sleep(step.seconds)
                value = None
            elif isinstance(step, Offload):
                try:
                    value = _in_thread(step.work).result(step.seconds)
                except concurrent.futures.TimeoutError:
                    value = LATE
            else:
                value = yield step.chunk
            send = plan.send
        except BaseException as exc:
            send, value = plan.throw, exc


async def arun(call: Plan, start: Callable[[Any], AsyncIterator[Any]]) -> AsyncIterator[Any]:
    """Drive `call.attempts` in a coroutine: waits with ``await``, ``anext`` on the source."""
    plan = call.attempts(start)
    send: Callable[[Any], Step] = plan.send
    value: Any = None
    while True:
        try:
            step = send(value)
        except StopIteration:
            return
        try:
            if isinstance(step, LeaseKey):
                value = await call.alease()
            elif isinstance(step, Pull):
                value = await anext(step.source, END)
            elif isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
                value = None
            elif isinstance(step, Offload):
                try:
                    value = await asyncio.wait_for(asyncio.wrap_future(_in_thread(step.work)), step.seconds)
                except asyncio.TimeoutError:
                    value = LATE
            else:
                value = yield step.chunk
            send = plan.send
        except BaseException as exc:
            send, value = plan.throw, exc
