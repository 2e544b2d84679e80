"""Build the whole report: each section from the store, then the HTML and the PDF writers."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from optlab.reports import style
from optlab.reports.chart import Chart, Matrix
from optlab.reports.model import Figure, Note, Section
from optlab.reports.pdf import DEFAULT_ENGINE, PdfError, check_engine

DEFAULT_EXPERIMENTS = ("convergence", "second_order", "zeroth_order")  # the strategy comparisons


@dataclass
class Report:
    html: Path
    pdf: Path | None  # None when the PDF engine could not print it (see `warnings`)
    sections: list[Section]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verdicts: list[Path] = field(default_factory=list)  # verdicts.csv (and .json) beside the report


def build_report(
    out: str | Path = "reports/out",
    experiments: list[str] | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
    argv: list[str] | None = None,
    pdf_engine: str = DEFAULT_ENGINE,
    all_pairs: bool = False,
    as_json: bool = False,
) -> Report:
    """`experiments` replaces the default experiments of sections 1, 2 and 4 (convergence, second_order,
    zeroth_order); sections 2 and 4 and verdicts.csv add the modern sweep to them; the other sections read
    their own (modern, batch_size, memorization, diagnostics, dynamics, lessons). `pdf_engine` is one of
    pdf.ENGINES (weasyprint, chromium). `all_pairs`: also compare every pair of strategies (Holm over all
    pairs); `as_json`: write verdicts.json beside verdicts.csv."""
    import matplotlib.pyplot as plt

    from optlab.reports import (
        batch_size,
        convergence,
        dynamics,
        inside,
        landscapes,
        lessons,
        memorization,
        modern,
        render,
        reproducibility,
        sensitivity,
        verdict_tables,
    )
    from optlab.reports import target as time_to_target
    from optlab.reports.load import Store

    check_engine(pdf_engine)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the progress lines readable
    style.setup()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = Store(tracking_uri, progress=progress)
    chosen = tuple(experiments) if experiments else DEFAULT_EXPERIMENTS
    # time to target, sensitivity and verdicts.csv also cover the newer-optimizer sweep, each sweep's
    # workloads on their own (two sweeps may use one workload name)
    compared = tuple(dict.fromkeys((*chosen, modern.EXPERIMENT)))
    tuned = tuple(dict.fromkeys((*chosen, "batch_size", modern.EXPERIMENT)))
    builders = [
        (1, convergence.TITLE, lambda: convergence.build(store, chosen, all_pairs)),
        (2, time_to_target.TITLE, lambda: time_to_target.build(store, compared, all_pairs)),
        (3, modern.TITLE, lambda: modern.build(store, 3, all_pairs)),
        (4, sensitivity.TITLE, lambda: sensitivity.build(store, tuned)),
        (5, batch_size.TITLE, lambda: batch_size.build(store)),
        (6, memorization.TITLE, lambda: memorization.build(store)),
        (7, inside.TITLE, lambda: inside.build(store)),
        (8, landscapes.TITLE, lambda: landscapes.build(store)),
        (9, dynamics.TITLE, lambda: dynamics.build(store, 9)),
        (10, lessons.TITLE, lambda: lessons.build(store, 10)),
        (11, reproducibility.TITLE, lambda: reproducibility.build(store, argv)),
    ]
    sections, errors = [], []
    for number, title, make in builders:
        started = time.perf_counter()
        _say(progress, f"[report] {number}/{len(builders)} {title} ...")
        try:
            section = make()
        except Exception as exc:  # one broken section must not take the report down with it
            errors.append(f"{title}: {type(exc).__name__}: {exc}")
            if os.environ.get("OPTLAB_DEBUG", "") not in ("", "0"):
                traceback.print_exc(file=sys.stderr)
            else:
                print(
                    f"optlab: warning: report section {number} ({title}) failed: {type(exc).__name__}: "
                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''} (--debug shows the traceback)",
                    file=sys.stderr,
                )
            section = Section(
                number,
                title,
                blocks=[Note(f"This section failed to build: {type(exc).__name__}: {exc}", kind="warning")],
            )
        section.number = number
        figures = sum(1 for b in section.blocks if isinstance(b, (Chart, Matrix, Figure)))
        state = "not run yet" if section.missing else f"{figures} figure(s)"
        _say(progress, f"[report] {number}/{len(builders)} {title}: {state} ({time.perf_counter() - started:.1f}s)")
        sections.append(section)
    try:
        written = verdict_tables.write(verdict_tables.collect(store, compared, all_pairs), out, as_json)
        _say(progress, f"[report] wrote {', '.join(map(str, written))}")
    except Exception as exc:  # the report itself must still be written
        written = []
        errors.append(f"verdicts.csv: {type(exc).__name__}: {exc}")
    _say(progress, "[report] writing HTML ...")
    html = render.write_html(sections, out / "report.html", store.uri)
    _say(progress, f"[report] printing the PDF ({pdf_engine}) ...")
    warnings = []
    try:
        pdf = render.write_pdf(sections, out / "report.pdf", store.uri, engine=pdf_engine)
    except PdfError as exc:
        pdf = None
        warnings.append(f"PDF not written: {exc}")
        _say(progress, f"[report] {warnings[-1]}")
    plt.close("all")
    _say(progress, f"[report] wrote {html}" + (f" and {pdf}" if pdf else ""))
    return Report(html, pdf, sections, errors, warnings, written)


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, file=sys.stderr, flush=True)
