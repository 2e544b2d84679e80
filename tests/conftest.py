import os

import pytest


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh tracking home (mlruns/ with its SQLite store) under tmp_path."""
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory):
    """One tracking home for a whole module of tests that only add runs (creating a store costs seconds)."""
    home = tmp_path_factory.mktemp("shared_store")
    old = {k: os.environ.get(k) for k in ("OPTLAB_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["OPTLAB_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# The test problems are tiny: one intra-op thread is faster than two fighting over 2 cores.
import torch  # noqa: E402

torch.set_num_threads(1)
