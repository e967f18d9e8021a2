"""``python -m hfs_core.testing.standin``: run the stand-in in the foreground."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from hfs_core.testing.standin.server import StandIn


def _tool_call(spec: str) -> tuple[str, dict[str, object]]:
    name, _, arguments = spec.partition("=")
    parsed = json.loads(arguments) if arguments else {}
    if not name or not isinstance(parsed, dict):
        raise argparse.ArgumentTypeError("expected NAME or NAME=<JSON object>")
    return name, parsed


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hfs_core.testing.standin",
        description="Run the LLM provider stand-in server on 127.0.0.1 in the foreground.",
    )
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 picks a free one)")
    parser.add_argument(
        "--rpm", type=int, default=None, help="requests per window per key (default: unlimited)"
    )
    parser.add_argument("--window", type=float, default=60.0, help="rate-limit window in seconds")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds slept before each answer")
    parser.add_argument("--error-latency", type=float, default=None, help="seconds slept before errors")
    parser.add_argument(
        "--accept-any-key",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="accept any non-empty key (default: on, unless --key is given)",
    )
    parser.add_argument(
        "--key", action="append", default=[], metavar="K", help="a known (live) key; repeatable"
    )
    parser.add_argument("--reply", default=None, help="fixed reply text (default: echo the user message)")
    parser.add_argument(
        "--tool-call",
        action="append",
        default=[],
        type=_tool_call,
        metavar="NAME=JSON",
        help="call tool NAME with these JSON arguments whenever it is offered; repeatable",
    )
    parser.add_argument(
        "--stats-on-exit", default=None, metavar="PATH", help="write the stats JSON here at exit"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-in in the foreground until SIGTERM/SIGINT; returns the exit status."""
    args = _build_parser().parse_args(argv)
    accept_any = args.accept_any_key if args.accept_any_key is not None else not args.key
    standin = StandIn(
        latency=args.latency,
        rpm=args.rpm,
        window=args.window,
        accept_any_key=accept_any,
        keys=args.key,
        port=args.port,
        reply=args.reply,
        error_latency=args.error_latency,
    )
    for name, arguments in args.tool_call:
        standin.script_tool_call(name, arguments)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    standin.start()
    try:
        print(f"STANDIN_URL={standin.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if args.stats_on_exit:
            with open(args.stats_on_exit, "w", encoding="utf-8") as fh:
                json.dump(standin.stats(), fh, indent=2)
        standin.stop()
    return 0
