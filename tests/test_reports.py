"""The report, end to end: a fixture store of tiny real runs -> HTML (checked in headless Chromium) and PDF."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from optlab.reports import build_report
from optlab.reports.chart import Chart, Matrix
from optlab.reports.model import Figure, Note, Table

SECTION_TITLES = [
    "Convergence and final results",
    "Time to target and performance profiles",
    "Newer optimizers against AdamW and momentum",
    "Learning-rate sensitivity",
    "Batch-size effects",
    "Random-label memorization",
    "Inside the network",
    "Landscapes",
    "Dynamics",
    "Lessons",
    "Reproducibility",
]


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


def figures(section):
    return [b for b in section.blocks if isinstance(b, (Chart, Matrix, Figure))]


def test_report_builds_every_section_from_the_store(fixture_report):
    report = fixture_report
    assert report.errors == [] and report.warnings == []
    assert [s.title for s in report.sections] == SECTION_TITLES
    by_title = {s.title: s for s in report.sections}
    for section in report.sections[:10]:
        assert not section.missing, section.title
        assert figures(section), f"{section.title} has no figure"
    for title in SECTION_TITLES[:7]:  # figures from runs name their workload
        for fig in figures(by_title[title]):
            assert "orkload" in fig.caption, fig.caption
    # convergence: one heading per workload; the reference workload has curves, a final table and a matrix;
    # the stop-at-target workload defers to time to target
    conv = by_title["Convergence and final results"]
    assert [n.text for n in blocks(conv, Note) if n.kind == "heading"] == [
        "Workload digits-short",
        "Workload digits-long",
    ]
    final = blocks(conv, Table)[0].frame.set_index("strategy")
    assert set(final.index) == {"adam", "momentum", "gd"} and set(final["seeds"]) <= {"3/3"}
    assert all("[" in v for v in final["test acc"])  # an interval, not a bare mean
    assert any(f.caption.startswith("Mean paired differences") for f in blocks(conv, Matrix))
    # tiers: the final table is grouped by tier, and a verdict table compares each strategy with the best
    assert set(final["tier"]) <= {"best", "equivalent to best", "undecided", "worse"} and "best" in set(final["tier"])
    tiers = [t for t in blocks(conv, Table) if t.caption.startswith("Tiers on final test accuracy")][0].frame
    assert list(tiers["vs best"]).count("best on validation") == 1
    assert set(tiers["vs best"]) <= {"best on validation", "better", "worse", "equivalent", "undecided"}
    # verdicts.csv beside the report: one row per comparison with the best, per workload and metric
    table = pd.read_csv(report.html.parent / "verdicts.csv")
    assert set(table["scope"]) == {"vs best"} and set(table["metric"]) == {"test_accuracy", "time_to_target"}
    assert len(table[(table["workload"] == "digits-short") & (table["metric"] == "test_accuracy")]) == 2
    # ... with the sweep of each row: the modern sweep's comparisons are there too, under their own sweep
    assert set(table.loc[table["workload"] == "digits-short", "experiment"]) == {"convergence"}
    assert set(table.loc[table["workload"] == "digits-modern", "experiment"]) == {"modern"}
    # every curve figure is an interactive chart, no panel with more than 8 lines, and the static figures
    # left are pictures (heatmap, weights, histogram, landscapes)
    charts = [c for s in report.sections for c in blocks(s, Chart)]
    assert len(charts) >= 6 and all(c.max_panel_lines() <= 8 for c in charts)
    for title in (
        "Convergence and final results",
        "Learning-rate sensitivity",
        "Batch-size effects",
        "Random-label memorization",
        "Time to target and performance profiles",
    ):
        assert blocks(by_title[title], Chart), title
    # time to target: every workload's table, the modern sweep's included (its workload name is its own, so
    # no sweep suffix); a profile over the two convergence workloads
    ttt = by_title["Time to target and performance profiles"]
    assert len([t for t in blocks(ttt, Table) if "Kaplan-Meier" in t.caption]) == 3
    headings = [n.text for n in blocks(ttt, Note) if n.kind == "heading"]
    assert "Workload digits-modern" in headings and not any("(sweep " in h for h in headings)
    assert any("Performance profiles of 'convergence'" in f.caption for f in blocks(ttt, Chart))
    # batch size: the fixed-lr series is labelled confounded; the noise scale is measured at the same parameters
    batch = by_title["Batch-size effects"]
    assert any("confound" in n.text for n in blocks(batch, Note))
    assert any("B_simple = tr Σ / |G|²" in t.caption for t in blocks(batch, Table))
    # the reruns' per-sample noise scale (cheap diagnostics) is drawn next to the probe's
    noise_chart = blocks(batch, Chart)[0]
    assert "B_simple (per-sample gradients)" in set(noise_chart.data["key"]) and "diag/b_simple" in noise_chart.caption
    # dynamics: the diagnostics and the edge of stability are charts; the diverging step size is in its own column
    dyn = by_title["Dynamics"]
    dyn_charts = blocks(dyn, Chart)
    assert any(c.caption.startswith("The gradient") for c in dyn_charts)
    stability = [c for c in dyn_charts if c.caption.startswith("Edge of stability")][0]
    assert "η = 200 (diverged)" in set(stability.data["eta"]) and stability.max_panel_lines() <= 3
    assert any("failed in 2 of 2 runs" in n.text for n in blocks(dyn, Note))
    # lessons: each lesson a chart, a table of paired statistics and a sentence from it
    lessons = by_title["Lessons"]
    assert len(blocks(lessons, Chart)) == 5 and len(blocks(lessons, Table)) == 5
    sentences = [n.text for n in blocks(lessons, Note) if n.text.startswith("Shuffle the data.")]
    assert sentences and "Wilcoxon p" in sentences[0]
    order = blocks(lessons, Table)[0].frame.set_index("condition")
    assert order.loc["sorted by class", "paired comparison"].startswith("shuffled better than sorted by class in ")
    assert order.loc["sorted by class", "Wilcoxon p"] in sentences[0]
    # memorization compares both widths, with intervals
    mem = blocks(by_title["Random-label memorization"], Table)[0]
    assert "hidden 16" in mem.caption and "hidden 64" in mem.caption
    # claims come from the numbers
    inside = [n.text for n in blocks(by_title["Inside the network"], Note)]
    assert any(t.startswith("Mean top confidence") for t in inside)


def link_target_pages(reader, page) -> list[int]:
    """1-based target page of every internal link on `page`, whether the link names its destination
    (WeasyPrint: a named destination) or gives it as an explicit array (Chromium), directly or in a GoTo action."""
    from pypdf.generic import ArrayObject

    named = {str(name).lstrip("/"): dest for name, dest in reader.named_destinations.items()}  # Chromium: "/s1"
    pages = []
    for annotation in (a.get_object() for a in page.get("/Annots", [])):
        if annotation.get("/Subtype") != "/Link":
            continue
        action = annotation.get("/A")
        dest = annotation.get("/Dest", action.get_object().get("/D") if action is not None else None)
        if dest is None:
            continue
        dest = dest.get_object()
        if isinstance(dest, ArrayObject):
            pages.append(reader.get_page_number(dest[0].get_object()) + 1)
        elif str(dest).lstrip("/") in named:  # a name: "/s1" (Chromium) or "s1" (WeasyPrint)
            pages.append(reader.get_destination_page_number(named[str(dest).lstrip("/")]) + 1)
    return pages


@pytest.fixture(params=["weasyprint", pytest.param("chromium", marks=pytest.mark.browser(driver=False))])
def printed_pdf(request, fixture_report, tmp_path):
    """The fixture report's PDF as each engine prints it (the report itself used the default, WeasyPrint)."""
    from optlab.reports import render

    if request.param == "weasyprint":
        return fixture_report.pdf
    return render.write_pdf(
        fixture_report.sections, tmp_path / "chromium.pdf", "sqlite:///fixture.db", engine=request.param
    )


