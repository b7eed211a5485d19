"""Chapter 2: what discriminative fine-tuning does to the weights of a pre-trained network.

The notebook ``chapters/02_finetuning_weight_change.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters (the stack parameters are chapter 1's,
  :data:`pretraining.book.specs.STACK_PARAMS`, so the stacks fine-tuned here are chapter 1's, found
  in the artifact cache);
* :func:`run` — fine-tunes both stacks and a randomly initialised network of the same shape, trains
  the softmax alone on the frozen pre-trained features (all cached), and measures weight changes,
  test errors, layer resets and the class maps on a plane through input space;
* one function per section — :func:`setup`, :func:`receptive_field_change`, :func:`layer_change`,
  :func:`change_over_epochs`, :func:`errors_and_resets`, :func:`decision_boundaries`,
  :func:`compare_with_papers`;
* :func:`claim_parts` (the tests: :func:`assess`) and :func:`finish` — the claim's parts tested on the
  numbers, the results file.

The design is paired: fine-tuning run m of the DBN, of the SDAE and of the random-init network share
seed m (softmax initialisation and minibatch order), so every comparison is made run by run
(:func:`pretraining.analysis.stats.paired_difference`: per-run differences in the claim's direction, a
Student-t interval of their mean, the Wilcoxon signed-rank test; :func:`pretraining.book.claims.paired`),
and a part needs at least :data:`claims.MIN_PAIRS` runs to be tested.

The tools underneath: weight-change statistics between two versions of the same layers (before /
after fine-tuning), the "layer reset" test (put one layer of a fine-tuned net back to its
pre-fine-tuning weights and measure the test error), a fast softmax-only trainer on frozen
features, and the 2-D map of the classes a network assigns on a plane through input space
spanned by three digits; the tables and sentences the sections show.

Shapes: weights W (M, n_in, n_out) with the members dimension M first (see
:mod:`pretraining.core.models`); the incoming weights of unit j of member m are W[m, :, j].
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from ..analysis import figures, stats
from ..analysis.figures import PAGE_WIDTH, styled
from ..analysis.references import ERHAN2010_TABLE1, LAROCHELLE2009_TABLE3
from ..book import claims, fairness, runtime
from ..book.experiments import pretrained_stack, selection_config, stack_configs
from ..book.specs import (
    MAX_EPOCHS,
    STACK_PARAMS,
    ChapterSpec,
    Int,
    IntList,
    Param,
    fits_memory,
    fits_split,
    not_allowed,
    rate_grid_rule,
    select_seeds_rule,
    selection_params,
)
from ..book.words import plural
from ..book.workplan import protocol_job
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES
from ..core.memory import training_bytes
from ..core.data import Subset
from ..core.models import Classifier
from ..core.rehearsal import Job
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, select_and_train, setting_converged
from ..core.seeding import member_seeds
from ..core.train import FinetuneConfig, evaluate

Tensor = torch.Tensor

__all__ = [
    "KINDS",
    "LABELS",
    "MATTERS_FRACTION",
    "N_CLASSES",
    "SPEC",
    "TINY_FRACTION",
    "FinetuneRun",
    "InputPlane",
    "LayerChange",
    "Result",
    "assess",
    "change_over_epochs",
    "claim_parts",
    "compare_with_papers",
    "decision_boundaries",
    "decision_map",
    "errors_and_resets",
    "field_change_ratio",
    "field_look",
    "layer_changes",
    "gate_unconverged",
    "training",
    "NEEDS",
    "ragged_curves",
    "finetuned",
    "finish",
    "gain_lost",
    "gain_text",
    "input_plane",
    "layer_change",
    "layer_change_table",
    "layer_reset_errors",
    "least_sentence",
    "lost_sentence",
    "per_kind",
    "plot_change_over_epochs",
    "plot_decision_maps",
    "plot_layer_change",
    "plot_receptive_field_change",
    "plot_test_errors",
    "pm",
    "receptive_field_change",
    "reference_tables",
    "relative_change",
    "reset_layers",
    "reset_table",
    "results_record",
    "run",
    "setup",
    "share_lost",
    "sign_flip_fraction",
    "start",
    "tiny_sentence",
    "unit_cosine",
    "weight_change",
    "work",
]

N_CLASSES = 10
#: The two pre-trained networks, by stack kind, with their labels in tables and figures.
KINDS = {"rbm": "DBN (RBM stack)", "dae": "SDAE (auto-encoder stack)"}
#: Every fine-tuned network: the two pre-trained ones and the random-init one.
LABELS = {**KINDS, "random": "random init"}

#: A layer "hardly changes" if its relative change ||W_after - W_before|| / ||W_before|| is below
#: this fraction of the relative change of the same layer in a network trained from random
#: initialisation with the same fine-tuning (a comparison, so no absolute threshold is needed).
TINY_FRACTION = 0.5
#: The tiny changes "matter" if putting the layer back to its pre-fine-tuning weights loses at least
#: this fraction of the test-error gain of full fine-tuning over training the softmax alone.
MATTERS_FRACTION = 0.5


# -- the parameters ------------------------------------------------------------------------------

def _fields_fit(p: Mapping) -> list[str]:
    if p["n_fields"] > p["hidden_sizes"][0]:
        return [not_allowed("n_fields", p["n_fields"],
                            f"at most the first hidden width hidden_sizes[0], {p['hidden_sizes'][0]}")]
    return []


def _plane_classes_distinct(p: Mapping) -> list[str]:
    if len(set(p["plane_classes"])) != len(p["plane_classes"]):
        return [not_allowed("plane_classes", p["plane_classes"], "three different classes 0..9")]
    return []


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of the larger of pre-training one stack and fine-tuning n_seeds networks, and their drivers."""
    n_train, sizes = SPLIT_SIZES[p["dataset"]][0], [784, *p["hidden_sizes"]]
    need = max(training_bytes(1, n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(p["n_seeds"], n_train, [*sizes, 10], p["finetune_batch_size"], greedy=False))
    return need, ["n_seeds", "hidden_sizes"]


SPEC = ChapterSpec(
    "02_finetuning_weight_change",
    claim="Discriminative fine-tuning hardly changes the lower-layer weights, yet these tiny changes matter "
          "for classification.",
    paper="Lower-layer weights change little in fine-tuning (lecture 14c; Erhan et al. 2010).",
    params={
        **STACK_PARAMS,
        "n_seeds": Param(8, Int(min=1, max=1000),
                         "fine-tuning runs per network, paired across networks: own softmax init and minibatch order"),
        **selection_params(grid=[0.1, 0.2371, 0.5623, 1.334, 3.162], epochs=40, patience=3, select_seeds=2),
        "softmax_epochs": Param(60, Int(min=1, max=MAX_EPOCHS),
                                "epoch budget of the softmax trained alone on frozen features (convex and cheap)"),
        "finetune_batch_size": Param(50, Int(min=1), "fine-tuning minibatch size"),
        "n_fields": Param(64, Int(min=1),
                          "first-layer units whose receptive fields are shown (at most the first width)"),
        "plane_classes": Param([3, 5, 8], IntList(min=0, max=9, min_len=3, max_len=3),
                               "classes of the three test digits that span the input plane"),
        "plane_resolution": Param(120, Int(min=2, max=1000), "grid points per side of the decision-boundary maps"),
    },
    rules=(_fields_fit, _plane_classes_distinct, rate_grid_rule(), select_seeds_rule(),
           fits_split("train", "pretrain_batch_size", "finetune_batch_size"),
           fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


@dataclass
class Result:
    """What the chapter computed (M = n_seeds fine-tuning runs, L = depth hidden layers).

    runs: per network ("rbm", "dae", "random") a :class:`FinetuneRun` of all layers fine-tuned;
    frozen: per stack kind ("rbm", "dae") the run with only the softmax trained on frozen features;
    changes: per network its :class:`LayerChange` (L + 1 layers: the hidden ones, then the softmax);
    layer_names: "1" .. "L", "softmax"; sizes: [784, *hidden_sizes, 10];
    errors: test errors (M,) as fractions, keys "random", "rbm", "rbm_frozen", "dae", "dae_frozen";
    resets: per kind (L, M) test errors with hidden layer i reset to its pre-trained weights;
    lost: per kind (L, M) share of fine-tuning's gain those resets lose (:func:`gain_lost`, NaN
    without gain); plane: the input plane through the first test digits of ``plane_classes``;
    maps: per DBN network label (M, R, R) assigned classes on the plane; plane_moved: the fraction
    of plane points whose class changes, "fine_tuning" (frozen -> fine-tuned) and "layer_1_reset"
    (fine-tuned -> layer 1 reset), over all members.
    """

    runs: dict[str, FinetuneRun]
    frozen: dict[str, FinetuneRun]
    changes: dict[str, LayerChange]
    layer_names: list[str]
    sizes: list[int]
    errors: dict[str, Tensor]
    resets: dict[str, Tensor]
    lost: dict[str, Tensor]
    plane: InputPlane
    maps: dict[str, Tensor]
    plane_moved: dict[str, float]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.layer_names) - 1


def _finetune_config(p: Mapping) -> FinetuneConfig:
    """The fine-tuning settings: the epoch budget and minibatch size (the rate comes from the selection)."""
    return FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0], batch_size=p["finetune_batch_size"])


