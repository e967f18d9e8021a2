"""Database URLs and errors as they may be shown: with the password hidden.

The one way the core hides a URL's password, used by the usage store, its queries and the
CLI alike. SQLAlchemy parses the URL (its ``render_as_string(hide_password=True)`` is the
rendering every SQLAlchemy user already sees); a URL it cannot parse is not echoed at all. A
URL without a ``user:password@`` part has nothing to hide and is shown as it is, without
importing SQLAlchemy (so ``hfs check`` on a SQLite URL stays light).
"""

from __future__ import annotations

import re

_WITHOUT_USERINFO = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^@]*$")


def redact_url(url: str) -> str:
    """`url` with its password replaced by ``***`` (``<unparsable URL>`` if it cannot be parsed)."""
    if _WITHOUT_USERINFO.match(url):
        return url
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # any parse failure: show nothing of a string that may hold a secret
        return "<unparsable URL>"


def describe_error(exc: BaseException, url: str) -> str:
    """One line about a database failure: its type and first line, with `url` and its password hidden."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    shown = redact_url(url)
    text = text.replace(url, shown)
    password = _password(url)
    return text.replace(password, "***") if password else text


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy understands: it has no password to hide
        return None
    return str(password) if password else None
