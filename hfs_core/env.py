"""Reading and checking the environment: key counts, keys, and what is wrong with them.

Nothing here imports agno, keycycle or a provider SDK, so it is cheap to run at start-up
and in `hfs check`. A key's value never appears in a Problem: only its variable name.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hfs_core.plugin import MAX_KEY_COUNT, Problem, ProviderSpec, unusable_key_reason


@dataclass(frozen=True)
class EnvReport:
    """What the environment gives one provider."""

    provider: str
    enabled: bool
    keys_found: int
    expected: int
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = ()
    """What is worth knowing but wrong with nothing (fewer keys than the plugin's authors run, say)."""

    @property
    def configured(self) -> bool:
        """At least one usable key is present."""
        return self.keys_found > 0

    @property
    def errors(self) -> tuple[Problem, ...]:
        """The problems of severity "error"."""
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def healthy(self) -> bool:
        """Enabled, configured, and free of errors."""
        return self.enabled and self.configured and not self.errors

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "provider": self.provider,
            "enabled": self.enabled,
            "configured": self.configured,
            "healthy": self.healthy,
            "keys_found": self.keys_found,
            "expected": self.expected,
            "problems": [p.to_dict() for p in self.problems],
            "notes": list(self.notes),
        }


def mask_key(key: str) -> str:
    """Show a key as its last 4 characters, e.g. ``…a1b2``."""
    return "…" + key[-4:] if len(key) >= 8 else "…"


