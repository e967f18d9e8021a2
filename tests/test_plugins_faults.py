"""Broken plugins are reported, by distribution and by what went wrong, and never stop the others.

Each bad plugin is a real installed distribution: a ``<name>-0.1.dist-info`` directory with
``METADATA`` and ``entry_points.txt`` (group ``hfs.providers``) next to its module, in a
temporary directory put on ``sys.path``, so discovery goes through ``importlib.metadata``
exactly as it does for a pip-installed plugin.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agno.models.message import Message
from conftest import provider_env

from hfs_core import ProviderNotFoundError, ProviderUnavailableError, Registry
from hfs_core.testing.standin import StandIn

Record = Callable[[str, object], None]

SPEC = """
from functools import partial

from hfs_core import ProviderSpec, hookimpl, openai_style_options

@hookimpl
def register_provider():
    return ProviderSpec(name={name!r}, default_model="m", expected_keys=1,
                        model_class={model_class!r}, key_prefix="tw_",
                        sdk_options=partial(openai_style_options, sdk="groq"))
"""

BAD_PLUGINS: dict[str, tuple[str, str]] = {
    # entry point name: (module source, what the report must say)
    "brokenimport": ("import hfs_no_such_dependency_xyz  # noqa\n", "import failed: ModuleNotFoundError"),
    "hookraises": (
        "from hfs_core import hookimpl\n\n@hookimpl\ndef register_provider():\n"
        "    raise RuntimeError('the plugin has a bug')\n",
        "register_provider raised RuntimeError: the plugin has a bug",
    ),
    "wrongtype": (
        "from hfs_core import hookimpl\n\n@hookimpl\ndef register_provider():\n    return {'name': 'wrongtype'}\n",
        "register_provider returned dict, not a ProviderSpec",
    ),
    "nohook": ("VALUE = 1\n", "does not implement register_provider"),
    "badspec": (
        "from hfs_core import ProviderSpec, hookimpl\n\n@hookimpl\ndef register_provider():\n"
        "    return ProviderSpec(name='Bad Name', default_model='m', expected_keys=1, model_class='x:Y')\n",
        "register_provider raised ValueError: provider name must be lower-case",
    ),
    "badhookargs": (
        "from hfs_core import hookimpl\n\n@hookimpl\ndef register_provider(unknown_argument):\n    return None\n",
        "not a valid hfs plugin",
    ),
}


def install(site: Path, entry_point: str, source: str, dist: str | None = None) -> str:
    """Install a plugin distribution into `site`; returns its distribution name."""
    dist = dist or f"hfs-provider-{entry_point}"
    module = f"hfs_test_plugin_{entry_point.replace('-', '_')}_{abs(hash(str(site))) % 10**8}"
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[hfs.providers]\n{entry_point} = {module}\n", encoding="utf-8")
    return dist


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    importlib.invalidate_caches()
    return path


def working_groq(registry: Registry, standin: StandIn) -> str:
    model = registry.get_model("groq", base_url=standin.url)
    return str(model.response(messages=[Message(role="user", content="still here")]).content)


def test_each_broken_plugin_is_reported_and_the_others_work(site: Path, make_registry: Any, standin: StandIn,
                                                            caplog: pytest.LogCaptureFixture,
                                                            record_property: Record) -> None:
    dists = {name: install(site, name, source) for name, (source, _) in BAD_PLUGINS.items()}
    caplog.set_level(logging.WARNING, logger="hfs_core")
    registry = make_registry(env=provider_env(2))
    infos = {p.name: p for p in registry.plugins}
    for name, (_, says) in BAD_PLUGINS.items():
        info = infos[name]
        assert info.state == "failed", info
        assert info.distribution == dists[name] and info.version == "0.1"
        assert info.error and says in info.error, info.error
        logged = [r.getMessage() for r in caplog.records if f"plugin {name} ({dists[name]})" in r.getMessage()]
        assert logged and says.split(":")[0] in logged[0], logged
    assert {p.name for p in registry.plugins if p.state == "loaded"} == {"cerebras", "gemini", "groq", "openrouter"}
    assert registry.available_providers == ["cerebras", "gemini", "groq", "openrouter"]
    assert working_groq(registry, standin) == "stand-in reply: still here"
    with pytest.raises(ProviderUnavailableError, match=r"hfs-provider-hookraises failed to load .*plugin has a bug"):
        registry.get_model("hookraises")
    with pytest.raises(ProviderNotFoundError, match="available: cerebras, gemini, groq, openrouter"):
        registry.get_model("wrongtype_provider")
    record_property("bad_plugins", len(BAD_PLUGINS))
    record_property("reported", sum(1 for p in registry.plugins if p.state == "failed"))
    record_property("providers_still_serving", len(registry.available_providers))


def test_a_plugin_squatting_a_provider_name_gets_no_keys(site: Path, make_registry: Any, standin: StandIn,
                                                        isolated: Path, record_property: Record) -> None:
    """A distribution whose entry point sorts first ("aaafork") and claims "groq" must not get GROQ_API_KEY_*:
    while two plugins claim one name, neither is used (nor asked to check the keys) until the config picks."""
    seen = isolated / "fork-saw-keys"
    fork = install(site, "aaafork", SPEC.format(name="groq", model_class="agno.models.groq:Groq")
                   + f"\n@hookimpl\ndef validate_env(spec, env):\n    open({str(seen)!r}, 'w').write('x')\n"
                   "    return []\n", "hfs-groq-fork")
    registry = make_registry(env=provider_env(2))
    infos = {p.name: p for p in registry.plugins}
    for name in ("aaafork", "groq"):
        assert infos[name].state == "failed"
        assert f"{fork} 0.1" in str(infos[name].error) and "hfs-provider-groq" in str(infos[name].error)
    assert "groq" not in registry.available_providers and not seen.exists()
    with pytest.raises(ProviderUnavailableError, match=r'\[providers.groq\] plugin = "<distribution>"'):
        registry.get_model("groq", base_url=standin.url)
    assert standin.total == 0  # no key went anywhere

    (isolated / "hfs.toml").write_text('[providers.groq]\nplugin = "hfs-provider-groq"\n')
    picked = make_registry(env=provider_env(2))
    infos = {p.name: p for p in picked.plugins}
    assert infos["groq"].state == "loaded" and infos["aaafork"].state == "failed"
    assert working_groq(picked, standin) == "stand-in reply: still here"
    assert not seen.exists(), "the fork was asked to check the real groq keys"
    record_property("squatter_requests_with_real_keys", 0)


def test_a_plugin_that_exits_or_hangs_fails_alone(site: Path, make_registry: Any, standin: StandIn,
                                                  record_property: Record) -> None:
    install(site, "exiter", "import sys\nsys.exit(3)\n")
    install(site, "sleeper", SPEC.format(name="sleeper", model_class="agno.models.groq:Groq")
            + "\n@hookimpl\ndef validate_env(spec, env):\n    import time\n    time.sleep(60)\n    return []\n")
    install(site, "stuck", "import time\ntime.sleep(60)\n")
    install(site, "exitinhook", "from hfs_core import hookimpl\n\n@hookimpl\ndef register_provider():\n"
            "    raise SystemExit(4)\n")
    env = provider_env(2, NUM_SLEEPER="1", SLEEPER_API_KEY_1="tw_" + "s" * 30)
    started = time.monotonic()
    registry = make_registry(env=env, hook_timeout=1.0)
    took = time.monotonic() - started
    infos = {p.name: p for p in registry.plugins}
    assert infos["exiter"].state == "failed" and "import failed: SystemExit: 3" in str(infos["exiter"].error)
    assert infos["stuck"].state == "failed" and "import did not finish within 1s" in str(infos["stuck"].error)
    assert "register_provider raised SystemExit: 4" in str(infos["exitinhook"].error)
    sleeper = [str(p) for p in registry.environment_status["sleeper"].problems]
    assert any("validate_env did not finish within 1s" in p for p in sleeper), sleeper
    assert working_groq(registry, standin) == "stand-in reply: still here"
    assert took < 30, f"the registry waited {took:.1f}s on hung plugins"
    record_property("registry_start_with_two_hung_plugins_s", round(took, 2))


def test_validate_env_that_raises_or_returns_junk_is_a_warning(site: Path, make_registry: Any,
                                                               standin: StandIn) -> None:
    install(site, "fragile", SPEC.format(name="fragile", model_class="agno.models.groq:Groq")
            + "\n@hookimpl\ndef validate_env(spec, env):\n    raise KeyError('oops')\n")
    install(site, "junky", SPEC.format(name="junky", model_class="agno.models.groq:Groq")
            + "\n@hookimpl\ndef validate_env(spec, env):\n    return 'not a list'\n")
    env = provider_env(2)
    for name in ("FRAGILE", "JUNKY"):
        env[f"NUM_{name}"] = "1"
        env[f"{name}_API_KEY_1"] = "tw_" + "k" * 30 + name
    registry = make_registry(env=env)
    status = registry.environment_status
    fragile = [str(p) for p in status["fragile"].problems]
    assert any("plugin fragile: validate_env raised KeyError" in p for p in fragile), fragile
    junky = [str(p) for p in status["junky"].problems]
    assert any("validate_env did not return a list of Problem" in p for p in junky), junky
    assert status["fragile"].healthy and status["junky"].healthy  # a warning, not an error
    model = registry.get_model("fragile", "openai/gpt-oss-20b", base_url=standin.url)
    assert model.response(messages=[Message(role="user", content="x")]).content == "stand-in reply: x"
    assert working_groq(registry, standin) == "stand-in reply: still here"


def test_plugin_whose_model_class_is_missing_fails_alone(site: Path, make_registry: Any, standin: StandIn) -> None:
    install(site, "ghost", SPEC.format(name="ghost", model_class="agno.models.no_such_module:Nope"))
    env = provider_env(2, NUM_GHOST="1", GHOST_API_KEY_1="tw_" + "g" * 30)
    registry = make_registry(env=env)
    with pytest.raises(ProviderUnavailableError, match=r"ghost.*cannot start: ModuleNotFoundError.*reinstall it"):
        registry.get_model("ghost")
    assert "ghost" not in registry.available_providers
    with pytest.raises(ProviderUnavailableError, match="cannot start"):  # reported again, not retried blindly
        registry.get_model("ghost")
    assert working_groq(registry, standin) == "stand-in reply: still here"


def test_cli_reports_broken_plugins(site: Path, isolated: Path, record_property: Record) -> None:
    for name in ("brokenimport", "hookraises", "wrongtype"):
        install(site, name, BAD_PLUGINS[name][0])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUM_", "GROQ_", "TIDB_"))}
    env.update(provider_env(2))
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run([sys.executable, "-m", "hfs_core.cli", "providers", "--json"], cwd=isolated, env=env,
                          capture_output=True, text=True, timeout=60)
    text = done.stdout + done.stderr
    for name in ("brokenimport", "hookraises", "wrongtype"):
        assert f"hfs-provider-{name}" in text, text
    data = json.loads(done.stdout)
    failed = {p["distribution"]: p["error"] for p in data["failed_plugins"]}
    assert set(failed) == {f"hfs-provider-{n}" for n in ("brokenimport", "hookraises", "wrongtype")}
    assert "ModuleNotFoundError" in failed["hfs-provider-brokenimport"]
    assert "not a ProviderSpec" in failed["hfs-provider-wrongtype"]
    record_property("exit_code", done.returncode)
