"""The ``hfs`` command line: its parser, its error handling, and `main`.

An error is one line plus a hint on stderr and exit status 1 (a traceback with ``--debug``
or ``HFS_DEBUG=1``); bad usage exits 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from hfs_core import __version__
from hfs_core.cli.arguments import (
    ASK_TIMEOUT,
    SUFFIX_LONGEST,
    SUFFIX_SHORTEST,
    parse_since,
    positive_float,
    provider_model,
)
from hfs_core.cli.output import PROG, LogFilter, scrub, setup_logging
from hfs_core.variables import DEBUG_ENV, ENVIRONMENT

_EPILOG = """\
examples:
  hfs demo                       watch the pool at work, no keys needed
  hfs providers                  what is installed and which variables to set
  hfs check --strict             CI / deploy gate: exit 1 on any problem
  hfs models groq                models, per-key limits and where each comes from
  hfs ask -p groq "Say hi"       one prompt through a rotating model (-t fast: a tier)
  hfs usage --since 7d           requests and tokens per provider, key and model

exit status: 0 ok, 1 error (one line and a hint on stderr), 2 bad usage.

environment (the real one over a .env file):
""" + "".join(f"  {name:<19}{what}\n" for name, what in ENVIRONMENT) + """
.env and hfs.toml are searched upward: the working directory, then its parents up to
the repository's root (the first folder holding .git).
"""

_COMMANDS: dict[str, tuple[str, str]] = {
    "providers": ("list provider plugins, their keys, default models and health, and the tiers", """\
examples:
  hfs providers
  hfs providers --json | jq '.providers[] | select(.healthy) | .name'

Lists every discovered plugin, including plugins that failed to load (with the
error), and for each provider which variables to set; then each tier's entries
and whether each can serve calls. Always exits 0; use `hfs check` to gate on
problems."""),
    "check": ("check keys, config, plugins and the usage database (exit 1 on errors)", """\
examples:
  hfs check                      exit 1 on any error
  hfs check --strict             exit 1 on warnings too
  hfs check --json --skip-db     machine-readable, without touching the database