def test_pdf_pages_are_uniform_a4_landscape_with_titles_numbers_and_contents_links(printed_pdf):
    import re

    from pypdf import PdfReader

    reader = PdfReader(str(printed_pdf))
    sizes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in reader.pages}
    assert sizes == {(842, 595)}  # every page A4 landscape, in points
    pages = [page.extract_text() for page in reader.pages]
    total = len(pages)
    for number, text in enumerate(pages, start=1):
        assert f"page {number} of {total}" in text
    starts = {}
    for number, title in enumerate(SECTION_TITLES, start=1):
        found = [i for i, text in enumerate(pages, start=1) if f"{number}. {title}" in text]
        assert found, f"no page titled {number}. {title}"
        starts[number] = max(found)  # the contents page names every title too
    # the contents page says on which page each section starts (after a dotted leader, if any) ...
    contents = pages[0]
    for number, title in enumerate(SECTION_TITLES, start=1):
        assert re.search(rf"^{number}\. {re.escape(title)}[ .]* {starts[number]}$", contents, re.M), (title, contents)
    # ... and links to it: a link annotation whose destination is that page
    targets = set(link_target_pages(reader, reader.pages[0]))
    assert set(starts.values()) <= targets, (starts, targets)
    # a section's first page also holds its first figure or table (no near-empty opening pages)
    assert "Figure 1." in pages[starts[1] - 1]


