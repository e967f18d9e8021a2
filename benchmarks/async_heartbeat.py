"""Does waiting for a key block the event loop? 24 concurrent ``aresponse`` calls on an exhausted
pool while a 10 ms heartbeat task runs.

Run with ``uv run python benchmarks/async_heartbeat.py`` (``--quick`` is the same run: it takes
a few seconds).

Each side gets 4 fresh keys whose minute windows are full (30 calls each, replayed into the
windows, the registry's through its pool state's ``load_history``, with timestamps such that
slots free one by one between 0.5 s and 2.7 s from the start) and makes one warm-up call
first, before the windows are filled (so both sides have imported and connected once).
Then, in one event loop, a heartbeat task sleeps 10 ms in a loop and records how late each
wake-up is, while 24 tasks each await Agno's
``model.aresponse(messages=[Message(role="user", content="hi")])`` on one shared model (wait
budget 10 s). The stand-in runs as its own process, without limits, answering in 50 ms.

  keycycle as it comes: ``MultiProviderWrapper(..., track_usage=False).get_model(base_url=...)``;
      its ``ainvoke`` looks for a key with ``time.sleep`` back-off, and builds a new async SDK
      client on every call;
  the registry: ``registry.get_model("groq", model)``; it waits on a future that the end of a
      call or the time the next key frees resolves.

Each side runs twice, each time in a process of its own that has imported everything and built
its model but made no call yet:

  warm: one call first, in the same event loop, before the windows are filled: what a running
      application sees;
  cold: no call first: the 24 calls are the first the process makes, so the loop also meets
      the first SDK client of the process (its HTTP client, TLS context and the HTTP stack's
      first imports), as an application's first event loop does.

Two more cases, for the registry only, are the shape of an application that builds Agents from
async code: the process has built its registry and the pool (so it has imported everything) but
made no call and holds no model; in a fresh event loop, 24 tasks each obtain a model with
``await asyncio.to_thread(registry.get_model, "groq", model)`` and make their call at once, the
windows empty (no waiting for a key: only the cold loop's own costs):

  each: every task gets a model of its own;
  shared: one task's ``get_model`` gives the model that the 24 calls share.

Figures: the worst gap between heartbeats (ideal: 10 ms), the most CPU time the loop's thread
spent between two heartbeats (the part of a gap the loop was working, not waiting for a CPU or
the GIL: on a loaded machine the gaps grow, this does not), the 99th percentile, how many gaps
exceeded 50 ms, the number of heartbeats, how long the 24 calls took, and their outcomes.
Goals for the registry: worst gap <= 50 ms warm, <= 30 ms cold (and in each and shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _common as common

CALLS = 24
BEAT = 0.010
GOAL = 0.050
COLD_GOAL = 0.030
CASES = ("warm", "cold", "each", "shared")
NEW_MODEL_CASES = ("each", "shared")
SIDES = ("keycycle", "registry")


def history(suffixes: list[str], model_id: str, now: float) -> list[tuple[str, str, float, int]]:
    """30 calls per key, the oldest leaving its minute window between 0.5 s and 2.7 s from now."""
    return [(suffix, model_id, now - 60 + 0.5 + 0.25 * i + 0.05 * j, 10)
            for i, suffix in enumerate(suffixes) for j in range(30)]


async def measure(model: Any | Callable[[], Awaitable[Any]]) -> dict[str, Any]:
    """Run the heartbeat and the 24 calls (on `model`, or each on the model it gives); returns the gaps
    and outcomes."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    busy: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            before, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(BEAT)
            gaps.append(loop.time() - before)
            busy.append(time.thread_time() - cpu)

    async def one() -> str:
        try:
            called = await model() if callable(model) else model
            await called.aresponse(messages=common.messages())
            return "ok"
        except Exception as exc:
            return type(exc).__name__

    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    start = time.monotonic()
    outcomes = await asyncio.gather(*(one() for _ in range(CALLS)))
    elapsed = time.monotonic() - start
    done.set()
    await beat
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome] = counts.get(outcome, 0) + 1
    ordered = sorted(gaps)
    return {
        "worst_gap_ms": ordered[-1] * 1000,
        "p99_gap_ms": ordered[int(len(ordered) * 0.99) - 1] * 1000,
        "median_gap_ms": statistics.median(ordered) * 1000,
        "worst_busy_ms": max(busy) * 1000,
        "gaps_over_50ms": sum(g > GOAL for g in gaps),
        "heartbeats": len(gaps),
        "calls_s": elapsed,
        "outcomes": counts,
        "gaps_ms": [round(g * 1000, 2) for g in gaps],
    }


