"""`optlab report`: build reports/out/report.html and report.pdf from the runs in the MLflow store."""

from __future__ import annotations

import sys

from optlab.tracking.uri import mask_credentials


def add_parser(sub):
    p = sub.add_parser("report", help="write the HTML and PDF report from the runs in the MLflow store")
    p.add_argument("--experiment", "-e", action="append", metavar="NAME",
                   help="experiment(s) for the convergence and time-to-target sections (repeatable; default: "
                        "convergence, second_order, zeroth_order)")
    p.add_argument("--out", "-o", default="reports/out", help="output folder (default reports/out)")
    p.add_argument("--target", type=float, default=0.9,
                   help="test accuracy for time-to-target when a run recorded none (default 0.9)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or ./mlruns)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p


def main(args) -> int:
    from optlab.errors import ConfigError
    from optlab.reports import build_report

    if not 0 < args.target <= 1:
        raise ConfigError(f"--target must be a test accuracy in (0, 1], got {args.target!r}")
    check_writable_folder(args.out)  # before minutes of building, not after
    check_store_readable(args.tracking_uri)
    report = build_report(args.out, experiments=args.experiment, tracking_uri=args.tracking_uri,
                          target=args.target, progress=not args.quiet, argv=sys.argv[1:])
    print(f"report: {report.html}")
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
