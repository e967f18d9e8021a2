"""Usage: the store that writes one row per successful call, and the queries that read them back."""

from hfs_core.usage.store import HISTORY_WAIT, UsageHealth, UsageStore

__all__ = ["HISTORY_WAIT", "UsageHealth", "UsageStore"]
