"""How to install a distribution of this project, as the hints in messages say it.

The core and its plugins are not on the package index yet, so a hint that says
``pip install hfs-provider-groq`` would fail as printed. Every hint is built here, in the form
that works from a checkout of this repository: the core from its root, each plugin from
``plugins/<provider>``, where this repository keeps the plugins it ships.
"""

from __future__ import annotations

CORE = "hfs-core"
"""The core's distribution name."""
_PLUGIN_PREFIX = "hfs-provider-"
WHERE = "from the root of an hfs-providers checkout; the packages are not on PyPI yet"
"""Where an install hint's command runs, said once beside it."""


def _normal(distribution: str) -> str:
    return distribution.strip().lower().replace("_", "-")


def _ours(name: str) -> bool:
    return name == CORE or name.startswith(_PLUGIN_PREFIX)


def source_path(distribution: str, extra: str = "") -> str:
    """What `pip install` takes for `distribution`: for this project's own, the path relative to a
    checkout's root (``.`` for the core, ``./plugins/groq`` for ``hfs-provider-groq``); for
    another project's plugin, its name. With an optional extra."""
    name = _normal(distribution)
    path = name if not _ours(name) else "." if name == CORE else f"./plugins/{name.removeprefix(_PLUGIN_PREFIX)}"
    return f"'{path}[{extra}]'" if extra else path


def install_command(distribution: str, extra: str = "", *, reinstall: bool = False) -> str:
    """The command that installs `distribution` (``pip install ./plugins/groq``), and where it runs."""
    flag = "--force-reinstall " if reinstall else ""
    where = f" ({WHERE})" if _ours(_normal(distribution)) else ""
    return f"pip install {flag}{source_path(distribution, extra)}{where}"


def plugin_command(provider: str) -> str:
    """The command that installs the plugin of `provider` as this repository names its plugins."""
    return install_command(_PLUGIN_PREFIX + provider.replace("_", "-"))


FIRST_PLUGIN = f"pip install ./plugins/groq (or another folder under plugins/; {WHERE})"
"""The hint when no provider plugin is installed at all."""