def test_pdf_figure_captions_are_on_their_figures_page(fixture_report):
    """WeasyPrint names a destination for every id: fig<N> is where figure N is drawn, which must be the page
    of its caption (the print CSS keeps a figure and its caption together)."""
    import re

    from pypdf import PdfReader

    reader = PdfReader(str(fixture_report.pdf))
    pages = [page.extract_text() for page in reader.pages]
    captions = {int(n): i for i, text in enumerate(pages, start=1) for n in re.findall(r"Figure (\d+)\. ", text)}
    figure_pages = {
        int(name[3:]): reader.get_destination_page_number(dest) + 1
        for name, dest in reader.named_destinations.items()
        if re.fullmatch(r"fig\d+", name)
    }
    assert len(figure_pages) >= 20 and set(figure_pages) == set(captions)
    for number, page in figure_pages.items():
        assert captions[number] == page, f"figure {number} is drawn on page {page}, its caption on {captions[number]}"


def test_print_figures_are_drawn_at_their_print_size_within_the_page(fixture_report):
    """Each static figure is drawn at the size it was made for (8-9 pt text stays 8-9 pt): its SVG's own
    size fits the A4 landscape page inside its margins and the figure height cap, so no engine scales it."""
    import base64
    import re

    from optlab.reports import render

    html = render.render(fixture_report.sections, "sqlite:///fixture.db", printing=True, page_numbers_by_css=True)
    page = re.search(r"@page \{ size: A4 landscape; margin: ([\d.]+)mm ([\d.]+)mm ([\d.]+)mm ([\d.]+)mm", html)
    top, right, bottom, left = (float(v) * 72 / 25.4 for v in page.groups())
    cap = float(re.search(r"figure img \{[^}]*max-height: ([\d.]+)mm", html).group(1)) * 72 / 25.4
    svgs = [base64.b64decode(b).decode() for b in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)]
    assert len(svgs) >= 15
    for svg in svgs:
        width, height = (float(v) for v in re.search(r'<svg[^>]* width="([\d.]+)pt" height="([\d.]+)pt"', svg).groups())
        assert width <= 842 - left - right and height <= min(cap, 595 - top - bottom), (width, height)


def test_every_printed_figure_of_the_fixture_report_keeps_its_text_inside_and_apart(fixture_report):
    import matplotlib.pyplot as plt

    from optlab.reports import chart_static

    problems = []
    for section in fixture_report.sections:
        for chart in [b for b in section.blocks if isinstance(b, (Chart, Matrix))]:
            fig = chart_static.figure(chart)
            try:
                problems += [f"{section.title}: {p}" for p in chart_static.text_problems(fig)]
            finally:
                plt.close(fig)
    assert problems == []