Errors: an enabled provider without usable keys, a plugin that failed to load,
a malformed config file, a tier entry naming no installed provider, a tier
none of whose entries can serve, a bad or unreachable usage database.
Warnings: a key count that differs from the expected_keys you set, keys that
look wrong, a tier entry that cannot serve now, an uninstalled plugin or a model
no limit table knows (with the closest one it knows), and the like. Notes
(info) fail nothing: fewer keys than a plugin's authors run is one."""),
    "models": ("list a provider's models with their limits and where each comes from", """\
examples:
  hfs models groq
  hfs models                     every installed provider
  hfs models gemini --json

Limits are per key and per model (RPM/RPH/RPD requests a minute/hour/day,
TPM/TPH/TPD tokens), each from hfs.toml, the plugin's table, keycycle's table
or the conservative default (FROM); * marks the provider's default model."""),
    "ask": ("send one prompt through a rotating model and stream the answer", """\
examples:
  hfs ask "What is the capital of France?"          first provider with keys
  hfs ask -p gemini "Explain key rotation briefly"
  hfs ask -m groq:openai/gpt-oss-20b --no-stream "hi"
  hfs ask -t fast "hi"                              a tier: its first entry with a free key
  git diff | hfs ask -p groq -                      prompt from stdin
  hfs ask -p groq --base-url http://127.0.0.1:8000 "hi"   through a proxy

When every key is at its rate limit, hfs says on stderr which provider it waits
for and how long until a key frees up; with -t, which entry took the call and
which answered. The call is recorded in the usage database."""),
    "demo": ("watch an agent on rotating keys against a local stand-in (no keys needed)", """\
examples:
  hfs demo
  hfs demo -p gemini

Starts the provider stand-in on 127.0.0.1, gives a provider four throwaway keys and
runs a small Agno Agent with a tool on get_model(...): calls spread over the keys, a
rate limit absorbed by rotation, a revoked key retired, then a summary. Nothing leaves
the machine; no usage row is written. Exit 1 if a run reached the agent as an error."""),
    "status": ("every key now: ready, cooling, out of quota or dead, and its windows", """\
examples:
  hfs status                     one line per key
  hfs status --watch -p groq     live, every second, until Ctrl-C
  hfs status --json | jq '.providers.groq.next_free'

With HFS_STATE_URL (or [state] url) it reads the fleet's shared state in Redis:
every process's calls in flight, cooldowns, dead keys and learned caps, with no
application running. Keys are shown by their last 4 characters only."""),
    "usage": ("requests and tokens per provider, key and model", """\
examples:
  hfs usage                      the last 24 hours
  hfs usage --since 7d --provider groq
  hfs usage --since all --json

Reads keycycle's usage_logs table in HFS_USAGE_DB_URL (or TIDB_DB_URL), usage_db_url
from the config, or the SQLite default. Keys are shown by their last 4 characters only."""),
    "keys": ("put a retired key back in service for every process sharing the state", """\
examples:
  hfs keys revive groq 7f3a        the Groq key ending in 7f3a (its last 4 to 8 characters)

A key answered 401/402/403 is retired: kept out of rotation by every process sharing
the state (HFS_STATE_URL) until its dead flag expires, 25 h after the pool last wrote
it, or until it is revived. A cooldown it has (a daily quota) runs on. Without shared
state a key is retired only in the process that retired it, until that process restarts."""),
}
"""Each command's summary and epilog; its code is `cmd_<name>` in ``hfs_core.cli.<name>``, imported only
when the command runs."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter, descriptions and epilogs as written, its width found as `shutil.get_terminal_size`
    finds it but without importing shutil (with its compression modules, 1.5 ms of a command that prints no
    help: argparse makes a formatter for each argument added)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, width or _columns() - 2)


def _columns() -> int:
    """The terminal's width: ``$COLUMNS``, else stdout's terminal's, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def _global_options(where: str) -> argparse.ArgumentParser:
    """``-v`` and ``--debug``, given `where` ("before" or "after" the command): each place has its own
    destinations (a command's parser would otherwise overwrite what was given before it), summed by `main`."""
    options = argparse.ArgumentParser(add_help=False, formatter_class=_Formatter)
    options.add_argument("-v", "--verbose", action="count", default=0, dest=f"verbose_{where}",
                         help="show library logs (-v info, -vv debug)")
    options.add_argument("--debug", action="store_true", dest=f"debug_{where}",
                         help="show a traceback on errors (also HFS_DEBUG=1)")
    return options


def _providers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="fail on warnings too")
    parser.add_argument("--skip-db", action="store_true", help="do not try to reach the usage database")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _models(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("provider", nargs="?", metavar="PROVIDER", help="one provider (default: all installed)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _ask(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-p", "--provider", metavar="PROVIDER", help="provider to use (default: first with keys)")
    which.add_argument("-m", "--model", type=provider_model, metavar="PROVIDER:MODEL",
                       help="provider and model, e.g. groq:openai/gpt-oss-20b")
    which.add_argument("-t", "--tier", metavar="TIER", help="a tier, e.g. fast: its first entry that can serve")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="print the answer when complete")
    parser.add_argument("--base-url", metavar="URL", help="send the call to this URL (a proxy or a local stand-in)")
    parser.add_argument("--timeout", type=positive_float, default=ASK_TIMEOUT, metavar="S",
                        help=f"seconds to wait for a free key and in back-off (default {ASK_TIMEOUT:g})")
    parser.add_argument("prompt", nargs="+", metavar="PROMPT", help="the prompt; - reads it from stdin")


def _demo(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--provider", metavar="PROVIDER", help="provider to show (default: groq, else the "
                        "first installed)")


def _status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--provider", metavar="PROVIDER", help="only this provider")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--json", action="store_true", help="print JSON for scripts")
    shown.add_argument("--watch", action="store_true", help="redraw every second until Ctrl-C, as top does")


def _usage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--provider", metavar="PROVIDER", help="only this provider")
    parser.add_argument("--since", type=parse_since, default="24h", metavar="AGE",
                        help="how far back: 30m, 24h (default), 7d, or all")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _keys(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions", required=True)
    revive = actions.add_parser("revive", help="put a retired key back in service",
                                description="Put a retired key back in service for every process sharing the "
                                            "state.", formatter_class=_Formatter)
    revive.add_argument("provider", metavar="PROVIDER", help="the provider, e.g. groq")
    revive.add_argument("suffix", metavar="SUFFIX", help=f"the key's last {SUFFIX_SHORTEST} to {SUFFIX_LONGEST} "
                        f"characters, as logs and `{PROG} usage` show")


_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "providers": _providers, "check": _check, "models": _models, "ask": _ask, "demo": _demo, "status": _status,
    "usage": _usage, "keys": _keys,
}
"""Each command's own arguments, in the order ``hfs --help`` lists the commands."""


