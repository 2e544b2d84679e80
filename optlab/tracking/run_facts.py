"""What every optlab run records besides its metrics (tags, params, its weights file), and how its end
status is decided: computed without MLflow, shared by the MLflow recorder and the direct SQLite one."""

from __future__ import annotations

from optlab import references
from optlab.tracking import provenance, ui
from optlab.tracking.failures import describe
from optlab.tracking.owners import OWNER_TAG, WORKER_TAG, owner_alive, owner_id

WEIGHTS = "params.safetensors"  # the final flat parameter vector, an artifact of every run
CONFIG = "config.json"  # the run's configuration, an artifact of every run
PARENT_TAG = "mlflow.parentRunId"
STORAGE_REASON = "storage: "  # how the reason of a run the store could not hold begins


def run_tags(config, problem, parent_run_id: str | None = None, extra_tags: dict | None = None) -> dict[str, str]:
    extra = dict(extra_tags or {})
    tags = {
        "optlab.strategy": references.display(config.strategy),
        **references.provenance_tags(config.strategy),
        "optlab.family": extra.pop("optlab.family", ""),
        "optlab.dataset": config.dataset,
        "optlab.config_hash": config.config_hash(),
        "optlab.workload_hash": config.workload_hash(),  # a single run's too: reports group by it
        "mlflow.source.git.commit": provenance.git_commit(),
        "optlab.git_commit": provenance.git_commit(),
        **{f"version.{k}": v for k, v in provenance.versions().items()},
        **ui.run_tags(references.display(config.strategy)),
    }
    dataset = getattr(problem, "dataset", None)
    if dataset is not None:
        tags["optlab.data_fingerprint"] = dataset.fingerprint()
        tags["optlab.split"] = dataset.split  # train/validation/test
    if config.workload is not None:  # a user's workload: its name, reference and file hash
        tags["optlab.dataset"] = getattr(problem, "name", config.dataset)
        tags.update(getattr(problem, "record_tags", None) or {})
    if parent_run_id:
        tags[PARENT_TAG] = parent_run_id
    tags[OWNER_TAG] = tags[WORKER_TAG] = owner_id()  # a sweep's tags name its parent process instead
    tags.update(extra)
    return {k: str(v) for k, v in tags.items()}


def run_files(config, problem=None) -> dict[str, bytes]:
    """Files stored with the run besides its config and weights, so a result can be traced to the exact code:
    a copy of the optimizer's own file when the strategy is a file reference (optlab.references), and the
    problem's source artifacts (a user workload's file)."""
    files = dict(references.source_files(config.strategy))
    files.update(getattr(problem, "artifacts", None) or {})
    return files


def run_params(config, problem, plan) -> dict[str, str]:
    params = {
        **flatten_config(config),
        "n_params": problem.n_params,
        "resolved_batch_size": plan.batch_size if plan.batch_size is not None else "full",
        "steps_per_epoch": round(plan.steps_per_epoch, 6),
        "planned_steps": plan.max_steps,
    }
    return {k: str(v) for k, v in params.items()}


def flatten_config(config) -> dict[str, str]:
    flat = {}
    for key, value in config.to_dict().items():
        if key == "options":
            for opt_key, opt_value in value.items():
                flat[f"option.{opt_key}"] = opt_value
        elif isinstance(value, list):
            flat[key] = ",".join(map(str, value))
        else:
            flat[key] = "" if value is None else value
    return flat


def abandoned(tags: dict[str, str]) -> bool:
    """A RUNNING single run whose process, on this host, is gone (a sweep's runs are the sweep's to close)."""
    owner = tags.get(OWNER_TAG, "")
    host = owner_id().rpartition(":")[0]
    return not (
        "optlab.sweep" in tags
        or PARENT_TAG in tags
        or owner.rpartition(":")[0] != host
        or owner_alive(owner)
        or owner == owner_id()
    )


def abandoned_reason(tags: dict[str, str]) -> str:
    return f"interrupted: its process ({tags.get(OWNER_TAG, '')}) died"


def storage_problems(status: str, params, flush, store_weights, read_back, discard_weights) -> list[str]:
    """What a run's end could not store: the last metric points (`flush()`), the weights of a FINISHED run
    (`store_weights(params)`), and for a FINISHED run what reading it back (`read_back(with_weights)`) finds
    missing. Each a `what: why` line; empty when everything is stored. Only a FINISHED run keeps weights:
    a FAILED or KILLED run's parameters are neither a result nor something a run resumes from, so none are
    written, and weights stored for a run that then cannot be FINISHED are removed again
    (`discard_weights()`). Its metric points are kept (docs/guide/runs.md): the curve up to a divergence,
    an error or an interruption is the evidence of what happened."""
    problems = []
    try:
        flush()
    except Exception as exc:
        problems.append(f"metrics: {describe(exc)}")
    stored = False
    if params is not None and status == "FINISHED":
        try:
            store_weights(params)
            stored = True
        except Exception as exc:
            problems.append(f"weights: {describe(exc)}")
    if status == "FINISHED" and not problems:
        problems += read_back(params is not None)
    if problems and stored:
        problems += discarded(discard_weights)
    return problems


def discarded(discard_weights) -> list[str]:
    """Remove a run's stored weights; the problem, if they could not be removed."""
    try:
        discard_weights()
        return []
    except Exception as exc:
        return [f"weights: stored, and could not be removed again: {describe(exc)}"]


def end_status(status: str, reason: str | None, problems: list[str]) -> tuple[str, str | None]:
    """The status a run is recorded with: FINISHED only when nothing failed to be stored."""
    if not problems:
        return status, reason
    storage = STORAGE_REASON + "; ".join(problems)
    if status == "FINISHED":
        return "FAILED", storage
    return status, f"{reason}; {storage}" if reason else storage


def end_tags(status: str, reason: str | None, summary: dict) -> dict[str, str]:
    tags = {"optlab.status": status}
    if reason:
        tags["optlab.failure_reason"] = reason[:5000]
    tags.update({f"optlab.summary.{k}": str(v) for k, v in summary.items() if v is not None})
    return tags


def save_weights(params, path) -> None:
    """The final flat parameter vector as safetensors: a torch tensor, or a numpy array (the background
    store's process has no torch)."""
    if hasattr(params, "detach"):
        from safetensors.torch import save_file as save_tensors

        tensor = params.detach().cpu().contiguous()
        save_tensors({"params": tensor}, str(path), metadata=_weights_metadata(tensor.numel()))
    else:
        from safetensors.numpy import save_file as save_arrays

        save_arrays({"params": params}, str(path), metadata=_weights_metadata(params.size))


def _weights_metadata(count: int) -> dict[str, str]:
    return {"format": "optlab flat parameter vector", "n_params": str(count)}
