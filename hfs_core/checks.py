"""The start-up checks: what is wrong with the environment, the configuration and the plugins, found
when a registry is made (each a `Problem`), and the start-up log that says it.

Nothing here imports agno, keycycle or a provider SDK: `import_problem` looks for packages without
importing them.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence

from hfs_core import catalog
from hfs_core.config import KeyRange, looks_like_db_url, looks_like_state_url
from hfs_core.discovery import PluginFault, PluginInfo, Plugins
from hfs_core.env import EnvReport, check_provider_env, parse_key_count
from hfs_core.install import CORE, install_command, plugin_command
from hfs_core.plugin import Problem, ProviderSpec, shown_name
from hfs_core.settings import Settings, state_url_problem
from hfs_core.tier_table import TierEntry
from hfs_core.variables import STATE_SECRET_ENV, STATE_URL_ENV

log = logging.getLogger("hfs_core")

Mask = Callable[[str], str]


def unknown_model(provider: str) -> str:
    """What a model no limit table knows is held to, as the end of a message naming the model."""
    default = catalog.DEFAULT_LIMITS
    return (f"is in no limit table (the {provider} plugin's or keycycle's), so it is held to the conservative "
            f"default of {default['rpm']} requests a minute, {default['rph']} an hour, {default['rpd']} a day")


def model_suggestion(spec: ProviderSpec, model: str, configured: Collection[str]) -> str:
    """``; did you mean 'x'?`` naming the model of `spec`'s tables (or `configured`) closest to `model`,
    or "" when none is close."""
    import difflib

    known = {*catalog.plugin_table(spec.limits).models, *(catalog.model_names(spec.keycycle_name) or ()), *configured}
    near = difflib.get_close_matches(model, sorted(known), n=1)
    return f"; did you mean {near[0]!r}?" if near else ""


def limits_hint(settings: Settings, mask: Mask, provider: str, model: str) -> str:
    """Where the user can set the limits of `model`."""
    return (f'set its limits under [providers.{provider}.models."{mask(model)}"] in '
            f"{settings.config.source or 'hfs.toml'}; `hfs models {provider}` shows the limits the tables give")


def missing_plugins(settings: Settings, missing: Sequence[str]) -> list[Problem]:
    """A warning for each plugin the list of plugins to load names but no installed plugin has."""
    return [Problem("warning", settings.plugins_source, f"names plugin {shown_name(name)!r}, which is not "
                    "installed", plugin_command(shown_name(name))) for name in missing]


def provider_reports(settings: Settings, plugins: Plugins,
                     mask: Mask) -> tuple[dict[str, list[str]], dict[str, EnvReport]]:
    """Each loaded provider's usable keys and its `EnvReport`: the core's key checks, the plugin's
    `validate_env`, its limit table, its default model."""
    specs = plugins.specs
    prefixes = {name: spec.key_prefix for name, spec in specs.items() if spec.key_prefix}
    keys: dict[str, list[str]] = {}
    reports: dict[str, EnvReport] = {}
    config_name = str(settings.config.source or "hfs.toml")
    for name, spec in sorted(specs.items()):
        configured = settings.config.provider(name)
        found, problems = check_provider_env(spec, settings.env, configured.expected_keys, prefixes, config_name)
        problems.extend(plugin_problems(plugins, spec, settings.env))
        model = settings.default_model(spec)
        table = catalog.plugin_table(spec.limits)
        if table.problem:
            problems.append(Problem("warning", f"plugin {name} limits", mask(table.problem),
                                    "report it to the plugin's authors; keycycle's table and the default apply"))
        if not catalog.is_known_model(spec, model) and model not in configured.models:
            where = (f"{settings.config.source_name} [providers.{name}] default_model" if configured.default_model
                     else f"plugin {name} default_model")
            near = model_suggestion(spec, model, configured.models)
            problems.append(Problem("warning", where, f"{mask(repr(model))} {unknown_model(name)}{mask(near)}",
                                    limits_hint(settings, mask, name, model)))
        notes: tuple[str, ...] = ()
        if configured.expected_keys is None and 0 < len(found) < spec.expected_keys:
            notes = (f"the {name} plugin's authors run {spec.expected_keys} keys (more keys spread the calls "
                     f"further); to have the count checked, set expected_keys under [providers.{name}] in "
                     f"{config_name}",)
        keys[name] = found
        reports[name] = EnvReport(name, configured.enabled, len(found), configured.expected_keys or spec.expected_keys,
                                  tuple(problems), notes)
    return keys, reports


def plugin_problems(plugins: Plugins, spec: ProviderSpec, env: Mapping[str, str]) -> list[Problem]:
    """What the plugin's `validate_env` finds; a plugin that raises, hangs or returns junk is a warning."""
    try:
        found = plugins.call(spec.name, "validate_env", spec=spec, env=env) or []
    except PluginFault as fault:
        return [Problem("warning", f"plugin {spec.name}", str(fault), "report it to the plugin's authors")]
    if not isinstance(found, list) or not all(isinstance(p, Problem) for p in found):
        return [Problem("warning", f"plugin {spec.name}", "validate_env did not return a list of Problem",
                        "report it to the plugin's authors")]
    return found


