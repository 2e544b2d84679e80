"""The `browser` marker (tests/conftest.py): without Chromium a browser test is skipped in one line, except
when OPTLAB_REQUIRE_BROWSER=1 (CI), where it fails, so a green CI means the browser tests ran."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _load_conftest():
    # by path: `import conftest` may find tests/cluster/conftest.py when the whole suite runs
    spec = importlib.util.spec_from_file_location("optlab_tests_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conftest = _load_conftest()


class Item:
    def __init__(self, mark):
        self.mark = mark

    def get_closest_marker(self, name):
        return self.mark if name == "browser" else None


@pytest.fixture
def no_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no chromium, no chromedriver
    monkeypatch.delenv("OPTLAB_CHROMIUM", raising=False)
    monkeypatch.delenv(conftest.REQUIRE_BROWSER_ENV, raising=False)
    return tmp_path


def test_a_browser_test_is_skipped_in_one_line_naming_what_is_missing(no_browser):
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.pytest_runtest_setup(Item(pytest.mark.browser.mark))
    assert str(skipped.value.msg).count("\n") == 0
    assert "chromium and chromedriver not found" in skipped.value.msg


def test_a_browser_test_fails_instead_when_ci_requires_the_browser(no_browser, monkeypatch):
    monkeypatch.setenv(conftest.REQUIRE_BROWSER_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        conftest.pytest_runtest_setup(Item(pytest.mark.browser(driver=False).mark))
    assert "chromium not found" in failed.value.msg and "OPTLAB_REQUIRE_BROWSER=1" in failed.value.msg


def test_a_browser_test_runs_when_chromium_is_there(no_browser):
    for name in ("chromium", "chromedriver"):
        fake = no_browser / name
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    assert conftest.pytest_runtest_setup(Item(pytest.mark.browser.mark)) is None
    assert conftest.pytest_runtest_setup(Item(None)) is None
