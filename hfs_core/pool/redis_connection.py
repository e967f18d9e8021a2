"""One Redis server's clients, as this process talks to it: `RedisConnection`.

A client for threads and one per event loop for coroutines, the function library
(`shared.lua`) loaded when Redis has none or another version of it (so a user whose ACL allows
FCALL but not FUNCTION LOAD runs on a library an admin loaded), the offset of Redis's clock, and
a batch of operations sent in one round trip. It keeps no queue and does not retry: what to do
when Redis does not answer or refuses is the link's business (`redis_link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from importlib.resources import files
from typing import Any, NamedTuple

FUNCTION = "hfs_pool_3"
"""The Redis function (in `shared.lua`) every operation calls."""


class Op(NamedTuple):
    """One operation for Redis: the pool's prefix, the function's arguments, what to do with its
    answer, and when it was queued (``time.monotonic()``)."""

    prefix: str
    args: list[Any]
    on_result: Callable[[Any], None] | None = None
    queued: float = 0.0


def redis_errors() -> tuple[type[BaseException], ...]:
    """What a Redis that does not answer, or refuses this process, raises."""
    import redis

    return (redis.RedisError, OSError)


def describe_failure(exc: BaseException) -> str:
    """What went wrong with Redis, in words: "permission denied (ACL): ...", "authentication failed: ..."
    or "does not answer (...)"."""
    import redis

    if isinstance(exc, redis.exceptions.NoPermissionError):
        return f"permission denied (ACL): {exc}"
    if isinstance(exc, redis.exceptions.AuthenticationError):
        return f"authentication failed: {exc}"
    return f"does not answer ({type(exc).__name__}: {exc})"


class RedisConnection:
    """The clients of the Redis at `url`, each operation taking at most `timeout` seconds (connect and read)."""

    def __init__(self, url: str, *, timeout: float) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.timeout = timeout
        self.offset = 0.0
        """Redis's clock minus this machine's, as last measured."""
        self._url = url
        self._response_error: type[Exception] = redis.exceptions.ResponseError
        self._no_permission: type[Exception] = redis.exceptions.NoPermissionError
        self._refusals = (self._no_permission, redis.exceptions.AuthenticationError)
        self._library = (files("hfs_core.pool") / "shared.lua").read_text(encoding="utf-8")
        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                            retry=Retry(NoBackoff(), 0))
        self._async: dict[asyncio.AbstractEventLoop, Any] = {}
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Load the function library unless Redis has this version of it, and measure the offset of
        Redis's clock."""
        try:
            listed = self._client.function_list(library=FUNCTION, withcode=True)
        except self._no_permission:
            listed = None  # this user may not look: the first FCALL tells whether it is there (`run`)
        ours = (FUNCTION.encode(), self._library.encode())
        if listed is not None and not any(_library_fields(entry) == ours for entry in listed):
            self._client.function_load(self._library, replace=True)
        self.measure_clock()

    def measure_clock(self) -> None:
        """Measure the offset of Redis's clock."""
        before = time.time()
        seconds, micros = self._client.time()
        after = time.time()
        self.offset = seconds + micros / 1e6 - (before + after) / 2

    def ping(self) -> None:
        """Raise unless Redis answers."""
        self._client.ping()

    def server_version(self) -> str:
        """The version Redis reports ("?" if this user may not ask)."""
        try:
            return str(self._client.info("server").get("redis_version", "?"))
        except self._no_permission:
            return "?"

    def run(self, batch: Sequence[Op]) -> list[Any]:
        """Send `batch` in one round trip (loading the library if Redis lost it); an operation's error
        comes back as its answer, a refusal of this user (ACL) is raised."""
        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            for prefix, args, *_ in batch:
                pipe.fcall(FUNCTION, 1, prefix, *args)
            answers = self._refused(pipe.execute(raise_on_error=False))
            if not self._lost_library(answers):
                break
            self._client.function_load(self._library, replace=True)
        return answers

    async def arun(self, batch: Sequence[Op]) -> list[Any]:
        """`run` from a coroutine, on this event loop's own client."""
        client = self._async_client()
        for _ in range(2):
            pipe = client.pipeline(transaction=False)
            for prefix, args, *_ in batch:
                pipe.fcall(FUNCTION, 1, prefix, *args)
            answers = self._refused(await pipe.execute(raise_on_error=False))
            if not self._lost_library(answers):
                break
            await client.function_load(self._library, replace=True)
        return answers

    def _async_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            with self._lock:
                for old in [old for old in self._async if old.is_closed()]:
                    del self._async[old]  # its connections died with it
                client = self._async[loop] = redis.asyncio.Redis.from_url(
                    self._url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                    retry=Retry(NoBackoff(), 0))
        return client

    def _refused(self, answers: Sequence[Any]) -> list[Any]:
        """`answers`, unless Redis refused this user one of them (ACL), which is raised: a refusal holds
        for every operation, and sharing resumes only once the user is allowed."""
        refusal = next((a for a in answers if isinstance(a, self._refusals)), None)
        if refusal is not None:
            raise refusal
        return list(answers)

    def _lost_library(self, answers: Sequence[Any]) -> bool:
        """Whether Redis answered that it does not know the function (it restarted without it)."""
        return any(isinstance(a, self._response_error) and "function not found" in str(a).lower() for a in answers)

    def close(self) -> None:
        """Close every client (an async one on the event loop its connections belong to)."""
        with contextlib.suppress(*redis_errors()):
            self._client.close()
        for loop, client in list(self._async.items()):
            _close_on(loop, client)
        self._async.clear()


def _library_fields(entry: Any) -> tuple[Any, Any]:
    """The name and code of one library of FUNCTION LIST (a map in RESP3, a flat list in RESP2)."""
    fields = entry if isinstance(entry, dict) else dict(zip(entry[::2], entry[1::2], strict=True))
    return fields.get(b"library_name"), fields.get(b"library_code")


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
