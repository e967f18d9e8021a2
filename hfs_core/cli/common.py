"""What every ``hfs`` command shares: the error it raises for the user, and the registry it opens."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from hfs_core.cli.output import LogFilter, remember_secrets
from hfs_core.env import SecretMask
from hfs_core.errors import ConfigError
from hfs_core.plugin import Problem

if TYPE_CHECKING:
    from hfs_core.registry import Registry


class CliError(Exception):
    """A failure the user can fix: shown as one line and a hint, exit status 1."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@contextlib.contextmanager
def _startup(log_filter: LogFilter) -> Iterator[None]:
    """Keep the registry's start-up warnings off stderr while it is built."""
    log_filter.muted = True
    try:
        yield
    finally:
        log_filter.muted = False


def open_registry(log_filter: LogFilter, *, keep_going: bool = False) -> tuple[Registry, Problem | None]:
    """Build the registry; with `keep_going` a malformed config becomes a problem instead of an error."""
    from hfs_core.config import Config
    from hfs_core.registry import Registry
    from hfs_core.variables import CONFIG_ENV

    remember_secrets(SecretMask(os.environ))
    with _startup(log_filter):
        try:
            registry = Registry()
            problem = None
        except ConfigError as exc:
            if not keep_going:
                raise
            where, _, message = str(exc).partition(": ")
            problem = Problem("error", where, message or str(exc),
                              f"fix the file, or point {CONFIG_ENV} at another one; until then the registry does "
                              "not start: get_model() raises ConfigError and `hfs ask` exits 1 (what else is "
                              "listed here assumes no config file)")
            registry = Registry(config=Config())
    remember_secrets(registry.mask)
    return registry, problem
