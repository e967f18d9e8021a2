"""The hooks a provider plugin implements."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from hfs_core.env import Problem
    from hfs_core.spec import ProviderSpec

hookspec = pluggy.HookspecMarker("hfs")
hookimpl = pluggy.HookimplMarker("hfs")


@hookspec
def register_provider() -> ProviderSpec:  # type: ignore[empty-body]
    """Return the ProviderSpec that describes this plugin's provider."""


@hookspec
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:  # type: ignore[empty-body]
    """Return this provider's own problems with the environment (the core's checks run anyway)."""
