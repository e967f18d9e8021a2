"""hfs provider plugin: Cerebras."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfs_core import Problem, ProviderSpec, get_model, hookimpl, key_shape_problems

SPEC = ProviderSpec(
    name="cerebras",
    default_model="gpt-oss-120b",
    expected_keys=51,
    model_class="agno.models.cerebras:Cerebras",
    key_prefix="csk-",
    docs_url="https://cloud.cerebras.ai",
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Cerebras provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Cerebras keys are csk- followed by letters and digits."""
    return key_shape_problems(spec, env, r"csk-[A-Za-z0-9]{32,}", "csk- followed by letters and digits")


def get_cerebras_model(model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating Cerebras model (the older helper name); see `hfs_core.get_model`."""
    return get_model("cerebras", model_id, **kwargs)
