"""What a failed attempt says: the provider's reply, read from the innermost SDK error, and its verdict.

`read_reply` turns an exception into a `ProviderReply` (status, JSON body, headers), reading
the innermost SDK error so that a reply wrapped by Agno (``ModelProviderError``, which a
third-party class may give a default 502) or by an SDK's stream reader still shows what the
provider sent. `CheckedRules` asks the provider's own rules (`ProviderSpec.error_rules`) and
checks their verdict; `judge` takes that verdict, else `default_verdict`, the core's reading of
plain HTTP. `capped_wait` bounds any wait a provider names.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from hfs_core.plugin import LONGEST_WAIT, Action, ErrorRules, ProviderReply, Verdict

log = logging.getLogger("hfs_core.pool")

_TRANSPORT_NAMES = ("Timeout", "ConnectError", "ConnectionError", "APIConnectionError", "RemoteProtocolError",
                    "ReadError", "WriteError", "ServerDisconnected", "IncompleteRead")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status_of(err: BaseException) -> int | None:
    """The HTTP status an SDK error carries (openai-style ``status_code``, google-genai ``code``)."""
    for attr in ("status_code", "code"):
        value = getattr(err, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _is_sdk_error(err: BaseException) -> bool:
    """An error raised by a provider SDK itself (it has the response, or the body the SDK parsed)."""
    return getattr(err, "response", None) is not None or hasattr(err, "body") or hasattr(err, "details")


def _json(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        return value[0]  # google-genai unwraps a one-element list the same way
    if isinstance(value, str | bytes):
        with contextlib.suppress(ValueError):
            return _json(json.loads(value))
    return {}


def _response_json(response: Any) -> Mapping[str, Any]:
    """The JSON body of the HTTP response an SDK error kept ({} when it is not JSON, or when reading
    it needs ``await``, as an aiohttp response does)."""
    try:
        value = response.json()
    except Exception:
        return {}
    if inspect.iscoroutine(value):
        value.close()
        return {}
    return _json(value)


def _is_transport(exc: BaseException) -> bool:
    """Whether nothing came back for `exc`: a timeout, a refused or dropped connection, anywhere in its chain."""
    return any(name in cls.__name__ for err in _chain(exc) for cls in type(err).__mro__ for name in _TRANSPORT_NAMES)


_PROGRAMMING_ERRORS = (TypeError, ValueError, AttributeError, ImportError, NameError, NotImplementedError,
                      AssertionError)
"""Errors of code, never of the wire: an SDK that wraps one as a connection error (groq's
``APIConnectionError`` around a ``TypeError`` for a timeout of another HTTP library) sent nothing."""


def _carries_reply(err: BaseException) -> bool:
    """Whether `err` holds something the provider sent: a response, a parsed body or details."""
    return any(getattr(err, name, None) is not None for name in ("response", "body", "details"))


def local_error(exc: BaseException) -> BaseException | None:
    """The exception at the root of `exc` when nothing in its chain came from the wire, else None.

    Such an error was raised on the caller's side (building the SDK client, an option the SDK
    refuses, a missing dependency, Agno's own code), so it says nothing about the key: nothing in
    the chain holds a reply or a status from the provider, and there is no transport failure,
    or the one there is wraps a programming error. Agno wraps such an error in a
    ``ModelProviderError`` with a made-up 502, which must not be read as the provider's answer.
    """
    errors = list(_chain(exc))
    root = errors[-1]
    if _status_of(root) is not None or any(map(_carries_reply, errors)):
        return None
    if _is_transport(exc) and not isinstance(root, _PROGRAMMING_ERRORS):
        return None
    return root


def read_reply(exc: BaseException) -> ProviderReply:
    """The provider's reply behind `exc`, from the innermost SDK error in its chain."""
    errors = list(_chain(exc))
    inner = next((err for err in reversed(errors) if _is_sdk_error(err)), None)
    if inner is None:
        status = None if local_error(exc) else next((s for s in map(_status_of, errors) if s is not None), None)
        return ProviderReply(None if _is_transport(exc) else status, {}, {}, str(exc))
    response = getattr(inner, "response", None)
    http_status = getattr(response, "status_code", None)
    headers = {str(k).lower(): str(v) for k, v in getattr(response, "headers", {}).items()}
    body: Mapping[str, Any] = {}
    if http_status is not None and http_status != 200:
        body = _response_json(response)
    if not body:
        body = _json(getattr(inner, "details", None)) or _json(getattr(inner, "body", None))
    # An error event inside a stream: the response was the stream's 200 (or the SDK kept none),
    # and the SDK kept only the error object.
    in_stream = http_status == 200 or (http_status is None and bool(body))
    if in_stream and body and "error" not in body:
        body = {"error": body}
    status = None if in_stream else (_status_of(inner) or http_status)
    message = str(getattr(inner, "message", "") or inner)
    return ProviderReply(status, body, headers, message, in_stream)


