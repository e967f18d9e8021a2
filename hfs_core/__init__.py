"""hfs providers: rotating, rate-limited Agno models from many providers, one pool of keys each.

    from hfs_core import get_model
    model = get_model("groq")                      # or "groq:openai/gpt-oss-20b", or a tier: "fast"
    Agent(model=model).run("hi")

Importing this package loads nothing but the standard library's logging: each public name loads
its module on first use, and agno, keycycle and the provider SDKs load only when a provider's
pool is first needed.
"""

from __future__ import annotations

import importlib
import logging
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hfs_core.config import Config, ProviderConfig, load_config
    from hfs_core.discovery import PluginInfo
    from hfs_core.env import EnvReport
    from hfs_core.errors import ConfigError, HFSError, ProviderNotFoundError, ProviderUnavailableError
    from hfs_core.plugin import (
        Action,
        Counts,
        ErrorRules,
        Problem,
        ProviderReply,
        ProviderSpec,
        Timeouts,
        Verdict,
        Window,
        declared_keys,
        hookimpl,
        key_shape_problems,
        openai_style_options,
        parse_duration,
        seconds_until_midnight,
    )
    from hfs_core.pool import (
        AllKeysDeadError,
        CallOptions,
        KeyPool,
        NoAvailableKeyError,
        PoolExhaustedError,
        ProviderBusyError,
        RequestTooLargeError,
    )
    from hfs_core.process import (
        ProviderManager,
        get_any_model,
        get_model,
        get_provider_manager,
        get_registry,
        is_provider_healthy,
        list_available_providers,
        shutdown,
        status,
    )
    from hfs_core.registry import Registry
    from hfs_core.tier_table import TierEntry

__version__ = "0.1.0"

logging.getLogger("hfs_core").addHandler(logging.NullHandler())

__all__ = [
    "Action",
    "AllKeysDeadError",
    "CallOptions",
    "Config",
    "ConfigError",
    "Counts",
    "EnvReport",
    "ErrorRules",
    "HFSError",
    "KeyPool",
    "NoAvailableKeyError",
    "PluginInfo",
    "PoolExhaustedError",
    "Problem",
    "ProviderBusyError",
    "ProviderConfig",
    "ProviderManager",
    "ProviderNotFoundError",
    "ProviderReply",
    "ProviderSpec",
    "ProviderUnavailableError",
    "Registry",
    "RequestTooLargeError",
    "TierEntry",
    "Timeouts",
    "Verdict",
    "Window",
    "declared_keys",
    "get_any_model",
    "get_model",
    "get_provider_manager",
    "get_registry",
    "hookimpl",
    "is_provider_healthy",
    "key_shape_problems",
    "list_available_providers",
    "load_config",
    "openai_style_options",
    "parse_duration",
    "seconds_until_midnight",
    "shutdown",
    "status",
]

_HOMES = {
    "config": ("Config", "ProviderConfig", "load_config"),
    "discovery": ("PluginInfo",),
    "env": ("EnvReport",),
    "errors": ("ConfigError", "HFSError", "ProviderNotFoundError", "ProviderUnavailableError"),
    "plugin": ("Action", "Counts", "ErrorRules", "Problem", "ProviderReply", "ProviderSpec", "Timeouts", "Verdict",
               "Window", "declared_keys", "hookimpl", "key_shape_problems", "openai_style_options",
               "parse_duration", "seconds_until_midnight"),
    "pool": ("AllKeysDeadError", "CallOptions", "KeyPool", "NoAvailableKeyError", "PoolExhaustedError",
             "ProviderBusyError", "RequestTooLargeError"),
    "process": ("ProviderManager", "get_any_model", "get_model", "get_provider_manager", "get_registry",
                "is_provider_healthy", "list_available_providers", "shutdown", "status"),
    "registry": ("Registry",),
    "tier_table": ("TierEntry",),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    """Load each public name from its module on first use (so that ``import hfs_core`` loads none of
    them), and serve ``get_<provider>_model`` for installed providers."""
    module = _HOME.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f"hfs_core.{module}"), name)
        globals()[name] = value
        return value
    match = re.fullmatch(r"get_(\w+)_model", name)
    if match:
        from hfs_core.process import provider_helper

        helper = provider_helper(match.group(1))
        if helper is not None:
            return helper
    raise AttributeError(f"module 'hfs_core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
