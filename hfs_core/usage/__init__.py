"""Usage: the store that writes one row per successful call, its spool, and the queries that read them back.

Each name loads its module on first use, so that a submodule (`exits`, `queries`) can be imported
without the store and its database link.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hfs_core.usage.database_link import HISTORY_WAIT
    from hfs_core.usage.exits import catch_sigterm
    from hfs_core.usage.queries import folder_problem
    from hfs_core.usage.spool import Spool
    from hfs_core.usage.store import UsageHealth, UsageStore

_HOME = {"HISTORY_WAIT": "database_link", "catch_sigterm": "exits", "folder_problem": "queries", "Spool": "spool",
         "UsageHealth": "store", "UsageStore": "store"}

__all__ = ["HISTORY_WAIT", "Spool", "UsageHealth", "UsageStore", "catch_sigterm", "folder_problem"]


def __getattr__(name: str) -> Any:
    """`name` from its module, loaded now."""
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
