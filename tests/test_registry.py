"""The registry: plugin discovery (good and broken), provider errors, the singleton, shutdown, the start-up log."""

from __future__ import annotations

import atexit
import importlib
import logging
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from agno.agent import Agent
from conftest import PROVIDERS, fake_key, keys_of, provider_env

import hfs_core
import hfs_core.process as process_module
import hfs_core.settings as settings_module
from hfs_core import (
    Config,
    HFSError,
    PluginInfo,
    ProviderConfig,
    ProviderManager,
    ProviderNotFoundError,
    ProviderSpec,
    ProviderUnavailableError,
    Registry,
)
from hfs_core.testing.standin import StandIn

# -- installed fake plugins ---------------------------------------------------------------------

FakeInstaller = Callable[..., str]


@pytest.fixture
def install_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeInstaller]:
    """Install a plugin as a real distribution: a dist-info with METADATA and entry_points.txt, and its module."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    modules: list[str] = []

    def install(distribution: str, entry_point: str, source: str, *, version: str = "0.1") -> str:
        module = f"hfs_fake_{uuid.uuid4().hex[:12]}"
        modules.append(module)
        info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[hfs.providers]\n{entry_point} = {module}\n")
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return module

    yield install
    for module in modules:
        sys.modules.pop(module, None)
    importlib.invalidate_caches()


def spec_plugin(name: str, extra: str = "") -> str:
    return f"""
        from hfs_core import ProviderSpec, hookimpl

        @hookimpl
        def register_provider():
            return ProviderSpec(name={name!r}, default_model="m", expected_keys=1,
                                model_class="agno.models.groq:Groq")
        {extra}
    """


def info_of(registry: Registry, name: str) -> PluginInfo:
    [info] = [p for p in registry.plugins if p.name == name]
    return info


def assert_real_providers_work(registry: Registry, standin: StandIn) -> None:
    assert registry.available_providers == sorted(PROVIDERS)
    for name in PROVIDERS:
        assert info_of(registry, name).state == "loaded"
    model = registry.get_model("groq", base_url=standin.url)
    assert Agent(model=model, telemetry=False).run("still here").content == "stand-in reply: still here"


# -- discovery -------------------------------------------------------------------------------


def test_the_four_plugins_are_discovered(make_registry) -> None:
    registry = make_registry(env=provider_env(3))
    assert sorted(registry.specs) == sorted(PROVIDERS)
    for name in PROVIDERS:
        info = info_of(registry, name)
        assert info.state == "loaded"
        assert info.provider == name
        assert info.distribution == f"hfs-provider-{name}"
        assert info.version == "0.1.0"
        assert set(info.hooks) == {"register_provider", "validate_env"}
        assert info.error is None
        assert info.to_dict()["hooks"] == list(info.hooks)
    assert registry.problems == []
    assert ProviderManager is Registry
    assert "available=['cerebras', 'gemini', 'groq', 'openrouter']" in repr(registry)


def test_hfs_plugins_limits_loading(make_registry) -> None:
    registry = make_registry(env=provider_env(3, HFS_PLUGINS="groq, gemini"))
    assert sorted(registry.specs) == ["gemini", "groq"]
    states = {p.name: p.state for p in registry.plugins}
    assert states == {"cerebras": "skipped", "gemini": "loaded", "groq": "loaded", "openrouter": "skipped"}
    assert info_of(registry, "cerebras").distribution == "hfs-provider-cerebras"
    assert registry.available_providers == ["gemini", "groq"]
    assert sorted(registry.environment_status) == ["gemini", "groq"]
    with pytest.raises(ProviderNotFoundError, match=r"installed but not loaded.*HFS_PLUGINS"):
        registry.get_model("cerebras")
    assert registry.problems == []


def test_plugins_argument_wins_over_hfs_plugins(make_registry) -> None:
    registry = make_registry(env=provider_env(3, HFS_PLUGINS="groq"), plugins=["openrouter"])
    assert sorted(registry.specs) == ["openrouter"]


def test_hfs_plugins_naming_a_missing_plugin_is_a_warning(make_registry) -> None:
    registry = make_registry(env=provider_env(3, HFS_PLUGINS="groq,mistral"))
    [problem] = registry.problems
    assert problem.severity == "warning"
    assert problem.variable == "HFS_PLUGINS"
    assert "mistral" in problem.message
    assert problem.hint.startswith("pip install ./plugins/mistral (from the root of an hfs-providers checkout")


def test_broken_plugins_are_recorded_and_never_stop_the_others(
    install_plugin: FakeInstaller, standin: StandIn, make_registry, caplog: pytest.LogCaptureFixture
) -> None:
    install_plugin("hfs-fake-importfails", "importfails", "import hfs_fake_sdk_that_is_not_installed\n")
    install_plugin("hfs-fake-raises", "raises", """
        from hfs_core import hookimpl

        @hookimpl
        def register_provider():
            raise RuntimeError("no spec today")
    """)
    install_plugin("hfs-fake-wrongtype", "wrongtype", """
        from hfs_core import hookimpl

        @hookimpl
        def register_provider():
            return {"name": "wrongtype"}
    """)
    install_plugin("hfs-fake-nohook", "nohook", "VALUE = 1\n")
    install_plugin("hfs-fake-badsig", "badsig", """
        from hfs_core import hookimpl

        @hookimpl
        def register_provider(unexpected_argument):
            return None
    """)
    install_plugin("hfs-fake-syntax", "syntax", "def broken(:\n")
    install_plugin("hfs-fake-badspec", "badspec", """
        from hfs_core import ProviderSpec, hookimpl

        @hookimpl
        def register_provider():
            return ProviderSpec(name="Bad Name", default_model="m", expected_keys=1, model_class="x:Y")
    """)
    with caplog.at_level(logging.WARNING, logger="hfs_core"):
        registry = make_registry(env=provider_env(3))
    expected = {
        "importfails": ("hfs-fake-importfails", "import failed: ModuleNotFoundError"),
        "raises": ("hfs-fake-raises", "register_provider raised RuntimeError: no spec today"),
        "wrongtype": ("hfs-fake-wrongtype", "register_provider returned dict, not a ProviderSpec"),
        "nohook": ("hfs-fake-nohook", "does not implement register_provider"),
        "badsig": ("hfs-fake-badsig", "not a valid hfs plugin"),
        "syntax": ("hfs-fake-syntax", "import failed: SyntaxError"),
        "badspec": ("hfs-fake-badspec", "register_provider raised ValueError: provider name must be lower-case"),
    }
    for name, (dist, error) in expected.items():
        info = info_of(registry, name)
        assert info.state == "failed", info
        assert info.distribution == dist
        assert info.version == "0.1"
        assert info.provider is None
        assert info.error is not None and error in info.error, info.error
        assert any(name in r.getMessage() and dist in r.getMessage() for r in caplog.records), name
    assert "raises" in repr(registry)
    with pytest.raises(ProviderUnavailableError, match=r"plugin hfs-fake-raises failed to load.*no spec today"):
        registry.get_model("raises")
    assert_real_providers_work(registry, standin)


def test_two_plugins_claiming_one_provider_get_neither_until_the_config_picks(
        install_plugin: FakeInstaller, standin: StandIn, make_registry, isolated: Path) -> None:
    install_plugin("hfs-fake-twin-a", "twin_a", spec_plugin("twin"))
    install_plugin("hfs-fake-twin-b", "twin_b", spec_plugin("twin"))
    install_plugin("hfs-fake-groq-clone", "zz_groq_clone", spec_plugin("groq"), version="9.9")
    registry = make_registry(env=provider_env(3))
    for entry_point in ("twin_a", "twin_b"):
        info = info_of(registry, entry_point)
        assert info.state == "failed" and info.provider == "twin"
        assert info.error is not None and "hfs-fake-twin-a 0.1 and hfs-fake-twin-b 0.1" in info.error
        assert "[providers.twin] plugin" in info.error
    clone, real = info_of(registry, "zz_groq_clone"), info_of(registry, "groq")
    assert clone.state == real.state == "failed" and clone.version == "9.9"
    assert real.error is not None and "hfs-provider-groq 0.1.0 and hfs-fake-groq-clone 9.9" in real.error
    assert "groq" not in registry.specs and "groq" not in registry.available_providers
    with pytest.raises(ProviderUnavailableError, match=r"claimed by .*\[providers.groq\] plugin"):
        registry.get_model("groq")

    (isolated / "hfs.toml").write_text('[providers.groq]\nplugin = "hfs-provider-groq"\n'
                                       '[providers.twin]\nplugin = "hfs-fake-twin-b"\n')
    picked = make_registry(env=provider_env(3))
    assert info_of(picked, "groq").state == "loaded" and info_of(picked, "twin_b").state == "loaded"
    assert info_of(picked, "twin_a").state == "failed"
    assert "picks hfs-fake-twin-b" in str(info_of(picked, "twin_a").error)
    assert picked.specs["groq"].default_model == "openai/gpt-oss-120b"  # the real one, not the clone
    assert_real_providers_work(picked, standin)


def test_validate_env_may_take_a_subset_of_the_arguments(install_plugin: FakeInstaller, make_registry) -> None:
    """pluggy lets an implementation take fewer arguments than the hook spec names."""
    install_plugin("hfs-fake-subset", "subset", spec_plugin("subset", """
        from hfs_core import Problem

        @hookimpl
        def validate_env(env):
            return [Problem("warning", "SUBSET_FLAG", "checked by the plugin")] if "SUBSET_FLAG" in env else []
        """))
    registry = make_registry(env=provider_env(3, SUBSET_FLAG="1", NUM_SUBSET="1", SUBSET_API_KEY_1=fake_key("x")))
    assert info_of(registry, "subset").hooks == ("register_provider", "validate_env")
    problems = registry.environment_status["subset"].problems
    assert [p.message for p in problems if p.variable == "SUBSET_FLAG"] == ["checked by the plugin"]
    assert not any("raised" in p.message for p in problems)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("raise KeyError('boom')", "validate_env raised KeyError"),
        ("return 'nothing wrong'", "did not return a list of Problem"),
        ("return ['not a problem']", "did not return a list of Problem"),
    ],
)
def test_broken_validate_env_is_a_warning(install_plugin: FakeInstaller, make_registry, body: str, says: str) -> None:
    install_plugin("hfs-fake-checker", "checker", spec_plugin("checker", f"""
        @hookimpl
        def validate_env(spec, env):
            {body}
        """))
    registry = make_registry(env=provider_env(3, NUM_CHECKER="1", CHECKER_API_KEY_1=fake_key("x")))
    report = registry.environment_status["checker"]
    [problem] = [p for p in report.problems if p.variable == "plugin checker"]
    assert problem.severity == "warning" and says in problem.message
    assert report.healthy
    assert len(registry.available_providers) == 5


def test_plugin_whose_model_class_is_missing_fails_at_first_use(
    install_plugin: FakeInstaller, make_registry
) -> None:
    install_plugin("hfs-fake-nomodel", "nomodel", """
        from hfs_core import ProviderSpec, hookimpl

        @hookimpl
        def register_provider():
            return ProviderSpec(name="nomodel", default_model="m", expected_keys=1,
                                model_class="agno.models.not_a_module:Nothing")
    """)
    registry = make_registry(env=provider_env(3, NUM_NOMODEL="1", NOMODEL_API_KEY_1=fake_key("x")))
    assert registry.is_provider_healthy("nomodel")
    with pytest.raises(ProviderUnavailableError, match=r"cannot start: ModuleNotFoundError.*pip install"):
        registry.get_model("nomodel")
    assert not registry.is_provider_healthy("nomodel")
    assert "nomodel" not in registry.available_providers
    with pytest.raises(ProviderUnavailableError, match="cannot start"):
        registry.get_model("nomodel")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "Groq"}, "provider name"),
        ({"name": "grøq"}, "provider name"),
        ({"name": "my-provider"}, "provider name"),
        ({"name": ""}, "provider name"),
        ({"model_class": "agno.models.groq.Groq"}, "model_class"),
        ({"env_prefix": "my-prefix"}, "env_prefix"),
        ({"expected_keys": 0}, "expected_keys"),
        ({"expected_keys": "16"}, "expected_keys"),
        ({"default_model": " "}, "default_model"),
    ],
)
def test_provider_spec_rejects_bad_fields(changes: dict[str, object], says: str) -> None:
    fields: dict[str, object] = {"name": "good", "default_model": "m", "expected_keys": 2,
                                 "model_class": "agno.models.groq:Groq"}
    with pytest.raises(ValueError, match=says):
        ProviderSpec(**{**fields, **changes})


def test_provider_spec_defaults() -> None:
    spec = ProviderSpec(name="my_provider", default_model="m", expected_keys=2, model_class="a.b:C")
    assert spec.env_prefix == "MY_PROVIDER" and spec.keycycle_name == "my_provider"
    assert spec.count_var == "NUM_MY_PROVIDER" and spec.key_var(3) == "MY_PROVIDER_API_KEY_3"
    assert spec.sdk_options(None) == {"max_retries": 0}
    assert spec.sdk_options("http://x") == {"max_retries": 0, "base_url": "http://x"}


class UnhashableOptions:
    """A plugin's `sdk_options` as a callable object that cannot be hashed (``__eq__`` without ``__hash__``)."""

    __hash__ = None  # type: ignore[assignment]

    def __call__(self, base_url: str | None, timeouts: object) -> dict[str, object]:
        return {"base_url": base_url, "timeouts": timeouts}


