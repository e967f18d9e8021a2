"""Key pools: which key serves the next call, how long to wait for one, and what a failure means.

`KeyPool` (`keypool`) is the front the models use; its mutable state sits behind the
`PoolState` interface (`state`), kept in process by `LocalPoolState` (`local`, on
keycycle's per-key windows). `failures` reads a failure and judges it;
`unavailable` holds `NoAvailableKeyError` and its kinds, each also the Agno error that means the same.
"""

from hfs_core.pool.failures import default_verdict, judge, local_error, read_reply
from hfs_core.pool.keypool import Acquired, CallOptions, KeyPool, UsageRecorder
from hfs_core.pool.local import LocalPoolState, keycycle_wrapper, rate_limits
from hfs_core.pool.state import HistoryRow, Lease, PoolState, PoolStatus, key_suffix
from hfs_core.pool.unavailable import (
    AllKeysDeadError,
    NoAvailableKeyError,
    PoolExhaustedError,
    ProviderBusyError,
    RequestTooLargeError,
)

__all__ = [
    "Acquired",
    "AllKeysDeadError",
    "CallOptions",
    "HistoryRow",
    "KeyPool",
    "Lease",
    "LocalPoolState",
    "NoAvailableKeyError",
    "PoolExhaustedError",
    "PoolState",
    "PoolStatus",
    "ProviderBusyError",
    "RequestTooLargeError",
    "UsageRecorder",
    "default_verdict",
    "judge",
    "key_suffix",
    "keycycle_wrapper",
    "local_error",
    "rate_limits",
    "read_reply",
]
