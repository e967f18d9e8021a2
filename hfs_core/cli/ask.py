"""``hfs ask``: one prompt through an Agno agent on a rotating model (or a tier), the answer on stdout.

The model comes from `Registry.get_model` like any caller's. When every key is at its rate
limit the pool says so once, on logger ``hfs_core.pool`` at INFO, which this command shows
on stderr (with the rate limits, retries and a tier's moves to its next entry met during the
call); with ``-t`` it also says which provider and model answered.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

from hfs_core.cli.common import CliError, open_registry
from hfs_core.cli.output import PROG, LogFilter, is_terminal
from hfs_core.install import FIRST_PLUGIN

if TYPE_CHECKING:
    from hfs_core.registry import Registry

def _read_prompt(words: Sequence[str]) -> str:
    """The prompt from the words given, or from stdin for ``-``."""
    if list(words) == ["-"]:
        if is_terminal(sys.stdin):
            print(f"{PROG}: reading the prompt from stdin (end with Ctrl-D)", file=sys.stderr)
        return sys.stdin.read()
    return " ".join(words)


def _choose_provider(registry: Registry, args: argparse.Namespace) -> str:
    """What to ask, for `Registry.resolve_model`: -m's PROVIDER:MODEL, -p's provider, or the first with usable keys."""
    if args.model:
        return str(args.model)
    if args.provider:
        return str(args.provider)
    available = registry.available_providers
    if available:
        return available[0]
    if not registry.specs:
        raise CliError("no provider plugins are installed", FIRST_PLUGIN)
    first = registry.specs[sorted(registry.specs)[0]]
    raise CliError("no provider has usable keys",
                   f"set e.g. {first.count_var}=<count> and {first.key_var(1)}...; `hfs check` lists what is missing")


def _provider_error(text: str) -> str:
    """A provider's JSON error body cut down to its message."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        body = json.loads(text)
        if isinstance(body, dict):
            error = body.get("error", body)
            message = error.get("message") if isinstance(error, dict) else error
            if message:
                return str(message)
    return text


@dataclass(frozen=True)
class Target:
    """What `hfs ask` asks: the model, how messages name it, and where its model names are listed."""

    model: Any
    label: str
    models_hint: str


def _target(registry: Registry, args: argparse.Namespace) -> Target:
    """The model of ``-t``'s tier, ``-m``'s PROVIDER:MODEL, ``-p``'s provider, or the first provider with keys."""
    options: dict[str, Any] = {"timeout": args.timeout, **({"base_url": args.base_url} if args.base_url else {})}
    if args.tier:
        name = args.tier.strip().lower()
        if name not in registry.tiers:
            raise CliError(f"no tier {name!r}; tiers: {', '.join(registry.tiers) or 'none'} "
                           f"({registry.tiers_source})", "`hfs providers` lists the tiers; add one to hfs.toml "
                           'as [tiers.NAME] models = ["provider:model", ...]')
        return Target(registry.get_model(name, **options), f"tier {name}", "`hfs providers` lists its entries")
    provider, model_id = registry.resolve_model(_choose_provider(registry, args))
    return Target(registry.get_model(provider, model_id, **options), f"{provider}/{model_id}",
                  f"`hfs models {provider}` lists model names")


def _say_who_answered(target: Target, provider_data: Any) -> None:
    """For a tier, which provider and model answered (on stderr)."""
    served = (provider_data or {}).get("hfs") if isinstance(provider_data, dict) else None
    if target.label.startswith("tier ") and isinstance(served, dict):
        print(f"{PROG}: {target.label}: answered by {served.get('provider')}/{served.get('model')}", file=sys.stderr)


def _run_error(target: Target, content: Any, error_type: str | None) -> CliError:
    """A CliError for a failed Agno run (which reports errors as events, not exceptions)."""
    from hfs_core.pool.unavailable import ERROR_TYPE

    message = _provider_error(str(content or "the model call failed")).strip().splitlines()
    first = message[0] if message else "the model call failed"
    if error_type == ERROR_TYPE:
        return CliError(first, "retry later, allow a longer wait with --timeout, or add keys; "
                               "`hfs usage` shows recent use")
    if re.search(r"connection|connect|timed? ?out|name resolution|unreachable", first, re.IGNORECASE):
        return CliError(f"{target.label}: {first}",
                        "the provider cannot be reached: check the network, a proxy, or --base-url; "
                        "-v shows the library logs")
    return CliError(f"{target.label}: {first}",
                    f"the provider refused or failed the call; {target.models_hint}, "
                    "-v shows the library logs, --debug the traceback")


