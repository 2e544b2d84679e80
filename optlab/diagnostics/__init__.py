"""In-training diagnostics: why an optimizer behaves as it does, measured at evaluation points.

    gradients.py     per-sample gradients (torch.func vmap of grad): |G|, tr(Sigma), B_simple, GSNR
    updates.py       the last updates: norm, ratio to the weights per layer, cosine, distance from init
    curvature.py     sharpness (Lanczos on Hessian-vector products) and the Hessian trace
    step_quality.py  Cockpit's alpha: where on the parabola fitted along the last step it landed
    tiers.py         the `cheap` and `full` tiers: one run's measurements at one point

Every quantity is a measurement (uncounted work on the problem, like evaluation) and is validated in
tests/test_diagnostics.py against ground truth: per-sample gradients by loops, the exact Hessian,
a quadratic with alpha in closed form, a synthetic problem with known gradient covariance.
"""

from optlab.diagnostics.tiers import METRICS, PREFIX, TIERS, Diagnostics

__all__ = ["Diagnostics", "METRICS", "PREFIX", "TIERS"]
