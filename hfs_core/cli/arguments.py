"""The argument types of ``hfs``'s commands, apart from the commands so that the parser loads none of them
(``hfs --help`` and each command import only what they use)."""

from __future__ import annotations

import argparse
import re

ASK_TIMEOUT = 60.0
"""Default seconds `hfs ask` may wait for a free key (and spend in back-off)."""
SUFFIX_SHORTEST, SUFFIX_LONGEST = 4, 8
"""How many of a key's last characters ``hfs keys revive`` takes."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def positive_float(text: str) -> float:
    """Parse ``--timeout``: a number of seconds, 0 or more (``inf``: wait without limit)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:  # negative, or nan
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds (or inf), got {text!r}")
    return value


def provider_model(text: str) -> str:
    """Check the argument of ``-m``: PROVIDER:MODEL."""
    provider, colon, model = text.partition(":")
    if not colon or not provider.strip() or not model.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not PROVIDER:MODEL; e.g. groq:openai/gpt-oss-20b, "
                                         "or -p PROVIDER for its default model")
    return text


class Since:
    """How far back `hfs usage` looks: `seconds` (None: all time) as the user wrote it."""

    __slots__ = ("seconds", "text")

    def __init__(self, seconds: float | None, text: str) -> None:
        self.seconds = seconds
        self.text = text


def parse_since(text: str) -> Since:
    """``30m``, ``24h``, ``7d`` (also ``s`` and ``w``), or ``all``."""
    if text.strip().lower() == "all":
        return Since(None, "all")
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text.lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration; use e.g. 30m, 24h, 7d or all")
    return Since(float(match.group(1)) * _UNITS[match.group(2)], text.strip())
