"""The benchmarks' pictures (``--plot PATH``), drawn with matplotlib (the ``bench`` dependency group:
``uv run --group bench python benchmarks/saturation.py --plot docs/img/saturation.png``).

Each picture puts "keycycle as it comes" and the registry side by side, on the same axes, from the
same run as the tables; matplotlib is imported only when a picture is asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

LABELS = {"keycycle": "keycycle as it comes", "registry": "registry"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | Path, caption: str) -> None:
    figure.text(0.01, 0.01, caption, fontsize=7, color="0.4")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    print(f"picture: {path}")


def load_run(logs: Mapping[str, Sequence[Mapping[str, Any]]], calls: Mapping[str, Sequence[tuple[float, float, str]]],
             path: str | Path, *, limit: int, budget: float, duration: float, caption: str) -> None:
    """A load run, one column per side. Top: one line per key, the requests the stand-in answered
    200 so far, each upstream 429 a red cross on its key's line, the per-key limit dashed. Bottom:
    each call the callers made, how long it kept its caller (log scale; a refusal in under 1 ms is
    drawn at 1 ms) against when it started, by outcome, the wait budget dashed. The run's end is
    dotted (later requests are retries of calls still under way)."""
    plt = _pyplot()
    sides = list(logs)
    figure, axes = plt.subplots(2, len(sides), figsize=(5.2 * len(sides), 6.6), sharex=True, sharey="row",
                                squeeze=False)
    ends = [r["t"] for log in logs.values() for r in log] + [b + t for c in calls.values() for b, t, _ in c]
    end = max([duration, *ends]) * 1.02
    for column, side in enumerate(sides):
        top, bottom = axes[0][column], axes[1][column]
        _requests_per_key(top, logs[side], end)
        top.axhline(limit, color="0.5", linestyle="--", linewidth=0.8)
        top.text(1, limit + 0.5, f"limit: {limit} a minute per key", fontsize=7, color="0.4")
        log = logs[side]
        top.set_title(f"{LABELS.get(side, side)}: {sum(r['status'] == 200 for r in log)} answered, "
                      f"{sum(r['status'] == 429 for r in log)} upstream 429s", fontsize=9)
        _call_durations(bottom, calls.get(side, ()))
        bottom.axhline(budget, color="0.5", linestyle="--", linewidth=0.8)
        bottom.text(1, budget * 1.15, f"wait budget: {budget:g} s", fontsize=7, color="0.4")
        bottom.set_xlabel("seconds since the run started")
        for ax in (top, bottom):
            ax.axvline(duration, color="0.5", linestyle=":", linewidth=0.8)
            ax.set_xlim(0, end)
            ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("requests answered, per key")
    axes[1][0].set_ylabel("seconds the caller waited")
    axes[0][-1].legend(fontsize=7, loc="lower right", ncol=2)
    for ax in axes[1]:
        ax.legend(fontsize=7, loc="upper right")
    _save(figure, path, caption)


def _requests_per_key(ax: Any, log: Sequence[Mapping[str, Any]], end: float) -> None:
    keys = sorted({r["key"] for r in log}, key=lambda k: next(r["t"] for r in log if r["key"] == k))
    marked = False
    for number, key in enumerate(keys, 1):
        times, counts, refused = [0.0], [0], []
        for request in (r for r in log if r["key"] == key):
            if request["status"] == 200:
                times.append(request["t"])
                counts.append(counts[-1] + 1)
            elif request["status"] == 429:
                refused.append((request["t"], counts[-1]))
        times.append(end)
        counts.append(counts[-1])
        ax.step(times, counts, where="post", linewidth=1.2, label=f"key {number}")
        if refused:
            ax.plot(*zip(*refused, strict=True), "x", color="red", markersize=6,
                    label=None if marked else "upstream 429")
            marked = True


def _call_durations(ax: Any, calls: Sequence[tuple[float, float, str]]) -> None:
    styles = {"ok": ("answered", "tab:green", "o"), "no_key": ("NoAvailableKeyError", "tab:orange", ".")}
    for kind in sorted({k for _, _, k in calls}, key=lambda k: (k not in styles, k)):
        label, color, marker = styles.get(kind, (kind, "tab:red", "x"))
        points = [(begun, max(took, 1e-3)) for begun, took, k in calls if k == kind]  # 1 ms at least
        ax.plot(*zip(*points, strict=True), marker, color=color, markersize=3, alpha=0.6, linestyle="none",
                label=f"{label} ({len(points)})")
    ax.set_yscale("log")


def heartbeat_gaps(series: Mapping[str, Sequence[float]], path: str | Path, *, goal_ms: float,
                   caption: str) -> None:
    """Each run's heartbeat gaps over time (ms, log scale), each drawn across the time it lasted:
    the 10 ms tick is the floor; an event loop that stood still is a plateau as long as it is high."""
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(9, 3.6))
    for label, gaps in series.items():
        elapsed, times = 0.0, [0.0]
        for gap in gaps:
            elapsed += gap
            times.append(elapsed / 1000)
        ax.step(times, [gaps[0], *gaps], where="pre", linewidth=0.9, label=label)
    ax.axhline(goal_ms, color="0.5", linestyle="--", linewidth=0.8)
    ax.text(0.02, goal_ms * 1.08, f"goal for a cold loop: {goal_ms:.0f} ms", fontsize=7, color="0.4")
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the calls started")
    ax.set_ylabel("gap between 10 ms heartbeats (ms)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    _save(figure, path, caption)
