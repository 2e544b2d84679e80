"""Expected best validation score after k tuning trials (Dodge et al. 2019), against brute force."""

import itertools

import numpy as np
import pandas as pd
import pytest

from optlab.analysis.tuning_effort import curves, expected_best


def brute_force(scores, k, best=max):
    draws = list(itertools.product(scores, repeat=k))
    return np.mean([best(d) for d in draws])


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_expected_max_matches_every_draw_with_replacement(k):
    scores = [0.61, 0.9, 0.75, 0.9, 0.2]
    assert expected_best(scores, [k])[0] == pytest.approx(brute_force(scores, k))
    assert expected_best(scores, [k], larger_is_better=False)[0] == pytest.approx(brute_force(scores, k, min))


def test_the_curve_starts_at_the_mean_rises_to_the_best_and_ignores_diverged_trials():
    scores = [0.5, np.nan, 0.7, 0.9]
    curve = expected_best(scores)
    assert len(curve) == 3 and curve[0] == pytest.approx(np.mean([0.5, 0.7, 0.9]))
    assert np.all(np.diff(curve) > 0) and curve[-1] < 0.9
    assert expected_best(scores, [1000])[0] == pytest.approx(0.9)


def test_curves_per_group():
    trials = pd.DataFrame({"strategy": ["a", "a", "b"], "score": [0.1, 0.3, 0.2]})
    frame = curves(trials, "strategy", "score")
    assert list(frame["k"]) == [1, 2, 1] and list(frame["trials"]) == [2, 2, 1]
    assert frame.loc[1, "expected"] == pytest.approx(brute_force([0.1, 0.3], 2))
