"""The pool state alone: microseconds per ``try_acquire`` + ``settle``, with and without key groups.

Run with ``uv run python benchmarks/state_loop.py`` (``--quick``: fewer rounds).

No stand-in and no SDK: a loop over a `LocalPoolState` of 110 Groq keys, then a `RedisPoolState`
on the Redis at 127.0.0.1:6379 (a namespace of its own, deleted afterwards), each reserving a key
and settling it at once, limits far above what the loop sends. Three variants side by side, in
interleaved rounds: no ``budgets`` (the code path every pool without ``key_groups`` takes), and 11
groups of 10 keys. The figure is the best round's mean, which is what the code costs when nothing
else holds the CPU. To compare with other code, run the script with that code first on
``PYTHONPATH`` (without ``--groups``, which older code does not take).
"""

from __future__ import annotations

import argparse
import importlib
import time
import uuid
from typing import Any

import _common as common

MODEL = "openai/gpt-oss-20b"
ROOMY = {MODEL: {"rpm": 10**6, "rph": 10**7, "rpd": 10**8, "tpm": 10**9, "tph": 10**10, "tpd": 10**11}}
KEYS = 110


def loop(state: Any, calls: int) -> float:
    """Microseconds per reservation and settle, over `calls` of them."""
    from hfs_core.pool import Lease

    start = time.perf_counter()
    for _ in range(calls):
        lease = state.try_acquire(MODEL, 10)
        assert isinstance(lease, Lease), lease
        state.settle(lease, 10)
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--groups", action=argparse.BooleanOptionalAction, default=True,
                        help="also time 11 groups of 10 keys (code before key groups: --no-groups)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rounds, local_calls, redis_calls = (3, 2000, 300) if args.quick else (7, 5000, 1000)
    settings = {"keys": KEYS, "rounds": rounds, "local_calls": local_calls, "redis_calls": redis_calls}
    facts = common.print_header("The pool state alone: try_acquire + settle", settings)
    from hfs_core.pool import LocalPoolState
    from hfs_core.pool.redis_link import RedisLink
    from hfs_core.pool.shared import RedisPoolState

    spec = importlib.import_module("hfs_provider_groq").SPEC
    keys = common.groq_keys(KEYS)
    variants: dict[str, dict[str, Any]] = {"no key groups": {}}
    if args.groups:
        variants["11 groups of 10 keys"] = {"budgets": tuple(i - i % 10 for i in range(KEYS))}
    namespace = f"hfs-bench-{uuid.uuid4().hex[:8]}"
    link = RedisLink(common.REDIS_URL, shown_url=common.REDIS_URL, namespace=namespace)
    states = {name: (LocalPoolState.build(spec, keys, MODEL, ROOMY, **options),
                     RedisPoolState(LocalPoolState.build(spec, keys, MODEL, ROOMY, **options), link, "groq", keys))
              for name, options in variants.items()}
    common.quiet()
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in variants}
    try:
        for local, shared in states.values():  # warm up: every key proven, every client made
            loop(local, local_calls)
            loop(shared, redis_calls)
        for _ in range(rounds):
            for name, (local, shared) in states.items():
                best[name][0] = min(best[name][0], loop(local, local_calls))
                best[name][1] = min(best[name][1], loop(shared, redis_calls))
    finally:
        for local, shared in states.values():
            shared.close()
            local.close()
        link.close()
        common.drop_namespace(namespace)
    common.print_table(["variant", "in process, us per call", "through Redis, us per call"],
                       [[name, f"{local:.1f}", f"{shared:.1f}"] for name, (local, shared) in best.items()])
    common.save_json(args.json, {"benchmark": "state_loop", **facts, "settings": settings,
                                 "results": {name: {"local_us": round(v[0], 2), "redis_us": round(v[1], 2)}
                                             for name, v in best.items()}})


if __name__ == "__main__":
    main()
