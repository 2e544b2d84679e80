"""What a tracking URI says: its kind, its SQLite file, and a form safe to print (no credentials)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

# scheme://user:password@host or scheme://token@host: everything between "//" and the last "@" of the authority
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/\s@?#]+)@")


def mask_credentials(text: str) -> str:
    """`text` with every `user:password@` (or `token@`) of a URI in it replaced by `***@`."""
    return _CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", str(text))


def is_http(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///path` URI (None for any other store or an in-memory database)."""
    if not uri.startswith("sqlite:"):
        return None
    path = unquote(urlsplit(uri).path)
    if uri.startswith("sqlite:////"):
        path = "/" + path.lstrip("/")
    elif uri.startswith("sqlite:///"):
        path = path[1:]  # sqlite:///relative/path
    if not path or path == ":memory:":
        return None
    return Path(path)
