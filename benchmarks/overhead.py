"""Per-call overhead of a rotating model, with no rate limit in play.

Run with ``uv run python benchmarks/overhead.py`` (``--quick`` for a shorter run,
``--profile`` to print a cProfile of the registry's calls after the figures).

Each call is Agno's ``model.response(messages=[Message(role="user", content="hi")])``: the
call an Agent makes for one turn, without the Agent's own bookkeeping, so the figures show
the model layer alone. The stand-in runs as its own process on 127.0.0.1 with no request
limit and no latency (``--latency`` to change it), so a call costs what the client side costs.
110 Groq keys. Measured side by side in one process:

  (a) a direct Agno ``Groq`` model on one key, its SDK client built once and reused (baseline);
  (b) keycycle as it comes: ``MultiProviderWrapper(...).get_model()``, which drops the SDK
      client on every call, so every call builds a new one;
  (c) the registry's rotating model, usage tracking off (like (b), which keeps usage in memory);
  (d) the registry's rotating model with usage tracking on (rows to a SQLite file), its default;
      each of its rounds ends with the usage store's ``flush()``, so the writer thread's work
      (a batch insert every 0.1 s) is timed in the round whose rows it writes, not in the next
      variant's;
  (e) as (c), with each key's day window holding 900 earlier calls (replayed as a restart
      replays the usage database), which is what a pool looks like after a busy day;
  (f) as (c), with the pool's state shared through the Redis on 127.0.0.1:6379 (a namespace of
      its own, deleted afterwards): one script call per call to choose and reserve a key, the
      settle riding along with the next one. Redis's own counts (``INFO commandstats``) give
      the script calls and the server time per model call;
  (g) as (d), with a new model from ``registry.get_model`` for every call (what HFS does when it
      builds an Agent per role per triad): the model's construction and its first call, against
      (d)'s model built once and reused (a registry of its own, so that its keys' windows and
      (d)'s each stay under keycycle's limits).
  (h) as (c), with OpenTelemetry configured: the SDK's tracer and meter providers, a span
      processor handing each span to an in-memory exporter (cleared each round) and an
      in-memory metric reader (docs/observability.md);
  (i) as (c), a registry made as an application makes it with the ``otel`` extra installed and
      no tracer or meter provider set: each call checks, and keeps no trace.

The variants run in interleaved rounds (the order rotates each round) so load from other
processes hits them alike; the table gives the median over rounds of the wall time and of the
process CPU time per call (CPU includes background threads such as the usage writer), and
the median over rounds of each variant's time divided by (a)'s in the same round.
The registry builds each key's SDK client on the key's first call; that one-off cost is
shown separately ("first pass": the warm-up calls, which reach every key). keycycle's limits
for the model (30 requests per minute per key) are respected: no variant makes more than
~2,000 calls a minute over 110 keys. Goals: (c)/(a) <= 1.2, (d)/(a) <= 1.1, (f)/(a) <= 1.3,
(g)/(a) <= 1.15, (i)/(a) <= 1.1.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import _common as common

GOAL = 1.2
GOAL_TRACKING = 1.1
GOAL_REDIS = 1.3
GOAL_NEW_MODEL = 1.15
GOAL_OTEL_OFF = 1.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (figures less steady)")
    parser.add_argument("--keys", type=int, default=110)
    parser.add_argument("--latency", type=float, default=0.0, help="stand-in latency per answer, seconds")
    parser.add_argument("--profile", action="store_true", help="cProfile 300 registry calls afterwards")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    rounds, batch, kc_batch, warmup = (5, 40, 5, 3 * args.keys) if args.quick else (15, 100, 10, 3 * args.keys)
    settings = {"keys": args.keys, "rounds": rounds, "calls_per_round": batch, "keycycle_calls_per_round": kc_batch,
                "standin_latency_s": args.latency, "warmup_calls": warmup}
    facts = common.print_header("Per-call overhead: model.response(), no limits hit", settings)
    common.quiet()

    from agno.models.groq import Groq

    with common.StandInProcess(latency=args.latency) as standin:
        keys = common.groq_keys(args.keys)
        direct = Groq(id=common.GROQ_MODEL, api_key=keys[0], base_url=standin.url)
        wrapper = common.keycycle_wrapper(keys)
        keycycle_model = common.keycycle_model(wrapper, standin.url)
        plain = common.registry(keys, standin.url, track_usage=False)
        tracked = common.registry(keys, standin.url, track_usage=True)
        renewed = common.registry(keys, standin.url, track_usage=True)  # (g)'s: its own windows, under the limits
        busy = common.registry(keys, standin.url, track_usage=False)
        replay_day(busy.pool("groq"), per_key=900)
        namespace = f"hfs-bench-{time.time_ns()}"
        shared = common.registry(keys, standin.url, track_usage=False, state_url=common.REDIS_URL,
                                 namespace=namespace)
        tracked_model = tracked.get_model("groq", common.GROQ_MODEL)
        def new_model() -> Any:
            return renewed.get_model("groq", common.GROQ_MODEL)

        exporter, telemetry = otel()
        traced = common.registry(keys, standin.url, track_usage=False, telemetry=telemetry)
        untraced = common.registry(keys, standin.url, track_usage=False)
        variants: dict[str, tuple[Any, int]] = {
            "(a) direct Agno client, reused": (direct, batch),
            "(b) keycycle rotating model": (keycycle_model, kc_batch),
            "(c) registry rotating model": (plain.get_model("groq", common.GROQ_MODEL), batch),
            "(d) registry, usage tracking on": (tracked_model, batch),
            "(e) registry, 900 calls/key in the day window": (busy.get_model("groq", common.GROQ_MODEL), batch),
            "(f) registry, state shared through Redis": (shared.get_model("groq", common.GROQ_MODEL), batch),
            "(g) registry, get_model per call, tracking on": (new_model, batch),
            "(h) registry, OpenTelemetry configured": (traced.get_model("groq", common.GROQ_MODEL), batch),
            "(i) registry, otel extra, nothing configured": (untraced.get_model("groq", common.GROQ_MODEL), batch),
        }
        names = list(variants)
        spans: list[int] = []

        def export() -> None:
            spans.append(len(exporter.get_finished_spans()))
            exporter.clear()

        settle: dict[str, Callable[[], object]] = {names[3]: tracked.usage_store().flush,
                                                   names[6]: renewed.usage_store().flush, names[7]: export}

        def run(name: str, n: int) -> tuple[float, float]:
            model = variants[name][0]
            fresh = model is new_model
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(n):
                (new_model() if fresh else model).response(messages=common.messages())
            if name in settle:
                settle[name]()
            return (time.perf_counter() - wall) / n * 1000, (time.process_time() - cpu) / n * 1000

        first_pass = {name: run(name, warmup if "registry" in name else 5)[0] for name in names}
        walls: dict[str, list[float]] = {n: [] for n in names}
        cpus: dict[str, list[float]] = {n: [] for n in names}
        scripts = {"calls": 0.0, "usec": 0.0, "model_calls": 0.0}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                before = common.redis_stats() if name == names[5] else None
                wall, cpu = run(name, variants[name][1])
                if before is not None:
                    after = common.redis_stats()
                    scripts["calls"] += after["calls"] - before["calls"]
                    scripts["usec"] += after["usec"] - before["usec"]
                    scripts["model_calls"] += variants[name][1]
                walls[name].append(wall)
                cpus[name].append(cpu)
        status = {"keycycle_get_key_index": wrapper.manager.current_index,
                  "registry_clients": len(variants["(c) registry rotating model"][0].clients.built),
                  "usage": tracked.usage_health().to_dict() if tracked.usage_health() else None}
        if args.profile:
            profile(lambda: variants[names[2]][0].response(messages=common.messages()))
        for made in (plain, tracked, renewed, busy, shared, traced, untraced):
            made.shutdown()
        common.drop_namespace(namespace)
        wrapper.manager.stop()
        stats = standin.stats()

    base = names[0]
    rows = []
    results: dict[str, Any] = {}
    for name in names:
        ratio = statistics.median(w / b for w, b in zip(walls[name], walls[base], strict=True))
        results[name] = {"ms_per_call": statistics.median(walls[name]), "ratio_to_a": ratio,
                         "cpu_ms_per_call": statistics.median(cpus[name]), "first_pass_ms": first_pass[name]}
        rows.append([name, f"{results[name]['ms_per_call']:.3f}", f"{results[name]['cpu_ms_per_call']:.3f}",
                     f"{ratio:.2f}x", f"{first_pass[name]:.2f}"])
    common.print_table(["variant", "ms/call", "CPU ms/call", "vs (a)", "first pass ms/call"], rows)
    ratio_c = results[names[2]]["ratio_to_a"]
    ratio_d = results[names[3]]["ratio_to_a"]
    print(f"goal (c)/(a) <= {GOAL}: {'met' if ratio_c <= GOAL else 'MISSED'} ({ratio_c:.2f})")
    print(f"goal (d)/(a) <= {GOAL_TRACKING}: {'met' if ratio_d <= GOAL_TRACKING else 'MISSED'} ({ratio_d:.2f})")
    ratio_f = results[names[5]]["ratio_to_a"]
    per_call = scripts["calls"] / scripts["model_calls"]
    usec = scripts["usec"] / scripts["calls"] if scripts["calls"] else 0.0
    ratio_g = results[names[6]]["ratio_to_a"]
    print(f"goal (g)/(a) <= {GOAL_NEW_MODEL}: {'met' if ratio_g <= GOAL_NEW_MODEL else 'MISSED'} ({ratio_g:.2f}); "
          f"(g)/(d): {ratio_g / ratio_d:.2f}")
    print(f"goal (f)/(a) <= {GOAL_REDIS}: {'met' if ratio_f <= GOAL_REDIS else 'MISSED'} ({ratio_f:.2f}); Redis: "
          f"{per_call:.2f} script calls per model call, {usec:.1f} us of server time each")
    status["redis"] = {"script_calls_per_model_call": per_call, "server_usec_per_script_call": usec}
    ratio_i = results[names[8]]["ratio_to_a"]
    print(f"goal (i)/(a) <= {GOAL_OTEL_OFF}: {'met' if ratio_i <= GOAL_OTEL_OFF else 'MISSED'} ({ratio_i:.2f}); "
          f"(h)/(a): {results[names[7]]['ratio_to_a']:.2f}, {sum(spans)} spans for (h)'s "
          f"{warmup + rounds * batch} calls")
    print(f"stand-in: {stats['total']} requests, {stats['rate_limited']} answered 429; "
          f"registry SDK clients built: {status['registry_clients']}; usage rows: {status['usage']}")
    common.save_json(args.json, {"benchmark": "overhead", **facts, "settings": settings, "results": results,
                                 "standin": {k: stats[k] for k in ("total", "accepted", "rate_limited")},
                                 "status": status})


def otel() -> tuple[Any, Any]:
    """An in-memory span exporter, and a `Telemetry` reporting to SDK providers that export to it and to
    an in-memory metric reader."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hfs_core.telemetry import Telemetry

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return exporter, Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def replay_day(pool: Any, per_key: int) -> None:
    """Put `per_key` calls of 200 tokens into each key's day window (between 23 h and 1 h ago)."""
    now = time.time()
    span = 22 * 3600
    rows = [(pool.suffix(i), common.GROQ_MODEL, now - 3700 - span * j / per_key, 200)
            for i in range(pool.size) for j in range(per_key)]
    pool.state.load_history(rows)


def profile(call: Callable[[], Any]) -> None:
    """Print where 300 registry calls spend their time (cProfile, by own time)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(300):
        call()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
