"""What importing hfs_core costs, and the names it and the plugins export."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from agno.agent import Agent
from conftest import PROVIDERS, provider_env

import hfs_core
import hfs_core.process as process_module
from hfs_core.testing.standin import StandIn

HEAVY_CALL_PATH = ("agno", "keycycle", "groq", "cerebras", "google.genai", "openai", "sqlalchemy", "httpx",
                   "pydantic", "hfs_core.pool", "hfs_core.call")
"""What a call needs and a listing must not load."""
HEAVY = ("agno", "keycycle", "groq", "cerebras", "google.genai", "openai", "sqlalchemy", "httpx", "pydantic", "yaml")

PROBE = """
import json, sys
import hfs_core
status = hfs_core.get_registry().environment_status
print("STATUS=" + json.dumps({name: report.keys_found for name, report in status.items()}))
print("MODULES=" + json.dumps(sorted(sys.modules)))
"""


def importtime_modules(stderr: str) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cumulative | name``)."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.add(name)
    return names


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_import_and_environment_check_load_no_heavy_package(isolated: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    env.update(provider_env(3))
    (isolated / ".env").write_text("HFS_FROM_DOTENV=1\n")  # python-dotenv is allowed; make it load
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE],
        cwd=isolated, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert json.loads(lines["STATUS"]) == dict.fromkeys(PROVIDERS, 3)
    timed = importtime_modules(result.stderr)
    assert "hfs_core.registry" in timed and "pluggy" in timed and "dotenv" in timed  # the parse works
    loaded = set(json.loads(lines["MODULES"]))
    for package in HEAVY:
        assert not any(is_under(m, package) for m in timed), f"{package} imported: {sorted(timed)}"
        assert not any(is_under(m, package) for m in loaded), f"{package} in sys.modules"
    assert {f"hfs_provider_{p}" for p in PROVIDERS} <= loaded  # the plugins were loaded, cheaply


def test_pool_classes_are_loaded_on_first_use() -> None:
    from hfs_core import pool

    assert hfs_core.KeyPool is pool.KeyPool
    assert hfs_core.CallOptions is pool.CallOptions
    assert hfs_core.NoAvailableKeyError is pool.NoAvailableKeyError
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        hfs_core.nothing_here  # noqa: B018


def test_public_names() -> None:
    for name in hfs_core.__all__:
        assert getattr(hfs_core, name) is not None, name
    assert hfs_core.__version__ == "0.1.0"


@pytest.fixture
def singleton(monkeypatch: pytest.MonkeyPatch, make_registry, sqlite_url: str):
    registry = make_registry(env=provider_env(2, db_url=sqlite_url))
    monkeypatch.setattr(process_module, "_registry", registry)
    return registry


def test_get_provider_model_helpers_from_hfs_core(singleton, standin: StandIn) -> None:
    from hfs_core import get_groq_model

    assert get_groq_model.__name__ == "get_groq_model"
    model = get_groq_model("openai/gpt-oss-20b", base_url=standin.url)
    assert model.id == "openai/gpt-oss-20b"
    assert model.pool is singleton.pool("groq")
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"
    for provider in PROVIDERS:
        assert callable(getattr(hfs_core, f"get_{provider}_model"))
    with pytest.raises(AttributeError):
        hfs_core.get_mistral_model  # noqa: B018
    with pytest.raises(ImportError):
        from hfs_core import get_mistral_model  # noqa: F401


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_core_serves_each_plugins_helper(singleton, standin: StandIn, provider: str) -> None:
    module = importlib.import_module(f"hfs_provider_{provider}")
    assert not hasattr(module, f"get_{provider}_model")  # the core's helper is the one
    helper = getattr(hfs_core, f"get_{provider}_model")
    model = helper(base_url=standin.url)
    assert model.pool is singleton.pool(provider)
    assert model.id == module.SPEC.default_model
    assert Agent(model=model, telemetry=False).run("hi").content == "stand-in reply: hi"


FIRST_CALL = """
import json, sqlite3, sys
from agno.agent import Agent
from hfs_core import get_model, shutdown
def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in ("openai", "sqlalchemy", "keycycle"))
model = get_model("groq", base_url=sys.argv[1])
print("AFTER_GET_MODEL=" + json.dumps(loaded()))
print("REPLY=" + Agent(model=model, telemetry=False).run("hi").content)
print("AFTER_CALL=" + json.dumps(loaded()))
shutdown()
rows = sqlite3.connect(sys.argv[2]).execute("SELECT COUNT(*) FROM usage_logs").fetchone()[0]
print("ROWS=" + json.dumps(rows))
print("AT_EXIT=" + json.dumps(loaded()))
"""


def test_a_first_call_loads_neither_the_openai_sdk_nor_sqlalchemy(isolated: Path, standin: StandIn,
                                                                  sqlite_url: str) -> None:
    """A fresh process's get_model and first groq call (SQLite usage store) load keycycle's light half
    only: not its package ``__init__`` (its legacy wrapper, the openai SDK), and SQLAlchemy not before
    the first usage row is written, in the background."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    env.update(provider_env({"groq": 2}, db_url=sqlite_url), AGNO_TELEMETRY="false")
    database = sqlite_url.removeprefix("sqlite:///")
    result = subprocess.run([sys.executable, "-c", FIRST_CALL, standin.url, database],
                            cwd=isolated, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert lines["REPLY"] == "stand-in reply: hi"
    for moment in ("AFTER_GET_MODEL", "AFTER_CALL"):
        loaded = json.loads(lines[moment])
        assert "keycycle.core.exceptions" in loaded, loaded  # the refusals' base class is there
        for heavy in ("openai", "keycycle.legacy_multi_provider_wrapper", "keycycle.usage"):
            assert not any(is_under(m, heavy) for m in loaded), f"{heavy} loaded by {moment}"
    assert not any(is_under(m, "sqlalchemy") for m in json.loads(lines["AFTER_GET_MODEL"])), "sqlalchemy loaded"
    assert json.loads(lines["ROWS"]) == 1  # the writer still writes the row, through keycycle's table
    assert "sqlalchemy" in json.loads(lines["AT_EXIT"])


KEYCYCLE_AFTER_POOL = """
import logging, os, sys
from hfs_core.pool import AllKeysDeadError, NoAvailableKeyError, PoolExhaustedError
assert "keycycle.legacy_multi_provider_wrapper" not in sys.modules
import keycycle
assert issubclass(NoAvailableKeyError, keycycle.NoAvailableKeyError)
try:
    raise PoolExhaustedError("no key free", provider="groq", model_id="m", wait=True, timeout=1.0,
                             total_keys=2, dead_keys=0, cooling_down=2, next_free_in=3.0)
except keycycle.NoAvailableKeyError as caught:
    assert caught.provider == "groq" and caught.total_keys == 2
from keycycle import MultiProviderWrapper, NoAvailableKeyError as Theirs
from keycycle.core.exceptions import NoAvailableKeyError as Defined
assert Theirs is Defined is keycycle.NoAvailableKeyError
assert issubclass(AllKeysDeadError, Theirs) and MultiProviderWrapper.__name__ == "MultiProviderWrapper"
assert "openai" in sys.modules  # keycycle's whole package, once asked for
assert logging.getLogger().handlers == [] and not os.path.exists("app.log")
print("OK")
"""


def test_refusals_are_keycycles_error_when_keycycle_is_imported_after_the_pool(isolated: Path) -> None:
    """The pool loads keycycle without its package ``__init__``; code that imports keycycle later
    gets the whole package, and its ``NoAvailableKeyError`` still catches every refusal."""
    result = subprocess.run([sys.executable, "-c", KEYCYCLE_AFTER_POOL], cwd=isolated,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "OK"


def test_a_sqlite_history_read_before_connecting_is_the_connected_read(isolated: Path) -> None:
    """A pool's history from a SQLite file nothing has connected to yet (read with sqlite3, no
    SQLAlchemy) is what the connected link reads through keycycle's table."""
    from hfs_core.usage.database_link import DatabaseLink

    url = f"sqlite:///{isolated / 'data' / 'usage.sqlite3'}"
    assert DatabaseLink(url).history("groq", 3600) == []  # no file yet: no history (the folder is made)
    now = time.time()
    writer = DatabaseLink(url)
    assert writer.write([("groq", "m1", "aaaa1111", now - 10, 5), ("groq", "m2", "bbbb2222", now - 7200, 9),
                         ("cerebras", "m1", "cccc3333", now - 5, 1)]) is not None
    fresh = DatabaseLink(url)
    early = fresh.history("groq", 3600)
    assert fresh.db is None  # read without connecting
    assert early == writer.history("groq", 3600) == [("aaaa1111", "m1", now - 10, 5)]
    writer.dispose()


LISTING_NEVER_LOADS = ("importlib.metadata", "email", "zipfile", "importlib.resources", "difflib", "shutil",
                       "zoneinfo", "subprocess", "queue", "json", "platformdirs", "hfs_core.events",
                       "hfs_core.telemetry")
"""What no listing loads once the entry-point cache is warm: the installed distributions' metadata, the
code of suggestions and of the commands it does not run, the events and telemetry of pools it does not
build, JSON."""
COMMANDS_NOT_RUN = ("hfs_core.cli.ask", "hfs_core.cli.check", "hfs_core.cli.demo", "hfs_core.cli.status",
                    "hfs_core.cli.usage", "hfs_core.cli.keys")
LISTING_MUST_NOT_LOAD = {
    (): ("hfs_core.registry", "hfs_core.config", "hfs_core.discovery", "hfs_core.usage", "hfs_core.plugin",
         "pluggy", "tomllib", *COMMANDS_NOT_RUN, "hfs_core.cli.providers", "hfs_core.cli.models"),
    ("--help",): ("hfs_core.registry", "hfs_core.config", "hfs_core.discovery", "hfs_core.usage",
                  "hfs_core.plugin", "pluggy", "tomllib", *COMMANDS_NOT_RUN, "hfs_core.cli.providers",
                  "hfs_core.cli.models"),
    ("providers",): ("hfs_core.usage.store", "hfs_core.usage.database_link", "hfs_core.usage.queries", "yaml",
                     *COMMANDS_NOT_RUN, "hfs_core.cli.models"),
    ("models", "groq"): ("hfs_core.usage.store", "hfs_core.usage.database_link", "hfs_core.usage.queries",
                         *COMMANDS_NOT_RUN),
}
"""For each listing command, what it must not load beyond `HEAVY`'s call path and `LISTING_NEVER_LOADS`
(its own listing needs the rest: ``hfs models`` reads keycycle's YAML tables, without importing keycycle;
``hfs providers`` and ``hfs models`` read the plugins' TOML limit tables, so they load tomllib)."""


@pytest.mark.parametrize("args", list(LISTING_MUST_NOT_LOAD), ids=lambda args: " ".join(args) or "hfs")
def test_listing_commands_load_only_what_they_print(isolated: Path, args: tuple[str, ...]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    env.update(provider_env(3, db_url=f"sqlite:///{isolated / 'usage.sqlite3'}"))
    hfs = str(Path(sys.executable).parent / "hfs")
    warm = subprocess.run([hfs, "providers"], cwd=isolated, env=env, capture_output=True, text=True, timeout=60)
    assert warm.returncode == 0, warm.stderr[-3000:]
    assert (isolated / "cache" / "hfs-providers" / "entry-points").is_file()  # the cache is warm
    result = subprocess.run([hfs, *args], cwd=isolated, env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip()
    timed = importtime_modules(result.stderr)
    assert "hfs_core.cli.main" in timed  # the parse works
    for package in (*HEAVY_CALL_PATH, *LISTING_NEVER_LOADS, *LISTING_MUST_NOT_LOAD[args]):
        assert not any(is_under(m, package) for m in timed), f"hfs {' '.join(args)} imported {package}"


def test_import_hfs_core_loads_none_of_its_modules() -> None:
    """``import hfs_core`` resolves its names on first use: it loads no module of its own, nor pluggy."""
    probe = ("import json, sys, hfs_core; print(json.dumps(sorted(m for m in sys.modules "
             "if m.split('.')[0] in ('hfs_core', 'pluggy', 'tomllib', 'dotenv'))))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout) == ["hfs_core"]