def test_an_sdk_options_that_cannot_be_hashed_is_asked_each_time() -> None:
    from hfs_core.plugin import Timeouts
    from hfs_core.registry import _sdk_kwargs

    spec = ProviderSpec(name="p", default_model="m", expected_keys=1, model_class="a.b:C",
                        sdk_options=UnhashableOptions())
    timeouts = Timeouts()
    assert _sdk_kwargs(spec, "http://x", timeouts) == {"base_url": "http://x", "timeouts": timeouts}


# -- provider errors ----------------------------------------------------------------------------


def test_unknown_provider_lists_the_available_ones_and_the_pip_hint(make_registry) -> None:
    registry = make_registry(env=provider_env({"groq": 3, "gemini": 3}))
    with pytest.raises(ProviderNotFoundError) as caught:
        registry.get_model("mistral")
    message = str(caught.value)
    assert "'mistral'" in message
    assert "available: gemini, groq" in message
    assert "pip install ./plugins/mistral" in message
    assert isinstance(caught.value, LookupError) and isinstance(caught.value, HFSError)


def test_unknown_provider_with_nothing_available(make_registry) -> None:
    registry = make_registry(env={})
    with pytest.raises(ProviderNotFoundError, match="available: none"):
        registry.get_model("mistral:some-model")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_unconfigured_provider_names_its_count_variable(make_registry, provider: str) -> None:
    others = {p: 2 for p in PROVIDERS if p != provider}
    registry = make_registry(env=provider_env(others))
    assert provider not in registry.available_providers
    assert not registry.is_provider_healthy(provider)
    with pytest.raises(ProviderUnavailableError) as caught:
        registry.get_model(provider)
    message = str(caught.value)
    assert f"NUM_{provider.upper()}" in message
    assert "not configured" in message
    assert isinstance(caught.value, RuntimeError) and isinstance(caught.value, HFSError)


