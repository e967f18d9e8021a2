"""Usage stores are closed when the process ends: at exit, and on SIGTERM.

A clean exit (the end of the program, ``sys.exit``, Ctrl-C) runs ``atexit``, which closes every
store still open. SIGTERM (``docker stop``, a process manager, a CI runner) ends a Python
process without running ``atexit``; `catch_sigterm` installs a handler that writes (or spools)
the rows that wait, then hands the signal on: to the handler the application had set, if any,
else back to the default action (the process ends as killed by SIGTERM). It installs nothing
off the main thread, when the application ignores SIGTERM, or over a handler not set from Python.
"""

from __future__ import annotations

import atexit
import logging
import signal
import threading
import weakref
from types import FrameType
from typing import Any, Protocol

log = logging.getLogger("hfs_core.usage")

SIGTERM_SECONDS = 3.0
"""Seconds each store is given on SIGTERM (``docker stop`` kills after 10 s)."""


class Closing(Protocol):
    """What is flushed and closed when the process ends (a `UsageStore`)."""

    def flush(self, timeout: float = 5.0) -> bool:
        """Write what waits, for at most `timeout` seconds."""

    def close(self, timeout: float = 5.0) -> object:
        """Write what can be within `timeout`, and stop."""


_stores: weakref.WeakSet[Closing] = weakref.WeakSet()
_lock = threading.Lock()
_registered = False
_previous: Any = None  # the SIGTERM handler ours replaced: SIG_DFL or the application's


def track(store: Closing) -> None:
    """Close `store` at exit (if it is still open then)."""
    global _registered
    with _lock:
        _stores.add(store)
        if not _registered:
            atexit.register(close_all)
            _registered = True


def close_all(timeout: float = 5.0) -> None:
    """Close every open store: write or spool what waits, count the rest as lost."""
    for store in list(_stores):
        store.close(timeout)


def catch_sigterm() -> bool:
    """Flush usage on SIGTERM before the application's handler (or the default) runs; True if in place.

    Only the main thread can set a handler; SIG_IGN and handlers set outside Python are left alone.
    """
    global _previous
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is _on_sigterm:
        return True
    if current is signal.SIG_IGN or current is None:
        return False
    _previous = current
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous
    if callable(previous):
        # The application decides how the process ends (it may go on for a while): write what
        # waits now, keep the stores open, and let its handler run.
        for store in list(_stores):
            store.flush(SIGTERM_SECONDS)
        previous(signum, frame)
        return
    log.info("SIGTERM: writing waiting usage rows before exiting")
    close_all(SIGTERM_SECONDS)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.raise_signal(signal.SIGTERM)
    raise SystemExit(128 + signum)  # still here (PID 1 of a container ignores the default action)
