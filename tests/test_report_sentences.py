"""Sentences of the report computed from the same numbers as the tables beside them, fed cases on both
sides of each threshold."""

from __future__ import annotations

import numpy as np

from optlab.reports.inside import CONFIDENT, ONE_ANSWER, noise_sentence

REAL = np.full(100, 0.98)


def digits(modal_share: float, n: int = 1000) -> np.ndarray:
    counts = np.zeros(10, dtype=int)
    counts[2] = int(round(modal_share * n))
    rest = n - counts[2]
    counts[[0, 1, 3, 4, 5, 6, 7, 8, 9]] = rest // 9
    counts[0] += rest - 9 * (rest // 9)
    return counts


def test_noise_mostly_given_one_digit_is_never_called_unanswered():
    timid = np.full(1000, 0.735)  # below the confidence threshold on every image
    for share in (ONE_ANSWER + 0.01, 0.99):
        text = noise_sentence(REAL, timid, digits(share))
        assert "does not answer noise" not in text
        assert f"one digit, 2, for {share:.0%} of the noise images" in text
    below = noise_sentence(REAL, timid, digits(ONE_ANSWER - 0.05))
    assert "does not answer noise with confidence" in below and "no digit is given to most of them" in below


def test_confident_noise_is_said_whatever_the_digits():
    sure = np.full(1000, CONFIDENT + 0.05)
    assert "answers most noise images with confidence: 100%" in noise_sentence(REAL, sure, digits(0.2))
    barely = np.r_[np.full(499, CONFIDENT + 0.05), np.full(501, CONFIDENT - 0.05)]
    assert "answers most noise images with confidence" not in noise_sentence(REAL, barely, digits(0.2))


def test_failed_runs_counted_in_time_to_target_are_named_with_their_reasons():
    import pandas as pd

    from optlab.reports.target import name_failed

    runs = pd.DataFrame(
        {
            "strategy": ["adam", "newton_cg", "newton_cg", "sgd"],
            "seed": [100.0, 101.0, 100.0, 100.0],
            "status": ["FINISHED", "FAILED", "FAILED", "FINISHED"],
            "failure_reason": [None, "loss diverged (nan) at step 40", None, None],
        }
    )
    text = name_failed(runs)
    assert text.startswith("2 failed run(s)")
    assert "newton_cg seed 100: no reason recorded; newton_cg seed 101: loss diverged (nan) at step 40" in text
    assert name_failed(runs[runs["status"] == "FINISHED"]) == ""


def test_a_ranking_over_unequal_work_says_how_unequal():
    import pandas as pd

    from optlab.reports.work import UNEQUAL, unequal_work

    def runs(ratio):
        return pd.DataFrame(
            {"label": ["adam", "adam", "ng:CMA", "ng:CMA"], "final_gradient_equivalents": [1.0, 1.0, ratio, ratio]}
        )

    text = unequal_work(runs(1000.0))
    assert "ng:CMA 1,000, adam 1 gradient-equivalents" in text and "1,000-fold range" in text
    assert unequal_work(runs(UNEQUAL * 1.01)) != ""
    assert unequal_work(runs(UNEQUAL * 0.99)) == ""


def test_a_budget_exceeded_is_stated_and_only_then():
    import pandas as pd

    from optlab.reports.work import budget_exceeded

    runs = pd.DataFrame(
        {
            "label": ["adam", "adam", "newton_cg", "newton_cg"],
            "epochs": [60.0] * 4,
            "final_epoch": [60.0, 60.0, 61.0, 59.0],
        }
    )
    text = budget_exceeded(runs)
    assert "Past the budget of 60 epochs: newton_cg up to 61 epochs (1 of 2 runs)" in text and "adam" not in text
    assert budget_exceeded(runs.assign(final_epoch=[60.0, 60.0, 60.0, 59.0])) == ""