def test_provider_with_only_bad_keys_is_unavailable(make_registry) -> None:
    env = provider_env(3)
    env.update(NUM_GROQ="2", GROQ_API_KEY_1="changeme", GROQ_API_KEY_2="gsk_short")
    registry = make_registry(env=env)
    assert not registry.is_provider_healthy("groq")
    with pytest.raises(ProviderUnavailableError, match="NUM_GROQ"):
        registry.get_model("groq")


def test_provider_name_is_case_and_space_insensitive(make_registry, standin: StandIn) -> None:
    registry = make_registry(env=provider_env(3))
    model = registry.get_model(" GROQ ", base_url=standin.url)
    assert model.pool.provider == "groq"


def test_resolve_model_picks_the_model_as_get_model_does(make_registry, standin: StandIn) -> None:
    config = Config(providers={"gemini": ProviderConfig(default_model="gemini-2.5-pro")})
    registry = make_registry(env=provider_env(3), config=config)
    assert registry.resolve_model("groq:openai/gpt-oss-20b") == ("groq", "openai/gpt-oss-20b")
    assert registry.resolve_model(" Groq ") == ("groq", "openai/gpt-oss-120b")  # the plugin's default
    assert registry.resolve_model("groq:openai/gpt-oss-20b", "other") == ("groq", "other")
    assert registry.resolve_model("gemini") == ("gemini", "gemini-2.5-pro")  # the config's default
    assert registry.get_model("gemini", base_url=standin.url).id == "gemini-2.5-pro"
    assert registry.get_model("groq", id="openai/gpt-oss-20b", base_url=standin.url).id == "openai/gpt-oss-20b"
    with pytest.raises(ProviderNotFoundError, match="'mistral'"):
        registry.resolve_model("mistral:some-model")
    with pytest.raises(ProviderUnavailableError, match="NUM_CEREBRAS"):
        make_registry(env=provider_env({"groq": 3}), config=config).resolve_model("cerebras")


