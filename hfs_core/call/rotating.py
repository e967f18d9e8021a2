"""Rotating Agno models: an Agno model class whose every call runs on a leased key.

`rotating_class(Groq)` is ``RotatingGroq``: the provider's own Agno class with the four invoke
methods wrapped. Each call is a `Call` over one entry, the model itself (a tier's is over its
entries: `hfs_core.tier`); each attempt runs the provider's own Agno code, from its message
formatting to its parsing, with the leased key's SDK client from the model's `ClientCache`
(one per key, reused, shared by the models of one pool). The model object holds no key and no
per-call state, so one instance can serve many threads and tasks at once.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from hfs_core.call.attempts import PLAIN, Call, CallHooks, current_lease
from hfs_core.call.clients import ClientCache
from hfs_core.call.entries import Entries, Entry
from hfs_core.call.messages import provider_kwargs
from hfs_core.call.steps import arun, asingle, run, single
from hfs_core.pool import CallOptions, KeyPool

_log = logging.getLogger("hfs_core.pool")
_CLIENT_FIELDS = ("base_url", "timeout", "max_retries", "default_headers", "default_query", "client_params",
                  "http_client", "vertexai", "project_id", "location")
_ANSWER_CAPS = ("max_completion_tokens", "max_tokens")
_CAP_FIELDS = ("max_completion_tokens", "max_output_tokens")  # Cerebras's and Gemini's names for max_tokens


def _opener(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Callable[[Any], Any]:
    """What opens one attempt's source on an entry: its provider's own Agno `method`, given the
    call's messages as that provider may be sent them (``invoke``/``ainvoke``: a source of one chunk)."""
    def start(model: Any) -> Any:
        provider_method = getattr(super(RotatingModel, model), method)
        call_kwargs = provider_kwargs(model, kwargs)
        if method == "invoke":
            return single(lambda: provider_method(*args, **call_kwargs))
        if method == "ainvoke":
            return asingle(lambda: provider_method(*args, **call_kwargs))
        return provider_method(*args, **call_kwargs)

    return start


def answer_cap(model: Any) -> int | None:
    """The most tokens the caller lets `model` answer with, as its requests carry it: the largest
    ``max_completion_tokens`` or ``max_tokens`` set on the model or in its ``request_params`` (which
    Agno sends too), or None when none is set (a negative one, such as Cerebras's -1, sets none)."""
    params = getattr(model, "request_params", None) or {}
    caps = [value for name in _ANSWER_CAPS for value in (getattr(model, name, None), params.get(name))
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0]
    return max(caps) if caps else None


def run_call(entries: Sequence[Entry], options: CallOptions, method: str, args: tuple[Any, ...],
             kwargs: dict[str, Any], *, hooks: CallHooks = PLAIN, refused_until: list[float] | None = None
             ) -> Iterator[Any]:
    """Agno's `method` (``"invoke"``: one chunk, the response; or ``"invoke_stream"``) as a call over
    `entries` (rotating models, in order of preference), in a thread. A tier passes its `hooks` and
    its `refused_until` (one ``time.monotonic`` per entry, shared by its calls)."""
    return run(Call(Entries(entries, refused_until), options, hooks), _opener(method, args, kwargs))


def arun_call(entries: Sequence[Entry], options: CallOptions, method: str, args: tuple[Any, ...],
              kwargs: dict[str, Any], *, hooks: CallHooks = PLAIN, refused_until: list[float] | None = None
              ) -> AsyncIterator[Any]:
    """`run_call` for ``"ainvoke"`` and ``"ainvoke_stream"``, in a coroutine."""
    return arun(Call(Entries(entries, refused_until), options, hooks), _opener(method, args, kwargs))


