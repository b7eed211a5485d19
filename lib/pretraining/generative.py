"""Chapter 1 helpers: the DBN as a generative model of digits.

* :func:`binarize` — a seeded Bernoulli sample of grey-level digits (RBM likelihoods are over binary
  images);
* :func:`rbm_test_loglik` — the mean test log-likelihood of an RBM with annealed importance sampling
  (:mod:`pretraining.ais`) and its uncertainty; :func:`base_rate_loglik` — the exact log-likelihood of
  the independent-pixel model AIS starts from, the baseline an RBM has to beat;
* :func:`sample_snapshots` — DBN samples at several points of one Gibbs chain in the top RBM;
* :func:`nearest_distances` — distance of each image to its nearest reference digit, a check of
  samples that needs no eye;
* :func:`distortion_grid` — base digits next to seeded distortions of them;
* :func:`layer_table`, :func:`plot_learning_curves` — the per-layer learning curves of a greedy stack.

:data:`REFERENCE_LOGLIK` holds literature values for side-by-side tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from . import ais
from .distort import DistortionConfig, distort
from .models import RBM, Stack
from .plots import styled
from .seeding import bernoulli, member_generators, validate_seeds
from .checks import require_int as _check_int

Tensor = torch.Tensor

__all__ = ["REFERENCE_LOGLIK", "LogLik", "base_rate_loglik", "binarize", "distortion_grid",
           "layer_table", "nearest_distances", "plot_learning_curves", "rbm_test_loglik",
           "sample_snapshots"]

REFERENCE_LOGLIK: dict[str, float] = {
    "RBM 500 hidden, CD-1": -125.53,
    "RBM 500 hidden, CD-3": -105.50,
    "RBM 500 hidden, CD-25": -86.34,
}
"""Mean test log-likelihood (nats) of RBMs with 500 hidden units on the full, stochastically
binarised MNIST (60k training digits), estimated with AIS: Salakhutdinov & Murray, "On the
quantitative analysis of deep belief networks", ICML 2008, Table 1."""


def _check_images(name: str, x: object, width: int | None = None) -> Tensor:
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point() or x.shape[0] < 1:
        raise ValueError(f"{name} must be a non-empty float tensor (N, V), got "
                         f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{name} has {x.shape[1]} columns; expected {width}")
    return x


# --------------------------------------------------------------------------------------------
# likelihoods
# --------------------------------------------------------------------------------------------
def binarize(x: Tensor, seed: int) -> Tensor:
    """A seeded Bernoulli sample of grey levels: x (N, V) in [0, 1] -> (N, V) of 0./1., same dtype.

    Pixel i is 1 with probability x_i (as in Salakhutdinov & Murray 2008). Same seed -> same bits.
    """
    x = _check_images("x", x)
    _check_int("seed", seed, 0)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold grey levels in [0, 1]")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    return (torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) < x).to(x.dtype)


@dataclass(frozen=True)
class LogLik:
    """Mean test log-likelihood (nats per digit) of M RBMs, each value (M,) float64.

    loglik: mean over test digits of -F(v) - log Z, log Z estimated by AIS;
    ais_std: standard error of that estimate due to AIS (the delta-method s.e. of log Z);
    lower, upper: the AIS interval log(mean(w) -/+ 3 s.e.(w)) turned into log-likelihoods
        (lower may be -inf: AIS under-estimates log Z when too short, over-estimating likelihood);
    test_sem: standard error of the mean over test digits (the test set's sampling noise);
    log_z: the AIS estimate of log Z.
    """

    loglik: Tensor
    ais_std: Tensor
    lower: Tensor
    upper: Tensor
    test_sem: Tensor
    log_z: Tensor


def rbm_test_loglik(rbm: RBM, v_test: Tensor, base_data: Tensor, *, n_chains: int = 100,
                    n_betas: int = 10000, seed: int = 0) -> LogLik:
    """Mean log p(v) of binary test digits under every member of ``rbm``, log Z by AIS.

    v_test (N, V) binary 0/1 (see :func:`binarize`); base_data (N', V) in [0, 1]: the training
    digits whose pixel means give the base-rate model AIS starts from; n_chains, n_betas: AIS runs
    and temperatures (:func:`pretraining.ais.ais_log_partition`); seed: the chains' random numbers.
    """
    _check_images("v_test", v_test, rbm.n_visible)
    _check_images("base_data", base_data, rbm.n_visible)
    _check_int("n_chains", n_chains, 2)
    _check_int("n_betas", n_betas, 4)
    _check_int("seed", seed, 0)
    base = ais.base_rate_visible_bias(base_data.to(rbm.device))
    res = ais.ais_log_partition(rbm.W, rbm.b_visible, rbm.b_hidden, n_chains=n_chains,
                                n_betas=n_betas, base_visible_bias=base, seed=seed)
    neg_f = -ais.free_energy(rbm.W, rbm.b_visible, rbm.b_hidden, v_test)  # (M, N) float64
    ll = ais.log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v_test, res.log_z)
    z_lo, z_hi = res.bounds(3.0)
    per_digit = neg_f - res.log_z[:, None]
    return LogLik(loglik=ll, ais_std=res.log_z_std_error, lower=neg_f.mean(1) - z_hi,
                  upper=neg_f.mean(1) - z_lo, test_sem=per_digit.std(1) / math.sqrt(v_test.shape[0]),
                  log_z=res.log_z)


