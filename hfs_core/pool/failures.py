"""What a failed model call says about its key: dead, rate limited, transient or fatal."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

from hfs_core._keycycle import is_rate_limit_error, is_temporary_rate_limit_error


class Outcome(Enum):
    """What a failed attempt says about its key."""

    DEAD = "dead"
    RATE_LIMITED = "rate_limited"
    TRANSIENT = "transient"
    FATAL = "fatal"


@dataclass(frozen=True)
class Failure:
    """A classified failure: what it was, its HTTP status, and the provider's Retry-After."""

    outcome: Outcome
    status: int | None
    retry_after: float | None


_TRANSIENT_NAMES = ("Timeout", "ConnectError", "ConnectionError", "APIConnectionError", "RemoteProtocolError",
                    "ReadError", "WriteError", "ServerDisconnected")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _retry_after(exc: BaseException) -> float | None:
    for err in _chain(exc):
        response = getattr(err, "response", None)
        headers = getattr(response, "headers", None)
        if headers is not None:
            with contextlib.suppress(TypeError, ValueError):
                if headers.get("retry-after-ms"):
                    return float(headers["retry-after-ms"]) / 1000.0
                if headers.get("retry-after"):
                    return float(headers["retry-after"])
        delay = re.search(r'"retryDelay":\s*"(\d+(?:\.\d+)?)s"', str(getattr(err, "message", "")) or str(err))
        if delay:
            return float(delay.group(1))
    return None


def classify(exc: BaseException) -> Failure:
    """Sort a model call's exception into dead key, rate limit, transient fault or fatal error."""
    status: int | None = None
    for err in _chain(exc):
        for attr in ("status_code", "code"):
            value = getattr(err, attr, None)
            if isinstance(value, int) and 100 <= value <= 599:
                status = value
                break
        if status is not None:
            break
    transport = any(any(name in cls.__name__ for name in _TRANSIENT_NAMES)
                    for err in _chain(exc) for cls in type(err).__mro__)
    if status in (401, 402, 403):
        return Failure(Outcome.DEAD, status, None)
    if status == 429 or (status is None and isinstance(exc, Exception) and is_rate_limit_error(exc)):
        if isinstance(exc, Exception) and is_temporary_rate_limit_error(exc):
            return Failure(Outcome.TRANSIENT, status, _retry_after(exc))
        return Failure(Outcome.RATE_LIMITED, status, _retry_after(exc))
    if transport or status in (408, 409) or (status is not None and status >= 500):
        return Failure(Outcome.TRANSIENT, status, _retry_after(exc))
    return Failure(Outcome.FATAL, status, None)

