"""Optimizer references: a strategy named by where its class lives, `path/to/file.py:Class` or `package.module:Class`.

Files are made absolute, loaded by path and fingerprinted by optlab.user_files (the loader user workloads
share). A module reference is imported by name, with the working directory on the import path (as
`python -m` does). Runs show a file reference by its file name and class (`my_opt.py:MyOpt`); the full
path and the file's SHA-256 are recorded as tags, a copy of the file as an artifact.

Only the standard library, optlab.errors and optlab.user_files here: config, tracking and strategies all
use it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from pathlib import Path

from optlab import user_files
from optlab.errors import ConfigError

REF_TAG, SHA_TAG = "optlab.strategy_ref", "optlab.strategy_sha256"
SOURCE_FOLDER = "strategy"  # the artifact folder that holds a copy of the optimizer's file
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def split(name: str) -> tuple[str, str] | None:
    """(file or module, class) of a reference, or None when `name` is not one (a registry name, `po:lion`)."""
    parts = user_files.split(name)
    if parts is None or not _CLASS.match(parts[1]):
        return None
    where, cls = parts
    if is_file(where) or ("." in where and _MODULE.match(where)):
        return where, cls
    return None


is_file = user_files.is_file


def is_reference(name: str) -> bool:
    return split(name) is not None


def absolute(name: str, folder: str | os.PathLike | None = None) -> str:
    """The reference with a relative file path made absolute against `folder` (default: the working
    directory); any other name unchanged."""
    parts = split(name)
    if parts is None or not is_file(parts[0]):
        return name
    return f"{user_files.absolute_path(parts[0], folder)}:{parts[1]}"


def display(name: str) -> str:
    """How runs show a strategy: a file reference by its file name and class, anything else as it is."""
    parts = split(name)
    if parts is None or not is_file(parts[0]):
        return name
    return f"{Path(parts[0]).name}:{parts[1]}"


def reference_parts(name: str) -> tuple[str, str]:
    """(file or module, class) of `name`, or a one-line ConfigError when it is not a reference."""
    found = split(name)
    if found is None:
        raise ConfigError(f"strategy {name!r} is not a reference (path/to/file.py:Class or package.module:Class)")
    return found


def load_class(name: str) -> type:
    """The class a reference names, or a one-line ConfigError (missing file or module, an import that
    raises, a missing class). The caller checks what kind of class it must be."""
    where, cls_name = reference_parts(name)
    module = _load_file(name, where) if is_file(where) else _load_module(name, where)
    found = module
    for attribute in cls_name.split("."):
        found = getattr(found, attribute, None)
        if found is None:
            classes = sorted(
                k
                for k, v in vars(module).items()
                if isinstance(v, type) and not k.startswith("_") and getattr(v, "__module__", None) == module.__name__
            )
            there = f" (classes there: {', '.join(classes)})" if classes else ""
            raise ConfigError(f"strategy {display(name)!r}: {where} has no class {cls_name!r}{there}")
    if not isinstance(found, type):
        raise ConfigError(
            f"strategy {display(name)!r}: {cls_name} in {where} is not a class (got {type(found).__name__})"
        )
    return found


def _load_file(name: str, where: str):
    path = Path(absolute(name).rpartition(":")[0])
    try:
        return user_files.load(path).module
    except user_files.UserFileError as exc:
        what = f"importing {path} failed: {exc.reason}" if exc.kind == "raised" else exc.reason
        raise ConfigError(f"strategy {display(name)!r}: {what}") from None


def _load_module(name: str, where: str):
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"strategy {name!r}: no module named {exc.name!r}") from None
    except Exception as exc:
        raise ConfigError(
            f"strategy {name!r}: importing {where} failed: {type(exc).__name__}: {user_files.first_line(exc)}"
        ) from None


def source(name: str) -> tuple[Path, str, bytes] | None:
    """(path, sha256, bytes) of a file reference's file as loaded in this process (else as it is on
    disk now); None for anything that is not a file reference or a file that cannot be read."""
    parts = split(name)
    if parts is None or not is_file(parts[0]):
        return None
    path = Path(absolute(name).rpartition(":")[0])
    known = user_files.loaded(path)
    if known is not None:
        return path, known.sha256, known.data
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return path, user_files.fingerprint(data), data


def provenance_tags(name: str) -> dict[str, str]:
    """The tags that trace a run to its optimizer's code: the full reference, and the file's SHA-256."""
    if not is_reference(name):
        return {}
    tags = {REF_TAG: absolute(name) if is_file(reference_parts(name)[0]) else name}
    found = source(name)
    if found is not None:
        tags[SHA_TAG] = found[1]
    return tags


def source_files(name: str) -> dict[str, bytes]:
    """Artifacts to store with the run: a copy of the optimizer's file, under strategy/<file name>."""
    found = source(name)
    return {f"{SOURCE_FOLDER}/{found[0].name}": found[2]} if found is not None else {}
