"""Chapter 1: a greedily pre-trained stack of RBMs (and of denoising auto-encoders) as a generative model.

The notebook ``chapters/01_pretraining.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters (the stack parameters are shared with chapter 2,
  which fine-tunes exactly these stacks, found in the artifact cache);
* :func:`run` — pre-trains both (grey-level) stacks; trains an RBM on binarised digits and bounds its
  test log-likelihood from above (AIS) and from below (RAISE), checked on small RBMs whose log Z is
  exact (:func:`ais_check`); draws DBN samples from random bits and from the codes of real test digits
  and judges them with a classifier trained on real digits (all cached where it costs);
* one function per section — :func:`setup`, :func:`learning_curves`, :func:`likelihood`,
  :func:`likelihood_check`, :func:`receptive_fields`, :func:`samples`, :func:`distortions`;
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
import numpy as np
import pandas as pd
import torch
from matplotlib import ticker
from matplotlib.figure import Figure

from ..analysis import ais, figures, stats
from ..analysis.references import SALAKHUTDINOV2008_TABLE1
from ..book import claims, runtime
from ..book.experiments import pretrained_stack, stack_configs
from ..book.specs import MAX_EPOCHS, STACK_PARAMS, ChapterSpec, Float, Int, IntList, Param, fits_memory, fits_split
from ..book.workplan import selection_job, split_sizes, stack_jobs
from ..book.words import plural
from ..core.checks import require_int
from ..core.data import SPLIT_SIZES, Subset
from ..core.distort import DistortionConfig, distort
from ..core.memory import training_bytes
from ..core.models import RBM, Classifier, Stack
from ..core.rehearsal import Job
from ..core.selection import SelectionConfig, select_and_train
from ..core.train import FinetuneConfig, RBMConfig, evaluate, train_rbm
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
    "CLASSIFIER",
    "LogLik",
    "Result",
    "ais_check",
    "base_rate_loglik",
    "base_rate_per_digit",
    "binarize",
    "check_samples",
    "claim_parts",
    "class_probabilities",
    "class_starts",
    "distortion_grid",
    "distortions",
    "finish",
    "judge",
    "layer_table",
    "learning_curves",
    "likelihood",
    "likelihood_check",
    "likelihood_sandwich",
    "nearest_distances",
    "plot_ais_check",
    "plot_chains",
    "plot_learning_curves",
    "plot_samples_beside_digits",
    "rbm_test_loglik",
    "receptive_fields",
    "run",
    "sample_judge",
    "sample_snapshots",
    "samples",
    "setup",
    "start",
    "top_inputs",
    "work",
]

KINDS = {"rbm": "RBM", "dae": "denoising auto-encoder"}
# generator tags: the binarised test digits, the test digits shown, the binarised training digits, the
# test digits whose codes start the chains, the test digits RAISE and the small-RBM check use (a random
# subset: the test set is stored sorted by class)
_BINARIZE, _SHOWN, _BINARIZE_TRAIN, _STARTS, _RAISE = 0xB1A, 0x5E1, 0xB1B, 0x57A, 0x4A1
LONGER = 4
"""The AIS check's longer runs: LONGER x the chains and LONGER x the temperatures of the chapter's AIS."""
CLASSIFIER = {"sizes": [784, 300, 10], "batch_size": 50, "lr_grid": (0.1, 0.2371, 0.5623, 1.334, 3.162),
              "patience": 3}
"""The judge of the samples: a one-hidden-layer net trained on the real training digits (an instrument,
not a compared condition; its test error is reported beside its verdicts), its rate chosen and its
training stopped on the validation digits by the book's protocol (:mod:`pretraining.core.selection`)."""
MIN_CLASSES, MIN_CONFIDENCE = 8, 0.8
"""Part (d)'s bar: the judge finds at least MIN_CLASSES classes among the samples, and is on average at
least MIN_CONFIDENCE sure of its label (real test digits: about 0.95)."""


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
        "n_samples": Param(100, Int(min=10, max=400), "DBN samples shown (and judged by a classifier)"),
        "ais_check_hidden": Param([10, 15, 20], IntList(min=1, max=20, max_len=6),
                                  "hidden units of the small RBMs whose exact log Z checks AIS and RAISE"),
        "raise_digits": Param(500, Int(min=2, max=10_000),
                              "test digits whose log-likelihood RAISE bounds from below (one reverse chain each)"),
        "classifier_epochs": Param(10, Int(min=1, max=1000),
                                   "epoch budget of the classifier that judges the samples (stopped early on validation)"),
        "top_epochs": Param(40, Int(min=1, max=MAX_EPOCHS),
                            "PCD epochs of the second top RBM (on the codes of the layer below) that generates samples"),
        "top_lr": Param(0.002, Float(gt=0, max=10), "PCD learning rate of that top RBM"),
    },
    rules=(fits_split("train", "pretrain_batch_size"), fits_split("test", "raise_digits", "n_samples"),
           fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


@dataclass
class Result:
    """What the chapter computed.

    stacks, histories: per kind ("rbm", "dae") the grey-level stack (one member) and its per-layer
    histories; tables: per kind the rows of :func:`layer_table`; binary_history: the training history
    of the RBM trained on binarised digits (the one whose likelihood is reported; its pseudo-log-
    likelihood is computed on binary vectors); loglik: that RBM's :class:`LogLik` fields as floats;
    sandwich: its RAISE and AIS log-likelihoods of the first ``raise_digits`` test digits
    (:func:`likelihood_sandwich`); base_loglik: independent pixels on all test digits; ais_check:
    the rows of :func:`ais_check` (small RBMs whose exact log Z is known); steps: the Gibbs steps of
    the snapshots; snaps (len(steps), n_samples, 784): DBN samples along chains started from random
    bits; data_snaps: the same from the codes of real test digits (``starts``, n_samples indices,
    the same number of each class); pcd_snaps: from random bits, with the top RBM replaced by one
    trained with persistent CD (:func:`pcd_top`); shown (n_samples,): the test digits drawn beside the samples;
    sample_check: :func:`check_samples` of the random-start samples; judged: per kind of sample
    ("random bits", "test-digit codes", "PCD top level") and for the real test digits shown, :func:`judge` of the classifier's
    probabilities; classifier_error: its test error; seconds: wall time of the pre-training (or of
    loading the stacks from the cache).
    """

    stacks: dict[str, Stack]
    histories: dict[str, list[dict]]
    tables: dict[str, list[dict]]
    binary_history: dict[str, list]
    loglik: dict[str, float]
    sandwich: dict
    base_loglik: float
    ais_check: list[dict]
    steps: list[int]
    snaps: Tensor
    data_snaps: Tensor
    pcd_snaps: Tensor
    starts: Tensor
    shown: Tensor
    sample_check: dict
    judged: dict[str, dict]
    classifier_error: float
    seconds: float


def run(ch: runtime.Chapter) -> Result:
    """Pre-train both stacks; train an RBM on binarised digits and bound its test log-likelihood from
    both sides (AIS, RAISE), checked on small RBMs whose log Z is exact; draw DBN samples from random
    bits and from the codes of real test digits, and judge them with a classifier."""
    p, data = ch.params, ch.data
    configs = stack_configs(p)
    seeds = member_seeds(p["seed"], 1)
    stacks, histories = {}, {}
    t0 = time.perf_counter()
    for kind in KINDS:
        stacks[kind], histories[kind] = pretrained_stack(ch, kind, p["hidden_sizes"], configs[kind], seeds)
    seconds = time.perf_counter() - t0
    v_test = binarize(data.test.x, p["seed"])
    v_train = binarize(data.train.x, p["seed"], tag=_BINARIZE_TRAIN)
    rbm_key = {"n_hidden": p["hidden_sizes"][0], "config": dataclasses.asdict(configs["rbm"]), "seeds": seeds,
               "binarize_seed": p["seed"]}

    def compute_rbm():
        rbm = RBM.init(v_train.shape[1], p["hidden_sizes"][0], seeds, device=v_train.device)
        history = train_rbm(rbm, v_train, configs["rbm"], seeds, progress=False)
        return rbm.state_dict(), {"history": history}

    tensors, meta = ch.cached("ch1_binary_rbm", rbm_key, compute_rbm, version=2)
    rbm1 = RBM.from_state_dict(tensors)
    ais_settings = {"n_chains": p["ais_chains"], "n_betas": p["ais_betas"], "seed": p["seed"]}
    v_some = v_test[torch.randperm(len(v_test), generator=generator(p["seed"], _RAISE))[:p["raise_digits"]].to(v_test.device)]

    def compute_likelihood():
        r = rbm_test_loglik(rbm1, v_test, v_train, **ais_settings)
        sw = likelihood_sandwich(rbm1, v_some, v_train, r.log_z, n_betas=p["ais_betas"], seed=p["seed"])
        return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}, {"sandwich": sw}

    ll, meta_ll = ch.cached("ch1_likelihood", {"rbm": rbm_key, **ais_settings, "raise_digits": p["raise_digits"]},
                            compute_likelihood, version=1)

    def compute_check():
        return {}, {"rows": ais_check(v_train, v_some, p["ais_check_hidden"], configs["rbm"],
                                      seeds, **ais_settings)}

    _, check = ch.cached("ch1_ais_check", {"hidden": p["ais_check_hidden"], "config": dataclasses.asdict(configs["rbm"]),
                                            "seeds": seeds, **ais_settings, "raise_digits": p["raise_digits"],
                                            "longer": LONGER}, compute_check, version=2)
    clf_key = {**CLASSIFIER, "epochs": p["classifier_epochs"], "seeds": seeds}

    def compute_classifier():
        clf, record = sample_judge(data.train, data.valid, p["classifier_epochs"], seeds)
        return clf.state_dict(), {"test_error": float(evaluate(clf, data.test.x, data.test.y).error[0]),
                                  "selection": record}

    # version 3: stopped once its validation curve flattened (version 2: rate chosen, stopped on validation)
    clf_tensors, clf_meta = ch.cached("ch1_sample_judge", clf_key, compute_classifier, version=3)
    judge_net = Classifier.from_state_dict(clf_tensors)
    top_key = {"stack": {"kind": "rbm", "hidden_sizes": p["hidden_sizes"], "config": dataclasses.asdict(configs["rbm"]),
                         "seeds": seeds}, "epochs": p["top_epochs"], "lr": p["top_lr"],
               "batch_size": p["pretrain_batch_size"]}

    def compute_top():
        top = pcd_top(stacks["rbm"], data.train.x, p["top_epochs"], p["top_lr"], p["pretrain_batch_size"], seeds)
        return top.state_dict(), {}

    top_tensors, _ = ch.cached("ch1_pcd_top", top_key, compute_top, version=2)
    pcd_stack = Stack("rbm", [*stacks["rbm"].layers[:-1], RBM.from_state_dict(top_tensors)])
    steps = sorted({s for s in (1, 10, 100, p["gibbs_steps"]) if s <= p["gibbs_steps"]})
    shown = torch.randperm(len(data.test), generator=generator(p["seed"], _SHOWN))[:p["n_samples"]]
    snaps = sample_snapshots(stacks["rbm"], p["n_samples"], steps, p["seed"]).cpu()
    starts = class_starts(data.test.y.cpu(), p["n_samples"], p["seed"])
    codes = top_inputs(stacks["rbm"], data.test.x[starts.to(data.test.x.device)])
    data_snaps = sample_snapshots(stacks["rbm"], p["n_samples"], steps, p["seed"], start=codes).cpu()
    pcd_snaps = sample_snapshots(pcd_stack, p["n_samples"], steps, p["seed"]).cpu()
    judged = {name: judge(class_probabilities(judge_net, x)) for name, x in
              (("random bits", snaps[-1]), ("test-digit codes", data_snaps[-1]), ("PCD top level", pcd_snaps[-1]),
               ("real test digits", data.test.x.cpu()[shown]))}
    labels = class_probabilities(judge_net, data_snaps[-1]).argmax(1)
    judged["test-digit codes"]["kept_start_class"] = float((labels == data.test.y.cpu()[starts]).double().mean())
    return Result(
        stacks=stacks, histories=histories,
        tables={k: layer_table(histories[k], p["hidden_sizes"]) for k in KINDS},
        binary_history=meta["history"], loglik={k: float(v[0]) for k, v in ll.items()},
        sandwich=meta_ll["sandwich"], base_loglik=base_rate_loglik(v_test, v_train), ais_check=check["rows"],
        steps=steps, snaps=snaps, data_snaps=data_snaps, pcd_snaps=pcd_snaps, starts=starts, shown=shown, seconds=seconds,
        sample_check=check_samples(snaps, data.test.x.cpu()[shown], data.train.x.cpu(), data.train.y.cpu()),
        judged=judged, classifier_error=clf_meta["test_error"])


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: both grey-level stacks (RBMs and auto-encoders, one member each, ``rbm_epochs`` /
    ``dae_epochs`` per layer; chapter 2 fine-tunes these very stacks from the cache, so they are
    counted here only); the RBM on binarised digits (the first layer's shape, ``rbm_epochs``); the
    small RBMs of the AIS check (one per ``ais_check_hidden``, the same config); the PCD top RBM
    (``top_epochs`` on the codes of the layer below); the sample judge (:data:`CLASSIFIER` by the
    fair-fight protocol: its grid on one selection seed, ``classifier_epochs``).
    Not counted (analysis): AIS and RAISE of the binary RBM, the exact log Z and the AIS / RAISE
    runs of the check, the codes fed to the PCD top RBM, the Gibbs chains of the samples, the
    judge's and the nearest-digit checks, the distortion figure.
    """
    train, valid, _ = split_sizes(p)
    hidden, batch = p["hidden_sizes"], p["pretrain_batch_size"]
    jobs = []
    for kind in KINDS:
        jobs += stack_jobs("grey-level stack", kind, 784, hidden, members=1, examples=train,
                           epochs=p[f"{kind}_epochs"], batch_size=batch)
    jobs.append(Job("binary RBM (likelihood)", "rbm", (784, hidden[0]), members=1, examples=train,
                    epochs=p["rbm_epochs"], batch_size=batch))
    jobs += [Job(f"AIS check RBM, {h} hidden", "rbm", (784, h), members=1, examples=train,
                 epochs=p["rbm_epochs"], batch_size=batch) for h in p["ais_check_hidden"]]
    below = hidden[-2] if len(hidden) > 1 else 784
    jobs.append(Job("PCD top RBM", "rbm", (below, hidden[-1]), members=1, examples=train,
                    epochs=p["top_epochs"], batch_size=batch))
    jobs.append(selection_job("sample judge", CLASSIFIER["sizes"], 1, grid=CLASSIFIER["lr_grid"], select_seeds=1,
                              epochs=p["classifier_epochs"], batch_size=CLASSIFIER["batch_size"], examples=train,
                              eval_examples=valid))
    return jobs


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
    """The binary RBM's test log-likelihood from both sides (AIS above, RAISE below) beside independent
    pixels and the literature."""
    ll, sw, base = res.loglik, res.sandwich, res.base_loglik
    ch.glue("ais_chains", ch.params["ais_chains"], fmt=",d")
    ch.glue("ais_betas", ch.params["ais_betas"], fmt=",d")
    for key, k in (("ais_ll", "loglik"), ("ais_std", "ais_std"), ("test_sem", "test_sem")):
        ch.glue(key, ll[k], fmt=".2f")
    ch.glue("base_ll", base, fmt=".2f")
    ch.glue("raise_digits", plural(sw["n"], "test digit"))
    for key in ("ais", "raise", "raise_sem", "base"):
        ch.glue(f"sandwich_{key}", sw[key], fmt=".2f")
    ch.glue("sandwich_width", sw["ais"] - sw["raise"], fmt=".1f")
    test = _raise_vs_base(sw)
    ch.glue("ll_verdict", f"Even RAISE's conservative estimate is {sw['raise'] - sw['base']:.1f} nats per digit above "
            f"independent pixels (paired over the digits: Wilcoxon p = {test['p']:.2g})."
            if sw["raise"] > sw["base"] else
            f"RAISE's conservative estimate is {sw['base'] - sw['raise']:.1f} nats per digit below independent "
            "pixels: by this bound the RBM is not shown to be the better model.")
    runtime.show(_likelihood_table(ch.params, ll["loglik"], base, raise_ll=sw["raise"], n_raise=sw["n"]))


def _raise_vs_base(sw: Mapping) -> dict:
    """The paired Wilcoxon test of RAISE's per-digit log-likelihood against independent pixels'."""
    return stats.wilcoxon(np.asarray(sw["raise_per_digit"]), np.asarray(sw["base_per_digit"]))


def likelihood_check(ch: runtime.Chapter, res: Result) -> None:
    """AIS and RAISE against the exact log-likelihood of small RBMs: a table and a figure of the gaps."""
    rows = res.ais_check
    ch.glue("check_hidden", ", ".join(str(r["n_hidden"]) for r in rows))
    ch.glue("longer", LONGER, fmt="d")
    if not rows:
        ch.glue("check_sentence", "No small RBM was checked in this run.")
        ch.figure("ch1_ais_check", plot_ais_check(rows))
        return
    off = max(abs(r["ais"] - r["exact"]) for r in rows)
    se = max(r["ais_log_z_se"] for r in rows)
    below = [r["exact"] - r["raise"] for r in rows]
    ch.glue("check_sentence",
            f"At the chapter's settings AIS's log-likelihood is off by up to {off:.2f} nats per digit on these RBMs, "
            f"while its own standard error of log Z is at most {se:.2f}: that error bar does not measure the "
            f"estimate's real error. {LONGER}× longer AIS is off by at most "
            f"{max(abs(r['ais_longer'] - r['exact']) for r in rows):.2f}. RAISE lies "
            + (f"below the exact value in every case, by {min(below):.2f} to {max(below):.2f} nats"
               if min(below) >= 0 else f"below the exact value in {sum(b >= 0 for b in below)} of {len(rows)} cases")
            + f". Nothing makes the {ch.params['hidden_sizes'][0]}-unit RBM easier to anneal than these, so its single "
            "AIS number is not trusted alone: the chapter states its likelihood as the interval from RAISE to AIS.")
    frame = pd.DataFrame([{"hidden units": r["n_hidden"], "exact": r["exact"], "AIS": r["ais"],
                           f"AIS, {LONGER}× longer": r["ais_longer"], "RAISE": r["raise"],
                           "AIS − exact": r["ais"] - r["exact"], "RAISE − exact": r["raise"] - r["exact"]}
                          for r in rows])
    runtime.show(frame.style.hide(axis="index").format(
        {c: "{:.2f}" for c in frame.columns if c != "hidden units"} | {"AIS − exact": "{:+.2f}", "RAISE − exact": "{:+.2f}"})
        .set_table_styles([{"selector": "td, th", "props": "padding: 0.1em 0.7em; text-align: right;"}])
        .set_caption("Mean test log-likelihood (nats per digit) of small RBMs: exact and estimated"))
    ch.figure("ch1_ais_check", plot_ais_check(rows))


def plot_ais_check(rows: Sequence[Mapping]) -> Figure:
    """The estimates' errors (estimate − exact, nats per digit) against the number of hidden units:
    AIS at the chapter's settings, AIS LONGER times longer, RAISE. rows: :func:`ais_check`'s."""
    with figures.styled():
        fig, ax = plt.subplots(figsize=(figures.PAGE_WIDTH, 3.8))
        if not rows:
            ax.text(0.5, 0.5, "no small RBM checked in this run", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        hidden = [r["n_hidden"] for r in rows]
        for i, (key, label, marker) in enumerate((("ais", "AIS (the chapter's settings)", "o"),
                                                  ("ais_longer", f"AIS, {LONGER}× the chains and temperatures", "s"),
                                                  ("raise", "RAISE (conservative)", "v"))):
            ax.plot(hidden, [r[key] - r["exact"] for r in rows], marker=marker, color=figures.PALETTE[i],
                    linestyle=figures.LINESTYLES[i], label=label)
        ax.axhline(0.0, color="0.3", lw=1)
        ax.set_xticks(hidden)
        ax.set_xlabel("hidden units of the small RBM")
        ax.set_ylabel("estimate − exact\n(nats per digit)")
        ax.legend()
        fig.tight_layout()
    return fig


def _likelihood_table(p: Mapping, loglik: float, base: float, *, raise_ll: float | None = None,
                      n_raise: int | None = None):
    """This chapter's binary RBM (parameters ``p``; AIS on all test digits and, with ``raise_ll``, RAISE on
    the first ``n_raise``) and independent pixels beside Salakhutdinov & Murray's RBMs, grouped by source
    (the training sets, this chapter's and their 60,000 digits, are in the text)."""
    value = "test log-likelihood (nats)"
    rbm = f"RBM, {plural(p['hidden_sizes'][0], 'hidden unit')}, CD-1, {plural(p['rbm_epochs'], 'epoch')}"
    rows = [(f"{rbm}, AIS", "this chapter", loglik)]
    if raise_ll is not None:
        rows.append((f"{rbm}, RAISE ({plural(n_raise, 'digit')})", "this chapter", raise_ll))
    rows.append(("independent pixels", "this chapter", base))
    for name, v in SALAKHUTDINOV2008_TABLE1.numbers["test_loglik"].items():
        rows.append((name.replace("RBM 500 hidden", "RBM, 500 hidden units"), "Salakhutdinov & Murray (2008)", v))
    frame = pd.DataFrame({value: [v for *_, v in rows]},
                         index=pd.MultiIndex.from_tuples([(src, model) for model, src, _ in rows]))
    return (frame.style.format("{:.2f}")
            .set_table_styles([{"selector": "th.row_heading", "props": "text-align: left; padding-right: 1.5em;"},
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
    ch.figure("ch1_data_samples", plot_samples_beside_digits(
        res.data_snaps[-1][:k], data.test.x.cpu()[res.starts][:k], p["gibbs_steps"],
        right_title="the test digits they started from"))
    ch.figure("ch1_pcd_samples", plot_samples_beside_digits(
        res.pcd_snaps[-1][:k], data.test.x.cpu()[res.shown][:k], p["gibbs_steps"],
        left_title=f"DBN with a PCD top level ({_steps_title(p['gibbs_steps'])})"))
    ch.glue("top_epochs", plural(p["top_epochs"], "epoch"))
    ch.glue("top_lr", p["top_lr"], fmt="g")
    ch.glue("classifier_error", res.classifier_error, fmt=".1%")
    ch.glue("classifier_epochs", plural(p["classifier_epochs"], "epoch"))
    ch.glue("min_classes", MIN_CLASSES, fmt="d")
    ch.glue("min_confidence", MIN_CONFIDENCE, fmt=".0%")
    for name, key in (("random bits", "random"), ("test-digit codes", "data"), ("PCD top level", "pcd"),
                      ("real test digits", "real")):
        j = res.judged[name]
        ch.glue(f"judge_{key}", f"{j['n_classes']} of 10 classes, {j['entropy_bits']:.2f} bits, the classifier "
                f"{j['confidence']:.0%} sure on average, {j['top_share']:.0%} labelled {j['top_class']}")
    runtime.show(pd.DataFrame([{"images": name, "classes found": j["n_classes"], "entropy of the labels (bits)": j["entropy_bits"],
                                "mean confidence": j["confidence"], "most common label": f"{j['top_class']} ({j['top_share']:.0%})"}
                               for name, j in res.judged.items()]).style.hide(axis="index").format(
        {"entropy of the labels (bits)": "{:.2f}", "mean confidence": "{:.0%}"})
        .set_caption(f"What a classifier trained on real digits (test error {res.classifier_error:.1%}) sees in "
                     f"{plural(p['n_samples'], 'image')} of each kind (at most log2 10 = 3.32 bits)"))
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
    """The parts of C1 (DESIGN.md), each tested on this run's numbers.

    (a) by its bar (every layer's reconstruction error falls); (b) by the paired Wilcoxon test, over
    the RAISE digits, of the RBM's conservative (RAISE) log-likelihood against independent pixels',
    digit by digit; (c) not tested; (d) by its bar on the samples of the DBN whose top level was
    trained with PCD (:func:`pcd_top`), from random bits, judged by a classifier trained on real digits
    (at least MIN_CLASSES classes found, mean confidence at least MIN_CONFIDENCE); the CD-1 top level's
    samples, from random bits and from test-digit codes, are in its evidence.
    """
    p, sw = ch.params, res.sandwich
    falling = _curves_fall(res)
    one_epoch = min(p["rbm_epochs"], p["dae_epochs"]) < 2
    few = claims.too_few_pairs(sw["n"], "digits")
    if few:
        part_b = claims.part("b", _PART_B, None, few, n=sw["n"])
    else:
        test = _raise_vs_base(sw)
        part_b = claims.from_test(
            "b", _PART_B, test,
            f"RAISE (a conservative estimate) {sw['raise']:.1f} nats per digit on {plural(sw['n'], 'test digit')}, AIS "
            f"(optimistic) {sw['ais']:.1f}, independent pixels {sw['base']:.1f}; per digit RAISE minus independent "
            f"pixels: median {test['effect']:+.1f} nats, Wilcoxon p = {test['p']:.2g}",
            direction=test["effect"] > 0, raise_nats=sw["raise"], ais_nats=sw["ais"], base_nats=sw["base"])
    d, rnd, data = res.judged["PCD top level"], res.judged["random bits"], res.judged["test-digit codes"]
    return [
        claims.part("a", "every layer's training objective improves",
                    None if one_epoch else all(falling.values()),
                    "one epoch per layer gives no curve to judge" if one_epoch else
                    "reconstruction error fell from the first to the last epoch in every layer: "
                    + ", ".join(f"{k.upper()} {'yes' if v else 'no'}" for k, v in falling.items()),
                    **{f"{k}_falls": v for k, v in falling.items()}),
        part_b,
        claims.part("c", "first-layer receptive fields are local, stroke-like", None,
                    "the book has no numerical test of stroke-likeness yet; the figures show the fields"),
        claims.part("d", "samples look like digits of (almost) all classes",
                    d["n_classes"] >= MIN_CLASSES and d["confidence"] >= MIN_CONFIDENCE,
                    f"DBN with a PCD-trained top level, from random bits: a classifier trained on real digits "
                    f"(test error {res.classifier_error:.1%}) finds {d['n_classes']} of 10 classes "
                    f"({d['entropy_bits']:.2f} bits), {d['confidence']:.0%} sure on average; with the CD-1 top level it "
                    f"finds {rnd['n_classes']} from random bits ({rnd['top_share']:.0%} labelled {rnd['top_class']}) and "
                    f"{data['n_classes']} from test-digit codes; the bar: at least {MIN_CLASSES} classes and "
                    f"{MIN_CONFIDENCE:.0%} confidence",
                    effect=d["n_classes"], n=p["n_samples"], n_classes=d["n_classes"], confidence=d["confidence"],
                    entropy_bits=d["entropy_bits"], cd1_random_classes=rnd["n_classes"],
                    cd1_data_classes=data["n_classes"], kept_start_class=data["kept_start_class"]),
    ]


_PART_B = ("the stack is a generative model: the first RBM's test log-likelihood, bounded from below, is "
           "far above independent pixels")


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    parts = claim_parts(ch, res)
    ll, sw, d = res.loglik, res.sandwich, res.judged["PCD top level"]
    results = {kind: {"layers": [{k: r[k] for k in ("n_hidden", "recon_error_first_epoch", "recon_error_last_epoch")}
                                 for r in rows]} for kind, rows in res.tables.items()}
    results["binary_rbm"] = {
        "ais_test_loglik_nats": ll["loglik"], "ais_test_loglik_std": ll["ais_std"],
        "base_rate_test_loglik_nats": res.base_loglik,
        "sandwich": {k: sw[k] for k in ("raise", "ais", "raise_sem", "base", "n")},
        "pll_by_epoch": res.binary_history["pll"]}
    results["ais_check"] = res.ais_check
    results["samples"] = {"classifier_test_error": res.classifier_error, "judged": res.judged,
                          "nearest_neighbour": res.sample_check}
    finding = (f"RBM trained on binarised digits: test log-likelihood between {sw['raise']:.1f} (RAISE) and "
               f"{sw['ais']:.1f} (AIS) nats on {plural(sw['n'], 'digit')}, independent pixels {sw['base']:.1f}; "
               f"DBN samples (PCD top level): {d['n_classes']} of 10 classes by a classifier "
               f"({d['confidence']:.0%} confident); with the CD-1 top level {res.judged['random bits']['n_classes']}.")
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
def binarize(x: Tensor, seed: int, *, tag: int = _BINARIZE) -> Tensor:
    """A seeded Bernoulli sample of grey levels: x (N, V) in [0, 1] -> (N, V) of 0./1., same dtype.

    Pixel i is 1 with probability x_i (as in Salakhutdinov & Murray 2008). Same seed and tag -> same
    bits; the training and the test digits use different tags, so their bits are independent.
    """
    x = _check_images("x", x)
    require_int("seed", seed, 0)
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError("x must hold grey levels in [0, 1]")
    require_int("tag", tag, 0)
    gen = generator(seed, tag, device=x.device)
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
    return float(base_rate_per_digit(v_test, base_data).mean())


def base_rate_per_digit(v_test: Tensor, base_data: Tensor) -> Tensor:
    """:func:`base_rate_loglik` digit by digit: (N,) float64 nats."""
    _check_images("v_test", v_test)
    _check_images("base_data", base_data, v_test.shape[1])
    if not bool(((v_test == 0) | (v_test == 1)).all()):
        raise ValueError("v_test must be binary (0/1); see binarize")
    b = ais.base_rate_visible_bias(base_data).double().to(v_test.device)
    return (v_test.double() * b - torch.nn.functional.softplus(b)).sum(1)  # log sigm(b) = b - softplus(b)


def likelihood_sandwich(rbm: RBM, v: Tensor, base_data: Tensor, log_z: Tensor, *, n_betas: int, seed: int) -> dict:
    """The mean log-likelihood of the binary digits v (N, V) under member 0 of ``rbm``, from both sides.

    log_z (M,): the AIS estimate of log Z (:attr:`LogLik.log_z` of :func:`rbm_test_loglik`), which is optimistic: it under-estimates
    log Z when its chains do not mix, so the likelihood comes out too high. RAISE
    (:func:`pretraining.analysis.ais.raise_log_likelihood`, one reverse chain per digit with the same
    schedule) is conservative: its estimate lies below the truth in expectation. base_data: the
    training digits whose pixel means give both the base-rate model. Returns floats (nats per digit):
    "ais" and "raise" the two means over these N digits, "raise_sem" the standard error of RAISE's mean
    over the digits, "base" the independent-pixel model's mean, "n"; and per digit (lists, for the
    paired test against independent pixels) "raise_per_digit" and "base_per_digit".
    """
    _check_images("v", v, rbm.n_visible)
    base = ais.base_rate_visible_bias(base_data.to(rbm.device))
    ais_ll = ais.log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v, log_z.to(rbm.device))
    r = ais.raise_log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v, n_betas=n_betas, base_visible_bias=base,
                                 seed=seed)
    per_base = base_rate_per_digit(v, base_data)
    return {"ais": float(ais_ll[0]), "raise": float(r.mean[0]), "raise_sem": float(r.std_error[0]),
            "base": float(per_base.mean()), "n": int(v.shape[0]),
            "raise_per_digit": r.log_likelihood[0].tolist(), "base_per_digit": per_base.tolist()}


def ais_check(x_train: Tensor, v_test: Tensor, hidden: Sequence[int], config, seeds: Sequence[int], *,
              n_chains: int, n_betas: int, seed: int) -> list[dict]:
    """AIS and RAISE where the truth is known: small RBMs whose log Z is exact.

    For every number of hidden units in ``hidden`` (each at most
    :data:`pretraining.analysis.ais.MAX_ENUMERATED_UNITS`), an RBM is trained on the binary digits
    x_train (N, V) with ``config`` (an :class:`pretraining.core.train.RBMConfig`) and ``seeds`` (one
    member); on the binary test digits v_test its mean log-likelihood is computed exactly (log Z by
    enumerating the hidden layer), with AIS at the chapter's settings (n_chains, n_betas), with AIS
    run LONGER times longer in chains and in temperatures, and with RAISE (one reverse chain per digit,
    n_betas temperatures). Returns one dict per size: n_hidden, exact, ais, ais_longer, raise (nats per
    digit), exact_log_z, ais_log_z, ais_log_z_se.
    """
    rows = []
    base = ais.base_rate_visible_bias(x_train)
    for n_hidden in hidden:
        rbm = RBM.init(x_train.shape[1], n_hidden, seeds, device=x_train.device)
        train_rbm(rbm, x_train, config, seeds, progress=False)
        exact_z = ais.log_partition_exact(rbm.W, rbm.b_visible, rbm.b_hidden)
        row = {"n_hidden": int(n_hidden), "exact_log_z": float(exact_z[0]),
               "exact": float(ais.log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v_test, exact_z)[0])}
        for name, chains, betas in (("ais", n_chains, n_betas), ("ais_longer", LONGER * n_chains, LONGER * n_betas)):
            z = ais.ais_log_partition(rbm.W, rbm.b_visible, rbm.b_hidden, n_chains=chains, n_betas=betas,
                                      base_visible_bias=base, seed=seed)
            row[name] = float(ais.log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v_test, z.log_z)[0])
            if name == "ais":
                row["ais_log_z"], row["ais_log_z_se"] = float(z.log_z[0]), float(z.log_z_std_error[0])
        r = ais.raise_log_likelihood(rbm.W, rbm.b_visible, rbm.b_hidden, v_test, n_betas=n_betas,
                                     base_visible_bias=base, seed=seed)
        row["raise"] = float(r.mean[0])
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# samples and distortions
# --------------------------------------------------------------------------------------------
def sample_snapshots(stack: Stack, n: int, steps: Sequence[int], seed: int, *, start: Tensor | None = None) -> Tensor:
    """DBN samples after ``steps`` Gibbs steps of ONE chain per sample in the top RBM, member 0.

    Runs :meth:`Stack.sample`'s chain once (same seeds, same random numbers) and, at each entry of
    ``steps`` (increasing ints >= 1), passes the current hidden sample top-down with mean-field
    probabilities. Returns (len(steps), n, V) pixel probabilities; without ``start`` the chains
    start from random bits and the last snapshot equals ``stack.sample(n, steps[-1], [seed])[0]``
    for an M = 1 stack. start (M, n, V_top) or (n, V_top): probabilities in [0, 1] of the top RBM's
    visible units (e.g. :func:`top_inputs` of real digits) from which the chains start instead.
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
    if start is None:
        start = torch.full((stack.n_members, n, top.n_visible), 0.5, device=top.device, dtype=top.dtype)
    elif not isinstance(start, Tensor) or start.shape[-2:] != (n, top.n_visible) or start.dim() not in (2, 3):
        raise ValueError(f"start must be (M, {n}, {top.n_visible}) or ({n}, {top.n_visible}) probabilities, got "
                         f"{tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__}")
    start = start.to(top.device, top.dtype).expand(stack.n_members, n, top.n_visible)
    v = bernoulli(start, gens)
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


def top_inputs(stack: Stack, x: Tensor) -> Tensor:
    """What the top RBM of ``stack`` sees for the digits x (N, 784): the mean-field codes of the layer
    below it (the pixels themselves for a one-layer stack), (M, N, V_top)."""
    _check_images("x", x, stack.sizes[0])
    if len(stack.layers) == 1:
        return x.to(stack.layers[0].device, stack.layers[0].dtype).expand(stack.n_members, *x.shape)
    return stack.encode(x, upto=len(stack.layers) - 1)


def pcd_top(stack: Stack, x: Tensor, epochs: int, lr: float, batch_size: int, seeds: Sequence[int]) -> RBM:
    """A replacement for the top RBM of ``stack``: the same shape, trained with persistent CD-1 (PCD;
    Tieleman 2008) on the mean-field codes of the layer below for the digits x (N, 784).

    PCD's fantasy chains run on from one update to the next, so the negative phase explores the
    model's own modes instead of staying next to the data as CD-1's one-step chains do; a DBN whose
    top level was trained this way mixes between digit classes in a long Gibbs chain. The lower
    layers and the grey-level stacks the later chapters use are unchanged.
    """
    codes = top_inputs(stack, x)[0]
    top = stack.layers[-1]
    rbm = RBM.init(top.n_visible, top.n_hidden, seeds, device=codes.device, layer=len(stack.layers))
    train_rbm(rbm, codes, RBMConfig(epochs=epochs, lr=lr, batch_size=batch_size, persistent=True), seeds,
              progress=False, layer=len(stack.layers))
    return rbm


def class_starts(labels: Tensor, n: int, seed: int) -> Tensor:
    """Indices of n digits, as many of each class as n allows (classes 0, 1, ... get one more when n is
    not a multiple of the number of classes), drawn at random (seeded) within each class: (n,) int64.
    labels (N,) ints 0..C-1."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype not in (torch.int64, torch.int32):
        raise ValueError("labels must be a 1-D int tensor")
    require_int("n", n, 1)
    classes = int(labels.max()) + 1
    order = torch.randperm(len(labels), generator=generator(seed, _STARTS))
    per_class = [order[labels[order] == c] for c in range(classes)]
    want = [n // classes + (1 if c < n % classes else 0) for c in range(classes)]
    short = [c for c in range(classes) if len(per_class[c]) < want[c]]
    if short:
        raise ValueError(f"n={n} needs {max(want)} digits of each class; classes {short} have fewer")
    return torch.cat([per_class[c][:want[c]] for c in range(classes)])


def sample_judge(train: Subset, valid: Subset, epochs: int, seeds: Sequence[int]) -> tuple[Classifier, dict]:
    """The classifier that judges samples: :data:`CLASSIFIER` trained by SGD on real digits (train: x
    (N, 784), y (N,)), its rate chosen on ``valid`` from :data:`CLASSIFIER`'s grid and its training
    stopped there (:func:`pretraining.core.selection.select_and_train`, at most ``epochs``; the first
    seed chooses the rate). Returns the classifier and the selection record."""
    require_int("epochs", epochs, 1)
    sel = select_and_train(lambda s: Classifier.random(CLASSIFIER["sizes"], s, device=train.x.device), train, valid,
                           FinetuneConfig(epochs=epochs, lr=CLASSIFIER["lr_grid"][0], batch_size=CLASSIFIER["batch_size"]),
                           SelectionConfig(CLASSIFIER["lr_grid"], patience=CLASSIFIER["patience"], select_seeds=1),
                           seeds)
    return sel.clf, sel.record()


@torch.no_grad()
def class_probabilities(clf: Classifier, x: Tensor) -> Tensor:
    """Member 0's class probabilities of the images x (N, 784): (N, C)."""
    _check_images("x", x, clf.sizes[0])
    return torch.softmax(clf.logits(x.to(clf.weights[0].device, clf.weights[0].dtype)), dim=-1)[0].cpu()


def judge(probs: Tensor) -> dict:
    """What a classifier's probabilities (N, C) say about a set of images: "counts" per class of the
    most probable label, "n_classes" (classes with at least one image), "entropy_bits" of the label
    distribution (log2 C when every class is equally common, 0 when all images get one label),
    "confidence" (mean probability of the chosen label) and "top_class" with its "top_share"."""
    if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.shape[0] < 1:
        raise ValueError("probs must be (N, C) class probabilities with N >= 1")
    labels = probs.argmax(1)
    counts = torch.bincount(labels, minlength=probs.shape[1])
    share = counts.double() / counts.sum()
    nonzero = share[share > 0]
    top = int(counts.argmax())
    return {"counts": counts.tolist(), "n_classes": int((counts > 0).sum()),
            "entropy_bits": float(-(nonzero * nonzero.log2()).sum()) + 0.0, "confidence": float(probs.max(1).values.mean()),  # + 0.0: no -0.00
            "top_class": top, "top_share": float(share[top])}


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


def plot_samples_beside_digits(samples: Tensor, digits: Tensor, gibbs_steps: int, *,
                               right_title: str = "real test digits (random)", left_title: str | None = None) -> Figure:
    """DBN samples (N, 784) and real digits (N', 784) as two square grids side by side, the page's width."""
    _check_images("samples", samples)
    _check_images("digits", digits)
    side = math.ceil(math.sqrt(max(len(samples), len(digits))))
    panel = figures.PAGE_WIDTH / 2
    with figures.styled():
        fig, (a, b) = plt.subplots(1, 2, figsize=(figures.PAGE_WIDTH, panel + 0.4), layout="constrained")
        figures.image_grid(samples, ncols=side, vmin=0, vmax=1, ax=a,
                           title=left_title or f"DBN samples ({_steps_title(gibbs_steps)})")
        figures.image_grid(digits, ncols=side, vmin=0, vmax=1, ax=b, title=right_title)
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
