"""What an MLflow SQLite database holds of one run, without its ids and clock times: the rows tests compare
between two writers of the same run."""

from __future__ import annotations

import sqlite3
from pathlib import Path

RUN_COLUMNS = (
    "name, source_type, source_name, entry_point_name, user_id, status, start_time > 0, end_time >= start_time, "
    "deleted_time, source_version, lifecycle_stage, artifact_uri, experiment_id"
)
TABLES = (
    ("tags", "key, value"),
    ("params", "key, value"),
    ("metrics", "key, value, step, is_nan"),
    ("latest_metrics", "key, value, step, is_nan"),
)


def run_rows(database: Path, run_id: str) -> dict:
    """{"run": its runs row, and each of TABLES: its rows sorted}, the run id replaced by <id>."""
    with sqlite3.connect(database) as db:
        run = db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        out: dict = {"run": tuple(str(v).replace(run_id, "<id>") for v in run)}
        for table, columns in TABLES:
            out[table] = sorted(db.execute(f"SELECT {columns} FROM {table} WHERE run_uuid = ?", (run_id,)).fetchall())
    return out
