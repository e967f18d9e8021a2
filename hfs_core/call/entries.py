"""The entries of one call and what each has done in it: the call's bookkeeping, with no policy."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Protocol

from hfs_core.pool import CallOptions, KeyPool, NoAvailableKeyError


class Entry(Protocol):
    """What a call needs of an entry (a rotating model, `hfs_core.call.rotating.RotatingModel`)."""

    id: str

    @property
    def pool(self) -> KeyPool:
        """The key pool the entry draws from."""

    def _hfs_reserving(self, options: CallOptions) -> CallOptions:
        """The call's `options` with the tokens an attempt on this entry reserves."""

    async def _hfs_ready(self) -> None:
        """Have the running loop's first SDK client of the entry built, off the loop."""


class Entries:
    """The entries of one call, in order of preference, and their record in this call.

    A plain model's call has one entry, itself; a tier's has one per entry of the tier. Each
    entry keeps its retries and rate limits met, the keys that failed it (avoided while others
    can serve), its last "no key free now" (`refused`), and whether it is out of this call
    (`given_up`: why, as the kind of refusal it amounts to). A tier shares `refused_until` between
    its calls: until when each entry last said no key frees (see `in_turn`).
    """

    def __init__(self, models: Sequence[Entry], refused_until: list[float] | None = None) -> None:
        self.models = tuple(models)
        self.refused_until = refused_until
        self.current = 0  # the entry of the attempt under way
        self.retries = [0] * len(self.models)
        self.rate_limits = [0] * len(self.models)
        self.avoid: list[frozenset[int]] = [frozenset()] * len(self.models)
        self.refused: dict[int, NoAvailableKeyError] = {}
        self.given_up: dict[int, tuple[BaseException, type[NoAvailableKeyError]]] = {}

    def live(self) -> list[int]:
        """The entries not given up for this call."""
        return [index for index in range(len(self.models)) if index not in self.given_up]

    def in_turn(self) -> list[int]:
        """The live entries in the order to ask them now: those not known to be exhausted first.

        An entry that said lately that no key frees before some time is asked after the others
        until then, so that while it is exhausted a call does not pay for asking it first (an
        exhausted pool scans its windows to say when it frees).
        """
        live = self.live()
        if self.refused_until is None:
            return live
        now = time.monotonic()
        later = [i for i in live if self.refused_until[i] > now]
        return [i for i in live if i not in later] + later

    def no_key_now(self, index: int, refusal: NoAvailableKeyError) -> None:
        """Entry `index` has no key free now: remembered, and given up if none will ever free."""
        self.refused[index] = refusal
        if not refusal.may_free:
            self.given_up[index] = (refusal, type(refusal))
        elif self.refused_until is not None and refusal.next_free_in is not None:
            self.refused_until[index] = time.monotonic() + refusal.next_free_in

    def leased(self, index: int) -> None:
        """Entry `index` gave a key."""
        if self.refused_until is not None:
            self.refused_until[index] = 0.0

    def refused_lately(self, index: int) -> bool:
        """Whether entry `index` said lately (in this call or another of its tier) that no key frees yet."""
        return self.refused_until is not None and self.refused_until[index] > time.monotonic()

    def frees_first(self) -> int | None:
        """The live entry whose key frees first (the earlier one on a tie), or None when none is live."""
        live = self.live()
        if not live:
            return None
        return min(live, key=lambda i: (_free_in(self.refused[i]), i))

    def key_failed(self, index: int, key: int) -> None:
        """Key `key` of entry `index` failed this call: others are leased before it."""
        self.avoid[index] = self.avoid[index] | {key}

    def give_up(self, index: int, error: BaseException, kind: type[NoAvailableKeyError]) -> None:
        """Take entry `index` out of this call, after `error` (which amounts to a refusal of `kind`)."""
        self.given_up[index] = (error, kind)

    def passed_over(self, index: int) -> list[int]:
        """The entries before `index` that could not take the call (refused, given up, or exhausted lately)."""
        return [i for i in range(index) if i in self.refused or i in self.given_up or self.refused_lately(i)]


def _free_in(refusal: NoAvailableKeyError) -> float:
    return refusal.next_free_in if refusal.next_free_in is not None else math.inf
