"""The printed report stays compact: a section whose experiment was not run is one line in the contents
and one entry of a "Not run" list (no page of its own); a table of up to SHORT_TABLE_ROWS rows is kept
whole rather than spilling a few rows onto the next page."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from optlab.reports.model import Section, Table, not_run
from optlab.reports.render import SHORT_TABLE_ROWS, render


def sections():
    ran = Section(1, "Ran", "intro", [Table(pd.DataFrame({"a": range(SHORT_TABLE_ROWS)}), "a table")])
    return [
        ran,
        Section(2, "Skipped one", "", [not_run("batch_size")]),
        Section(3, "Skipped two", "", [not_run("memorization")]),
    ]


def test_sections_not_run_are_a_list_entry_each_not_a_page_each():
    page = render(sections(), "sqlite:///x.db", printing=True)
    parts = re.findall(r'<section class="part" id="s(\d+)"', page)
    assert parts == ["1"]  # only the section that ran starts a page
    listed = page[page.index('id="not-run"') : page.index("</header>")]
    assert "2. Skipped two" not in listed and "2. Skipped one" in listed and "3. Skipped two" in listed
    assert "SWEEP=experiments/batch_size.toml make sweep" in listed
    contents = page[page.index('<nav class="contents">') : page.index("</nav>")]
    assert 'href="#s2"' in contents and 'id="s2"' in listed  # the contents links (title and page) land on the entry


def test_a_table_that_would_spill_a_few_rows_is_kept_whole():
    page = render(sections(), "sqlite:///x.db", printing=True)
    assert re.search(r'<div class="tablewrap short dense" id="tA1">', page)  # in the appendix, kept whole
    assert ".tablewrap.short { break-inside: avoid; }" in page


def test_with_weasyprint_a_table_a_few_rows_over_a_page_prints_on_one_page_under_its_heading():
    import io

    weasyprint = pytest.importorskip("weasyprint", reason="WeasyPrint not installed")
    from pypdf import PdfReader

    pdf = weasyprint.HTML(string=render(sections(), "sqlite:///x.db", printing=True)).write_pdf()
    pages = [p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages]
    # no page for a section not run, none for a heading alone, none for a few spilt rows
    assert "Not run" in pages[0] and not any(p.startswith(("2. Skipped", "3. Skipped")) for p in pages)
    assert pages[-1].startswith("Appendix: long tables")
    assert "\n0\n" in pages[-1] and f"\n{SHORT_TABLE_ROWS - 1}\n" in pages[-1]


def test_the_page_fill_check_tells_a_near_empty_page_from_a_full_one():
    pytest.importorskip("weasyprint", reason="WeasyPrint not installed")
    from page_fill import near_empty, pages

    lines = "".join(f"<p>line {k}</p>" for k in range(28))
    html = (
        "<style>@page { size: A4 landscape; margin: 12mm; @bottom-right { content: counter(page) } }"
        "section { break-before: page } p { margin: 0; font-size: 10pt; line-height: 1.6 }</style>"
        f'<section id="s1">{lines}<p style="break-before: page">one line alone</p>{lines}</section>'
        f'<section id="s2"><p>a short last page</p></section>'
    )
    printed = pages(html)
    assert [(p.section, p.last_of_section) for p in printed] == [("s1", False), ("s1", True), ("s2", True)]
    assert printed[0].fill > 0.75 and printed[1].fill > 0.75  # the footer's page number is not content
    assert [p.number for p in near_empty(printed)] == [3]
    # the line alone on its page, then the section goes on on the next: a near-empty page inside a section
    alone = pages(html.replace("one line alone</p>", 'one line alone</p><p style="break-before: page">next</p>'))
    assert [(p.number, p.last_of_section) for p in near_empty(alone)] == [(2, False), (4, True)]


def test_a_first_table_under_a_heading_taller_than_a_page_starts_under_it_not_on_the_next_page():
    pytest.importorskip("weasyprint", reason="WeasyPrint not installed")
    from page_fill import near_empty, pages

    # 16 rows (a "short" table by row count) whose cells wrap to several lines: taller than a page
    wrapping = pd.DataFrame(
        {
            f"column {c}": [f"hidden 16,16 (13,002 params) row {r} 0.911 [0.908, 0.914] " * 3 for r in range(16)]
            for c in range(6)
        }
    )
    tall = [Section(1, "Ran", "intro", [Table(wrapping, "a tall table")])]
    page = render(tall, "sqlite:///x.db", printing=True)
    assert re.search(r'<div class="tablewrap short" id="tA1">', page)  # kept whole by its row count ...
    printed = pages(page)
    appendix = [p for p in printed if p.section == "appendix"]
    assert len(appendix) >= 2  # ... yet taller than a page: it breaks, starting right under the heading
    assert not [p for p in near_empty(printed) if not p.last_of_section]
