"""A figure as data: a tidy frame plus encodings, drawn the same way interactive (HTML, Plotly) and
static (PDF, matplotlib) by chart_plotly.py and chart_static.py.

One row of `data` is one point of one line. Encodings name columns:

- `x`, `y`; optional `low` / `high`: a band around the line (e.g. a confidence interval);
- `color`: the strategy name, mapped to its fixed colour (palette.py) in every figure (or, for a figure
  whose lines are not strategies, e.g. label-noise levels, any column with an explicit `colors` map);
- `dash`: the family, mapped to its line style;
- `label`: the legend entry (default: the colour column); one legend entry per label across panels,
  so hiding "adam" hides it everywhere; lines of one label in one panel are one line;
- `row`, `col`: facets (small multiples), each panel with its own axes unless `share_x` / `share_y`.

A panel never holds more than `max_lines` lines: a column of panels that would is split into several
columns, the lines dealt out in palette order (so a figure stays readable whatever a sweep holds).
Lines of one strategy that share a panel (two learning rates of adam) get distinct markers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optlab import palette
from optlab.reports.natural import natural_key

MAX_LINES = 8
MARKERS = ("", "circle", "square", "triangle-up", "diamond", "x", "star", "triangle-down")


@dataclass
class Matrix:
    """A matrix figure (who beats whom): cell values on a diverging colour scale centred on 0 and clipped at
    ±`limit`, with a text annotation per cell; hover shows both in HTML."""

    values: pd.DataFrame  # rows x columns, NaN where there is no cell
    text: pd.DataFrame  # the same shape: what each cell says
    caption: str
    limit: float
    x_title: str = ""
    y_title: str = ""
    colorbar: str = ""


@dataclass
class Chart:
    data: pd.DataFrame
    x: str
    y: str
    caption: str
    color: str = "strategy"
    colors: dict | None = None  # colour-column value -> colour, for lines that are not strategies
    label: str | None = None
    dash: str | None = "family"
    dashes: dict | None = None  # dash-column value -> plotly dash name, instead of the family's style
    low: str | None = None
    high: str | None = None
    row: str | None = None
    col: str | None = None
    row_order: list | None = None
    col_order: list | None = None
    x_title: str | dict = ""  # a dict maps a col (or row) value to its axis title
    y_title: str | dict = ""
    log_x: bool | dict = False  # a dict maps a col (or row) value to True/False
    log_y: bool | dict = False
    col_titles: bool = True  # False: columns are told apart by their x-axis titles alone
    share_x: bool = False
    share_y: bool = False
    mode: str = "lines"  # lines | lines+markers | markers
    step: bool = False  # draw as a staircase (a performance profile)
    title: str = ""
    hover: list[str] = field(default_factory=list)  # extra columns shown on hover
    spans: list[dict] = field(default_factory=list)  # shaded x intervals: {col, low, high, label, color}
    max_lines: int = MAX_LINES

    def __post_init__(self):
        columns = [
            self.x,
            self.y,
            self.color,
            self.label,
            self.dash,
            self.low,
            self.high,
            self.row,
            self.col,
            *self.hover,
        ]
        missing = [c for c in columns if c is not None and c not in self.data.columns]
        if missing:
            raise ValueError(f"chart data has no column(s) {missing}; it has {list(self.data.columns)}")
        if self.label is None:
            self.label = self.color
        self.data = self._split_crowded_columns(self.data.reset_index(drop=True))

    # ---- layout --------------------------------------------------------------------------------
    @property
    def rows(self) -> list:
        return self._order(self.row, self.row_order)

    @property
    def cols(self) -> list:
        return self._order(self.col, self.col_order)

    def _order(self, column, given) -> list:
        if column is None:
            return [None]
        present = list(dict.fromkeys(self.data[column]))
        if not given:
            return present
        # a column split by _split_crowded_columns ("x (1/2)", "x (2/2)") takes the place of "x"
        ordered = [v for g in given for v in present if v == g or _stem(v) == g]
        return ordered + [v for v in present if v not in ordered]

    def panel_spans(self, col) -> list[dict]:
        """The shaded x intervals of a column's panels (a span without `col` shades every panel)."""
        return [sp for sp in self.spans if sp.get("col") in (None, col) or sp.get("col") == _stem(col)]

    def panel(self, row, col) -> pd.DataFrame:
        mask = pd.Series(True, index=self.data.index)
        if self.row is not None:
            mask &= self.data[self.row] == row
        if self.col is not None:
            mask &= self.data[self.col] == col
        return self.data[mask]

    def panel_value(self, setting, row, col, default=""):
        """A per-panel setting (axis title, log scale): one value, or a dict keyed by col value (a split
        column "x (1/2)" reads the entry of "x") or else by row value."""
        if not isinstance(setting, dict):
            return setting
        for key in (col, _stem(col), row):
            if key is not None and key in setting:
                return setting[key]
        return default

    def panel_title(self, row, col) -> str:
        """A column's name above its top panel (rows are named by their y-axis title)."""
        if not self.col_titles or col is None or str(col) == "" or (self.row is not None and row != self.rows[0]):
            return ""
        return str(col)

    def y_label(self, row, col) -> str:
        """The y-axis title: the given one, else the row's name, else the y column."""
        given = self.panel_value(self.y_title, row, col)
        return given or (str(row) if row is not None else self.y)

    def lines(self, frame: pd.DataFrame):
        """(label, its rows sorted by x) for each line of a panel, in legend order."""
        for label in self.legend_order(frame):
            rows = frame[frame[self.label] == label]
            yield label, rows.sort_values(self.x, kind="stable")

    def legend_order(self, frame: pd.DataFrame | None = None) -> list:
        frame = self.data if frame is None else frame
        firsts = frame.drop_duplicates(self.label)
        colour_order = list(self.colors) if self.colors else []
        keys = {
            r[self.label]: (
                palette.family_order(str(r[self.dash])) if self.dash else 0,
                (colour_order.index(r[self.color]), "")
                if r[self.color] in colour_order
                else palette.strategy_order(str(r[self.color])),
                natural_key(r[self.label]),
            )
            for _, r in firsts.iterrows()
        }
        return sorted(keys, key=lambda label: keys[label])

    # ---- the encodings of one legend entry ------------------------------------------------------
    def style(self, label) -> dict:
        """colour (hex), dash (plotly name), family, marker (plotly symbol or '') of a label."""
        first = self.data[self.data[self.label] == label].iloc[0]
        strategy = str(first[self.color])
        family = str(first[self.dash]) if self.dash else None
        same_colour = [
            other
            for other in self.legend_order()
            if str(self.data[self.data[self.label] == other].iloc[0][self.color]) == strategy
        ]
        marker = MARKERS[same_colour.index(label) % len(MARKERS)] if len(same_colour) > 1 else ""
        if self.mode != "lines" and not marker:
            marker = "circle"
        colour = self.colors.get(first[self.color], palette.color(strategy)) if self.colors else palette.color(strategy)
        dash = (
            (self.dashes.get(first[self.dash], "solid") if self.dashes else palette.dash(family))
            if self.dash
            else "solid"
        )
        return {"color": _hex(colour), "dash": dash, "family": family, "marker": marker}

    # ---- the at-most-max_lines rule ---------------------------------------------------------------
    def _split_crowded_columns(self, data: pd.DataFrame) -> pd.DataFrame:
        if data.empty:
            return data
        col = self.col or "_panel"
        if self.col is None:
            data = data.assign(_panel="")
        counts = data.groupby([c for c in (self.row, col) if c is not None])[self.label].nunique()
        crowded = {key[-1] if isinstance(key, tuple) else key for key, n in counts.items() if n > self.max_lines}
        if not crowded:
            return data.drop(columns="_panel") if self.col is None else data
        data = data.copy()
        data[col] = data[col].astype(object)
        for value in crowded:
            part = data[data[col] == value]
            order = self.legend_order(part)
            chunks = int(np.ceil(len(order) / self.max_lines))
            size = int(np.ceil(len(order) / chunks))
            for i, label in enumerate(order):
                name = f"{value} ({i // size + 1}/{chunks})" if str(value) else f"({i // size + 1}/{chunks})"
                data.loc[(data[col] == value) & (data[self.label] == label), col] = name
        if self.col is None:
            self.col = "_panel"
        return data

    def max_panel_lines(self) -> int:
        keys = [c for c in (self.row, self.col) if c is not None]
        if not keys:
            return int(self.data[self.label].nunique())
        return int(self.data.groupby(keys)[self.label].nunique().max()) if not self.data.empty else 0


