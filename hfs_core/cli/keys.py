"""``hfs keys revive PROVIDER SUFFIX``: put a retired key back in service for every process sharing the state."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from hfs_core.cli.arguments import SUFFIX_LONGEST, SUFFIX_SHORTEST
from hfs_core.cli.common import CliError, open_registry
from hfs_core.cli.output import PROG, LogFilter, out

if TYPE_CHECKING:
    from hfs_core.pool import KeyPool
    from hfs_core.registry import Registry


def cmd_keys(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Run ``hfs keys ACTION``."""
    registry, _ = open_registry(log_filter)
    try:
        return _revive(registry, args.provider.strip().lower(), args.suffix.strip())
    finally:
        registry.shutdown()


def _key_index(pool: KeyPool, provider: str, suffix: str) -> int:
    """The pool's one key ending in `suffix`; a `CliError` when none or several do."""
    if not SUFFIX_SHORTEST <= len(suffix) <= SUFFIX_LONGEST:
        raise CliError(f"{suffix!r} is not a key suffix",
                       f"give the key's last {SUFFIX_SHORTEST} to {SUFFIX_LONGEST} characters")
    found = [index for index in range(pool.size) if pool.suffix(index).endswith(suffix)]
    if not found:
        shown = ", ".join(f"…{pool.suffix(index)[-SUFFIX_SHORTEST:]}" for index in range(pool.size))
        raise CliError(f"no {provider} key ends with {suffix!r}", f"its keys end with {shown}")
    if len(found) > 1:
        raise CliError(f"{len(found)} {provider} keys end with {suffix!r}",
                       f"give more of the key's last characters (up to {SUFFIX_LONGEST})")
    return found[0]


def _revive(registry: Registry, provider: str, suffix: str) -> int:
    if provider not in registry.specs:
        raise CliError(f"unknown provider {provider!r}", f"installed: {', '.join(sorted(registry.specs)) or 'none'}")
    if registry.state_url() is None and registry.settings.named_state_url():
        raise CliError(f"{registry.settings.state_source} does not name a usable Redis URL",
                       f"`{PROG} check` says what is wrong with it")
    if registry.state_url() is None:
        raise CliError("no shared state: a key is retired only in the process that retired it, and is back in "
                       "service when that process restarts",
                       "set HFS_STATE_URL (or [state] url in hfs.toml) so processes share their pools; then "
                       f"`{PROG} keys revive` reaches all of them")
    probe = registry.probe_state()
    if probe is None or not probe.shared:
        detail = probe.detail if probe is not None else "not set"
        raise CliError(f"the shared state {registry.state_info()['url']} cannot be used: {detail}",
                       probe.hint if probe is not None else "")
    pool = registry.pool(provider)
    index = _key_index(pool, provider, suffix)
    named = f"{provider} key …{pool.suffix(index)[-SUFFIX_SHORTEST:]}"
    if pool.state.revive(index):
        out(f"{named} is back in service for every process sharing {registry.state_info()['url']}")
    else:
        out(f"{named} is not retired; nothing to do")
    return 0
