"""The entry-point cache: a listing reads the installed plugins from it while nothing was installed,
removed or edited, and sees every such change on its next run (each run a fresh ``hfs`` process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import platformdirs
import pytest

from hfs_core import discovery
from hfs_core.discovery import InstalledEntryPoint, installed_entry_points, installed_fingerprint

HFS = str(Path(sys.executable).parent / "hfs")
SOURCE = """
from hfs_core import ProviderSpec, hookimpl

@hookimpl
def register_provider():
    return ProviderSpec(name={name!r}, default_model="m", expected_keys=1, model_class="agno.models.groq:Groq")
"""


def install(site: Path, name: str, version: str = "0.1") -> Path:
    """Install plugin distribution ``hfs-cache-<name>`` (entry point `name`) into `site`; its dist-info."""
    (site / f"hfs_cache_{name}.py").write_text(SOURCE.format(name=name), encoding="utf-8")
    info = site / f"hfs_cache_{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: hfs-cache-{name}\nVersion: {version}\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[hfs.providers]\n{name} = hfs_cache_{name}\n", encoding="utf-8")
    return info


def settle(site: Path) -> None:
    """Date `site` and its entry_points.txt files a minute back, as an installation made a while ago
    (a fingerprint holding a time of the last seconds is not cached)."""
    past = time.time() - 60
    for path in [*site.glob("*.dist-info/entry_points.txt"), site]:
        os.utime(path, (past, past))


def listed(site: Path, isolated: Path) -> dict[str, str | None]:
    """What a fresh ``hfs providers --json`` lists: each plugin's entry-point name and version (none loaded:
    `HFS_PLUGINS` names another, so every installed plugin is listed as skipped)."""
    env = {**os.environ, "PYTHONPATH": str(site), "HFS_PLUGINS": "none-such"}
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    done = subprocess.run([HFS, "providers", "--json"], cwd=isolated, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr
    data = json.loads(done.stdout)
    return {p["name"]: p["version"] for p in data["skipped_plugins"]}


@pytest.fixture
def site(isolated: Path) -> Path:
    path = isolated / "site"
    path.mkdir()
    return path


def cache(isolated: Path) -> Path:
    return isolated / "cache" / "hfs-providers" / "entry-points"


def test_the_cache_is_written_then_read(site: Path, isolated: Path) -> None:
    install(site, "alpha")
    settle(site)
    assert listed(site, isolated)["alpha"] == "0.1"
    text = cache(isolated).read_text(encoding="utf-8")
    assert text.startswith("hfs entry-point cache 1\n")
    assert "alpha\thfs_cache_alpha\thfs-cache-alpha\t0.1\n" in text
    # the next run takes what the cache says (here edited by hand), without asking importlib.metadata
    cache(isolated).write_text(text.replace("hfs-cache-alpha\t0.1", "hfs-cache-alpha\t7.7"), encoding="utf-8")
    assert listed(site, isolated)["alpha"] == "7.7"


def test_a_plugin_installed_after_the_cache_was_written_is_listed(site: Path, isolated: Path) -> None:
    install(site, "alpha")
    settle(site)
    assert "beta" not in listed(site, isolated)
    assert cache(isolated).exists()
    install(site, "beta")
    names = listed(site, isolated)
    assert names["alpha"] == names["beta"] == "0.1"


def test_a_removed_plugin_disappears(site: Path, isolated: Path) -> None:
    install(site, "alpha")
    beta = install(site, "beta")
    settle(site)
    assert {"alpha", "beta"} <= set(listed(site, isolated))
    assert "beta" in cache(isolated).read_text(encoding="utf-8")
    shutil.rmtree(beta)
    names = listed(site, isolated)
    assert "alpha" in names and "beta" not in names


def test_an_upgraded_or_edited_plugin_is_seen(site: Path, isolated: Path) -> None:
    alpha = install(site, "alpha")
    settle(site)
    assert listed(site, isolated)["alpha"] == "0.1"
    # an upgrade: the dist-info renamed (its folder's time changes)
    upgraded = alpha.rename(site / "hfs_cache_alpha-0.2.dist-info")
    (upgraded / "METADATA").write_text("Metadata-Version: 2.1\nName: hfs-cache-alpha\nVersion: 0.2\n",
                                       encoding="utf-8")
    assert listed(site, isolated)["alpha"] == "0.2"
    # entry_points.txt edited in place (the folder's time stays as it was)
    settle(site)
    assert listed(site, isolated)["alpha"] == "0.2"
    (upgraded / "entry_points.txt").write_text("[hfs.providers]\nrenamed = hfs_cache_alpha\n", encoding="utf-8")
    names = listed(site, isolated)
    assert "renamed" in names and "alpha" not in names


@pytest.mark.parametrize("content", [
    b"\x00\xff not text at all",
    b'{"format": 1, "fingerprint": [], "entry_points": []}\n',
    b"hfs entry-point cache 1\n",
    b"hfs entry-point cache 0\nsomething\n=\nalpha\thfs_cache_alpha\n",
], ids=["binary", "foreign JSON", "header only", "other format"])
def test_a_corrupt_or_foreign_cache_is_ignored_and_replaced(site: Path, isolated: Path, content: bytes) -> None:
    install(site, "alpha")
    settle(site)
    cache(isolated).parent.mkdir(parents=True)
    cache(isolated).write_bytes(content)
    assert listed(site, isolated)["alpha"] == "0.1"
    assert "alpha\thfs_cache_alpha\thfs-cache-alpha\t0.1\n" in cache(isolated).read_text(encoding="utf-8")


def test_a_cache_with_broken_rows_is_ignored(site: Path, isolated: Path) -> None:
    install(site, "alpha")
    settle(site)
    listed(site, isolated)
    text = cache(isolated).read_text(encoding="utf-8")
    cache(isolated).write_text(text.replace("\thfs-cache-alpha\t0.1", ""), encoding="utf-8")
    assert listed(site, isolated)["alpha"] == "0.1"


def test_a_cache_that_cannot_be_written_is_no_error(site: Path, isolated: Path) -> None:
    install(site, "alpha")
    settle(site)
    (isolated / "cache").write_text("a file where the cache folder would be", encoding="utf-8")
    assert listed(site, isolated)["alpha"] == "0.1"


def test_a_fresh_installation_is_not_cached(site: Path, isolated: Path) -> None:
    """An installation of the last seconds may change again within the same tick of the file system's
    clock, unseen by a fingerprint: it is not cached (the next run looks again)."""
    install(site, "alpha")
    assert listed(site, isolated)["alpha"] == "0.1"
    assert not cache(isolated).exists()


def test_the_cache_folder_is_platformdirs_user_cache_dir(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    for value in (str(isolated / "xdg"), None, "relative/path"):
        if value is None:
            monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        else:
            monkeypatch.setenv("XDG_CACHE_HOME", value)
        assert discovery.cache_file() == os.path.join(
            platformdirs.user_cache_dir("hfs-providers", appauthor=False), "entry-points")


def test_a_zip_on_sys_path_means_no_fingerprint(monkeypatch: pytest.MonkeyPatch, isolated: Path) -> None:
    archive = isolated / "plugins.zip"
    archive.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    assert installed_fingerprint() is not None
    monkeypatch.syspath_prepend(str(archive))
    assert installed_fingerprint() is None
    assert {e.name for e in installed_entry_points()} >= {"groq", "gemini"}  # importlib.metadata answers
    assert not Path(discovery.cache_file()).exists()


def test_an_entry_point_loads_as_importlib_metadata_loads_it() -> None:
    assert InstalledEntryPoint("x", "os.path", None, None).load() is os.path
    assert InstalledEntryPoint("x", "os.path:join", None, None).load() is os.path.join
    assert InstalledEntryPoint("x", "os : path.join [extra]", None, None).load() is os.path.join
    with pytest.raises(ModuleNotFoundError):
        InstalledEntryPoint("x", "no_such_module_here", None, None).load()