# -- the process-wide registry ----------------------------------------------------------------


@pytest.fixture
def fresh_singleton(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Callable[..., object]]]:
    """No process-wide registry yet; atexit.register recorded instead of called."""
    registered: list[Callable[..., object]] = []
    monkeypatch.setattr(process_module, "_registry", None)
    monkeypatch.setattr(process_module, "_atexit_registered", False)
    monkeypatch.setattr(atexit, "register", lambda fn, *a, **k: registered.append(fn) or fn)
    yield registered
    made = process_module._registry
    if made is not None:
        made.shutdown()


@pytest.mark.parametrize("threads", [2, 16])
def test_get_registry_is_created_once_under_a_race(
    fresh_singleton: list[Callable[..., object]], monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    constructed: list[int] = []
    real_load_env = settings_module.load_env

    def slow_load_env(*args, **kwargs):
        constructed.append(1)
        time.sleep(0.1)  # keep the door open while the other threads arrive
        return real_load_env(*args, **kwargs)

    monkeypatch.setattr(settings_module, "load_env", slow_load_env)
    barrier = threading.Barrier(threads)
    got: list[Registry] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            got.append(hfs_core.process.get_registry())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(10)
    assert errors == []
    assert len(got) == threads
    assert all(r is got[0] for r in got)
    assert len(constructed) == 1
    assert fresh_singleton == [process_module.shutdown]
    assert hfs_core.get_registry() is got[0]
    assert hfs_core.get_provider_manager() is got[0]
    assert fresh_singleton == [process_module.shutdown]


@pytest.mark.timeout(20)
def test_plugin_calling_get_registry_at_import_fails_instead_of_deadlocking(
    fresh_singleton: list[Callable[..., object]], install_plugin: FakeInstaller
) -> None:
    install_plugin("hfs-fake-reentrant", "reentrant", "import hfs_core\nhfs_core.get_registry()\n")
    result: list[Registry] = []
    worker = threading.Thread(target=lambda: result.append(hfs_core.get_registry()), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "get_registry() deadlocked on a plugin that calls it at import"
    [registry] = result
    info = info_of(registry, "reentrant")
    assert info.state == "failed" and info.error is not None
    assert "while the registry is being created" in info.error
    assert sorted(registry.specs) == sorted(PROVIDERS)
    assert hfs_core.get_registry() is registry


def test_module_level_functions_use_the_singleton(
    fresh_singleton: list[Callable[..., object]], monkeypatch: pytest.MonkeyPatch, standin: StandIn
) -> None:
    env = provider_env({"groq": 2, "gemini": 2})
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert hfs_core.list_available_providers() == ["gemini", "groq"]
    assert hfs_core.is_provider_healthy("groq") and not hfs_core.is_provider_healthy("cerebras")
    model = hfs_core.get_model("groq", base_url=standin.url)
    assert Agent(model=model, telemetry=False).run("hey").content == "stand-in reply: hey"
    assert fresh_singleton.count(process_module.shutdown) == 1
    hfs_core.shutdown()
    hfs_core.shutdown()
    with pytest.raises(HFSError, match="shut down"):
        hfs_core.get_model("groq", base_url=standin.url)


def test_shutdown_twice_is_safe_and_closes_pools(make_registry, standin: StandIn, sqlite_url: str) -> None:
    registry = make_registry(env=provider_env(2, db_url=sqlite_url))
    model = registry.get_model("groq", base_url=standin.url)
    Agent(model=model, telemetry=False).run("one")
    assert model.clients.built
    registry.shutdown()
    registry.shutdown()
    assert model.clients.built == {}
    health = registry.usage_health()
    assert health is not None and health.written == 1 and health.lost == 0 and health.pending == 0
    with pytest.raises(HFSError, match="shut down"):
        registry.get_model("groq")
    with pytest.raises(HFSError, match="shut down"):
        registry.get_model("cerebras")


def test_shutdown_without_any_pool_is_safe(make_registry) -> None:
    registry = make_registry(env=provider_env(2))
    registry.shutdown()
    registry.shutdown()
    assert registry.usage_health() is None


def test_a_built_pool_is_not_held_up_by_another_providers_build(
    make_registry, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    registry = make_registry(env=provider_env(2, db_url=sqlite_url))
    registry.get_model("groq")
    real = registry.resources.usage_store
    entered = threading.Event()

    def slow_usage_store():
        entered.set()
        time.sleep(1.0)  # e.g. a usage database that is slow to answer
        return real()

    monkeypatch.setattr(registry.resources, "usage_store", slow_usage_store)
    builder = threading.Thread(target=registry.get_model, args=("gemini",))
    builder.start()
    assert entered.wait(5)
    start = time.monotonic()
    registry.get_model("groq")
    assert time.monotonic() - start < 0.5
    builder.join(5)
    assert registry.pool("gemini") is not None


# -- the start-up log ------------------------------------------------------------------------------


def test_start_up_log(caplog: pytest.LogCaptureFixture, make_registry) -> None:
    env = provider_env({"groq": 3, "cerebras": 2, "gemini": 1})
    env["GEMINI_API_KEY_1"] = "your_api_key_here"
    env["CEREBRAS_API_KEY_2"] = env["CEREBRAS_API_KEY_2"][:30]
    with caplog.at_level(logging.INFO, logger="hfs_core"):
        registry = make_registry(env=env)
    records = [r for r in caplog.records if r.name == "hfs_core"]
    info = [r.getMessage() for r in records if r.levelno == logging.INFO]
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert "groq: 3 API keys" in info and "cerebras: 2 API keys" in info  # no expected_keys set: no count is wrong
    assert "gemini: 0 API keys" in info and "openrouter: 0 API keys" in info
    assert any(m.startswith("groq: the groq plugin's authors run 16 keys") for m in info)
    assert "2/4 providers healthy" in info
    assert info[-1] == "2/4 providers healthy"
    all_problems = [p for r in registry.environment_status.values() for p in r.problems] + registry.problems
    assert len(warnings) == len(all_problems)
    for problem in all_problems:
        assert any(str(problem) in w for w in warnings), problem
    assert any("GEMINI_API_KEY_1" in w and "placeholder" in w for w in warnings)
    assert any("NUM_OPENROUTER" in w for w in warnings)
    for name in ("groq", "cerebras", "gemini", "openrouter"):
        for key in keys_of(env, name) if f"NUM_{name.upper()}" in env else []:
            assert key not in caplog.text and key[-8:] not in caplog.text


def test_start_up_log_when_all_are_healthy(caplog: pytest.LogCaptureFixture, make_registry) -> None:
    with caplog.at_level(logging.INFO, logger="hfs_core"):
        make_registry(env=provider_env(3))
    assert "4/4 providers healthy" in caplog.text
    assert sum(r.getMessage().endswith("API keys") for r in caplog.records) == 4
