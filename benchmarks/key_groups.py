"""Key groups: six Gemini keys in two projects, with ``key_groups`` declared and without.

Run with ``uv run python benchmarks/key_groups.py`` (``--quick``: 20 s instead of 90 s).

Google counts Gemini's limits per project, not per key (ai.google.dev/gemini-api/docs/rate-limits).
Two stand-ins run as their own processes, one per side, each holding two projects of three keys
(``StandIn.set_group_limit``: 4 requests a minute per project, refused with Gemini's recorded
``RESOURCE_EXHAUSTED`` quota reply and its ``retryDelay``) and answering in 200 ms. Each side is a
registry with only the Gemini plugin, the six keys and its stand-in as base URL, the model's limit
set to the project's real budget (``[providers.gemini.models."gemini-2.5-flash"] rpm = 4``); one
side also declares ``key_groups = [["1-3"], ["4-6"]]``. Both sides run at once, 16 threads each,
calling Agno's ``model.response(messages=[Message(role="user", content="hi")])`` in a loop for the
run's length with a 5 s wait budget; a caller refused by the pool (``NoAvailableKeyError``) sleeps
1 s and calls again.

Figures per side: calls, calls answered against the projects' real budget over the run (4 a
minute each, a sliding minute: 2 x 4 x ceil(run / 60 s)), upstream 429s (the stand-in's count),
the most requests a project had accepted within any 60 s (the stand-in's request log), refusals by
the pool, other errors reaching the caller, and the p99 and longest of the calls' durations (with
a 200 ms answer, the rest is waiting). Goals with groups: upstream 429s <= 1 and every call inside
the projects' budget answered.
"""

from __future__ import annotations

import argparse
import math
import secrets
import statistics
import threading
import time
from typing import Any

import _common as common

MODEL = "gemini-2.5-flash"
PER_MINUTE = 4
PROJECTS = 2
KEYS_PER_PROJECT = 3
WORKERS = 16
BUDGET = 5.0
PAUSE = 1.0
LATENCY = 0.2
GROUPS = [["1-3"], ["4-6"]]


def gemini_keys(n: int) -> list[str]:
    """`n` random keys with the shape of Gemini keys (39 characters starting with AIza)."""
    alphabet = common.ALNUM + "_-"
    return ["AIza" + "".join(secrets.choice(alphabet) for _ in range(35)) for _ in range(n)]


def side(url: str, keys: list[str], grouped: bool) -> Any:
    """A registry with the Gemini plugin over `keys`, the model held to a project's budget."""
    from hfs_core import Registry
    from hfs_core.config import Config, parse_config

    table: dict[str, Any] = {"base_url": url, "expected_keys": len(keys), "default_model": MODEL,
                             "models": {MODEL: {"rpm": PER_MINUTE, "rpd": 10_000}}}
    if grouped:
        table["key_groups"] = GROUPS
    config: Config = parse_config({"track_usage": False, "providers": {"gemini": table}}, common.SCRATCH / "hfs.toml")
    env = {"NUM_GEMINI": str(len(keys)), **{f"GEMINI_API_KEY_{i}": k for i, k in enumerate(keys, 1)}}
    registry = Registry(env=env, config=config, plugins=["gemini"])
    common.quiet()
    return registry


def busiest_minute(log: list[dict[str, Any]], labels: set[str]) -> int:
    """The most requests among `labels` (key suffixes) answered 200 within any 60 s of the log."""
    times = sorted(entry["t"] for entry in log if entry["key"] in labels and entry["status"] == 200)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 60:
            first += 1
        most = max(most, last - first + 1)
    return most


def figures(stats: common.WorkerStats, standin: common.StandInProcess, keys: list[str], run: float) -> dict[str, Any]:
    """One side's figures, as the docstring lists them."""
    counts = standin.stats()
    log = standin.log()
    projects = [keys[i:i + KEYS_PER_PROJECT] for i in range(0, len(keys), KEYS_PER_PROJECT)]
    durations = sorted(duration for _, duration, _ in stats.timeline)
    return {
        "calls": stats.calls,
        "answered": stats.ok,
        "budget": PROJECTS * PER_MINUTE * math.ceil(run / 60),
        "upstream_429": counts["rate_limited"],
        "busiest_minute_per_project": [busiest_minute(log, {k[-4:] for k in p}) for p in projects],
        "no_key": stats.no_key,
        "errors": dict(stats.errors),
        "call_p99_s": round(statistics.quantiles(durations, n=100)[98], 3) if len(durations) > 1 else None,
        "worst_call_s": round(stats.worst_call, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s instead of 90 s")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    run = 20.0 if args.quick else 90.0
    settings = {"projects": PROJECTS, "keys_per_project": KEYS_PER_PROJECT, "rpm_per_project": PER_MINUTE,
                "workers_per_side": WORKERS, "run_s": run, "budget_s": BUDGET, "pause_after_refusal_s": PAUSE,
                "standin_latency_s": LATENCY, "model": MODEL}
    facts = common.print_header("Key groups: six Gemini keys in two projects, declared vs not", settings)
    common.quiet()
    sides = {"with key_groups": True, "without": False}
    results: dict[str, dict[str, Any]] = {}
    standins = {name: common.StandInProcess(latency=LATENCY) for name in sides}
    try:
        keys = {name: gemini_keys(PROJECTS * KEYS_PER_PROJECT) for name in sides}
        registries = {name: side(standins[name].url, keys[name], grouped) for name, grouped in sides.items()}
        for name in sides:
            standins[name].control({"reset": True, "groups": [
                {"keys": keys[name][i:i + KEYS_PER_PROJECT], "rpm": PER_MINUTE}
                for i in range(0, len(keys[name]), KEYS_PER_PROJECT)]})
        models = {name: registries[name].get_model("gemini", timeout=BUDGET) for name in sides}
        deadline = time.monotonic() + run
        stats: dict[str, common.WorkerStats] = {}

        def drive(name: str) -> None:
            stats[name] = common.run_workers([models[name]] * WORKERS, deadline, PAUSE)

        threads = [threading.Thread(target=drive, args=(name,)) for name in sides]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for name in sides:
            results[name] = figures(stats[name], standins[name], keys[name], run)
            registries[name].shutdown()
    finally:
        for standin in standins.values():
            standin.close()
    rows = []
    for name, r in results.items():
        errors = ", ".join(f"{k} x{v}" for k, v in r["errors"].items()) or "none"
        rows.append([name, r["calls"], f"{r['answered']} / {r['budget']}", r["upstream_429"],
                     " / ".join(map(str, r["busiest_minute_per_project"])), r["no_key"], errors,
                     f"{r['call_p99_s']:.2f} s", f"{r['worst_call_s']:.2f} s"])
    common.print_table(["side", "calls", "answered / the projects' budget", "upstream 429s",
                        "busiest minute per project (limit 4)", "refused by the pool", "other errors",
                        "call p99", "longest call"], rows)
    grouped = results["with key_groups"]
    goals = {"upstream 429s <= 1 with groups": grouped["upstream_429"] <= 1,
             "every call inside the projects' budget answered": grouped["answered"] >= grouped["budget"]}
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in goals.items()))
    common.save_json(args.json, {"benchmark": "key_groups", **facts, "settings": settings, "results": results})


if __name__ == "__main__":
    main()