def base_rate_loglik(v_test: Tensor, base_data: Tensor) -> float:
    """Exact mean log p(v) (nats) of binary v_test (N, V) under independent pixels with the
    (clipped) pixel means of base_data (N', V) — the base-rate model AIS starts from."""
    _check_images("v_test", v_test)
    _check_images("base_data", base_data, v_test.shape[1])
    if not bool(((v_test == 0) | (v_test == 1)).all()):
        raise ValueError("v_test must be binary (0/1); see binarize")
    b = ais.base_rate_visible_bias(base_data).double().to(v_test.device)
    logp = v_test.double() * b - torch.nn.functional.softplus(b)  # log sigm(b) = b - softplus(b)
    return float(logp.sum(1).mean())


# --------------------------------------------------------------------------------------------
# samples and distortions
# --------------------------------------------------------------------------------------------
def sample_snapshots(stack: Stack, n: int, steps: Sequence[int], seed: int) -> Tensor:
    """DBN samples after ``steps`` Gibbs steps of ONE chain per sample in the top RBM, member 0.

    Runs :meth:`Stack.sample`'s chain once (same seeds, same random numbers) and, at each entry of
    ``steps`` (increasing ints >= 1), passes the current hidden sample top-down with mean-field
    probabilities. Returns (len(steps), n, V) pixel probabilities; the last snapshot equals
    ``stack.sample(n, steps[-1], [seed])[0]`` for an M = 1 stack.
    """
    if not isinstance(stack, Stack) or stack.kind != "rbm":
        raise ValueError("stack must be an RBM Stack (kind='rbm'); auto-encoder stacks do not generate")
    _check_int("n", n, 1)
    steps = list(steps) if isinstance(steps, Sequence) and not isinstance(steps, str) else steps
    if not isinstance(steps, list) or not steps or any(isinstance(s, bool) or not isinstance(s, int)
                                                       for s in steps) \
            or steps[0] < 1 or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"steps={steps!r} is not allowed; give increasing ints >= 1, e.g. [1, 10, 100]")
    seeds = validate_seeds([seed] * stack.n_members)
    top = stack.layers[-1]
    gens = member_generators(seeds, "sample", len(stack.layers), top.device)
    v = bernoulli(torch.full((stack.n_members, n, top.n_visible), 0.5, device=top.device, dtype=top.dtype), gens)
    out = []
    for step in range(1, steps[-1] + 1):
        h = bernoulli(top.hidden_probs(v), gens)
        v = bernoulli(top.visible_probs(h), gens)
        if step in steps:
            p = top.visible_probs(h)
            for layer in reversed(stack.layers[:-1]):
                p = layer.visible_probs(p)
            out.append(p[0])
    return torch.stack(out)


def nearest_distances(images: Tensor, reference: Tensor, *, chunk: int = 256) -> Tensor:
    """Euclidean distance of each image (N, V) to its nearest row of reference (R, V): (N,) float32."""
    _check_images("images", images)
    _check_images("reference", reference, images.shape[1])
    _check_int("chunk", chunk, 1)
    ref = reference.to(images.device, torch.float32)
    return torch.cat([torch.cdist(images[i:i + chunk].float(), ref).min(1).values
                      for i in range(0, images.shape[0], chunk)])


