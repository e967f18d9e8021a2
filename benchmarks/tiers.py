"""A tier under load while its first provider runs dry: 16 threads on ``fast`` = [groq, cerebras].

Run with ``uv run python benchmarks/tiers.py`` (``--quick``: 5 s phases instead of 10 s).

The stand-in runs as its own process and answers in 50 ms. One registry holds groq and cerebras,
4 keys each, with per-key limits far above what the run sends (so that only the stand-in runs a
pool dry), and the tier ``fast`` = ``["groq:openai/gpt-oss-20b", "cerebras:gpt-oss-120b"]``.
16 threads call Agno's ``tier.response(messages=[Message(role="user", content="hi")])`` in a
loop, wait budget 10 s, through three phases:

  before: both providers answer;
  during: every groq key answers 429, Groq's own "Rate limit reached ... on tokens per minute
      (TPM) ... Please try again in 2s" (the stand-in's recorded ``groq.per_minute_tokens``):
      the pool cools each key 2 s on its first refusal, tries it again once the 2 s are over
      (one call probes it), and cools it again;
  after: groq answers again.

Each call records when it started and ended, which provider answered it (the ``hfs`` entry of
the response's provider data) and whether it met a groq 429 on the way (the pool's log line for
the refusal, on the calling thread). Figures: calls and caller-visible errors (goal 0) per
phase, the share each provider served, the time to switch (goal: within the failing call: every
call that met a 429 was answered in that same call), and the traffic back on groq after its keys
free. Timings are ratios to the median call of the before phase, in the same run.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

import _common as common

BUDGET = 10.0
KEYS = 4
WORKERS = 16
MODELS = {"groq": "openai/gpt-oss-20b", "cerebras": "gpt-oss-120b"}
ROOMY = {"rpm": 100_000, "rph": 10**7, "rpd": 10**7, "tpm": 10**9, "tph": 10**10, "tpd": 10**11}
REFUSAL_WAIT = 2.0


@dataclass(frozen=True)
class Call:
    """One caller's call: when, who answered, whether it met a groq refusal, what reached the caller."""

    start: float
    end: float
    served: str | None
    met_429: bool
    error: str | None


class Refusals(logging.Handler):
    """Counts the pool's "answered 429" lines per thread: which calls met a refusal on the way."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.by_thread: dict[int, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if " answered 429" in record.getMessage() and record.thread is not None:
            self.by_thread[record.thread] = self.by_thread.get(record.thread, 0) + 1


def keys(provider: str, n: int) -> list[str]:
    """`n` random keys with the shape of `provider`'s keys."""
    if provider == "groq":
        return common.groq_keys(n)
    alphabet = string.ascii_lowercase + string.digits
    return ["csk-" + "".join(secrets.choice(alphabet) for _ in range(48)) for _ in range(n)]


def tier_registry(url: str, made: dict[str, list[str]]) -> Any:
    """A registry with the two plugins, `made` keys, the stand-in as base URL, and the tier ``fast``."""
    from hfs_core import Registry
    from hfs_core.config import Config, ProviderConfig

    env = {f"NUM_{p.upper()}": str(len(k)) for p, k in made.items()}
    env.update({f"{p.upper()}_API_KEY_{i}": key for p, k in made.items() for i, key in enumerate(k, 1)})
    providers = {p: ProviderConfig(base_url=url, expected_keys=KEYS, models={m: ROOMY}) for p, m in MODELS.items()}
    tiers = {"fast": tuple(f"{p}:{m}" for p, m in MODELS.items())}
    config = Config(track_usage=False, providers=providers, tiers=tiers)
    registry = Registry(env=env, config=config, plugins=list(MODELS))
    common.quiet()
    return registry


def run(model: Any, standin: common.StandInProcess, groq: list[str], phase: float) -> tuple[list[Call], float, float]:
    """The three phases; returns the calls and when the refusals began and ended (``time.monotonic``)."""
    refusals = Refusals()
    pool_log = logging.getLogger("hfs_core.pool")
    pool_log.setLevel(logging.INFO)
    pool_log.propagate = False
    pool_log.addHandler(refusals)
    calls: list[Call] = []
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + 3 * phase

    def work() -> None:
        me = threading.get_ident()
        while time.monotonic() < deadline:
            seen = refusals.by_thread.get(me, 0)
            began = time.monotonic()
            served = error = None
            try:
                served = model.response(messages=common.messages()).provider_data["hfs"]["provider"]
            except Exception as exc:
                status = getattr(exc, "status_code", None)
                error = f"{type(exc).__name__}({status})" if status else type(exc).__name__
            call = Call(began, time.monotonic(), served, refusals.by_thread.get(me, 0) > seen, error)
            with lock:
                calls.append(call)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start + phase - time.monotonic()))
    refused_from = time.monotonic()  # taken before the stand-in is told: a call started after may meet it
    standin.control({"replay": [{"name": "groq.per_minute_tokens", "key": k, "wait": REFUSAL_WAIT} for k in groq]})
    time.sleep(max(0.0, start + 2 * phase - time.monotonic()))
    refused_until = time.monotonic()
    standin.control({"clear_replays": True})
    for thread in threads:
        thread.join()
    pool_log.removeHandler(refusals)
    return calls, refused_from, refused_until


