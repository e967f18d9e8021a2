"""keycycle's names the core uses, imported without keycycle's logging side effects.

keycycle calls ``logging.config.dictConfig`` at import, which puts a rich console handler
on the root logger and opens ``app.log`` in the working directory. This module imports
keycycle with that call disabled; the rest of the core takes keycycle's names from here,
so whichever module loads first, keycycle never configures logging. Importing this module
loads keycycle (and SQLAlchemy): import it only where a pool or the usage store is built.
"""

from __future__ import annotations

import contextlib
import logging.config
from collections.abc import Iterator


@contextlib.contextmanager
def _without_logging_config() -> Iterator[None]:
    original = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        yield
    finally:
        logging.config.dictConfig = original


with _without_logging_config():
    from keycycle import MultiProviderWrapper, NoAvailableKeyError
    from keycycle.config.constants import DEFAULT_COOLDOWN_SECONDS, KEY_SUFFIX_LENGTH
    from keycycle.config.dataclasses import KeyUsage, RateLimits
    from keycycle.config.enums import RateLimitStrategy
    from keycycle.usage import UsageDatabase

__all__ = [
    "DEFAULT_COOLDOWN_SECONDS",
    "KEY_SUFFIX_LENGTH",
    "KeyUsage",
    "MultiProviderWrapper",
    "NoAvailableKeyError",
    "RateLimitStrategy",
    "RateLimits",
    "UsageDatabase",
]
