"""What discriminative fine-tuning does to the weights of a pre-trained network (chapter 2).

Weight-change statistics between two versions of the same layers (before / after fine-tuning),
the "layer reset" test (put one layer of a fine-tuned net back to its pre-fine-tuning weights and
measure the test error), a fast softmax-only trainer on frozen features, and the 2-D map of the
classes a network assigns on a plane through input space spanned by three digits.

Shapes: weights W (M, n_in, n_out) with the members dimension M first (see
:mod:`pretraining.models`); the incoming weights of unit j of member m are W[m, :, j].
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure

from .models import Classifier
from .plots import styled
from .train import FinetuneConfig, evaluate, finetune

Tensor = torch.Tensor

__all__ = [
    "REFERENCE", "TINY_FRACTION", "MATTERS_FRACTION",
    "relative_change", "unit_cosine", "sign_flip_fraction", "LayerChange", "weight_change",
    "reset_layers", "layer_reset_errors", "gain_lost", "train_softmax_on_features",
    "finetune_tracked", "FinetuneRun", "cached_run", "Assessment", "assess", "InputPlane", "input_plane", "decision_map", "plot_receptive_field_change",
    "plot_layer_change", "plot_change_over_epochs", "plot_decision_maps", "plot_test_errors",
]

#: Literature values for side-by-side tables (test error in %, mean over seeds where given).
#: Erhan et al., "Why does unsupervised pre-training help deep learning?", JMLR 11 (2010), Table 1
#: (full MNIST, denoising auto-encoder pre-training, mean ± std); Larochelle et al., "Exploring
#: strategies for training deep neural networks", JMLR 10 (2009), Table 3 ("MNIST-small": 10k
#: training digits, 500 units per layer; the closest published analogue of mnist-10k).
REFERENCE: dict[str, dict] = {
    "Erhan et al. 2010, Table 1 (MNIST, DAE)": {
        "random init, 1 layer": (1.81, 0.07), "random init, 2 layers": (1.77, 0.10),
        "pre-trained, 1 layer": (1.41, 0.07), "pre-trained, 2 layers": (1.37, 0.09),
    },
    "Larochelle et al. 2009, Table 3 (MNIST-small)": {
        "random init": {1: 4.14, 2: 4.03, 3: 4.24, 4: 4.47},
        "stacked RBMs": {1: 3.17, 2: 2.74, 3: 2.71, 4: 2.72},
        "stacked auto-associators": {1: 3.87, 2: 3.38, 3: 3.37, 4: 3.39},
    },
}

#: A layer "hardly changes" if its relative change ||W_after - W_before|| / ||W_before|| is below
#: this fraction of the relative change of the same layer in a network trained from random
#: initialisation with the same fine-tuning (a comparison, so no absolute threshold is needed).
TINY_FRACTION = 0.5
#: The tiny changes "matter" if putting the layer back to its pre-fine-tuning weights loses at least
#: this fraction of the test-error gain of full fine-tuning over training the softmax alone.
MATTERS_FRACTION = 0.5


# ----------------------------------------------------------------------------------------- statistics
def _check_pair(before: Tensor, after: Tensor, name: str = "weights") -> None:
    if not isinstance(before, Tensor) or not isinstance(after, Tensor):
        raise TypeError(f"{name}: before and after must be torch.Tensors, got "
                        f"{type(before).__name__} and {type(after).__name__}")
    if before.shape != after.shape or before.dim() < 2:
        raise ValueError(f"{name}: before {tuple(before.shape)} and after {tuple(after.shape)} must have "
                         "the same shape (M, ...) with a members dimension first")


def relative_change(before: Tensor, after: Tensor) -> Tensor:
    """||after - before||_F / ||before||_F per member: (M, ...) x2 -> (M,).

    Raises ValueError if a member's ``before`` is all zeros (the ratio is undefined).
    """
    _check_pair(before, after)
    num = (after - before).flatten(1).norm(dim=1)
    den = before.flatten(1).norm(dim=1)
    if bool((den == 0).any()):
        raise ValueError("relative_change: a member's weights before are all zero; the relative change is undefined")
    return num / den


def unit_cosine(before: Tensor, after: Tensor) -> Tensor:
    """Cosine similarity of each unit's incoming weights before and after: W (M, n_in, n_out) -> (M, n_out).

    A unit whose weight vector is all zero before or after gets cosine 0.
    """
    _check_pair(before, after)
    if before.dim() != 3:
        raise ValueError(f"unit_cosine needs weights (M, n_in, n_out), got shape {tuple(before.shape)}")
    dot = (before * after).sum(1)
    norms = before.norm(dim=1) * after.norm(dim=1)
    return torch.where(norms > 0, dot / norms.clamp_min(torch.finfo(norms.dtype).tiny), torch.zeros_like(dot))


def sign_flip_fraction(before: Tensor, after: Tensor) -> Tensor:
    """Fraction of weights whose sign flipped (before * after < 0) per member: (M, ...) -> (M,).

    A weight that becomes exactly zero, or starts at zero, does not count as a flip.
    """
    _check_pair(before, after)
    return (before * after < 0).flatten(1).to(before.dtype).mean(1)


@dataclass
class LayerChange:
    """Per-layer statistics, each (L, M): L layers, M members.

    relative_change: ||W_after - W_before|| / ||W_before||; mean_cosine: mean over units of the
    cosine between each unit's incoming weights before and after; sign_flip_fraction: fraction
    of weights with a flipped sign.
    """

    relative_change: Tensor
    mean_cosine: Tensor
    sign_flip_fraction: Tensor

    STATS = ("relative_change", "mean_cosine", "sign_flip_fraction")

    def records(self, layer_names: Sequence[str | int]) -> list[dict]:
        """One dict per layer: {"layer", <stat>: mean over members, <stat>_std: std (0 for M = 1)}."""
        n_layers = self.relative_change.shape[0]
        if len(layer_names) != n_layers:
            raise ValueError(f"layer_names has {len(layer_names)} names for {n_layers} layers")
        out = []
        for i, name in enumerate(layer_names):
            rec: dict = {"layer": name}
            for stat in self.STATS:
                v = getattr(self, stat)[i].double()
                rec[stat] = float(v.mean())
                rec[f"{stat}_std"] = float(v.std()) if v.numel() > 1 else 0.0
            out.append(rec)
        return out


def weight_change(before: Sequence[Tensor], after: Sequence[Tensor]) -> LayerChange:
    """:class:`LayerChange` of layers ``before[i]`` -> ``after[i]``, each W (M, n_in, n_out)."""
    if len(before) != len(after) or not before:
        raise ValueError(f"weight_change needs equally many layers before and after (at least one), "
                         f"got {len(before)} and {len(after)}")
    rel, cos, flip = [], [], []
    for i, (b, a) in enumerate(zip(before, after)):
        _check_pair(b, a, f"layer {i}")
        rel.append(relative_change(b, a))
        cos.append(unit_cosine(b, a).mean(1))
        flip.append(sign_flip_fraction(b, a))
    return LayerChange(torch.stack(rel), torch.stack(cos), torch.stack(flip))


# ----------------------------------------------------------------------------------------- layer resets
def _check_same_shape(a: Classifier, b: Classifier) -> None:
    if not isinstance(a, Classifier) or not isinstance(b, Classifier):
        raise TypeError("both networks must be pretraining.models.Classifier instances")
    if a.sizes != b.sizes or a.n_members != b.n_members:
        raise ValueError(f"the networks differ in shape: sizes {a.sizes} vs {b.sizes}, "
                         f"members {a.n_members} vs {b.n_members}")


def reset_layers(fine_tuned: Classifier, reference: Classifier, layers: Sequence[int]) -> Classifier:
    """A copy of ``fine_tuned`` whose layers ``layers`` (0-based, weights and biases) come from ``reference``."""
    _check_same_shape(fine_tuned, reference)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= fine_tuned.depth for i in layers):
        raise ValueError(f"layers={layers!r} is not allowed; give layer indices in 0..{fine_tuned.depth}")
    out = fine_tuned.clone()
    for i in layers:
        out.weights[i] = reference.weights[i].clone()
        out.biases[i] = reference.biases[i].clone()
    return out


def layer_reset_errors(fine_tuned: Classifier, reference: Classifier, x: Tensor, y: Tensor) -> Tensor:
    """Test error with each hidden layer in turn reset to ``reference``: (depth, M), rows = layers 1..depth."""
    _check_same_shape(fine_tuned, reference)
    return torch.stack([evaluate(reset_layers(fine_tuned, reference, [i]), x, y).error
                        for i in range(fine_tuned.depth)])


def gain_lost(frozen_error: Tensor, fine_tuned_error: Tensor, reset_error: Tensor) -> Tensor:
    """Fraction of fine-tuning's gain lost by a reset: (reset - fine_tuned) / (frozen - fine_tuned).

    Elementwise on broadcastable tensors; NaN where fine-tuning gained nothing (frozen <= fine_tuned).
    """
    gain = frozen_error - fine_tuned_error
    return torch.where(gain > 0, (reset_error - fine_tuned_error) / gain.clamp_min(1e-12),
                       torch.full_like(gain, float("nan")))


# ----------------------------------------------------------------------------------------- training
@torch.no_grad()
def train_softmax_on_features(clf: Classifier, x: Tensor, y: Tensor, config: FinetuneConfig,
                              seeds: Sequence[int], *, progress: bool = True) -> tuple[Classifier, dict]:
    """Train only the softmax layer of ``clf`` on its frozen hidden features; returns (new net, history).

    The same updates as ``finetune(clf, x, y, config, seeds, train_layers=[clf.depth])`` (same
    minibatch order), but the hidden activations (M, N, H_top) are computed once, not per step.
    x (N, V); y (N,). ``clf`` itself is not changed.
    """
    if not isinstance(clf, Classifier) or clf.depth < 1:
        raise ValueError("train_softmax_on_features needs a Classifier with at least one hidden layer")
    if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != clf.sizes[0]:
        raise ValueError(f"x must be a (N, {clf.sizes[0]}) tensor shared by all members, got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    features = torch.cat([clf.hidden(x[s:s + 2000])[-1] for s in range(0, x.shape[0], 2000)], dim=1)
    top = Classifier([clf.weights[-1].clone()], [clf.biases[-1].clone()])
    history = finetune(top, features, y, config, seeds, progress=progress)
    out = clf.clone()
    out.weights[-1], out.biases[-1] = top.weights[0], top.biases[0]
    return out, history


def finetune_tracked(clf: Classifier, x: Tensor, y: Tensor, config: FinetuneConfig, seeds: Sequence[int],
                     x_valid: Tensor, y_valid: Tensor, *, progress: bool = True) -> tuple[Classifier, dict]:
    """Fine-tune a copy of ``clf`` (all layers) and record, after every epoch, how far each layer moved.

    Returns (the fine-tuned copy, history) with history as :func:`pretraining.train.finetune`'s plus
    "relative_change": per epoch a (depth + 1, M) list (layers 1..depth, then the softmax) of
    ||W_epoch - W_start|| / ||W_start||, and "valid_error": per epoch (M,).
    """
    start = clf.clone()
    net = clf.clone()
    extra: dict[str, list] = {"relative_change": [], "valid_error": []}

    def on_epoch(epoch: int, current: Classifier) -> None:
        extra["relative_change"].append(
            torch.stack([relative_change(b, a) for b, a in zip(start.weights, current.weights)]).tolist())
        extra["valid_error"].append(evaluate(current, x_valid, y_valid).error.tolist())

    history = finetune(net, x, y, config, seeds, on_epoch=on_epoch, progress=progress)
    return net, {**history, **extra}


@dataclass
class FinetuneRun:
    """One trained group of members: ``before`` and ``after`` training, and the training history."""

    before: Classifier
    after: Classifier
    history: dict


def cached_run(ch, name: str, key: Mapping, before: Classifier,
               train: Callable[[Classifier], tuple[Classifier, dict]]) -> FinetuneRun:
    """``train(before) -> (after, history)`` through the chapter's artifact cache.

    ch: the running :class:`pretraining.book.Chapter`; ``key`` must hold everything the result
    depends on besides the data and the library (what ``before`` is, the config, the seeds).
    """
    def compute():
        after, history = train(before)
        return after.state_dict(), {"history": history}

    tensors, meta = ch.cached(name, key, compute)
    return FinetuneRun(before, Classifier.from_state_dict(tensors), meta["history"])


@dataclass
class Assessment:
    """The claim's three tests, each a bool, and the verdict they give (see :func:`assess`)."""

    first_changes_least: bool
    first_is_tiny: bool
    tiny_changes_matter: bool
    verdict: str


