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

Figures: the worst gap between heartbeats (ideal: 10 ms), the 99th percentile, how many gaps
exceeded 50 ms, the number of heartbeats, how long the 24 calls took, and their outcomes.
Goal for the registry: worst gap <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import _common as common

CALLS = 24
BEAT = 0.010
GOAL = 0.050


def history(suffixes: list[str], model_id: str, now: float) -> list[tuple[str, str, float, int]]:
    """30 calls per key, the oldest leaving its minute window between 0.5 s and 2.7 s from now."""
    return [(suffix, model_id, now - 60 + 0.5 + 0.25 * i + 0.05 * j, 10)
            for i, suffix in enumerate(suffixes) for j in range(30)]


async def measure(model: Any) -> dict[str, Any]:
    """Run the heartbeat and the 24 calls; returns the gaps and outcomes."""
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    done = asyncio.Event()

    async def heartbeat() -> None:
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(BEAT)
            gaps.append(loop.time() - before)

    async def one() -> str:
        try:
            await model.aresponse(messages=common.messages())
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
        "gaps_over_50ms": sum(g > GOAL for g in gaps),
        "heartbeats": len(gaps),
        "calls_s": elapsed,
        "outcomes": counts,
    }


async def run_side(side: str, url: str) -> dict[str, Any]:
    """Build one side, warm it up, fill its windows and measure."""
    keys = common.groq_keys(4)
    if side == "keycycle":
        wrapper = common.keycycle_wrapper(keys)
        model = common.keycycle_model(wrapper, url)
        await model.aresponse(messages=common.messages())
        by_suffix = {key.api_key[-8:]: key for key in wrapper.manager.keys}
        for suffix, model_id, stamp, tokens in history(list(by_suffix), common.GROQ_MODEL, time.time()):
            by_suffix[suffix].record_usage(model_id, tokens=tokens, timestamp=stamp)
        try:
            return await measure(model)
        finally:
            wrapper.manager.stop()
    made = common.registry(keys, url)
    model = made.get_model("groq", common.GROQ_MODEL)
    await model.aresponse(messages=common.messages())
    pool = model.pool
    pool.state.load_history(history([pool.suffix(i) for i in range(pool.size)], common.GROQ_MODEL, time.time()))
    try:
        return await measure(model)
    finally:
        made.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="same run (it is short)")
    parser.add_argument("--only", choices=("keycycle", "registry"), help="run one side only")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    settings = {"calls": CALLS, "heartbeat_ms": BEAT * 1000, "keys": 4, "standin_latency_s": 0.05,
                "budget_s": 10.0}
    facts = common.print_header("Async: 24 aresponse calls on an exhausted pool, 10 ms heartbeat", settings)
    common.quiet()
    results: dict[str, Any] = {}
    with common.StandInProcess(latency=0.05) as standin:
        for side in ("keycycle", "registry"):
            if args.only in (None, side):
                results[side] = asyncio.run(run_side(side, standin.url))
                print(f"{side}: {results[side]}", flush=True)
    print()
    labels = {"keycycle": "keycycle as it comes", "registry": "registry"}
    rows = [[labels[side], f"{r['worst_gap_ms']:.0f}", f"{r['p99_gap_ms']:.0f}", f"{r['median_gap_ms']:.1f}",
             r["gaps_over_50ms"], r["heartbeats"], f"{r['calls_s']:.2f}",
             ", ".join(f"{k} x{v}" for k, v in r["outcomes"].items())]
            for side, r in results.items()]
    common.print_table(["side", "worst gap ms", "p99 gap ms", "median gap ms", "gaps > 50 ms", "heartbeats",
                        "24 calls took s", "outcomes"], rows)
    if "registry" in results:
        worst = results["registry"]["worst_gap_ms"]
        print(f"registry goal worst gap <= {GOAL * 1000:.0f} ms: {'met' if worst <= GOAL * 1000 else 'MISSED'} "
              f"({worst:.0f} ms)")
    common.save_json(args.json, {"benchmark": "async_heartbeat", **facts, "settings": settings, "results": results})


if __name__ == "__main__":
    main()
