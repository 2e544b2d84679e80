"""Writers: one self-contained HTML file (interactive Plotly figures, plotly.js inlined once, Jinja2 with
autoescape) and one PDF printed from the same template in its print form (static figures, A4 landscape
pages with numbers, a contents page with links and page numbers) by WeasyPrint, or by headless Chromium
(pdf.py names the engines).

Everything rendered is escaped (the template autoescapes; only HTML built here is marked safe) and
credentials in URIs (`user:password@`) are masked in both documents."""

from __future__ import annotations

import base64
import io
import re
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup, escape

from optlab.reports import chart_plotly, chart_static, glossary
from optlab.reports import pdf as pdf_engines
from optlab.reports.chart import Chart, Matrix
from optlab.reports.model import Figure, Note, Section, Table
from optlab.tracking.uri import mask_credentials

REPORT_TITLE = "optlab report"
APPENDIX_HEADING = "Appendix: long tables"
PAGE_TABLE_ROWS = 22  # rows an A4 landscape page holds under a caption at the tables' normal size
SHORT_TABLE_ROWS = 34  # a table up to this long is kept on one page (moved whole rather than spilling a few
# rows), set denser when it has more than PAGE_TABLE_ROWS
ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("optlab.reports", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)


def inline(text: str) -> Markup:
    """Mask credentials, escape, then show `code` spans as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(mask_credentials(text)))))


def png_data_uri(fig, dpi: int = 110) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def svg_data_uri(fig) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(chart_static.svg(fig)).decode("ascii")


def _table_html(table: Table) -> Markup:
    frame = table.frame.rename(columns=lambda c: mask_credentials(c) if isinstance(c, str) else c)
    frame = frame.map(lambda v: mask_credentials(v) if isinstance(v, str) else v)
    return Markup(frame.to_html(index=False, escape=True, border=0, na_rep="-"))


def view(sections: list[Section], printing: bool) -> tuple[list[dict], list[dict]]:
    """The template's view of the sections: numbered blocks, and the tables moved to the appendix."""
    import matplotlib.pyplot as plt

    figures = tables = appendix_tables = 0
    out, appendix = [], []
    for s in sections:
        blocks = []
        for b in s.blocks:
            if isinstance(b, (Chart, Matrix)):
                figures += 1
                entry = {
                    "kind": "chart",
                    "number": figures,
                    "anchor": f"fig{figures}",
                    "caption": inline(b.caption),
                    "alt": mask_credentials(b.caption)[:120],
                }
                if printing:
                    fig = chart_static.figure(b)
                    entry["image"] = svg_data_uri(fig)
                    plt.close(fig)
                else:
                    entry["html"] = Markup(chart_plotly.to_html(b, f"chart{figures}"))
                blocks.append(entry)
            elif isinstance(b, Figure):
                figures += 1
                blocks.append(
                    {
                        "kind": "figure",
                        "number": figures,
                        "anchor": f"fig{figures}",
                        "image": png_data_uri(b.figure, dpi=170 if printing else 110),
                        "caption": inline(b.caption),
                        "alt": mask_credentials(b.caption)[:120],
                    }
                )
            elif isinstance(b, Table) and b.in_appendix:
                appendix_tables += 1
                entry = {
                    "kind": "table",
                    "number": f"A{appendix_tables}",
                    "anchor": f"tA{appendix_tables}",
                    "caption": inline(b.caption),
                    "html": _table_html(b),
                    "rows": len(b.frame),
                    "short": len(b.frame) <= SHORT_TABLE_ROWS,
                    "dense": PAGE_TABLE_ROWS < len(b.frame) <= SHORT_TABLE_ROWS,
                }
                appendix.append(entry)
                blocks.append({**entry, "kind": "moved", "caption_short": _short(b.caption)})
            elif isinstance(b, Table):
                tables += 1
                blocks.append(
                    {
                        "kind": "table",
                        "number": tables,
                        "anchor": f"t{tables}",
                        "caption": inline(b.caption),
                        "html": _table_html(b),
                        "short": len(b.frame) <= SHORT_TABLE_ROWS,
                        "dense": PAGE_TABLE_ROWS < len(b.frame) <= SHORT_TABLE_ROWS,
                    }
                )
            elif isinstance(b, Note):
                blocks.append({"kind": b.kind, "text": inline(b.text)})
        out.append(
            {
                "number": s.number,
                "title": mask_credentials(s.title),
                "heading": mask_credentials(s.heading),
                "intro": inline(s.intro),
                "missing": s.missing,
                "blocks": blocks,
            }
        )
    link_terms(out)
    return out, appendix