def distortion_grid(x: Tensor, n_variants: int, seed: int,
                    config: DistortionConfig = DistortionConfig()) -> Tensor:
    """Each base digit followed by ``n_variants`` seeded distortions of it.

    x (B, 784) in [0, 1] -> (B, 1 + n_variants, 784): [:, 0] the originals, [:, k] the distortion
    drawn for example id b * n_variants + k - 1 (see :func:`pretraining.distort.distort`).
    """
    _check_images("x", x, 784)
    _check_int("n_variants", n_variants, 1)
    _check_int("seed", seed, 0)
    B = x.shape[0]
    rows = x.repeat_interleave(n_variants, dim=0)
    ids = torch.arange(B * n_variants, dtype=torch.int64)
    return torch.cat([x[:, None], distort(rows, seed, ids, config).reshape(B, n_variants, -1)], dim=1)


# --------------------------------------------------------------------------------------------
# learning curves
# --------------------------------------------------------------------------------------------
def _check_histories(histories: object, sizes: Sequence[int]) -> None:
    if not isinstance(histories, Sequence) or not histories or len(histories) != len(sizes):
        raise ValueError(f"histories must be a list with one dict per layer ({len(sizes)} layers, "
                         f"from sizes {list(sizes)}), got {type(histories).__name__} of length "
                         f"{len(histories) if isinstance(histories, Sequence) else '?'}")
    for i, h in enumerate(histories):
        if not isinstance(h, Mapping) or not h.get("recon_error"):
            raise ValueError(f"histories[{i}] must be a dict with a non-empty 'recon_error' list per epoch")


def _member_mean(values: Sequence[Sequence[float]]) -> list[float]:
    """Per-epoch lists of M values -> per-epoch means."""
    return [sum(v) / len(v) for v in values]


def layer_table(histories: Sequence[Mapping[str, list]], hidden_sizes: Sequence[int]) -> list[dict]:
    """One row per layer: n_hidden, epochs, recon_error_first_epoch, recon_error_last_epoch and, for
    RBMs (histories with 'pll'), pll_first_epoch, pll_last_epoch (means over members).

    histories: as returned by :func:`pretraining.experiments.pretrained_stack` (per layer a dict of
    per-epoch lists of M floats); hidden_sizes: the stack's hidden sizes.
    """
    _check_histories(histories, hidden_sizes)
    rows = []
    for n_hidden, h in zip(hidden_sizes, histories):
        rec = _member_mean(h["recon_error"])
        row = {"n_hidden": int(n_hidden), "epochs": len(rec),
               "recon_error_first_epoch": rec[0], "recon_error_last_epoch": rec[-1]}
        if h.get("pll"):
            pll = _member_mean(h["pll"])
            row.update(pll_first_epoch=pll[0], pll_last_epoch=pll[-1])
        rows.append(row)
    return rows


def plot_learning_curves(histories: Mapping[str, Sequence[Mapping[str, list]]],
                         hidden_sizes: Sequence[int]) -> Figure:
    """Reconstruction error per epoch of every layer of each stack, and the RBMs' pseudo-log-likelihood.

    histories: {"rbm": [...], "dae": [...]} (either may be missing), per layer as in :func:`layer_table`.
    One panel per stack kind for the reconstruction error (log scale) and one for the RBMs' PLL.
    """
    if not isinstance(histories, Mapping) or not histories or set(histories) - {"rbm", "dae"}:
        raise ValueError(f"histories must be a dict with keys 'rbm' and/or 'dae', got {histories!r:.80}")
    for h in histories.values():
        _check_histories(h, hidden_sizes)
    panels = [("rbm", "recon_error"), ("dae", "recon_error"), ("rbm", "pll")]
    panels = [p for p in panels if p[0] in histories]
    names = {"recon_error": "reconstruction error (MSE per pixel)", "pll": "pseudo-log-likelihood (nats)"}
    kinds = {"rbm": "RBM stack", "dae": "denoising auto-encoder stack"}
    with styled():
        fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
        for ax, (kind, key) in zip(axes[0], panels):
            for i, (n_hidden, h) in enumerate(zip(hidden_sizes, histories[kind]), start=1):
                y = _member_mean(h[key])
                ax.plot(range(1, len(y) + 1), y, marker="o", label=f"layer {i} ({n_hidden} units)")
            if key == "recon_error":
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel(names[key])
            ax.set_title(f"{kinds[kind]}: {key.replace('_', ' ') if key != 'pll' else 'PLL'}")
            ax.legend(fontsize=9)
        fig.tight_layout()
    return fig
