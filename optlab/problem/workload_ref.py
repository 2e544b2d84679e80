"""`path/to/file.py:NAME` (or `package.module:NAME`): a user's workload, found by reference.

The reference is resolved wherever a run is built, so spawned sweep workers (which import only
optlab) load the user's file themselves. A relative file path is relative to the working directory
(`optlab run`) or to the sweep file's folder (`absolute` is called with that folder). What is loaded
is identified by the workload's name and the SHA-256 of the file's bytes; a run records both, the
reference, and a copy of the file as an artifact. Files are made absolute, loaded by path and
fingerprinted by optlab.user_files (the loader user optimizers share).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from optlab import user_files
from optlab.errors import ConfigError
from optlab.problem.workload import Workload

ARTIFACT_FOLDER = "workload"  # where a run stores the copy of the workload's file


@dataclass(frozen=True)
class WorkloadReference:
    text: str  # as given (absolute for a file after `absolute`)
    path: Path  # the Python file that defines NAME
    attribute: str  # NAME: a function returning a Workload (or a Workload itself)


def parse(text: str, folder: str | Path | None = None) -> WorkloadReference:
    """Split `file.py:NAME` / `module:NAME` and find the file; one-line ConfigError when it cannot."""
    if not isinstance(text, str) or text.count(":") < 1:
        raise ConfigError(f"workload reference must be path/to/file.py:NAME or package.module:NAME, got {text!r}")
    location, attribute = user_files.split(text) or ("", "")
    if not location or not attribute.isidentifier():
        raise ConfigError(
            f"workload reference must be path/to/file.py:NAME or package.module:NAME "
            f"(NAME a Python identifier), got {text!r}"
        )
    if user_files.is_file(location):
        path = user_files.absolute_path(location, folder)
        if not path.is_file():
            raise ConfigError(f"workload file {str(path)!r} not found (reference {text!r})")
        return WorkloadReference(text, path, attribute)
    try:
        spec = importlib.util.find_spec(location)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"workload module {location!r} cannot be found ({exc})") from None
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        raise ConfigError(f"workload module {location!r} cannot be found (reference {text!r})")
    return WorkloadReference(text, Path(spec.origin), attribute)


def absolute(text: str, folder: str | Path | None = None) -> str:
    """The reference with its file path made absolute (relative to `folder`, else the working directory),
    so it means the same file in every process; a module reference is returned as is."""
    ref = parse(text, folder)
    return f"{ref.path}:{ref.attribute}" if user_files.is_file(text.rpartition(":")[0]) else text


def identity(text: str) -> str:
    """NAME and the file's SHA-256: the same workload on every machine, wherever its file lies (what
    sweeps group runs by, without importing the file)."""
    ref = parse(text)
    return f"{ref.attribute}@{user_files.fingerprint(ref.path.read_bytes())[:16]}"


@dataclass(frozen=True)
class LoadedWorkload:
    workload: Workload
    reference: str
    path: Path
    source: bytes  # the file's bytes as they were imported
    sha256: str

    def tags(self) -> dict[str, str]:
        return {
            "optlab.workload_ref": self.reference,
            "optlab.workload_name": self.workload.name,
            "optlab.workload_sha256": self.sha256,
        }

    def artifacts(self) -> dict[str, bytes]:
        return {f"{ARTIFACT_FOLDER}/{self.path.name}": self.source}


def load(text: str, folder: str | Path | None = None) -> LoadedWorkload:
    """Import the reference's file, call NAME() and check it returns a Workload (one-line errors)."""
    ref = parse(text, folder)
    try:
        loaded = user_files.load(ref.path)
    except user_files.UserFileError as exc:
        what = f"failed to import: {exc.reason}" if exc.kind == "raised" else f"cannot be imported ({exc.reason})"
        raise ConfigError(f"workload file {str(ref.path)!r} {what}") from None
    module = loaded.module
    if not hasattr(module, ref.attribute):
        raise ConfigError(f"workload file {str(ref.path)!r} has no {ref.attribute!r}")
    target = getattr(module, ref.attribute)
    if isinstance(target, Workload):
        workload = target
    elif callable(target):
        try:
            workload = target()
        except ConfigError as exc:
            raise ConfigError(f"{ref.attribute}() in {ref.path.name}: {exc}") from None
        except Exception as exc:
            raise ConfigError(f"{ref.attribute}() in {ref.path.name} raised {type(exc).__name__}: {exc}") from None
    else:
        raise ConfigError(
            f"{ref.attribute} in {ref.path.name} is a {type(target).__name__}, not a function "
            f"returning an optlab.Workload"
        )
    if not isinstance(workload, Workload):
        raise ConfigError(
            f"{ref.attribute}() in {ref.path.name} must return an optlab.Workload, got {type(workload).__name__}"
        )
    return LoadedWorkload(workload, text, ref.path, loaded.data, loaded.sha256)