class RotatingModel:
    """Mixin placed before an Agno model class; see `rotating_class`."""

    _hfs_pool: KeyPool
    _hfs_clients: ClientCache
    _hfs_options: CallOptions
    _hfs_signature: str

    def _hfs_attach(self, pool: KeyPool, clients: ClientCache, options: CallOptions, signature: str) -> None:
        self._hfs_pool = pool
        self._hfs_clients = clients
        self._hfs_options = options
        self._hfs_signature = signature

    @property
    def pool(self) -> KeyPool:
        """The key pool this model draws from."""
        return self._hfs_pool

    @property
    def clients(self) -> ClientCache:
        """The SDK clients of the pool's keys (shared by the models of one pool)."""
        return self._hfs_clients

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
        memo[id(self._hfs_clients)] = self._hfs_clients
        return cast(Any, super()).__deepcopy__(memo)

    def _hfs_client(self, is_async: bool) -> Any:
        lease = current_lease()
        index = lease.index if lease is not None else self._hfs_pool.any_key()
        return self._hfs_clients.get(index, self, is_async, self._hfs_signature)

    def get_client(self) -> Any:
        """The SDK client of the key leased for the current attempt."""
        return self._hfs_client(False)

    def get_async_client(self) -> Any:
        """The async SDK client of the key leased for the current attempt."""
        return self._hfs_client(True)

    def _hfs_reserving(self, options: CallOptions) -> CallOptions:
        """`options` as an attempt on this model reserves tokens: where its provider counts a
        request's answer cap on arrival (`ProviderSpec.counts_max_tokens_up_front`), the estimate
        is raised to the cap the caller set (`answer_cap`), if that is larger.

        `estimated_tokens` stands for the whole request, prompt and answer; such a provider counts
        the prompt and the cap, so a caller with long prompts sets `estimated_tokens` to both.
        """
        if not self._hfs_pool.spec.counts_max_tokens_up_front:
            return options
        cap = answer_cap(self)
        if cap is None or cap <= options.estimated_tokens:
            return options
        return dataclasses.replace(options, estimated_tokens=cap)

    async def _hfs_ready(self) -> None:
        """Have the running loop's first async SDK client built off the loop (see `ClientCache.ready`)."""
        await self._hfs_clients.ready(self, self._hfs_signature)

    def _hfs_alone(self) -> tuple[Entry]:
        """The entries of this model's own calls: itself."""
        return (cast(Entry, self),)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's invoke on a leased key, rotating keys on failure."""
        [response] = run_call(self._hfs_alone(), self._hfs_options, "invoke", args, kwargs)
        return response

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's ainvoke on a leased key; waits for keys and backs off with ``await``."""
        [response] = [r async for r in arun_call(self._hfs_alone(), self._hfs_options, "ainvoke", args, kwargs)]
        return response

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Agno's invoke_stream on a leased key. A failure before the first chunk with content
        rotates to another key; a failure after content was yielded reaches the caller."""
        return run_call(self._hfs_alone(), self._hfs_options, "invoke_stream", args, kwargs)

    def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Async `invoke_stream`."""
        return arun_call(self._hfs_alone(), self._hfs_options, "ainvoke_stream", args, kwargs)


class _RecoveredAttempts(logging.Filter):
    """Keeps Agno's ERROR line for a failed attempt ("Error calling Groq API: ...") out of the
    application's log while the pool is still working on the call: the pool logs the attempt
    itself (INFO), and what reaches the caller reaches it as an exception."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and current_lease() is not None:
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


@functools.cache
def _field_names(cls: type) -> frozenset[str]:
    """The names of `cls`'s dataclass fields (none if it is no dataclass), found once per class."""
    return frozenset(field.name for field in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else frozenset()


def _named_as_the_class_names_it(cls: type, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with ``max_tokens``, the one name of an answer cap on every provider, renamed to the
    field `cls` has instead (Agno's Cerebras has ``max_completion_tokens``, its Gemini
    ``max_output_tokens``), so a tier's entries all take it."""
    if "max_tokens" not in kwargs:
        return kwargs
    fields = _field_names(cls)
    if "max_tokens" in fields:
        return kwargs
    named = next((name for name in _CAP_FIELDS if name in fields and name not in kwargs), None)
    if named is None:
        return kwargs
    renamed = dict(kwargs)
    renamed[named] = renamed.pop("max_tokens")
    return renamed


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
    """What `get_model` works out once for one shape of call (provider, model and keywords): the
    next model of that shape costs the Agno class's own constructor and little more.

    Attributes:
        cls: the rotating Agno class.
        model_id: the model every call asks for.
        kwargs: the class's keyword arguments (the plugin's SDK options merged with the caller's).
        options: how the models' calls wait and retry.
        signature: the client fields' values, naming which SDK clients the models may share.
    """

    cls: type
    model_id: str
    kwargs: Mapping[str, Any]
    options: CallOptions
    signature: str

    def build(self, pool: KeyPool, clients: ClientCache) -> Any:
        """A new model of this recipe drawing keys from `pool` (nested dicts copied: no two models share one)."""
        model = self.cls(id=self.model_id, **{name: dict(value) if isinstance(value, dict) else value
                                               for name, value in self.kwargs.items()})
        model._hfs_attach(pool, clients, self.options, self.signature)
        return model


def model_recipe(pool: KeyPool, clients: ClientCache, model_id: str, options: CallOptions,
                 kwargs: dict[str, Any]) -> ModelRecipe:
    """The recipe of rotating models of `clients`' Agno class drawing keys from `pool`, with `kwargs`
    passed to the class. Raises TypeError for a keyword the class does not take. Looks up the model's
    limits now (`KeyPool.prepare`), so that its first call, perhaps on an event loop, finds them at hand."""
    cls = rotating_class(clients.model_class)
    named = _named_as_the_class_names_it(cls, kwargs)
    first = cls(id=model_id, **named)
    pool.prepare(first.id)
    return ModelRecipe(cls, model_id, named, options, repr(tuple(getattr(first, f, None) for f in _CLIENT_FIELDS)))


def build_model(pool: KeyPool, clients: ClientCache, model_id: str, options: CallOptions,
                kwargs: dict[str, Any]) -> Any:
    """A rotating model of `clients`' Agno class drawing keys from `pool`, with `kwargs` passed to the class."""
    return model_recipe(pool, clients, model_id, options, kwargs).build(pool, clients)
