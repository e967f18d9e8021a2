"""Usage: the store that writes one row per successful call, its spool, and the queries that read them back."""

from hfs_core.usage.database_link import HISTORY_WAIT
from hfs_core.usage.exits import catch_sigterm
from hfs_core.usage.queries import folder_problem
from hfs_core.usage.spool import Spool
from hfs_core.usage.store import UsageHealth, UsageStore

__all__ = ["HISTORY_WAIT", "Spool", "UsageHealth", "UsageStore", "catch_sigterm", "folder_problem"]
