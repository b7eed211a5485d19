"""How the fair-fight protocol is shown: the table and sentences (book.fairness), the curves figure (analysis.figures)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from pretraining.analysis import figures  # noqa: E402
from pretraining.book import fairness  # noqa: E402
from pretraining.core.selection import setting_converged  # noqa: E402


def record(n_converged=3, at_edge=False, longer=None):
    return {"lr": 1.334, "grid": [0.1, 0.3162, 1.0, 1.334, 3.162], "grid_valid_error": [0.2, 0.1, 0.05, 0.04, 0.06],
            "extensions": 0, "at_edge": at_edge, "epoch_budget": 20, "best_epoch": [4, 6, 9], "epochs_run": [7, 9, 12],
            "train_nll": [0.3, 0.2, 0.1], "final_train_nll": [0.2, 0.1, 0.05], "valid_error": [0.05, 0.04, 0.06],
            "converged": [True] * n_converged + [False] * (3 - n_converged), "n_converged": n_converged,
            "setting_converged": n_converged == 3, "longer_run": longer}


def test_selection_frame_has_one_row_per_condition_with_medians():
    frame = fairness.selection_frame({("a", 1): record(), ("b", 2): record(1)}, index=["group", "depth"])
    assert list(frame.index) == [("a", 1), ("b", 2)]
    row = frame.loc[("a", 1)]
    assert row["chosen rate"] == 1.334 and row["rates tried"] == "0.1–3.162 (5)" and row["on the edge"] == "no"
    assert (row["best epoch"], row["epochs run"], row["training NLL"]) == (6.0, 9.0, 0.2)
    assert frame.loc[("b", 2)]["converged"] == "1 of 3"
    assert set(fairness.FORMATS) <= set(frame.columns)


def test_a_condition_converged_only_when_every_seed_did_and_the_rate_is_inside_the_grid():
    assert setting_converged(record()) and not setting_converged(record(2))
    assert not setting_converged(record(at_edge=True))
    assert fairness.not_converged_names({"x": record(), "y": record(at_edge=True)}) == ["y"]


def test_convergence_sentences_name_what_did_not_converge_and_why():
    assert fairness.convergence_sentence({"x": record()}).startswith("The one trained condition converged")
    assert fairness.convergence_sentence({"x": record(), "y": record()}).startswith("Both trained conditions")
    longer = {"seed": 7, "lr": 1.334, "epochs": 80, "epochs_run": 43, "best_epoch": 39, "final_train_nll": 0.1,
              "converged": True}
    text = fairness.convergence_sentence({"x": record(), "y": record(1, longer=longer)}, label=str.upper)
    assert text.startswith("1 of 2 conditions did not converge — Y: 1 of 3 seeds converged within 20 epochs, "
                           "seed 7 trained alone for up to 80 epochs converged, stopping after 43 —")
    stuck = dict(longer, converged=False, final_train_nll=1.9)
    assert "did not converge either (training NLL 1.90 at the end)" in fairness.why_not(record(0, longer=stuck))
    assert fairness.why_not(record(at_edge=True)) == "the chosen rate 1.334 is on the edge of the rates tried"


def test_ragged_mean_averages_the_seeds_still_running():
    np.testing.assert_allclose(figures.ragged_mean([[1.0, 2.0, 3.0], [3.0]]), [2.0, 2.0, 3.0])


def test_training_curves_figure_marks_the_plateau_bar():
    curves = {"a": {"train_nll": [[2.0, 1.0, 0.5], [2.0, 0.8]], "valid_error": [[0.5, 0.2, 0.1], [0.4, 0.2]]}}
    fig = figures.training_curves(curves, n_classes=10, plateau_fraction=0.5)
    top, bottom = fig.axes[:2]
    bar = [line for line in top.get_lines() if line.get_linestyle() == ":"]
    assert len(bar) == 1 and bar[0].get_ydata()[0] == pytest.approx(0.5 * math.log(10))
    np.testing.assert_allclose(bottom.get_lines()[0].get_ydata(), [45.0, 20.0, 10.0])
