"""The tier table: which tiers there are and the entries (``provider:model``) each lists, in order of
preference. `hfs_core.tier` builds the one Agno model over a tier's entries; this module imports no agno."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hfs_core import catalog
from hfs_core.errors import HFSError
from hfs_core.plugin import TIER_NAMES, ProviderSpec
from hfs_core.settings import Settings

DEFAULT_TIERS = TIER_NAMES
"""The tiers HFS asks for. With no ``[tiers]`` in the configuration each lists the models every loaded
provider's plugin states for it (`ProviderSpec.tiers`; its default model where it states none), in
the order `default_tier` gives."""
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


def daily_requests(settings: Settings, spec: ProviderSpec, model: str) -> float:
    """The requests a day one key may make on `model`, as `catalog.resolve_limits` holds it to (inf:
    no daily limit). Read without keycycle's table (and so without PyYAML) unless only it can tell."""
    configured = settings.config.provider(spec.name).models.get(model, {})
    row = catalog.plugin_table(spec.limits).models.get(model, {})
    if "rpd" in configured or "rpd" in row:
        return configured.get("rpd") or row["rpd"]
    if not catalog.is_known_model(spec, model):
        return catalog.DEFAULT_LIMITS["rpd"]
    return catalog.resolve_limits(spec, model, configured).value("rpd") or float("inf")


def default_tier(tier: str, settings: Settings, specs: Mapping[str, ProviderSpec]) -> tuple[str, ...]:
    """The default tier `tier`: the models each provider states for it (its default model where it
    states none), each provider's first choice before any second choice; among equals the model with
    the most requests a day per key first (the biggest free budget), then in the providers' order of names."""
    ranked = []
    for name, spec in specs.items():
        for rank, model in enumerate(spec.tiers.get(tier) or (settings.default_model(spec),)):
            ranked.append((rank, -daily_requests(settings, spec, model), name, f"{name}:{model}"))
    return tuple(entry for *_, entry in sorted(ranked))


def tiers(settings: Settings, specs: Mapping[str, ProviderSpec]) -> dict[str, tuple[str, ...]]:
    """Each tier's entries: the configuration's, or with none there, each of `DEFAULT_TIERS` as
    `default_tier` builds it."""
    if settings.config.tiers:
        return dict(settings.config.tiers)
    return {tier: default_tier(tier, settings, specs) for tier in DEFAULT_TIERS}


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
