"""Running a piece of work with a deadline, for calls that may hang (a silent database, a plugin hook)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from hfs_core.errors import HFSError

T = TypeVar("T")


class DeadlineExceeded(HFSError, TimeoutError):
    """The work did not finish in time; it goes on in a daemon thread, its result unused."""


def call_with_deadline(work: Callable[[], T], seconds: float, name: str = "hfs-deadline") -> T:
    """Run `work` in a daemon thread and return its result, or raise `DeadlineExceeded` after `seconds`.

    An exception raised by `work` (``BaseException`` included) is raised again in the caller's thread.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if failure:
        raise failure[0]
    if not result:
        raise DeadlineExceeded(f"no answer within {seconds:g}s")
    return result[0]
