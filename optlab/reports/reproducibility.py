"""The last section: what the report was made from and how to make it again."""

from __future__ import annotations

import pandas as pd

from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table

TITLE = "Reproducibility"
SWEEPS = ("convergence", "batch_size", "memorization", "second_order", "zeroth_order", "dynamics", "diagnostics",
          "lessons", "smoke")


def build(store: Store, argv: list[str] | None = None, number: int = 9) -> Section:
    from optlab.tracking import provenance

    section = Section(number, TITLE, "Every number above comes from runs in the MLflow store named below; each run "
                      "records its resolved config, data fingerprint, git commit and package versions.")
    rows, version_rows = [], []
    names = sorted(store.experiments())
    for name in names:
        runs = store.runs(name, include_tuning=True)
        if runs is None:
            continue
        seeds = sorted({int(s) for s in runs["seed"].dropna()})
        commits = sorted({c[:12] for c in runs["git_commit"] if c})
        rows.append({"experiment": name, "runs": len(runs),
                     "finished": int((runs["status"] == "FINISHED").sum()),
                     "failed": int((runs["status"] == "FAILED").sum()),
                     "tuning trials": int((runs["role"] == "tuning").sum()),
                     "strategies": ", ".join(sorted(set(runs["strategy"]) - {""})),
                     "seeds": ", ".join(map(str, seeds)) or "-",
                     "datasets": ", ".join(sorted(set(runs["dataset"].astype(str)) - {"", "nan"})),
                     "git commits": ", ".join(commits) or "unknown"})
        version_cols = [c for c in runs.columns if c.startswith("version.")]
        if version_cols:
            versions = runs[version_cols].drop_duplicates()
            for record in versions.to_dict("records"):
                version_rows.append({"experiment": name, **{k[len("version."):]: v for k, v in record.items()}})
    if rows:
        section.add(Table(pd.DataFrame(rows), f"Experiments in the store {store.uri} (sweep parents excluded)."))
    else:
        section.add(Note("The store holds no runs yet: run `make sweep` (or `optlab run`) first.", kind="missing"))
    if version_rows:
        section.add(Table(pd.DataFrame(version_rows).fillna("-"),
                          "Package versions recorded by the runs (one row per distinct combination)."))
    here = {"git commit": provenance.git_commit(), **provenance.versions()}
    section.add(Table(pd.DataFrame({"item": list(here), "value": list(here.values())}),
                      "The environment that built this report."))
    commands = [("the default sweeps", "make sweep"), ("the other sweeps", "make sweep-more"), *[(f"sweep {n}", f"SWEEP=experiments/{n}.toml make sweep") for n in SWEEPS],
                ("this report", "make report  # = optlab report --out reports/out"),
                ("browse the runs", "make ui")]
    if argv:
        commands.append(("this report, as invoked", "optlab " + " ".join(argv)))
    section.add(Table(pd.DataFrame(commands, columns=["what", "command"]), "Commands that reproduce the runs and "
                      "this report."))
    return section
