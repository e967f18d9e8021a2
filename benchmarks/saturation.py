"""A saturated pool in one process: 8 keys x 30 requests a minute, 16 workers, 60 seconds.

Run with ``uv run python benchmarks/saturation.py`` (``--quick``: a 30 s run; the keys'
capacity, 8 x 30, is the same, since a fresh window lets each key take its 30 at once).

The stand-in runs as its own process and enforces the same limit as keycycle's table for
``openai/gpt-oss-120b`` (30 requests per 60 s per key, sliding window, 429 with Retry-After),
answering in 50 ms. Each side gets fresh keys and a reset stand-in, then 16 threads call
Agno's ``model.response(messages=[Message(role="user", content="hi")])`` in a loop for 60 s,
with a wait budget of 10 s a call (``timeout=10``, the default of both):

  keycycle as it comes: ``MultiProviderWrapper("groq", keys, model, model_class=Groq,
      track_usage=False).get_model(base_url=...)``, the SDK's retries on (its default); one
      model shared by the 16 threads (``--keycycle-models per-worker`` gives each its own);
  the registry: ``registry.get_model("groq", model)``, one model shared by the 16 threads.

A call that raises ``NoAvailableKeyError`` is a clear refusal: that worker sleeps 1 s and goes
on. Figures: successes (requests the stand-in answered 200 within the 60 s), utilization =
successes / (8 x 30), upstream 429s (the stand-in's count over the whole run), the longest
call against the 10 s budget, refusals and other errors that reached the caller.
Goals for the registry: utilization >= 0.99, upstream 429s <= 2, no call longer than 11 s.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

import _common as common

BUDGET = 10.0


def run_side(side: str, standin: common.StandInProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Run one side against a reset stand-in; returns its figures."""
    keys = common.groq_keys(args.keys)
    closers = []
    if side == "keycycle":
        wrapper = common.keycycle_wrapper(keys)
        if args.keycycle_models == "shared":
            models = [common.keycycle_model(wrapper, standin.url, timeout=BUDGET)] * args.workers
        else:
            models = [common.keycycle_model(wrapper, standin.url, timeout=BUDGET) for _ in range(args.workers)]
        closers.append(wrapper.manager.stop)
    else:
        made = common.registry(keys, standin.url)
        models = [made.get_model("groq", common.GROQ_MODEL, timeout=BUDGET)] * args.workers
        closers.append(made.shutdown)
    standin.reset()
    start = time.monotonic()
    deadline = start + args.duration
    at_deadline: dict[str, Any] = {}
    timer = threading.Timer(args.duration, lambda: at_deadline.update(standin.stats()))
    timer.start()
    stats = common.run_workers(models, deadline, pause=1.0)
    timer.join()
    ended = time.monotonic() - start
    for close in closers:
        close()
    final = standin.stats()
    capacity = args.keys * args.rpm
    if args.plot:
        args.logs[side] = standin.log()
        args.calls[side] = [(begun - start, took, kind) for begun, took, kind in stats.timeline]
    return {
        "successes": at_deadline["accepted"],
        "utilization": at_deadline["accepted"] / capacity,
        "upstream_429": final["rate_limited"],
        "worst_call_s": stats.worst_call,
        "budget_s": BUDGET,
        "no_key_errors": stats.no_key,
        "worst_no_key_s": stats.worst_no_key,
        "other_errors": stats.errors,
        "calls": stats.calls,
        "answered_after_deadline": final["accepted"] - at_deadline["accepted"],
        "last_worker_done_s": round(ended, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 30 s run instead of 60 s")
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--keycycle-models", choices=("shared", "per-worker"), default="shared")
    parser.add_argument("--only", choices=("keycycle", "registry"), help="run one side only")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--plot", metavar="PATH", help="also draw requests per key over time (PNG; needs the "
                        "bench group: uv run --group bench ...)")
    args = parser.parse_args()
    args.logs, args.calls = {}, {}
    args.duration, args.rpm, args.window = (30.0 if args.quick else 60.0), 30, 60.0
    settings = {"keys": args.keys, "rpm": args.rpm, "window_s": args.window, "workers": args.workers,
                "duration_s": args.duration, "budget_s": BUDGET, "standin_latency_s": 0.05,
                "keycycle_models": args.keycycle_models}
    facts = common.print_header("Saturation: one process, 8 keys x 30 RPM, 16 workers", settings)
    common.quiet()
    results: dict[str, Any] = {}
    with common.StandInProcess(rpm=args.rpm, window=args.window, latency=0.05) as standin:
        for side in ("keycycle", "registry"):
            if args.only in (None, side):
                results[side] = run_side(side, standin, args)
                print(f"{side}: {results[side]}", flush=True)
    print()
    common.print_load_results(results, args.keys * args.rpm, BUDGET)
    if "registry" in results:
        r = results["registry"]
        checks = {"utilization >= 0.99": r["utilization"] >= 0.99, "upstream 429s <= 2": r["upstream_429"] <= 2,
                  f"longest call <= {BUDGET + 1:g} s": r["worst_call_s"] <= BUDGET + 1}
        print("registry goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in checks.items()))
    common.save_json(args.json, {"benchmark": "saturation", **facts, "settings": settings, "results": results})
    if args.plot:
        import _plots

        _plots.load_run(args.logs, args.calls, common.ORIGINAL_CWD / args.plot, limit=args.rpm, budget=BUDGET,
                        duration=args.duration,
                        caption=f"benchmarks/saturation.py, {facts['date']}, {facts['machine']}: "
                        f"{args.keys} keys x {args.rpm} a minute, {args.workers} threads, one process")


if __name__ == "__main__":
    main()
