"""MLflow's UI served by `optlab ui` over a small sweep, in headless Chromium: an experiment opens on its
runs table (model training) listing the reported runs with their workload and strategy, not on the GenAI
overview nor on a collapsed parent row; a workload's view lists its reruns once, by a unique name, grouped
one line per strategy; its configurations view shows the seed groups with their intervals."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from sweep_helpers import TUNED_PAIR, write_spec

from optlab import palette
from optlab.tracking import ui

# a real MLflow server (tens of seconds to start): `make test-slow`; headless Chromium with its driver
pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESCRIPTION = "minibatch vs adam on digits (browser test)"
# messages MLflow's own UI logs on any store: it asks for the signed-in user (a 404 without the
# basic-auth app), and its chart grid re-lays itself out while loading (a benign ResizeObserver note)
MLFLOW_OWN_NOISE = ("/ajax-api/2.0/mlflow/users/current", "ResizeObserver loop completed with undelivered")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from optlab.sweeps import load, run_sweep
    from optlab.tracking.store import client

    home = tmp_path_factory.mktemp("desk_ui")
    path = write_spec(home, TUNED_PAIR, name="desk_ui", description=DESCRIPTION)
    env = {**os.environ, "OPTLAB_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        run_sweep(load(path), progress=False)
        c = client()
        experiment = c.get_experiment_by_name("desk_ui")
        runs = c.search_runs([experiment.experiment_id])
    with optlab_ui(env) as base:
        yield {"base": base, "experiment": experiment, "runs": runs}


@contextlib.contextmanager
def optlab_ui(env: dict):
    """`optlab ui` over the store env names, up (its base URL) until the block ends."""
    port = free_port()
    optlab = Path(sys.executable).with_name("optlab")
    server = subprocess.Popen(
        [str(optlab), "ui", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"optlab ui did not come up: {server.stdout.read()[-2000:]}")
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    options.binary_location = (
        os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def console_errors(driver) -> list:
    return [
        e
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(noise in e["message"] for noise in MLFLOW_OWN_NOISE)
    ]


def body_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def rgb(hex_color: str) -> str:
    """A colour as the browser reports an SVG stroke."""
    r, g, b = (int(hex_color.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


# the legend box under each line chart the page draws (MLflow's: entries with a line swatch in a wrapping box
# of fixed height that scrolls): its entries, and those shown whole without scrolling it
LEGENDS = """
return Array.from(document.querySelectorAll('div')).filter(e => {
  const s = getComputedStyle(e);
  return s.flexWrap === 'wrap' && s.overflowY === 'auto' && e.querySelector(':scope > div > svg > path');
}).map(box => {
  const r = box.getBoundingClientRect();
  const entries = Array.from(box.children);
  const shown = entries.filter(e => {
    const b = e.getBoundingClientRect();
    return b.top >= r.top - 0.5 && b.bottom <= r.bottom + 0.5 && b.left >= r.left - 0.5 && b.right <= r.right + 0.5;
  });
  return {entries: entries.map(e => e.innerText), shown: shown.map(e => e.innerText)};
});
"""


def test_an_experiment_opens_on_its_runs_table_not_the_genai_overview(served):
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()  # a fresh profile: a first-time visitor
    try:
        driver.get(f"{served['base']}/#/experiments/{served['experiment'].experiment_id}")
        reruns = [r.info.run_name for r in served["runs"] if r.data.tags.get("optlab.role") == "rerun"]
        # the page shows its sort key and "0 matching runs" before the runs arrive: wait for the runs themselves
        WebDriverWait(driver, 60).until(
            lambda d: "/runs" in d.current_url and all(name in body_text(d) for name in reruns)
        )
        text, url = body_text(driver), driver.current_url
        stored = driver.execute_script("return window.localStorage.getItem('mlflow.workflowType_v1')")
        errors = console_errors(driver)
    finally:
        driver.quit()
    assert "/overview" not in url and "workflowType=machine_learning" in url
    assert "No data available" not in text and "Token Usage" not in text
    assert all(name in text for name in reruns)  # the reruns themselves, not a collapsed parent row
    assert "optlab.workload" in text and "optlab.strategy" in text and "val_accuracy" in text
    assert DESCRIPTION in text  # the experiment's description
    assert stored == '"machine_learning"'
    assert errors == []


def test_a_workload_view_lists_its_reruns_once_grouped_by_strategy_and_its_configurations(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    role = {r.info.run_id: r.data.tags.get("optlab.role") for r in served["runs"]}
    names = {r.info.run_id: r.info.run_name for r in served["runs"] if role[r.info.run_id] != "parent"}
    assert len(set(names.values())) == len(names) == 10  # 4 trials, 4 reruns, 2 groups: unique in the experiment
    groups = [n for i, n in names.items() if role[i] == "group"]
    trials = [n for i, n in names.items() if role[i] == "tuning"]
    workload = next(r.data.tags["optlab.workload"] for r in served["runs"] if role[r.info.run_id] == "rerun")
    view_id = f"optlab-{ui.slug(workload)}"
    experiment_id = served["experiment"].experiment_id
    driver = chromium()
    try:
        driver.get(ui.view_url(served["base"], experiment_id, view_id))
        WebDriverWait(driver, 60).until(lambda d: "optlab.strategy" in body_text(d) and "adam" in body_text(d))
        runs_text = body_text(driver)
        driver.get(ui.view_url(served["base"], experiment_id, view_id + "-configurations"))
        WebDriverWait(driver, 60).until(
            lambda d: all(n in body_text(d) for n in groups) and "2 matching runs" in body_text(d)
        )
        groups_text = body_text(driver)
        driver.get(ui.view_url(served["base"], experiment_id, view_id) + "&compareRunsMode=CHART")
        WebDriverWait(driver, 60).until(
            lambda d: "Learning curves against work" in body_text(d) and "gradient_equivalents" in body_text(d)
        )
        WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.js-line"))
        charts = body_text(driver)
        legend = {entry.rsplit(" (", 1)[0] for box in driver.execute_script(LEGENDS) for entry in box["entries"]}
        strokes = driver.execute_script(
            "return Array.from(document.querySelectorAll('path.js-line')).map(p => p.style.stroke)"
        )
        errors = console_errors(driver)
    finally:
        driver.quit()
    assert ui.WORKLOAD_VIEW_NAME.format(workload=workload) in runs_text
    assert not any(t in runs_text for t in trials)
    assert ui.GROUPS_VIEW_NAME.format(workload=workload) in groups_text and "final/val_accuracy/ci_low" in groups_text
    assert not any(t in groups_text for t in trials)
    reruns = [r for r in served["runs"] if role[r.info.run_id] == "rerun"]
    assert {r.data.tags["optlab.workload"] for r in reruns} == {workload}  # one workload in the view
    strategies = {r.data.tags["optlab.strategy"] for r in reruns}
    assert "Work counters" in charts and legend == strategies  # one line per strategy, named by it
    # each group's line in its strategy's palette colour (not the UI's hashed one); none other
    assert {rgb(palette.color(s)) for s in strategies} <= set(strokes)
    assert set(strokes) - {rgb(palette.color(s)) for s in strategies} <= {"rgb(0, 0, 0)"}  # markers' outline
    assert errors == []


BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)  # 120 reruns: more than the UI's first page


def test_a_crowded_workload_view_draws_every_batch_size_in_numeric_order_along_the_scale(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from synthetic_store import add_run

    from optlab.tracking.store import client

    home = tmp_path / "home"
    env = {**os.environ, "OPTLAB_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for batch in BATCHES:
            for seed in range(100, 110):
                add_run(
                    "crowded",
                    "steps",
                    "minibatch",
                    seed,
                    [(1.0, 0.3), (2.0, 0.6 + batch / 10000)],
                    0.8,
                    params={"batch_size": batch},
                    tags={"optlab.config_hash": f"b{batch}"},  # what `optlab ui` recognises as optlab's runs
                )
        experiment_id = client().get_experiment_by_name("crowded").experiment_id
    each = ui.UI_PAGE // len(BATCHES)
    with optlab_ui(env) as base:
        driver = chromium()
        try:
            driver.get(ui.view_url(base, experiment_id, "optlab-steps") + "&compareRunsMode=CHART")
            WebDriverWait(driver, 60).until(lambda d: f"{each * len(BATCHES)} matching runs" in body_text(d))
            WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "path.js-line"))
            text = body_text(driver)
            strokes = driver.execute_script(
                "return Array.from(document.querySelectorAll('path.js-line')).map(p => p.style.stroke)"
            )
            errors = console_errors(driver)
        finally:
            driver.quit()
    assert f"{each} seeds per configuration" in text
    groups = re.findall(r"minibatch batch_size=(\d+)", text)
    assert list(dict.fromkeys(int(b) for b in groups)) == list(BATCHES)  # every batch size, as numbers
    assert {rgb(c) for c in palette.sequential(len(BATCHES))} <= set(strokes)  # one scale colour each
    assert rgb(palette.color("minibatch")) not in strokes
    assert errors == []


# the run-name column's cells whose name (a run's link or a group's "Group: <name>") the column cuts
CLIPPED_NAMES = """
return Array.from(document.querySelectorAll('.ag-cell[col-id="attributes.`Run Name`"]')).map(cell => {
  const right = cell.getBoundingClientRect().right;
  const texts = Array.from(cell.querySelectorAll('span, a, div'))
    .filter(e => e.children.length === 0 && e.textContent.trim() && !/^#[0-9A-Fa-f]{6}$/.test(e.textContent.trim()));
  return {text: cell.innerText, clipped: texts.filter(
    e => e.scrollWidth > e.clientWidth + 1 || e.getBoundingClientRect().right > right + 1).map(e => e.textContent)};
});
"""


def test_long_run_and_group_names_are_shown_whole_in_the_views_and_the_default_page(tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from synthetic_store import add_run

    from optlab.tracking.store import client

    home = tmp_path / "home"
    env = {**os.environ, "OPTLAB_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    names = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for series in ("", "fixed_lr"):
            for batch in (16, 512, 2048):
                for seed in (101, 102):
                    lr = 0.03 if series else 0.3
                    name = f"minibatch lr={lr} B={batch}{f' [{series}]' if series else ''} rerun seed={seed}"
                    names.append(name)
                    add_run(
                        "names",
                        "mnist5k-relu-ce-steps",
                        "minibatch",
                        seed,
                        [(1.0, 0.3), (2.0, 0.6)],
                        0.8,
                        trial=f"lr={lr}",
                        params={"batch_size": batch},
                        tags={
                            "mlflow.runName": name,
                            "optlab.series": series,
                            "optlab.config_hash": f"{series}{batch}",
                        },
                    )
        experiment_id = client().get_experiment_by_name("names").experiment_id
    name_cells = (By.CSS_SELECTOR, '.ag-cell[col-id="attributes.`Run Name`"]')
    seen = {}
    with optlab_ui(env) as base:
        driver = chromium()
        try:
            for page, url in (
                ("view", ui.view_url(base, experiment_id, "optlab-mnist5k-relu-ce-steps")),
                ("default", f"{base}/#/experiments/{experiment_id}"),
            ):
                driver.get(url)
                WebDriverWait(driver, 60).until(lambda d: all(n in body_text(d) for n in names))
                WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(*name_cells)) >= len(names))
                seen[page] = driver.execute_script(CLIPPED_NAMES)
            errors = console_errors(driver)
        finally:
            driver.quit()
    groups = [c["text"] for c in seen["view"] if "Group: " in c["text"]]
    assert any("minibatch fixed_lr batch_size=2048" in g for g in groups)  # the grouped view's group rows
    for page, cells in seen.items():
        assert len(cells) >= len(names) and [c for c in cells if c["clipped"]] == [], page
    assert errors == []


NINE = ("minibatch", "sgd", "gd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad")


def test_a_chart_of_nine_strategies_shows_its_whole_legend_without_scrolling(tmp_path):
    """At 1600 px wide, one chart per row: the legend's two lines hold nine strategies (at the UI's own three
    per row, three of them)."""
    from selenium.webdriver.support.ui import WebDriverWait
    from synthetic_store import add_run

    from optlab.tracking import ui_state
    from optlab.tracking.store import client

    home = tmp_path / "home"
    env = {**os.environ, "OPTLAB_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        for place, strategy in enumerate(NINE):
            curve = [(0.01, 0.2), (0.1, 0.5 + place / 100), (1.0, 0.8 + place / 100)]
            for seed in (100, 101):
                add_run("nine", "digits", strategy, seed, curve, 0.8, tags={"optlab.config_hash": strategy})
        c = client()
        experiment_id = c.get_experiment_by_name("nine").experiment_id

    def legends(base) -> list:
        driver = chromium()  # a fresh page each time: the view is read when the page loads
        try:
            driver.get(ui.view_url(base, experiment_id, "optlab-digits") + "&compareRunsMode=CHART")
            WebDriverWait(driver, 60).until(
                lambda d: (found := d.execute_script(LEGENDS)) and all(len(f["entries"]) == len(NINE) for f in found)
            )
            return driver.execute_script(LEGENDS), console_errors(driver)
        finally:
            driver.quit()

    with optlab_ui(env) as base:
        seen, errors = legends(base)
        # the same view at the UI's own layout (three charts per row): what the layout is for
        key = ui_state.VIEW_TAG_PREFIX + "optlab-digits"
        state = ui.read_view(c.get_experiment(experiment_id).tags[key])
        for section in state["compareRunSections"]:
            del section["columns"]
        c.set_experiment_tag(experiment_id, key, ui.saved_view("optlab: digits", state))
        crowded, _ = legends(base)
    assert seen and errors == []
    for legend in seen:  # one entry per strategy, every one in sight
        metric = legend["entries"][0].rsplit(" (", 1)[1]
        assert sorted(legend["entries"]) == sorted(f"{s} ({metric}" for s in NINE)
        assert legend["shown"] == legend["entries"]
    assert crowded and all(len(legend["shown"]) < len(NINE) for legend in crowded)