def retry_after(reply: ProviderReply) -> float | None:
    """The wait the reply's headers name, in seconds: ``retry-after-ms``, else ``retry-after``."""
    millis = reply.header_seconds("retry-after-ms")
    return millis / 1000 if millis is not None else reply.header_seconds("retry-after")


def default_verdict(reply: ProviderReply, exc: BaseException) -> Verdict:
    """The core's reading of a reply its provider's rules leave open (`exc`: the attempt's exception).

    401/402/403 retire the key; 429 cools it for its Retry-After (``retry-after-ms`` or
    ``retry-after``); 408, 409, 5xx, 498, no answer at all (a timeout, a dropped connection)
    and an error inside a started stream are retried on another key; any other status (400,
    404, 413, 422...) is the caller's error, and so is an exception that carries no reply and
    is no transport failure (raised by the caller's or Agno's code, not by the provider).
    """
    status = reply.status
    if status in (401, 402, 403):
        return Verdict(Action.RETIRE_KEY, reason=f"HTTP {status}")
    if status == 429:
        return Verdict(Action.COOL_KEY, retry_after(reply), "minute", reason="rate limited (429)")
    if reply.in_stream or status in (408, 409, 498) or (status is not None and status >= 500):
        return Verdict(Action.RETRY, reason="a passing fault")
    if status is None and (_is_transport(exc) or any(map(_is_sdk_error, _chain(exc)))):
        return Verdict(Action.RETRY, reason="no answer")
    return Verdict(Action.CALLER_ERROR, reason=f"HTTP {status}" if status else f"{type(exc).__name__}, no reply")


def capped_wait(seconds: float, where: str) -> float:
    """`seconds` (a wait the provider named, for the key or service at `where`), at most `LONGEST_WAIT`;
    a longer one is logged with the value it was capped at."""
    if seconds <= LONGEST_WAIT:
        return seconds
    log.warning("%s: the provider named a wait of %gs, longer than any of its windows; capped at %.0fs", where,
                seconds, LONGEST_WAIT)
    return LONGEST_WAIT


def verdict_fault(verdict: object) -> str | None:
    """What makes a rule's answer one the core cannot act on; None for a sound `Verdict`, or None itself."""
    if verdict is None:
        return None
    if not isinstance(verdict, Verdict):
        return f"returned {type(verdict).__name__}, not a Verdict"
    seconds = verdict.seconds
    if not isinstance(verdict.action, Action):
        return f"returned a Verdict with action={verdict.action!r}, not an Action"
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int | float)
                                or math.isnan(seconds) or seconds < 0):
        return f"returned a Verdict with seconds={seconds!r}, not a number of seconds (0 or more)"
    if verdict.window not in (None, "minute", "day"):
        return f"returned a Verdict with window={verdict.window!r}, not 'minute', 'day' or None"
    if verdict.counts not in (None, "requests", "tokens"):
        return f"returned a Verdict with counts={verdict.counts!r}, not 'requests', 'tokens' or None"
    if not isinstance(verdict.reason, str):
        return f"returned a Verdict with reason={verdict.reason!r}, not a string"
    return None


class CheckedRules:
    """A provider's error rules as the core asks them: whatever they raise or return that the core
    cannot act on is the plugin's failure, logged (a WARNING the first time, DEBUG after), and leaves
    the reply to the core's defaults. The call runs them in a worker thread (`hfs_core.call`)."""

    def __init__(self, rules: ErrorRules, provider: str) -> None:
        self._rules = rules
        self.provider = provider
        self._told: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, reply: ProviderReply) -> Verdict | None:
        """The rules' verdict on `reply`; None when they leave it to the defaults, or fail."""
        try:
            verdict = self._rules(reply)
        except BaseException as err:  # the plugin's bug must not decide the call (in a worker thread)
            self.fault(f"raised {type(err).__name__}")
            return None
        fault = verdict_fault(verdict)
        if fault is not None:
            self.fault(fault)
            return None
        return verdict

    def fault(self, what: str) -> None:
        """Log that the rules `what` (e.g. "raised KeyError"): a WARNING the first time, DEBUG after."""
        with self._lock:
            first = what not in self._told
            self._told.add(what)
        log.log(logging.WARNING if first else logging.DEBUG, "%s: the plugin's error_rules %s; the core's defaults "
                "apply", self.provider, what)


def judge(exc: BaseException, ruled: Verdict | None) -> tuple[ProviderReply, Verdict]:
    """Read `exc` and decide on it: `ruled` (the provider's rules' verdict, see `CheckedRules`), else
    `default_verdict`.

    A `local_error` is the caller's, whatever the rules say: no request left, so no key is to blame.
    """
    reply = read_reply(exc)
    local = local_error(exc)
    if local is not None:
        return reply, Verdict(Action.CALLER_ERROR, reason=f"{type(local).__name__} before any request was sent")
    return reply, ruled or default_verdict(reply, exc)