class SecretMask:
    """Hides API keys in text shown to anyone: a log line, a problem, an error, CLI output.

    It hides every value of a ``*_API_KEY*`` variable, and any word that starts with a
    loaded provider's key prefix (a key pasted in the wrong place: a plugin name, a model,
    a URL), each cut down to its last 4 characters.
    """

    def __init__(self, env: Mapping[str, str], key_prefixes: Iterable[str] = ()) -> None:
        values = {v.strip() for k, v in env.items() if "_API_KEY" in k and len(v.strip()) >= 8}
        self._secrets = sorted(values, key=len, reverse=True)
        prefixes = sorted({p for p in key_prefixes if p}, key=len, reverse=True)
        self._shape = re.compile("(?:" + "|".join(map(re.escape, prefixes)) + r")[^\s'\"]{8,}") if prefixes else None

    def __call__(self, text: str) -> str:
        """`text` with every key in it cut down to its last 4 characters."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, mask_key(secret))
        if self._shape is not None:
            text = self._shape.sub(lambda match: mask_key(match.group()), text)
        return text


def load_env(
    dotenv_path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    problems: list[Problem] | None = None,
) -> dict[str, str]:
    """The process environment over the `.env` file (the real environment wins).

    keycycle's own loader lets `.env` override the real environment; the registry
    never calls it and never writes to `os.environ`. A file that cannot be read, or
    lines that are not UTF-8, are skipped and reported in `problems` (naming the file
    and the lines), never raised: the rest of the environment still counts.
    """
    real = dict(os.environ if environ is None else environ)
    path = Path.cwd() / ".env" if dotenv_path is None else dotenv_path
    if not path.is_file():
        return real
    found = [] if problems is None else problems
    try:
        raw = path.read_bytes()
    except OSError as exc:
        found.append(Problem("warning", str(path), f"cannot be read ({type(exc).__name__}: {exc.strerror}); "
                             "only the real environment is used", "check the file's permissions"))
        return real
    lines: list[str] = []
    bad: list[int] = []
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1):
        try:
            lines.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            bad.append(number)
    if bad:
        shown = ", ".join(map(str, bad[:3])) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        found.append(Problem("warning", str(path), f"line{'s' if len(bad) > 1 else ''} {shown} "
                             f"{'are' if len(bad) > 1 else 'is'} not UTF-8 text and {'were' if len(bad) > 1 else 'was'}"
                             " skipped", "save the file as UTF-8"))
    from dotenv import dotenv_values

    values = dotenv_values(stream=io.StringIO("\n".join(lines)))
    return {**{k: v for k, v in values.items() if v is not None}, **real}


def _describe_count(raw: str) -> str:
    return repr(raw) if len(raw) <= 12 else f"a {len(raw)}-character value"


def parse_key_count(spec: ProviderSpec, env: Mapping[str, str]) -> tuple[int | None, Problem | None]:
    """Read ``NUM_<PREFIX>``: the count, or the problem that stops it being read."""
    var = spec.count_var
    raw = env.get(var)
    first_key = spec.key_var(1)
    if raw is None:
        found = len(_indexed_keys(spec, env))
        if found:
            return None, Problem(
                "error", var, f"is not set, but {found} {spec.env_prefix}_API_KEY_<i> "
                f"{'variable is' if found == 1 else 'variables are'}",
                f"set {var}={found}",
            )
        hint = f"set {var}=<count> and {first_key} ... {spec.env_prefix}_API_KEY_<count>"
        return None, Problem("error", var, "is not set, so no keys are loaded", hint)
    text = raw.strip()
    if not text:
        return None, Problem("error", var, "is empty", f"set {var} to the number of keys, e.g. {var}=3")
    if not re.fullmatch(r"[+-]?\d+", text):
        return None, Problem(
            "error", var, f"must be a whole number of keys, got {_describe_count(raw)}", f"e.g. {var}=3"
        )
    negative, digits = text.startswith("-"), text.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_KEY_COUNT)):  # past any count, and maybe past the digits int() takes
        bound = "at least 1" if negative else f"at most {MAX_KEY_COUNT}"
        return None, Problem("error", var, f"must be {bound}, got {_describe_count(text)}",
                             f"set {var} to the number of keys, e.g. {var}=3")
    count = int(text)
    if count < 1:
        return None, Problem("error", var, f"must be at least 1, got {count}", f"e.g. {var}=3")
    if count > MAX_KEY_COUNT:
        return None, Problem("error", var, f"must be at most {MAX_KEY_COUNT}, got {_describe_count(text)}",
                             f"set {var} to the number of keys, e.g. {var}=3")
    return count, None


def _indexed_keys(spec: ProviderSpec, env: Mapping[str, str]) -> dict[int, str]:
    """The ``<PREFIX>_API_KEY_<i>`` variables by index, but those whose index is past any count
    (`_overlong_key_vars`)."""
    pattern = re.compile(rf"^{re.escape(spec.env_prefix)}_API_KEY_(\d{{1,{len(str(MAX_KEY_COUNT))}}})$")
    found: dict[int, str] = {}
    for name, value in env.items():
        match = pattern.match(name)
        if match:
            found[int(match.group(1))] = value
    return found


def _overlong_key_vars(spec: ProviderSpec, env: Mapping[str, str]) -> list[str]:
    """The ``<PREFIX>_API_KEY_<i>`` variables whose index has more digits than any count, as shown
    (the index by its length: it may be longer than ``int()`` reads)."""
    pattern = re.compile(rf"^{re.escape(spec.env_prefix)}_API_KEY_(\d{{{len(str(MAX_KEY_COUNT)) + 1},}})$")
    return sorted(f"{spec.env_prefix}_API_KEY_<a {len(match.group(1))}-digit number>"
                  for match in map(pattern.match, env) if match)


def check_provider_env(
    spec: ProviderSpec, env: Mapping[str, str], expected: int | None = None,
    key_prefixes: Mapping[str, str] | None = None, config_name: str = "hfs.toml",
) -> tuple[list[str], list[Problem]]:
    """The core's checks for one provider: the usable keys, and every problem found.

    `expected` is the ``expected_keys`` the user set in `config_name` (None: none set, so no count
    is wrong). `key_prefixes` maps every loaded provider to its key prefix, to spot a key of one
    provider set in another's variable.

    A bad key is skipped with a warning and never stops the others; a provider with
    no usable key gets an error. A single ``<PREFIX>_API_KEY`` (the name the SDKs, Agno,
    LiteLLM and llm read) with no ``NUM_<PREFIX>`` and no numbered keys is a pool of one key.
    """
    single = (env.get(f"{spec.env_prefix}_API_KEY") or "").strip()
    if single and env.get(spec.count_var) is None and not _indexed_keys(spec, env):
        return _single_key(spec, single, key_prefixes or {})
    count, problem = parse_key_count(spec, env)
    if count is None:
        return [], [problem] if problem else []
    problems: list[Problem] = []
    keys: list[str] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    for index in range(1, count + 1):
        var = spec.key_var(index)
        raw = env.get(var)
        if raw is None:
            missing.append(var)
            continue
        value = raw.strip()
        if value != raw and value:
            problems.append(Problem("warning", var, "has white space around it; it was removed",
                                    "remove the spaces or newline in the file that sets it"))
        reason = unusable_key_reason(value)
        if reason:
            problems.append(Problem("warning", var, f"{reason}; this key is skipped", f"put a real key in {var}"))
            continue
        if value in seen:
            problems.append(Problem("warning", var, f"is the same key as {seen[value]}; it is used once",
                                    f"remove {var} or replace it with another key"))
            continue
        seen[value] = var
        problems.extend(_prefix_problems(spec, var, value, key_prefixes or {}))
        keys.append(value)
    if len(missing) <= 3:
        problems.extend(Problem("warning", var, f"is missing ({spec.count_var}={count})",
                                f"add {var} or lower {spec.count_var}") for var in missing)
    else:
        problems.append(Problem("warning", ", ".join(missing[:3]) + ", ...",
                                f"{len(missing)} of the {count} declared keys are missing",
                                f"add them or lower {spec.count_var}"))
    parked = sorted(i for i in _indexed_keys(spec, env) if i > count)
    if parked:
        names = ", ".join(spec.key_var(i) for i in parked[:3]) + (", ..." if len(parked) > 3 else "")
        problems.append(Problem("warning", names, f"ignored: beyond {spec.count_var}={count}",
                                f"raise {spec.count_var} to use them"))
    problems.extend(Problem("warning", name, f"ignored: beyond {spec.count_var}={count}",
                            f"remove it; keys are {spec.key_var(1)} to {spec.key_var(count)}")
                    for name in _overlong_key_vars(spec, env))
    if not keys:
        problems.append(Problem("error", spec.count_var, f"none of the {count} declared keys is usable",
                                f"set {spec.key_var(1)}..{spec.key_var(count)} to real keys"))
    if expected is not None and count != expected:
        problems.append(Problem(
            "warning", spec.count_var, f"is {count}, but expected_keys = {expected} for {spec.name}",
            f"set expected_keys = {count} under [providers.{spec.name}] in {config_name} if {count} is right",
        ))
    return keys, problems


def _single_key(spec: ProviderSpec, value: str, key_prefixes: Mapping[str, str]) -> tuple[list[str], list[Problem]]:
    var = f"{spec.env_prefix}_API_KEY"
    reason = unusable_key_reason(value)
    if reason:
        return [], [Problem("error", var, f"{reason}; no usable key", f"put a real key in {var}")]
    note = Problem("warning", var, f"is the only key ({spec.count_var} is not set): a pool of one key, "
                   "nothing to rotate to", f"to rotate keys, set {spec.count_var}=<count> and "
                   f"{spec.key_var(1)} ... {spec.env_prefix}_API_KEY_<count>")
    return [value], [note, *_prefix_problems(spec, var, value, key_prefixes)]


def _prefix_problems(spec: ProviderSpec, var: str, value: str, key_prefixes: Mapping[str, str]) -> list[Problem]:
    own = spec.key_prefix
    if not own or value.startswith(own):
        return []
    for other, prefix in key_prefixes.items():
        if other != spec.name and value.startswith(prefix):
            return [Problem(
                "warning", var,
                f"starts with {prefix!r} like a {other} key, not {own!r} like a {spec.name} key",
                f"move it to {other.upper()}_API_KEY_<i> if it is a {other} key",
            )]
    return [Problem("warning", var, f"does not start with {own!r} as {spec.name} keys do",
                    "check that it is a key for this provider")]