def assess(change_pretrained: Tensor, change_random: Tensor, gain_lost_first: Tensor) -> Assessment:
    """Test the claim on the numbers (means over members).

    change_pretrained, change_random: relative change (L, M) of the hidden layers 1..L of the
    pre-trained and of the randomly initialised network; gain_lost_first: (M,) fraction of the
    gain lost by resetting layer 1 (:func:`gain_lost`; NaN where there was no gain).
    The three tests: layer 1 moved least of the hidden layers; it moved less than
    :data:`TINY_FRACTION` times the random network's layer 1; resetting it loses at least
    :data:`MATTERS_FRACTION` of the gain. All three: "supported"; none: "not supported";
    otherwise "partly supported".
    """
    pre = change_pretrained.double().mean(1)
    rnd = change_random.double().mean(1)
    lost = gain_lost_first.double()
    least = bool(pre.shape[0] == 1 or pre[0] < pre[1:].min())
    tiny = bool(pre[0] < TINY_FRACTION * rnd[0])
    matters = bool(not torch.isnan(lost).any() and lost.mean() >= MATTERS_FRACTION)
    n = least + tiny + matters
    verdict = "supported" if n == 3 else "not supported" if n == 0 else "partly supported"
    return Assessment(least, tiny, matters, verdict)


# ----------------------------------------------------------------------------------------- input plane
@dataclass
class InputPlane:
    """A square grid on the plane a0 + alpha (a1 - a0) + beta (a2 - a0) through three inputs.

    points (R*R, V) row-major with beta along rows (row r: beta[r]) and alpha along columns;
    alpha, beta (R,); anchors (3, V) at (alpha, beta) = (0, 0), (1, 0), (0, 1).
    """

    points: Tensor
    alpha: Tensor
    beta: Tensor
    anchors: Tensor

    @property
    def resolution(self) -> int:
        return self.alpha.shape[0]