def configuration_problems(settings: Settings, plugins: Plugins, tier_entries: Callable[[str], list[TierEntry]],
                           mask: Mask) -> list[Problem]:
    """The problems beyond one provider's: providers and ``NUM_<P>`` no plugin has, the shared state,
    the tiers (`tier_entries` gives a configured tier's entries), the usage database."""
    problems = unclaimed_providers(settings, plugins.specs)
    problems += unclaimed_counts(settings, plugins.specs, plugins.infos)
    problems += key_group_problems(settings, plugins.specs)
    problems += state_problems(settings)
    problems += tier_problems(settings, plugins, tier_entries, mask)
    var = settings.db_url_var()
    if var and not looks_like_db_url(settings.var(var)):
        problems.append(Problem(
            "error", var, "is not a database URL; usage goes to the SQLite default instead",
            "use a SQLAlchemy URL such as mysql+pymysql://user:password@host:4000/db"))
    return problems


def state_problems(settings: Settings) -> list[Problem]:
    """What keeps the shared state from being used: ``HFS_STATE_URL`` or ``[state] url`` not a URL
    redis-py can use, the redis client missing, an ``HFS_STATE_SECRET`` that is not text."""
    url = settings.named_state_url()
    if not url:
        return []
    alone = "each process keeps its pools' state to itself"
    source = settings.state_source
    if not looks_like_state_url(url):  # a file's URL is checked when the file is read
        return [Problem("error", STATE_URL_ENV, f"is not a redis://, rediss:// or unix:// URL; {alone}",
                        "e.g. HFS_STATE_URL=redis://127.0.0.1:6379/0, or unset it")]
    if importlib.util.find_spec("redis") is None:
        return [Problem("error", source, f"names a shared state, but the redis client is not installed; {alone}",
                        install_command(CORE, "redis"))]
    why = state_url_problem(url)
    if why is not None:
        return [Problem("error", source, f"cannot be used: {why}; {alone}",
                        "fix the URL (redis://host:6379/0, rediss://..., unix:///path/redis.sock?db=0; arguments "
                        "as redis-py's from_url takes them), or unset it")]
    if not settings.state_secret_usable:
        return [Problem("error", STATE_SECRET_ENV, f"holds bytes that are not UTF-8 text, so it cannot key the hash "
                        f"that names API keys in Redis; {alone}",
                        "set it to the same text in every process (e.g. the output of `openssl rand -hex 32`)")]
    return []


def unclaimed_providers(settings: Settings, specs: Collection[str]) -> list[Problem]:
    """A warning for each ``[providers.NAME]`` of the configuration that no installed plugin provides."""
    installed = sorted(specs)
    return [Problem("warning", settings.config.source_name, f"[providers.{shown_name(name)}] names no installed "
                    f"provider (installed: {', '.join(installed) or 'none'})",
                    f"{plugin_command(shown_name(name))}, or remove it")
            for name in sorted(set(settings.config.providers) - set(specs))]


def unclaimed_counts(settings: Settings, specs: Mapping[str, ProviderSpec],
                     infos: Sequence[PluginInfo]) -> list[Problem]:
    """Warn about ``NUM_<P>`` variables for which no plugin is installed (one skipped on purpose is fine)."""
    read = {spec.count_var for spec in specs.values()}
    installed = {p.name for p in infos} | {p.provider for p in infos if p.provider}
    problems = []
    for var in sorted(v for v in settings.env if v.startswith("NUM_") and v not in read):
        name = var[4:].lower()
        if name in installed or not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not settings.env[var].strip():
            continue
        problems.append(Problem("warning", var, f"no installed plugin reads it (no plugin {name!r})",
                                f"{plugin_command(name)}, or unset {var}"))
    return problems