def named_command(argv: Sequence[str]) -> str | None:
    """The command `argv` names (its first word that is not an option), if it is one of ``hfs``'s."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in _ARGUMENTS else None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``hfs`` and its commands; given `command`, of that command alone (what
    parsing its command line needs: a listing then builds one command's parser, not nine)."""
    common = _global_options("after")
    parser = argparse.ArgumentParser(
        prog=PROG, description="Rotating, rate-limited Agno models from many providers: inspect and use them.",
        epilog=_EPILOG, formatter_class=_Formatter, parents=[_global_options("before")])
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__} (hfs-core, Python "
                        f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro})")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, arguments in _ARGUMENTS.items():
        if command in (None, name):
            summary, epilog = _COMMANDS[name]
            arguments(commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                                          epilog=epilog, formatter_class=_Formatter, parents=[common]))
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse `argv`; with no command, print the help and exit 0 (as ``hfs --help`` does).

    ``-v`` counts wherever it is given (``hfs -v check -v`` is ``-vv``), and so does ``--debug``.
    """
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        parser.exit(0)
    args.verbose = args.verbose_before + args.verbose_after
    args.debug = args.debug_before or args.debug_after
    return args


def _env_flag(name: str) -> bool:
    """Whether environment variable `name` is set to a true value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _error_hint(exc: BaseException) -> str:
    """What to do about an exception of the registry (or a generic pointer to --debug)."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "NoAvailableKeyError" in names:
        return "retry later, allow a longer wait with --timeout, or add keys; `hfs usage` shows recent use"
    if "ProviderNotFoundError" in names:
        return "run `hfs providers` to see the installed plugins"
    if "ProviderUnavailableError" in names:
        return "run `hfs check` for every problem and how to fix it"
    if "ConfigError" in names:
        return "fix the file named above, or point HFS_CONFIG at another one"
    if "HFSError" in names:
        return "run `hfs check`"
    return "run with --debug for the traceback"


def _fail(exc: BaseException, debug: bool) -> int:
    """Report `exc` as one line and a hint on stderr (after a traceback with --debug); returns 1."""
    if debug:
        import traceback

        sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
    from hfs_core.cli.common import CliError

    if isinstance(exc, CliError):
        message, hint = str(exc), exc.hint
    else:
        from hfs_core.errors import HFSError

        text = str(exc).strip().splitlines()
        first = text[0] if text else ""
        message = first if isinstance(exc, HFSError) and first else f"{type(exc).__name__}: {first}".rstrip(": ")
        hint = _error_hint(exc)
    sys.stderr.write(scrub(f"{PROG}: error: {message}\n"))
    if hint and not (debug and "--debug" in hint):
        sys.stderr.write(scrub(f"  hint: {hint}\n"))
    sys.stderr.flush()
    return 1


def run() -> NoReturn:
    """The ``hfs`` console script (and ``python -m hfs_core.cli``): `main` on the command line, then exit.

    Before the interpreter tears itself down, the objects alive are frozen out of the cyclic garbage
    collector (`gc.freeze`): the collections CPython runs while finalizing would only look over a
    process that is about to end (a tenth of ``hfs providers``' time; docs/cli.md, "Start-up cost").
    The exit handlers (the usage store's last flush) still run, and `main` called from Python is
    left as it is.
    """
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hfs`` with `argv` (default: the command line); returns the exit status."""
    parser = build_parser(named_command(sys.argv[1:] if argv is None else argv))
    args = _parse(parser, argv)
    debug = bool(args.debug) or _env_flag(DEBUG_ENV)
    args.debug = debug
    log_filter = setup_logging(int(args.verbose), debug)
    handler: Callable[[argparse.Namespace, LogFilter], int] = getattr(
        importlib.import_module(f"hfs_core.cli.{args.command}"), f"cmd_{args.command}")
    try:
        return handler(args, log_filter)
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `hfs usage | head`): stop quietly.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        return _fail(exc, debug)