def input_plane(anchors: Tensor, resolution: int = 80, margin: float = 0.3) -> InputPlane:
    """The plane through three inputs ``anchors`` (3, V), alpha and beta in [-margin, 1 + margin].

    Points are not clipped to the pixel range: the map shows the function the network computes on
    the plane itself (with margin 0.3, corner pixels stay within [-0.6, 1.6]).
    """
    if not isinstance(anchors, Tensor) or anchors.dim() != 2 or anchors.shape[0] != 3:
        raise ValueError(f"anchors must be a (3, V) tensor of three inputs, got "
                         f"{tuple(anchors.shape) if isinstance(anchors, Tensor) else type(anchors).__name__}")
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"resolution={resolution!r} is not allowed; it must be an int >= 2")
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not (0 <= margin <= 10):
        raise ValueError(f"margin={margin!r} is not allowed; it must be a number in [0, 10]")
    a0, a1, a2 = anchors.unbind(0)
    coords = torch.linspace(-margin, 1 + margin, resolution, dtype=anchors.dtype, device=anchors.device)
    beta, alpha = torch.meshgrid(coords, coords, indexing="ij")
    points = a0 + alpha.reshape(-1, 1) * (a1 - a0) + beta.reshape(-1, 1) * (a2 - a0)
    return InputPlane(points, coords.clone(), coords.clone(), anchors.clone())


