"""HTML -> PDF with headless Chromium (`--print-to-pdf`), the `--pdf-engine chromium` printer.

Chromium keeps the contents page's links as PDF links and, with `--generate-pdf-document-outline`,
writes an outline (bookmarks) from the headings; that outline also says on which page each section
starts, which a second print writes into the contents page (render.write_pdf).

Chromium is the Debian package `chromium` (CI installs it); `OPTLAB_CHROMIUM` names another binary
(e.g. Google Chrome). Without one, the report is written without its PDF and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from optlab.reports.pdf import PdfError

BROWSER_ENV = "OPTLAB_CHROMIUM"
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--no-pdf-header-footer",
    "--generate-pdf-document-outline",
)
TIMEOUT = 300  # seconds


def find_browser() -> str | None:
    named = os.environ.get(BROWSER_ENV)
    if named:
        return named if Path(named).exists() or shutil.which(named) else None
    return next((shutil.which(c) for c in CANDIDATES if shutil.which(c)), None)


def require_browser() -> str:
    browser = find_browser()
    if browser is None:
        raise PdfError(
            f"no Chromium found to print the PDF with --pdf-engine chromium (install the Debian "
            f"package chromium, set {BROWSER_ENV}=/path/to/chrome, or use the default engine, weasyprint)"
        )
    return browser


def print_pdf(html: Path, pdf: Path, browser: str | None = None) -> Path:
    """Print `html` to `pdf` (written whole: a failed print leaves no partial file)."""
    browser = browser or require_browser()
    pdf = Path(pdf)
    with tempfile.TemporaryDirectory(prefix="optlab-chromium-") as profile:
        partial = Path(profile) / "out.pdf"
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--print-to-pdf={partial}",
            Path(html).resolve().as_uri(),
        ]
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
