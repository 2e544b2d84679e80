"""How full each printed page is, from WeasyPrint's layout: the share of the page's content height down to
its lowest line of text or image (page header and footer, in the page margins, not counted), and the
section the page belongs to (the `id` of the report section that page shows: s1, s2, ..., glossary)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

NEAR_EMPTY = 0.25  # a page filled less than this is near-empty
SECTION_ID = re.compile(r"s\d+|glossary|appendix")


@dataclass(frozen=True)
class Page:
    number: int
    section: str
    fill: float
    last_of_section: bool


def pages(html: str) -> list[Page]:
    import weasyprint
    from weasyprint.formatting_structure import boxes

    logging.getLogger("weasyprint").setLevel(logging.ERROR)

    def bottoms(box):
        if isinstance(box, boxes.MarginBox):  # running header and footer
            return
        if isinstance(box, (boxes.TextBox, boxes.ReplacedBox)):
            yield box.position_y + box.margin_height()
        for child in getattr(box, "children", []):
            yield from bottoms(child)

    found = []
    # WeasyPrint has no public API for the laid-out boxes: its page box is the one place they are
    for page in weasyprint.HTML(string=html).render().pages:
        box = page._page_box
        top = box.content_box_y()
        sections = [a for a in page.anchors if SECTION_ID.fullmatch(a)]
        found.append((sections[0] if sections else "front", (max(bottoms(box), default=top) - top) / box.height))
    return [
        Page(k + 1, section, fill, k + 1 == len(found) or found[k + 1][0] != section)
        for k, (section, fill) in enumerate(found)
    ]


def near_empty(printed: list[Page]) -> list[Page]:
    return [p for p in printed if p.fill < NEAR_EMPTY]