def _stem(value):
    """ "x (1/2)" -> "x": the column a split panel came from."""
    if value is None:
        return None
    text = str(value)
    return text.rsplit(" (", 1)[0] if text.endswith(")") and " (" in text else text


def _hex(colour) -> str:
    """#RRGGBB from a hex string or an RGB(A) tuple of floats (seaborn/matplotlib palettes)."""
    if isinstance(colour, str):
        return colour
    r, g, b = (int(round(255 * float(c))) for c in tuple(colour)[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def log_ticks(low: float, high: float, max_labels: int = 6) -> list[float]:
    """Labelled ticks of a log axis from `low` to `high`: 1-2-5 in each decade (0.1, 0.2, 0.5, 1, ...), only
    the powers of ten (every one, or every second, ...) when that gives more than `max_labels`, and every
    digit when the axis spans too little for two 1-2-5 ticks. Shown as plain numbers (0.5, not 5e-1)."""
    if not (low > 0 and high > low and np.isfinite(low) and np.isfinite(high)):
        return []
    first, last = int(np.floor(np.log10(low))), int(np.ceil(np.log10(high)))

    def ticks(mantissas, every=1):
        return [
            float(f"{m * 10.0**d:.12g}")
            for d in range(first, last + 1)
            if d % every == 0
            for m in mantissas
            if low * (1 - 1e-9) <= m * 10.0**d <= high * (1 + 1e-9)
        ]

    for mantissas in ((1, 2, 5), (1,)):
        found = ticks(mantissas)
        if 2 <= len(found) <= max_labels:
            return found
    if len(ticks((1, 2, 5))) < 2:
        return ticks(range(1, 10))[:max_labels] if len(ticks(range(1, 10))) >= 2 else ticks((1, 2, 5))
    every = 2
    while len(ticks((1,), every)) > max_labels:
        every += 1
    return ticks((1,), every)