def _sizes(ch: runtime.Chapter) -> list[int]:
    return [ch.data.train.x.shape[1], *ch.params["hidden_sizes"], N_CLASSES]


def run(ch: runtime.Chapter) -> Result:
    """Fine-tune chapter 1's stacks and a random-init net (cached), then measure what changed and what it did.

    Stack seeds ``member_seeds(seed, 1)`` (chapter 1's stacks); the fine-tuning runs of every network
    use ``member_seeds(seed, n_seeds)`` (softmax initialisation and minibatch order), so the
    networks are paired run by run.
    """
    p, data = ch.params, ch.data
    configs = stack_configs(p)
    config = _finetune_config(p)
    stack_seeds = member_seeds(p["seed"], 1)
    seeds = member_seeds(p["seed"], p["n_seeds"])
    sizes = _sizes(ch)
    selection = selection_config(p)
    runs, frozen = {}, {}
    for kind in KINDS:
        stack, _ = pretrained_stack(ch, kind, p["hidden_sizes"], configs[kind], stack_seeds, progress=False)
        what = {"kind": kind, "hidden_sizes": p["hidden_sizes"], "pretrain": dataclasses.asdict(configs[kind]),
                "pretrain_seeds": stack_seeds}
        make = _from_stack(stack)
        runs[kind] = finetuned(ch, f"ch2_finetuned_{kind}", make, what, config, selection, seeds)
        frozen[kind] = finetuned(ch, f"ch2_softmax_only_{kind}", make, what,
                                 dataclasses.replace(config, epochs=p["softmax_epochs"]), selection, seeds,
                                 softmax_only=True)
    runs["random"] = finetuned(ch, "ch2_finetuned_random",
                               lambda s: Classifier.random(sizes, s, device=ch.device), {"sizes": sizes},
                               config, selection, seeds)
    depth = len(p["hidden_sizes"])
    layer_names = [str(i + 1) for i in range(depth)] + ["softmax"]
    changes = {k: weight_change(r.before.weights, r.after.weights) for k, r in runs.items()}

    tx, ty = data.test.x, data.test.y
    errors = {"random": evaluate(runs["random"].after, tx, ty).error}
    resets, lost = {}, {}
    for kind in KINDS:
        errors[f"{kind}_frozen"] = evaluate(frozen[kind].after, tx, ty).error
        errors[kind] = evaluate(runs[kind].after, tx, ty).error
        resets[kind] = layer_reset_errors(runs[kind].after, runs[kind].before, tx, ty)   # (depth, M)
        lost[kind] = gain_lost(errors[f"{kind}_frozen"], errors[kind], resets[kind])     # (depth, M)

    first = torch.stack([torch.nonzero(ty == c)[0, 0] for c in p["plane_classes"]])
    plane = input_plane(tx[first], resolution=p["plane_resolution"])
    nets = {"(a) frozen features, softmax trained": frozen["rbm"].after,
            "(b) fully fine-tuned": runs["rbm"].after,
            "(c) fine-tuned, layer 1 reset": reset_layers(runs["rbm"].after, runs["rbm"].before, [0])}
    maps = {label: decision_map(net, plane) for label, net in nets.items()}  # (M, R, R)
    ma, mb, mc = maps.values()
    plane_moved = {"fine_tuning": float((ma != mb).double().mean()),
                   "layer_1_reset": float((mb != mc).double().mean())}
    return Result(runs=runs, frozen=frozen, changes=changes, layer_names=layer_names, sizes=sizes,
                  errors=errors, resets=resets, lost=lost, plane=plane, maps=maps, plane_moved=plane_moved)


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted, each by the fair-fight protocol over ``n_seeds`` seeds: per stack kind the whole net
    fine-tuned ([784, *hidden_sizes, 10], ``finetune_epochs``) and the softmax alone on the frozen
    top features ([hidden_sizes[-1], 10], ``softmax_epochs``); the random-init net of the same shape.
    Not counted: the two stacks (chapter 1's, with the same stack parameters and seed: found in the
    cache, counted in chapter 1's plan); the longer run of a seed that did not converge; the frozen
    features computed once for the softmax-only runs, the per-epoch layer changes, the test errors,
    the layer resets and the decision maps (analysis).
    """
    sizes = [784, *p["hidden_sizes"], N_CLASSES]
    jobs = []
    for kind in KINDS:
        jobs.append(protocol_job(f"{LABELS[kind]}, fine-tuned", sizes, p, p["n_seeds"]))
        jobs.append(protocol_job(f"{LABELS[kind]}, softmax only", (sizes[-2], N_CLASSES), p, p["n_seeds"],
                                  epochs=p["softmax_epochs"]))
    jobs.append(protocol_job(f"{LABELS['random']}, fine-tuned", sizes, p, p["n_seeds"]))
    return jobs


# -- the sections ------------------------------------------------------------------------------

def setup(ch: runtime.Chapter) -> None:
    """The networks: runs per network, architecture, fine-tuning settings, data sizes."""
    p, data = ch.params, ch.data
    ch.glue("n_seeds", p["n_seeds"], fmt="d")
    ch.glue("architecture", "-".join(map(str, _sizes(ch))))
    ch.glue("ft_epochs", p["finetune_epochs"], fmt="d")
    ch.glue("ft_epochs_text", plural(p["finetune_epochs"], "epoch"))
    ch.glue("copies_text", "once" if p["n_seeds"] == 1 else f"{p['n_seeds']} times")
    grid = p["finetune_lr_grid"]
    ch.glue("ft_rates", f"{len(grid)} log-spaced rates from {grid[0]:g} to {grid[-1]:g}", fmt="s")
    ch.glue("ft_patience", p["finetune_patience"], fmt="d")
    ch.glue("ft_flat", f"{selection_config(p).flat_tolerance * 100:g}", fmt="s")
    ch.glue("ft_select_seeds", plural(p["finetune_select_seeds"], "run"), fmt="s")
    ch.glue("ft_extensions", plural(p["finetune_max_extensions"], "time"), fmt="s")
    ch.glue("softmax_epochs_text", plural(p["softmax_epochs"], "epoch"), fmt="s")
    ch.glue("ft_batch", p["finetune_batch_size"], fmt="d")
    ch.glue("n_train", len(data.train.y), fmt=",d")
    ch.glue("n_test", len(data.test.y), fmt=",d")
    ch.glue("min_pairs", claims.MIN_PAIRS, fmt="d")
    ch.glue("alpha", claims.ALPHA, fmt="g")


def _records(res: Result) -> dict[str, dict]:
    """Every trained network's selection record, by its name on the page."""
    out = {NETWORK_NAMES[k]: r.selection for k, r in res.runs.items()}
    out.update({NETWORK_NAMES[f"{k}_frozen"]: r.selection for k, r in res.frozen.items()})
    return out


def training(ch: runtime.Chapter, res: Result) -> None:
    """How every network was trained (the fair-fight table), which did not converge, and the curves."""
    records = _records(res)
    ch.glue("convergence_sentence", fairness.convergence_sentence(records), fmt="s")
    ch.glue("err_random_valid", 100 * float(np.mean(res.runs["random"].selection["valid_error"])), fmt=".2f")
    runtime.show(fairness.selection_frame(records).style.format(fairness.FORMATS)
                 .set_caption("How each network was trained: the rate chosen on the validation set, the median "
                              "best epoch and epochs run over the runs, the median training NLL at the best "
                              "epoch, and how many runs converged"))
    curves = {NETWORK_NAMES[k]: r.history for k, r in res.runs.items()}
    ch.figure("ch2_training_curves", figures.training_curves(curves, n_classes=N_CLASSES,
                                                                      plateau_fraction=PLATEAU_FRACTION))


def receptive_field_change(ch: runtime.Chapter, res: Result) -> None:
    """Section 1: the first-layer receptive fields of run 1 of the DBN and the SDAE, before and after."""
    n = ch.params["n_fields"]
    W_before, W_after = res.runs["rbm"].before.weights[0][0], res.runs["rbm"].after.weights[0][0]
    ratio = field_change_ratio(W_before, W_after, n)
    ch.glue("n_fields_shown", n, fmt="d")
    ch.glue("n_fields_text", plural(n, "unit"))
    ch.glue("rf_max_change_pct", ratio, fmt=".1%")
    ch.glue("rf_look", field_look(ratio))
    dae_before, dae_after = res.runs["dae"].before.weights[0][0], res.runs["dae"].after.weights[0][0]
    dae_ratio = field_change_ratio(dae_before, dae_after, n)
    ch.glue("rf_max_change_pct_dae", dae_ratio, fmt=".1%")
    ch.glue("rf_look_dae", field_look(dae_ratio))
    ch.figure("ch2_fields_rbm", plot_receptive_field_change(W_before, W_after, n=n,
                                                            title="DBN, first layer, fine-tuning run 1"))
    ch.figure("ch2_fields_dae", plot_receptive_field_change(dae_before, dae_after, n=n,
                                                            title="SDAE, first layer, fine-tuning run 1"))


def _rel(res: Result) -> dict[str, Tensor]:
    """Per network the relative change of each layer, mean over runs: (depth + 1,) float64."""
    return {k: c.relative_change.double().mean(1) for k, c in res.changes.items()}


def layer_change(ch: runtime.Chapter, res: Result) -> None:
    """Section 2: how far each layer of each network moved (table and bar charts), and the numbers quoted."""
    n_seeds, depth = ch.params["n_seeds"], res.depth
    ch.glue("n_seeds_2", n_seeds, fmt="d")
    ch.glue("n_runs_text", plural(n_seeds, "fine-tuning run"))
    ch.glue("depth_text", plural(depth, "hidden layer"))
    runtime.show(_unbroken(layer_change_table(res.changes, res.layer_names, n_seeds)))
    ch.figure("ch2_layer_change", plot_layer_change({LABELS[k]: c for k, c in res.changes.items()}, res.layer_names))
    rel = _rel(res)
    rbm_hidden = rel["rbm"][:depth]
    ch.glue("rbm_rel_1", float(rel["rbm"][0]), fmt=".2%")
    ch.glue("rbm_rel_top", float(rel["rbm"][depth - 1]), fmt=".2%")
    ch.glue("rbm_rel_order", "smallest" if depth == 1 or bool(rbm_hidden[0] < rbm_hidden[1:].min())
            else "not the smallest")
    ch.glue("dae_rel_1", float(rel["dae"][0]), fmt=".2%")
    ch.glue("random_rel_1", float(rel["random"][0]), fmt=".2%")
    ch.glue("rbm_vs_random_1", float(rel["random"][0] / rel["rbm"][0]), fmt=".1f")
    ch.glue("rbm_cos_1", float(res.changes["rbm"].mean_cosine[0].mean()), fmt=".4f")
    ch.glue("rbm_flip_1", float(res.changes["rbm"].sign_flip_fraction[0].mean()), fmt=".2%")
    ch.glue("tiny_paired", tiny_sentence(res.changes["rbm"].relative_change[:depth],
                                         res.changes["random"].relative_change[:depth]), fmt="s")
    ch.glue("least_paired", least_sentence(res.changes["rbm"].relative_change[:depth]), fmt="s")


def change_over_epochs(ch: runtime.Chapter, res: Result) -> None:
    """Section 2, continued: each layer's relative change since the start, after every epoch."""
    ch.figure("ch2_change_over_epochs",
              plot_change_over_epochs({LABELS[k]: r.history["relative_change"] for k, r in res.runs.items()},
                                      res.layer_names))


def _unbroken(table: pd.DataFrame) -> pd.DataFrame:
    """The table with non-breaking spaces in its layer labels ("layer 1" stays on one line on the page)."""
    return table.rename(index=lambda v: v.replace(" ", "\u00a0") if str(v).startswith("layer ") else v)



def _pct(t: Tensor) -> float:
    """Mean over runs of error fractions (M,), in percent."""
    return 100 * float(t.double().mean())


def errors_and_resets(ch: runtime.Chapter, res: Result) -> None:
    """Section 3: test errors of the frozen, fine-tuned, layer-reset and random-init networks, and the gain lost."""
    errors, resets = res.errors, res.resets
    runtime.show(_unbroken(reset_table(resets, res.lost, ch.params["n_seeds"])))
    for kind, label in KINDS.items():
        bars = {"(a) frozen features, softmax trained": errors[f"{kind}_frozen"],
                "(b) fully fine-tuned": errors[kind]}
        bars.update({f"(c) fine-tuned, layer {i + 1} reset": resets[kind][i] for i in range(res.depth)})
        bars["(d) random init, fine-tuned"] = errors["random"]
        ch.figure(f"ch2_errors_{kind}", plot_test_errors(bars, title=f"{label}: test error"))
    for kind in KINDS:
        ch.glue(f"{kind}_err_frozen", _pct(errors[f"{kind}_frozen"]), fmt=".2f")
        ch.glue(f"{kind}_err_ft", _pct(errors[kind]), fmt=".2f")
        ch.glue(f"{kind}_err_reset1", _pct(resets[kind][0]), fmt=".2f")
        s1 = share_lost(res.lost[kind][0])
        ch.glue(f"{kind}_lost_1", f"{s1:.0%}" if s1 is not None else "nothing (fine-tuning gained nothing)")
    ch.glue("err_random", _pct(errors["random"]), fmt=".2f")
    ch.glue("lost_paired", lost_sentence(res.lost["rbm"][0]), fmt="s")
    ch.glue("rbm_gain_text", gain_text(_pct(errors["rbm_frozen"]), _pct(errors["rbm"])))


def decision_boundaries(ch: runtime.Chapter, res: Result) -> None:
    """Section 4: the classes run 1 of the DBN assigns on the input plane, frozen / fine-tuned / layer 1 reset."""
    ch.figure("ch2_decision_maps", plot_decision_maps({label: m[0] for label, m in res.maps.items()}, res.plane,
                                                      ch.params["plane_classes"]))
    ch.glue("plane_moved_ab", res.plane_moved["fine_tuning"], fmt=".0%")
    ch.glue("plane_moved_bc", res.plane_moved["layer_1_reset"], fmt=".0%")


def compare_with_papers(ch: runtime.Chapter, res: Result) -> None:
    """Section 5: this chapter's test errors beside Larochelle et al. 2009 and Erhan et al. 2010."""
    ours, erhan = reference_tables({k: _pct(res.errors[k]) for k in LABELS}, res.depth)
    from IPython.display import Markdown

    runtime.show(ours.map(lambda v: "—" if pd.isna(v) else f"{v:.2f}").rename(
                     columns={"this chapter": "this chapter (mean over the runs)"}),
                 Markdown(f"{erhan.index.name}, test error (%), mean ± standard deviation:"),
                 erhan.rename_axis(None))


# -- the claim -----------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C2 (DESIGN.md), each tested on this run's numbers (see :func:`assess`)."""
    depth = res.depth
    parts = assess(res.changes["rbm"].relative_change[:depth], res.changes["random"].relative_change[:depth],
                   res.lost["rbm"][0], res.plane_moved)
    return gate_unconverged(parts, {"rbm": res.runs["rbm"], "random": res.runs["random"],
                                    "rbm_frozen": res.frozen["rbm"]})


NEEDS = {"a": ("rbm", "random"), "b": ("rbm",), "c": ("rbm", "rbm_frozen"), "d": ()}
"""The networks each part of the claim compares."""

NETWORK_NAMES = {"rbm": "the fine-tuned DBN", "dae": "the fine-tuned SDAE", "random": "the random-init network",
                 "rbm_frozen": "the DBN's softmax on frozen features", "dae_frozen": "the SDAE's softmax on frozen features"}


def gate_unconverged(parts: Sequence[claims.Part], runs: Mapping[str, "FinetuneRun"]) -> list[claims.Part]:
    """Each part (:data:`NEEDS`) that compares a network which did not converge
    (:attr:`FinetuneRun.converged`) becomes "not tested at this scale" (:func:`pretraining.book.fairness.gate`)."""
    return fairness.gate(parts, lambda key: NEEDS.get(key, ()), {k: r.selection for k, r in runs.items()},
                         label=NETWORK_NAMES.get)


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    rel = _rel(res)
    e = res.errors
    finding = (f"DBN fine-tuning moved layer 1 by {float(rel['rbm'][0]):.2%} (random init: "
               f"{float(rel['random'][0]):.2%}); test error {_pct(e['rbm_frozen']):.2f} % frozen -> "
               f"{_pct(e['rbm']):.2f} % fine-tuned -> {_pct(res.resets['rbm'][0]):.2f} % with layer 1 reset "
               f"({ch.params['n_seeds']} seeds, {ch.profile} profile).")
    ch.finish(results_record(res), parts=claim_parts(ch, res), finding=finding)


def assess(change_pretrained: Tensor, change_random: Tensor, gain_lost_first: Tensor,
           plane_moved: Mapping[str, float]) -> list[claims.Part]:
    """The four parts of C2 tested on the numbers, run by run.

    change_pretrained, change_random: relative change (L, M) of the hidden layers 1..L of the
    pre-trained (DBN) and of the randomly initialised network, run m of both from fine-tuning seed m;
    gain_lost_first: (M,) fraction of the gain lost by resetting layer 1 (:func:`gain_lost`; NaN
    where there was no gain); plane_moved: ``Result.plane_moved``. Parts (a)-(c) are decided by the
    two-sided Wilcoxon signed-rank test of a per-run difference d_m that is positive when run m
    supports the claim (:func:`pretraining.analysis.stats.paired_difference`,
    :func:`pretraining.book.claims.paired`; effect = mean of d, with its t interval; they hold when the
    Holm-adjusted p < :data:`claims.ALPHA` and the mean and signed ranks of d are positive); with fewer
    than :data:`claims.MIN_PAIRS` runs they are not tested:

    (a) d_m = :data:`TINY_FRACTION` x the random network's layer-1 change - the DBN's layer-1 change;
    (b) d_m = the smallest change of the DBN's hidden layers 2..L - its layer-1 change (not tested
        with one hidden layer);
    (c) d_m = the share of the gain lost by resetting layer 1 - :data:`MATTERS_FRACTION` (not tested
        when fine-tuning gained nothing in some run: the share is undefined there);
    (d) the changes move decision boundaries: not measured yet (issue 16); the plane maps are
        its evidence so far.
    """
    if change_pretrained.dim() != 2 or change_random.shape != change_pretrained.shape:
        raise ValueError(f"change_pretrained {tuple(change_pretrained.shape)} and change_random "
                         f"{tuple(change_random.shape)} must both be (L, M)")
    if gain_lost_first.shape != change_pretrained.shape[1:]:
        raise ValueError(f"gain_lost_first has shape {tuple(gain_lost_first.shape)}; expected "
                         f"({change_pretrained.shape[1]},), one value per member")
    pre = change_pretrained.double().cpu()
    rnd = change_random.double().cpu()
    lost = gain_lost_first.double().cpu()
    depth, runs = pre.shape
    pre1, rnd1 = float(pre[0].mean()), float(rnd[0].mean())
    hidden = ", ".join(f"{float(v):.2%}" for v in pre.mean(1))

    tiny = stats.paired_difference(TINY_FRACTION * rnd[0] - pre[0])
    part_a = claims.paired(
        "a", "fine-tuning changes the lower layers little", tiny,
        f"per run (run m of the DBN and of the random-init network share fine-tuning seed m), {TINY_FRACTION:g} × "
        f"the random network's first-layer relative change minus the DBN's (fractions of the layer's norm; "
        f"positive: the DBN's first layer moved less than {TINY_FRACTION:.0%} as far): "
        f"{claims.paired_text(tiny, unit='runs', interval=False)}; mean relative change of the first layer "
        f"{pre1:.2%} in the DBN, {rnd1:.2%} from random initialisation (how far pre-training moved the weights is "
        "not compared yet)", unit="runs", runs_positive=tiny["positive"],
        relative_change_layer_1=pre1, random_init_relative_change_layer_1=rnd1, tiny_fraction=TINY_FRACTION)

    if depth == 1:
        part_b = claims.part("b", "the lower layers change least", None,
                             "one hidden layer: there is no other hidden layer to compare it with",
                             relative_change_hidden=[float(v) for v in pre.mean(1)])
    else:
        least = stats.paired_difference(pre[1:].min(0).values - pre[0])
        part_b = claims.paired(
            "b", "the lower layers change least", least,
            f"per run, {_upper_layers(depth)} of the DBN minus that of layer 1 (fractions of the norm; "
            f"positive: layer 1 moved least): {claims.paired_text(least, unit='runs', interval=False)}; "
            f"mean relative change of layers 1..{depth}: {hidden}", unit="runs", runs_positive=least["positive"],
            relative_change_hidden=[float(v) for v in pre.mean(1)])

    no_gain = int(torch.isnan(lost).sum())
    claim_c = "those tiny changes matter: resetting layer 1 loses much of fine-tuning's gain"
    bar = f"the bar for 'a big difference': {MATTERS_FRACTION:.0%} of the gain"
    if no_gain:
        part_c = claims.part(
            "c", claim_c, None,
            f"fine-tuning gained nothing over the softmax alone in {no_gain} of {runs} runs, so the share of the "
            f"gain a reset loses is undefined there and the runs cannot all be compared; {bar}",
            n=runs, runs_without_gain=no_gain, gain_lost_layer_1=share_lost(lost), matters_fraction=MATTERS_FRACTION)
    else:
        matters = stats.paired_difference(lost - MATTERS_FRACTION)
        part_c = claims.paired(
            "c", claim_c, matters,
            f"per run, the share of fine-tuning's gain lost by resetting the DBN's first layer to its pre-trained "
            f"weights minus {MATTERS_FRACTION:g} (fractions of the gain; positive: the reset loses more than "
            f"{MATTERS_FRACTION:.0%}): {claims.paired_text(matters, '+.3f', 'runs', interval=False)}; mean share "
            f"lost {share_lost(lost):.0%}; {bar}", unit="runs", runs_positive=matters["positive"],
            gain_lost_layer_1=share_lost(lost), runs_without_gain=0, matters_fraction=MATTERS_FRACTION)

    part_d = claims.part(
        "d", "they move decision boundaries: digits whose prediction changes mostly become correct", None,
        "not measured yet (issue 16); on a plane through three test digits fine-tuning changes the "
        f"assigned class on {plane_moved['fine_tuning']:.0%} of the points and resetting layer 1 "
        f"changes it again on {plane_moved['layer_1_reset']:.0%}",
        plane_class_changed_fine_tuning=plane_moved["fine_tuning"],
        plane_class_changed_layer_1_reset=plane_moved["layer_1_reset"])
    return [part_a, part_b, part_c, part_d]


# -- tables and sentences -------------------------------------------------------------------------

def pm(mean: float, std: float, fmt: str, n_seeds: int) -> str:
    """``"mean ± std"`` in format ``fmt`` (e.g. ``".4f"``), or just the mean when there is one run."""
    return f"{mean:{fmt}} ± {std:{fmt}}" if n_seeds > 1 else f"{mean:{fmt}}"


def field_change_ratio(W_before: Tensor, W_after: Tensor, n: int) -> float:
    """Largest |change| of the weights of the first ``n`` units over their largest |weight before|.

    W_before, W_after: (V, H) of ONE member.
    """
    shown = slice(0, n)
    return float((W_after - W_before)[:, shown].abs().max() / W_before[:, shown].abs().max())


def field_look(ratio: float) -> str:
    """How receptive fields look before and after, from :func:`field_change_ratio`."""
    return ("practically identical to the eye" if ratio < 0.1 else
            "similar, with visible differences" if ratio < 0.5 else "clearly different")


def gain_text(frozen_pct: float, fine_tuned_pct: float) -> str:
    """The sentence end "fine-tuning ..." from the test errors (%) of the frozen and the fine-tuned net."""
    if frozen_pct - fine_tuned_pct > 0:
        return f"lowers the test error from {frozen_pct:.2f} % to {fine_tuned_pct:.2f} %"
    return (f"does not lower the test error ({frozen_pct:.2f} % with the softmax alone, "
            f"{fine_tuned_pct:.2f} % fine-tuned)")


def tiny_sentence(change_pretrained: Tensor, change_random: Tensor) -> str:
    """Part (a)'s paired comparison in words, from the (L, M) relative changes of the DBN and the random net."""
    s = stats.paired_difference(_np(TINY_FRACTION * change_random[0].double() - change_pretrained[0].double()))
    return (f"Run by run (run m of both networks shares fine-tuning seed m), {TINY_FRACTION:g} × the random-init "
            f"network's first-layer change minus the DBN's is {claims.paired_text(s, unit='runs')} (fractions of "
            f"the layer's norm; positive: the DBN's first layer moved less than {TINY_FRACTION:.0%} as far).")


def _upper_layers(depth: int) -> str:
    """What part (b) compares layer 1 with: "the relative change of hidden layer 2" or the smallest of 2..depth."""
    return ("the relative change of hidden layer 2" if depth == 2 else
            f"the smallest relative change of hidden layers 2..{depth}")


def least_sentence(change_pretrained: Tensor) -> str:
    """Part (b)'s paired comparison in words, from the DBN's (L, M) relative changes of its hidden layers."""
    depth = change_pretrained.shape[0]
    if depth == 1:
        return "With one hidden layer there is no other hidden layer to compare it with."
    pre = change_pretrained.double()
    s = stats.paired_difference(_np(pre[1:].min(0).values - pre[0]))
    return (f"Run by run, {_upper_layers(depth)} minus the change of layer 1 is "
            f"{claims.paired_text(s, unit='runs')} (fractions of the norm; positive: layer 1 moved least).")


def lost_sentence(gain_lost_first: Tensor) -> str:
    """Part (c)'s paired comparison in words, from the (M,) shares of the gain the layer-1 reset loses."""
    lost = gain_lost_first.double()
    no_gain = int(torch.isnan(lost).sum())
    if no_gain:
        return (f"In {no_gain} of {lost.numel()} runs fine-tuning gained nothing over the softmax alone, so the "
                "share of the gain a reset loses is undefined there.")
    s = stats.paired_difference(_np(lost - MATTERS_FRACTION))
    return (f"Run by run, the share of the gain lost minus {MATTERS_FRACTION:g} is "
            f"{claims.paired_text(s, '+.3f', 'runs')} "
            f"(fractions of the gain; positive: the reset loses more than {MATTERS_FRACTION:.0%} of it).")


def _share_interval(lost: Tensor) -> str:
    """The 95 % t interval of the mean share of the gain lost over the runs with a gain, as text."""
    v = lost.double()
    v = v[~v.isnan()].cpu().numpy()
    if v.size < 2:
        return "—"
    lo, hi = stats.t_interval(v)
    return f"[{lo:.0%}, {hi:.0%}]"


def layer_change_table(changes: Mapping[str, LayerChange], layer_names: Sequence[str], n_seeds: int) -> pd.DataFrame:
    """One row per network and layer ("layer 1" .. "layer L", "softmax"): relative change (%), mean cosine,
    weights with a flipped sign (%), each mean ± std over runs.

    changes: per network key of :data:`LABELS` its :class:`LayerChange`. The index (network, layer)
    has no names, so the table has one header row.
    """
    rows = []
    for k, c in changes.items():
        for rec in c.records(layer_names):
            rows.append({"network": LABELS[k], "layer": _layer_label(rec["layer"]),
                         "relative change (%)": pm(100 * rec["relative_change"], 100 * rec["relative_change_std"],
                                                   ".2f", n_seeds),
                         "mean cosine, before vs after": pm(rec["mean_cosine"], rec["mean_cosine_std"], ".4f",
                                                            n_seeds),
                         "weights with flipped sign (%)": pm(100 * rec["sign_flip_fraction"],
                                                             100 * rec["sign_flip_fraction_std"], ".2f", n_seeds)})
    return pd.DataFrame(rows).set_index(["network", "layer"]).rename_axis([None, None])


def reset_table(resets: Mapping[str, Tensor], lost: Mapping[str, Tensor], n_seeds: int) -> pd.DataFrame:
    """One row per stack kind and reset layer ("layer 1" .. "layer L"): test error after the reset (%), the
    share of the gain lost (mean over the runs with a gain) and its 95 % t interval over those runs ("—"
    with fewer than 2).

    resets, lost: per kind of :data:`KINDS` (L, M), as in :class:`Result`. The index (network, layer
    reset) has no names, so the table has one header row.
    """
    rows = []
    for kind, label in KINDS.items():
        for i in range(resets[kind].shape[0]):
            e = 100 * resets[kind][i].double()
            share = share_lost(lost[kind][i])
            rows.append({"network": label, "layer reset": _layer_label(i + 1),
                         "test error with the layer reset (%)": pm(float(e.mean()), float(e.std()) if n_seeds > 1
                                                                   else 0.0, ".2f", n_seeds),
                         "share of the gain lost": f"{share:.0%}" if share is not None else "no gain",
                         "95 % t interval of the share": _share_interval(lost[kind][i])})
    return pd.DataFrame(rows).set_index(["network", "layer reset"]).rename_axis([None, None])


def reference_tables(errors_pct: Mapping[str, float], depth: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This chapter's mean test errors (%) beside the papers'.

    errors_pct: {"rbm", "dae", "random"} -> mean test error in %; depth: hidden layers. Returns the
    table beside Larochelle et al. 2009, Table 3 (NaN where the paper has no such depth), rounded
    to 2 decimals, and Erhan et al. 2010, Table 1 as "mean ± std" strings.
    """
    ref = LAROCHELLE2009_TABLE3.numbers["error"]
    table = pd.DataFrame({
        "this chapter": [errors_pct["rbm"], errors_pct["dae"], errors_pct["random"]],
        f"Larochelle et al. 2009, MNIST-small, {depth} layer{'' if depth == 1 else 's'}": [
            ref[k].get(depth, float("nan")) for k in ("rbm", "autoassociator", "random")],
    }, index=["DBN (RBM stack), fine-tuned", "SDAE / stacked auto-associators, fine-tuned", "random init"])
    erhan = ERHAN2010_TABLE1.numbers
    rows = [{"setting": f"{label}, {d} layer{'s' if d > 1 else ''}",
             "test error (%)": f"{erhan['mean'][k][d]:.2f} ± {erhan['std'][k][d]:.2f}"}
            for k, label in (("random", "random init"), ("dae", "pre-trained")) for d in sorted(erhan["mean"][k])]
    return (table.round(2),
            pd.DataFrame(rows).set_index("setting").rename_axis("Erhan et al. 2010, Table 1 (full MNIST)"))


def _std(t: Tensor) -> float:
    return float(t.double().std()) if t.numel() > 1 else 0.0


def per_kind(res: Result, kind: str) -> dict:
    """The results-file entry of one stack kind: its layer changes, test errors (fractions: mean over
    runs, the std over runs beside it as key + "_std"), and the share of the gain each reset loses."""
    test = {}
    for name, e in [("frozen_features", res.errors[f"{kind}_frozen"]), ("fine_tuned", res.errors[kind]),
                    ("random_init", res.errors["random"])]:
        test[name], test[f"{name}_std"] = float(e.double().mean()), _std(e)
    test["fine_tuned_layer_reset"] = [float(res.resets[kind][i].double().mean()) for i in range(res.depth)]
    test["fine_tuned_layer_reset_std"] = [_std(res.resets[kind][i]) for i in range(res.depth)]
    return {"layers": res.changes[kind].records(res.layer_names), "test_error": test,
            "gain_lost_layer_reset": [share_lost(res.lost[kind][i]) for i in range(res.depth)]}


def results_record(res: Result) -> dict:
    """The chapter's results file entry: the DBN's :func:`per_kind` at the top level, the SDAE's under
    "sdae", the random-init net's layer changes, and the plane's changed fractions."""
    selection = {k: r.selection for k, r in res.runs.items()}
    selection.update({f"{k}_frozen": r.selection for k, r in res.frozen.items()})
    return {**per_kind(res, "rbm"), "n_seeds": res.errors["rbm"].numel(), "sdae": per_kind(res, "dae"),
            "random_init_layers": res.changes["random"].records(res.layer_names),
            "plane_class_changed": dict(res.plane_moved), "selection": selection,
            "converged": {k: r.converged for k, r in [*res.runs.items(), *((f"{k}_frozen", r) for k, r in
                                                                          res.frozen.items())]}}


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
        raise TypeError("both networks must be pretraining.core.models.Classifier instances")
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


def share_lost(lost: Tensor) -> float | None:
    """Mean over runs of the share of the gain one reset loses: ``lost`` (M,) from :func:`gain_lost`.

    Runs without a gain (NaN) are left out; None when no run gained anything.
    """
    v = lost.double()
    return None if bool(v.isnan().all()) else float(v.nanmean())


# ----------------------------------------------------------------------------------------- training
def layer_changes(start: Classifier, current: Classifier) -> Tensor:
    """How far each layer moved since ``start``: (M, depth + 1) relative changes ||W - W_start|| / ||W_start||
    (layers 1..depth, then the softmax); a :data:`pretraining.core.selection.Track`."""
    return torch.stack([relative_change(b, a) for b, a in zip(start.weights, current.weights)], dim=1)


def _from_stack(stack) -> Callable[[Sequence[int]], Classifier]:
    """make(seeds) -> the stack's one pre-trained member copied for every seed, each with its own random softmax."""
    return lambda seeds: Classifier.from_stack(stack.repeat(len(seeds)), N_CLASSES, seeds)


@dataclass
class FinetuneRun:
    """One trained group of members: ``before`` and ``after`` training (each seed at its best validation
    epoch), the training curves per seed ("train_nll", "valid_error", "relative_change": one entry per
    epoch run; relative_change a list of depth + 1 fractions, empty for softmax-only runs) and the
    selection record (:meth:`pretraining.core.selection.Selection.record`)."""

    before: Classifier
    after: Classifier
    history: dict
    selection: dict

    @property
    def converged(self) -> bool:
        """Every seed converged and the chosen rate is off the edge of the rates tried."""
        return setting_converged(self.selection)


def finetuned(ch: runtime.Chapter, name: str, make: Callable[[Sequence[int]], Classifier], what: Mapping,
              config: FinetuneConfig, selection: SelectionConfig, seeds: Sequence[int], *,
              softmax_only: bool = False) -> FinetuneRun:
    """``make(seeds)`` trained on the chapter's training digits by the fair-fight protocol
    (:func:`pretraining.core.selection.select_and_train`), through the artifact cache.

    All layers (tracking each layer's change per epoch, :func:`layer_changes`), or with
    ``softmax_only`` only the softmax, on the hidden features of the network's one shared stack
    (computed once: every member has the same hidden layers). ch: the running chapter (its data and
    cache); name: the artifact's name; what: everything that defines ``make`` (e.g. the stack's
    kind, sizes, pre-training config and seeds); the key adds the configs and ``seeds``.
    """
    key = {**what, "finetune": dataclasses.asdict(config), "selection": dataclasses.asdict(selection),
           "softmax_only": softmax_only, "seeds": list(seeds)}
    data = ch.data
    before = make(seeds)

    def compute():
        if softmax_only:
            def features(x: Tensor) -> Tensor:
                return torch.cat([before.member(0).hidden(x[s:s + 2000])[-1][0] for s in range(0, x.shape[0], 2000)])

            def make_top(s: Sequence[int]) -> Classifier:
                net = make(s)
                return Classifier([net.weights[-1]], [net.biases[-1]])

            sel = select_and_train(make_top, Subset(features(data.train.x), data.train.y),
                                   Subset(features(data.valid.x), data.valid.y), config, selection, seeds,
                                   longer=LONGER_RUN)
            after = before.clone()
            after.weights[-1], after.biases[-1] = sel.clf.weights[0], sel.clf.biases[0]
        else:
            sel = select_and_train(make, data.train, data.valid, config, selection, seeds, track=layer_changes,
                                   longer=LONGER_RUN)
            after = sel.clf
        curves = {"train_nll": sel.curves["train_nll"], "valid_error": sel.curves["valid_error"],
                  "relative_change": sel.curves.get("tracked", [[] for _ in seeds])}
        return after.state_dict(), {"history": curves, "selection": sel.record()}

    # version 3: early stopping once the validation curve flattened (version 2: the fair-fight protocol)
    tensors, meta = ch.cached(name, key, compute, version=3)
    return FinetuneRun(before, Classifier.from_state_dict(tensors), meta["history"], meta["selection"])


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
    resolution = require_int("resolution", resolution, 2)
    margin = require_float("margin", margin, ge=0, le=10)
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


def _field_columns(n: int) -> int:
    """Tiles per row of a receptive-field panel: at most 16, and at least two rows when n allows."""
    return max(1, min(16, math.ceil(n / 2))) if n > 1 else 1


def plot_receptive_field_change(W_before, W_after, n: int = 64, *, ncols: int | None = None,
                                title: str | None = None) -> Figure:
    """Receptive fields of the first ``n`` units before / after (one shared colour scale) and the difference.

    W_before, W_after: (784, H) of ONE member. The three panels are stacked in rows, at most page-wide; the
    difference after - before has its own symmetric colour scale (its colour bar shows how small it
    is). ncols: tiles per row (default :func:`_field_columns`). Returns the Figure (3 panels).
    """
    b, a = _np(W_before), _np(W_after)
    if b.shape != a.shape or b.ndim != 2 or math.isqrt(b.shape[0]) ** 2 != b.shape[0]:
        raise ValueError(f"W_before {b.shape} and W_after {a.shape} must be equal (V, H) with a square V")
    n = require_int("n", n, 1, b.shape[1])
    b, a = b[:, :n], a[:, :n]
    ncols = min(ncols or _field_columns(n), n)
    rows = math.ceil(n / ncols)
    tile = min(0.45, (PAGE_WIDTH - 1.4) / ncols)          # inches per 28x28 tile; 1.4 in for the colour bar
    panel = max(1.3, tile * rows + 0.45)                  # room for the title and a readable colour bar
    lim = float(max(np.abs(b).max(), np.abs(a).max())) or 1.0
    dlim = float(np.abs(a - b).max()) or 1.0
    with styled():
        width = min(PAGE_WIDTH, max(4.8, tile * ncols + 1.4))
        fig, axes = plt.subplots(3, 1, figsize=(width, 3 * panel + (0.4 if title else 0.0)),
                                 constrained_layout=True)
        shared = Normalize(-lim, lim)
        panels = [(b, shared, "before fine-tuning", "weight"), (a, shared, "after fine-tuning", "weight"),
                  (a - b, Normalize(-dlim, dlim), "difference (after − before), own colour scale", "change")]
        for ax, (w, norm, label, bar_label) in zip(axes, panels):
            im = _tiles(ax, w, ncols, norm, "RdBu_r")
            ax.set_title(label)
            bar = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.02, aspect=8)
            bar.set_label(bar_label)
            bar.ax.yaxis.set_major_locator(MaxNLocator(4, symmetric=True))
        if title:
            fig.suptitle(title, fontsize=13)
    return fig


def _layer_label(name) -> str:
    """"layer 1" for the hidden layer named "1" (or 1); other names ("softmax") as they are."""
    return f"layer {name}" if str(name).isdigit() else str(name)


#: Line styles and markers of the layers in line plots (colours are tab10 C0, C1, ...).
_LAYER_STYLES = [("-", "o"), ("--", "s"), ("-.", "^"), (":", "D"), ("-", "v"), ("--", "P"), ("-.", "X"), (":", "*")]


def plot_layer_change(changes: Mapping[str, LayerChange], layer_names: Sequence[str]) -> Figure:
    """Bar charts over layers of the three statistics (one panel per statistic, in rows), one bar colour per
    network, error bars = std over seeds.

    changes: {network label: LayerChange with len(layer_names) layers}.
    """
    if not changes:
        raise ValueError("changes must name at least one network")
    labels = list(changes)
    titles = {"relative_change": "relative change ‖ΔW‖ / ‖W‖ (%)",
              "mean_cosine": "mean cosine between a unit's weights before and after",
              "sign_flip_fraction": "weights whose sign flipped (%)"}
    scale = {"relative_change": 100.0, "mean_cosine": 1.0, "sign_flip_fraction": 100.0}
    hatches = ["", "//", ".."]
    x = np.arange(len(layer_names))
    width = 0.8 / len(labels)
    with styled():
        fig, axes = plt.subplots(3, 1, figsize=(PAGE_WIDTH, 7.4), sharex=True, layout="constrained")
        for ax, stat in zip(axes, LayerChange.STATS):
            for k, label in enumerate(labels):
                v = scale[stat] * _np(getattr(changes[label], stat))
                if v.shape[0] != len(layer_names):
                    raise ValueError(f"{label!r} has {v.shape[0]} layers, layer_names has {len(layer_names)}")
                err = v.std(1, ddof=1) if v.shape[1] > 1 else None
                ax.bar(x + (k - (len(labels) - 1) / 2) * width, v.mean(1), width * 0.92, yerr=err, capsize=3,
                       label=label, color=f"C{k}", hatch=hatches[k % len(hatches)], edgecolor="white")
            ax.set_title(titles[stat])
        axes[1].set_ylim(min(0.0, axes[1].get_ylim()[0]), 1.02)
        axes[-1].set_xticks(x, [_layer_label(n) for n in layer_names])
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=min(3, len(labels)))
    return fig


