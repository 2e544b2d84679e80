"""The report, end to end: a fixture store of tiny real runs -> HTML (checked in headless Chromium) and PDF."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from optlab.reports import build_report
from optlab.reports.model import Figure, Note, Table

SECTION_TITLES = ["Convergence", "Time to target", "Batch-size effects", "Random-label memorization",
                  "Inside the network", "Landscapes", "Dynamics", "Lessons", "Reproducibility"]


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
        build_store()
        report = build_report(home / "out", progress=True)
        yield report
    torch.set_num_threads(threads)


def blocks(section, kind):
    return [b for b in section.blocks if isinstance(b, kind)]


def test_report_builds_every_section_from_the_store(fixture_report):
    report = fixture_report
    assert report.errors == []
    assert [s.title for s in report.sections] == SECTION_TITLES
    for section in report.sections[:6]:
        assert not section.missing, section.title
        assert blocks(section, Figure), f"{section.title} has no figure"
    for section in report.sections[:5]:  # figures from runs name their experiment, runs and seeds
        for fig in blocks(section, Figure):
            assert "experiment" in fig.caption and "seed" in fig.caption, fig.caption
    # time to target: adam and momentum reach 0.8 on digits in 3 epochs, full-batch gd (3 steps) does not
    table = blocks(report.sections[1], Table)[0].frame.set_index("strategy")
    assert table.loc["adam", "reached"] == "2/2" and table.loc["gd", "reached"] == "0/2"
    # batch size: the fixed-lr series is labelled confounded, B_simple is estimated
    batch = report.sections[2]
    assert any("confound" in n.text for n in blocks(batch, Note))
    assert "B_simple ≈" in blocks(batch, Figure)[0].caption
    # memorization compares both widths
    assert "hidden 16" in blocks(report.sections[3], Table)[0].caption
    assert "hidden 64" in blocks(report.sections[3], Table)[0].caption


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
    expected = {"Convergence": "convergence", "Time to target": "convergence",
                "Batch-size effects": "batch_size", "Random-label memorization": "memorization",
                "Inside the network": "convergence"}
    for title, experiment in expected.items():
        notes = [n.text for n in blocks(by_title[title], Note) if n.kind == "missing"]
        assert any(f"SWEEP=experiments/{experiment}.toml make sweep" in n and "not run yet" in n for n in notes), title
    assert blocks(by_title["Landscapes"], Figure)  # computed live, needs no runs
    html = report.html.read_text()
    assert html.count("not run yet") >= 5
    assert report.pdf.stat().st_size > 0


def test_noise_scale_recovers_a_known_gradient_noise_scale():
    from optlab.reports.batch_size import noise_scale

    g2, trace = 0.5, 40.0  # E|g_B|^2 = |G|^2 + tr(Sigma)/B
    sq = pd.Series({b: g2 + trace / b for b in (4, 16, 256)})
    pairs = noise_scale(sq)
    assert np.allclose(pairs["|G|^2"], g2) and np.allclose(pairs["tr Sigma"], trace)
    assert np.allclose(pairs["B_simple"], trace / g2)
    broken = noise_scale(pd.Series({4: 1.0, 16: 2.0}))  # norm grows with B: no valid estimate
    assert broken["B_simple"].isna().all()


def test_cli_rejects_a_bad_target(capsys):
    from optlab.cli import main

    assert main(["report", "--target", "2"]) == 2
    assert "--target" in capsys.readouterr().err
