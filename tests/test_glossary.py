"""The glossary: one declaration of the report's terms, rendered in the report (each term's first use
linked to its entry) and as docs/glossary.md (kept current by `make glossary`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from optlab.reports import glossary
from optlab.reports.model import Note, Section, Table
from optlab.reports.render import render

DOC = Path(__file__).parent.parent / "docs" / "glossary.md"


def test_docs_glossary_is_generated_from_the_declaration():
    assert DOC.read_text() == glossary.markdown() + "\n", "docs/glossary.md is stale: run `make glossary`"
    for term in glossary.TERMS:
        assert f"**{term.name}**" in DOC.read_text()


def test_the_report_has_the_glossary_and_links_each_terms_first_use_only():
    sections = [
        Section(
            1,
            "One",
            "Intervals are BCa bootstrap intervals over seeds.",
            [
                Table(pd.DataFrame({"a": [1]}), "Time to target (Kaplan-Meier median; censored runs counted)"),
                Note("Holm-corrected p-values; again BCa and Kaplan-Meier."),
            ],
        ),
        Section(2, "Two", "The performance profile ρ(τ) over gradient-equivalents."),
    ]
    page = render(sections, "sqlite:///x.db", printing=False)
    for term in glossary.TERMS:
        assert f'<dt id="{term.anchor}">' in page
    links = {
        name: page.count(f'href="#{glossary.Term(name, "").anchor}"')
        for name in ("BCa", "Kaplan-Meier", "censored", "Holm", "performance profile", "gradient-equivalents")
    }
    assert links == dict.fromkeys(links, 1), links  # the first use of each, once
    first = page.index('href="#g-bca"')
    assert first < page.index("Time to target (")  # the intro's use, not a later one
    assert "Holm-corrected</a>" in page and ">ρ(τ)</a>" not in page  # one link per term: its first spelling


def test_a_term_inside_a_link_or_a_tag_is_left_alone():
    uses = glossary.FirstUses()
    from markupsafe import Markup

    text = Markup('<a href="#x">BCa</a> then <code title="BCa">x</code> BCa')
    linked = uses.link(text)
    assert linked.count('class="term"') == 1 and linked.endswith('#g-bca">BCa</a>')