def ragged_curves(curves: Sequence[Sequence]) -> np.ndarray:
    """Per-seed curves of different lengths (seed m: E_m entries, each a number or a list of K) as one
    (E, K, M) array (E the longest run), NaN after a seed stopped."""
    arrays = [np.asarray(c, dtype=float).reshape(len(c), -1) for c in curves]
    E, K = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    out = np.full((E, K, len(arrays)), np.nan)
    for m, a in enumerate(arrays):
        out[:a.shape[0], :a.shape[1], m] = a
    return out


def plot_change_over_epochs(histories: Mapping[str, Sequence], layer_names: Sequence[str]) -> Figure:
    """Relative change of each layer against the fine-tuning epoch, one panel per network, in rows.

    histories: {network label: per seed a list of per-epoch (L,) relative changes} (the runs'
    "relative_change", fractions, drawn in %; seeds stop at different epochs); lines are the mean
    over the seeds still training, the band their min..max.
    """
    n = len(histories)
    with styled():
        fig, axes = plt.subplots(n, 1, figsize=(PAGE_WIDTH, 2.3 * n + 0.7), sharex=True, sharey=True,
                                 layout="constrained", squeeze=False)
        longest = 1
        for ax, (label, hist) in zip(axes[:, 0], histories.items()):
            v = 100 * ragged_curves(hist)  # (E, L, M), in % of the starting norm
            longest = max(longest, v.shape[0])
            epochs = np.arange(1, v.shape[0] + 1)
            for i, name in enumerate(layer_names):
                ls, marker = _LAYER_STYLES[i % len(_LAYER_STYLES)]
                line, = ax.plot(epochs, np.nanmean(v[:, i], 1), ls=ls, marker=marker, ms=5, color=f"C{i}",
                                markevery=max(1, len(epochs) // 12), label=_layer_label(name))
                ax.fill_between(epochs, np.nanmin(v[:, i], 1), np.nanmax(v[:, i], 1), color=line.get_color(),
                                alpha=0.2)
            ax.set_yscale("log")
            ax.set_title(label)
            ax.set_ylabel("relative change (%)")
        axes[-1, 0].set_xlabel("fine-tuning epoch")
        axes[-1, 0].set_xlim(0.5, longest + 0.5)
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center",
                   ncols=min(4, len(layer_names)))
    return fig


def plot_test_errors(errors: Mapping[str, Tensor], *, title: str | None = None) -> Figure:
    """Horizontal bars of test error (%) per condition, mean over seeds with every seed as a dot.

    errors: {condition label: error fractions (M,)}, drawn top to bottom in the given order; bars of
    conditions with "reset" in their label are orange (and hatched), the others blue.
    """
    with styled():
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.5 * len(errors) + 1.4), layout="constrained")
        for k, (label, e) in enumerate(errors.items()):
            v = 100 * _np(e).reshape(-1)
            reset = "reset" in label
            ax.barh(k, v.mean(), color="C1" if reset else "C0", alpha=0.7, hatch="//" if reset else None,
                    edgecolor="white")
            ax.scatter(v, np.full_like(v, k), color="black", s=14, zorder=3)
            ax.text(v.max(), k, f"  {v.mean():.2f} %", va="center")
        ax.set_yticks(range(len(errors)), list(errors))
        ax.invert_yaxis()
        ax.set_xlabel("test error (%): bars the mean over runs, dots the runs")
        ax.set_xlim(0, ax.get_xlim()[1] * 1.15)
        if title:
            ax.set_title(title)
    return fig


