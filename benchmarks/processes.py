"""Three processes sharing 8 keys, no shared state: 3 x 8 workers, 60 seconds.

Run with ``uv run python benchmarks/processes.py`` (``--quick``: a 30 s run; the keys'
capacity, 8 x 30, is the same, since a fresh window lets each key take its 30 at once).

One stand-in process enforces 30 requests per 60 s per key (429 with Retry-After, 50 ms
answers). For each side in turn (fresh keys, stand-in reset) this script starts three child
processes of itself; each builds its own keycycle wrapper or its own registry over the same 8
keys, so no process knows what the others send, and runs 8 worker threads calling
``model.response(messages=[Message(role="user", content="hi")])`` from a common start time for
60 s, wait budget 10 s a call, one model shared by the process's threads. keycycle as it comes:
``MultiProviderWrapper(..., track_usage=False).get_model(base_url=...)`` with the SDK's retries on.
A ``NoAvailableKeyError`` makes that worker sleep 1 s and go on.

Figures: successes (requests the stand-in answered 200 within the 60 s, all processes),
utilization = successes / (8 x 30), upstream 429s, the longest call of any process against the
10 s budget, refusals and other errors. Goal for the registry: utilization >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import _common as common

BUDGET = 10.0
KEYS_ENV = "HFS_BENCH_KEYS"


def child(args: argparse.Namespace) -> None:
    """One process: build this side over the keys, wait for the start time, run the workers."""
    keys = os.environ[KEYS_ENV].split(",")
    common.quiet()
    if args.child == "keycycle":
        wrapper = common.keycycle_wrapper(keys)
        model = common.keycycle_model(wrapper, args.url, timeout=BUDGET)
        close = wrapper.manager.stop
    else:
        made = common.registry(keys, args.url)
        model = made.get_model("groq", common.GROQ_MODEL, timeout=BUDGET)
        close = made.shutdown
    time.sleep(max(0.0, args.start_at - time.time()))
    deadline = time.monotonic() + (args.start_at + args.duration - time.time())
    stats = common.run_workers([model] * args.workers, deadline, pause=1.0)
    close()
    print(json.dumps(stats.to_dict()), flush=True)


def run_side(side: str, standin: common.StandInProcess, args: argparse.Namespace) -> dict[str, Any]:
    """Run the three processes of one side; returns the side's figures."""
    standin.reset()
    keys = common.groq_keys(args.keys)
    start_at = time.time() + 8.0  # time for the children to import agno and build their side
    env = {**os.environ, KEYS_ENV: ",".join(keys)}
    script = os.path.abspath(__file__)
    procs = [subprocess.Popen([sys.executable, script, "--child", side, "--url", standin.url,
                               "--start-at", str(start_at), "--duration", str(args.duration),
                               "--workers", str(args.workers)],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=str(common.ORIGINAL_CWD))
             for _ in range(args.processes)]
    at_deadline: dict[str, Any] = {}
    timer = threading.Timer(start_at + args.duration - time.time(), lambda: at_deadline.update(standin.stats()))
    timer.start()
    outputs = [proc.communicate()[0] for proc in procs]
    timer.join()
    final = standin.stats()
    per_process = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    errors: dict[str, int] = {}
    for p in per_process:
        for kind, n in p["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    capacity = args.keys * 30
    return {
        "successes": at_deadline["accepted"],
        "utilization": at_deadline["accepted"] / capacity,
        "upstream_429": final["rate_limited"],
        "worst_call_s": max(p["worst_call_s"] for p in per_process),
        "no_key_errors": sum(p["no_key"] for p in per_process),
        "other_errors": errors,
        "answered_after_deadline": final["accepted"] - at_deadline["accepted"],
        "successes_by_process": [p["ok_in_time"] for p in per_process],
        "per_process": per_process,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 30 s run instead of 60 s")
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--workers", type=int, default=8, help="worker threads per process")
    parser.add_argument("--only", choices=("keycycle", "registry"), help="run one side only")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", choices=("keycycle", "registry"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.duration = 30.0 if args.quick else 60.0
    settings = {"keys": args.keys, "rpm": 30, "window_s": 60, "processes": args.processes,
                "workers_per_process": args.workers, "duration_s": args.duration, "budget_s": BUDGET,
                "standin_latency_s": 0.05}
    facts = common.print_header("Processes: 3 processes x 8 workers over the same 8 keys, no shared state",
                                settings)
    results: dict[str, Any] = {}
    with common.StandInProcess(rpm=30, window=60.0, latency=0.05) as standin:
        for side in ("keycycle", "registry"):
            if args.only in (None, side):
                results[side] = run_side(side, standin, args)
                print(f"{side}: { {k: v for k, v in results[side].items() if k != 'per_process'} }", flush=True)
    print()
    common.print_load_results(results, args.keys * 30, BUDGET)
    if "registry" in results:
        met = results["registry"]["utilization"] >= 0.9
        print(f"registry goal utilization >= 0.9: {'met' if met else 'MISSED'}")
    common.save_json(args.json, {"benchmark": "processes", **facts, "settings": settings, "results": results})


if __name__ == "__main__":
    main()
