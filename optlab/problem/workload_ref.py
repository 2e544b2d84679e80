"""`path/to/file.py:NAME` (or `package.module:NAME`): a user's workload, found by reference.

The reference is resolved wherever a run is built, so spawned sweep workers (which import only
optlab) load the user's file themselves. A relative file path is relative to the working directory
(`optlab run`) or to the sweep file's folder (`absolute` is called with that folder). What is loaded
is identified by the workload's name and the SHA-256 of the file's bytes; a run records both, the
reference, and a copy of the file as an artifact.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

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
    location, _, attribute = text.rpartition(":")
    if not location or not attribute.isidentifier():
        raise ConfigError(
            f"workload reference must be path/to/file.py:NAME or package.module:NAME "
            f"(NAME a Python identifier), got {text!r}"
        )
    if location.endswith(".py") or "/" in location or "\\" in location:
        path = Path(location).expanduser()
        if not path.is_absolute():
            path = Path(folder or Path.cwd()) / path
        path = path.resolve()
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
    location = text.rpartition(":")[0]
    if location.endswith(".py") or "/" in location or "\\" in location:
        return f"{ref.path}:{ref.attribute}"
    return text


def identity(text: str) -> str:
    """NAME and the file's SHA-256: the same workload on every machine, wherever its file lies (what
    sweeps group runs by, without importing the file)."""
    ref = parse(text)
    return f"{ref.attribute}@{hashlib.sha256(ref.path.read_bytes()).hexdigest()[:16]}"


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
    source = ref.path.read_bytes()
    module = _import(ref, source)
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
    return LoadedWorkload(workload, text, ref.path, source, hashlib.sha256(source).hexdigest())


def _import(ref: WorkloadReference, source: bytes):
    """The module of the reference's file, imported once per process and version of the file."""
    name = "optlab_user_workload_" + hashlib.sha256(str(ref.path).encode() + source).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ref.path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"workload file {str(ref.path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise ConfigError(f"workload file {str(ref.path)!r} failed to import: {type(exc).__name__}: {detail}") from None
    return module
