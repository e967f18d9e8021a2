"""Several processes drawing on the same 8 keys: each on its own state, or all sharing one pool
through Redis. 8 worker threads a process, 60 seconds a run.

Run with ``uv run python benchmarks/processes.py`` (``--quick``: 30 s runs; the keys' capacity,
8 x 30, is the same, since a fresh window lets each key take its 30 at once).

One stand-in process enforces 30 requests per 60 s per key (429 with Retry-After, 50 ms answers).
For each side and process count in turn (fresh keys, stand-in reset) this script starts that many
child processes of itself; each builds its own registry over the same 8 keys and runs 8 worker
threads calling ``model.response(messages=[Message(role="user", content="hi")])`` from a common
start time, wait budget 10 s a call, one model shared by the process's threads. A
``NoAvailableKeyError`` makes that worker sleep 1 s and go on. Sides:

- ``in-process``: each process keeps its pool's state to itself (no ``HFS_STATE_URL``);
- ``redis``: every process's pool is on the Redis at 127.0.0.1:6379 (a namespace per run,
  deleted afterwards);
- ``keycycle`` (``--sides keycycle,...``): keycycle as it comes, ``MultiProviderWrapper(...,
  track_usage=False).get_model(base_url=...)`` with the SDK's retries on.

``--outage AT:SECONDS`` runs the Redis side against a Redis server of its own (``redis-server`` on
a free port, keeping nothing on disk), kills it (SIGKILL) AT seconds into the run and starts it
again SECONDS later: calls go on from each process's own state meanwhile, and the figures show
what the outage cost. Use a run long enough for the windows to reopen during the outage, e.g.
``--duration 130 --outage 55:10``.

Figures: successes (requests the stand-in answered 200 within the run, all processes),
utilization = successes / capacity (8 x 30 per minute begun), upstream 429s, the longest call of
any process against the 10 s budget, refusals and other errors. Goals with Redis: utilization
>= 0.98, upstream 429s <= 2, no call longer than the budget + 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import _common as common

BUDGET = 10.0
KEYS_ENV = "HFS_BENCH_KEYS"
RPM = 30
SIDES = ("keycycle", "in-process", "redis")


def child(args: argparse.Namespace) -> None:
    """One process: build this side over the keys, wait for the start time, run the workers."""
    keys = os.environ[KEYS_ENV].split(",")
    common.quiet()
    if args.child == "keycycle":
        wrapper = common.keycycle_wrapper(keys)
        model = common.keycycle_model(wrapper, args.url, timeout=BUDGET)
        close = wrapper.manager.stop
    else:
        made = common.registry(keys, args.url, state_url=args.state_url, namespace=args.namespace)
        model = made.get_model("groq", common.GROQ_MODEL, timeout=BUDGET)
        close = made.shutdown
    time.sleep(max(0.0, args.start_at - time.time()))
    deadline = time.monotonic() + (args.start_at + args.duration - time.time())
    stats = common.run_workers([model] * args.workers, deadline, pause=1.0)
    close()
    print(json.dumps(stats.to_dict()), flush=True)


class RedisServer:
    """A ``redis-server`` of this benchmark's own on a free port, that it can kill and restart."""

    def __init__(self) -> None:
        found = shutil.which("redis-server")
        if found is None:
            raise SystemExit("--outage needs redis-server on the PATH (apt-get install redis-server)")
        self.binary = found
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        self.kill()


@contextlib.contextmanager
def outage_server(spec: str | None) -> Iterator[tuple[RedisServer | None, float, float]]:
    """The private Redis of an outage run (None otherwise), when to kill it and for how long."""
    if spec is None:
        yield None, 0.0, 0.0
        return
    at, _, seconds = spec.partition(":")
    server = RedisServer()
    try:
        yield server, float(at), float(seconds)
    finally:
        server.close()