def key_group_problems(settings: Settings, specs: Mapping[str, ProviderSpec]) -> list[Problem]:
    """Errors in each provider's ``key_groups``: numbers beyond its keys (``NUM_<P>``), a key in two
    groups, a group listing a key twice (overlapping ranges). The pool merges groups that share a key."""
    problems = []
    for name, configured in sorted(settings.config.providers.items()):
        spec = specs.get(name)
        if spec is None or not configured.key_groups:
            continue
        where = f"{settings.config.source_name} [providers.{name}] key_groups"
        count, _ = parse_key_count(spec, settings.env)
        if count is None and (settings.env.get(f"{spec.env_prefix}_API_KEY") or "").strip():
            count = 1  # a single NAME_API_KEY: key 1
        items = [(group, item) for group, members in enumerate(configured.key_groups) for item in members]
        for group, members in enumerate(configured.key_groups):
            beyond = [KeyRange(max(item.first, count + 1), item.last) for item in members
                      if count is not None and item.last > count]
            if beyond:
                shown = ", ".join(str(item) for item in beyond)
                many = len(beyond) > 1 or beyond[0].first != beyond[0].last
                problems.append(Problem("error", where, f"key_groups[{group}] names {'keys' if many else 'key'} "
                                        f"{shown}, beyond {spec.count_var}={count}; there is no such key",
                                        f"remove {'them' if many else 'it'} from the group, or raise "
                                        f"{spec.count_var}"))
        for at, (group, item) in enumerate(items):
            for other_group, other in items[at + 1:]:
                first, last = max(item.first, other.first), min(item.last, other.last)
                if first > last:
                    continue
                keys = f"key {first}" if first == last else f"keys {KeyRange(first, last)}"
                if group == other_group:
                    problems.append(Problem("error", where, f'key_groups[{group}] has overlapping ranges "{item}" '
                                            f'and "{other}" ({keys})', "list each key once"))
                else:
                    verb = "is" if first == last else "are"
                    problems.append(Problem("error", where, f'{keys} {verb} in key_groups[{group}] ("{item}") and '
                                            f'key_groups[{other_group}] ("{other}"); a key belongs to one group',
                                            "remove it from one of them; until then the pool counts the two "
                                            "groups as one"))
    return problems


def tier_problems(settings: Settings, plugins: Plugins, tier_entries: Callable[[str], list[TierEntry]],
                  mask: Mask) -> list[Problem]:
    """Problems of the configured tiers, their entries numbered from 1: an entry naming no installed
    provider (an error: a typo), an entry that cannot serve now (a warning; an error when none can),
    a model no limit table knows (a warning, with the closest known model), a tier with a provider's
    name. The default tiers are not checked: their entries' providers report their own problems."""
    installed = {info.provider or info.name for info in plugins.infos}
    problems = []
    for name, names in settings.config.tiers.items():
        where = f"{settings.config.source_name} [tiers.{name}]"
        if name in plugins.specs:
            problems.append(Problem("warning", where, f"has the name of provider {name}, which "
                                    f"get_model({name!r}) gives instead", "rename the tier"))
        entries = tier_entries(name)
        for number, entry in enumerate(entries, 1):
            shown = f"entry {number} {mask(names[number - 1])}"
            if entry.problem is not None and entry.provider not in installed:
                problems.append(Problem("error", where, f"{shown}: {entry.problem}",
                                        "fix the provider's name; until then the tier's other entries serve its "
                                        "calls"))
            elif entry.problem is not None:
                problems.append(Problem("warning", where, f"{shown}: {entry.problem}",
                                        "the tier's other entries serve its calls meanwhile"))
            elif entry.known_model is False and entry.model not in settings.config.provider(entry.provider).models:
                configured = settings.config.provider(entry.provider).models
                near = model_suggestion(plugins.specs[entry.provider], entry.model, configured)
                problems.append(Problem(
                    "warning", where, f"{shown}: the model {unknown_model(entry.provider)}{mask(near)}",
                    limits_hint(settings, mask, entry.provider, entry.model)))
        if all(entry.problem is not None for entry in entries):
            problems.append(Problem("error", where, "has no entry that can serve calls",
                                    "fix the entries named above, or the providers' keys"))
    return problems


def log_start(settings: Settings, problems: Sequence[Problem], reports: Mapping[str, EnvReport]) -> None:
    """The start-up log: a WARNING per problem, an INFO line per provider with its key count (and its
    notes), and ``N/M providers healthy``."""
    for problem in problems:
        log.warning("%s", problem)
    enabled = [r for r in reports.values() if r.enabled]
    for report in reports.values():
        if not report.enabled:
            log.info("%s: disabled in %s", report.provider, settings.config.source_name)
            continue
        expected = settings.config.provider(report.provider).expected_keys
        log.info("%s: %d API key%s%s", report.provider, report.keys_found, "" if report.keys_found == 1 else "s",
                 f" (expected_keys = {expected})" if expected is not None else "")
        for problem in report.problems:
            log.warning("%s: %s", report.provider, problem)
        for note in report.notes:
            log.info("%s: %s", report.provider, note)
    log.info("%d/%d providers healthy", sum(r.healthy for r in enabled), len(enabled))


def import_problem(spec: ProviderSpec, infos: Sequence[PluginInfo]) -> str | None:
    """Why the provider of `spec` could not be built (its Agno class's package, or a dependency its
    plugin declares, is not installed), found without importing them; None when nothing is missing."""
    import importlib.metadata

    package = spec.model_class.partition(":")[0].split(".")[0]
    if importlib.util.find_spec(package) is None:
        return f"{spec.model_class} cannot be imported: {package} is not installed"
    dist = next((p.distribution for p in infos if p.provider == spec.name and p.state == "loaded"), None)
    for requirement in (importlib.metadata.requires(dist) if dist else None) or []:
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if found is None or ";" in requirement:  # conditional (an extra, a Python version): not checked
            continue
        try:
            importlib.metadata.distribution(found.group())
        except importlib.metadata.PackageNotFoundError:
            return f"{dist} needs {found.group()}, which is not installed"
    return None