@torch.no_grad()
def decision_map(clf: Classifier, plane: InputPlane) -> Tensor:
    """The class each member assigns to each grid point: (M, R, R) int64, rows = beta, columns = alpha."""
    if not isinstance(clf, Classifier):
        raise TypeError(f"clf must be a Classifier, got {type(clf).__name__}")
    pts = plane.points.to(device=clf.device, dtype=clf.dtype)
    classes = torch.cat([clf.logits(pts[s:s + 4096]).argmax(-1) for s in range(0, pts.shape[0], 4096)], dim=1)
    R = plane.resolution
    return classes.reshape(clf.n_members, R, R)


# ----------------------------------------------------------------------------------------- figures
def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, Tensor) else np.asarray(t, dtype=np.float64)


def _tiles(ax, W: np.ndarray, ncols: int, norm: Normalize, cmap: str):
    """Columns of W (784, n) as 28x28 tiles in one Axes; returns the last AxesImage."""
    n = W.shape[1]
    side = math.isqrt(W.shape[0])
    rows = math.ceil(n / ncols)
    canvas = np.full((rows * (side + 1) - 1, ncols * (side + 1) - 1), np.nan)
    for j in range(n):
        r, c = divmod(j, ncols)
        canvas[r * (side + 1):r * (side + 1) + side, c * (side + 1):c * (side + 1) + side] = W[:, j].reshape(side, side)
    cm = plt.get_cmap(cmap).with_extremes(bad="white")
    im = ax.imshow(np.ma.masked_invalid(canvas), cmap=cm, norm=norm, interpolation="nearest")
    ax.set_axis_off()
    return im


