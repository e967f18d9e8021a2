"""The registry's exceptions. None of their messages ever holds a full key."""

from __future__ import annotations


class HFSError(Exception):
    """Base of every error the registry raises on purpose."""


class ConfigError(HFSError, ValueError):
    """A configuration file or value is malformed; the message names the file or variable."""


class ProviderNotFoundError(HFSError, LookupError):
    """No installed plugin provides the requested provider."""


class ProviderUnavailableError(HFSError, RuntimeError):
    """The provider is installed but disabled, unconfigured or broken; the message says which variable."""
