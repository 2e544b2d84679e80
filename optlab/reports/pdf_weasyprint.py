"""HTML -> PDF with WeasyPrint, the default printer: a Python package installed with optlab that lays out
HTML + SVG with the system's Pango (no browser). Internal links become PDF link annotations to named
destinations, headings become the outline, and `target-counter()` writes page numbers in one pass."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from optlab.reports.pdf import PdfError


def print_pdf(html: Path, pdf: Path) -> Path:
    """Print `html` to `pdf` (written whole: a failed print leaves no partial file)."""
    try:
        import weasyprint
    except ImportError as exc:  # not installed, or Pango missing (OSError subclasses are caught below)
        raise PdfError(
            f"WeasyPrint cannot be imported ({exc}); `make install` installs it, or use --pdf-engine chromium"
        ) from None
    except OSError as exc:
        raise PdfError(
            f"WeasyPrint needs the system's Pango library ({exc}); install the Debian package "
            f"libpango-1.0-0, or use --pdf-engine chromium"
        ) from None
    html, pdf = Path(html), Path(pdf)
    # WeasyPrint logs every CSS property it does not implement (browser-only rules of the shared template)
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    fd, partial = tempfile.mkstemp(prefix=".report-", suffix=".pdf.partial", dir=pdf.parent)
    os.close(fd)
    try:
        weasyprint.HTML(filename=str(html)).write_pdf(partial)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(partial, 0o666 & ~umask)  # mkstemp's file is private; the report is an ordinary file
        os.replace(partial, pdf)
    except Exception as exc:
        raise PdfError(f"WeasyPrint failed to print {html}: {type(exc).__name__}: {exc}") from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return pdf
