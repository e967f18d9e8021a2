"""The tier table: which tiers there are and the entries (``provider:model``) each lists, in order of
preference. `hfs_core.tier` builds the one Agno model over a tier's entries; this module imports no agno."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hfs_core import catalog
from hfs_core.errors import HFSError
from hfs_core.plugin import ProviderSpec
from hfs_core.settings import Settings

DEFAULT_TIERS = ("reasoning", "general", "fast")
"""The tiers HFS asks for. With no ``[tiers]`` in the configuration each lists every loaded provider's
default model, in the order of the providers' names (the order `get_any_model` uses too)."""
ANY_TIER = "any"
"""The name `get_any_model`'s tier goes by."""


@dataclass(frozen=True)
class TierEntry:
    """One entry of a tier, as the registry sees it now.

    Attributes:
        provider: the provider it names.
        model: the model it names (its provider's default model when it names none; "" when the
            provider is unknown).
        problem: why it cannot serve calls (None: it can); the tier's other entries serve them.
        known_model: whether a limit table (the plugin's or keycycle's) holds the model (False: it
            is held to the conservative default, `catalog.DEFAULT_LIMITS`; None: not known, the
            provider is not loaded).
    """

    provider: str
    model: str
    problem: str | None = None
    known_model: bool | None = None

    @property
    def name(self) -> str:
        """``provider:model``, as `get_model` takes it."""
        return f"{self.provider}:{self.model}" if self.model else self.provider


def every_default_model(settings: Settings, specs: Mapping[str, ProviderSpec]) -> tuple[str, ...]:
    """Every loaded provider's default model (``provider:model``), in the order of the providers' names."""
    return tuple(f"{name}:{settings.default_model(spec)}" for name, spec in sorted(specs.items()))


def tiers(settings: Settings, specs: Mapping[str, ProviderSpec]) -> dict[str, tuple[str, ...]]:
    """Each tier's entries: the configuration's, or with none there, `DEFAULT_TIERS`, each
    `every_default_model`."""
    if settings.config.tiers:
        return dict(settings.config.tiers)
    return dict.fromkeys(DEFAULT_TIERS, every_default_model(settings, specs))


def tiers_source(settings: Settings) -> str:
    """Where the tiers come from: the configuration file, or ``"default"``."""
    return settings.config.source_name if settings.config.tiers else "default"


def tier_entries(names: tuple[str, ...], settings: Settings, specs: Mapping[str, ProviderSpec],
                 require: Callable[[str], object], mask: Callable[[str], str]) -> list[TierEntry]:
    """The entries `names` (``provider:model`` each) of a tier and whether each can serve calls now
    (`require` raises `HFSError` for a provider that cannot; `mask` hides keys in its message)."""
    entries = []
    for name in names:
        provider, _, model = name.partition(":")
        try:
            require(provider)
        except HFSError as exc:
            entries.append(TierEntry(provider, model, mask(str(exc))))
            continue
        model = model or settings.default_model(specs[provider])
        entries.append(TierEntry(provider, model, None, catalog.is_known_model(specs[provider], model)))
    return entries
