"""hfs provider plugin: OpenRouter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfs_core import Problem, ProviderSpec, get_model, hookimpl, key_shape_problems

SPEC = ProviderSpec(
    name="openrouter",
    default_model="nvidia/nemotron-3-super-120b-a12b:free",
    expected_keys=31,
    model_class="agno.models.openrouter:OpenRouter",
    key_prefix="sk-or-",
    docs_url="https://openrouter.ai/keys",
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The OpenRouter provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """OpenRouter keys are sk-or-v1- followed by 64 hex digits."""
    return key_shape_problems(spec, env, r"sk-or-v1-[0-9a-f]{64}", "sk-or-v1- followed by 64 hex digits")


def get_openrouter_model(model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating OpenRouter model (the older helper name); see `hfs_core.get_model`."""
    return get_model("openrouter", model_id, **kwargs)
