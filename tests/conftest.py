import os
import shutil

import pytest

REQUIRE_BROWSER_ENV = "OPTLAB_REQUIRE_BROWSER"  # CI sets it to 1: a browser test that cannot run fails


def chromium_binary() -> str | None:
    """OPTLAB_CHROMIUM (as the PDF printer reads it), else Debian's chromium on PATH."""
    named = os.environ.get("OPTLAB_CHROMIUM")
    return shutil.which(named) if named else shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_runtest_setup(item):
    """`@pytest.mark.browser` (headless Chromium + chromedriver) or `@pytest.mark.browser(driver=False)`
    (Chromium alone): skipped in one line without them, failed instead when OPTLAB_REQUIRE_BROWSER=1."""
    marker = item.get_closest_marker("browser")
    if marker is None:
        return
    missing = [
        name
        for name, found in (
            ("chromium", chromium_binary()),
            ("chromedriver", shutil.which("chromedriver") if marker.kwargs.get("driver", True) else "not needed"),
        )
        if not found
    ]
    if not missing:
        return
    reason = f"needs headless Chromium: {' and '.join(missing)} not found (Debian packages chromium, chromium-driver)"
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_BROWSER_ENV}=1 says the browser tests must run", pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture(scope="module")
def one_intra_op_thread():
    """One intra-op thread for a whole module, whatever an earlier test left set (tiny tensors: faster and
    steadier on a shared machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