async def run_side(side: str, url: str, case: str) -> dict[str, Any]:
    """Build one side, warm it up (case "warm"), fill its windows and measure."""
    keys = common.groq_keys(4)
    if side == "keycycle":
        wrapper = common.keycycle_wrapper(keys)
        model = common.keycycle_model(wrapper, url)
        if case == "warm":
            await model.aresponse(messages=common.messages())
        by_suffix = {key.api_key[-8:]: key for key in wrapper.manager.keys}
        for suffix, model_id, stamp, tokens in history(list(by_suffix), common.GROQ_MODEL, time.time()):
            by_suffix[suffix].record_usage(model_id, tokens=tokens, timestamp=stamp)
        try:
            return await measure(model)
        finally:
            wrapper.manager.stop()
    made = common.registry(keys, url)
    if case in NEW_MODEL_CASES:
        made.pool("groq")
        try:
            return await measure(new_models(made, shared=case == "shared"))
        finally:
            made.shutdown()
    model = made.get_model("groq", common.GROQ_MODEL)
    if case == "warm":
        await model.aresponse(messages=common.messages())
    pool = model.pool
    pool.state.load_history(history([pool.suffix(i) for i in range(pool.size)], common.GROQ_MODEL, time.time()))
    try:
        return await measure(model)
    finally:
        made.shutdown()


def new_models(made: Any, *, shared: bool) -> Callable[[], Awaitable[Any]]:
    """What each call awaits for its model: ``get_model`` in a worker thread (once, when `shared`)."""
    first: asyncio.Task[Any] | None = None

    async def get() -> Any:
        nonlocal first
        if not shared:
            return await asyncio.to_thread(made.get_model, "groq", common.GROQ_MODEL)
        if first is None:
            first = asyncio.ensure_future(asyncio.to_thread(made.get_model, "groq", common.GROQ_MODEL))
        return await first

    return get


def in_child(side: str, case: str, url: str) -> dict[str, Any]:
    """Run one side and case in a process of its own (this script with ``--child``); its figures."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", side, case, url],
                          capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short)")
    parser.add_argument("--only", choices=SIDES, help="run one side only")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--plot", metavar="PATH", help="also draw the heartbeat gaps over time (PNG; needs the "
                        "bench group: uv run --group bench ...)")
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "CASE", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, case, url = args.child
        common.quiet()
        print(json.dumps(asyncio.run(run_side(side, url, case))), flush=True)
        return
    settings = {"calls": CALLS, "heartbeat_ms": BEAT * 1000, "keys": 4, "standin_latency_s": 0.05,
                "budget_s": 10.0}
    facts = common.print_header("Async: 24 aresponse calls on an exhausted pool, 10 ms heartbeat", settings)
    labels = {"keycycle": "keycycle as it comes", "registry": "registry"}
    results: dict[str, dict[str, Any]] = {case: {} for case in CASES}
    gaps: dict[str, list[float]] = {}
    with common.StandInProcess(latency=0.05) as standin:
        for case in CASES:
            for side in SIDES:
                if args.only in (None, side) and (side == "registry" or case not in NEW_MODEL_CASES):
                    results[case][side] = in_child(side, case, standin.url)
                    gaps[f"{labels[side]}, {case} loop"] = results[case][side].pop("gaps_ms")
                    print(f"{side} ({case}): {results[case][side]}", flush=True)
    print()
    rows = [[labels[side], case, f"{r['worst_gap_ms']:.0f}", f"{r['worst_busy_ms']:.0f}", f"{r['p99_gap_ms']:.0f}",
             f"{r['median_gap_ms']:.1f}", r["gaps_over_50ms"], r["heartbeats"], f"{r['calls_s']:.2f}",
             ", ".join(f"{k} x{v}" for k, v in r["outcomes"].items())]
            for case in CASES for side, r in results[case].items()]
    common.print_table(["side", "loop", "worst gap ms", "worst busy ms", "p99 gap ms", "median gap ms", "gaps > 50 ms",
                        "heartbeats", "24 calls took s", "outcomes"], rows)
    for case, goal in (("warm", GOAL), ("cold", COLD_GOAL), ("each", COLD_GOAL), ("shared", COLD_GOAL)):
        if "registry" in results[case]:
            worst = results[case]["registry"]["worst_gap_ms"]
            print(f"registry goal, {case} loop, worst gap <= {goal * 1000:.0f} ms: "
                  f"{'met' if worst <= goal * 1000 else 'MISSED'} ({worst:.0f} ms)")
    common.save_json(args.json, {"benchmark": "async_heartbeat", **facts, "settings": settings, "results": results})
    if args.plot:
        import _plots

        _plots.heartbeat_gaps(gaps, common.ORIGINAL_CWD / args.plot, goal_ms=COLD_GOAL * 1000,
                              caption=f"benchmarks/async_heartbeat.py, {facts['date']}, {facts['machine']}: "
                              f"{CALLS} aresponse calls on 4 exhausted keys, each run in its own process")


if __name__ == "__main__":
    main()
