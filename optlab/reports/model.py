"""What a section produces: figures with captions, tables and notes, rendered alike to HTML and PDF.

A figure is either a `Chart` (chart.py: data + encodings, interactive in HTML, static in the PDF) or a
`Figure` (a finished matplotlib figure, an image in both). A table longer than APPENDIX_ROWS rows (or
marked `appendix=True`) is moved to the report's appendix, collapsed in the HTML."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Figure:
    figure: object  # a matplotlib Figure
    caption: str


APPENDIX_ROWS = 15


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str
    appendix: bool | None = None  # None: moved to the appendix when longer than APPENDIX_ROWS rows

    @property
    def in_appendix(self) -> bool:
        return self.appendix if self.appendix is not None else len(self.frame) > APPENDIX_ROWS


@dataclass
class Note:
    text: str
    kind: str = "info"  # info | missing | warning | heading (a sub-heading, e.g. one per workload)


def heading(text: str) -> Note:
    return Note(text, kind="heading")


@dataclass
class Section:
    number: int
    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)

    def add(self, block) -> Section:
        self.blocks.append(block)
        return self

    @property
    def heading(self) -> str:
        return f"{self.number}. {self.title}"

    @property
    def missing(self) -> bool:
        return any(isinstance(b, Note) and b.kind == "missing" for b in self.blocks)


def not_run(experiment: str) -> Note:
    return Note(
        f"Experiment '{experiment}' not run yet — run `SWEEP=experiments/{experiment}.toml make sweep`.", kind="missing"
    )
