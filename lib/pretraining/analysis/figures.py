"""Figures shared by the chapters (matplotlib; every function returns its Figure, nothing is shown).

One style for the whole book: seaborn's "whitegrid" axes, 110 dpi, figures sized for a book page.
Each function draws under that style (restoring only those settings afterwards) without changing global settings;
:func:`use_style` applies it globally for a notebook's own figures.

Images may be numpy arrays or torch tensors (moved to the CPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core.checks import require_int

__all__ = ["STYLE", "PALETTE", "LINESTYLES", "PAGE_WIDTH", "SMALLEST_FONT_PT", "box_by_group", "styled", "histograms", "image_grid",
           "receptive_fields", "use_style", "ragged_mean", "training_curves"]

PALETTE = sns.color_palette("colorblind")
"""The book's colours, in order (seaborn's colour-blind-safe palette: blue, orange, green, ...)."""
LINESTYLES = ("-", "--", ":", "-.")
"""Line styles that go with :data:`PALETTE`, so that overlapping groups stay apart in grey too."""

STYLE: dict = {
    **sns.axes_style("whitegrid"),
    "axes.prop_cycle": cycler(color=PALETTE),
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (7.5, 4.2),
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.frameon": True,
}
"""rcParams of the book's figures. The smallest text is 10 pt (tick labels, legends)."""

PAGE_WIDTH = 7.5
"""Widest figure, inches: at 110 dpi it is shown about at its natural size in the book's column, so
10 pt text stays at least 9 px on the page (the browser test checks every figure)."""
SMALLEST_FONT_PT = 10
"""The smallest font size the book's figures use (tick labels, legends)."""


@contextmanager
def styled():
    """Draw under :data:`STYLE`, then restore only those settings.

    (``plt.rc_context`` restores *all* rcParams on exit, which switches a notebook's inline
    backend out of interactive mode, so later figures are silently not shown.)
    """
    old = {k: plt.rcParams[k] for k in STYLE}
    plt.rcParams.update(STYLE)
    try:
        yield
    finally:
        plt.rcParams.update(old)


def use_style() -> None:
    """Apply :data:`STYLE` to every later matplotlib figure (e.g. at the top of a chapter)."""
    plt.rcParams.update(STYLE)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _as_array(name: str, x: object) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers ({exc})") from None
    if arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_ax(ax: object) -> None:
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")


def _as_tiles(images: object) -> np.ndarray:
    """images (N, h*w) with a square h*w, or (N, h, w) -> (N, h, w) float64."""
    arr = _as_array("images", images)
    if arr.ndim == 2:
        side = math.isqrt(arr.shape[1])
        if side * side != arr.shape[1] or side == 0:
            raise ValueError(f"images of shape (N, D) need a square D (e.g. 784 = 28x28), got {arr.shape}")
        arr = arr.reshape(arr.shape[0], side, side)
    if arr.ndim != 3 or arr.shape[0] < 1 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise ValueError(f"images must have shape (N, D) or (N, height, width) with N >= 1, got {arr.shape}")
    return arr


# --------------------------------------------------------------------------------------------
# image grids
# --------------------------------------------------------------------------------------------
def _draw_tiles(ax: Axes, tiles: np.ndarray, ncols: int, cmap: str, norm: Normalize | None) -> list:
    """One AxesImage per tile, laid out row-major with a one-pixel gap; norm None -> own scale per tile."""
    n, h, w = tiles.shape
    nrows = math.ceil(n / ncols)
    gap = 1.0
    images = []
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncols)
        left, top = c * (w + gap), r * (h + gap)
        tile_norm = norm if norm is not None else Normalize(tile.min(), tile.max() if tile.max() > tile.min() else tile.min() + 1)
        images.append(
            ax.imshow(tile, cmap=cmap, norm=tile_norm, extent=(left, left + w, top + h, top), interpolation="nearest")
        )
    ax.set_xlim(-gap, min(n, ncols) * (w + gap))
    ax.set_ylim(nrows * (h + gap), -gap)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return images


