"""Tiers: one Agno model over several providers' models, in order of preference, chosen at each call.

``get_model("fast")`` returns a ``Tier`` (Agno's ``Model`` with the `TierModel` mixin) whose
entries are rotating models of their providers' own classes (``RotatingGroq``, ``RotatingGemini``...).
Agno's ``response``, ``aresponse`` and both streams, and the tool loop inside them, run on the tier
as on any model; each model call they make (`invoke` and its three siblings) is one call over the
entries (`hfs_core.model.run_call`): the first entry with a key free now serves it, the next ones
take it when that provider's pool is exhausted within the caller's budget, its keys are dead, or it
keeps failing. The entry that serves an attempt runs its provider's own Agno code, from formatting
the messages to parsing the reply, so one run's turns may land on different providers and each reply
is read by the parser of the provider that sent it.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from hfs_core.model import arun_call, run_call, served_model
from hfs_core.pool import CallOptions


class TierModel:
    """Mixin placed before Agno's ``Model``; see `build_tier`. It holds no per-call state, only until
    when each entry last said it has no key free (so that its calls ask the others first meanwhile)."""

    _hfs_entries: tuple[Any, ...]
    _hfs_options: CallOptions
    _hfs_refused_until: list[float]

    def _hfs_attach(self, entries: Sequence[Any], options: CallOptions) -> None:
        self._hfs_entries = tuple(entries)
        self._hfs_options = options
        self._hfs_refused_until = [0.0] * len(entries)
        model = cast(Any, self)
        model.supports_native_structured_outputs = all(e.supports_native_structured_outputs for e in entries)
        model.supports_json_schema_outputs = all(e.supports_json_schema_outputs for e in entries)

    @property
    def entries(self) -> tuple[Any, ...]:
        """The rotating models a call may run on, in order of preference."""
        return self._hfs_entries

    @property
    def call_options(self) -> CallOptions:
        """How this tier's calls wait and retry (the wait budget is shared by its entries)."""
        return self._hfs_options

    def __repr__(self) -> str:
        entries = ", ".join(f"{e.pool.provider}:{e.id}" for e in self._hfs_entries)
        return f"Tier(id={cast(Any, self).id!r}, entries=[{entries}], options={self._hfs_options})"

    def _hfs_call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        """The arguments of `run_call` / `arun_call` for one call of Agno's `method`."""
        return (self._hfs_entries, self._hfs_options, method, args, kwargs, cast(Any, self).id,
                self._hfs_refused_until)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's invoke on the first entry that can serve it."""
        [response] = run_call(*self._hfs_call("invoke", args, kwargs))
        return response

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's ainvoke on the first entry that can serve it; waits with ``await``."""
        [response] = [r async for r in arun_call(*self._hfs_call("ainvoke", args, kwargs))]
        return response

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Agno's invoke_stream on the first entry that can serve it; a failure after content was
        yielded reaches the caller."""
        return run_call(*self._hfs_call("invoke_stream", args, kwargs))

    def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Async `invoke_stream`."""
        return arun_call(*self._hfs_call("ainvoke_stream", args, kwargs))

    def parse_tool_calls(self, tool_calls_data: list[Any]) -> list[dict[str, Any]]:
        """The tool calls of a stream, assembled by the provider that sent it (OpenAI-style providers
        stream fragments that their own class joins; Gemini sends whole calls)."""
        return cast(list[dict[str, Any]], served_model().parse_tool_calls(tool_calls_data))

    def _parse_provider_response(self, response: Any, **kwargs: Any) -> Any:
        """Not used: each entry's own invoke parses its provider's replies (Agno requires the method)."""
        raise NotImplementedError("a tier parses no reply itself; the entry that served the call did")

    def _parse_provider_response_delta(self, response: Any) -> Any:
        """Not used, as `_parse_provider_response`."""
        raise NotImplementedError("a tier parses no reply itself; the entry that served the call did")


@functools.cache
def tier_class() -> type:
    """Agno's ``Model`` with the `TierModel` mixin (built once; imports agno)."""
    from agno.models.base import Model

    return type("Tier", (TierModel, Model), {"__module__": __name__})


def build_tier(name: str, entries: Sequence[Any], options: CallOptions) -> Any:
    """The tier `name` over `entries` (rotating models, in order of preference), its calls shaped by `options`."""
    model = tier_class()(id=name, name=f"tier {name}", provider="hfs tier")
    model._hfs_attach(entries, options)
    return model
