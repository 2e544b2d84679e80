"""MLflow store -> tidy pandas frames.

`Store.runs(name)` is one row per run (params cast to numbers where they are numbers, the tags the
report needs as plain columns); `Store.history(runs, keys)` is one row per (run, step) with one column
per metric. Sweep parents are always dropped. By default only *reported* runs are returned: the
fresh-seed reruns of each selected configuration (role `rerun`, still selected) and the points of
untuned sweeps or single runs; `include_tuning` adds the tuning trials (for sensitivity plots).

Every run gets a `workload` (the `optlab.workload` tag, or, for a run recorded outside a sweep, a
name built from its problem, budget and target: RunConfig's workload keys) and a `timing` ("alone" or
"batched:K").
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from optlab.config import RunConfig
from optlab.sweeps.spec import MARGINS_TAG, WORKLOAD_ORDER_TAG
from optlab.tracking.run_facts import flatten_config

EVAL_KEYS = (
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "samples_seen",
    "evaluations",
    "gradient_evaluations",
    "gradient_equivalents",
    "wall_time",
    "epoch",
)
# the numeric config fields and what the engine records about the plan
NUMERIC_PARAMS = (*RunConfig.numeric_fields(), "n_params", "steps_per_epoch", "planned_steps")
TAGS = {
    "strategy": "optlab.strategy",
    "family": "optlab.family",
    "dataset_tag": "optlab.dataset",
    "status_tag": "optlab.status",
    "failure_reason": "optlab.failure_reason",
    "role": "optlab.role",
    "sweep": "optlab.sweep",
    "group": "optlab.group",
    "selected": "optlab.selected",
    "series": "optlab.series",
    "config_hash": "optlab.config_hash",
    "git_commit": "optlab.git_commit",
    "point_hash": "optlab.point_hash",
    "workload": "optlab.workload",
    "workload_hash": "optlab.workload_hash",
    "trial": "optlab.trial",
    "trials": "optlab.trials",
    "timing_tag": "optlab.timing",
    "batched_tag": "optlab.batched",
    "split": "optlab.split",
    "margins": MARGINS_TAG,
    "workload_order": WORKLOAD_ORDER_TAG,
}
# what names a workload when a run carries no optlab.workload tag (a run recorded outside a sweep)
# params whose column name a tag already holds: the `workload` param (a user workload's file:NAME) is
# `workload_ref`, as `workload` is the sweep's workload name (optlab.workload)
PARAM_COLUMNS = {"workload": "workload_ref"}
WORKLOAD_PARAMS = tuple(PARAM_COLUMNS.get(k, k) for k in RunConfig.workload_keys())
LAYER_LISTS = tuple(k for k, v in RunConfig.defaults().items() if isinstance(v, list))


def quiet_warnings() -> None:
    """seaborn 0.13 under pandas 3 warns on every call (Pandas4Warning, a DeprecationWarning)."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning, module="seaborn")  # cmap.set_bad in heatmap
    try:
        from pandas.errors import Pandas4Warning

        warnings.filterwarnings("ignore", category=Pandas4Warning)
    except ImportError:
        pass


def to_number(series: pd.Series) -> pd.Series:
    """mlflow.search_runs returns params as strings: cast to numbers, blanks and 'full' to NaN."""
    return pd.to_numeric(series.replace({"": np.nan, "None": np.nan, "full": np.nan}), errors="coerce")