def run_side(side: str, processes: int, standin: common.StandInProcess, args: argparse.Namespace,
             outage: tuple[RedisServer | None, float, float]) -> dict[str, Any]:
    """Run the processes of one side; returns the side's figures."""
    standin.reset()
    keys = common.groq_keys(args.keys)
    start_at = time.time() + 6.0 + 1.5 * processes  # time for the children to import agno and build their side
    server, kill_at, down_for = outage
    state_url = (server.url if server else common.REDIS_URL) if side == "redis" else None
    namespace = f"hfs-bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, KEYS_ENV: ",".join(keys)}
    script = os.path.abspath(__file__)
    command = [sys.executable, script, "--child", "registry" if side != "keycycle" else "keycycle",
               "--url", standin.url, "--start-at", str(start_at), "--duration", str(args.duration),
               "--workers", str(args.workers), "--namespace", namespace]
    if state_url:
        command += ["--state-url", state_url]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=str(common.ORIGINAL_CWD))
             for _ in range(processes)]
    at_deadline: dict[str, Any] = {}
    timers = [threading.Timer(start_at + args.duration - time.time(), lambda: at_deadline.update(standin.stats()))]
    if server is not None and side == "redis":
        timers += [threading.Timer(start_at + kill_at - time.time(), server.kill),
                   threading.Timer(start_at + kill_at + down_for - time.time(), server.start)]
    for timer in timers:
        timer.start()
    outputs = [proc.communicate()[0] for proc in procs]
    for timer in timers:
        timer.join()
    final = standin.stats()
    log = standin.log()
    if state_url == common.REDIS_URL:
        common.drop_namespace(namespace)
    per_process = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    errors: dict[str, int] = {}
    for p in per_process:
        for kind, n in p["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    capacity = args.keys * RPM * math.ceil(args.duration / 60.0)
    figures: dict[str, Any] = {
        "processes": processes,
        "successes": at_deadline["accepted"],
        "capacity": capacity,
        "utilization": at_deadline["accepted"] / capacity,
        "upstream_429": final["rate_limited"],
        "worst_call_s": max(p["worst_call_s"] for p in per_process),
        "no_key_errors": sum(p["no_key"] for p in per_process),
        "other_errors": errors,
        "answered_after_deadline": final["accepted"] - at_deadline["accepted"],
        "successes_by_process": [p["ok_in_time"] for p in per_process],
        "per_process": per_process,
    }
    if server is not None and side == "redis":
        figures["outage"] = outage_figures(log, min((r["t"] for r in log), default=0.0), kill_at, down_for)
    return figures


def outage_figures(log: list[dict[str, Any]], first: float, kill_at: float, down_for: float) -> dict[str, Any]:
    """Answers and 429s before, during and after the outage, by the stand-in's log (`first`: the
    run's first request, on the log's clock)."""
    phases = {"before": (-math.inf, kill_at), "during": (kill_at, kill_at + down_for),
              "after": (kill_at + down_for, math.inf)}
    found: dict[str, Any] = {}
    for name, (lo, hi) in phases.items():
        chosen = [r for r in log if lo <= r["t"] - first < hi]
        found[name] = {"answered": sum(r["status"] == 200 for r in chosen),
                       "rate_limited": sum(r["status"] == 429 for r in chosen)}
    found["429_at_s"] = [round(r["t"] - first, 2) for r in log if r["status"] == 429]
    found["log"] = [(round(r["t"] - first, 3), r["key"], r["status"]) for r in log]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 s runs instead of 60 s")
    parser.add_argument("--duration", type=float, default=None, help="seconds a run lasts (default 60)")
    parser.add_argument("--keys", type=int, default=8)
    parser.add_argument("--processes", default="3,6", help="process counts to run, e.g. 3,6")
    parser.add_argument("--workers", type=int, default=8, help="worker threads per process")
    parser.add_argument("--sides", default="in-process,redis", help=f"which of {', '.join(SIDES)} to run")
    parser.add_argument("--outage", metavar="AT:SECONDS", help="kill a private Redis AT s into the run for SECONDS")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--child", choices=("keycycle", "registry"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--state-url", help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    args.duration = args.duration or (30.0 if args.quick else 60.0)
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if unknown := set(sides) - set(SIDES):
        parser.error(f"unknown side {sorted(unknown)[0]!r}; choose from {', '.join(SIDES)}")
    if args.outage:
        sides = ["redis"]
    counts = [int(n) for n in args.processes.split(",")]
    settings = {"keys": args.keys, "rpm": RPM, "window_s": 60, "processes": counts, "workers_per_process": args.workers,
                "duration_s": args.duration, "budget_s": BUDGET, "standin_latency_s": 0.05, "sides": sides,
                "outage": args.outage}
    facts = common.print_header(f"Processes: {'/'.join(map(str, counts))} processes x {args.workers} workers over the "
                                f"same {args.keys} keys", settings)
    results: dict[str, Any] = {}
    with common.StandInProcess(rpm=RPM, window=60.0, latency=0.05) as standin, outage_server(args.outage) as outage:
        for processes in counts:
            for side in sides:
                name = f"{side}, {processes} processes"
                results[name] = run_side(side, processes, standin, args, outage)
                shown = {k: v for k, v in results[name].items() if k != "per_process"}
                print(f"{name}: {shown}", flush=True)
    print()
    rows = []
    for name, r in results.items():
        errors = ", ".join(f"{k} x{v}" for k, v in r["other_errors"].items()) or "none"
        rows.append([name, f"{r['successes']} / {r['capacity']}", f"{r['utilization']:.3f}", r["upstream_429"],
                     f"{r['worst_call_s']:.1f} s", r["no_key_errors"], errors])
    common.print_table(["side", "successes", "utilization", "upstream 429s", "longest call (budget 10 s)",
                        "NoAvailableKeyError", "other errors reaching the caller"], rows)
    for name, r in results.items():
        if "outage" in r:
            phases = ", ".join(f"{phase}: {v['answered']} answered, {v['rate_limited']} x 429"
                               for phase, v in r["outage"].items() if isinstance(v, dict))
            print(f"{name}, Redis killed at {args.outage.split(':')[0]} s for {args.outage.split(':')[1]} s: {phases}")
        elif name.startswith("redis"):
            met = r["utilization"] >= 0.98 and r["upstream_429"] <= 2 and r["worst_call_s"] <= BUDGET + 1
            print(f"{name}: goals (utilization >= 0.98, 429s <= 2, longest <= {BUDGET + 1:g} s) "
                  f"{'met' if met else 'MISSED'}")
    common.save_json(args.json, {"benchmark": "processes", **facts, "settings": settings, "results": results})


if __name__ == "__main__":
    main()