def plot_receptive_field_change(W_before, W_after, n: int = 64, *, ncols: int = 8,
                                title: str | None = None) -> Figure:
    """Receptive fields of the first ``n`` units before / after (one shared colour scale) and the difference.

    W_before, W_after: (784, H) of ONE member. The difference after - before has its own symmetric
    colour scale (its colour bar shows how small it is). Returns the Figure (3 panels).
    """
    b, a = _np(W_before), _np(W_after)
    if b.shape != a.shape or b.ndim != 2 or math.isqrt(b.shape[0]) ** 2 != b.shape[0]:
        raise ValueError(f"W_before {b.shape} and W_after {a.shape} must be equal (V, H) with a square V")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= b.shape[1]:
        raise ValueError(f"n={n!r} is not allowed; it must be an int in 1..{b.shape[1]}")
    b, a = b[:, :n], a[:, :n]
    ncols = min(ncols, n)
    lim = float(max(np.abs(b).max(), np.abs(a).max())) or 1.0
    dlim = float(np.abs(a - b).max()) or 1.0
    with styled():
        fig, axes = plt.subplots(1, 3, figsize=(15, 5.4), constrained_layout=True)
        shared = Normalize(-lim, lim)
        panels = [(b, shared, "before fine-tuning", "weight"), (a, shared, "after fine-tuning", "weight"),
                  (a - b, Normalize(-dlim, dlim), "difference (after − before), own scale", "change of weight")]
        for ax, (w, norm, label, bar_label) in zip(axes, panels):
            im = _tiles(ax, w, ncols, norm, "RdBu_r")
            ax.set_title(label)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=bar_label)
        if title:
            fig.suptitle(title, fontsize=13)
    return fig


def plot_layer_change(changes: Mapping[str, LayerChange], layer_names: Sequence[str]) -> Figure:
    """Bar charts over layers of the three statistics, one bar colour per network, error bars = std over seeds.

    changes: {network label: LayerChange with len(layer_names) layers}.
    """
    if not changes:
        raise ValueError("changes must name at least one network")
    labels = list(changes)
    titles = {"relative_change": "relative change ‖ΔW‖ / ‖W‖", "mean_cosine": "mean cosine(before, after) per unit",
              "sign_flip_fraction": "fraction of weights whose sign flipped"}
    x = np.arange(len(layer_names))
    width = 0.8 / len(labels)
    with styled():
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
        for ax, stat in zip(axes, LayerChange.STATS):
            for k, label in enumerate(labels):
                v = _np(getattr(changes[label], stat))
                if v.shape[0] != len(layer_names):
                    raise ValueError(f"{label!r} has {v.shape[0]} layers, layer_names has {len(layer_names)}")
                err = v.std(1, ddof=1) if v.shape[1] > 1 else None
                ax.bar(x + (k - (len(labels) - 1) / 2) * width, v.mean(1), width * 0.92, yerr=err,
                       capsize=3, label=label)
            ax.set_xticks(x, layer_names)
            ax.set_xlabel("layer")
            ax.set_title(titles[stat])
        axes[1].set_ylim(min(0.0, axes[1].get_ylim()[0]), 1.02)
        axes[0].legend(loc="upper left")
    return fig


