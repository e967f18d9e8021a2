"""The process-wide registry, made on first use and shut down at exit, and the older API's names for it
(``ProviderManager``, ``get_provider_manager``, the module functions HFS calls, ``get_<provider>_model``)."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from typing import Any

from hfs_core.discovery import in_plugin_code
from hfs_core.errors import HFSError
from hfs_core.registry import Registry

ProviderManager = Registry
"""The name HFS code already uses for the registry."""

_registry: Registry | None = None
_registry_lock = threading.RLock()
_creating = False
_atexit_registered = False


def get_registry() -> Registry:
    """The process-wide registry, created once even when many threads ask at the same moment."""
    global _registry, _atexit_registered, _creating
    registry = _registry
    if registry is None:
        if in_plugin_code():  # a plugin's import or hook, run for the registry being created
            raise HFSError("get_registry() was called while the registry is being created (by a "
                           "plugin at import time?); call it after the import instead")
        with _registry_lock:
            if _registry is None:
                if _creating:  # the same thread, from inside Registry()
                    raise HFSError("get_registry() was called while the registry is being created (by a "
                                   "plugin at import time?); call it after the import instead")
                _creating = True
                try:
                    _registry = Registry()
                finally:
                    _creating = False
                if not _atexit_registered:
                    atexit.register(shutdown)
                    _atexit_registered = True
            registry = _registry
    return registry


def get_provider_manager() -> Registry:
    """The older name of `get_registry`."""
    return get_registry()


def get_model(provider: str, model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating Agno model from the process-wide registry; see `Registry.get_model`."""
    return get_registry().get_model(provider, model_id, **kwargs)


def get_any_model(**kwargs: Any) -> Any:
    """A model over every usable provider of the process-wide registry; see `Registry.get_any_model`."""
    return get_registry().get_any_model(**kwargs)


def list_available_providers() -> list[str]:
    """Providers of the process-wide registry that can serve a call now."""
    return get_registry().available_providers


def is_provider_healthy(name: str) -> bool:
    """Whether provider `name` of the process-wide registry can serve a call now."""
    return get_registry().is_provider_healthy(name)


def status() -> dict[str, Any]:
    """Every key and tier entry of the process-wide registry, JSON-ready; see `Registry.status`."""
    return get_registry().status()


def provider_helper(provider: str) -> Callable[..., Any] | None:
    """``get_<provider>_model(model_id=None, **kwargs)`` for an installed provider (None for any other
    name): `get_model` of the process-wide registry for that provider."""
    if provider not in get_registry().specs:
        return None

    def get_provider_model(model_id: str | None = None, **kwargs: Any) -> Any:
        return get_model(provider, model_id, **kwargs)

    get_provider_model.__name__ = f"get_{provider}_model"
    get_provider_model.__doc__ = f"A rotating {provider} model; see `get_model`."
    return get_provider_model


def shutdown() -> None:
    """Shut the process-wide registry down (registered with atexit; safe to call twice)."""
    if _registry is not None:
        _registry.shutdown()
