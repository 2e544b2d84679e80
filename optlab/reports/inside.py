"""Section 5: inside the network (3Blue1Brown) — first-layer weights as images, and how confident the
net is on random noise compared with real test digits. Parameters come from the run's
params.safetensors artifact (no pickle)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
import torch

from optlab.reports import style
from optlab.reports.load import Store
from optlab.reports.model import Figure, Note, Section, Table, not_run

TITLE = "Inside the network"
SOURCES = ("convergence", "memorization", "batch_size")
MAX_UNITS = 32
N_NOISE = 1000


def pick_run(store: Store) -> pd.Series | None:
    """The reported run with the best final validation accuracy on the first workload (in run order) of the
    first experiment that has a finished run on clean real data (validation chooses, as everywhere)."""
    for name in SOURCES:
        runs = store.runs(name, finished_only=True)
        if runs is None:
            continue
        clean = runs[
            (runs["variant"].isin(["none", ""]) | runs["variant"].isna())
            & (runs["label_noise"].fillna(0) == 0)
            & runs["hidden"].astype(str).ne("")
        ]
        if "workload_ref" in clean:  # a user's workload has no first layer over the pixels to draw
            clean = clean[clean["workload_ref"].isna() | clean["workload_ref"].astype(str).isin(["", "None", "nan"])]
        key = "final_val_accuracy" if "final_val_accuracy" in clean else "final_test_accuracy"
        clean = clean.dropna(subset=[key]) if key in clean else clean.iloc[0:0]
        if len(clean):
            first = clean.sort_values("start_time")["workload"].iloc[0]
            clean = clean[clean["workload"] == first]
            return clean.sort_values(key, ascending=False).iloc[0]
    return None


def build(store: Store) -> Section:
    from optlab.problem import NetworkProblem, build_problem
    from optlab.problem.data import load_dataset, standardization
    from optlab.tracking.recorder import load_config, load_params

    section = Section(
        5,
        TITLE,
        "What the trained network looks like from inside (3Blue1Brown): each first-layer "
        "unit's weights drawn as an image over the input pixels, and the top output confidence on "
        "images of pure noise versus real test digits (3Blue1Brown says such a net still answers noise "
        "with confidence; the numbers below say whether this one does).",
    )
    run = pick_run(store)
    if run is None:
        return section.add(not_run(SOURCES[0]))
    try:
        w = load_params(run["run_id"], store.uri)
        config = load_config(run["run_id"], store.uri)
    except Exception as exc:  # an old run without artifacts must not break the report
        return section.add(
            Note(
                f"Run {run['run_id']} has no readable params.safetensors/config.json ({type(exc).__name__}: {exc}).",
                kind="warning",
            )
        )
    problem = build_problem(config)
    if not isinstance(problem, NetworkProblem):
        return section.add(
            Note(
                f"Run {run['run_id']} trained {problem.name!r}, a user workload or test function rather than a "
                "network over image pixels: it has no first layer to draw and no digits to compare noise with, "
                "so this section is skipped."
            )
        )
    w = w.to(problem.dtype)
    caption_run = (
        f"experiment {run['experiment']}; run {run['run_name']} ({run['run_id'][:8]}), strategy "
        f"{config.strategy}, workload {run['workload']}, hidden {','.join(map(str, config.hidden))}, seed "
        f"{config.seed}, final test accuracy {run['final_test_accuracy']:.4f}"
    )
    weights = problem.network.unflatten(w)[0][0].detach().cpu().numpy()
    shape = problem.dataset.image_shape
    if weights.shape[1] == shape[0] * shape[1]:
        units = min(weights.shape[0], MAX_UNITS)
        cols = min(8, units) if units > 16 else min(4, units)
        rows = math.ceil(units / cols)
        fig, grid = style.figure(rows, cols, width=1.5, height=1.5)
        for k in range(rows * cols):
            ax = grid[k // cols][k % cols]
            ax.set_axis_off()
            if k < units:
                img = weights[k].reshape(shape)
                lim = float(np.abs(img).max()) or 1.0
                ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
                ax.set_title(f"unit {k}", fontsize=7)
        fig.tight_layout()
        section.add(
            Figure(
                fig,
                f"First-layer weights of {units} of {weights.shape[0]} hidden units, each drawn as a "
                f"{shape[0]}×{shape[1]} image (red positive, blue negative, each image scaled to its "
                f"own ±max |w|). {caption_run}.",
            )
        )
    else:
        section.add(Note(f"Inputs ({weights.shape[1]}) are not {shape[0]}×{shape[1]} images; weights not drawn."))

    gen = torch.Generator().manual_seed(0)
    noise = torch.rand((N_NOISE, problem.network.n_inputs), generator=gen, dtype=torch.float64)
    if config.standardize:  # noise goes through the same standardization as the data
        raw = load_dataset(config.dataset, train_size=config.train_size)
        mean, scale = standardization(raw.x_train.double())
        noise = (noise - mean) / scale
    real = problem.dataset.x_test
    conf_noise = problem.predict_proba(w, noise.to(problem.dtype)).max(dim=-1).values.cpu().numpy()
    conf_real = problem.predict_proba(w, real).max(dim=-1).values.cpu().numpy()
    data = pd.DataFrame(
        {
            "top confidence": np.concatenate([conf_real, conf_noise]),
            "input": [f"real test digits (n={len(conf_real)})"] * len(conf_real)
            + [f"uniform random noise (n={N_NOISE})"] * N_NOISE,
        }
    )
    fig, axes = style.figure(1, 1, width=6.5, height=3.6)
    sns.histplot(
        data,
        x="top confidence",
        hue="input",
        stat="density",
        common_norm=False,
        bins=np.linspace(0, 1, 41),
        element="step",
        ax=axes[0][0],
        palette=["C0", "C3"],
    )
    axes[0][0].set_xlabel("largest output (softmax probability; sigmoid output for the mse cost)")
    fig.tight_layout()
    section.add(
        Figure(
            fig,
            f"Distribution of the top output on {N_NOISE} uniform-noise images versus the real "
            f"test digits. {caption_run}.",
        )
    )
    noise_digits = np.bincount(
        problem.predict_proba(w, noise.to(problem.dtype)).argmax(-1).cpu().numpy(), minlength=problem.network.n_outputs
    )
    section.add(
        Table(
            pd.DataFrame(
                {
                    "input": ["real test digits", "uniform random noise"],
                    "mean top confidence": [f"{conf_real.mean():.3f}", f"{conf_noise.mean():.3f}"],
                    "share with confidence > 0.9": [
                        f"{(conf_real > 0.9).mean():.1%}",
                        f"{(conf_noise > 0.9).mean():.1%}",
                    ],
                }
            ),
            f"Confidence summary; the noise images are classified as digit {int(noise_digits.argmax())} "
            f"{noise_digits.max() / N_NOISE:.0%} of the time. {caption_run}.",
        )
    )
    section.add(Note(noise_sentence(conf_real, conf_noise, noise_digits)))
    return section


CONFIDENT = 0.9  # a top output above this is a confident answer
ONE_ANSWER = 0.5  # noise mostly given one digit: the net answers noise, whatever its confidence


def noise_sentence(
    conf_real: np.ndarray, conf_noise: np.ndarray, noise_digits: np.ndarray | None = None, high: float = CONFIDENT
) -> str:
    """Whether the net answers noise with confidence, as the measured confidences say, and (given the count
    of noise images per predicted digit) whether it answers noise with one digit anyway."""
    share = float((conf_noise > high).mean())
    real_share = float((conf_real > high).mean())
    modal = float(noise_digits.max() / noise_digits.sum()) if noise_digits is not None and noise_digits.sum() else 0.0
    digit = int(noise_digits.argmax()) if noise_digits is not None else None
    if share >= 0.5:
        verdict = f"it answers most noise images with confidence: {share:.0%} of them get a top output above {high:g}"
    elif modal >= ONE_ANSWER:
        verdict = (
            f"it answers noise with one digit, {digit}, for {modal:.0%} of the noise images, though with a "
            f"lower top output than on digits ({share:.0%} of noise images above {high:g}, real digits "
            f"{real_share:.0%})"
        )
    elif conf_noise.mean() >= conf_real.mean():
        verdict = (
            f"it is at least as confident on noise as on digits on average, though only {share:.0%} of noise "
            f"images get a top output above {high:g}"
        )
    else:
        verdict = (
            f"it does not answer noise with confidence here: only {share:.0%} of noise images get a top "
            f"output above {high:g} (real digits: {real_share:.0%}), and no digit is given to most of them"
        )
    return (
        f"Mean top confidence {conf_noise.mean():.3f} on uniform noise versus {conf_real.mean():.3f} on real test "
        f"digits: {verdict}."
    )
