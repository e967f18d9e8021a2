"""A new model per call: what `get_model` and a new model's first call cost, sync and async.

Run with ``uv run python benchmarks/new_model.py`` (``--quick`` for fewer rounds).

HFS builds an Agent, and so calls `get_model`, per role per triad: the model it calls is new. In
one process, against the stand-in on 127.0.0.1 (no latency, no request limit), 110 Groq keys,
usage tracking on (SQLite), after each key's client is built. Each round makes, one after the
other and each timed on its own:

  direct:   a call on Agno's ``Groq`` on one key, its SDK client reused (the baseline);
  get_model: ``registry.get_model("groq", model)``;
  first:    the first call of that new model;
  second:   its second call;
  reused:   a call on a model from `get_model` made before the rounds and called many times.

so a new model is timed between calls, as an application meets it (caches cold from the call
before), not in a tight loop. The same rounds then run in an event loop with ``aresponse``.
Figures: medians over the rounds, in microseconds, and (get_model + first) / direct, the cost
of a new model's first call against a reused direct client. Goal (issue 25, cold path (b)):
<= 1.15, sync and async; and first == reused to within the noise.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common as common

GOAL = 1.15
PARTS = ("direct", "get_model", "first", "second", "reused")


def medians(samples: dict[str, list[float]]) -> dict[str, float]:
    """Each part's median, in microseconds."""
    return {part: statistics.median(values) * 1e6 for part, values in samples.items()}


def sync_rounds(made: Any, direct: Any, reused: Any, rounds: int) -> dict[str, float]:
    """The rounds with ``response``."""
    samples: dict[str, list[float]] = {part: [] for part in PARTS}
    clock = time.perf_counter

    def timed(part: str, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        start = clock()
        result = call(*args, **kwargs)
        samples[part].append(clock() - start)
        return result

    for _ in range(rounds):
        timed("direct", direct.response, messages=common.messages())
        model = timed("get_model", made.get_model, "groq", common.GROQ_MODEL)
        timed("first", model.response, messages=common.messages())
        timed("second", model.response, messages=common.messages())
        timed("reused", reused.response, messages=common.messages())
    return medians(samples)


async def async_rounds(made: Any, direct: Any, reused: Any, rounds: int, warmup: int) -> dict[str, float]:
    """The rounds with ``aresponse``, in one event loop (each key's async client built first)."""
    samples: dict[str, list[float]] = {part: [] for part in PARTS}
    clock = time.perf_counter

    async def timed(part: str, call: Callable[..., Awaitable[Any]]) -> None:
        messages = common.messages()
        start = clock()
        await call(messages=messages)
        samples[part].append(clock() - start)

    for _ in range(warmup):
        await reused.aresponse(messages=common.messages())
    for _ in range(20):
        await direct.aresponse(messages=common.messages())
    for _ in range(rounds):
        await timed("direct", direct.aresponse)
        start = clock()
        model = made.get_model("groq", common.GROQ_MODEL)
        samples["get_model"].append(clock() - start)
        await timed("first", model.aresponse)
        await timed("second", model.aresponse)
        await timed("reused", reused.aresponse)
    return medians(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (figures less steady)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    keys, rounds = 110, 150 if args.quick else 500
    warmup = 3 * keys
    settings = {"keys": keys, "rounds": rounds, "warmup_calls": warmup, "standin_latency_s": 0.0}
    facts = common.print_header("A new model per call: get_model and its first call", settings)
    common.quiet()

    from agno.models.groq import Groq

    results: dict[str, dict[str, float]] = {}
    with common.StandInProcess(latency=0.0) as standin:
        group = common.groq_keys(keys)
        for mode in ("sync", "async"):
            made = common.registry(group, standin.url, track_usage=True)
            direct = Groq(id=common.GROQ_MODEL, api_key=group[0], base_url=standin.url)
            reused = made.get_model("groq", common.GROQ_MODEL)
            try:
                if mode == "sync":
                    for _ in range(warmup):
                        reused.response(messages=common.messages())
                    for _ in range(20):
                        direct.response(messages=common.messages())
                    results[mode] = sync_rounds(made, direct, reused, rounds)
                else:
                    results[mode] = asyncio.run(async_rounds(made, direct, reused, rounds, warmup))
            finally:
                made.shutdown()
    rows = []
    for mode, figures in results.items():
        ratio = (figures["get_model"] + figures["first"]) / figures["direct"]
        figures["new_vs_direct"] = ratio
        figures["reused_vs_direct"] = figures["reused"] / figures["direct"]
        rows.append([mode, *(f"{figures[part]:.1f}" for part in PARTS), f"{ratio:.3f}",
                     f"{figures['reused_vs_direct']:.3f}"])
    common.print_table(["mode", "direct us", "get_model us", "first call us", "second call us", "reused us",
                        "(get_model + first) / direct", "reused / direct"], rows)
    for mode, figures in results.items():
        ratio = figures["new_vs_direct"]
        print(f"goal ({mode}) (get_model + first call) / direct <= {GOAL}: "
              f"{'met' if ratio <= GOAL else 'MISSED'} ({ratio:.3f}); first / reused: "
              f"{figures['first'] / figures['reused']:.3f}")
    common.save_json(args.json, {"benchmark": "new_model", **facts, "settings": settings, "results": results})


if __name__ == "__main__":
    main()
