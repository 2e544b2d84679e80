"""A user's code named by reference, `path/to/file.py:NAME` or `package.module:NAME`: the one loader behind
user optimizers (optlab.references) and user workloads (optlab.problem.workload_ref).

A file reference is made absolute once, where the user wrote it (the working directory for `optlab run`,
the sweep file's folder for a sweep), so that spawned and Ray workers load the same file by path
(importlib, as benchopt loads a benchmark's solvers). A loaded file is fingerprinted (SHA-256 of its
bytes) and its bytes are kept, so a run records the exact code that ran; a file changed on disk is
loaded again, under its new fingerprint.

Only the standard library here: config, tracking, strategies and problems all use it. Errors are
`UserFileError`s carrying the reason; each caller words its own one-line message.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path


class UserFileError(Exception):
    """A user's file could not be read or imported. `reason` is one line: for `unreadable`, what the OS
    said; for `not_python`, the path; for `raised`, the exception the import raised as `Type: first line`."""

    def __init__(self, path: Path, kind: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.kind = kind  # unreadable | not_python | raised
        self.reason = reason


@dataclass(frozen=True)
class LoadedFile:
    path: Path
    sha256: str
    data: bytes  # the bytes that were imported
    module: object


_loaded: dict[str, LoadedFile] = {}  # absolute path -> the last version loaded in this process


def split(text: str) -> tuple[str, str] | None:
    """(file or module, NAME) of `location:NAME`, or None when `text` has no location or no NAME."""
    if not isinstance(text, str):
        return None
    location, sep, name = text.rpartition(":")
    return (location, name) if sep and location and name else None


def is_file(location: str) -> bool:
    """Whether a reference's location is a file path (else a module name)."""
    return location.endswith(".py") or "/" in location or "\\" in location or os.sep in location


def absolute_path(location: str, folder: str | os.PathLike | None = None) -> Path:
    """A file location made absolute against `folder` (default: the working directory)."""
    path = Path(location).expanduser()
    if not path.is_absolute():
        path = Path(folder if folder is not None else os.getcwd()) / path
    return Path(os.path.normpath(path))


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load(path: Path) -> LoadedFile:
    """The module of the Python file at `path` (absolute), imported once per process and version of the
    file, registered in sys.modules (dataclasses and pickling look it up there)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserFileError(path, "unreadable", f"cannot read {path} ({exc.strerror or exc})") from None
    sha = fingerprint(data)
    known = _loaded.get(str(path))
    if known is not None and known.sha256 == sha:
        return known
    module_name = f"optlab_user_{fingerprint(str(path).encode() + data)[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise UserFileError(path, "not_python", f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: whatever it raises becomes one line naming it
        sys.modules.pop(module_name, None)
        raise UserFileError(path, "raised", f"{type(exc).__name__}: {first_line(exc)}") from None
    loaded = LoadedFile(path, sha, data, module)
    _loaded[str(path)] = loaded
    return loaded


def loaded(path: Path) -> LoadedFile | None:
    """The version of the file at `path` loaded in this process, if any."""
    return _loaded.get(str(path))


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
