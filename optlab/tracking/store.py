"""Where runs are recorded: MLFLOW_TRACKING_URI when set, else SQLite inside ./mlruns.

The URI is always set explicitly: with an old file store lying in ./mlruns, MLflow would silently
pick it and then fail. The default path is made absolute so the store does not move with the
working directory of a worker process.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import time
from pathlib import Path

from optlab.errors import StoreError
from optlab.tracking import http, sqlite_creation
from optlab.tracking.failures import describe, quiet_store_logs
from optlab.tracking.locking import file_lock
from optlab.tracking.uri import is_http, mask_credentials, sqlite_path

TRACKING_HOME_ENV = "OPTLAB_HOME"  # folder holding mlruns/ (default: the working directory)


def home() -> Path:
    return Path(os.environ.get(TRACKING_HOME_ENV, ".")).resolve() / "mlruns"


def default_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri()


def uses_default_store(uri: str | None = None) -> bool:
    return (uri or tracking_uri()) == default_uri()


def client(uri: str | None = None):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = uri or tracking_uri()
    quiet_store_logs()
    if uses_default_store(uri):
        make_home()
    if is_http(uri):
        http.configure()
    # against a server MLflow prints a "View run ... at" line after every run it ends, and asks the
    # server for the run again to do so: one extra round trip per run, and noise in a sweep's output
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(uri)
    if uri in _opened or is_http(uri):
        return MlflowClient(tracking_uri=uri)
    return open_once(lambda: MlflowClient(tracking_uri=uri), uri)


SQL_STORE_MODULE = "mlflow.store.tracking.sqlalchemy_store"


def sql_store(mlflow_client):
    """The client's MLflow SqlAlchemyStore, or None for any other store. The check never imports that module
    (about a second of CPU: SQLAlchemy and MLflow's table models): a store of that class exists only once
    its module is loaded, so a client of a tracking server never pays for it."""
    if SQL_STORE_MODULE not in sys.modules:
        return None
    try:
        store = mlflow_client._tracking_client.store
    except AttributeError:  # another MLflow layout: the callers then use the documented calls
        return None
    return as_sql_store(store)


def as_sql_store(store):
    """`store` when it is MLflow's SqlAlchemyStore, else None; never imports that module (see sql_store)."""
    module = sys.modules.get(SQL_STORE_MODULE)
    return store if module is not None and isinstance(store, module.SqlAlchemyStore) else None


def make_home() -> Path:
    folder = home()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise _file_in_the_way(folder) from None
    except OSError as exc:
        raise StoreError(f"cannot create the tracking home: {describe(exc)}") from None
    return folder


def check_home() -> None:
    """Refuse a tracking home that a file blocks, creating nothing (the store makes the folder later)."""
    folder = home()
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                raise _file_in_the_way(folder)
            return


def _file_in_the_way(folder: Path) -> StoreError:
    return StoreError(
        f"{TRACKING_HOME_ENV}={os.environ.get(TRACKING_HOME_ENV, '.')}: cannot create the "
        f"tracking home {folder}: a file is in the way"
    )


_opened: set[str] = set()


def open_once(make_client, uri: str):
    """The first client of this process for `uri`, creating (or migrating) the store. Several
    processes creating one new SQLite store at once crash in MLflow's schema creation ("table
    experiments already exists"), so for SQLite this happens under a file lock next to the database;
    other SQL stores retry a few times. A tracking server is reached lazily, with bounded retries."""

    def make():
        mlflow_client = make_client()  # MLflow creates or checks the schema here ...
        mlflow_client.search_experiments(max_results=1)  # ... or, in some versions, at the first call
        return mlflow_client

    database = sqlite_path(uri)
    try:
        if database is None:
            mlflow_client = _with_retries(make)
        else:
            sqlite_creation.bound_log_everywhere()
            with _creation_lock(database):
                if sqlite_creation.needs_creation(database):
                    sqlite_creation.create_aside(database, _build_schema)
                mlflow_client = make()
    except StoreError:
        raise
    except Exception as exc:
        if database is not None and (half := sqlite_creation.half_migrated(database, exc)):
            raise half from exc
        raise StoreError(f"cannot open the tracking store {mask_credentials(uri)}: {describe(exc)}") from exc
    _opened.add(uri)
    if database is not None:
        atexit.register(sqlite_creation.fold_log, database)
    return mlflow_client


def _build_schema(uri: str) -> None:
    """Create MLflow's schema (every migration) in the SQLite database of `uri`, and close it."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    SqlAlchemyStore(uri, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).engine.dispose()


def _creation_lock(database: Path):
    lock = database.with_name(database.name + ".lock")
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(lock, os.O_RDWR | os.O_CREAT, 0o666))
        return file_lock(lock)
    except OSError as exc:
        if database.exists():  # e.g. a read-only folder: nothing to create, no lock needed
            return contextlib.nullcontext()
        raise StoreError(f"cannot create the tracking store: {describe(exc)}") from None


def _with_retries(call, tries: int = 4):
    for attempt in range(tries):
        try:
            return call()
        except Exception:
            if attempt == tries - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def ensure_experiment(mlflow_client, name: str, description: str | None = None) -> str:
    """The experiment's id, creating it (with artifacts under mlruns/artifacts for the default store),
    marked for the UI's model-training pages and described (tracking/ui.py)."""
    from optlab.tracking.ui import describe_experiment

    experiment_id = _ensure_exists(mlflow_client, name)
    describe_experiment(mlflow_client, experiment_id, description)
    return experiment_id


def _ensure_exists(mlflow_client, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":  # as MLflow does: a deleted experiment is not silently restored
            from optlab.errors import ConfigError

            raise ConfigError(
                f"experiment {name!r} (id {found.experiment_id}) is deleted: restore it, runs and all, with `mlflow "
                f"experiments restore --experiment-id {found.experiment_id}`, remove it for good with `mlflow gc "
                f"--experiment-ids {found.experiment_id}`, or use another name"
            )
        return found.experiment_id
    location = None
    if uses_default_store(mlflow_client.tracking_uri):
        location = (home() / "artifacts").as_uri()
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except Exception:  # created concurrently by another process
        found = mlflow_client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id
