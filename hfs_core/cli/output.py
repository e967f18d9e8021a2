"""What ``hfs`` prints: tables, JSON and lines on stdout, and the log records it lets through to stderr.

Everything printed passes `scrub`, which cuts every API key the command has seen down to
its last 4 characters. Tables are rich on a terminal (imported only then) and aligned plain
text otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Collection, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from hfs_core.env import SecretMask

PROG = "hfs"

Cell = str | tuple[str, str]
"""A table cell: its text, or (text, rich style) for terminals."""

# -- secrets -------------------------------------------------------------------------------

_masks: list[SecretMask] = []


def remember_secrets(mask: SecretMask) -> None:
    """Hide what `mask` hides (the registry's: every key it read, and words shaped like keys) in all
    this command prints."""
    _masks.append(mask)


def scrub(text: str) -> str:
    """`text` with every key cut down to its last 4 characters."""
    for mask in _masks:
        text = mask(text)
    return text


# -- logging -------------------------------------------------------------------------------

_THIRD_PARTY_ROOTS = ("agno", "agno-team", "agno-workflow")


class LogFilter(logging.Filter):
    """Lets the registry's own messages through and keeps libraries quiet unless ``-v``.

    `muted` drops the registry's start-up messages below ERROR (``providers`` and ``check``
    print those problems themselves); `loud` names hfs_core loggers shown from INFO on.
    """

    def __init__(self, verbosity: int, debug: bool = False) -> None:
        super().__init__()
        self.verbosity = verbosity
        self.debug = debug
        self.muted = False
        self.loud: tuple[str, ...] = ()

    def show_info(self, *loggers: str) -> None:
        """Show INFO messages of these hfs_core loggers even without ``-v``."""
        self.loud = loggers
        for name in loggers:
            logger = logging.getLogger(name)
            if logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name == "hfs_core" or name.startswith("hfs_core."):
            if self.verbosity >= 1:
                shown = True
            elif self.muted:
                shown = record.levelno >= logging.ERROR
            else:
                shown = record.levelno >= logging.WARNING or (
                    record.levelno >= logging.INFO and any(name.startswith(n) for n in self.loud))
        else:
            floor = logging.DEBUG if self.verbosity >= 2 else logging.INFO if self.verbosity == 1 else \
                logging.WARNING if self.debug else logging.CRITICAL + 1
            shown = record.levelno >= floor
        if shown:
            record.msg = scrub(record.getMessage())
            record.args = None
        return shown


class _Formatter(logging.Formatter):
    """``hfs: message`` for the registry, ``name: LEVEL: message`` for libraries; keys scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return scrub(text)

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.name.startswith("hfs_core"):
            level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
            return f"{PROG}: {level}{record.getMessage()}"
        return f"{record.name}: {record.levelname}: {record.getMessage()}"


def setup_logging(verbosity: int, debug: bool) -> LogFilter:
    """One stderr handler on the root logger; libraries' loggers are kept from printing on their own.

    Libraries are shown from INFO with ``-v``, DEBUG with ``-vv``, and their warnings and
    errors (with tracebacks) with ``--debug``.
    """
    handler = logging.StreamHandler(sys.stderr)
    log_filter = LogFilter(verbosity, debug)
    handler.addFilter(log_filter)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = logging.DEBUG if verbosity >= 2 else logging.INFO if verbosity == 1 else logging.WARNING
    root.setLevel(level)
    # Agno adopts a logger that is already configured instead of adding its own handler,
    # which would otherwise write its messages to stdout, into the answer.
    for name in _THIRD_PARTY_ROOTS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.propagate = True
    logging.captureWarnings(True)
    return log_filter


# -- stdout ----------------------------------------------------------------------------------


def is_terminal(stream: TextIO) -> bool:
    """Whether `stream` is an interactive terminal (False for pipes, files and closed streams)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@contextlib.contextmanager
def spinner(text: str, *, shown: bool = True) -> Iterator[None]:
    """A spinner and `text` on stderr while the block runs (a slow database, say), only when `shown`
    and both stdout and stderr are terminals: never in pipes, files or JSON output. rich is
    imported only then; the spinner line is cleared when the block ends."""
    if not (shown and is_terminal(sys.stdout) and is_terminal(sys.stderr)):
        yield
        return
    from rich.console import Console

    with Console(stderr=True, highlight=False).status(scrub(text)):
        yield


def print_json(data: Any) -> None:
    """Print `data` as indented JSON on stdout."""
    import json

    sys.stdout.write(scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")


def out(text: str = "") -> None:
    """Print one line on stdout, keys scrubbed."""
    sys.stdout.write(scrub(text) + "\n")


def warn(text: str) -> None:
    """Print one line on stderr, keys scrubbed."""
    print(scrub(text), file=sys.stderr)


def _text(cell: Cell) -> str:
    """The text of a table cell, without its style."""
    return cell if isinstance(cell, str) else cell[0]


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, right: Collection[int] = (),
          title: str | None = None) -> None:
    """Print a table: rich on a terminal (imported only then), aligned plain text otherwise."""
    if is_terminal(sys.stdout):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        rich_table = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
        for index, header in enumerate(headers):  # on a narrow terminal long cells wrap, short ones stay whole
            widest = max([len(header)] + [len(_text(row[index])) for row in rows])
            rich_table.add_column(header, justify="right" if index in right else "left", overflow="fold",
                                  no_wrap=widest <= 12)
        for row in rows:
            rich_table.add_row(*(Text(scrub(_text(c)), style="" if isinstance(c, str) else c[1]) for c in row))
        Console(highlight=False).print(rich_table)
        return
    if title:
        out(title)
    widths = [max([len(h)] + [len(_text(r[i])) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    out(line(headers))
    for row in rows:
        out(line([_text(c) for c in row]))


def plural(count: int, word: str) -> str:
    """``1 error``, ``2 errors``."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"