def plot_decision_maps(maps: Mapping[str, Tensor], plane: InputPlane, anchor_labels: Sequence[int], *,
                       n_classes: int = 10) -> Figure:
    """Class maps (R, R) on the input plane, two per row, the three anchor digits drawn at their corners;
    the classes' colours in a legend (in the free cell, or under the maps).

    maps: {panel title: (R, R) int classes of ONE member}; anchor_labels: the anchors' true classes.
    """
    colours = plt.get_cmap("tab10").colors[:n_classes]
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-0.5, n_classes), n_classes)
    a, b = _np(plane.alpha), _np(plane.beta)
    extent = (a[0], a[-1], b[0], b[-1])
    side = math.isqrt(plane.anchors.shape[1])
    n = len(maps)
    ncols = 1 if n == 1 else 2
    rows = math.ceil(n / ncols)
    free = rows * ncols > n
    cell = (PAGE_WIDTH - 0.3) / 2
    with styled():
        fig, axes = plt.subplots(rows, ncols, figsize=(PAGE_WIDTH, cell * rows + (0 if free else 0.9)),
                                 layout="constrained", squeeze=False)
        flat = axes.ravel()
        for k, (ax, (label, m)) in enumerate(zip(flat, maps.items())):
            ax.imshow(_np(m), origin="lower", extent=extent, cmap=cmap, norm=norm, interpolation="nearest")
            size = 0.16 * (a[-1] - a[0])  # inside the map when margin >= 0.3 (the default)
            for (x0, y0), digit, img in zip([(0, 0), (1, 0), (0, 1)], anchor_labels, plane.anchors):
                ax.plot(x0, y0, "o", ms=7, mec="black", mfc="white")
                ax.annotate(f"digit {digit}", (x0, y0), xytext=(0, -8), textcoords="offset points", ha="center",
                            va="top", fontsize=10, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.8})
                inset = ax.inset_axes([x0 + 0.03, y0 + 0.03, size, size], transform=ax.transData)
                inset.imshow(_np(img).reshape(side, side), cmap="gray_r", vmin=0, vmax=1)
                inset.set_xticks([])
                inset.set_yticks([])
            ax.set_title(label)
            if k // ncols == rows - 1 or (free and k // ncols == rows - 2 and k % ncols == ncols - 1):
                ax.set_xlabel("α (towards the 2nd digit)")
            if k % ncols == 0:
                ax.set_ylabel("β (towards the 3rd digit)")
            ax.grid(False)
        handles = [Patch(facecolor=colours[c], label=str(c)) for c in range(n_classes)]
        if free:
            for ax in flat[n:]:
                ax.set_axis_off()
            flat[n].legend(handles=handles, title="assigned class", loc="center", ncols=2, frameon=False)
        else:
            fig.legend(handles=handles, title="assigned class", loc="outside lower center", ncols=n_classes)
    return fig
