"""The last section: what the report was made from and how to make it again: experiments and runs,
sweep timings with the machine and its load, package versions, the environment, the commands."""

from __future__ import annotations

import pandas as pd

from optlab.reports.load import Store
from optlab.reports.model import Note, Section, Table

TITLE = "Reproducibility"
SWEEPS = (
    "convergence",
    "batch_size",
    "memorization",
    "second_order",
    "zeroth_order",
    "dynamics",
    "diagnostics",
    "lessons",
    "smoke",
)


def build(store: Store, argv: list[str] | None = None, number: int = 9) -> Section:
    from optlab.tracking import provenance

    section = Section(
        number,
        TITLE,
        "Every number above comes from runs in the MLflow store named below; each run "
        "records its resolved config, workload, data fingerprint and split, git commit and package "
        "versions. Sweep timings are wall-clock times on the machine named, with its load average "
        "(1, 5, 15 minutes) at the start and end of the sweep: timings from a loaded machine are "
        "not comparable to an idle one's.",
    )
    rows, version_rows, timing_rows = [], [], []
    names = sorted(store.experiments())
    for name in names:
        runs = store.runs(name, include_tuning=True)
        if runs is None:
            continue
        seeds = sorted({int(s) for s in runs["seed"].dropna()})
        commits = sorted({c[:12] for c in runs["git_commit"] if c})
        rows.append(
            {
                "experiment": name,
                "runs": len(runs),
                "finished": int((runs["status"] == "FINISHED").sum()),
                "failed": int((runs["status"] == "FAILED").sum()),
                "tuning trials": int((runs["role"] == "tuning").sum()),
                "reported": int((runs["role"] != "tuning").sum()),
                "workloads": runs["workload"].nunique(),
                "splits (train/val/test)": ", ".join(sorted(set(runs["split"]) - {""})) or "-",
                "strategies": ", ".join(sorted(set(runs["strategy"]) - {""})),
                "seeds": ", ".join(map(str, seeds)) or "-",
                "git commits": ", ".join(commits) or "unknown",
            }
        )
        version_cols = [c for c in runs.columns if c.startswith("version.")]
        if version_cols:
            for record in runs[version_cols].drop_duplicates().to_dict("records"):
                version_rows.append({"experiment": name, **{k[len("version.") :]: v for k, v in record.items()}})
        sweeps = store.sweeps(name)
        if len(sweeps):
            last = sweeps.iloc[-1]
            phases = ", ".join(
                f"{k.split('_')[0]} {last[k]} s"
                for k in ("tuning_seconds", "reruns_seconds", "points_seconds")
                if last[k]
            )
            timing_rows.append(
                {
                    "sweep": name,
                    "started (UTC)": str(last["started"])[:16],
                    "status": last["status"],
                    "seconds": last["seconds"] or "-",
                    "phases": phases or "-",
                    "workers": last["workers"] or "-",
                    "machine": last["machine"] or "-",
                    "load at start": last["load_start"] or "-",
                    "load at end": last["load_end"] or "-",
                }
            )
    if rows:
        section.add(Table(pd.DataFrame(rows), f"Experiments in the store {store.uri} (sweep parents excluded)."))
    else:
        section.add(Note("The store holds no runs yet: run `make sweep` (or `optlab run`) first.", kind="missing"))
    if timing_rows:
        section.add(
            Table(
                pd.DataFrame(timing_rows),
                "The last invocation of each sweep: wall-clock seconds (tuning "
                "trials batched, reruns alone or stacked as the sweep file's `timed_alone` says), machine and load "
                "average.",
            )
        )
    if version_rows:
        section.add(
            Table(
                pd.DataFrame(version_rows).fillna("-"),
                "Package versions recorded by the runs (one row per distinct combination).",
            )
        )
    here = {
        "git commit": provenance.git_commit(),
        "machine": provenance.machine(),
        "load average now": provenance.load_average(),
        **provenance.versions(),
    }
    section.add(
        Table(
            pd.DataFrame({"item": list(here), "value": list(here.values())}), "The environment that built this report."
        )
    )
    commands = [
        ("the default sweeps", "make sweep"),
        ("the other sweeps", "make sweep-more"),
        *[(f"sweep {n}", f"SWEEP=experiments/{n}.toml make sweep") for n in SWEEPS],
        ("this report", "make report  # = optlab report --out reports/out"),
        ("results tables of the docs", "make results  # = optlab report --markdown --into docs/results/index.md"),
        ("browse the runs", "make ui"),
    ]
    if argv:
        commands.append(("this report, as invoked", "optlab " + " ".join(argv)))
    section.add(
        Table(pd.DataFrame(commands, columns=["what", "command"]), "Commands that reproduce the runs and this report.")
    )
    return section
