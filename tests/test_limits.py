"""Where a model's limits come from: the configuration, the plugin's table, keycycle's table, the
conservative default, per limit (`catalog.resolve_limits`), and the tables the plugins ship."""

from __future__ import annotations

import datetime
import importlib
import zipfile
from pathlib import Path

import pytest
from conftest import PROVIDERS, fake_key
from venvs import build_wheel

from hfs_core import catalog
from hfs_core.plugin import ProviderSpec
from hfs_core.pool import LocalPoolState, rate_limits

ROOT = Path(__file__).resolve().parent.parent
GROQ: ProviderSpec = importlib.import_module("hfs_provider_groq").SPEC


def sources(found: catalog.ResolvedLimits) -> dict[str, tuple[int | None, str | None]]:
    return {name: (limit.value, limit.source) for name, limit in found.limits.items()}


def test_config_beats_plugin_beats_keycycle_per_limit() -> None:
    # Groq's page states RPM, RPD, TPM and TPD for openai/gpt-oss-120b; keycycle's row adds RPH and TPH.
    found = catalog.resolve_limits(GROQ, "openai/gpt-oss-120b", {"rpm": 3, "tph": 99})
    assert found.known
    assert sources(found) == {"rpm": (3, "config"), "rph": (1000, "keycycle"), "rpd": (1000, "plugin"),
                              "tpm": (8000, "plugin"), "tph": (99, "config"), "tpd": (200000, "plugin")}


def test_keycycle_beats_the_default_for_a_model_only_keycycle_knows() -> None:
    assert "whisper-large-v3" not in catalog.plugin_table(GROQ.limits).models
    found = catalog.resolve_limits(GROQ, "whisper-large-v3")
    assert found.known and {limit.source for limit in found.limits.values()} <= {"keycycle", None}
    assert found.value("rpm") == 20


def test_a_model_no_table_knows_gets_the_default_where_the_config_sets_nothing() -> None:
    found = catalog.resolve_limits(GROQ, "no/such-model", {"rpm": 2})
    assert not found.known and not catalog.is_known_model(GROQ, "no/such-model")
    assert sources(found) == {"rpm": (2, "config"), "rph": (100, "default"), "rpd": (100, "default"),
                              "tpm": (None, None), "tph": (None, None), "tpd": (None, None)}
    assert {**catalog.DEFAULT_LIMITS} == {"rpm": 5, "rph": 100, "rpd": 100}


def test_the_pool_enforces_the_resolved_limits() -> None:
    configured = {"openai/gpt-oss-20b": {"tpm": 500}}
    state = LocalPoolState.build(GROQ, [fake_key("groq")], GROQ.default_model, configured)
    try:
        limits = state.limits("openai/gpt-oss-20b")
        assert (limits.requests_per_minute, limits.requests_per_day, limits.tokens_per_minute) == (30, 1000, 500)
        unknown = state.limits("no/such-model")
        assert (unknown.requests_per_minute, unknown.requests_per_hour, unknown.requests_per_day) == (5, 100, 100)
        assert unknown.tokens_per_minute is None
        assert unknown == rate_limits(GROQ, "no/such-model")
    finally:
        state.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_plugin_states_its_limits_with_their_source_and_date(provider: str) -> None:
    spec: ProviderSpec = importlib.import_module(f"hfs_provider_{provider}").SPEC
    table = catalog.plugin_table(spec.limits)
    assert not table.problem and table.source.startswith("https://")
    assert datetime.date.fromisoformat(table.read) <= datetime.date(2026, 12, 7)
    assert spec.default_model in table.models  # the default model is held to the provider's own figures
    assert all(row and set(row) <= set(catalog.LIMIT_FIELDS) for row in table.models.values())


def test_a_broken_plugin_table_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "broken_limits"
    package.mkdir()
    (package / "__init__.py").touch()
    (package / "limits.toml").write_text('source = "https://example.com"\nread = 2026-12-07\n'
                                         '[models]\nm = { rpm = 0 }\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    table = catalog.plugin_table("broken_limits:limits.toml")
    assert table.models == {} and "rpm = 0" in table.problem
    assert "cannot be used" in catalog.plugin_table("broken_limits:missing.toml").problem
    with pytest.raises(ValueError, match=r"package:file\.toml"):
        ProviderSpec(name="x", default_model="m", expected_keys=1, model_class="a:B", limits="limits.toml")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_plugin_wheel_ships_its_limit_table(provider: str, tmp_path: Path) -> None:
    wheel = build_wheel(ROOT / "plugins" / provider, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read(f"hfs_provider_{provider}/limits.toml").decode()
    assert shipped == (ROOT / "plugins" / provider / f"hfs_provider_{provider}" / "limits.toml").read_text()
