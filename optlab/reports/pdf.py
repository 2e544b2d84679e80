"""HTML -> PDF with headless Chromium (`--print-to-pdf`).

The report's print page (render.py) uses CSS paged media: every page A4 landscape, page numbers in
the page margin, sections starting on a new page with their first figure. Chromium keeps the
contents page's links as PDF links and, with `--generate-pdf-document-outline`, writes an outline
(bookmarks) from the headings; that outline also says on which page each section starts, which a
second print writes into the contents page.

Chromium is the Debian package `chromium` (CI installs it); `OPTLAB_CHROMIUM` names another binary
(e.g. Google Chrome). Without one, the report is written without its PDF and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from optlab.errors import OptlabError

BROWSER_ENV = "OPTLAB_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-pdf-header-footer",
         "--generate-pdf-document-outline")
TIMEOUT = 300  # seconds


class PdfError(OptlabError):
    """Chromium is missing or failed to print."""


def find_browser() -> str | None:
    named = os.environ.get(BROWSER_ENV)
    if named:
        return named if Path(named).exists() or shutil.which(named) else None
    return next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)


def print_pdf(html: Path, pdf: Path, browser: str | None = None) -> Path:
    """Print `html` to `pdf` (written whole: a failed print leaves no partial file)."""
    browser = browser or find_browser()
    if browser is None:
        raise PdfError(f"no Chromium found to print the PDF (install the Debian package chromium, or set "
                       f"{BROWSER_ENV}=/path/to/chrome)")
    pdf = Path(pdf)
    with tempfile.TemporaryDirectory(prefix="optlab-chromium-") as profile:
        partial = Path(profile) / "out.pdf"
        command = [browser, *FLAGS, f"--user-data-dir={profile}", f"--print-to-pdf={partial}",
                   Path(html).resolve().as_uri()]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PdfError(f"{browser} did not print {html} within {TIMEOUT} s") from None
        except OSError as exc:
            raise PdfError(f"cannot run {browser}: {exc}") from None
        if done.returncode != 0 or not partial.exists() or partial.stat().st_size == 0:
            tail = " ".join((done.stderr or "").strip().splitlines()[-3:])
            raise PdfError(f"{browser} failed to print {html} (exit {done.returncode}): {tail}")
        shutil.move(str(partial), pdf)
    return pdf


def heading_pages(pdf: Path) -> dict[str, int]:
    """Outline title -> 1-based page number, for every entry of the PDF's outline."""
    from pypdf import PdfReader

    reader = PdfReader(str(pdf))
    pages = {}

    def walk(items):
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                pages.setdefault(str(item.title).strip(), reader.get_destination_page_number(item) + 1)

    walk(reader.outline)
    return pages