def test_a_long_table_goes_to_the_appendix_collapsed_in_html(tmp_path):
    from optlab.reports.model import Section
    from optlab.reports.render import write_html

    long = Table(pd.DataFrame({"pair": range(40), "value": np.arange(40) / 7}), "every pair's estimate")
    short = Table(pd.DataFrame({"a": [1, 2]}), "two rows")
    path = write_html([Section(1, "One", "intro", [short, long])], tmp_path / "r.html", "sqlite:///x.db")
    html = path.read_text()
    assert "Table A1" in html and 'href="#tA1"' in html
    appendix = html[html.index('id="appendix"') :]
    assert "<details" in appendix and "every pair&#39;s estimate" in appendix and "<td>39</td>" in appendix
    body = html[: html.index('id="appendix"')]
    assert "<td>39</td>" not in body and "<td>2</td>" in body


def test_report_escapes_text_and_masks_credentials(tmp_path):
    from optlab.reports.model import Section
    from optlab.reports.render import write_html

    section = Section(1, "Tags <b>", "an <script>alert(1)</script> intro", [Note("x < y & `code`")])
    html = write_html([section], tmp_path / "r.html", "postgresql://mlflow:s3cret@db:5432/mlflow").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "x &lt; y &amp; <code>code</code>" in html
    assert "s3cret" not in html and "postgresql://***@db" in html


def _chromium():
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
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.binary_location = (
        os.environ.get("OPTLAB_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def hidden_of(state) -> set:
    return {group for group, visible in state if visible == "legendonly"}


@pytest.mark.browser
def test_html_report_is_interactive_offline_and_clean_in_chromium(fixture_report):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    n_charts = sum(len(blocks(s, Chart)) for s in fixture_report.sections)
    n_matrices = sum(len(blocks(s, Matrix)) for s in fixture_report.sections)
    n_images = sum(len(blocks(s, Figure)) for s in fixture_report.sections)
    driver = _chromium()
    try:
        driver.get(fixture_report.html.resolve().as_uri())
        # every interactive figure is drawn: its traces and a legend
        plots = driver.execute_script("""return Array.from(document.querySelectorAll('.js-plotly-plot')).map(g =>
            [g.id, g.data.length, g.querySelectorAll('.scatterlayer .trace').length,
             g.querySelectorAll('.legend .traces').length, g.data[0].type,
             g.querySelectorAll('.heatmaplayer image, .heatmaplayer .hm').length])""")
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);"
        )
        fetched = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        # clicking a legend entry hides that series (line and band) in every panel; the others stay
        chart = driver.find_element(By.ID, "chart1")
        driver.execute_script("arguments[0].scrollIntoView()", chart)
        entries = chart.find_elements(By.CSS_SELECTOR, ".legend .traces")
        names = [e.text for e in entries]
        drawn_before = len(chart.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace"))
        visibility = "return arguments[0].data.map(t => [t.legendgroup, t.visible])"
        entries[0].find_element(By.CSS_SELECTOR, ".legendtoggle").click()
        # plotly waits out its double-click delay (300 ms) before acting on a single click
        WebDriverWait(driver, 10).until(lambda d: hidden_of(d.execute_script(visibility, chart)))
        state = driver.execute_script(visibility, chart)
        drawn_after = len(chart.find_elements(By.CSS_SELECTOR, ".scatterlayer .trace"))
        # on a fresh page, a double click on another entry shows that one alone
        driver.refresh()
        chart = driver.find_element(By.ID, "chart1")
        driver.execute_script("arguments[0].scrollIntoView()", chart)
        entries = chart.find_elements(By.CSS_SELECTOR, ".legend .traces")
        ActionChains(driver).double_click(entries[1].find_element(By.CSS_SELECTOR, ".legendtoggle")).perform()
        WebDriverWait(driver, 10).until(  # times out (fails) unless exactly that entry is left shown
            lambda d: {g for g, v in d.execute_script(visibility, chart) if v in (None, True)} == {names[1]}
        )
        headings = driver.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent);")
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    lines = [p for p in plots if p[4] == "scatter"]
    matrices = [p for p in plots if p[4] == "heatmap"]
    assert len(lines) == n_charts > 0 and len(matrices) == n_matrices > 0
    assert all(data > 0 and drawn == data and legend > 0 for _, data, drawn, legend, _, _ in lines), lines
    assert all(drawn > 0 for *_, drawn in matrices), matrices
    assert len(images) == n_images and all(c and w > 0 and h > 0 for c, w, h in images), images
    assert fetched == []  # nothing loaded from anywhere: plotly.js and images are inline
    assert hidden_of(state) == {names[0]}
    assert drawn_after < drawn_before
    assert [entry for entry in logs if entry["level"] in ("SEVERE", "WARNING")] == []
    assert headings == [f"{i}. {t}" for i, t in enumerate(SECTION_TITLES, start=1)] + ["Glossary"]