class Store:
    def __init__(self, tracking_uri: str | None = None, progress: bool = True):
        from optlab.tracking.store import client
        from optlab.tracking.store import tracking_uri as default_uri

        self.progress = progress  # progress bars while long metric histories load
        self.uri = tracking_uri or default_uri()
        self.client = client(self.uri)
        self._runs: dict[tuple, pd.DataFrame | None] = {}
        self._history: dict[tuple[str, str], pd.DataFrame] = {}

    def experiments(self) -> dict[str, str]:
        """Experiment name -> id, without the locks of sweeps that are running (sweeps.lease)."""
        from optlab.sweeps.lease import PREFIX

        return {e.name: e.experiment_id for e in self.client.search_experiments() if not e.name.startswith(PREFIX)}

    def runs(self, name: str, include_tuning: bool = False, finished_only: bool = False) -> pd.DataFrame | None:
        """Runs of experiment `name` (None when the experiment does not exist or holds no runs)."""
        key = (name, include_tuning, finished_only)
        if key not in self._runs:
            self._runs[key] = self._load_runs(name, include_tuning, finished_only)
        return self._runs[key]

    def _load_runs(self, name, include_tuning, finished_only):
        import mlflow

        experiment_id = self.experiments().get(name)
        if experiment_id is None:
            return None
        raw = mlflow.search_runs(experiment_ids=[experiment_id], output_format="pandas")
        if raw is None or raw.empty:
            return None
        df = pd.DataFrame(
            {"run_id": raw["run_id"], "status": raw["status"], "experiment": name, "start_time": raw.get("start_time")}
        )
        df["run_name"] = raw.get("tags.mlflow.runName", pd.Series("", index=raw.index))
        for column, tag in TAGS.items():
            df[column] = raw.get(f"tags.{tag}", pd.Series(np.nan, index=raw.index)).fillna("").astype(str)
        for column in [c for c in raw.columns if c.startswith("params.")]:
            name_ = column[len("params.") :]
            name_ = PARAM_COLUMNS.get(name_, name_)
            df[name_] = to_number(raw[column]) if name_ in NUMERIC_PARAMS else raw[column].fillna("").astype(str)
        # a strategy by file reference is shown as its tag has it (file.py:Class); the param holds the full path
        tagged = raw.get("tags.optlab.strategy", pd.Series("", index=raw.index)).fillna("").astype(str)
        df["strategy"] = tagged.where(tagged != "", df["strategy"])
        for column in [c for c in raw.columns if c.startswith("metrics.")]:
            df["final_" + column[len("metrics.") :]] = pd.to_numeric(raw[column], errors="coerce")
        for column in [c for c in raw.columns if c.startswith("tags.version.")]:
            df[column[len("tags.") :]] = raw[column].fillna("").astype(str)
        for needed in RunConfig.field_names():  # a store's runs may predate a setting
            if needed not in df and needed != "options":
                df[needed] = np.nan
        df["dataset"] = df["dataset"].where(df["dataset"].astype(str) != "nan", df["dataset_tag"])
        df = df[~df["role"].isin(["parent", "group"])]  # sweep parents and seed-group aggregates are not runs
        df["workload"] = [w or implicit_workload(row) for w, row in zip(df["workload"], df.to_dict("records"))]
        df["workload"] = split_collisions(df)
        df["timing"] = [timing(row) for row in df.to_dict("records")]
        df["trials"] = pd.to_numeric(df["trials"].replace("", np.nan), errors="coerce")
        reported = (df["role"] != "tuning") & ((df["role"] != "rerun") | (df["selected"].str.lower() != "false"))
        if not include_tuning:
            df = df[reported]
        if finished_only:
            df = df[df["status"] == "FINISHED"]
        df = df.reset_index(drop=True)
        return df if not df.empty else None

    def sweeps(self, name: str) -> pd.DataFrame:
        """The sweep parent runs of experiment `name`: when, how long (total and per phase), on which
        machine and under what load average (the `optlab.summary.*` tags the sweep wrote)."""
        from optlab.sweeps.resume import search_all

        experiment_id = self.experiments().get(name)
        columns = [
            "experiment",
            "started",
            "status",
            "seconds",
            "tuning_seconds",
            "reruns_seconds",
            "points_seconds",
            "workers",
            "machine",
            "load_start",
            "load_end",
            "points",
            "finished",
            "failed",
        ]
        if experiment_id is None:
            return pd.DataFrame(columns=columns)
        rows = []
        for run in search_all(self.client, experiment_id, "tags.`optlab.role` = 'parent'"):
            tags = run.data.tags
            started = pd.Timestamp(run.info.start_time, unit="ms", tz="UTC") if run.info.start_time else pd.NaT
            row = {"experiment": name, "started": started, "status": run.info.status}
            for key in columns[3:]:
                row[key] = tags.get(f"optlab.summary.{key}", "")
            rows.append(row)
        return pd.DataFrame(rows, columns=columns).sort_values("started")

    def metric(self, run_id: str, key: str) -> pd.DataFrame:
        """One metric's history of one run: columns step, value (cached)."""
        cache_key = (run_id, key)
        if cache_key not in self._history:
            points = self.client.get_metric_history(run_id, key)
            self._history[cache_key] = pd.DataFrame(
                {"step": [p.step for p in points], "value": [p.value for p in points]}
            )
        return self._history[cache_key]

    def _read_ahead(self, run_ids: list[str], keys) -> None:
        """Load the histories not yet cached in bulk (one query per metric and chunk of runs on a SQL store,
        one request per metric and 100 runs on a server) instead of one call per run and metric; they hold
        the points `metric` reads one by one, the last value logged at a step winning."""
        from optlab.tracking.bulk_reads import metric_histories

        missing = [run_id for run_id in run_ids if any((run_id, key) not in self._history for key in keys)]
        if not missing:
            return
        found = metric_histories(self.client, missing, list(keys))
        for run_id in missing:
            for key in keys:
                if (run_id, key) not in self._history:
                    points = found.get((run_id, key), {})
                    self._history[(run_id, key)] = pd.DataFrame({"step": list(points), "value": list(points.values())})

    def history(self, runs: pd.DataFrame, keys=EVAL_KEYS, label: str | None = None) -> pd.DataFrame:
        """Tidy history: one row per (run, step), one column per metric, plus the runs' columns
        `strategy, family, seed, series, experiment` for grouping."""
        frames = []
        self._read_ahead(list(runs["run_id"]), keys)
        iterator = runs["run_id"]
        if label:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc=label, unit="run", leave=False, disable=not self.progress or len(runs) < 20)
        for run_id in iterator:
            parts = []
            for key in keys:
                m = self.metric(run_id, key)
                if not m.empty:
                    # a metric logged twice at one step (final re-evaluation) keeps the last value
                    parts.append(m.drop_duplicates("step", keep="last").set_index("step")["value"].rename(key))
            if parts:
                wide = pd.concat(parts, axis=1).sort_index().reset_index().rename(columns={"index": "step"})
                wide.insert(0, "run_id", run_id)
                frames.append(wide)
        if not frames:
            return pd.DataFrame(columns=["run_id", "step", *keys])
        hist = pd.concat(frames, ignore_index=True)
        carry = [
            c
            for c in ("run_id", "experiment", "workload", "strategy", "family", "seed", "series", "label", "timing")
            if c in runs.columns
        ]
        return hist.merge(runs[carry], on="run_id", how="left")


