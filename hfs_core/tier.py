"""Tiers: one Agno model over several providers' models, in order of preference, chosen at each call.

``get_model("fast")`` returns a ``Tier`` (Agno's ``Model`` with the `TierModel` mixin) whose
entries are rotating models of their providers' own classes (``RotatingGroq``, ``RotatingGemini``...).
Agno's ``response``, ``aresponse`` and both streams, and the tool loop inside them, run on the tier
as on any model; each model call they make (`invoke` and its three siblings) is one call over the
entries (`hfs_core.call.run_call`): the first entry with a key free now serves it, the next ones
take it when that provider's pool is exhausted within the caller's budget, its keys are dead, or it
keeps failing. The entry that serves an attempt runs its provider's own Agno code, from formatting
the messages to parsing the reply, so one run's turns may land on different providers and each reply
is read by the parser of the provider that sent it. The tier tells its calls what to log and how to
refuse (`tier_hooks`); the call knows nothing of tiers.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, cast

from hfs_core.call import (
    CallHooks,
    Entries,
    arun_call,
    label,
    run_call,
    served_model,
    tier_refusal,
    what_failed,
    why_not,
)
from hfs_core.events import TierMoved
from hfs_core.pool import CallOptions

_log = logging.getLogger("hfs_core.pool")


def _moved(tier: str, entries: Entries, index: int) -> None:
    passed = "; ".join(f"{label(entries.models[i])}: {why_not(entries, i)}" for i in entries.passed_over(index))
    _log.info("tier %s: %s takes the call%s", tier, label(entries.models[index]), f" ({passed})" if passed else "")
    events = entries.models[index].pool.events
    if events.wanted:
        source = entries.current
        events.emit(TierMoved(tier, label(entries.models[source]), label(entries.models[index]),
                              why_not(entries, source)))


def _gave_up(tier: str, entries: Entries, index: int, error: BaseException) -> None:
    _log.info("tier %s: %s is given up for this call (after %s)", tier, label(entries.models[index]),
              what_failed(error))


def tier_hooks(tier: str) -> CallHooks:
    """What the calls of tier `tier` tell it (an INFO line when another entry takes the call or one is
    given up) and how they end when no entry can serve (one refusal naming every entry)."""
    return CallHooks(refusal=functools.partial(tier_refusal, tier), moved=functools.partial(_moved, tier),
                     gave_up=functools.partial(_gave_up, tier), tier=tier)


class TierModel:
    """Mixin placed before Agno's ``Model``; see `build_tier`. It holds no per-call state, only until
    when each entry last said it has no key free (so that its calls ask the others first meanwhile)."""

    _hfs_entries: tuple[Any, ...]
    _hfs_options: CallOptions
    _hfs_hooks: CallHooks
    _hfs_refused_until: list[float]

    def _hfs_attach(self, entries: Sequence[Any], options: CallOptions) -> None:
        model = cast(Any, self)
        self._hfs_entries = tuple(entries)
        self._hfs_options = options
        self._hfs_hooks = tier_hooks(model.id)
        self._hfs_refused_until = [0.0] * len(entries)
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

    def _hfs_run(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        return run_call(self._hfs_entries, self._hfs_options, method, args, kwargs, hooks=self._hfs_hooks,
                        refused_until=self._hfs_refused_until)

    def _hfs_arun(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> AsyncIterator[Any]:
        return arun_call(self._hfs_entries, self._hfs_options, method, args, kwargs, hooks=self._hfs_hooks,
                         refused_until=self._hfs_refused_until)

    def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's invoke on the first entry that can serve it."""
        [response] = self._hfs_run("invoke", args, kwargs)
        return response

    async def ainvoke(self, *args: Any, **kwargs: Any) -> Any:
        """Agno's ainvoke on the first entry that can serve it; waits with ``await``."""
        [response] = [r async for r in self._hfs_arun("ainvoke", args, kwargs)]
        return response

    def invoke_stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Agno's invoke_stream on the first entry that can serve it; a failure after content was
        yielded reaches the caller."""
        return self._hfs_run("invoke_stream", args, kwargs)

    def ainvoke_stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Async `invoke_stream`."""
        return self._hfs_arun("ainvoke_stream", args, kwargs)

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
