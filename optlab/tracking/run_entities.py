"""MLflow's run entities built from a store's rows, as `SqlRun.to_mlflow_entity` builds them: used where runs are
read with plain queries instead of MLflow's `search_runs` (sqlite_search.py, runs_route.py)."""

from __future__ import annotations

from typing import NamedTuple

from optlab.tracking.sqlite_recorder import RUN_NAME_TAG


class Item(NamedTuple):
    """A tag or param as RunData reads it."""

    key: str
    value: str


def runs_from_rows(runs: list, rows: dict[str, dict[str, list]]) -> list:
    """`runs`: (run_uuid, name, experiment_id, user_id, status, start_time, end_time, lifecycle_stage,
    artifact_uri) in the order to return; `rows`: run_uuid -> {"tags": [Item], "params": [Item], "metrics":
    [Metric]}. MLflow's Run objects, as `MlflowClient.search_runs` returns them."""
    from mlflow.entities import Run, RunData, RunInfo, RunInputs, RunOutputs

    out = []
    for run_id, name, experiment, user, status, start, end, stage, artifact_uri in runs:
        data = rows[run_id]
        named = None if name else next((t.value for t in data["tags"] if t.key == RUN_NAME_TAG), None)
        info = RunInfo(
            run_id=run_id,
            run_name=name or named or name,
            experiment_id=str(experiment),
            user_id=user,
            status=status,
            start_time=start,
            end_time=end,
            lifecycle_stage=stage,
            artifact_uri=artifact_uri,
        )
        run_data = RunData(metrics=data["metrics"], params=data["params"], tags=data["tags"])
        out.append(Run(info, run_data, RunInputs(dataset_inputs=[]), RunOutputs([])))
    return out
