"""Optimizer references: a strategy named by where its class lives, `path/to/file.py:Class` or `package.module:Class`.

A file reference is resolved to an absolute path once, where the user wrote it (the working directory
for `optlab run`, the sweep file's folder for a sweep), so that spawned and Ray workers load the same
file by path (importlib, as benchopt loads a benchmark's solvers). A module reference is imported by
name, with the working directory on the import path (as `python -m` does).

A loaded file is fingerprinted (SHA-256 of its bytes) and its bytes are kept, so the run records the
exact code that ran: a file changed on disk is loaded again, under its new fingerprint. Runs show a
file reference by its file name and class (`my_opt.py:MyOpt`); the full path is recorded as a tag.

Only the standard library and optlab.errors here: config, tracking and strategies all use it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from pathlib import Path

from optlab.errors import ConfigError

REF_TAG, SHA_TAG = "optlab.strategy_ref", "optlab.strategy_sha256"
SOURCE_FOLDER = "strategy"  # the artifact folder that holds a copy of the optimizer's file
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_CLASS = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_loaded: dict[str, tuple[str, bytes, object]] = {}  # absolute path -> (sha256, bytes, module)


def split(name: str) -> tuple[str, str] | None:
    """(file or module, class) of a reference, or None when `name` is not one (a registry name, `po:lion`)."""
    if not isinstance(name, str):
        return None
    where, sep, cls = name.rpartition(":")
    if not sep or not where or not _CLASS.match(cls):
        return None
    if is_file(where) or ("." in where and _MODULE.match(where)):
        return where, cls
    return None


def is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def is_reference(name: str) -> bool:
    return split(name) is not None


def absolute(name: str, folder: str | os.PathLike | None = None) -> str:
    """The reference with a relative file path made absolute against `folder` (default: the working
    directory); any other name unchanged."""
    parts = split(name)
    if parts is None or not is_file(parts[0]):
        return name
    path = Path(parts[0]).expanduser()
    if not path.is_absolute():
        path = Path(folder if folder is not None else os.getcwd()) / path
    return f"{os.path.normpath(path)}:{parts[1]}"


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
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"strategy {display(name)!r}: cannot read {path} ({exc.strerror or exc})") from None
    sha = hashlib.sha256(data).hexdigest()
    key = str(path)
    if key in _loaded and _loaded[key][0] == sha:
        return _loaded[key][2]
    module_name = f"optlab_user_{hashlib.sha256(key.encode()).hexdigest()[:12]}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"strategy {display(name)!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look their module up there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's file: whatever it raises is one line naming it
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"strategy {display(name)!r}: importing {path} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from None
    _loaded[key] = (sha, data, module)
    return module


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
            f"strategy {name!r}: importing {where} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from None


def source(name: str) -> tuple[Path, str, bytes] | None:
    """(path, sha256, bytes) of a file reference's file as loaded in this process (else as it is on
    disk now); None for anything that is not a file reference or a file that cannot be read."""
    parts = split(name)
    if parts is None or not is_file(parts[0]):
        return None
    path = Path(absolute(name).rpartition(":")[0])
    if str(path) in _loaded:
        sha, data, _ = _loaded[str(path)]
        return path, sha, data
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return path, hashlib.sha256(data).hexdigest(), data


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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
