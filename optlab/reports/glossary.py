"""The report's terms, declared once: rendered as the report's glossary section (each term's first use in
the report links to it) and as docs/glossary.md (`make glossary` writes it: `python -m
optlab.reports.glossary > docs/glossary.md`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Term:
    name: str
    definition: str
    uses: tuple[str, ...] = ()  # how the report writes it (the name itself is always one)

    @property
    def anchor(self) -> str:
        return "g-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.uses)


TERMS = (
    Term(
        "gradient-equivalents",
        "Work measured in full passes over the training set: per-sample gradient "
        "evaluations divided by the training-set size, with a Hessian-vector product counted as two gradients "
        "and a function value (for gradient-free methods) as one third of one. Strategies that use different "
        "kinds of work are compared on this axis.",
        ("gradient equivalents",),
    ),
    Term(
        "wall time (training only)",
        "Seconds spent training, without evaluations or recording. Runs trained "
        "together in one batched program share their time, so wall times are compared only between runs timed "
        "alone.",
        ("wall time", "trained alone"),
    ),
    Term(
        "rerun",
        "A reported run: the configuration a tuning group selected, trained again on seeds not used "
        "for tuning, so the reported numbers are not the ones the selection was made on.",
        ("reruns",),
    ),
    Term(
        "seed group",
        "The runs of one configuration that differ only in their seed, summarised by the mean "
        "over seeds and its 95 % interval.",
        ("seed groups",),
    ),
    Term(
        "BCa",
        "Bias-corrected and accelerated bootstrap: a 95 % confidence interval from resampling the "
        "seeds, corrected for the estimate's bias and skew (scipy.stats.bootstrap, method 'BCa').",
        ("BCa interval", "bootstrap interval"),
    ),
    Term(
        "censored",
        "A run that stopped (budget spent, failed) before reaching the target: its time to target "
        "is only known to be larger than the time it ran, and is counted as such rather than dropped.",
        ("censoring",),
    ),
    Term(
        "Kaplan-Meier",
        "The estimator of the distribution of time to target over seeds when some runs are "
        "censored; the report gives its median, with an interval that is open (∞) when too few runs reached "
        "the target to bound it.",
        ("Kaplan–Meier",),
    ),
    Term(
        "time to target",
        "The work (or wall time) a run needed to first reach the workload's validation "
        "accuracy target; steps to target counts optimizer steps instead.",
        ("steps to target",),
    ),
    Term(
        "Holm",
        "Holm's step-down correction for testing several comparisons at once: the p-values are "
        "sorted and each is compared with α divided by the number of hypotheses not yet rejected, so the "
        "chance of any false finding stays below α.",
        ("Holm-corrected", "Holm correction"),
    ),
    Term(
        "performance profile",
        "ρ(τ): for each strategy, the fraction of workloads on which its cost is "
        "within a factor τ of the fastest strategy's on that workload (Dolan and Moré; AlgoPerf). ρ(1) is "
        "the fraction it wins; a curve that rises sooner is better.",
        ("ρ(τ)", "performance profiles"),
    ),
    Term(
        "B_simple",
        "The simple noise scale tr(Σ) / |G|² (McCandlish et al. 2018): the gradient noise "
        "(trace of the per-sample gradient covariance) over the squared mean gradient. Batch sizes well "
        "below it make nearly perfect use of each extra sample; well above it, little.",
        ("noise scale",),
    ),
    Term(
        "not tuned",
        "A strategy the sweep ran with the settings written in its experiment file, without a tuning grid: "
        "one tuning trial, rerun on the fresh seeds like a selected configuration.",
    ),
)


def by_spelling() -> list[tuple[str, Term]]:
    """Every spelling with its term, longest first (so 'wall time (training only)' wins over 'wall time')."""
    return sorted(((s, t) for t in TERMS for s in t.spellings), key=lambda item: -len(item[0]))


def markdown() -> str:
    lines = [
        "# Glossary",
        "",
        "The terms the report uses, as it uses them (generated from "
        "`optlab/reports/glossary.py` by `make glossary`; do not edit by hand).",
        "",
    ]
    for term in sorted(TERMS, key=lambda t: t.name.lower().strip("(")):
        lines += [f"**{term.name}**", f": {term.definition}", ""]
    return "\n".join(lines)


class FirstUses:
    """Links the first use of each term in the report's text (in reading order) to its glossary entry."""

    def __init__(self):
        self.seen: set[str] = set()
        self.pattern = re.compile(
            "|".join(rf"(?<![\w-]){re.escape(str(escape(s)))}(?![\w-])" for s, _ in by_spelling())
        )
        self.terms = {str(escape(s)): t for s, t in by_spelling()}

    def link(self, html: Markup) -> Markup:
        """`html` (escaped text with simple tags) with its terms' first uses linked; tags are left alone."""
        parts = re.split(r"(<[^>]+>)", str(html))
        inside_link = False
        for k, part in enumerate(parts):
            if part.startswith("<"):
                inside_link = part.startswith("<a ") or (inside_link and not part.startswith("</a"))
                continue
            if not inside_link:
                parts[k] = self.pattern.sub(self._replace, part)
        return Markup("".join(parts))

    def _replace(self, match) -> str:
        term = self.terms[match.group(0)]
        if term.name in self.seen:
            return match.group(0)
        self.seen.add(term.name)
        return f'<a class="term" href="#{term.anchor}">{match.group(0)}</a>'


if __name__ == "__main__":
    print(markdown())