def test_missing_experiments_say_not_run_yet_instead_of_failing(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = build_report(tmp_path / "out", progress=False)
    assert report.errors == []
    by_title = {s.title: s for s in report.sections}
    expected = {
        "Convergence and final results": "convergence",
        "Time to target and performance profiles": "convergence",
        "Newer optimizers against AdamW and momentum": "modern",
        "Learning-rate sensitivity": "convergence",
        "Batch-size effects": "batch_size",
        "Random-label memorization": "memorization",
        "Inside the network": "convergence",
    }
    for title, experiment in expected.items():
        notes = [n.text for n in blocks(by_title[title], Note) if n.kind == "missing"]
        assert any(f"SWEEP=experiments/{experiment}.toml make sweep" in n and "not run yet" in n for n in notes), title
    assert blocks(by_title["Landscapes"], Figure)  # computed live, needs no runs
    html = report.html.read_text()
    assert html.count("not run yet") >= 7
    assert report.pdf.stat().st_size > 0


def test_markdown_results_come_from_the_store_and_replace_only_the_results_block(fixture_report, tmp_path, capsys):
    from optlab.cli import main
    from optlab.reports.markdown import BEGIN, END

    page = tmp_path / "index.md"
    page.write_text(f"# title\n\nintro\n\n{BEGIN}\nold numbers\n{END}\n\n## after\n")
    home = fixture_report.html.parent.parent
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert main(["report", "--markdown", "--into", str(page), "--tracking-uri", uri]) == 0
    text = page.read_text()
    assert text.startswith("# title\n\nintro\n\n" + BEGIN) and text.endswith(END + "\n\n## after\n")
    assert "old numbers" not in text
    assert "**Workload `digits-short`**" in text and "Performance profile over the 2 workloads" in text
    assert "load average" in text and "machine" in text
    assert "**Batch size**" in text and "**Random-label memorization**" in text
    assert "**Dynamics**" not in text  # the page has no sweep-more block: left out, said so
    assert "has no results-more block" in capsys.readouterr().out


@pytest.mark.slow
def test_the_sweep_more_results_go_to_their_own_block(fixture_report, tmp_path):
    from optlab.cli import main
    from optlab.reports.markdown import BEGIN, END, MORE_BEGIN, MORE_END

    page = tmp_path / "index.md"
    page.write_text(f"{BEGIN}\nold\n{END}\n\n## more\n\n{MORE_BEGIN}\nold more\n{MORE_END}\n")
    home = fixture_report.html.parent.parent
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert main(["report", "--markdown", "--into", str(page), "--tracking-uri", uri]) == 0
    text = page.read_text()
    more = text[text.index(MORE_BEGIN) :]
    assert "old more" not in text and "\nold\n" not in text and "**Dynamics**" in more and "**Lessons**" in more
    lessons = [s for s in fixture_report.sections if s.title == "Lessons"][0]
    # the same sentences as the report's section, computed from the same runs
    first = [b.text for b in lessons.blocks if getattr(b, "text", "").startswith("Shuffle the data.")][0]
    assert first in more and "Measured sharpness against 2/η" in more


def test_the_modern_section_compares_the_newer_optimizers_with_both_baselines(fixture_report):
    from optlab.reports import modern

    section = [s for s in fixture_report.sections if s.title == modern.TITLE][0]
    assert [n.text for n in blocks(section, Note) if n.kind == "heading"] == ["Workload digits-modern"]
    tiers = [t for t in blocks(section, Table) if t.caption.startswith("Tiers on final test accuracy")][0].frame
    assert set(tiers["strategy"]) == {"adamw", "momentum", "po:lion"}
    assert list(tiers["vs best"]).count("best on validation") == 1
    # the newer-vs-baselines sentence and table agree with the tiers of the same verdicts
    best = tiers.loc[tiers["vs best"] == "best on validation", "strategy"].iloc[0]
    sentence = [n.text for n in blocks(section, Note) if n.text.startswith("Workload digits-modern, newer vs")]
    assert len(sentence) == 1 and f"{best}" in sentence[0]
    summary = [t for t in blocks(section, Table) if t.caption == modern.OUTCOME_CAPTION][0].frame
    assert list(summary["workload"]) == ["digits-modern"] and list(summary["best on validation"]) == [best]
    assert summary["newer better than both baselines?"].iloc[0] in modern.OUTCOMES
    assert modern.TITLE in fixture_report.html.read_text()


@pytest.mark.slow
def test_the_modern_results_go_to_their_own_block(fixture_report, tmp_path):
    from optlab.cli import main
    from optlab.reports.markdown import BEGIN, END, MODERN_BEGIN, MODERN_END

    page = tmp_path / "index.md"
    page.write_text(f"{BEGIN}\nold\n{END}\n\n## newer\n\n{MODERN_BEGIN}\nold modern\n{MODERN_END}\n")
    home = fixture_report.html.parent.parent
    uri = f"sqlite:///{home / 'mlruns' / 'mlflow.db'}"
    assert main(["report", "--markdown", "--into", str(page), "--tracking-uri", uri]) == 0
    text = page.read_text()
    block = text[text.index(MODERN_BEGIN) : text.index(MODERN_END)]
    main_block = text[: text.index(MODERN_BEGIN)]
    assert "old modern" not in text and "**Workload `digits-modern`**" in block
    assert "digits-modern" not in main_block  # the modern workloads stay out of the main block
    assert "Tiers on final test accuracy, workload digits-modern" in block and "|---" in block
    assert "Workload digits-modern, newer vs adamw and momentum on final test accuracy:" in block
    assert "newer better than both baselines?" in block


def test_cli_refuses_into_without_markdown(capsys):
    from optlab.cli import main

    assert main(["report", "--into", "docs/results/index.md"]) == 2
    assert "--into 'docs/results/index.md' needs --markdown" in capsys.readouterr().err


def test_a_failing_section_is_one_warning_line_and_a_note_the_rest_is_built(tmp_path, monkeypatch, capsys):
    from optlab.reports import landscapes

    def broken(*args, **kwargs):
        raise ValueError("no such surface\nsecond line")

    monkeypatch.setenv("OPTLAB_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("OPTLAB_DEBUG", raising=False)
    monkeypatch.setattr(landscapes, "build", broken)
    report = build_report(tmp_path / "out", progress=False)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if "failed" in line] == [
        "optlab: warning: report section 8 (Landscapes) failed: ValueError: no such surface "
        "(--debug shows the traceback)"
    ]
    assert report.errors == ["Landscapes: ValueError: no such surface\nsecond line"]
    assert "This section failed to build" in report.html.read_text()
    monkeypatch.setenv("OPTLAB_DEBUG", "1")
    build_report(tmp_path / "again", progress=False)
    assert "Traceback" in capsys.readouterr().err


def test_cli_refuses_an_unknown_pdf_engine_in_one_line(capsys):
    from optlab.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["report", "--pdf-engine", "bogus"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "--pdf-engine: invalid choice: 'bogus'" in err and "weasyprint" in err


def test_the_chromium_engine_without_a_browser_says_so_in_one_line_and_names_the_default(tmp_path, monkeypatch):
    from optlab.reports import render
    from optlab.reports.model import Note, Section
    from optlab.reports.pdf import PdfError

    monkeypatch.setenv("OPTLAB_CHROMIUM", str(tmp_path / "no-such-chrome"))
    with pytest.raises(PdfError) as failed:
        render.write_pdf(
            [Section(1, "One", "intro", [Note("text")])], tmp_path / "r.pdf", "sqlite:///x.db", engine="chromium"
        )
    assert "no Chromium found" in str(failed.value) and "weasyprint" in str(failed.value)
    assert "\n" not in str(failed.value) and not (tmp_path / "r.pdf").exists()


RAW_PHRASES = ("step + 1", "(as given)", "timing alone", "timing: ")
EXPONENT = r"\d(?:\.\d+)?e[+-]\d+"  # 1e+03, 2.5e-04: numbers a reader should see written out


def test_report_text_has_no_raw_phrases_and_links_each_technical_term(fixture_report):
    import re

    from optlab.reports import glossary

    html = fixture_report.html.read_text()
    text = re.sub(r"<script\b.*?</script>|<style\b.*?</style>|<[^>]+>", " ", html, flags=re.S)
    for phrase in RAW_PHRASES:
        assert phrase not in text, phrase
    assert not re.findall(rf"[^\w.]{EXPONENT}\b", text), re.findall(rf".{{40}}{EXPONENT}.{{20}}", text)[:5]
    # the axis titles and table cells live in the figures' data: no exponent notation there either
    figures = " ".join(re.findall(r"<script\b.*?</script>", html, flags=re.S))
    for title in re.findall(r'"title":\s*\{"text":\s*"([^"]*)"', figures):
        assert "step + 1" not in title and not re.search(EXPONENT, title), title
    for name in ("BCa", "Kaplan-Meier", "censored", "Holm", "performance profile", "B_simple"):
        term = next(t for t in glossary.TERMS if t.name == name)
        if any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text) for s in term.spellings):
            assert html.count(f'class="term" href="#{term.anchor}"') == 1, name


