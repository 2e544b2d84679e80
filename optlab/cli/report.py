"""`optlab report`: build reports/out/report.html and report.pdf from the runs in the MLflow store, or
(--markdown) the results tables of docs/results/index.md."""

from __future__ import annotations

import sys

from optlab.reports.pdf import DEFAULT_ENGINE, ENGINES
from optlab.tracking.uri import mask_credentials


def add_parser(sub):
    p = sub.add_parser(
        "report",
        help="write the HTML and PDF report (or, with --markdown, the results tables) "
        "from the runs in the MLflow store",
    )
    p.add_argument(
        "--experiment",
        "-e",
        action="append",
        metavar="NAME",
        help="experiment(s) whose workloads sections 1-3 compare (repeatable; default: "
        "convergence, second_order, zeroth_order)",
    )
    p.add_argument("--out", "-o", default="reports/out", help="output folder (default reports/out)")
    p.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the results tables as markdown to FILE (default: standard output) instead of the report",
    )
    p.add_argument(
        "--into",
        metavar="FILE",
        help="with --markdown: replace FILE's generated results blocks (between its results:begin and "
        "results:end markers, e.g. docs/results/index.md) with the tables",
    )
    p.add_argument(
        "--all-pairs",
        action="store_true",
        help="compare every pair of strategies (Holm over all pairs), not only each with the best on validation",
    )
    p.add_argument("--json", action="store_true", help="also write verdicts.json beside verdicts.csv")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlruns)")
    p.add_argument(
        "--pdf-engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help=f"what prints the PDF: weasyprint (installed with optlab, no browser) or chromium "
        f"(headless Chromium; OPTLAB_CHROMIUM names the binary). Default {DEFAULT_ENGINE}",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def main(args) -> int:
    from optlab.errors import ConfigError

    if args.into and args.markdown is None:
        raise ConfigError(f"--into {args.into!r} needs --markdown")
    if args.markdown is not None:
        check_store_readable(args.tracking_uri)
        return markdown(args)
    from optlab.reports import build_report

    check_writable_folder(args.out)  # before minutes of building, not after
    check_store_readable(args.tracking_uri)
    report = build_report(
        args.out,
        experiments=args.experiment,
        tracking_uri=args.tracking_uri,
        progress=not args.quiet,
        argv=sys.argv[1:],
        pdf_engine=args.pdf_engine,
        all_pairs=args.all_pairs,
        as_json=args.json,
    )
    print(f"report: {report.html}")
    for path in report.verdicts:
        print(f"report: {path}")
    if report.pdf is not None:
        print(f"report: {report.pdf}")
    for warning in report.warnings:
        print(f"optlab: {warning}", file=sys.stderr)
    for error in report.errors:
        print(f"optlab: report section failed: {mask_credentials(error)}", file=sys.stderr)
    return 1 if report.errors else 0


def check_store_readable(uri: str | None) -> None:
    """One line when the store cannot be read, instead of every section failing in turn."""
    from optlab.errors import OptlabError, StoreError
    from optlab.tracking.failures import describe
    from optlab.tracking.store import client, tracking_uri

    uri = uri or tracking_uri()
    try:
        client(uri).search_experiments(max_results=1)
    except OptlabError:
        raise
    except Exception as exc:
        raise StoreError(describe(exc, uri)) from None


def check_writable_folder(folder: str) -> None:
    import os
    import tempfile
    from pathlib import Path

    from optlab.errors import ConfigError
    from optlab.tracking.failures import describe

    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".optlab-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {folder}: {describe(exc)}") from None


def markdown(args) -> int:
    from pathlib import Path

    from optlab.reports import markdown as md

    if args.into and not Path(args.into).is_file():
        from optlab.errors import ConfigError

        raise ConfigError(f"--into {args.into!r} is not a file")
    # each block from the runs it reads: a store with only the sweep-more (or modern) runs leaves the main
    # block alone
    main_block = md.present(args.tracking_uri, md.MAIN_EXPERIMENTS) or not md.present(
        args.tracking_uri, (*md.MORE_EXPERIMENTS, *md.MODERN_EXPERIMENTS)
    )
    more = md.more_results(args.tracking_uri) if md.present(args.tracking_uri, md.MORE_EXPERIMENTS) else ""
    modern = md.modern_results(args.tracking_uri) if md.present(args.tracking_uri, md.MODERN_EXPERIMENTS) else ""
    text = md.results(args.tracking_uri) if main_block else ""
    if args.into:
        from optlab.markdown_block import has_block, write_block

        if main_block:
            print(f"results: {write_block(args.into, md.RESULTS_BLOCK, text, 'make results')}")
        for name, marker, block, begin, end in (
            ("sweep-more", md.MORE_BLOCK, more, md.MORE_BEGIN, md.MORE_END),
            ("modern", md.MODERN_BLOCK, modern, md.MODERN_BEGIN, md.MODERN_END),
        ):
            if block and has_block(args.into, marker):
                print(f"results ({name}): {write_block(args.into, marker, block, 'make results')}")
            elif block:
                print(f"results ({name}): {args.into} has no {marker} block ({begin!r} ... {end!r}); left out")
    text = "\n".join(t for t in (text, more, modern) if t)
    if args.markdown == "-":
        if not args.into:
            sys.stdout.write(text)
    else:
        Path(args.markdown).write_text(text)
        print(f"results: {args.markdown}")
    return 0
