"""Tests of pretraining.analysis.figures (Agg backend; every figure is closed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from pretraining.analysis.figures import box_by_group, histograms, image_grid, receptive_fields


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def clims(fig: Figure) -> list[tuple[float, float]]:
    return [im.get_clim() for im in fig.axes[0].images]


def test_image_grid_one_tile_per_image_with_one_shared_scale():
    images = np.random.default_rng(0).uniform(0, 1, (23, 784))
    images[3] *= 0.1  # a dim image must stay dim under a shared scale
    fig = image_grid(images, ncols=10, title="digits")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].images) == 23
    assert set(clims(fig)) == {(images.min(), images.max())}
    assert len({id(im.norm) for im in fig.axes[0].images}) == 1  # literally one Normalize
    assert fig.axes[0].get_title() == "digits"
    np.testing.assert_array_equal(fig.axes[0].images[5].get_array(), images[5].reshape(28, 28))


def test_image_grid_own_scales_and_explicit_limits_and_3d_tensor_input():
    images = torch.rand(4, 28, 28, generator=torch.Generator().manual_seed(0))
    images[1] *= 0.5
    own = image_grid(images, shared_scale=False)
    assert len(set(clims(own))) == 4
    assert clims(own)[1] == pytest.approx((float(images[1].min()), float(images[1].max())))
    fixed = image_grid(images, vmin=0.0, vmax=1.0)
    assert set(clims(fixed)) == {(0.0, 1.0)}


def test_image_grid_draws_into_a_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    out = image_grid(np.zeros((3, 16)), ax=b)
    assert out is fig and len(b.images) == 3 and len(a.images) == 0


def test_receptive_fields_symmetric_shared_scale_and_colour_bar():
    W = np.random.default_rng(1).normal(0, 0.1, (784, 50))
    W[0, 7] = 2.0  # largest |weight| is in a shown unit
    W[0, 40] = -9.0  # but not shown with n=20: must not set the scale
    fig = receptive_fields(W, n=20, ncols=5)
    assert len(fig.axes) == 2  # tiles + colour bar
    assert len(fig.axes[0].images) == 20
    assert set(clims(fig)) == {(-2.0, 2.0)}
    np.testing.assert_array_equal(fig.axes[0].images[7].get_array(), W[:, 7].reshape(28, 28))
    lo, hi = receptive_fields(W, n=20, symmetric=False).axes[0].images[0].get_clim()
    assert (lo, hi) == (W[:, :20].min(), 2.0)
    assert len(receptive_fields(W).axes[0].images) == 50  # default: min(100, H) units


def test_box_by_group_boxes_and_reference_points():
    rng = np.random.default_rng(2)
    data = {
        "no pre-training": {1: rng.normal(1.8, 0.1, 10), 2: rng.normal(1.8, 0.1, 10), 4: rng.normal(2.2, 0.1, 10)},
        "pre-trained": {1: rng.normal(1.4, 0.1, 10), 2: rng.normal(1.35, 0.1, 10)},
    }
    reference = {"no pre-training": {1: 1.82, 2: 1.76, 4: 2.16}, "pre-trained": {1: 1.41, 2: 1.36}}
    fig = box_by_group(data, xlabel="layers", ylabel="test error (%)", reference=reference)
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert len(ax.patches) == 5  # one box per (group, depth)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4"]
    diamonds = [c for c in ax.collections if c.get_offsets().shape[0] in (2, 3) and c.get_label().endswith("(reference)")]
    assert sorted(c.get_offsets().shape[0] for c in diamonds) == [2, 3]
    assert ax.get_xlabel() == "layers" and ax.get_ylabel() == "test error (%)"


def test_histograms_share_bins():
    rng = np.random.default_rng(3)
    fig = histograms({"a": rng.normal(0, 1, 100), "b": rng.normal(3, 1, 50)}, bins=15, xlabel="error")
    ax = fig.axes[0]
    assert len(ax.containers) == 2
    edges = [[p.get_x() for p in c.patches] for c in ax.containers]
    assert len(edges[0]) == 15 and edges[0] == edges[1]
    assert sum(p.get_height() for p in ax.containers[1].patches) == 50
    fig2 = histograms({"a": [1, 2, 3]}, bins=[0, 2, 4], xlabel="x")
    assert [p.get_height() for p in fig2.axes[0].containers[0].patches] == [1, 2]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: image_grid(np.zeros((3, 780))), "square D"),
        (lambda: image_grid(np.zeros(784)), "shape \\(N, D\\) or \\(N, height, width\\)"),
        (lambda: image_grid(np.zeros((0, 784))), "N >= 1"),
        (lambda: image_grid(np.full((2, 4), np.nan)), "NaN"),
        (lambda: image_grid(np.zeros((2, 4)), ncols=0), "ncols=\\S+ is not allowed; it must be an int >= 1"),
        (lambda: image_grid(np.zeros((2, 4)), shared_scale=False, vmin=0), "need shared_scale=True"),
        (lambda: image_grid(np.zeros((2, 4)), vmin=1, vmax=0), "vmin < vmax"),
        (lambda: image_grid(np.zeros((2, 4)), ax="left"), "ax must be a matplotlib Axes"),
        (lambda: receptive_fields(np.zeros((2, 784, 10))), "pass W\\[m\\]"),
        (lambda: receptive_fields(np.zeros((784, 10)), n=11), "n=11 is larger"),
        (lambda: receptive_fields(np.zeros((780, 10)), n=5), "square D"),
        (lambda: box_by_group({}, xlabel="x", ylabel="y"), "non-empty mapping"),
        (lambda: box_by_group({"a": [1, 2]}, xlabel="x", ylabel="y"), "data\\['a'\\] must be a non-empty mapping"),
        (lambda: box_by_group({"a": {1: []}}, xlabel="x", ylabel="y"), "non-empty 1-D"),
        (lambda: box_by_group({"a": {1: [1.0]}}, xlabel="x", ylabel="y", reference={"b": {1: 1.0}}), "not in data"),
        (lambda: box_by_group({"a": {1: [1.0]}}, xlabel="x", ylabel="y", reference={"a": {3: 1.0}}), "x values \\[3\\]"),
        (lambda: histograms([1, 2], xlabel="x"), "non-empty mapping"),
        (lambda: histograms({"a": [1, 2]}, bins=0, xlabel="x"), "bins=\\S+ is not allowed; it must be an int >= 1"),
        (lambda: histograms({"a": [1, 2]}, bins=[2, 1], xlabel="x"), "strictly increasing"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
    assert plt.get_fignums() == []  # validation happens before any figure is made


def test_histograms_count_in_integers_and_draw_into_a_given_axes():
    import matplotlib.pyplot as plt

    fig = histograms({"a": [0.1, 0.2, 0.2], "b": [0.15, 0.3], "c": [0.25]}, bins=4, xlabel="x")
    ax = fig.axes[0]
    ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)  # no 0.5 networks
    colours = {c.patches[0].get_facecolor()[:3] for c in ax.containers}
    assert len(colours) == 3  # three groups, three colours
    outer, (left, right) = plt.subplots(1, 2)
    assert histograms({"a": [1, 2]}, bins=2, xlabel="x", ax=right) is outer
    assert len(right.containers) == 1 and not left.containers
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        histograms({"a": [1, 2]}, xlabel="x", ax="left")


def test_plural_takes_the_number_of_its_count():
    from pretraining.book.words import plural

    assert plural(1, "seed") == "1 seed" and plural(0, "seed") == "0 seeds" and plural(10000, "digit") == "10,000 digits"
    assert plural(2, "matrix", "matrices") == "2 matrices" and plural(1, "matrix", "matrices") == "1 matrix"
    with pytest.raises(ValueError, match="n"):
        plural(-1, "seed")
    with pytest.raises(TypeError, match="noun"):
        plural(2, "")