def _stream_answer(agent: Any, prompt: str, target: Target) -> int:
    """Print the answer's content deltas as they arrive."""
    wrote_newline = True
    wrote = False
    provider_data = None
    for event in agent.run(prompt, stream=True):
        kind = getattr(event, "event", "")
        if kind == "RunContent":
            content = getattr(event, "content", None)
            provider_data = getattr(event, "model_provider_data", None) or provider_data
            if isinstance(content, str) and content:
                sys.stdout.write(content)
                sys.stdout.flush()
                wrote, wrote_newline = True, content.endswith("\n")
        elif kind == "RunError":
            if not wrote_newline:
                sys.stdout.write("\n")
            raise _run_error(target, getattr(event, "content", None), getattr(event, "error_type", None))
        elif kind == "RunCancelled":
            raise KeyboardInterrupt
    if not wrote:
        raise _empty_answer(target, streamed=True)
    if not wrote_newline:
        sys.stdout.write("\n")
    sys.stdout.flush()
    _say_who_answered(target, provider_data)
    return 0


def _empty_answer(target: Target, *, streamed: bool) -> CliError:
    """The provider answered, but with no text: say so rather than print nothing and exit 0."""
    how = ("the stream ended without any text (a proxy that ignores `stream: true` answers plain JSON, "
           "which the SDK reads as an empty stream)") if streamed else "the answer holds no text"
    hint = "try --no-stream, or check the base URL" if streamed else "check the model and the base URL"
    return CliError(f"{target.label} answered, but {how}", hint)


def _whole_answer(agent: Any, prompt: str, target: Target) -> int:
    """Print the answer once the run is complete."""
    result = agent.run(prompt)
    status = str(getattr(getattr(result, "status", None), "value", getattr(result, "status", "")))
    if status.lower() == "error":
        events = [e for e in getattr(result, "events", None) or [] if getattr(e, "event", "") == "RunError"]
        error_type = getattr(events[-1], "error_type", None) if events else None
        raise _run_error(target, getattr(result, "content", None), error_type)
    if status.lower() == "cancelled":
        raise KeyboardInterrupt
    content = getattr(result, "content", None)
    if content is None or content == "":
        raise _empty_answer(target, streamed=False)
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    _say_who_answered(target, getattr(result, "model_provider_data", None))
    return 0


@contextlib.contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C off while the block runs (the usage rows of answered calls being written), then
    raise it; a second Ctrl-C raises at once. Only the main thread can hold it (elsewhere: nothing held)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        if held:
            raise KeyboardInterrupt
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
    if held:
        raise KeyboardInterrupt


def cmd_ask(args: argparse.Namespace, log_filter: LogFilter) -> int:
    """Run one prompt through an Agno agent on a rotating model and print the answer."""
    prompt = _read_prompt(args.prompt)
    if not prompt.strip():
        raise CliError("the prompt is empty", "pass the prompt as an argument, or pipe it in with `hfs ask -`")
    os.environ.setdefault("AGNO_TELEMETRY", "false")
    if args.debug:
        os.environ.setdefault("AGNO_LOG_TRACEBACKS", "true")
    log_filter.show_info("hfs_core.pool")  # waiting for a key, rate limits and retries met during the call
    registry, _ = open_registry(log_filter)
    try:
        target = _target(registry, args)
        from agno.agent import Agent

        agent = Agent(model=target.model, telemetry=False)
        if args.stream:
            return _stream_answer(agent, prompt, target)
        return _whole_answer(agent, prompt, target)
    finally:
        with _ctrl_c_held():  # a Ctrl-C now would lose the usage rows of the calls answered
            registry.shutdown()

