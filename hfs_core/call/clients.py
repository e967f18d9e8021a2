"""SDK clients of a pool's keys, on the Agno side: one per key, client settings and event loop, copies sharing
connections (the pool itself knows no SDK and no Agno class)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any

log = logging.getLogger("hfs_core.pool")

_FIRST_CALL_IMPORTS = ("anyio._backends._asyncio", "agno.utils.message")
"""Modules an async call imports the first time it runs (see `ClientCache._first_async`)."""

Slot = tuple[int, bool, str, asyncio.AbstractEventLoop | None]
"""(key index, async, client settings, event loop or None) of one SDK client."""


class ClientCache:
    """The SDK clients of one pool's keys, built on first use and closed together.

    An async client's connections belong to the event loop that opened them, so each loop
    gets its own, closed on that loop when it shuts down (``asyncio.run``'s end). The first client
    built for some settings (and loop) is a template: the others are its copies with another key,
    sharing its HTTP connection pool.
    """

    def __init__(self, keys: Sequence[str], model_class: Any) -> None:
        self._keys = tuple(keys)
        self.model_class = model_class
        """The provider's Agno model class, which builds the first clients (see `_build`)."""
        self.built: dict[Slot, Any] = {}
        self._templates: dict[tuple[bool, str, asyncio.AbstractEventLoop | None], Any] = {}
        self._keepers: dict[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = {}
        self._lock = threading.Lock()

    def get(self, index: int, model: Any, is_async: bool, signature: str) -> Any:
        """Key `index`'s SDK client for `model`'s settings (`signature`) and the running loop."""
        return self._get(index, model, is_async, signature, _running_loop() if is_async else None)

    async def ready(self, model: Any, signature: str) -> None:
        """Have the running loop's first async client for `model`'s settings built, off the loop.

        The first client for a loop is a new HTTP client and its TLS context (20-200 ms, the HTTP
        stack's first imports included): it is built in a worker thread, so that the event loop
        keeps running meanwhile. The keys' own clients are then copies of it, made where they
        are asked for (microseconds). A build that fails here is left to the call, which builds
        again and raises as it would.
        """
        loop = asyncio.get_running_loop()
        if loop in self._keepers and _usable(self._templates.get((True, signature, loop))):
            return  # built, and the first-time work that `_first_async` does after building it is done
        try:
            await asyncio.to_thread(self._first_async, model, signature, loop)
        except Exception as exc:
            log.debug("building an async client off the event loop failed: %s", exc)
        await self._keep(loop)

    async def _keep(self, loop: asyncio.AbstractEventLoop) -> None:
        """Have `loop`'s clients closed on it when it shuts down: a parked async generator, which the
        loop's ``shutdown_asyncgens`` (run by ``asyncio.run`` before it closes the loop) closes."""
        with self._lock:
            if loop in self._keepers:
                return
            keeper = self._keeper(loop)
            self._keepers[loop] = keeper
        await anext(keeper)

    async def _keeper(self, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            if not loop.is_closed():
                with self._lock:
                    clients = self._forget_loops(lambda other: other is loop)
                    self._keepers.pop(loop, None)
                for client in clients:
                    with contextlib.suppress(Exception):  # closing is best effort
                        result = client.close()
                        if inspect.isawaitable(result):
                            await result

    def _first_async(self, model: Any, signature: str, loop: asyncio.AbstractEventLoop) -> None:
        """In a worker thread: build the loop's first async client, and do what its first call
        would otherwise do on the loop the first time: import the SDK's lazily loaded
        ``chat.completions`` resources, anyio's asyncio backend (which httpcore's async
        connection pool loads on its first request) and the Agno helpers its provider classes
        import in their first call, and make the SDK's first request (`_rehearse`)."""
        client = self._get(0, model, True, signature, loop)
        with contextlib.suppress(Exception):
            _ = client.chat.completions
        for module in _FIRST_CALL_IMPORTS:
            with contextlib.suppress(ImportError):
                importlib.import_module(module)
        _rehearse(client, model.id)

    def _get(self, index: int, model: Any, is_async: bool, signature: str,
             loop: asyncio.AbstractEventLoop | None) -> Any:
        slot = (index, is_async, signature, loop)
        client = self.built.get(slot)
        if client is not None and not _is_closed(client):
            return client
        with self._lock:
            client = self.built.get(slot)
            if client is None or _is_closed(client):
                if loop is not None:
                    self._forget_closed_loops()
                client = self._build(index, model, is_async, (is_async, signature, loop))
                self.built[slot] = client
        return client

    def _forget_loops(self, gone: Callable[[asyncio.AbstractEventLoop], bool]) -> list[Any]:
        """Forget the async clients of the event loops `gone` picks; each shared HTTP client once. Under the lock."""
        clients = [self.built.pop(s) for s in [s for s in self.built if s[3] is not None and gone(s[3])]]
        clients += [self._templates.pop(k) for k in [k for k in self._templates if k[2] is not None and gone(k[2])]]
        return list({_shared(client): client for client in clients}.values())

    def _forget_closed_loops(self) -> None:
        """Drop the async clients of event loops that closed without closing them (their connections
        died with them): marked closed without a task (`_close_dead`). Under the lock."""
        _close_dead(self._forget_loops(lambda loop: loop.is_closed()))
        for loop in [loop for loop in self._keepers if loop.is_closed()]:
            _finish(self._keepers.pop(loop))

    def _build(self, index: int, model: Any, is_async: bool,
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
        """Close every client built so far (each shared HTTP client once) and forget them."""
        with self._lock:
            dead = self._forget_loops(lambda loop: loop.is_closed())
            clients = {_shared(client): (client, slot[3]) for slot, client in self.built.items()}
            self.built.clear()
            self._templates.clear()
            keepers = [self._keepers.pop(loop) for loop in [loop for loop in self._keepers if loop.is_closed()]]
        _close_dead(dead)
        for keeper in keepers:
            _finish(keeper)
        for client, loop in clients.values():
            _close_client(client, loop)


_rehearsed: set[type] = set()
_rehearsing = threading.Lock()


def _canned_reply(model_id: str) -> dict[str, Any]:
    """A chat completion as OpenAI's API answers one (the shape of every SDK this rehearses)."""
    return {"id": "hfs-rehearsal", "object": "chat.completion", "created": 0, "model": model_id,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": ""}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 1}}


def _http_library(http: Any) -> Any:
    """The HTTP library (httpx, or the fork an SDK uses) whose ``AsyncClient`` `http` is; None if none is."""
    for cls in type(http).__mro__:
        library = sys.modules.get(cls.__module__.partition(".")[0])
        if cls.__name__ == "AsyncClient" and hasattr(library, "MockTransport"):
            return library
    return None


def _rehearse(client: Any, model_id: str) -> None:
    """Once per SDK client class, in the calling (worker) thread: one chat completion through a copy
    of async `client` whose HTTP client answers it in the process (a ``MockTransport`` of the SDK's
    own HTTP library: nothing is sent), so that the SDK's first-request work is done here and not on
    the event loop of the first real call: evaluating its request types' hints and building its
    response types (tens of milliseconds in all). SDKs of another shape are left alone."""
    with _rehearsing:  # held throughout: another loop's first call waits here, in its worker thread
        if type(client) not in _rehearsed:
            _rehearsed.add(type(client))
            _rehearse_once(client, model_id)


def _rehearse_once(client: Any, model_id: str) -> None:
    library = _http_library(getattr(client, "_client", None))
    copier = getattr(client, "copy", None)
    if library is None or not callable(copier):
        return
    reply = _canned_reply(model_id)

    async def request() -> None:
        transport = library.MockTransport(lambda _: library.Response(200, json=reply))
        async with library.AsyncClient(transport=transport, trust_env=False) as http_client:
            extra = {"warm_tcp_connection": False} if _accepts(copier, "warm_tcp_connection") else {}
            rehearsal = copier(http_client=http_client, max_retries=0, **extra)
            await rehearsal.chat.completions.create(model=model_id, messages=[{"role": "user", "content": "hi"}])

    try:
        asyncio.run(request())
    except Exception as exc:  # a rehearsal that fails leaves the work to the first call
        log.debug("rehearsing %s's first request failed: %s", type(client).__name__, exc)


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


def _usable(client: Any) -> bool:
    return client is not None and not _is_closed(client)


def _is_closed(client: Any) -> bool:
    check = getattr(client, "is_closed", None)
    return bool(check()) if callable(check) else False


def _shared(client: Any) -> int:
    """Which HTTP client `client` uses: copies of one template share the template's."""
    return id(getattr(client, "_client", client))


def _finish(keeper: AsyncGenerator[None, None]) -> None:
    """End the keeper (`ClientCache._keep`) of a loop that closed without closing it: it does nothing then."""
    closing = keeper.aclose()
    try:
        closing.send(None)
    except StopIteration:
        return
    closing.close()


def _close_dead(clients: list[Any]) -> None:
    """Close `clients`, whose event loop closed before they were (their connections died with it).

    Closing marks them closed, so that the SDK does not schedule their closing on whatever loop
    runs when they are collected, where it fails ("Event loop is closed"). A loop of their own runs
    it: in this thread, or in one of its own when this one runs a loop.
    """
    def close_all() -> None:
        for client in clients:
            _close_client(client, None)

    if not clients:
        return
    if _running_loop() is None:
        close_all()
    else:
        threading.Thread(target=close_all, name="hfs-close-clients", daemon=True).start()


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
