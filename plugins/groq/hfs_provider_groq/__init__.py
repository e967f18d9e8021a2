"""hfs provider plugin: Groq."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfs_core import Problem, ProviderSpec, get_model, hookimpl, key_shape_problems

SPEC = ProviderSpec(
    name="groq",
    default_model="openai/gpt-oss-120b",
    expected_keys=16,
    model_class="agno.models.groq:Groq",
    key_prefix="gsk_",
    docs_url="https://console.groq.com/keys",
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Groq provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Groq keys are gsk_ followed by letters and digits."""
    return key_shape_problems(spec, env, r"gsk_[A-Za-z0-9]{40,}", "gsk_ followed by letters and digits")


def get_groq_model(model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating Groq model (the older helper name); see `hfs_core.get_model`."""
    return get_model("groq", model_id, **kwargs)
