"""A newcomer's first hour (issue 23): the commands run as a new user runs them, with two keys per
provider and no ``hfs.toml``, then with the typos and slips a first configuration has."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from conftest import PROVIDERS, provider_env
from test_cli import clean_env, hfs

ROOT = Path(__file__).resolve().parents[1]
TYPOS = '[tiers.fast]\nmodels = ["gorq:openai/gpt-oss-20b", "gemini:gemini-2.5-flash-lte"]\n'


def repository(tmp_path: Path) -> Path:
    """An empty git repository (the search for `.env` and `hfs.toml` stops at its root)."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


# -- the expected key count --------------------------------------------------------------------


def test_check_strict_passes_with_two_keys_per_provider(tmp_path: Path) -> None:
    cwd = repository(tmp_path)
    run = hfs("check", "--strict", "--skip-db", env=clean_env(tmp_path, provider_env(2)), cwd=cwd)
    assert run.code == 0, run.out
    assert "OK: 0 errors, 0 warnings; 4/4 enabled providers healthy" in run.out
    assert re.search(r"^  info +groq +the groq plugin's authors run 16 keys", run.out, re.MULTILINE)
    assert "2 keys, default model openai/gpt-oss-120b" in run.out and "(expected 16)" not in run.out


def test_a_count_below_the_users_expected_keys_is_a_warning_naming_the_table(tmp_path: Path) -> None:
    cwd = repository(tmp_path)
    (cwd / "hfs.toml").write_text("[providers.groq]\nexpected_keys = 3\n")
    env = clean_env(tmp_path, provider_env(2))
    run = hfs("check", "--strict", "--skip-db", env=env, cwd=cwd)
    assert run.code == 1, run.out
    assert "NUM_GROQ is 2, but expected_keys = 3" in run.out
    assert f"-> set expected_keys = 2 under [providers.groq] in {cwd / 'hfs.toml'} if 2 is right" in run.out
    assert "0 errors, 1 warning;" in run.out  # the other providers' plugin counts are notes
    assert "2 keys (expected 3)" in run.out
    providers = json.loads(hfs("providers", "--json", env=env, cwd=cwd).out)
    statuses = {p["name"]: p["status"] for p in providers["providers"]}
    assert statuses == {"cerebras": "ok", "gemini": "ok", "groq": "warnings", "openrouter": "ok"}


def test_keys_without_a_count_stay_an_error(tmp_path: Path) -> None:
    env = provider_env({"groq": 2})
    del env["NUM_GROQ"]
    run = hfs("check", "--skip-db", env=clean_env(tmp_path, env), cwd=repository(tmp_path))
    assert run.code == 1 and "NUM_GROQ is not set, but 2 GROQ_API_KEY_<i> variables are" in run.out


# -- tier typos ----------------------------------------------------------------------------------


def test_tier_typos_fail_the_check_naming_each_entry(tmp_path: Path) -> None:
    cwd = repository(tmp_path)
    (cwd / "hfs.toml").write_text(TYPOS)
    env = clean_env(tmp_path, provider_env(2))
    run = hfs("check", "--skip-db", env=env, cwd=cwd)
    assert run.code == 1, run.out
    where = f"{cwd / 'hfs.toml'} [tiers.fast]"
    assert re.search(rf"^  error +tier fast +{re.escape(where)} entry 1 gorq:openai/gpt-oss-20b: unknown provider "
                     r"'gorq'.*did you mean 'groq'\?", run.out, re.MULTILINE), run.out
    assert re.search(rf"^  warning +tier fast +{re.escape(where)} entry 2 gemini:gemini-2.5-flash-lte: the model is "
                     r"in no limit table.*; did you mean 'gemini-2.5-flash-lite'\?", run.out, re.MULTILINE), run.out
    listing = hfs("providers", env=env, cwd=cwd)
    rows = [line.split()[:4] for line in listing.out.splitlines()]
    assert ["fast", "1", "gorq:openai/gpt-oss-20b", "unusable"] in rows and ["2", "gemini:gemini-2.5-flash-lte", "ok"
                                                                           ] in [r[:3] for r in rows]
    assert "entry 1 gorq:openai/gpt-oss-20b" in listing.out and "models[" not in listing.out


@pytest.mark.parametrize(("entry", "strict"), [("gorq:openai/gpt-oss-20b", False), ("groq:openai/gpt-os-20b", True)])
def test_each_tier_typo_exits_non_zero(tmp_path: Path, entry: str, strict: bool) -> None:
    cwd = repository(tmp_path)
    (cwd / "hfs.toml").write_text(f'[tiers.fast]\nmodels = ["{entry}", "cerebras"]\n')
    env = clean_env(tmp_path, provider_env(2))
    run = hfs("check", *(["--strict"] if strict else []), "--skip-db", env=env, cwd=cwd)
    assert run.code == 1 and f"[tiers.fast] entry 1 {entry}:" in run.out, run.out