def link_terms(sections: list[dict]) -> None:
    """Each glossary term's first use (in reading order: intros, captions, notes) links to its entry."""
    uses = glossary.FirstUses()
    for section in sections:
        if section["missing"]:
            continue
        section["intro"] = uses.link(section["intro"])
        for block in section["blocks"]:
            for key in ("caption", "text"):
                if block.get(key) and block["kind"] != "heading":
                    block[key] = uses.link(block[key])


def _short(caption: str, words: int = 9) -> str:
    parts = caption.split()
    return " ".join(parts[:words]) + (" ..." if len(parts) > words else "")


def render(
    sections: list[Section],
    uri: str,
    printing: bool,
    pages: dict | None = None,
    rendered: tuple | None = None,
    page_numbers_by_css: bool = False,
) -> str:
    """`pages` (heading -> page) fills the print contents' numbers; `page_numbers_by_css` leaves them to
    CSS target-counter() instead (an engine that implements it, WeasyPrint)."""
    blocks, appendix = rendered or view(sections, printing)
    has_charts = any(b["kind"] == "chart" for s in blocks for b in s["blocks"])
    return ENV.get_template("report.html.j2").render(
        title=REPORT_TITLE,
        sections=blocks,
        appendix=appendix,
        glossary=glossary.TERMS,
        appendix_heading=APPENDIX_HEADING,
        print=printing,
        pages=pages or {},
        page_numbers_by_css=page_numbers_by_css,
        built=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        uri=mask_credentials(uri),
        plotly_js=Markup(chart_plotly.plotly_js()) if has_charts and not printing else None,
    )


def write_html(sections: list[Section], path: Path, uri: str) -> Path:
    path = Path(path)
    path.write_text(render(sections, uri, printing=False), encoding="utf-8")
    return path


def write_pdf(sections: list[Section], path: Path, uri: str, engine: str = pdf_engines.DEFAULT_ENGINE) -> Path:
    """Print the report to `path` with `engine` (pdf.ENGINES). Raises pdf.PdfError when the engine is
    missing or fails."""
    pdf_engines.check_engine(engine)
    path = Path(path)
    if engine == "chromium":
        return _write_pdf_chromium(sections, path, uri)
    from optlab.reports import pdf_weasyprint

    with tempfile.TemporaryDirectory(prefix="optlab-report-") as tmp:
        page = Path(tmp) / "report.print.html"
        page.write_text(render(sections, uri, printing=True, page_numbers_by_css=True), encoding="utf-8")
        return pdf_weasyprint.print_pdf(page, path)


def _write_pdf_chromium(sections: list[Section], path: Path, uri: str) -> Path:
    """Twice: the first print's outline gives each section's page, which the second writes into the contents."""
    from optlab.reports import pdf_chromium

    browser = pdf_chromium.require_browser()
    rendered = view(sections, printing=True)
    with tempfile.TemporaryDirectory(prefix="optlab-report-") as tmp:
        page = Path(tmp) / "report.print.html"
        page.write_text(render(sections, uri, printing=True, rendered=rendered), encoding="utf-8")
        pdf_chromium.print_pdf(page, path, browser)
        found = pdf_engines.heading_pages(path)
        wanted = [s.heading for s in sections] + ([APPENDIX_HEADING] if rendered[1] else [])
        pages = {h: found[h] for h in wanted if h in found}
        page.write_text(render(sections, uri, printing=True, pages=pages, rendered=rendered), encoding="utf-8")
        pdf_chromium.print_pdf(page, path, browser)
    return path
