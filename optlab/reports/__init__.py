"""Reports: the runs in the MLflow store as tidy frames, ten sections of figures, tables and notes,
written as one self-contained HTML file and one PDF (see build.build_report)."""

from optlab.reports.build import Report, build_report

__all__ = ["Report", "build_report"]
