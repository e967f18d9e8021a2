"""ProviderSpec: what a provider plugin tells the registry about its provider."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keycycle import MultiProviderWrapper

WrapperFactory = Callable[["ProviderSpec", Sequence[str], str], "MultiProviderWrapper"]
SdkOptions = Callable[[str | None], dict[str, Any]]


def keycycle_wrapper(spec: ProviderSpec, keys: Sequence[str], default_model: str) -> MultiProviderWrapper:
    """Build the keycycle wrapper that holds a provider's key windows.

    Keys come from the registry (never from keycycle's own `.env` loader) and
    usage persistence is the registry's, so keycycle tracks usage in memory only.
    """
    from hfs_core.pool import keycycle_module

    keycycle = keycycle_module()
    logger = logging.getLogger(f"keycycle.{spec.name}")
    wrapper: MultiProviderWrapper = keycycle.MultiProviderWrapper(
        spec.keycycle_name, list(keys), default_model, model_class=None, track_usage=False, logger=logger
    )
    logger.setLevel(logging.NOTSET)  # keycycle forces INFO on it; let the application decide
    return wrapper


def openai_style_options(base_url: str | None) -> dict[str, Any]:
    """Model kwargs for SDKs shaped like OpenAI's: no SDK retries, optional base URL."""
    options: dict[str, Any] = {"max_retries": 0}
    if base_url:
        options["base_url"] = base_url
    return options


@dataclass(frozen=True)
class ProviderSpec:
    """A provider as a plugin describes it; the registry does the rest.

    Attributes:
        name: provider name used in `get_model("name")` and in env variable names.
        default_model: model ID used when the caller names none.
        expected_keys: how many keys the fleet is expected to have (a different count warns).
        model_class: the Agno model class as ``"module:Class"``, imported only when needed.
        env_prefix: prefix of ``NUM_<PREFIX>`` and ``<PREFIX>_API_KEY_<i>``; defaults to ``NAME``.
        key_prefix: how this provider's keys start (e.g. ``"gsk_"``), used to spot misplaced keys.
        sdk_options: model kwargs that turn off the SDK's own retries and point it at a base URL.
        wrapper_factory: builds the keycycle wrapper that holds the key windows.
        keycycle_name: the provider's name in keycycle's limit tables; defaults to ``name``.
        docs_url: where to get keys, shown in hints.
    """

    name: str
    default_model: str
    expected_keys: int
    model_class: str
    env_prefix: str = ""
    key_prefix: str | None = None
    sdk_options: SdkOptions = openai_style_options
    wrapper_factory: WrapperFactory = keycycle_wrapper
    keycycle_name: str = ""
    docs_url: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"provider name must be lower-case letters, digits or '_', got {self.name!r}")
        if not self.env_prefix:
            object.__setattr__(self, "env_prefix", self.name.upper())
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", self.env_prefix):
            raise ValueError(f"env_prefix must be upper-case letters, digits or '_', got {self.env_prefix!r}")
        if not isinstance(self.expected_keys, int) or isinstance(self.expected_keys, bool) or self.expected_keys < 1:
            raise ValueError(f"expected_keys must be a whole number of at least 1, got {self.expected_keys!r}")
        if not self.default_model or not self.default_model.strip():
            raise ValueError("default_model must name a model")
        if not self.keycycle_name:
            object.__setattr__(self, "keycycle_name", self.name)
        if ":" not in self.model_class:
            raise ValueError(f"model_class must be 'module:Class', got {self.model_class!r}")

    @property
    def count_var(self) -> str:
        """The variable holding the key count, e.g. ``NUM_GROQ``."""
        return f"NUM_{self.env_prefix}"

    def key_var(self, index: int) -> str:
        """The variable holding key `index` (1-based), e.g. ``GROQ_API_KEY_3``."""
        return f"{self.env_prefix}_API_KEY_{index}"
