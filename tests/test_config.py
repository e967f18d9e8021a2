"""The configuration: hfs.toml, [tool.hfs] in pyproject.toml, $HFS_CONFIG, and what each setting does."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from agno.agent import Agent
from conftest import provider_env

from hfs_core import Config, ConfigError, ProviderConfig, ProviderUnavailableError, load_config
from hfs_core.config import find_config
from hfs_core.testing.standin import StandIn

FULL = """\
plugins = ["groq", "gemini"]
usage_db_url = "sqlite:///elsewhere.sqlite3"
track_usage = false

[providers.groq]
enabled = true
default_model = "openai/gpt-oss-20b"
expected_keys = 3
base_url = "http://127.0.0.1:9"

[providers.gemini]
enabled = false
"""


def test_no_file_gives_the_defaults(isolated: Path) -> None:
    assert find_config(isolated, {}) is None
    config = load_config(isolated, {})
    assert config == Config()
    assert config.provider("groq") == ProviderConfig()
    assert config.source_name == "(no config file)"


def test_hfs_toml_is_read(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text(FULL)
    config = load_config(env={})
    assert config.source == isolated / "hfs.toml"
    assert config.plugins == ("groq", "gemini")
    assert config.usage_db_url == "sqlite:///elsewhere.sqlite3"
    assert config.track_usage is False
    assert config.provider("groq") == ProviderConfig(True, "openai/gpt-oss-20b", 3, "http://127.0.0.1:9")
    assert config.provider("gemini").enabled is False
    assert config.provider("cerebras") == ProviderConfig()


def test_tool_hfs_in_pyproject_is_read(isolated: Path) -> None:
    body = "\n".join(
        line.replace("[providers.", "[tool.hfs.providers.") for line in FULL.splitlines()
    )
    (isolated / "pyproject.toml").write_text(f'[project]\nname = "app"\n\n[tool.hfs]\n{body}\n')
    config = load_config(env={})
    assert config.source == isolated / "pyproject.toml"
    assert config.plugins == ("groq", "gemini")
    assert config.provider("groq").default_model == "openai/gpt-oss-20b"
    assert config.provider("gemini").enabled is False


def test_pyproject_without_tool_hfs_is_ignored(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text('[project]\nname = "app"\n\n[tool.ruff]\nline-length = 100\n')
    assert load_config(env={}) == Config()


def test_hfs_toml_wins_over_pyproject(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq"]\n')
    (isolated / "pyproject.toml").write_text('[tool.hfs]\nplugins = ["gemini"]\n')
    assert load_config(env={}).plugins == ("groq",)


def test_hfs_config_variable_wins(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq"]\n')
    elsewhere = isolated / "conf" / "mine.toml"
    elsewhere.parent.mkdir()
    elsewhere.write_text('plugins = ["cerebras"]\n')
    config = load_config(env={"HFS_CONFIG": str(elsewhere)})
    assert config.plugins == ("cerebras",)
    assert config.source == elsewhere


def test_hfs_config_may_name_a_pyproject(isolated: Path) -> None:
    other = isolated / "sub" / "pyproject.toml"
    other.parent.mkdir()
    other.write_text('[tool.hfs.providers.groq]\nexpected_keys = 7\n')
    assert load_config(env={"HFS_CONFIG": str(other)}).provider("groq").expected_keys == 7


def test_hfs_config_naming_a_missing_file_is_an_error(isolated: Path) -> None:
    with pytest.raises(ConfigError, match=r"HFS_CONFIG=.*nowhere.toml"):
        load_config(env={"HFS_CONFIG": str(isolated / "nowhere.toml")})


def test_registry_reads_hfs_config_from_its_environment(isolated: Path, make_registry) -> None:
    path = isolated / "custom.toml"
    path.write_text("[providers.groq]\nexpected_keys = 3\n")
    registry = make_registry(env=provider_env(3, HFS_CONFIG=str(path)))
    assert registry.config.source == path
    assert registry.environment_status["groq"].expected == 3


# -- errors ------------------------------------------------------------------------------------


def test_malformed_toml_names_the_file_and_the_line(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq"]\n\n[providers.groq\nenabled = true\n')
    with pytest.raises(ConfigError) as caught:
        load_config(env={})
    message = str(caught.value)
    assert str(isolated / "hfs.toml") in message
    assert "line 3" in message


def test_malformed_pyproject_names_the_file(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text('[tool.hfs]\nplugins = ["groq"\n')
    with pytest.raises(ConfigError, match=r"pyproject\.toml: not valid TOML: .*line 2"):
        load_config(env={})


def test_malformed_config_stops_the_registry(isolated: Path) -> None:
    from hfs_core import Registry

    (isolated / "hfs.toml").write_text("track_usage = maybe\n")
    with pytest.raises(ConfigError, match=r"hfs.toml"):
        Registry(env=provider_env(3))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("plugin = [\"groq\"]\n", "unknown setting 'plugin'"),
        ("[providers.groq]\ndefault_modle = \"x\"\n", "unknown setting 'default_modle'"),
        ("[tool]\nx = 1\n", "unknown setting 'tool'"),
    ],
)
def test_unknown_setting_is_an_error(isolated: Path, text: str, says: str) -> None:
    (isolated / "hfs.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(env={})
    assert says in str(caught.value)
    assert "hfs.toml" in str(caught.value)


def test_unknown_setting_in_pyproject_names_the_section(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text("[tool.hfs.providers.groq]\nenable = false\n")
    with pytest.raises(ConfigError, match=r"\[tool.hfs\] \[providers.groq\] unknown setting 'enable'"):
        load_config(env={})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('plugins = "groq"\n', "plugins must be a list"),
        ("plugins = [1, 2]\n", "plugins must be a list"),
        ("usage_db_url = 5\n", "usage_db_url must be a string"),
        ('track_usage = "yes"\n', "track_usage must be true or false"),
        ("providers = 3\n", "providers must be a table"),
        ("[providers]\ngroq = 1\n", "[providers.groq] must be a table"),
        ('[providers.groq]\nenabled = "no"\n', "enabled must be true or false"),
        ("[providers.groq]\ndefault_model = 3\n", "default_model must be a non-empty string"),
        ('[providers.groq]\ndefault_model = "  "\n', "default_model must be a non-empty string"),
        ('[providers.groq]\nexpected_keys = "16"\n', "expected_keys must be a whole number"),
        ("[providers.groq]\nexpected_keys = 0\n", "expected_keys must be a whole number"),
        ("[providers.groq]\nexpected_keys = 2.5\n", "expected_keys must be a whole number"),
        ("[providers.groq]\nexpected_keys = true\n", "expected_keys must be a whole number"),
        ('[providers.groq]\nbase_url = "localhost"\n', "base_url must be a URL"),
        ("[providers.groq]\nbase_url = 8000\n", "base_url must be a URL"),
        ("state = 1\n", "[state] must be a table"),
        ('[state]\nurl = "http://127.0.0.1:6379"\n', "[state] url must be a redis://, rediss:// or unix:// URL"),
        ("[state]\nurl = 6379\n", "[state] url must be a redis://"),
        ('[state]\nnamespace = "a b"\n', "[state] namespace must be 1 to 40 letters"),
        ("[state]\nlease_seconds = 0\n", "[state] lease_seconds must be a number of seconds from 1 to 3600"),
        ('[state]\ntimeout = "1"\n', "[state] timeout must be a number of seconds from 0.01 to 30"),
        ('[state]\nadress = "redis://x"\n', "[state] unknown setting 'adress'"),
    ],
)
def test_wrong_types_are_errors(isolated: Path, text: str, says: str) -> None:
    (isolated / "hfs.toml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(env={})
    assert says in str(caught.value)
    assert str(isolated / "hfs.toml") in str(caught.value)


def test_tool_hfs_that_is_not_a_table_is_an_error(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text('[tool]\nhfs = "on"\n\n[tool.hfsx]\n')
    with pytest.raises(ConfigError, match=r"pyproject\.toml: \[tool\.hfs\] must be a table"):
        load_config(env={})


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


# -- the settings take effect --------------------------------------------------------------------


def test_provider_settings_take_effect(isolated: Path, standin: StandIn, make_registry) -> None:
    (isolated / "hfs.toml").write_text(
        f"""