def test_models_suggests_the_provider_meant(tmp_path: Path) -> None:
    run = hfs("models", "gorq", env=clean_env(tmp_path), cwd=repository(tmp_path))
    assert run.code == 1 and "unknown provider 'gorq'" in run.err and "did you mean 'groq'?" in run.err


def test_config_errors_number_entries_from_1(tmp_path: Path) -> None:
    cwd = repository(tmp_path)
    (cwd / "hfs.toml").write_text('[tiers.fast]\nmodels = ["groq", "groq"]\n')
    run = hfs("check", "--skip-db", env=clean_env(tmp_path), cwd=cwd)
    assert run.code == 1 and "[tiers.fast] entry 2 repeats entry 1" in run.out


# -- noise -------------------------------------------------------------------------------------------


def test_providers_with_no_keys_names_each_unconfigured_provider_once(tmp_path: Path) -> None:
    run = hfs("providers", env=clean_env(tmp_path), cwd=repository(tmp_path))
    assert run.code == 0, run
    for provider in PROVIDERS:
        assert run.out.count(f"NUM_{provider.upper()} is not set") == 1, run.out
        assert run.out.count(f"provider '{provider}' is not configured") <= 1, run.out
    tiers = run.out.split("Tiers (default)")[1].split("Problems:")[0]
    assert "no keys" in tiers and "is not set" not in tiers


def test_one_key_is_one_key(tmp_path: Path) -> None:
    run = hfs("check", "--skip-db", env=clean_env(tmp_path, provider_env(1)), cwd=repository(tmp_path))
    assert "1 key, default model" in run.out and not re.search(r"\b1 keys", run.out)


@pytest.mark.slow
def test_a_key_without_an_answer_is_said_once(tmp_path: Path) -> None:
    env = clean_env(tmp_path, provider_env({"groq": 2}))
    run = hfs("-v", "ask", "-p", "groq", "--timeout", "2", "--base-url", "http://127.0.0.1:1", "x", env=env,
              cwd=repository(tmp_path))
    assert run.code == 1 and "failed (no answer): retrying on another key" in run.err
    assert "nothing (no answer)" not in run.err and "no answer): no answer" not in run.err


# -- hints that tell the truth --------------------------------------------------------------------


def test_an_unknown_setting_says_what_really_happens(tmp_path: Path) -> None:
    cwd = repository(tmp_path)
    (cwd / "hfs.toml").write_text("rpn = 2\n")
    env = clean_env(tmp_path, provider_env(2))
    check = hfs("check", "--skip-db", env=env, cwd=cwd)
    assert check.code == 1 and "unknown setting 'rpn'" in check.out
    assert "defaults are used meanwhile" not in check.out and "(no config file)" not in check.out
    assert f"hfs check (config: {cwd / 'hfs.toml'})" in check.out
    assert "get_model() raises ConfigError and `hfs ask` exits 1" in check.out
    ask = hfs("ask", "-p", "groq", "hi", env=env, cwd=cwd)
    assert ask.code == 1 and "unknown setting 'rpn'" in ask.err
    providers = hfs("providers", env=env, cwd=cwd)
    assert "(no config file)" not in providers.out and "defaults used" not in providers.out


# -- names in one place; .env and hfs.toml searched upward -------------------------------------------


def test_every_variable_is_named_in_the_help_the_readme_and_the_cli_docs(tmp_path: Path) -> None:
    from hfs_core.variables import ENVIRONMENT

    help_text = hfs("--help", env=clean_env(tmp_path), cwd=tmp_path).out
    readme = (ROOT / "README.md").read_text()
    cli = (ROOT / "docs" / "cli.md").read_text()
    names = [name for name, _ in ENVIRONMENT]
    assert {"HFS_USAGE_DB_URL", "TIDB_DB_URL", "HFS_STATE_URL", "HFS_CONFIG"} <= set(names)
    for name in names:
        assert name in help_text and f"`{name}`" in readme and f"`{name}`" in cli, name
    for text in (help_text, readme, cli):
        assert "searched upward" in " ".join(text.split())


def test_a_workspace_member_finds_the_env_and_hfs_toml_at_the_repository_root(tmp_path: Path) -> None:
    root = repository(tmp_path / "repo")
    (root / "pyproject.toml").write_text('[project]\nname = "app"\n[tool.uv.workspace]\nmembers = ["plugins/*"]\n')
    member = root / "plugins" / "groq"
    member.mkdir(parents=True)
    (member / "pyproject.toml").write_text('[project]\nname = "hfs-provider-groq"\n[tool.ruff]\nline-length = 120\n')
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in provider_env({"groq": 2}).items()))
    (root / "hfs.toml").write_text("[providers.groq]\nexpected_keys = 2\n")
    run = hfs("check", "--json", "--skip-db", env=clean_env(tmp_path, {"HFS_PLUGINS": "groq"}), cwd=member)
    data = json.loads(run.out)
    assert data["config"] == str(root / "hfs.toml")
    assert data["providers"]["groq"]["keys_found"] == 2 and data["ok"] is True, data["findings"]
    assert any(f["message"] == f"read {root / '.env'} and {root / 'hfs.toml'}" for f in data["findings"])