def plot_change_over_epochs(histories: Mapping[str, Sequence], layer_names: Sequence[str]) -> Figure:
    """Relative change of each layer against the fine-tuning epoch, one panel per network.

    histories: {network label: per-epoch (L, M) lists} (``finetune_tracked``'s "relative_change");
    lines are the mean over members, the band their min..max.
    """
    with styled():
        fig, axes = plt.subplots(1, len(histories), figsize=(5.3 * len(histories), 4.2), sharey=True,
                                 constrained_layout=True, squeeze=False)
        for ax, (label, hist) in zip(axes[0], histories.items()):
            v = _np(hist)  # (E, L, M)
            epochs = np.arange(1, v.shape[0] + 1)
            for i, name in enumerate(layer_names):
                line, = ax.plot(epochs, v[:, i].mean(1), marker="o", ms=3, label=str(name))
                ax.fill_between(epochs, v[:, i].min(1), v[:, i].max(1), color=line.get_color(), alpha=0.2)
            ax.set_yscale("log")
            ax.set_xlabel("fine-tuning epoch")
            ax.set_title(label)
        axes[0][0].set_ylabel("relative change since the start")
        axes[0][-1].legend(title="layer", loc="lower right")
    return fig


def plot_test_errors(errors: Mapping[str, Tensor], *, title: str | None = None) -> Figure:
    """Horizontal bars of test error (%) per condition, mean over seeds with every seed as a dot.

    errors: {condition label: error fractions (M,)}, drawn top to bottom in the given order.
    """
    with styled():
        fig, ax = plt.subplots(figsize=(9, 0.55 * len(errors) + 1.4), constrained_layout=True)
        for k, (label, e) in enumerate(errors.items()):
            v = 100 * _np(e).reshape(-1)
            ax.barh(k, v.mean(), color="C0" if "reset" not in label else "C3", alpha=0.6)
            ax.scatter(v, np.full_like(v, k), color="black", s=12, zorder=3)
            ax.text(v.max(), k, f"  {v.mean():.2f} %", va="center")
        ax.set_yticks(range(len(errors)), list(errors))
        ax.invert_yaxis()
        ax.set_xlabel("test error (%) — bars: mean over seeds, dots: seeds")
        ax.set_xlim(0, ax.get_xlim()[1] * 1.12)
        if title:
            ax.set_title(title)
    return fig


def plot_decision_maps(maps: Mapping[str, Tensor], plane: InputPlane, anchor_labels: Sequence[int], *,
                       n_classes: int = 10) -> Figure:
    """Class maps (R, R) on the input plane side by side, the three anchor digits drawn at their corners.

    maps: {panel title: (R, R) int classes of ONE member}; anchor_labels: the anchors' true classes.
    """
    cmap = ListedColormap(plt.get_cmap("tab10").colors[:n_classes])
    norm = BoundaryNorm(np.arange(-0.5, n_classes), n_classes)
    a, b = _np(plane.alpha), _np(plane.beta)
    extent = (a[0], a[-1], b[0], b[-1])
    side = math.isqrt(plane.anchors.shape[1])
    with styled():
        fig, axes = plt.subplots(1, len(maps), figsize=(5.2 * len(maps) + 1.0, 5.4), constrained_layout=True,
                                 squeeze=False)
        for ax, (label, m) in zip(axes[0], maps.items()):
            im = ax.imshow(_np(m), origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
            size = 0.16 * (a[-1] - a[0])  # inside the map when margin >= 0.3 (the default)
            for (x0, y0), digit, img in zip([(0, 0), (1, 0), (0, 1)], anchor_labels, plane.anchors):
                ax.plot(x0, y0, "o", ms=7, mec="black", mfc="white")
                ax.annotate(f"digit {digit}", (x0, y0), xytext=(0, -13), textcoords="offset points", ha="center",
                            va="top", fontsize=10, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8})
                inset = ax.inset_axes([x0 + 0.03, y0 + 0.03, size, size], transform=ax.transData)
                inset.imshow(_np(img).reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
                inset.set_xticks([])
                inset.set_yticks([])
            ax.set_title(label)
            ax.set_xlabel("α (towards the 2nd digit)")
            ax.set_ylabel("β (towards the 3rd digit)")
            ax.grid(False)
        cbar = fig.colorbar(im, ax=axes[0].tolist(), fraction=0.025, pad=0.01, ticks=range(n_classes))
        cbar.set_label("assigned class")
    return fig
