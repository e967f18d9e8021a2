"""keycycle's names the core uses, loaded without keycycle's side effects and without its heavy half.

Two costs are avoided here:

* keycycle calls ``logging.config.dictConfig`` at import, which puts a rich console handler
  on the root logger and opens ``app.log`` in the working directory. Every keycycle import
  below runs with that call disabled, so whichever module loads first, keycycle never
  configures logging.
* keycycle's package ``__init__`` imports its legacy wrapper, and with it the openai SDK and
  SQLAlchemy (over a second cold), although a pool needs only keycycle's dataclasses, enums,
  constants, strategy table and its ``NoAvailableKeyError``. Unless keycycle is already
  imported, the package is entered in ``sys.modules`` without running its ``__init__``; those
  submodules then load alone (about 0.2 s against 1.7 s or more). The first time anything
  asks the package itself for a name (``keycycle.MultiProviderWrapper``, ``from keycycle
  import X``, or `UsageDatabase` here), its ``__init__`` runs in that same module object and
  reuses the submodules already loaded: ``keycycle.NoAvailableKeyError`` is the very class
  imported here, so the refusals that subclass it are caught by code written against keycycle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging.config
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any


@contextlib.contextmanager
def _without_logging_config() -> Iterator[None]:
    original = logging.config.dictConfig
    logging.config.dictConfig = lambda config: None
    try:
        yield
    finally:
        logging.config.dictConfig = original


_finishing = threading.RLock()
_running: set[str] = set()


def _finish(package: ModuleType) -> None:
    """Run keycycle's package ``__init__`` in `package`, once (a name asked of it meanwhile, in the
    thread running it, is looked up among what is loaded so far)."""
    with _finishing:
        if "__getattr__" not in package.__dict__ or package.__name__ in _running:
            return
        spec = package.__spec__
        assert spec is not None and spec.loader is not None
        _running.add(package.__name__)
        try:
            with _without_logging_config():
                spec.loader.exec_module(package)
            del package.__dict__["__getattr__"]
        finally:
            _running.discard(package.__name__)


def _defer_package_init() -> None:
    """Enter keycycle in ``sys.modules`` with its ``__init__`` deferred to the first name asked of it."""
    if "keycycle" in sys.modules:
        return
    spec = importlib.util.find_spec("keycycle")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'keycycle'", name="keycycle")
    package = importlib.util.module_from_spec(spec)

    def first_use(name: str) -> Any:
        _finish(package)
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module 'keycycle' has no attribute {name!r}") from None

    package.__getattr__ = first_use  # type: ignore[method-assign]
    sys.modules["keycycle"] = package


with _without_logging_config():
    _defer_package_init()
    from keycycle.config.constants import DEFAULT_COOLDOWN_SECONDS, KEY_SUFFIX_LENGTH
    from keycycle.config.dataclasses import KeyUsage, RateLimits
    from keycycle.config.enums import RateLimitStrategy
    from keycycle.config.models import PROVIDER_STRATEGIES
    from keycycle.core.exceptions import NoAvailableKeyError


def __getattr__(name: str) -> Any:
    """keycycle's heavy names (`MultiProviderWrapper`, `UsageDatabase`: the openai SDK, SQLAlchemy), on first use."""
    if name == "MultiProviderWrapper":
        import keycycle

        return keycycle.MultiProviderWrapper
    if name == "UsageDatabase":
        with _without_logging_config():
            from keycycle.usage import UsageDatabase
        return UsageDatabase
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_COOLDOWN_SECONDS",
    "KEY_SUFFIX_LENGTH",
    "PROVIDER_STRATEGIES",
    "KeyUsage",
    "NoAvailableKeyError",
    "RateLimitStrategy",
    "RateLimits",
]