def split_collisions(df: pd.DataFrame) -> pd.Series:
    """A workload name whose runs carry different workload hashes (e.g. an experiment file edited between
    two sweeps: another budget under the same name) is split into one workload per hash, never pooled."""
    names = df["workload"].copy()
    hashes = df["workload_hash"].replace("", np.nan)
    for name, group in df.groupby("workload"):
        distinct = hashes[group.index].dropna().unique()
        if len(distinct) > 1:
            names[group.index] = [f"{name} [{h}]" if isinstance(h, str) else name for h in hashes[group.index]]
    return names


def implicit_workload(row: dict) -> str:
    """A workload name from a run's params: the experiment, the dataset, and every other workload setting
    (problem, budget, target) the run set to other than its default, so two runs share a name only when
    they share every workload setting. A setting the run did not record (older runs) is left out."""
    defaults = {PARAM_COLUMNS.get(k, k): _param_text(v) for k, v in flatten_config(RunConfig()).items()}
    parts = []
    for key in WORKLOAD_PARAMS:  # column names (a user workload's reference is `workload_ref`)
        value = _param_text(row.get(key))
        if key in LAYER_LISTS and isinstance(row.get(key), str) and not row[key]:
            value = "none"  # an empty list of layers is recorded as ''
        if value and (key == "dataset" or value != defaults[key]):
            parts.append(f"{key}={value}")
    return f"{row.get('experiment', '')} ({' '.join(parts)})"


def _param_text(value) -> str:
    """A param as text, numbers in %g (params are read back as strings or as numbers); '' when unset."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or str(value) in ("", "None", "nan"):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:g}"
    try:
        return f"{float(value):g}" if str(value).strip().lower() not in ("true", "false") else str(value)
    except ValueError:
        return str(value)


def timing(row: dict) -> str:
    """How a run's wall time was measured: 'alone' or 'batched:K' (K runs trained as one program).
    The engine's `optlab.timing` tag says so; older runs only carry `optlab.batched=K`."""
    tag = row.get("timing_tag") or ""
    if tag:
        return tag
    batched = row.get("batched_tag") or ""
    return f"batched:{batched}" if batched and batched != "1" else "alone"


def series_labels(
    runs: pd.DataFrame,
    within: str = "strategy",
    candidates=("lr", "batch_size", "momentum", "hidden", "activation", "cost"),
) -> pd.Series:
    """A readable label per run: the strategy, plus whichever settings vary among its runs
    (seeds excluded, so seeds of one configuration share a label and form one band)."""
    labels = pd.Series("", index=runs.index, dtype=object)
    for value, group in runs.groupby(within, sort=False):
        varying = [c for c in candidates if c in group and group[c].astype(str).nunique() > 1]
        for idx, row in group.iterrows():
            extra = " ".join(f"{'B' if c == 'batch_size' else c}={_fmt(row[c])}" for c in varying)
            labels[idx] = f"{value} {extra}".strip()
    return labels


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:g}" if not np.isnan(value) else "-"
    return str(value)


def seeds_text(runs: pd.DataFrame) -> str:
    seeds = sorted({int(s) for s in runs["seed"].dropna()}) if "seed" in runs else []
    return "seeds " + (", ".join(map(str, seeds)) if seeds else "unknown")


def runs_text(runs: pd.DataFrame, experiment: str | None = None) -> str:
    names = experiment or ", ".join(sorted(runs["experiment"].unique()))
    return f"experiment {names}; {len(runs)} runs; {seeds_text(runs)}"


def latest_attempts(runs: pd.DataFrame) -> pd.DataFrame:
    """One run per sweep point: a resumed sweep reruns failed points and keeps the failed attempts in the
    store; the latest attempt (by start time) is the point's result. Runs without a point hash stay."""
    if "point_hash" not in runs or "start_time" not in runs:
        return runs
    keyed = runs[runs["point_hash"] != ""].sort_values("start_time")
    latest = keyed.drop_duplicates("point_hash", keep="last")
    return pd.concat([latest, runs[runs["point_hash"] == ""]]).sort_index().reset_index(drop=True)
