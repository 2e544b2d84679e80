"""What a section produces: figures with captions, tables and notes, rendered alike to HTML and PDF."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Figure:
    figure: object            # a matplotlib Figure
    caption: str


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str


@dataclass
class Note:
    text: str
    kind: str = "info"        # info | missing | warning | heading (a sub-heading, e.g. one per workload)


def heading(text: str) -> Note:
    return Note(text, kind="heading")


@dataclass
class Section:
    number: int
    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)

    def add(self, block) -> "Section":
        self.blocks.append(block)
        return self

    @property
    def missing(self) -> bool:
        return any(isinstance(b, Note) and b.kind == "missing" for b in self.blocks)


def not_run(experiment: str) -> Note:
    return Note(f"Experiment '{experiment}' not run yet — run `SWEEP=experiments/{experiment}.toml make sweep`.",
                kind="missing")
