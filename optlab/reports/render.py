"""Writers: one self-contained HTML file (PNG images inlined as base64, Jinja2) and one PDF (matplotlib
PdfPages) with the same sections, figures, captions, tables and notes.

Everything rendered is escaped (the template autoescapes; only HTML built here is marked safe) and
credentials in URIs (`user:password@`) are masked in both documents."""

from __future__ import annotations

import base64
import html
import io
import re
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup
import matplotlib.pyplot as plt
from matplotlib.backends.backend_pdf import PdfPages

from optlab.reports.model import Figure, Note, Section, Table
from optlab.tracking.uri import mask_credentials

REPORT_TITLE = "optlab report"

TEMPLATE = jinja2.Environment(autoescape=True).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #bbb; margin-top: 2.2em; }
h3 { margin-top: 1.8em; color: #333; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption, .caption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.4em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.note { padding: 0.6em 0.9em; border-left: 4px solid #5b8def; background: #f3f6fd; margin: 0.8em 0; }
.note.missing { border-color: #e0a100; background: #fff8e5; } .note.warning { border-color: #d9534f; background: #fdf0ef; }
code { background: #f4f4f4; padding: 0 3px; } .meta { color: #666; font-size: 0.9em; }
</style></head>
<body>
<h1>{{ title }}</h1>
<p class="meta">Built {{ built }} from {{ uri }}.</p>
<nav><ol>{% for s in sections %}<li><a href="#s{{ s.number }}">{{ s.title }}</a>{% if s.missing %} (not run yet){% endif %}</li>{% endfor %}</ol></nav>
{% for s in sections %}
<section id="s{{ s.number }}"><h2>{{ s.number }}. {{ s.title }}</h2>
<p>{{ s.intro }}</p>
{% for b in s.rendered %}
{% if b.kind == "figure" %}<figure><img src="data:image/png;base64,{{ b.data }}" alt="{{ b.alt | e }}"><figcaption>{{ b.caption }}</figcaption></figure>
{% elif b.kind == "table" %}<div class="caption">{{ b.caption }}</div>{{ b.html }}
{% elif b.kind == "heading" %}<h3>{{ b.text }}</h3>
{% else %}<div class="note {{ b.kind }}">{{ b.text }}</div>{% endif %}
{% endfor %}
</section>
{% endfor %}
</body></html>
""")


def _inline(text: str) -> Markup:
    """Mask credentials, escape, then show `code` spans as <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(mask_credentials(text))))


def png_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_html(sections: list[Section], path: Path, uri: str) -> Path:
    view = []
    for s in sections:
        rendered = []
        for b in s.blocks:
            if isinstance(b, Figure):
                rendered.append({"kind": "figure", "data": png_base64(b.figure), "caption": _inline(b.caption),
                                 "alt": mask_credentials(b.caption)[:120]})
            elif isinstance(b, Table):
                rendered.append({"kind": "table", "caption": _inline(b.caption),
                                 "html": Markup(mask_credentials(
                                     b.frame.to_html(index=False, escape=True, border=0, na_rep="-")))})
            else:
                rendered.append({"kind": b.kind, "text": _inline(b.text)})
        view.append({"number": s.number, "title": s.title, "intro": _inline(s.intro), "missing": s.missing,
                     "rendered": rendered})
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path.write_text(TEMPLATE.render(title=REPORT_TITLE, sections=view, built=built, uri=mask_credentials(uri)),
                    encoding="utf-8")
    return path


# ---- PDF ---------------------------------------------------------------------------------------------
def _wrap(text: str, width: int) -> str:
    text = mask_credentials(text)
    return "\n".join(textwrap.fill(part, width) for part in text.replace("`", "").split("\n"))


def _text_page(pdf, title: str, paragraphs: list[tuple[str, str]]) -> None:
    fig = plt.figure(figsize=(11.69, 8.27))
    fig.text(0.06, 0.93, title, fontsize=20, weight="bold", va="top")
    y = 0.84
    for kind, text in paragraphs:
        color = {"missing": "#9a6b00", "warning": "#b52b27"}.get(kind, "#222222")
        wrapped = _wrap(text, 120)
        fig.text(0.06, y, wrapped, fontsize=10, va="top", color=color)
        y -= 0.035 * (wrapped.count("\n") + 1) + 0.03
    pdf.savefig(fig)
    plt.close(fig)


def _table_page(pdf, table: Table, heading: str) -> None:
    frame = table.frame.astype(str)
    cells = [[_wrap(v, 45) for v in row] for row in frame.to_numpy().tolist()]
    header = [_wrap(c, 22) for c in frame.columns]
    lines = sum(max(c.count("\n") + 1 for c in row) for row in cells) + max(h.count("\n") + 1 for h in header)
    fig = plt.figure(figsize=(11.69, max(2.5, 1.4 + 0.24 * lines)))
    ax = fig.add_axes([0.03, 0.02, 0.94, 0.78])
    ax.set_axis_off()
    fig.text(0.03, 0.97, heading, fontsize=11, weight="bold", va="top")
    fig.text(0.03, 0.90, _wrap(table.caption, 150), fontsize=8, va="top", color="#444444")
    if cells:
        t = ax.table(cellText=cells, colLabels=header, loc="upper left", cellLoc="left")
        t.auto_set_font_size(False)
        t.set_fontsize(9)
        t.auto_set_column_width(list(range(len(header))))
        row_lines = {}
        for (r, _), cell in t.get_celld().items():
            row_lines[r] = max(row_lines.get(r, 1), cell.get_text().get_text().count("\n") + 1)
        unit = 1.0 / (sum(row_lines.values()) + len(row_lines) * 0.6)
        for (r, _), cell in t.get_celld().items():
            cell.set_height(unit * (row_lines[r] + 0.6))
            if r == 0:
                cell.set_facecolor("#eeeeee")
    pdf.savefig(fig, bbox_inches="tight")
    plt.close(fig)


def _figure_page(pdf, block: Figure, heading: str) -> None:
    fig = block.figure
    width = fig.get_size_inches()[0]
    fig.text(0.0, 1.0, heading, fontsize=11, weight="bold", va="bottom", transform=fig.transFigure)
    fig.text(0.0, -0.01, _wrap(block.caption, int(width * 15)), fontsize=8, va="top", color="#444444",
             transform=fig.transFigure)
    pdf.savefig(fig, bbox_inches="tight")


def write_pdf(sections: list[Section], path: Path, uri: str) -> Path:
    built = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with PdfPages(path) as pdf:
        contents = [("info", f"Built {built} from {uri}.")]
        contents += [("missing" if s.missing else "info", f"{s.number}. {s.title}" + (" (not run yet)" if s.missing else ""))
                     for s in sections]
        _text_page(pdf, REPORT_TITLE, contents)
        for s in sections:
            heading = f"{s.number}. {s.title}"
            notes = [(b.kind, b.text) for b in s.blocks if isinstance(b, Note) and b.kind != "heading"]
            _text_page(pdf, heading, [("info", s.intro), *notes])
            current = heading
            for b in s.blocks:
                if isinstance(b, Note) and b.kind == "heading":
                    current = f"{heading} — {b.text}"
                elif isinstance(b, Figure):
                    _figure_page(pdf, b, current)
                elif isinstance(b, Table):
                    _table_page(pdf, b, current)
        info = pdf.infodict()
        info["Title"] = REPORT_TITLE
        info["Subject"] = "; ".join(f"{s.number}. {s.title}" for s in sections)
    return path
