"""The report, end to end: a fixture store of tiny real runs -> HTML (checked in headless Chromium) and PDF."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from optlab.reports import build_report
from optlab.reports.model import Figure, Note, Table

SECTION_TITLES = ["Convergence and final results", "Time to target and performance profiles",
                  "Learning-rate sensitivity", "Batch-size effects", "Random-label memorization", "Inside the network",
                  "Landscapes", "Reproducibility"]


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory):
    import torch

    from report_fixture import build_store

    home = tmp_path_factory.mktemp("store")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny nets: threads only contend on the shared 2 cores
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPTLAB_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        build_store(home)
        report = build_report(home / "out", progress=True)
        yield report
    torch.set_num_threads(threads)


def blocks(section, kind):
    return [b for b in section.blocks if isinstance(b, kind)]


def test_report_builds_every_section_from_the_store(fixture_report):
    report = fixture_report
    assert report.errors == []
    assert [s.title for s in report.sections] == SECTION_TITLES
    by_title = {s.title: s for s in report.sections}
    for section in report.sections[:7]:
        assert not section.missing, section.title
        assert blocks(section, Figure), f"{section.title} has no figure"
    for title in SECTION_TITLES[:6]:  # figures from runs name their workload
        for fig in blocks(by_title[title], Figure):
            assert "orkload" in fig.caption, fig.caption
    # convergence: one heading per workload; the reference workload has curves, a final table and a matrix;
    # the stop-at-target workload defers to time to target
    conv = by_title["Convergence and final results"]
    assert [n.text for n in blocks(conv, Note) if n.kind == "heading"] == ["Workload digits-short",
                                                                           "Workload digits-long"]
    final = blocks(conv, Table)[0].frame.set_index("strategy")
    assert set(final.index) == {"adam", "momentum", "gd"} and set(final["seeds"]) <= {"3/3"}
    assert all("[" in v for v in final["test acc"])            # an interval, not a bare mean
    assert any(f.caption.startswith("Who beats whom") for f in blocks(conv, Figure))
    # time to target: every workload's table; a profile over the two workloads
    ttt = by_title["Time to target and performance profiles"]
    assert len([t for t in blocks(ttt, Table) if "Kaplan-Meier" in t.caption]) == 2
    assert any("Performance profiles of 'convergence'" in f.caption for f in blocks(ttt, Figure))
    # batch size: the fixed-lr series is labelled confounded; the noise scale is measured at the same parameters
    batch = by_title["Batch-size effects"]
    assert any("confound" in n.text for n in blocks(batch, Note))
    assert any("B_simple = tr Σ / |G|²" in t.caption for t in blocks(batch, Table))
    # memorization compares both widths, with intervals
    mem = blocks(by_title["Random-label memorization"], Table)[0]
    assert "hidden 16" in mem.caption and "hidden 64" in mem.caption
    # claims come from the numbers
    inside = [n.text for n in blocks(by_title["Inside the network"], Note)]
    assert any(t.startswith("Mean top confidence") for t in inside)


def test_pdf_has_a_page_per_section_with_its_title(fixture_report):
    from pypdf import PdfReader

    reader = PdfReader(str(fixture_report.pdf))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 1 + len(SECTION_TITLES)
    for number, title in enumerate(SECTION_TITLES, start=1):
        assert any(f"{number}. {title}" in text for text in pages), f"no page titled {number}. {title}"


def test_html_is_self_contained_and_every_image_loads_in_chromium(fixture_report):
    html = fixture_report.html.read_text()
    assert "http://" not in html and "https://" not in html  # nothing fetched from outside
    n_figures = sum(len(blocks(s, Figure)) for s in fixture_report.sections)
    if not (shutil.which("chromedriver") and (shutil.which("chromium") or shutil.which("chromium-browser"))):
        pytest.skip("headless Chromium (Debian chromium + chromium-driver) not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(fixture_report.html.resolve().as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);")
        logs = driver.get_log("browser")
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
    finally:
        driver.quit()
    assert len(images) == n_figures > 0
    assert all(complete and width > 0 and height > 0 for complete, width, height in images), images
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == []
    assert headings == [f"{i}. {t}" for i, t in enumerate(SECTION_TITLES, start=1)]


def test_missing_experiments_say_not_run_yet_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = build_report(tmp_path / "out", progress=False)
    assert report.errors == []
    by_title = {s.title: s for s in report.sections}
    expected = {"Convergence and final results": "convergence", "Time to target and performance profiles": "convergence",
                "Learning-rate sensitivity": "convergence", "Batch-size effects": "batch_size",
                "Random-label memorization": "memorization", "Inside the network": "convergence"}
    for title, experiment in expected.items():
        notes = [n.text for n in blocks(by_title[title], Note) if n.kind == "missing"]
        assert any(f"SWEEP=experiments/{experiment}.toml make sweep" in n and "not run yet" in n for n in notes), title
    assert blocks(by_title["Landscapes"], Figure)  # computed live, needs no runs
    html = report.html.read_text()
    assert html.count("not run yet") >= 6
    assert report.pdf.stat().st_size > 0


def test_markdown_results_come_from_the_store_and_replace_only_the_readme_block(fixture_report, tmp_path, capsys):
    from optlab.cli import main
    from optlab.reports.markdown import BEGIN, END

    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\nintro\n\n{BEGIN}\nold numbers\n{END}\n\n## after\n")
    home = fixture_report.html.parent.parent
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert main(["report", "--markdown", "--readme", str(readme), "--tracking-uri", uri]) == 0
    text = readme.read_text()
    assert text.startswith("# title\n\nintro\n\n" + BEGIN) and text.endswith(END + "\n\n## after\n")
    assert "old numbers" not in text
    assert "**Workload `digits-short`**" in text and "Performance profile over the 2 workloads" in text
    assert "load average" in text and "machine" in text
    assert "**Batch size**" in text and "**Random-label memorization**" in text


def test_cli_refuses_readme_without_markdown(capsys):
    from optlab.cli import main

    assert main(["report", "--readme", "README.md"]) == 2
    assert "--readme 'README.md' needs --markdown" in capsys.readouterr().err