def test_printed_report_has_no_near_empty_page_but_the_last_of_a_section(fixture_report):
    pytest.importorskip("weasyprint", reason="WeasyPrint not installed")
    from page_fill import NEAR_EMPTY, near_empty, pages

    from optlab.reports.render import render

    printed = pages(render(fixture_report.sections, "sqlite:///fixture.db", printing=True, page_numbers_by_css=True))
    empty = near_empty(printed)
    assert len(printed) > 10
    # the rule of a compact PDF: only the last page of a section may be under a quarter full (how many such
    # pages a report has depends on its sections' lengths, not on the layout)
    assert [p for p in empty if not p.last_of_section] == [], f"under {NEAR_EMPTY:.0%} full: {empty}"


def test_the_printed_pdf_has_the_permissions_of_an_ordinary_file(tmp_path):
    """The PDF is printed into a private temporary file and moved into place: it must end up readable as
    any file the user writes (the umask's permissions), not private to its owner."""
    import os

    from optlab.reports import render
    from optlab.reports.model import Note, Section

    pdf = render.write_pdf([Section(1, "One", "intro", [Note("a note")])], tmp_path / "r.pdf", "sqlite:///x.db")
    umask = os.umask(0)
    os.umask(umask)
    assert pdf.stat().st_mode & 0o777 == 0o666 & ~umask


def test_the_results_page_says_how_many_reruns_were_trained_alone_counted_from_the_runs():
    import pandas as pd

    from optlab.reports.markdown import reruns_sentence

    mixed = pd.DataFrame({"timing": ["alone"] * 5 + ["batched:15"] * 15 + ["alone"] * 2})
    assert reruns_sentence(mixed).endswith(
        ": 7 of the 22 trained alone (wall times come from these), the others stacked with other seeds of their "
        "configuration (the same numbers, one shared wall time)."
    )
    assert reruns_sentence(pd.DataFrame({"timing": ["alone"] * 1200})).endswith(", each of the 1,200 trained alone.")
    assert "trained alone" not in reruns_sentence(None) and "trained alone" not in reruns_sentence(mixed.iloc[:0])