def _grid_figure(n: int, ncols: int, ax: Axes | None, extra_width: float = 0.0) -> tuple[Figure, Axes]:
    """The given Axes, or a new figure sized so tiles are at most 0.75 in and fit the page."""
    if ax is not None:
        return ax.figure, ax
    cols, rows = min(n, ncols), math.ceil(n / ncols)
    tile = min(0.75, (PAGE_WIDTH - extra_width - 0.3) / cols)
    return plt.subplots(figsize=(tile * cols + extra_width + 0.3, tile * rows + 0.6))


def image_grid(
    images: object,
    *,
    ncols: int = 10,
    shared_scale: bool = True,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw images (N, 784) / (N, D) with square D / (N, h, w) as a grid of tiles in one Axes.

    Each tile is its own AxesImage (``ax.images``, row-major). With ``shared_scale`` every tile
    uses ONE Normalize object — vmin/vmax given, or the min/max over all images — so grey levels
    are comparable across tiles; otherwise each tile is stretched to its own range (vmin/vmax not
    allowed then). Draws into ``ax`` when given, else a new figure; returns the Figure.
    """
    tiles = _as_tiles(images)
    ncols = require_int("ncols", ncols, 1)
    _check_ax(ax)
    if not isinstance(shared_scale, bool):
        raise TypeError(f"shared_scale must be True or False, got {shared_scale!r}")
    if not shared_scale and (vmin is not None or vmax is not None):
        raise ValueError("vmin/vmax set a shared colour scale; they need shared_scale=True")
    lo = float(tiles.min()) if vmin is None else float(vmin)
    hi = float(tiles.max()) if vmax is None else float(vmax)
    if not lo < hi:
        if vmin is not None or vmax is not None:
            raise ValueError(f"the colour scale must have vmin < vmax, got vmin={lo}, vmax={hi}")
        hi = lo + 1.0  # constant images
    with styled():
        fig, ax = _grid_figure(len(tiles), ncols, ax)
        _draw_tiles(ax, tiles, ncols, cmap, Normalize(lo, hi) if shared_scale else None)
        if title is not None:
            ax.set_title(title)
    return fig


def receptive_fields(
    W: object,
    n: int | None = None,
    *,
    ncols: int = 10,
    symmetric: bool = True,
    cmap: str = "RdBu_r",
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """The first ``n`` hidden units' incoming weights W[:, j] (W (784, H) of ONE member) as tiles.

    n None shows min(100, H) units; an explicit n must be at most H.

    All tiles share one colour scale, shown by a colour bar: symmetric about zero
    (±max|W[:, :n]|, so white means zero weight with the diverging ``cmap``) or, with
    ``symmetric=False``, the min..max of the shown weights. For a members tensor pass W[m].
    """
    arr = _as_array("W", W)
    if arr.ndim != 2:
        raise ValueError(f"W must have shape (visible, hidden) for one member (pass W[m] of a members tensor), got {arr.shape}")
    n = min(100, arr.shape[1]) if n is None else require_int("n", n, 1)
    if n > arr.shape[1]:
        raise ValueError(f"n={n} is larger than the number of hidden units ({arr.shape[1]})")
    tiles = _as_tiles(arr[:, :n].T)
    ncols = require_int("ncols", ncols, 1)
    _check_ax(ax)
    if symmetric:
        hi = float(np.abs(tiles).max()) or 1.0
        lo = -hi
    else:
        lo, hi = float(tiles.min()), float(tiles.max())
        hi = hi if hi > lo else lo + 1.0
    with styled():
        fig, ax = _grid_figure(len(tiles), ncols, ax, extra_width=1.0)
        images = _draw_tiles(ax, tiles, ncols, cmap, Normalize(lo, hi))
        fig.colorbar(images[0], ax=ax, fraction=0.04, pad=0.02, label="weight")
        if title is not None:
            ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------------
# distributions
# --------------------------------------------------------------------------------------------
def _check_values(name: str, values: object) -> np.ndarray:
    arr = _as_array(name, values)
    if arr.ndim != 1 or arr.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {arr.shape}")
    return arr


def box_by_group(
    data: Mapping[str, Mapping[int, Sequence[float]]],
    *,
    xlabel: str,
    ylabel: str,
    reference: Mapping[str, Mapping[int, float]] | None = None,
) -> Figure:
    """Box plots of values per x position (e.g. depth) for several groups side by side.

    data: {group: {x: values}}, e.g. {"no pre-training": {1: errors, 2: errors}, "pre-trained": ...}.
    Boxes of one x sit next to each other, one colour per group, with every value drawn as a dot.
    reference: optional {group: {x: value}} drawn as black-edged diamonds of the group's colour
    (e.g. the paper's medians). One Axes; returns the Figure.
    """
    if not isinstance(data, Mapping) or len(data) < 1:
        raise TypeError(f"data must be a non-empty mapping {{group: {{x: values}}}}, got {type(data).__name__}")
    groups = list(data)
    for g in groups:
        if not isinstance(data[g], Mapping) or len(data[g]) < 1:
            raise TypeError(f"data[{g!r}] must be a non-empty mapping {{x: values}}, got {type(data[g]).__name__}")
    if reference is not None:
        if not isinstance(reference, Mapping):
            raise TypeError(f"reference must be a mapping {{group: {{x: value}}}} or None, got {type(reference).__name__}")
        unknown = [g for g in reference if g not in data]
        if unknown:
            raise ValueError(f"reference names groups that are not in data: {unknown}; allowed: {groups}")
    try:
        xs = sorted({x for g in groups for x in data[g]})
    except TypeError:
        raise TypeError("the x keys of data (e.g. depths) must be mutually comparable, such as all ints") from None
    values = {g: {x: _check_values(f"data[{g!r}][{x!r}]", v) for x, v in data[g].items()} for g in groups}
    refs: dict = {}
    for g, ref in (reference or {}).items():
        if not isinstance(ref, Mapping):
            raise TypeError(f"reference[{g!r}] must be a mapping {{x: value}}, got {type(ref).__name__}")
        bad = [x for x in ref if x not in xs]
        if bad:
            raise ValueError(f"reference[{g!r}] has x values {bad} that are not in data; allowed: {xs}")
        refs[g] = dict(zip(ref, _check_values(f"reference[{g!r}]", list(ref.values()))))
    width = 0.8 / len(groups)
    palette = PALETTE
    rng = np.random.default_rng(0)  # horizontal jitter of the dots only
    with styled():
        fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH, max(6.0, 1.2 * len(xs) * len(groups) + 2.0)), 5.0))
        for gi, g in enumerate(groups):
            colour = palette[gi]
            offset = (gi - (len(groups) - 1) / 2) * width
            keys = [x for x in xs if x in values[g]]
            positions = [xs.index(x) + offset for x in keys]
            ax.boxplot(
                [values[g][x] for x in keys],
                positions=positions,
                widths=width * 0.85,
                patch_artist=True,
                showfliers=False,
                boxprops={"facecolor": (*colour, 0.35), "edgecolor": colour},
                medianprops={"color": colour, "linewidth": 2},
                whiskerprops={"color": colour},
                capprops={"color": colour},
            )
            for p, x in zip(positions, keys):
                v = values[g][x]
                ax.scatter(p + rng.uniform(-0.25, 0.25, v.size) * width, v, s=8, color=colour, alpha=0.6, zorder=3)
            ax.plot([], [], "s", color=colour, alpha=0.6, label=g)
            if g in refs:
                rx = [xs.index(x) + offset for x in refs[g]]
                ax.scatter(rx, list(refs[g].values()), marker="D", s=45, color=colour, edgecolor="black", zorder=4,
                           label=f"{g} (reference)")
        ax.set_xticks(range(len(xs)), [str(x) for x in xs])
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend()
    return fig


def histograms(data: Mapping[str, Sequence[float]], *, bins: int | Sequence[float] = 20, xlabel: str,
               ax: Axes | None = None) -> Figure:
    """Overlaid histograms of several samples on shared bin edges, one colour and outline style per sample.

    data: {label: values}; bins: a number of equal-width bins spanning all samples, or the edges.
    One Axes with one bar container per sample (light bars, and the sample's outline drawn over
    them so that three overlapping samples stay apart); counts are integers on the y axis.
    ax: draw into this Axes (e.g. one panel of a larger figure) instead of a new figure.
    Returns the Figure.
    """
    _check_ax(ax)
    if not isinstance(data, Mapping) or len(data) < 1:
        raise TypeError(f"data must be a non-empty mapping {{label: values}}, got {type(data).__name__}")
    samples = {k: _check_values(f"data[{k!r}]", v) for k, v in data.items()}
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        n_bins = require_int("bins", bins, 1)
        lo = min(float(v.min()) for v in samples.values())
        hi = max(float(v.max()) for v in samples.values())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, n_bins + 1)
    else:
        edges = _check_values("bins", bins)
        if edges.size < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError("bins must be an int >= 1 or at least 2 strictly increasing edges")
    with styled():
        if ax is None:
            fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 4.0))
        else:
            fig = ax.figure
        for i, (label, v) in enumerate(samples.items()):
            colour, style = PALETTE[i % len(PALETTE)], LINESTYLES[i % len(LINESTYLES)]
            ax.hist(v, bins=edges, alpha=0.25, color=colour, label=f"{label} (n={v.size})")
            ax.hist(v, bins=edges, histtype="step", color=colour, linestyle=style, linewidth=2)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        ax.legend()
    return fig


def ragged_mean(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """Mean over seeds of per-seed curves of different lengths (E_m values each), over the seeds still
    running at each epoch: (max E_m,)."""
    E = max(len(c) for c in curves)
    a = np.full((len(curves), E), np.nan)
    for m, c in enumerate(curves):
        a[m, :len(c)] = c
    return np.nanmean(a, axis=0)


def training_curves(curves: Mapping[str, Mapping[str, Sequence[Sequence[float]]]], *, n_classes: int,
                    plateau_fraction: float, title: str | None = None) -> Figure:
    """Training NLL and validation error (%) against the epoch, mean over the seeds still training.

    curves: {condition label: {"train_nll": per seed its values, "valid_error": per seed its values
    (fractions)}}, one line per condition. A dotted line marks plateau_fraction x ln(n_classes) on the
    training NLL (the convergence bar of :mod:`pretraining.core.selection`: pass its PLATEAU_FRACTION).
    """
    with styled():
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 5.6), sharex=True, layout="constrained")
        for k, (label, c) in enumerate(curves.items()):
            style = dict(color=PALETTE[k % len(PALETTE)], linestyle=LINESTYLES[k % len(LINESTYLES)], label=label)
            nll = ragged_mean(c["train_nll"])
            top.plot(np.arange(1, len(nll) + 1), nll, **style)
            err = 100 * ragged_mean(c["valid_error"])
            bottom.plot(np.arange(1, len(err) + 1), err, **style)
        top.axhline(plateau_fraction * math.log(n_classes), color="black", linestyle=":", linewidth=1,
                    label=f"converged below ({plateau_fraction:g} ln {n_classes})")
        top.set_yscale("log")
        top.set_ylabel("training NLL\n(mean over seeds)")
        bottom.set_ylabel("validation error (%)")
        bottom.set_xlabel("fine-tuning epoch (each seed stops at its own)")
        bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
        if title:
            top.set_title(title)
        fig.legend(*top.get_legend_handles_labels(), loc="outside upper center", ncols=3)
    return fig
