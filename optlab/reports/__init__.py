"""Reports: the runs in the MLflow store as tidy frames, ten sections of figures, tables and notes,
written as one self-contained HTML file and one PDF (see build.build_report).

`Report` and `build_report` are imported on first use: the command line reads light modules of this
package (the PDF engines' names) while building its parser, and must not pay for seaborn and scipy."""

from __future__ import annotations

__all__ = ["Report", "build_report"]


def __getattr__(name: str):
    if name in __all__:
        from optlab.reports import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
