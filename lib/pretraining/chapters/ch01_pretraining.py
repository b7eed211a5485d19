"""Chapter 1: a greedily pre-trained stack of RBMs (and of denoising auto-encoders) as a generative model.

The notebook ``chapters/01_pretraining.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters (the stack parameters are shared with chapter 2,
  which fine-tunes exactly these stacks, found in the artifact cache);
* :func:`run` — pre-trains both stacks, estimates the first RBM's test log-likelihood by annealed
  importance sampling, draws DBN samples (all cached where it costs);
* one function per section — :func:`setup`, :func:`learning_curves`, :func:`likelihood`,
  :func:`receptive_fields`, :func:`samples`, :func:`distortions`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers, the results file.

Helpers: :func:`binarize` (a seeded Bernoulli sample of grey-level digits), :func:`rbm_test_loglik`
(AIS, :mod:`pretraining.analysis.ais`), :func:`base_rate_loglik` (the independent-pixel model AIS
starts from), :func:`sample_snapshots` (DBN samples along one Gibbs chain), :func:`nearest_distances`
(a check of samples that needs no eye), :func:`distortion_grid`, :func:`layer_table` and
:func:`plot_learning_curves` (the per-layer learning curves of a greedy stack), :func:`plot_chains` and
:func:`plot_samples_beside_digits` (the DBN's samples). Every figure is the page's width (at most
:data:`pretraining.analysis.figures.PAGE_WIDTH`) whatever the number of layers, steps or samples; the
sections glue them (``ch.figure``) for the notebook's numbered, captioned ``{glue:figure}`` directives.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib import ticker
from matplotlib.figure import Figure

from ..analysis import ais, figures
from ..analysis.references import SALAKHUTDINOV2008_TABLE1
from ..book import claims, runtime
from ..book.experiments import pretrained_stack, stack_configs
from ..book.specs import STACK_PARAMS, ChapterSpec, Int, Param, fits_memory, fits_split
from ..book.words import plural
from ..core.checks import require_int
from ..core.data import SPLIT_SIZES
from ..core.distort import DistortionConfig, distort
from ..core.memory import training_bytes
from ..core.models import RBM, Stack
from ..core.seeding import (
    bernoulli,
    generator,
    member_generators,
    member_seeds,
    validate_seeds,
)

Tensor = torch.Tensor

__all__ = [
    "SPEC",
    "LogLik",
    "Result",
    "base_rate_loglik",
    "binarize",
    "check_samples",
    "claim_parts",
    "distortion_grid",
    "distortions",
    "finish",
    "layer_table",
    "learning_curves",
    "likelihood",
    "nearest_distances",
    "plot_chains",
    "plot_learning_curves",
    "plot_samples_beside_digits",
    "rbm_test_loglik",
    "receptive_fields",
    "run",
    "sample_snapshots",
    "samples",
    "setup",
    "start",
]

KINDS = {"rbm": "RBM", "dae": "denoising auto-encoder"}
_BINARIZE, _SHOWN = 0xB1A, 0x5E1  # generator tags: the binarised test digits, the test digits shown


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes the stacks need (one member each), and the parameter that drives it."""
    n_train = SPLIT_SIZES[p["dataset"]][0]
    return training_bytes(1, n_train, [784, *p["hidden_sizes"]], p["pretrain_batch_size"]), ["hidden_sizes"]