def figures(calls: list[Call], refused_from: float, refused_until: float, upstream_429: int) -> dict[str, Any]:
    """Per phase and for the switch, as the docstring lists them."""
    phases = {"before": [c for c in calls if c.start < refused_from],
              "during": [c for c in calls if refused_from <= c.start < refused_until],
              "after": [c for c in calls if c.start >= refused_until]}
    baseline = statistics.median(c.end - c.start for c in phases["before"] if c.error is None)
    rows = {}
    for name, group in phases.items():
        answered = [c for c in group if c.error is None]
        rows[name] = {
            "calls": len(group), "errors": len(group) - len(answered),
            **{p: sum(c.served == p for c in answered) for p in MODELS},
            "median_call_ratio": statistics.median(c.end - c.start for c in answered) / baseline if answered else None,
        }
    met = [c for c in calls if c.met_429]
    first_cerebras = min((c.end for c in calls if c.start >= refused_from and c.served == "cerebras"), default=None)
    back = min((c.end for c in phases["after"] if c.served == "groq"), default=None)
    half = refused_until + (max(c.start for c in calls) - refused_until) / 2
    late = [c for c in phases["after"] if c.start >= half and c.error is None]
    return {
        "baseline_median_call_s": round(baseline, 4),
        "phases": rows,
        "upstream_429": upstream_429,
        "met_429": len(met),
        "met_429_answered_in_the_call": sum(c.error is None for c in met),
        "met_429_answered_by": {p: sum(c.served == p for c in met) for p in MODELS},
        "met_429_median_call_ratio": statistics.median(c.end - c.start for c in met) / baseline if met else None,
        "switch_s": None if first_cerebras is None else round(first_cerebras - refused_from, 3),
        "back_on_groq_s": None if back is None else round(back - refused_until, 3),
        "groq_share_second_half_after": sum(c.served == "groq" for c in late) / len(late) if late else None,
        "errors": sorted({c.error for c in calls if c.error}),
    }


def report(result: dict[str, Any], phase: float) -> None:
    base = result["baseline_median_call_s"]
    rows = []
    for name, r in result["phases"].items():
        served = r["groq"] + r["cerebras"]
        share = f"{r['groq'] / served:.0%} / {r['cerebras'] / served:.0%}" if served else "-"
        ratio = f"{r['median_call_ratio']:.2f}x" if r["median_call_ratio"] is not None else "-"
        rows.append([name, r["calls"], r["errors"], r["groq"], r["cerebras"], share, ratio])
    common.print_table(["phase", "calls", "caller-visible errors", "groq answered", "cerebras answered",
                        "share groq / cerebras", "median call (x before)"], rows)
    by = result["met_429_answered_by"]
    ratio = result["met_429_median_call_ratio"]
    switch, back = result["switch_s"], result["back_on_groq_s"]
    share = result["groq_share_second_half_after"]
    common.print_table(["figure", "value"], [
        ["upstream 429s (groq, the stand-in's count)", result["upstream_429"]],
        ["calls that met a groq 429", result["met_429"]],
        ["... answered in that same call", f"{result['met_429_answered_in_the_call']} "
         f"(by cerebras {by['cerebras']}, by groq on another key {by['groq']})"],
        ["... their median call (x before)", f"{ratio:.2f}x" if ratio is not None else "-"],
        ["first cerebras answer after the refusals began",
         f"{switch:.3f} s = {switch / base:.1f}x the median call" if switch is not None else "none"],
        ["first groq answer after the refusals ended",
         f"{back:.3f} s = {back / base:.1f}x the median call" if back is not None else "none"],
        [f"groq's share in the last {phase / 2:g} s", f"{share:.0%}" if share is not None else "-"],
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 s phases instead of 10 s")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    phase = 5.0 if args.quick else 10.0
    settings = {"keys_per_provider": KEYS, "workers": WORKERS, "phase_s": phase, "budget_s": BUDGET,
                "standin_latency_s": 0.05, "refusal_wait_s": REFUSAL_WAIT,
                "tier": ", ".join(f"{p}:{m}" for p, m in MODELS.items())}
    facts = common.print_header("Tiers: 16 threads on [groq, cerebras], groq refusing mid-run", settings)
    common.quiet()
    with common.StandInProcess(latency=0.05) as standin:
        made = {p: keys(p, KEYS) for p in MODELS}
        registry = tier_registry(standin.url, made)
        for provider, provider_keys in made.items():  # each key's first call: its client is built, and the
            plain = registry.get_model(provider, MODELS[provider], timeout=BUDGET)  # pool has seen it answer
            for _ in range(50):
                if all(standin.stats()["by_key"].get(k[-4:], {}).get("200") for k in provider_keys):
                    break
                plain.response(messages=common.messages())
        common.quiet()  # keycycle's loggers, made with the pools
        standin.control({"reset_stats": True})
        model = registry.get_model("fast", timeout=BUDGET)
        calls, refused_from, refused_until = run(model, standin, made["groq"], phase)
        result = figures(calls, refused_from, refused_until, standin.stats()["rate_limited"])
        registry.shutdown()
    report(result, phase)
    goals = {"caller-visible errors = 0": not result["errors"],
             "every call that met a 429 answered in that call":
                 result["met_429"] == result["met_429_answered_in_the_call"],
             "groq serves again after its keys free": (result["groq_share_second_half_after"] or 0) > 0.9}
    print("goals: " + ", ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in goals.items()))
    common.save_json(args.json, {"benchmark": "tiers", **facts, "settings": settings, "results": result})


if __name__ == "__main__":
    main()
