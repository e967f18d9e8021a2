"""What ends a call no entry can serve, and why an entry is not serving, in a few words.

A plain model's call ends with its one entry's own error (`plain_refusal`); a tier's with one
refusal naming every entry (`tier_refusal`, which the tier passes to its calls).
"""

from __future__ import annotations

from typing import Any

from hfs_core.call.entries import Entries
from hfs_core.pool import (
    AllKeysDeadError,
    CallOptions,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    RequestTooLargeError,
    read_reply,
)

_HOPE = (PoolExhaustedError, ProviderBusyError, RequestTooLargeError, AllKeysDeadError)
"""Kinds of refusal, the most hopeful first (a rate limit passes; dead keys stay dead)."""
_REFUSED = {PoolExhaustedError: "no key free now", ProviderBusyError: "backed off (busy)",
            RequestTooLargeError: "estimated_tokens too large", AllKeysDeadError: "all keys dead"}


def label(model: Any) -> str:
    """An entry as ``provider/model``."""
    return f"{model.pool.provider}/{model.id}"


def what_failed(exc: BaseException) -> str:
    """A failed attempt in a few words that hold nothing the provider wrote (which might echo a key)."""
    reply = read_reply(exc)
    if reply.status:
        return f"HTTP {reply.status}"
    return "an error event in its stream" if reply.in_stream else "no answer"


def why_not(entries: Entries, index: int) -> str:
    """Why entry `index` is not serving, in a few words."""
    if index in entries.given_up and not isinstance(entries.given_up[index][0], NoAvailableKeyError):
        return f"given up after {what_failed(entries.given_up[index][0])}"
    if index in entries.refused:
        return _REFUSED[type(entries.refused[index])]
    return "no key free, as it said moments ago"


def plain_refusal(entries: Entries, options: CallOptions) -> BaseException:
    """What ends a plain model's call: its one entry's last error, as it is."""
    return entries.given_up[0][0] if 0 in entries.given_up else entries.refused[0]


def tier_refusal(tier: str, entries: Entries, options: CallOptions) -> NoAvailableKeyError:
    """What ends a call of tier `tier` no entry can serve: one refusal naming every entry.

    It is of the most hopeful kind among the entries' (a rate limit before a busy provider,
    before a request too large, before dead keys), so that Agno's fallback reads it as it would
    that entry's; ``next_free_in`` is the soonest any entry frees up.
    """
    lines: list[str] = []
    kinds: set[type[NoAvailableKeyError]] = set()
    free_in: list[tuple[float, str]] = []
    total = dead = cooling = 0
    for index, model in enumerate(entries.models):
        status = model.pool.status()
        total, dead, cooling = total + status.total, dead + status.dead, cooling + status.cooling
        refusal = entries.refused.get(index)
        if index in entries.given_up and not isinstance(entries.given_up[index][0], NoAvailableKeyError):
            error, kind = entries.given_up[index]
            lines.append(f"{label(model)}: {what_failed(error)}, given up for this call")
        elif refusal is not None:
            kind = type(refusal)
            lines.append(str(refusal))
            if refusal.may_free and refusal.next_free_in is not None:
                free_in.append((refusal.next_free_in, model.pool.provider))
        else:
            lines.append(f"{label(model)}: not tried")
            continue
        kinds.add(kind)
    kind = next((k for k in _HOPE if k in kinds), PoolExhaustedError)
    soonest = min(free_in, default=None)
    when = f"in {soonest[0]:.1f}s ({soonest[1]})" if soonest else "at no known time"
    budget = "wait=False" if not options.wait else f"a {options.timeout:g}s wait budget"
    message = f"tier {tier!r}: no entry can take the call within {budget}: {'; '.join(lines)}; " \
              f"the first key frees {when}"
    return kind(message, provider=tier, model_id=", ".join(m.id for m in entries.models),
                wait=options.wait, timeout=options.timeout, total_keys=total, dead_keys=dead,
                cooling_down=cooling, next_free_in=soonest[0] if soonest else None, entries=tuple(lines))