[providers.groq]
default_model = "openai/gpt-oss-20b"
expected_keys = 3
base_url = "{standin.url}"

[providers.cerebras]
enabled = false
"""
    )
    registry = make_registry(env=provider_env(3))
    status = registry.environment_status
    assert status["groq"].expected == 3
    assert not any(p.variable == "NUM_GROQ" for p in status["groq"].problems)
    assert status["gemini"].expected == 110
    assert status["cerebras"].enabled is False and not status["cerebras"].healthy
    assert "cerebras" not in registry.available_providers
    assert set(registry.available_providers) == {"gemini", "groq", "openrouter"}
    with pytest.raises(ProviderUnavailableError, match=r"disabled in .*hfs\.toml"):
        registry.get_model("cerebras")

    model = registry.get_model("groq")  # no base_url given: the config's reaches the SDK
    assert model.id == "openai/gpt-oss-20b"
    assert model.base_url == standin.url
    assert Agent(model=model, telemetry=False).run("hello config").content == "stand-in reply: hello config"
    assert standin.accepted == 1
    assert standin.stats()["by_route"] == {"/openai/v1/chat/completions": 1}
    # the caller's base_url wins over the config's
    other = StandIn().start()
    try:
        model = registry.get_model("groq", base_url=other.url)
        assert Agent(model=model, telemetry=False).run("x").content == "stand-in reply: x"
        assert other.accepted == 1 and standin.accepted == 1
    finally:
        other.stop()


def test_config_base_url_reaches_gemini(isolated: Path, standin: StandIn, make_registry) -> None:
    (isolated / "hfs.toml").write_text(f'[providers.gemini]\nbase_url = "{standin.url}"\n')
    registry = make_registry(env=provider_env(3))
    model = registry.get_model("gemini")
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"
    assert standin.accepted == 1


def test_disabled_provider_is_logged(isolated: Path, caplog: pytest.LogCaptureFixture, make_registry) -> None:
    (isolated / "hfs.toml").write_text("[providers.openrouter]\nenabled = false\n")
    with caplog.at_level(logging.INFO, logger="hfs_core"):
        make_registry(env=provider_env(3))
    assert any("openrouter: disabled in" in r.getMessage() for r in caplog.records)
    assert "3/3 providers healthy" in caplog.text


def test_config_plugins_limit_loading(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq"]\n')
    registry = make_registry(env=provider_env(3))
    assert sorted(registry.specs) == ["groq"]
    states = {p.name: p.state for p in registry.plugins}
    assert states == {"groq": "loaded", "cerebras": "skipped", "gemini": "skipped", "openrouter": "skipped"}


def test_hfs_plugins_wins_over_config_plugins(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq"]\n')
    registry = make_registry(env=provider_env(3, HFS_PLUGINS="gemini"))
    assert sorted(registry.specs) == ["gemini"]


def test_unknown_provider_in_config_is_a_warning(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text("[providers.mistral]\nexpected_keys = 4\n")
    registry = make_registry(env=provider_env(3))
    [problem] = registry.problems
    assert problem.severity == "warning"
    assert "hfs.toml" in problem.variable
    assert "mistral" in problem.message and "groq" in problem.message
    assert "pip install ./plugins/mistral" in problem.hint
    assert len(registry.available_providers) == 4


def test_unknown_plugin_in_config_is_a_warning(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text('plugins = ["groq", "mistral"]\n')
    registry = make_registry(env=provider_env(3))
    [problem] = registry.problems
    assert problem.severity == "warning" and "mistral" in problem.message and "hfs.toml" in problem.variable


def test_config_default_model_unknown_to_keycycle_is_a_warning(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text('[providers.groq]\ndefault_model = "groq/no-such-model"\n')
    registry = make_registry(env=provider_env(3))
    report = registry.environment_status["groq"]
    [problem] = [p for p in report.problems if "default_model" in p.variable]
    assert problem.severity == "warning"
    assert "hfs.toml" in problem.variable and "[providers.groq]" in problem.variable
    assert "groq/no-such-model" in problem.message
    assert report.healthy  # a warning, not an error
    assert registry.get_model("groq").id == "groq/no-such-model"


def test_config_default_model_known_to_keycycle_is_quiet(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text('[providers.gemini]\ndefault_model = "gemini-2.5-flash"\n')
    registry = make_registry(env=provider_env(3))
    assert not any("default_model" in p.variable for p in registry.environment_status["gemini"].problems)


def test_track_usage_false_turns_the_usage_store_off(isolated: Path, make_registry, sqlite_url: str) -> None:
    (isolated / "hfs.toml").write_text("track_usage = false\n")
    registry = make_registry(env=provider_env(3, db_url=sqlite_url))
    assert registry.usage_url() is None
    assert registry.usage_store() is None


def test_usage_db_url_from_config_and_tidb_db_url_wins(isolated: Path, make_registry) -> None:
    (isolated / "hfs.toml").write_text(f'usage_db_url = "sqlite:///{isolated / "from-config.sqlite3"}"\n')
    assert make_registry(env=provider_env(3)).usage_url() == f"sqlite:///{isolated / 'from-config.sqlite3'}"
    env = provider_env(3, db_url=f"sqlite:///{isolated / 'from-env.sqlite3'}")
    assert make_registry(env=env).usage_url() == f"sqlite:///{isolated / 'from-env.sqlite3'}"


def test_bad_tidb_db_url_is_an_error_problem_and_falls_back(isolated: Path, make_registry) -> None:
    registry = make_registry(env=provider_env(3, db_url="not a url"))
    [problem] = registry.problems
    assert problem.severity == "error" and problem.variable == "TIDB_DB_URL"
    assert "not a url" not in str(problem)
    url = registry.usage_url()
    assert url is not None and url.startswith("sqlite:///") and str(isolated / "data") in url


def test_state_settings_are_read(isolated: Path) -> None:
    (isolated / "hfs.toml").write_text('[state]\nurl = " rediss://:pw@cache:6380/2 "\nnamespace = "team-a"\n'
                                       "lease_seconds = 12\ntimeout = 0.25\n")
    state = load_config(env={}).state
    assert (state.url, state.namespace, state.lease_seconds, state.timeout) == \
        ("rediss://:pw@cache:6380/2", "team-a", 12.0, 0.25)
    assert Config().state.url is None  # no [state]: each process keeps its own
