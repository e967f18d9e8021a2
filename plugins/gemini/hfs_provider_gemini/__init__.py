"""hfs provider plugin: Gemini."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hfs_core import Problem, ProviderSpec, get_model, hookimpl, key_shape_problems


def sdk_options(base_url: str | None) -> dict[str, Any]:
    """google-genai takes its base URL and retry policy in ``http_options``; one attempt only."""
    http_options: dict[str, Any] = {"retry_options": {"attempts": 1}}
    if base_url:
        http_options["base_url"] = base_url
    return {"client_params": {"http_options": http_options}}


SPEC = ProviderSpec(
    name="gemini",
    default_model="gemini-2.5-flash",
    expected_keys=110,
    model_class="agno.models.google:Gemini",
    key_prefix="AIza",
    docs_url="https://aistudio.google.com/apikey",
    sdk_options=sdk_options,
)


@hookimpl
def register_provider() -> ProviderSpec:
    """The Gemini provider."""
    return SPEC


@hookimpl
def validate_env(spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """Gemini keys are 39 characters starting with AIza."""
    return key_shape_problems(spec, env, r"AIza[0-9A-Za-z_-]{35}", "39 characters starting with AIza")


def get_gemini_model(model_id: str | None = None, **kwargs: Any) -> Any:
    """A rotating Gemini model (the older helper name); see `hfs_core.get_model`."""
    return get_model("gemini", model_id, **kwargs)
