"""HTML -> PDF: which engine prints the report, and what both engines' PDFs are read back for.

Two engines print the same print page (render.py: CSS paged media, every page A4 landscape, page numbers
in the page margin, sections starting on a new page):
- `weasyprint` (the default; installed with optlab, renders with the system's Pango): one pass, the
  contents page's numbers come from CSS `target-counter()`; pdf_weasyprint.py.
- `chromium` (headless Chromium, `--pdf-engine chromium`): two passes, the first print's outline says on
  which page each section starts; pdf_chromium.py.
"""

from __future__ import annotations

from pathlib import Path

from optlab.errors import ConfigError, OptlabError

ENGINES = ("weasyprint", "chromium")
DEFAULT_ENGINE = "weasyprint"


class PdfError(OptlabError):
    """The engine is missing or failed to print."""


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise ConfigError(f"--pdf-engine {engine!r} is not one of: {', '.join(ENGINES)}")
    return engine


def heading_pages(pdf: Path) -> dict[str, int]:
    """Outline title -> 1-based page number, for every entry of the PDF's outline."""
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    pages: dict[str, int] = {}

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                pages.setdefault(str(item.title).strip(), reader.get_destination_page_number(item) + 1)

    walk(reader.outline)
    return pages