SPEC = ChapterSpec(
    "01_pretraining",
    claim="A stack of RBMs learned greedily, layer by layer, is a generative model of digits; its first "
          "layer learns stroke-like receptive fields.",
    paper="Stroke-like first-layer filters; samples look like digits (Hinton et al. 2006).",
    params={
        **STACK_PARAMS,
        "ais_chains": Param(100, Int(min=2, max=100_000), "AIS runs for log Z of the first RBM"),
        "ais_betas": Param(2000, Int(min=4, max=10_000_000),
                           "AIS inverse temperatures (Salakhutdinov & Murray use 14,500)"),
        "gibbs_steps": Param(1000, Int(min=1, max=10_000_000),
                             "Gibbs steps in the top RBM before a DBN sample is read out"),
        "n_samples": Param(100, Int(min=1, max=400), "DBN samples shown (and checked against the training digits)"),
    },
    rules=(fits_split("train", "pretrain_batch_size"), fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


@dataclass
class Result:
    """What the chapter computed.

    stacks, histories: per kind ("rbm", "dae") the stack (one member) and its per-layer histories;
    tables: per kind the rows of :func:`layer_table`; loglik: the first RBM's :class:`LogLik` fields
    as floats; base_loglik: independent pixels; steps: the Gibbs steps of the snapshots; snaps
    (len(steps), n_samples, 784): DBN samples along the chains; shown (n_samples,): the test digits
    drawn beside them; sample_check: :func:`check_samples` of the samples; seconds: wall time of the
    pre-training (or of loading the stacks from the cache).
    """

    stacks: dict[str, Stack]
    histories: dict[str, list[dict]]
    tables: dict[str, list[dict]]
    loglik: dict[str, float]
    base_loglik: float
    steps: list[int]
    snaps: Tensor
    shown: Tensor
    sample_check: dict
    seconds: float


def run(ch: runtime.Chapter) -> Result:
    """Pre-train both stacks, measure the first RBM's likelihood, draw DBN samples."""
    p, data = ch.params, ch.data
    configs = stack_configs(p)
    seeds = member_seeds(p["seed"], 1)
    stacks, histories = {}, {}
    t0 = time.perf_counter()
    for kind in KINDS:
        stacks[kind], histories[kind] = pretrained_stack(ch, kind, p["hidden_sizes"], configs[kind], seeds)
    seconds = time.perf_counter() - t0
    v_test = binarize(data.test.x, p["seed"])
    rbm1 = stacks["rbm"].layers[0]
    key = {"stack": {"kind": "rbm", "hidden_sizes": p["hidden_sizes"],
                     "config": dataclasses.asdict(configs["rbm"]), "seeds": seeds},
           "n_chains": p["ais_chains"], "n_betas": p["ais_betas"], "seed": p["seed"]}

    def compute_ais():
        r = rbm_test_loglik(rbm1, v_test, data.train.x, n_chains=p["ais_chains"], n_betas=p["ais_betas"],
                            seed=p["seed"])
        return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}, {}

    ll, _ = ch.cached("rbm1_ais_loglik", key, compute_ais, version=1)
    steps = sorted({s for s in (1, 10, 100, p["gibbs_steps"]) if s <= p["gibbs_steps"]})
    shown = torch.randperm(len(data.test), generator=generator(p["seed"], _SHOWN))[:p["n_samples"]]
    snaps = sample_snapshots(stacks["rbm"], p["n_samples"], steps, p["seed"]).cpu()
    return Result(
        stacks=stacks, histories=histories,
        tables={k: layer_table(histories[k], p["hidden_sizes"]) for k in KINDS},
        loglik={k: float(v[0]) for k, v in ll.items()},
        base_loglik=base_rate_loglik(v_test, data.train.x),
        steps=steps, snaps=snaps, shown=shown, seconds=seconds,
        sample_check=check_samples(snaps, data.test.x.cpu()[shown], data.train.x.cpu(), data.train.y.cpu()))


# -- the sections ------------------------------------------------------------------------------

def setup(ch: runtime.Chapter) -> None:
    """Data and set-up: sizes of the data and of the stacks."""
    data = ch.data
    ch.glue("n_train", len(data.train), fmt=",d")
    ch.glue("n_test", len(data.test), fmt=",d")
    ch.glue("sizes", "-".join(map(str, [data.train.x.shape[1], *ch.params["hidden_sizes"]])))


def _curves_fall(res: Result) -> dict[str, bool]:
    return {kind: all(r["recon_error_last_epoch"] < r["recon_error_first_epoch"] for r in rows)
            for kind, rows in res.tables.items()}


def learning_curves(ch: runtime.Chapter, res: Result) -> None:
    """The per-layer learning curves of both stacks, and a table of first and last epochs."""
    p = ch.params
    ch.glue("train_seconds", res.seconds, fmt=".0f")
    ch.glue("cache_note", "trained now" if ch.store.misses else
            "loaded from the artifact cache (trained by an earlier run)")
    ch.glue("n_layers", len(p["hidden_sizes"]), fmt="d")
    ch.glue("epochs_note", _epochs_text(p["rbm_epochs"], p["dae_epochs"]))
    ch.figure("ch1_learning_curves", plot_learning_curves(res.histories, p["hidden_sizes"]))
    runtime.show(_styled_layer_table(res.tables))
    falling = _curves_fall(res)
    if min(p["rbm_epochs"], p["dae_epochs"]) < 2:
        text = "With a single epoch per layer there is no curve to judge."
    elif all(falling.values()):
        text = "In both stacks the reconstruction error of every layer fell from the first to the last epoch."
    else:
        text = ("Not every layer's reconstruction error fell from the first to the last epoch: "
                + ", ".join(f"{k.upper()} {'yes' if v else 'no'}" for k, v in falling.items()) + ".")
    ch.glue("curves_verdict", text)



def _epochs_text(rbm_epochs: int, dae_epochs: int) -> str:
    if rbm_epochs == dae_epochs:
        return f"{plural(rbm_epochs, 'epoch')} per layer in both stacks"
    return f"{plural(rbm_epochs, 'epoch')} per RBM, {plural(dae_epochs, 'epoch')} per auto-encoder"


def _significant(v: float, digits: int = 3) -> str:
    """A small positive number with ``digits`` significant digits, in fixed notation (0.0123, 0.00456)."""
    if not math.isfinite(v):
        return "—"
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


_RECON = "reconstruction error (MSE)"
_PLL = "pseudo-log-likelihood (nats)"


def _styled_layer_table(tables: Mapping[str, Sequence[Mapping]]):
    """The rows of :func:`layer_table` of each stack as one table: words for headers, layers 1..L (the
    epochs, the same for every layer of a stack, are in the text)."""
    names = {"rbm": "RBMs", "dae": "auto-encoders"}
    records, index = [], []
    for kind, rows in tables.items():
        for i, r in enumerate(rows, start=1):
            index.append((names.get(kind, kind), f"layer {i}"))
            records.append({("", "units"): r["n_hidden"],
                            (_RECON, "first epoch"): r["recon_error_first_epoch"],
                            (_RECON, "last epoch"): r["recon_error_last_epoch"],
                            (_PLL, "first epoch"): r.get("pll_first_epoch", math.nan),
                            (_PLL, "last epoch"): r.get("pll_last_epoch", math.nan)})
    frame = pd.DataFrame(records, index=pd.MultiIndex.from_tuples(index))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    if frame[_PLL].isna().all().all():
        frame = frame.drop(columns=_PLL, level=0)
    fmt = {c: "{:,.0f}" if c[0] == "" else _significant if c[0] == _RECON else "{:.1f}" for c in frame.columns}
    return (frame.style.format(fmt, na_rep="—")
            .set_table_styles([{"selector": "th.row_heading, th.col_heading.level1, td", "props": "white-space: nowrap;"},
                               {"selector": "td, th.col_heading", "props": "padding-left: 0.6em;"},
                               {"selector": "td", "props": "text-align: right;"}]))


def likelihood(ch: runtime.Chapter, res: Result) -> None:
    """The first RBM's AIS test log-likelihood beside independent pixels and the literature."""
    ll, base = res.loglik, res.base_loglik
    gain = ll["loglik"] - base
    ch.glue("ais_chains", ch.params["ais_chains"], fmt=",d")
    ch.glue("ais_betas", ch.params["ais_betas"], fmt=",d")
    for key, k in (("ais_ll", "loglik"), ("ais_std", "ais_std"), ("test_sem", "test_sem")):
        ch.glue(key, ll[k], fmt=".2f")
    ch.glue("ais_interval", "[" + ", ".join(f"{ll[k]:.2f}" if math.isfinite(ll[k]) else ("+∞" if ll[k] > 0 else "−∞")
                                             for k in ("lower", "upper")) + "]")
    ch.glue("base_ll", base, fmt=".2f")
    ch.glue("ll_verdict", f"The RBM is {'better' if gain > 0 else 'worse'} by {abs(gain):.1f} nats per digit"
            + (", far more than the AIS uncertainty: it has learned structure beyond the pixel frequencies."
               if gain > 3 * ll["ais_std"] else
               ": no clear gain over independent pixels (the gain must exceed three AIS standard errors)."))
    runtime.show(_likelihood_table(ch.params, ll["loglik"], base))


def _likelihood_table(p: Mapping, loglik: float, base: float):
    """This chapter's first RBM (parameters ``p``) and independent pixels beside Salakhutdinov & Murray's
    RBMs, grouped by source (the training sets, this chapter's and their 60,000 digits, are in the text)."""
    value = "test log-likelihood (nats)"
    rows = [(f"RBM, {plural(p['hidden_sizes'][0], 'hidden unit')}, CD-1, {plural(p['rbm_epochs'], 'epoch')}",
             "this chapter", loglik),
            ("independent pixels", "this chapter", base)]
    for name, v in SALAKHUTDINOV2008_TABLE1.numbers["test_loglik"].items():
        rows.append((name.replace("RBM 500 hidden", "RBM, 500 hidden units"), "Salakhutdinov & Murray (2008)", v))
    frame = pd.DataFrame({value: [v for *_, v in rows]},
                         index=pd.MultiIndex.from_tuples([(src, model) for model, src, _ in rows]))
    return (frame.style.format("{:.2f}")
            .set_table_styles([{"selector": "th.row_heading", "props": "text-align: left; padding-right: 1.5em;"},
                               {"selector": "th.row_heading.level1", "props": "white-space: nowrap;"},
                               {"selector": "th.col_heading", "props": "width: 8em;"},
                               {"selector": "td", "props": "text-align: right; white-space: nowrap;"}]))


def receptive_fields(ch: runtime.Chapter, res: Result) -> None:
    """The first-layer weights of both stacks as 28 x 28 tiles (one figure per stack)."""
    n = min(100, ch.params["hidden_sizes"][0])
    ch.glue("n_fields", n, fmt="d")
    for kind, name in KINDS.items():
        ch.figure(f"ch1_fields_{kind}", figures.receptive_fields(
            res.stacks[kind].layers[0].W[0].cpu(), n, title=f"{name} stack, first layer ({plural(n, 'unit')})"))


def check_samples(snaps: Tensor, test_x: Tensor, train_x: Tensor, train_y: Tensor) -> dict:
    """How digit-like DBN samples are, with no eye: distances to and classes of the nearest training digits.

    snaps (S, N, V): samples after each of S numbers of Gibbs steps; test_x (N', V): real test digits;
    train_x (N_train, V), train_y (N_train,). Returns the medians of the nearest-training-digit
    distance of the final samples and of the test digits, that of the average training digit,
    the classes of the final samples' nearest digits (count, the most common one and its share)
    and the number of classes after each snapshot.
    """
    nn_labels = [train_y[torch.cdist(s, train_x, compute_mode=_EXACT).argmin(1)] for s in snaps]
    final = nn_labels[-1]
    top = int(final.mode().values)
    return {"median_samples": float(nearest_distances(snaps[-1], train_x).median()),
            "median_test": float(nearest_distances(test_x, train_x).median()),
            "mean_digit": float(nearest_distances(train_x.mean(0, keepdim=True), train_x)[0]),
            "n_classes": int(final.unique().numel()), "top_class": top,
            "top_share": float((final == top).float().mean()),
            "classes_by_step": [int(lab.unique().numel()) for lab in nn_labels]}


def samples(ch: runtime.Chapter, res: Result) -> None:
    """DBN samples along the chains and beside real test digits, with the nearest-digit check."""
    p, data = ch.params, ch.data
    ch.glue("n_samples", p["n_samples"])
    ch.glue("gibbs_steps", p["gibbs_steps"], fmt=",d")
    ch.glue("n_chains_shown", min(25, p["n_samples"]), fmt="d")
    steps = [f"{s:,}" for s in res.steps]
    ch.glue("chain_steps", steps[0] if len(steps) == 1 else ", ".join(steps[:-1]) + " and " + steps[-1])
    ch.figure("ch1_chains", plot_chains(res.snaps, res.steps))
    k = min(p["n_samples"], 100)
    ch.glue("n_shown", k, fmt="d")
    ch.figure("ch1_samples", plot_samples_beside_digits(res.snaps[-1][:k], data.test.x.cpu()[res.shown][:k],
                                                        p["gibbs_steps"]))
    c = res.sample_check
    ch.glue("classes_by_step", "; ".join(f"after {plural(s, 'step')}: {n}"
                                         for s, n in zip(res.steps, c["classes_by_step"])))
    ch.glue("top_class", f"{c['top_share']:.0%} of the final samples are nearest to a {c['top_class']}")
    ch.glue("nn_test", c["median_test"], fmt=".2f")
    ch.glue("nn_samples", c["median_samples"], fmt=".2f")
    ch.glue("nn_mean", c["mean_digit"], fmt=".2f")
    ch.glue("n_classes", c["n_classes"], fmt="d")
    closer = c["median_samples"] < c["mean_digit"]
    ch.glue("samples_verdict", "The samples are closer to real digits than the average digit is, and most "
            "classes appear: the stack generates digit-like images." if closer and c["n_classes"] >= 8 else
            "By this check the samples are not yet convincing digits (closer than the average digit: "
            f"{'yes' if closer else 'no'}; classes covered: {c['n_classes']} of 10).")


def distortions(ch: runtime.Chapter) -> None:
    """Base digits (the first training digit of each of six classes) and seeded distortions of them
    (the 'very large set of distorted digits')."""
    train = ch.data.train
    labels = train.y.cpu()
    picks = [int((labels == c).nonzero()[0]) for c in range(10) if bool((labels == c).any())][:6]
    grid = distortion_grid(train.x.cpu()[picks], 7, ch.params["seed"])
    with figures.styled():
        fig, ax = plt.subplots(figsize=(6.0, 4.9), layout="constrained")
        figures.image_grid(grid.reshape(-1, 784), ncols=8, vmin=0, vmax=1, ax=ax,
                           title="base digit (first column) and seven seeded distortions")
    ch.figure("ch1_distortions", fig)


# -- the claim -----------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C1 (DESIGN.md), each tested on this run's numbers."""
    p, ll = ch.params, res.loglik
    falling = _curves_fall(res)
    one_epoch = min(p["rbm_epochs"], p["dae_epochs"]) < 2
    gain = ll["loglik"] - res.base_loglik
    c = res.sample_check
    closer = c["median_samples"] < c["mean_digit"]
    return [
        claims.part("a", "every layer's training objective improves",
                    None if one_epoch else all(falling.values()),
                    "one epoch per layer gives no curve to judge" if one_epoch else
                    "reconstruction error fell from the first to the last epoch in every layer: "
                    + ", ".join(f"{k.upper()} {'yes' if v else 'no'}" for k, v in falling.items()),
                    **{f"{k}_falls": v for k, v in falling.items()}),
        claims.part("b", "the stack is a generative model: the first RBM's test log-likelihood is far "
                    "above independent pixels", gain > 3 * ll["ais_std"],
                    f"{ll['loglik']:.1f} nats (AIS, s.e. {ll['ais_std']:.2f}) vs {res.base_loglik:.1f} for "
                    f"independent pixels; the bar is a gain above three AIS standard errors",
                    effect=gain, gain_nats=gain, ais_std=ll["ais_std"]),
        claims.part("c", "first-layer receptive fields are local, stroke-like", None,
                    "the book has no numerical test of stroke-likeness yet; the figures show the fields"),
        claims.part("d", "samples look like digits of (almost) all classes", closer and c["n_classes"] >= 8,
                    f"median distance of the samples to their nearest training digit {c['median_samples']:.2f} "
                    f"(test digits {c['median_test']:.2f}, the average digit {c['mean_digit']:.2f}); "
                    f"{c['n_classes']} of 10 classes (the bar: closer than the average digit and at least 8)",
                    effect=c["n_classes"], n=len(res.shown), **{k: c[k] for k in ("median_samples", "median_test", "mean_digit", "n_classes")}),
    ]


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    parts = claim_parts(ch, res)
    ll = res.loglik
    c = res.sample_check
    results = {kind: {"layers": [{k: r[k] for k in ("n_hidden", "recon_error_first_epoch", "recon_error_last_epoch")}
                                 for r in rows]} for kind, rows in res.tables.items()}
    results["rbm"].update(ais_test_loglik_nats=ll["loglik"], ais_test_loglik_std=ll["ais_std"],
                          base_rate_test_loglik_nats=res.base_loglik)
    finding = (f"Greedy {ch.glued['sizes']} RBM stack: first-RBM test log-likelihood "
               f"{ll['loglik']:.1f} ± {ll['ais_std']:.2f} nats (AIS) vs {res.base_loglik:.1f} for independent "
               f"pixels; DBN samples' median distance to the nearest training digit {c['median_samples']:.2f} "
               f"(test digits {c['median_test']:.2f}), {c['n_classes']} of 10 classes.")
    ch.finish(results, parts=parts, finding=finding)


# -- helpers ---------------------------------------------------------------------------------------

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
    require_int("seed", seed, 0)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold grey levels in [0, 1]")
    gen = generator(seed, _BINARIZE, device=x.device)
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
    and temperatures (:func:`pretraining.analysis.ais.ais_log_partition`); seed: the chains' random numbers.
    """
    _check_images("v_test", v_test, rbm.n_visible)
    _check_images("base_data", base_data, rbm.n_visible)
    require_int("n_chains", n_chains, 2)
    require_int("n_betas", n_betas, 4)
    require_int("seed", seed, 0)
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
    require_int("n", n, 1)
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


def _steps_title(s: int) -> str:
    return plural(s, "Gibbs step")


def plot_chains(snaps: Tensor, steps: Sequence[int], n_chains: int = 25) -> Figure:
    """The first ``n_chains`` (a square grid) of the chains of :func:`sample_snapshots` after each number of steps.

    snaps (S, N, 784), steps: the S numbers of Gibbs steps. One panel per snapshot, at most four in a
    row (more wrap into rows), the figure the page's width however many snapshots there are.
    """
    if not isinstance(snaps, Tensor) or snaps.dim() != 3 or snaps.shape[0] != len(steps):
        raise ValueError(f"snaps must be (len(steps), N, V) with len(steps)={len(steps)}, got "
                         f"{tuple(snaps.shape) if isinstance(snaps, Tensor) else type(snaps).__name__}")
    n = min(require_int("n_chains", n_chains, 1), snaps.shape[1])
    side = math.ceil(math.sqrt(n))
    ncols = min(len(steps), 4)
    nrows = math.ceil(len(steps) / ncols)
    panel = figures.PAGE_WIDTH / max(ncols, 3)
    with figures.styled():
        fig, axes = plt.subplots(nrows, ncols, figsize=(max(panel * ncols, 4.6), nrows * (panel + 0.35)),
                                 squeeze=False, layout="constrained")
        for ax in axes.flat[len(steps):]:
            fig.delaxes(ax)
        for ax, s, img in zip(axes.flat, steps, snaps):
            figures.image_grid(img[:n], ncols=side, vmin=0, vmax=1, ax=ax, title=_steps_title(s))
    return fig


def plot_samples_beside_digits(samples: Tensor, digits: Tensor, gibbs_steps: int) -> Figure:
    """DBN samples (N, 784) and real digits (N', 784) as two square grids side by side, the page's width."""
    _check_images("samples", samples)
    _check_images("digits", digits)
    side = math.ceil(math.sqrt(max(len(samples), len(digits))))
    panel = figures.PAGE_WIDTH / 2
    with figures.styled():
        fig, (a, b) = plt.subplots(1, 2, figsize=(figures.PAGE_WIDTH, panel + 0.4), layout="constrained")
        figures.image_grid(samples, ncols=side, vmin=0, vmax=1, ax=a,
                           title=f"DBN samples ({_steps_title(gibbs_steps)})")
        figures.image_grid(digits, ncols=side, vmin=0, vmax=1, ax=b, title="real test digits (random)")
    return fig


_EXACT = "donot_use_mm_for_euclid_dist"
"""torch.cdist's exact mode (see :func:`nearest_distances`)."""


def nearest_distances(images: Tensor, reference: Tensor, *, chunk: int = 256) -> Tensor:
    """Euclidean distance of each image (N, V) to its nearest row of reference (R, V): (N,) float32.

    Computed directly, not through the matrix-product form |x|² + |y|² - 2x·y, whose cancellation
    puts identical images about 1e-3 apart and makes the result depend on the chunking."""
    _check_images("images", images)
    _check_images("reference", reference, images.shape[1])
    require_int("chunk", chunk, 1)
    ref = reference.to(images.device, torch.float32)
    return torch.cat([torch.cdist(images[i:i + chunk].float(), ref, compute_mode=_EXACT).min(1).values
                      for i in range(0, images.shape[0], chunk)])


def distortion_grid(x: Tensor, n_variants: int, seed: int,
                    config: DistortionConfig = DistortionConfig()) -> Tensor:
    """Each base digit followed by ``n_variants`` seeded distortions of it.

    x (B, 784) in [0, 1] -> (B, 1 + n_variants, 784): [:, 0] the originals, [:, k] the distortion
    drawn for example id b * n_variants + k - 1 (see :func:`pretraining.core.distort.distort`).
    """
    _check_images("x", x, 784)
    require_int("n_variants", n_variants, 1)
    require_int("seed", seed, 0)
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

    histories: as returned by :func:`pretraining.book.experiments.pretrained_stack` (per layer a dict of
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


_LAYER_STYLES = (("o", "-"), ("s", "--"), ("^", ":"), ("D", "-."), ("v", (0, (5, 1))))
"""Marker and line style of layer 1, 2, ...: the curves of layers stay apart where they overlap."""


def _log_axis(ax, values: Sequence[float]) -> None:
    """A log y axis labelled with plain numbers: at 1-2-5 steps where two of them fall in range, else at even steps."""
    lo, hi = min(values), max(values)
    if lo > 0:
        lo, hi = lo / 1.15, hi * 1.15
        ax.set_yscale("log")
        ax.set_ylim(lo, hi)
        decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        steps = [m * 10.0 ** e for e in decades for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
        ax.yaxis.set_major_locator(ticker.FixedLocator(steps) if len(steps) >= 2 else ticker.MaxNLocator(nbins=4))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())


def plot_learning_curves(histories: Mapping[str, Sequence[Mapping[str, list]]],
                         hidden_sizes: Sequence[int]) -> Figure:
    """Per epoch, every layer's reconstruction error in each stack, the RBMs' pseudo-log-likelihood and
    the auto-encoders' training loss (denoising cross-entropy).

    histories: {"rbm": [...], "dae": [...]} (either may be missing), per layer as in :func:`layer_table`.
    Panels on a grid two wide (the stacks side by side; reconstruction error on a log scale above,
    each kind's own objective below), the page's width whatever the number of layers; one legend
    for the layers, each with its colour, marker and line style.
    """
    if not isinstance(histories, Mapping) or not histories or set(histories) - {"rbm", "dae"}:
        raise ValueError(f"histories must be a dict with keys 'rbm' and/or 'dae', got {histories!r:.80}")
    for h in histories.values():
        _check_histories(h, hidden_sizes)
    panels = [("rbm", "recon_error"), ("dae", "recon_error"), ("rbm", "pll"), ("dae", "loss")]
    panels = [(kind, key) for kind, key in panels
              if kind in histories and all(layer.get(key) for layer in histories[kind])]
    titles = {"recon_error": "reconstruction error", "pll": "pseudo-log-likelihood", "loss": "denoising loss"}
    ylabels = {"recon_error": "MSE per input unit", "pll": "nats per input", "loss": "cross-entropy per input (nats)"}
    kinds = {"rbm": "RBMs", "dae": "auto-encoders"}
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    with figures.styled():
        fig, axes = plt.subplots(nrows, ncols, figsize=(figures.PAGE_WIDTH if ncols == 2 else 5.0, 2.9 * nrows + 0.5),
                                 squeeze=False, layout="constrained")
        for ax in axes.flat[len(panels):]:
            fig.delaxes(ax)
        palette = plt.get_cmap("tab10").colors
        for ax, (kind, key) in zip(axes.flat, panels):
            values, n_epochs = [], 1
            for i, (n_hidden, h) in enumerate(zip(hidden_sizes, histories[kind])):
                y = _member_mean(h[key])
                values += y
                n_epochs = max(n_epochs, len(y))
                marker, style = _LAYER_STYLES[i % len(_LAYER_STYLES)]
                ax.plot(range(1, len(y) + 1), y, marker=marker, linestyle=style, color=palette[i % len(palette)],
                        markevery=max(1, len(y) // 10), label=f"layer {i + 1} ({plural(int(n_hidden), 'unit')})")
            if key == "recon_error":
                _log_axis(ax, values)
            ax.set_xlim(0.5, n_epochs + 0.5)
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabels[key])
            ax.set_title(f"{kinds[kind]}: {titles[key]}")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3))
    return fig
