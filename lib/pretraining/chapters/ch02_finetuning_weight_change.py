"""Chapter 2: what discriminative fine-tuning does to the weights of a pre-trained network.

The notebook ``chapters/02_finetuning_weight_change.ipynb`` tells the story; this module does the work:

* :data:`SPEC` — the claim and the parameters (the stack parameters are chapter 1's,
  :data:`pretraining.book.specs.STACK_PARAMS`, so stack 0 of each kind is chapter 1's stack, found in
  the artifact cache);
* :func:`run` — pre-trains the extra stacks, fine-tunes every condition by the fair-training routine
  (all cached), and measures what changed and what it did;
* one function per section — :func:`setup`, :func:`training`, :func:`receptive_field_change`,
  :func:`layer_change`, :func:`change_over_epochs`, :func:`controls`, :func:`decision_boundaries`,
  :func:`compare_with_papers`;
* :func:`claim_parts` (the tests: :func:`assess`) and :func:`finish` — the claim's parts tested on the
  numbers, the results file.

**The conditions.** Per stack kind (DBN = RBM stack, SDAE = denoising auto-encoder stack), each
trained by :func:`pretraining.core.selection.select_and_train` on the same runs: the whole network
fine-tuned; the network fine-tuned with layer 1 frozen at its pre-trained weights (upper layers and
softmax free: ``train_layers``); the softmax alone on the frozen pre-trained features. Two edits of
the fine-tuned network, evaluated without training: layer 1's change replaced by a random change of
the same size (:func:`perturbed_layer`), and layer 1 put back to its pre-trained weights after
fine-tuning (:func:`reset_layers`; the upper layers keep what they learned on top of the fine-tuned
layer 1, so this ablation also breaks them). The "a lot of change" reference is a network of the same
shape trained from random initialisation by the same routine.

**Seeds and stacks.** ``n_pretrain_seeds`` = S stacks per kind are pre-trained independently, stack
seeds ``member_seeds(seed, S)``: stack 0 is chapter 1's (``member_seeds(seed, 1)``, a cache hit), the
others one batched artifact. Fine-tuning run m (m = 0 .. n_seeds - 1, network seed
``member_seeds(seed, n_seeds)[m]``: softmax initialisation and minibatch order) starts from stack
m mod S (:func:`stack_of_runs`; n_seeds is a multiple of S, so every stack is fine-tuned equally
often). Run m of every condition, and of the random-init network, shares seed m, and the pre-trained
conditions of run m share its stack, so every comparison is paired run by run
(:func:`pretraining.analysis.stats.paired_difference`, :func:`pretraining.book.claims.paired`) and its
interval over runs includes the spread between independently pre-trained stacks. The softmax on
frozen features is selected per stack (its features differ from stack to stack and the routine's
validation set is shared by all members), on the runs of that stack.

**The measures**, per layer (:class:`LayerChange`): the absolute change ||W_after - W_before||; the
change relative to how far pre-training moved the layer from its random start,
||W_ft - W_pt|| / ||W_pt - W_init|| (W_init recreated from the stack seed by the same initialisers
pre-training used, :func:`initial_weights`); the per-unit cosine between the incoming weights before
and after; the fraction of weights whose sign flipped; the linear CKA between the layer's activations
on the test digits before and after (:func:`pretraining.analysis.similarity.linear_cka`).

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
from ..analysis.similarity import linear_cka
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
from ..book.workplan import protocol_job, split_sizes, stack_jobs
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES, Subset
from ..core.memory import training_bytes
from ..core.models import RBM, Classifier, DenoisingAutoencoder, Stack
from ..core.rehearsal import Job
from ..core.seeding import generator, member_seeds, validate_seeds
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, select_and_train, setting_converged
from ..core.train import DAEConfig, FinetuneConfig, RBMConfig, evaluate

Tensor = torch.Tensor

__all__ = [
    "CONDITIONS", "KINDS", "SHORT", "LABELS", "N_CLASSES", "NETWORK_NAMES", "PERTURB_STREAM", "SPEC",
    "FinetuneRun", "InputPlane", "LayerChange", "Result", "SoftmaxRun",
    "assess", "change_over_epochs", "changed_predictions", "claim_parts", "compare_with_papers", "controls",
    "controls_table", "decision_boundaries", "decision_map", "field_change_ratio", "field_look", "finetuned",
    "finish", "gate_unconverged", "initial_weights", "input_plane", "join_stacks", "layer_cka", "layer_change",
    "layer_change_table", "layer_distances", "layer_measures", "layer_reset_errors", "perturbed_layer",
    "plot_change_over_epochs", "plot_decision_maps", "plot_layer_change", "plot_receptive_field_change",
    "plot_test_errors", "predict", "ragged_curves", "receptive_field_change", "reference_tables", "reset_layers",
    "results_record", "run", "setup", "sign_flip_fraction", "softmax_on_frozen_features", "stack_members",
    "stack_of_runs", "start", "training", "unit_cosine", "weight_distance", "work",
]

N_CLASSES = 10
#: The two pre-trained networks, by stack kind, with their labels in tables and figures.
KINDS = {"rbm": "DBN (RBM stack)", "dae": "SDAE (auto-encoder stack)"}
#: Every fully fine-tuned network: the two pre-trained ones and the random-init one.
LABELS = {**KINDS, "random": "random init"}
#: The conditions of each pre-trained network, in the order of the tables and figures: trained ones
#: first, then the two edits of the fine-tuned network (evaluated, not trained).
CONDITIONS = {
    "softmax_only": "softmax alone on the frozen pre-trained features",
    "layer1_frozen": "fine-tuned with layer 1 frozen at its pre-trained weights",
    "fine_tuned": "fully fine-tuned",
    "layer1_perturbed": "fine-tuned, then layer 1's change replaced by a random change of the same size",
    "layer1_reset": "fine-tuned, then layer 1 reset to its pre-trained weights (upper layers left as tuned)",
}
#: The conditions' short names in figures.
SHORT = {"softmax_only": "softmax alone (frozen features)", "layer1_frozen": "layer 1 frozen",
         "fine_tuned": "fully fine-tuned", "layer1_perturbed": "fine-tuned, ΔW₁ made random",
         "layer1_reset": "fine-tuned, layer 1 reset"}
#: Entropy that, with a run's seed, seeds the random direction of :func:`perturbed_layer`.
PERTURB_STREAM = 0xD1F7


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


def _runs_per_stack(p: Mapping) -> list[str]:
    """n_seeds is a multiple of n_pretrain_seeds, and every stack has finetune_select_seeds runs (its softmax)."""
    S, n = p["n_pretrain_seeds"], p["n_seeds"]
    if n % S:
        return [not_allowed("n_seeds", n, f"a multiple of n_pretrain_seeds ({S}), so that every pre-trained stack "
                                          "is fine-tuned equally often")]
    if p["finetune_select_seeds"] > n // S:
        return [not_allowed("finetune_select_seeds", p["finetune_select_seeds"],
                            f"at most n_seeds / n_pretrain_seeds ({n // S}): the softmax on each stack's frozen "
                            "features chooses its rate on that stack's first runs")]
    return []


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of the larger of pre-training the stacks and fine-tuning every rate x run, and their drivers."""
    n_train, sizes = SPLIT_SIZES[p["dataset"]][0], [784, *p["hidden_sizes"]]
    grid = len(p["finetune_lr_grid"]) + p["finetune_max_extensions"]
    need = max(training_bytes(max(1, p["n_pretrain_seeds"] - 1), n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(grid * p["finetune_select_seeds"] + p["n_seeds"], n_train, [*sizes, 10],
                              p["finetune_batch_size"], greedy=False))
    return need, ["n_seeds", "n_pretrain_seeds", "hidden_sizes"]


SPEC = ChapterSpec(
    "02_finetuning_weight_change",
    claim="Discriminative fine-tuning hardly changes the lower-layer weights, yet these tiny changes matter "
          "for classification.",
    paper="Lower-layer weights change little in fine-tuning (lecture 14c; Erhan et al. 2010).",
    params={
        **STACK_PARAMS,
        "n_pretrain_seeds": Param(4, Int(min=1, max=1000),
                                  "independently pre-trained stacks per kind (stack 0 is chapter 1's); run m "
                                  "starts from stack m mod n_pretrain_seeds"),
        "n_seeds": Param(8, Int(min=1, max=1000),
                         "fine-tuning runs per condition, paired across conditions: own softmax init and "
                         "minibatch order"),
        **selection_params(grid=[0.1, 0.2371, 0.5623, 1.334, 3.162], epochs=40, patience=3, select_seeds=1),
        "softmax_epochs": Param(100, Int(min=1, max=MAX_EPOCHS),
                                "epoch budget of the softmax trained alone on frozen features (convex and cheap)"),
        "finetune_batch_size": Param(50, Int(min=1), "fine-tuning minibatch size"),
        "n_fields": Param(64, Int(min=1),
                          "first-layer units whose receptive fields are shown (at most the first width)"),
        "plane_classes": Param([3, 5, 8], IntList(min=0, max=9, min_len=3, max_len=3),
                               "classes of the three test digits that span the input plane"),
        "plane_resolution": Param(120, Int(min=2, max=1000), "grid points per side of the decision-boundary maps"),
    },
    rules=(_fields_fit, _plane_classes_distinct, _runs_per_stack, rate_grid_rule(), select_seeds_rule(),
           fits_split("train", "pretrain_batch_size", "finetune_batch_size"),
           fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


@dataclass
class Result:
    """What the chapter computed (M = n_seeds runs, L = depth hidden layers, S = stacks, N test digits).

    runs: per network ("rbm", "dae", "random") the fully fine-tuned :class:`FinetuneRun`;
    frozen1: per kind ("rbm", "dae") the run with layer 1 frozen; softmax: per kind the
    :class:`SoftmaxRun` on frozen features; stack_of: (M,) the stack of each run;
    changes: per network its :class:`LayerChange` (L + 1 layers: the hidden ones, then the softmax);
    layer_names: "1" .. "L", "softmax"; sizes: [784, *hidden_sizes, 10];
    errors: per kind {condition of :data:`CONDITIONS`: test errors (M,)}, and "random": (M,);
    resets: per kind (L, M) test errors with hidden layer i reset to its pre-trained weights;
    flips: per kind :func:`changed_predictions` from the softmax alone to the fully fine-tuned net;
    plane, maps: the input plane and per panel title (M, R, R) the classes the DBN runs assign;
    plane_moved: the fraction of plane points (over all runs) whose class differs between two panels.
    """

    runs: dict[str, FinetuneRun]
    frozen1: dict[str, FinetuneRun]
    softmax: dict[str, SoftmaxRun]
    stack_of: list[int]
    changes: dict[str, LayerChange]
    layer_names: list[str]
    sizes: list[int]
    errors: dict[str, dict[str, Tensor] | Tensor]
    resets: dict[str, Tensor]
    flips: dict[str, dict[str, Tensor]]
    plane: InputPlane
    maps: dict[str, Tensor]
    plane_moved: dict[str, float]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.layer_names) - 1

    @property
    def n_stacks(self) -> int:
        return len(set(self.stack_of))


def _finetune_config(p: Mapping) -> FinetuneConfig:
    """The fine-tuning settings: the epoch budget and minibatch size (the rate comes from the selection)."""
    return FinetuneConfig(epochs=p["finetune_epochs"], lr=p["finetune_lr_grid"][0], batch_size=p["finetune_batch_size"])


def _sizes(ch: runtime.Chapter) -> list[int]:
    return [ch.data.train.x.shape[1], *ch.params["hidden_sizes"], N_CLASSES]


def stack_of_runs(n_runs: int, n_stacks: int) -> list[int]:
    """The stack each fine-tuning run starts from: run m -> m mod n_stacks (n_runs a multiple of n_stacks)."""
    require_int("n_stacks", n_stacks, 1)
    require_int("n_runs", n_runs, n_stacks)
    if n_runs % n_stacks:
        raise ValueError(f"n_runs={n_runs} is not allowed: a multiple of n_stacks={n_stacks}")
    return [m % n_stacks for m in range(n_runs)]


def _stacks(ch: runtime.Chapter, kind: str, config: RBMConfig | DAEConfig, stack_seeds: Sequence[int]) -> Stack:
    """The S stacks of ``kind`` as one S-member stack: stack 0 chapter 1's artifact, the others one more."""
    hidden = ch.params["hidden_sizes"]
    first, _ = pretrained_stack(ch, kind, hidden, config, stack_seeds[:1], progress=False)
    if len(stack_seeds) == 1:
        return first
    rest, _ = pretrained_stack(ch, kind, hidden, config, stack_seeds[1:], progress=False)
    return join_stacks([first, rest])


def run(ch: runtime.Chapter) -> Result:
    """Pre-train the extra stacks, train every condition (cached), then measure what changed and what it did.

    Stack seeds ``member_seeds(seed, n_pretrain_seeds)``; run m uses network seed
    ``member_seeds(seed, n_seeds)[m]`` in every condition and, in the pre-trained ones, stack
    :func:`stack_of_runs` [m].
    """
    p, data = ch.params, ch.data
    configs = stack_configs(p)
    config = _finetune_config(p)
    selection = selection_config(p)
    stack_seeds = member_seeds(p["seed"], p["n_pretrain_seeds"])
    seeds = member_seeds(p["seed"], p["n_seeds"])
    stack_of = stack_of_runs(len(seeds), len(stack_seeds))
    sizes = _sizes(ch)
    depth = len(p["hidden_sizes"])
    tx, ty = data.test.x, data.test.y
    runs, frozen1, softmax, changes, errors, resets, flips = {}, {}, {}, {}, {}, {}, {}
    for kind in KINDS:
        stacks = _stacks(ch, kind, configs[kind], stack_seeds)
        what = {"kind": kind, "hidden_sizes": p["hidden_sizes"], "pretrain": dataclasses.asdict(configs[kind]),
                "pretrain_seeds": stack_seeds, "stack_of_run": stack_of}
        make = _from_stacks(stacks, dict(zip(seeds, stack_of)))
        runs[kind] = finetuned(ch, f"ch2_finetuned_{kind}", make, what, config, selection, seeds)
        frozen1[kind] = finetuned(ch, f"ch2_layer1_frozen_{kind}", make, what, config, selection, seeds,
                                  train_layers=list(range(1, depth + 1)))
        softmax[kind] = softmax_on_frozen_features(ch, f"ch2_softmax_only_{kind}", make, what,
                                                   dataclasses.replace(config, epochs=p["softmax_epochs"]),
                                                   selection, seeds, stack_of)
        init = initial_weights(kind, sizes[:-1], configs[kind], stack_seeds, device=ch.device, dtype=tx.dtype)
        moved = torch.stack([weight_distance(W_init[stack_of], W)                               # (L, M)
                             for W_init, W in zip(init, runs[kind].before.weights[:-1])])
        changes[kind] = layer_measures(runs[kind].before, runs[kind].after, tx, moved)
        ft, before = runs[kind].after, runs[kind].before
        nets = {"softmax_only": softmax[kind].after, "layer1_frozen": frozen1[kind].after, "fine_tuned": ft,
                "layer1_perturbed": perturbed_layer(ft, before, 0, seeds), "layer1_reset": reset_layers(ft, before, [0])}
        preds = {c: predict(net, tx) for c, net in nets.items()}
        errors[kind] = {c: (pr != ty).double().mean(1) for c, pr in preds.items()}
        resets[kind] = layer_reset_errors(ft, before, tx, ty)                                   # (L, M)
        flips[kind] = changed_predictions(preds["softmax_only"], preds["fine_tuned"], ty)
        if kind == "rbm":
            first = torch.stack([torch.nonzero(ty == c)[0, 0] for c in p["plane_classes"]])
            plane = input_plane(tx[first], resolution=p["plane_resolution"])
            maps = {f"({k}) {SHORT[c]}": decision_map(nets[c], plane)
                    for k, c in zip("abcd", ("softmax_only", "layer1_frozen", "fine_tuned", "layer1_reset"))}
    runs["random"] = finetuned(ch, "ch2_finetuned_random",
                               lambda s: Classifier.random(sizes, s, device=ch.device), {"sizes": sizes},
                               config, selection, seeds)
    changes["random"] = layer_measures(runs["random"].before, runs["random"].after, tx, None)
    errors["random"] = evaluate(runs["random"].after, tx, ty).error.double()
    sm, fr, ft, rs = maps.values()
    plane_moved = {"softmax_only_to_fine_tuned": float((sm != ft).double().mean()),
                   "layer1_frozen_to_fine_tuned": float((fr != ft).double().mean()),
                   "fine_tuned_to_layer1_reset": float((ft != rs).double().mean())}
    layer_names = [str(i + 1) for i in range(depth)] + ["softmax"]
    return Result(runs=runs, frozen1=frozen1, softmax=softmax, stack_of=stack_of, changes=changes,
                  layer_names=layer_names, sizes=sizes, errors=errors, resets=resets, flips=flips, plane=plane,
                  maps=maps, plane_moved=plane_moved)


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: the extra stacks of each kind (n_pretrain_seeds - 1 members, one batched pre-training);
    each by the fair-fight protocol over ``n_seeds`` runs: per stack kind the whole net fine-tuned and
    the net with layer 1 frozen (counted as a whole net: an upper bound), and the softmax alone on
    each stack's frozen top features ([hidden_sizes[-1], 10], ``softmax_epochs``, its rate chosen per
    stack); the random-init net of the same shape. Not counted: stack 0 of each kind (chapter 1's,
    found in the cache, counted in chapter 1's plan); the longer run of a seed that did not converge;
    the analysis (features, layer measures, test errors, edits, decision maps).
    """
    sizes = [784, *p["hidden_sizes"], N_CLASSES]
    S, n = p["n_pretrain_seeds"], p["n_seeds"]
    train, _, _ = split_sizes(p)
    jobs = []
    for kind, label in KINDS.items():
        if S > 1:
            jobs += stack_jobs(f"{label}, stacks 2..{S}", kind, 784, p["hidden_sizes"], members=S - 1,
                               examples=train, epochs=p[f"{kind}_epochs"], batch_size=p["pretrain_batch_size"])
        jobs.append(protocol_job(f"{label}, fine-tuned", sizes, p, n))
        jobs.append(protocol_job(f"{label}, layer 1 frozen", sizes, p, n))
        for k in range(S):
            jobs.append(protocol_job(f"{label}, softmax only on stack {k + 1}", (sizes[-2], N_CLASSES), p, n // S,
                                     epochs=p["softmax_epochs"]))
    jobs.append(protocol_job(f"{LABELS['random']}, fine-tuned", sizes, p, n))
    return jobs


# -- the sections ------------------------------------------------------------------------------

def setup(ch: runtime.Chapter) -> None:
    """The networks: runs, stacks, architecture, fine-tuning settings, data sizes."""
    p, data = ch.params, ch.data
    S, n = p["n_pretrain_seeds"], p["n_seeds"]
    ch.glue("n_runs_text", plural(n, "fine-tuning run"))
    ch.glue("n_stacks_text", plural(S, "stack"))
    ch.glue("runs_per_stack_text", plural(n // S, "run"))
    ch.glue("extra_stacks_text", "no further stacks" if S == 1 else plural(S - 1, "further stack"))
    ch.glue("architecture", "-".join(map(str, _sizes(ch))))
    ch.glue("ft_epochs_text", plural(p["finetune_epochs"], "epoch"))
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


NETWORK_NAMES = {"rbm": "the fine-tuned DBN", "dae": "the fine-tuned SDAE", "random": "the random-init network",
                 "rbm_layer1_frozen": "the DBN fine-tuned with layer 1 frozen",
                 "dae_layer1_frozen": "the SDAE fine-tuned with layer 1 frozen"}
"""Names on the page of the trained conditions (the softmax runs: :func:`_name`)."""


def _name(key: str) -> str:
    """The page name of a trained condition: :data:`NETWORK_NAMES`, or "<kind>_softmax_<k>" (stack k + 1)."""
    if key in NETWORK_NAMES:
        return NETWORK_NAMES[key]
    kind, _, k = key.split("_")
    return f"the {'DBN' if kind == 'rbm' else 'SDAE'} softmax on stack {int(k) + 1}'s frozen features"


def _records(res: Result) -> dict[str, dict]:
    """Every trained condition's selection record, by its key (:func:`_name`)."""
    out = {k: r.selection for k, r in res.runs.items()}
    out.update({f"{k}_layer1_frozen": r.selection for k, r in res.frozen1.items()})
    for kind, sm in res.softmax.items():
        out.update({f"{kind}_softmax_{k}": rec for k, rec in enumerate(sm.selections)})
    return out


def training(ch: runtime.Chapter, res: Result) -> None:
    """How every condition was trained (the fair-fight table), which did not converge, and the curves."""
    records = _records(res)
    ch.glue("convergence_sentence", fairness.convergence_sentence(records, label=_name), fmt="s")
    rnd = res.runs["random"]
    ch.glue("random_converged", "converged" if rnd.converged else "did not converge", fmt="s")
    ch.glue("random_rate", rnd.selection["lr"], fmt="g")
    ch.glue("err_random_valid", 100 * float(np.mean(rnd.selection["valid_error"])), fmt=".2f")
    runtime.show(fairness.selection_frame({_name(k): r for k, r in records.items()}).style
                 .format(fairness.FORMATS)
                 .set_caption("How each condition was trained: the rate chosen on the validation set, the median "
                              "best epoch and epochs run over the runs, the median training NLL at the best "
                              "epoch, and how many runs converged"))
    curves = {NETWORK_NAMES[k]: r.history for k, r in res.runs.items()}
    curves.update({NETWORK_NAMES[f"{k}_layer1_frozen"]: r.history for k, r in res.frozen1.items()})
    ch.figure("ch2_training_curves", figures.training_curves(curves, n_classes=N_CLASSES,
                                                             plateau_fraction=PLATEAU_FRACTION))


def receptive_field_change(ch: runtime.Chapter, res: Result) -> None:
    """Section 1: the first-layer receptive fields of run 1 of the DBN and the SDAE, before and after."""
    n = ch.params["n_fields"]
    ch.glue("n_fields_text", plural(n, "unit"))
    for kind, label in (("rbm", "DBN"), ("dae", "SDAE")):
        W_before, W_after = res.runs[kind].before.weights[0][0], res.runs[kind].after.weights[0][0]
        ratio = field_change_ratio(W_before, W_after, n)
        suffix = "" if kind == "rbm" else "_dae"
        ch.glue(f"rf_max_change_pct{suffix}", ratio, fmt=".1%")
        ch.glue(f"rf_look{suffix}", field_look(ratio))
        ch.figure(f"ch2_fields_{kind}", plot_receptive_field_change(W_before, W_after, n=n,
                                                                    title=f"{label}, first layer, fine-tuning run 1"))


def _mean(t: Tensor) -> float:
    return float(t.double().nanmean())


def layer_change(ch: runtime.Chapter, res: Result) -> None:
    """Section 2: the layer measures of every network (table and bar charts), parts (a) and (b) in words."""
    depth = res.depth
    runtime.show(_unbroken(layer_change_table(res.changes, res.layer_names)))
    ch.figure("ch2_layer_change", plot_layer_change({LABELS[k]: c for k, c in res.changes.items()}, res.layer_names))
    dbn, sdae, rnd = res.changes["rbm"], res.changes["dae"], res.changes["random"]
    for key, c in (("rbm", dbn), ("dae", sdae), ("random", rnd)):
        ch.glue(f"{key}_dw_1", _mean(c.weight_change[0]), fmt=".2f")
        ch.glue(f"{key}_cka_1", _mean(c.cka[0]), fmt=".3f")
        ch.glue(f"{key}_cos_1", _mean(c.mean_cosine[0]), fmt=".3f")
        ch.glue(f"{key}_flip_1", _mean(c.sign_flip_fraction[0]), fmt=".2%")
    for key, c in (("rbm", dbn), ("dae", sdae)):
        ch.glue(f"{key}_vs_pt_1", _mean(c.change_vs_pretraining[0]), fmt=".1%")
        ch.glue(f"{key}_vs_pt_top", _mean(c.change_vs_pretraining[depth - 1]), fmt=".1%")
        ch.glue(f"{key}_pt_move_1", _mean(c.pretraining_move[0]), fmt=".2f")
    ch.glue("a_sentence", tiny_sentence(dbn, rnd), fmt="s")
    ch.glue("b_sentence", least_sentence(dbn), fmt="s")
    ch.glue("b_sentence_dae", least_sentence(sdae), fmt="s")


def change_over_epochs(ch: runtime.Chapter, res: Result) -> None:
    """Section 2, continued: each layer's distance from its start, after every epoch."""
    ch.figure("ch2_change_over_epochs",
              plot_change_over_epochs({LABELS[k]: r.history["distance"] for k, r in res.runs.items()},
                                      res.layer_names))


def _unbroken(table: pd.DataFrame) -> pd.DataFrame:
    """The table with non-breaking spaces in its layer labels ("layer 1" stays on one line on the page)."""
    return table.rename(index=lambda v: v.replace(" ", "\u00a0") if str(v).startswith("layer ") else v)


def _pct(t: Tensor) -> float:
    """Mean over runs of error fractions (M,), in percent."""
    return 100 * float(t.double().mean())


def controls(ch: runtime.Chapter, res: Result) -> None:
    """Section 3: the test errors of every condition, their paired differences from full fine-tuning, part (c)."""
    for kind, label in KINDS.items():
        e = res.errors[kind]
        runtime.show(controls_table(e, res.errors["random"]).style.set_caption(
            f"{label}: test error of every condition, and its difference from full fine-tuning, run by run"))
        bars = {f"({k}) {SHORT[c]}": e[c] for k, c in zip("abcde", CONDITIONS)}
        bars["(f) random init"] = res.errors["random"]
        ch.figure(f"ch2_errors_{kind}", plot_test_errors(bars, edited=("(d)", "(e)"), title=f"{label}: test error"))
        for c in CONDITIONS:
            ch.glue(f"{kind}_err_{c}", _pct(e[c]), fmt=".2f")
        ch.glue(f"c_sentence_{kind}", matters_sentence(e), fmt="s")
        ch.glue(f"perturbed_sentence_{kind}", difference_sentence(e["layer1_perturbed"], e["fine_tuned"],
                                                                  "replacing layer 1's change by a random one"),
                fmt="s")
        ch.glue(f"reset_sentence_{kind}", difference_sentence(e["layer1_reset"], e["fine_tuned"],
                                                              "resetting layer 1 after fine-tuning"), fmt="s")
    ch.glue("err_random", _pct(res.errors["random"]), fmt=".2f")


def decision_boundaries(ch: runtime.Chapter, res: Result) -> None:
    """Section 4: test digits whose class changes (part (d)), and the class maps on the input plane."""
    for kind in KINDS:
        f = res.flips[kind]
        ch.glue(f"{kind}_changed", _mean(f["changed"].double()), fmt=".1f")
        ch.glue(f"{kind}_became_correct", _mean(f["became_correct"].double()), fmt=".1f")
        ch.glue(f"{kind}_became_wrong", _mean(f["became_wrong"].double()), fmt=".1f")
        ch.glue(f"{kind}_stayed_wrong", _mean(f["stayed_wrong"].double()), fmt=".1f")
        ch.glue(f"d_sentence_{kind}", boundary_sentence(f), fmt="s")
    runtime.show(_unbroken(prediction_change_table(res.flips)))
    ch.figure("ch2_decision_maps", plot_decision_maps({label: m[0] for label, m in res.maps.items()}, res.plane,
                                                      ch.params["plane_classes"]))
    for key, v in res.plane_moved.items():
        ch.glue(f"plane_{key}", v, fmt=".0%")


def compare_with_papers(ch: runtime.Chapter, res: Result) -> None:
    """Section 5: this chapter's test errors beside Larochelle et al. 2009 and Erhan et al. 2010."""
    ours, erhan = reference_tables({"rbm": _pct(res.errors["rbm"]["fine_tuned"]),
                                    "dae": _pct(res.errors["dae"]["fine_tuned"]),
                                    "random": _pct(res.errors["random"])}, res.depth)
    from IPython.display import Markdown

    runtime.show(ours.map(lambda v: "—" if pd.isna(v) else f"{v:.2f}").rename(
                     columns={"this chapter": "this chapter (mean over the runs)"}),
                 Markdown(f"{erhan.index.name}, test error (%), mean ± standard deviation:"),
                 erhan.rename_axis(None))


# -- the claim -----------------------------------------------------------------------------------

def _parts(res: Result, kind: str) -> list[claims.Part]:
    """The four parts for the stack ``kind``, gated on convergence."""
    parts = assess(res.changes[kind], res.changes["random"], res.errors[kind], res.flips[kind])
    return gate_unconverged(parts, _records(res), kind)


def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C2 (DESIGN.md) on the DBN, the lecture's network, each tested on this run's numbers
    (see :func:`assess`); the same tests on the SDAE are shown beside them (:func:`sdae_parts`)."""
    return _parts(res, "rbm")


def sdae_parts(ch: runtime.Chapter, res: Result) -> None:
    """The same four parts on the SDAE, Holm-adjusted among themselves; shown, not part of the verdict."""
    from IPython.display import Markdown

    runtime.show(Markdown(claims.parts_markdown(claims.decide(_parts(res, "dae")))))


def needs(key: str, kind: str, n_stacks: int) -> tuple[str, ...]:
    """The trained conditions part ``key`` of stack ``kind`` compares (keys of :func:`_records`)."""
    return {"a": (kind, "random"), "b": (kind,), "c": (kind, f"{kind}_layer1_frozen"),
            "d": (kind, *(f"{kind}_softmax_{k}" for k in range(n_stacks)))}.get(key, ())


def gate_unconverged(parts: Sequence[claims.Part], records: Mapping[str, Mapping], kind: str) -> list[claims.Part]:
    """Each part (:func:`needs`) that compares a condition which did not converge becomes "not tested at
    this scale" (:func:`pretraining.book.fairness.gate`). records: :func:`_records`."""
    n_stacks = sum(k.startswith(f"{kind}_softmax_") for k in records)
    return fairness.gate(parts, lambda key: needs(key, kind, n_stacks), records, label=_name)


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    c, e = res.changes["rbm"], res.errors["rbm"]
    finding = (f"DBN fine-tuning moved layer 1 by {_mean(c.change_vs_pretraining[0]):.1%} of the distance "
               f"pre-training had moved it (CKA before/after {_mean(c.cka[0]):.3f}; random init "
               f"{_mean(res.changes['random'].cka[0]):.3f}); test error {_pct(e['softmax_only']):.2f} % softmax "
               f"alone, {_pct(e['layer1_frozen']):.2f} % with layer 1 frozen, {_pct(e['fine_tuned']):.2f} % fully "
               f"fine-tuned ({ch.params['n_seeds']} runs on {plural(res.n_stacks, 'stack')}, {ch.profile} profile).")
    ch.finish(results_record(res), parts=claim_parts(ch, res), finding=finding)


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy() if isinstance(t, Tensor) else np.asarray(t, dtype=np.float64)


def assess(change: LayerChange, change_random: LayerChange, errors: Mapping[str, Tensor],
           flips: Mapping[str, Tensor]) -> list[claims.Part]:
    """The four parts of C2 tested on one pre-trained network's numbers, run by run.

    change, change_random: the :class:`LayerChange` (L + 1 layers, M runs) of the pre-trained and
    of the random-init network, run m of both from seed m; errors: the pre-trained network's test
    errors (M,) by condition (at least "fine_tuned" and "layer1_frozen"); flips:
    :func:`changed_predictions` from the softmax alone to the fully fine-tuned network. Each part is
    decided by the two-sided Wilcoxon signed-rank test of per-run differences d_m, positive when run
    m supports the claim (:func:`pretraining.analysis.stats.paired_difference`,
    :func:`pretraining.book.claims.paired`: effect = mean of d with its t interval; it holds when the
    Holm-adjusted p < :data:`claims.ALPHA` and the mean and the signed ranks of d are positive);
    with fewer than :data:`claims.MIN_PAIRS` runs a part is not tested:

    (a) layer 1 changes little: all three of d = CKA_1 - CKA_1(random) (its representation changed
        less than the random-init network's; the part's effect), d = ||dW_1||(random) - ||dW_1||
        (its weights moved less), and d = 1 - ||dW_1|| / ||W_pt - W_init|| (fine-tuning moved it less
        far than pre-training had); p is the largest of the three (a test of "all three hold");
    (b) layer 1 changes least: d = the smallest ||dW_k|| / ||W_pt - W_init|| of hidden layers 2..L
        minus layer 1's (not tested with one hidden layer);
    (c) the changes matter: d = test error with layer 1 frozen minus fully fine-tuned (fractions);
    (d) they put the boundaries in the right places: of the test digits whose predicted class differs
        between the softmax alone and the fine-tuned network, d = the share that becomes correct - 1/2
        (not tested when some run changes no digit).
    """
    L1, M = change.weight_change.shape
    if change_random.weight_change.shape != (L1, M):
        raise ValueError(f"change {tuple(change.weight_change.shape)} and change_random "
                         f"{tuple(change_random.weight_change.shape)} must both be (L + 1, M)")
    for name, t in [*((f"errors[{c!r}]", errors[c]) for c in ("fine_tuned", "layer1_frozen")),
                    *((f"flips[{k!r}]", flips[k]) for k in ("changed", "became_correct"))]:
        if tuple(t.shape) != (M,):
            raise ValueError(f"{name} has shape {tuple(t.shape)}; expected ({M},), one value per run")
    depth = L1 - 1
    ratio = _np(change.change_vs_pretraining[:depth])
    d_r = stats.paired_difference(_np(change.cka[0]) - _np(change_random.cka[0]))
    d_w = stats.paired_difference(_np(change_random.weight_change[0]) - _np(change.weight_change[0]))
    d_p = stats.paired_difference(1 - ratio[0])
    combined = {**d_r, "p": max(d["p"] for d in (d_r, d_w, d_p)),
                "direction": all(d["direction"] for d in (d_r, d_w, d_p))}
    part_a = claims.paired(
        "a", "fine-tuning changes layer 1's weights and representation little, relative to how far pre-training "
             "moved them and to training from random initialisation", combined,
        f"per run, (1) layer 1's CKA between its activations before and after minus the random-init network's: "
        f"{claims.paired_text(d_r, '+.3f', 'runs', interval=False, p=True)}; (2) the random-init network's ||ΔW_1|| "
        f"minus this one's: {claims.paired_text(d_w, '+.2f', 'runs', interval=False, p=True)}; (3) 1 minus ||ΔW_1|| "
        f"/ ||W_pt − W_init||: {claims.paired_text(d_p, '+.3f', 'runs', interval=False, p=True)}; the part's p is "
        "the largest of the three", unit="runs",
        cka_layer_1=_mean(change.cka[0]), random_init_cka_layer_1=_mean(change_random.cka[0]),
        weight_change_layer_1=_mean(change.weight_change[0]),
        random_init_weight_change_layer_1=_mean(change_random.weight_change[0]),
        change_vs_pretraining_layer_1=float(ratio[0].mean()),
        p_cka=d_r["p"], p_weight_change=d_w["p"], p_change_vs_pretraining=d_p["p"])

    if depth == 1:
        part_b = claims.part("b", "layer 1 changes least", None,
                             "one hidden layer: there is no other hidden layer to compare it with",
                             change_vs_pretraining=[float(v) for v in ratio.mean(1)])
    else:
        least = stats.paired_difference(ratio[1:].min(0) - ratio[0])
        part_b = claims.paired(
            "b", "layer 1 changes least", least,
            f"per run, {_upper_layers(depth)} minus layer 1's (change relative to pre-training's move, "
            f"||ΔW|| / ||W_pt − W_init||): {claims.paired_text(least, '+.3f', 'runs', interval=False)}; mean of "
            f"layers 1..{depth}: " + ", ".join(f"{v:.1%}" for v in ratio.mean(1)), unit="runs",
            change_vs_pretraining=[float(v) for v in ratio.mean(1)])

    matters = stats.paired_difference(_np(errors["layer1_frozen"]) - _np(errors["fine_tuned"]))
    part_c = claims.paired(
        "c", "those changes matter: fine-tuning every layer beats fine-tuning with layer 1 frozen", matters,
        f"per run, the test error with layer 1 frozen minus fully fine-tuned: "
        f"{claims.paired_text(matters, '+.4f', 'runs', interval=False, points=True)}", unit="runs",
        error_layer1_frozen=_mean(errors["layer1_frozen"]), error_fine_tuned=_mean(errors["fine_tuned"]))

    changed = _np(flips["changed"])
    claim_d = "they move the decision boundaries to the right places: most test digits whose class changes become correct"
    if (changed == 0).any():
        part_d = claims.part("d", claim_d, None, f"in {int((changed == 0).sum())} of {M} runs no test digit changes "
                             "its class, so the share that becomes correct is undefined there",
                             digits_changed=float(changed.mean()))
    else:
        share = _np(flips["became_correct"]) / changed
        right = stats.paired_difference(share - 0.5)
        part_d = claims.paired(
            "d", claim_d, right,
            f"per run, of the test digits whose class differs between the softmax alone and the fine-tuned network "
            f"(mean {changed.mean():.1f} per run), the share that becomes correct minus 1/2: "
            f"{claims.paired_text(right, '+.3f', 'runs', interval=False)}; mean share {share.mean():.1%}",
            unit="runs", digits_changed=float(changed.mean()), share_became_correct=float(share.mean()))
    return [part_a, part_b, part_c, part_d]


# -- tables and sentences -------------------------------------------------------------------------

def pm(mean: float, std: float, fmt: str, n: int) -> str:
    """``"mean ± std"`` in format ``fmt`` (e.g. ``".4f"``), or just the mean when there is one run."""
    return f"{mean:{fmt}} ± {std:{fmt}}" if n > 1 else f"{mean:{fmt}}"


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


def tiny_sentence(change: LayerChange, change_random: LayerChange) -> str:
    """Part (a)'s three paired comparisons in words (see :func:`assess`)."""
    d_r = stats.paired_difference(_np(change.cka[0]) - _np(change_random.cka[0]))
    d_w = stats.paired_difference(_np(change_random.weight_change[0]) - _np(change.weight_change[0]))
    d_p = stats.paired_difference(1 - _np(change.change_vs_pretraining[0]))
    return (f"Run by run (run m of both networks shares seed m): layer 1's CKA minus the random-init network's is "
            f"{claims.paired_text(d_r, '+.3f', 'runs')}; the random-init network's ||ΔW₁|| minus this one's is "
            f"{claims.paired_text(d_w, '+.2f', 'runs')}; and 1 − ||ΔW₁|| / ||W_pt − W_init|| is "
            f"{claims.paired_text(d_p, '+.3f', 'runs')}.")


def _upper_layers(depth: int) -> str:
    """What part (b) compares layer 1 with: hidden layer 2, or the smallest of 2..depth."""
    return "hidden layer 2's change" if depth == 2 else f"the smallest change of hidden layers 2..{depth}"


def least_sentence(change: LayerChange) -> str:
    """Part (b)'s paired comparison in words, from a pre-trained network's :class:`LayerChange`."""
    depth = change.weight_change.shape[0] - 1
    if depth == 1:
        return "With one hidden layer there is no other hidden layer to compare it with."
    ratio = _np(change.change_vs_pretraining[:depth])
    s = stats.paired_difference(ratio[1:].min(0) - ratio[0])
    return (f"Run by run, {_upper_layers(depth)} relative to pre-training's move minus layer 1's is "
            f"{claims.paired_text(s, '+.3f', 'runs')} (positive: layer 1 moved least).")


def difference_sentence(error: Tensor, reference: Tensor, what: str) -> str:
    """"<what> raises the test error by ..." from paired test errors (M,) of a condition and its reference."""
    s = stats.paired_difference(_np(error) - _np(reference))
    return f"Run by run, {what} changes the test error by {claims.paired_text(s, '+.4f', 'runs', points=True)}."


def matters_sentence(errors: Mapping[str, Tensor]) -> str:
    """Part (c)'s paired comparison in words: layer 1 frozen against fully fine-tuned."""
    return difference_sentence(errors["layer1_frozen"], errors["fine_tuned"],
                               "freezing layer 1 during fine-tuning (instead of training it)")


def boundary_sentence(flips: Mapping[str, Tensor]) -> str:
    """Part (d) in words: the share of the changed digits that become correct, run by run."""
    changed = _np(flips["changed"])
    if (changed == 0).any():
        return f"In {int((changed == 0).sum())} of {changed.size} runs no test digit changes its class."
    s = stats.paired_difference(_np(flips["became_correct"]) / changed - 0.5)
    return (f"Run by run, the share of the changed digits that become correct, minus 1/2, is "
            f"{claims.paired_text(s, '+.3f', 'runs')}.")


def _interval(v: np.ndarray, fmt: str, scale: float = 1.0) -> str:
    """The 95 % t interval of the mean of v (n,), scaled, as "[low, high]" ("—" with fewer than 2 values)."""
    if v.size < 2:
        return "—"
    lo, hi = stats.t_interval(v)
    return f"[{scale * lo:{fmt}}, {scale * hi:{fmt}}]"


#: The columns of :func:`layer_change_table`: measure -> (heading, scale, format).
_TABLE_MEASURES = {"weight_change": ("‖ΔW‖", 1.0, ".2f"),
                   "change_vs_pretraining": ("‖ΔW‖ / ‖W_pt − W_init‖ (%)", 100.0, ".1f"),
                   "cka": ("CKA before vs after", 1.0, ".3f"),
                   "mean_cosine": ("mean cosine of a unit's weights", 1.0, ".3f"),
                   "sign_flip_fraction": ("weights with flipped sign (%)", 100.0, ".2f")}


def layer_change_table(changes: Mapping[str, LayerChange], layer_names: Sequence[str]) -> pd.DataFrame:
    """One row per network and layer ("layer 1" .. "layer L", "softmax"), one column per measure of
    :data:`_TABLE_MEASURES`, each mean ± std over runs ("—" where it does not apply).

    changes: per network key of :data:`LABELS` its :class:`LayerChange`. The index (network, layer)
    has no names, so the table has one header row.
    """
    rows = []
    for k, c in changes.items():
        n = c.weight_change.shape[1]
        for rec in c.records(layer_names):
            row = {"network": LABELS[k], "layer": _layer_label(rec["layer"])}
            for stat, (head, scale, fmt) in _TABLE_MEASURES.items():
                row[head] = "—" if rec[stat] is None else pm(scale * rec[stat], scale * rec[f"{stat}_std"], fmt, n)
            rows.append(row)
    return pd.DataFrame(rows).set_index(["network", "layer"]).rename_axis([None, None])


def controls_table(errors: Mapping[str, Tensor], random: Tensor) -> pd.DataFrame:
    """One row per condition of :data:`CONDITIONS` (and the random-init network): test error (%) with its
    95 % t interval over runs, and the paired difference from full fine-tuning (points) with its interval
    and the runs in which it is positive."""
    ref = _np(errors["fine_tuned"])
    rows = []
    for label, e in [*((CONDITIONS[c], errors[c]) for c in CONDITIONS), ("random init, fine-tuned", random)]:
        v = _np(e)
        d = v - ref
        same = label == CONDITIONS["fine_tuned"]
        rows.append({"condition": label, "test error (%)": f"{100 * v.mean():.2f}",
                     "95 % interval": _interval(v, ".2f", 100),
                     "minus fully fine-tuned (points)": "—" if same else f"{100 * d.mean():+.2f}",
                     "95 % interval of the difference": "—" if same else _interval(d, "+.2f", 100),
                     "runs above": "—" if same else f"{int((d > 0).sum())} of {d.size}"})
    return pd.DataFrame(rows).set_index("condition").rename_axis(None)


def prediction_change_table(flips: Mapping[str, Mapping[str, Tensor]]) -> pd.DataFrame:
    """Per stack kind, the test digits whose class changes from the softmax alone to the fine-tuned network:
    mean per run of each count of :func:`changed_predictions`, and the share that becomes correct with its
    95 % t interval over runs."""
    rows = []
    for kind, f in flips.items():
        changed = _np(f["changed"])
        share = _np(f["became_correct"]) / np.where(changed > 0, changed, np.nan)
        rows.append({"network": KINDS[kind], "digits whose class changes": f"{changed.mean():.1f}",
                     "become correct": f"{_np(f['became_correct']).mean():.1f}",
                     "become wrong": f"{_np(f['became_wrong']).mean():.1f}",
                     "wrong before and after": f"{_np(f['stayed_wrong']).mean():.1f}",
                     "share that becomes correct": "—" if np.isnan(share).any() else f"{share.mean():.1%}",
                     "95 % interval of the share": "—" if np.isnan(share).any() else _interval(share, ".1%")})
    return pd.DataFrame(rows).set_index("network").rename_axis(None)


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


def summary(values: Tensor) -> dict:
    """{"mean", "std", "ci95"} of per-run values (M,): the std with ddof 1 (0 for one run), the 95 % t
    interval of the mean (None for one run)."""
    v = _np(values)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "ci95": list(stats.t_interval(v)) if v.size > 1 else None}


def per_kind(res: Result, kind: str) -> dict:
    """The results-file entry of one stack kind: its layer measures, the test errors of every condition
    (fractions, :func:`summary`), their paired differences from full fine-tuning, the layer resets, and
    the test digits whose class changes from the softmax alone to the fine-tuned network."""
    e = res.errors[kind]
    f = res.flips[kind]
    changed = _np(f["changed"])
    return {"layers": res.changes[kind].records(res.layer_names),
            "test_error": {c: summary(e[c]) for c in CONDITIONS},
            "test_error_minus_fine_tuned": {c: summary(e[c] - e["fine_tuned"]) for c in CONDITIONS
                                            if c != "fine_tuned"},
            "test_error_layer_reset": [summary(r) for r in res.resets[kind]],
            "prediction_changes": {**{k: float(_np(v).mean()) for k, v in f.items()},
                                   "share_became_correct": None if (changed == 0).any() else
                                   summary(torch.as_tensor(_np(f["became_correct"]) / changed))}}


def results_record(res: Result) -> dict:
    """The chapter's results file entry: per pre-trained network (``dbn``, ``sdae``) :func:`per_kind`, the
    random-init network's layer measures and test error, the SDAE's claim parts (not in the verdict),
    the runs and stacks, the plane's changed fractions, every selection record and convergence."""
    records = _records(res)
    return {"n_pretrain_seeds": res.n_stacks, "n_seeds": len(res.stack_of), "stack_of_run": list(res.stack_of),
            "dbn": per_kind(res, "rbm"), "sdae": per_kind(res, "dae"),
            "random_init": {"layers": res.changes["random"].records(res.layer_names),
                            "test_error": summary(res.errors["random"])},
            "sdae_claim_parts": [p.claim_part() for p in claims.decide(_parts(res, "dae"))],
            "plane_class_changed": dict(res.plane_moved), "selection": records,
            "converged": {k: setting_converged(r) for k, r in records.items()}}


# ----------------------------------------------------------------------------------------- statistics
def _check_pair(before: Tensor, after: Tensor, name: str = "weights") -> None:
    if not isinstance(before, Tensor) or not isinstance(after, Tensor):
        raise TypeError(f"{name}: before and after must be torch.Tensors, got "
                        f"{type(before).__name__} and {type(after).__name__}")
    if before.shape != after.shape or before.dim() < 2:
        raise ValueError(f"{name}: before {tuple(before.shape)} and after {tuple(after.shape)} must have "
                         "the same shape (M, ...) with a members dimension first")


def weight_distance(before: Tensor, after: Tensor) -> Tensor:
    """||after - before||_F per member: (M, ...) x2 -> (M,)."""
    _check_pair(before, after)
    return (after - before).flatten(1).norm(dim=1)


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
    """Per-layer measures of one network's change, each (L + 1, M) float64: L hidden layers then the
    softmax, M runs; NaN where a measure does not apply.

    weight_change: ||W_after - W_before||_F; pretraining_move: ||W_pt - W_init||_F, how far
    pre-training moved the layer from its random start (hidden layers of a pre-trained network);
    change_vs_pretraining: weight_change / pretraining_move; mean_cosine: mean over units of the
    cosine between each unit's incoming weights before and after; sign_flip_fraction: fraction of
    weights with a flipped sign; cka: linear CKA between the layer's activations on the test digits
    before and after (hidden layers).
    """

    weight_change: Tensor
    pretraining_move: Tensor
    change_vs_pretraining: Tensor
    mean_cosine: Tensor
    sign_flip_fraction: Tensor
    cka: Tensor

    STATS = ("weight_change", "pretraining_move", "change_vs_pretraining", "mean_cosine", "sign_flip_fraction",
             "cka")

    def records(self, layer_names: Sequence[str | int]) -> list[dict]:
        """One dict per layer: {"layer", <stat>: mean over runs, <stat>_std, <stat>_ci95 (the 95 % t interval,
        None for one run)}; all three None where the measure does not apply."""
        n_layers = self.weight_change.shape[0]
        if len(layer_names) != n_layers:
            raise ValueError(f"layer_names has {len(layer_names)} names for {n_layers} layers")
        out = []
        for i, name in enumerate(layer_names):
            rec: dict = {"layer": name}
            for stat in self.STATS:
                v = getattr(self, stat)[i]
                s = None if bool(v.isnan().any()) else summary(v)
                rec[stat], rec[f"{stat}_std"], rec[f"{stat}_ci95"] = (None, None, None) if s is None else (
                    s["mean"], s["std"], s["ci95"])
            out.append(rec)
        return out


def layer_cka(before: Classifier, after: Classifier, x: Tensor) -> Tensor:
    """Linear CKA between each hidden layer's activations on x (N, V) before and after: (L, M) float64."""
    _check_same_shape(before, after)
    out = []
    for m in range(before.n_members):
        hb, ha = before.member(m).hidden(x), after.member(m).hidden(x)
        out.append(torch.cat([linear_cka(b, a) for b, a in zip(hb, ha)]))
    return torch.stack(out, dim=1).cpu()


def layer_measures(before: Classifier, after: Classifier, x: Tensor, pretraining_move: Tensor | None) -> LayerChange:
    """The :class:`LayerChange` of one network from ``before`` to ``after`` (same shape, M members).

    x: the test digits (N, V) for the CKA; pretraining_move: (L, M) ||W_pt - W_init|| of the hidden
    layers (:func:`initial_weights`), or None for a network that was not pre-trained.
    """
    _check_same_shape(before, after)
    L, M = before.depth, before.n_members
    change = torch.stack([weight_distance(b, a) for b, a in zip(before.weights, after.weights)]).double().cpu()
    moved = torch.full((L + 1, M), math.nan, dtype=torch.float64)
    if pretraining_move is not None:
        if tuple(pretraining_move.shape) != (L, M):
            raise ValueError(f"pretraining_move has shape {tuple(pretraining_move.shape)}; expected ({L}, {M})")
        moved[:L] = pretraining_move.double().cpu()
    cka = torch.full((L + 1, M), math.nan, dtype=torch.float64)
    cka[:L] = layer_cka(before, after, x)
    return LayerChange(
        weight_change=change, pretraining_move=moved, change_vs_pretraining=change / moved,
        mean_cosine=torch.stack([unit_cosine(b, a).mean(1) for b, a in zip(before.weights, after.weights)]).double().cpu(),
        sign_flip_fraction=torch.stack([sign_flip_fraction(b, a) for b, a in
                                        zip(before.weights, after.weights)]).double().cpu(),
        cka=cka)


def initial_weights(kind: str, sizes: Sequence[int], config: RBMConfig | DAEConfig, seeds: Sequence[int], *,
                    device=None, dtype: torch.dtype = torch.float32) -> list[Tensor]:
    """The random start of each layer of the stacks :func:`pretraining.core.train.pretrain_stack` trains
    from ``seeds``: per layer W_init (S, n_in, n_out), S = len(seeds).

    sizes: [V, H_1, ..., H_L]. Layer k is initialised from the stack seed's ("init", k) generator by the
    initialiser pre-training uses (:meth:`pretraining.core.models.RBM.init`, or
    :meth:`~pretraining.core.models.DenoisingAutoencoder.init` with the config's ``tied``), on the
    same device: a deterministic function of the seed, recreated here.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} is not allowed: one of {', '.join(KINDS)}")
    seeds = validate_seeds(seeds)
    out = []
    for k, (a, b) in enumerate(zip(sizes, sizes[1:]), start=1):
        layer = (RBM.init(a, b, seeds, device=device, dtype=dtype, layer=k) if kind == "rbm" else
                 DenoisingAutoencoder.init(a, b, seeds, tied=config.tied, device=device, dtype=dtype, layer=k))
        out.append(layer.W)
    return out


def changed_predictions(pred_before: Tensor, pred_after: Tensor, y: Tensor) -> dict[str, Tensor]:
    """How the predicted classes (M, N) of the same N digits with labels y (N,) changed, per run: (M,) int64
    counts "changed" (before != after) = "became_correct" (wrong -> right) + "became_wrong" (right ->
    wrong) + "stayed_wrong" (wrong -> another wrong class)."""
    if pred_before.shape != pred_after.shape or pred_before.dim() != 2 or y.shape != pred_before.shape[1:]:
        raise ValueError(f"pred_before {tuple(pred_before.shape)} and pred_after {tuple(pred_after.shape)} must "
                         f"be equal (M, N), y {tuple(y.shape)} (N,)")
    right_b, right_a = pred_before == y, pred_after == y
    changed = pred_before != pred_after
    return {"changed": changed.sum(1).cpu(), "became_correct": (~right_b & right_a).sum(1).cpu(),
            "became_wrong": (right_b & ~right_a).sum(1).cpu(),
            "stayed_wrong": (changed & ~right_b & ~right_a).sum(1).cpu()}


# ----------------------------------------------------------------------------------------- edits of a network
def _check_same_shape(a: Classifier, b: Classifier) -> None:
    if not isinstance(a, Classifier) or not isinstance(b, Classifier):
        raise TypeError("both networks must be pretraining.core.models.Classifier instances")
    if a.sizes != b.sizes or a.n_members != b.n_members:
        raise ValueError(f"the networks differ in shape: sizes {a.sizes} vs {b.sizes}, "
                         f"members {a.n_members} vs {b.n_members}")


def _check_layers(clf: Classifier, layers: Sequence[int]) -> None:
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence) or any(
            isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= clf.depth for i in layers):
        raise ValueError(f"layers={layers!r} is not allowed; give layer indices in 0..{clf.depth}")


def reset_layers(fine_tuned: Classifier, reference: Classifier, layers: Sequence[int]) -> Classifier:
    """A copy of ``fine_tuned`` whose layers ``layers`` (0-based, weights and biases) come from ``reference``."""
    _check_same_shape(fine_tuned, reference)
    _check_layers(fine_tuned, layers)
    out = fine_tuned.clone()
    for i in layers:
        out.weights[i] = reference.weights[i].clone()
        out.biases[i] = reference.biases[i].clone()
    return out


def layer_reset_errors(fine_tuned: Classifier, reference: Classifier, x: Tensor, y: Tensor) -> Tensor:
    """Test error with each hidden layer in turn reset to ``reference``: (depth, M), rows = layers 1..depth."""
    _check_same_shape(fine_tuned, reference)
    return torch.stack([evaluate(reset_layers(fine_tuned, reference, [i]), x, y).error
                        for i in range(fine_tuned.depth)]).double()


def perturbed_layer(fine_tuned: Classifier, reference: Classifier, layer: int, seeds: Sequence[int]) -> Classifier:
    """A copy of ``fine_tuned`` whose layer ``layer`` (0-based) is ``reference``'s plus a random change of the
    same size as fine-tuning's: per member m, W = W_ref + ||W_ft - W_ref|| G / ||G||, G standard normal
    from ``generator(seeds[m], PERTURB_STREAM, layer, 0)``; the biases the same way with their own norm
    (stream 1). All other layers stay fine-tuned."""
    _check_same_shape(fine_tuned, reference)
    _check_layers(fine_tuned, [layer])
    seeds = validate_seeds(seeds, fine_tuned.n_members)
    out = fine_tuned.clone()
    for j, (target, ft, ref) in enumerate(((out.weights, fine_tuned.weights[layer], reference.weights[layer]),
                                           (out.biases, fine_tuned.biases[layer], reference.biases[layer]))):
        g = torch.stack([torch.randn(tuple(ft.shape[1:]), generator=generator(s, PERTURB_STREAM, layer, j),
                                     dtype=ft.dtype) for s in seeds]).to(ft.device)
        shape = (-1, *[1] * (ft.dim() - 1))
        size = (ft - ref).flatten(1).norm(dim=1).view(shape)
        target[layer] = ref + g / g.flatten(1).norm(dim=1).view(shape) * size
    return out


@torch.no_grad()
def predict(clf: Classifier, x: Tensor) -> Tensor:
    """The class each member assigns to each input x (N, V): (M, N) int64 (in chunks of 4096 inputs)."""
    if not isinstance(clf, Classifier):
        raise TypeError(f"clf must be a Classifier, got {type(clf).__name__}")
    x = x.to(device=clf.device, dtype=clf.dtype)
    return torch.cat([clf.logits(x[s:s + 4096]).argmax(-1) for s in range(0, x.shape[0], 4096)], dim=1)


# ----------------------------------------------------------------------------------------- training
def layer_distances(start: Classifier, current: Classifier) -> Tensor:
    """How far each layer moved since ``start``: (M, depth + 1) ||W - W_start||_F (layers 1..depth, then the
    softmax); a :data:`pretraining.core.selection.Track`."""
    return torch.stack([weight_distance(b, a) for b, a in zip(start.weights, current.weights)], dim=1)


def join_stacks(stacks: Sequence[Stack]) -> Stack:
    """Stacks of one kind and shape as one stack, their members in order."""
    if not stacks or len({(s.kind, tuple(s.sizes)) for s in stacks}) != 1:
        raise ValueError("join_stacks needs a non-empty list of stacks of one kind and shape")
    dicts = [s.state_dict() for s in stacks]
    return Stack.from_state_dict({k: torch.cat([d[k] for d in dicts]) for k in dicts[0]}, stacks[0].kind)


def stack_members(stack: Stack, idx: Sequence[int]) -> Stack:
    """The members ``idx`` (K,) of ``stack`` in that order (repeats allowed), as a K-member stack (copies)."""
    i = torch.as_tensor(list(idx), dtype=torch.int64)
    if not i.numel() or int(i.min()) < 0 or int(i.max()) >= stack.n_members:
        raise IndexError(f"stack members idx={list(idx)} must be non-empty and within 0..{stack.n_members - 1}")
    i = i.to(stack.device)
    return Stack.from_state_dict({k: v[i] for k, v in stack.state_dict().items()}, stack.kind)


def _from_stacks(stacks: Stack, stack_of: Mapping[int, int]) -> Callable[[Sequence[int]], Classifier]:
    """make(seeds) -> for each seed s the pre-trained layers of stack ``stack_of[s]`` with a random softmax
    from s (seeds may repeat: the rate grid trains one run with several rates)."""
    return lambda seeds: Classifier.from_stack(stack_members(stacks, [stack_of[s] for s in seeds]), N_CLASSES, seeds)


def ragged_curves(curves: Sequence[Sequence]) -> np.ndarray:
    """Per-run curves of different lengths (run m: E_m entries, each a number or a list of K) as one
    (E, K, M) array (E the longest run), NaN after a run stopped."""
    arrays = [np.asarray(c, dtype=float).reshape(len(c), -1) for c in curves]
    E, K = max(a.shape[0] for a in arrays), max(a.shape[1] for a in arrays)
    out = np.full((E, K, len(arrays)), np.nan)
    for m, a in enumerate(arrays):
        out[:a.shape[0], :a.shape[1], m] = a
    return out


@dataclass
class FinetuneRun:
    """One trained group of members: ``before`` and ``after`` training (each run at its best validation
    epoch), the training curves per run ("train_nll", "valid_error", "distance": one entry per epoch run;
    distance a list of depth + 1 :func:`layer_distances`) and the selection record
    (:meth:`pretraining.core.selection.Selection.record`)."""

    before: Classifier
    after: Classifier
    history: dict
    selection: dict

    @property
    def converged(self) -> bool:
        """Every run converged and the chosen rate is off the edge of the rates tried."""
        return setting_converged(self.selection)


def finetuned(ch: runtime.Chapter, name: str, make: Callable[[Sequence[int]], Classifier], what: Mapping,
              config: FinetuneConfig, selection: SelectionConfig, seeds: Sequence[int], *,
              train_layers: Sequence[int] | None = None) -> FinetuneRun:
    """``make(seeds)`` trained on the chapter's training digits by the fair-fight protocol
    (:func:`pretraining.core.selection.select_and_train`), through the artifact cache, tracking each
    layer's distance from its start per epoch (:func:`layer_distances`).

    ch: the running chapter (its data and cache); name: the artifact's name; what: everything that
    defines ``make`` (e.g. the stacks' kind, sizes, pre-training config and seeds, the run -> stack
    assignment); train_layers: the layers trained (None: all; e.g. [1, .., depth] freezes layer 1).
    The key adds the configs, ``train_layers`` and ``seeds``.
    """
    key = {**what, "finetune": dataclasses.asdict(config), "selection": dataclasses.asdict(selection),
           "train_layers": None if train_layers is None else list(train_layers), "seeds": list(seeds)}
    data = ch.data
    before = make(seeds)

    def compute():
        sel = select_and_train(make, data.train, data.valid, config, selection, seeds, train_layers=train_layers,
                               track=layer_distances, longer=LONGER_RUN)
        curves = {"train_nll": sel.curves["train_nll"], "valid_error": sel.curves["valid_error"],
                  "distance": sel.curves["tracked"]}
        return sel.clf.state_dict(), {"history": curves, "selection": sel.record()}

    # version 4: absolute layer distances tracked, train_layers in the key (3: early stopping on a flat curve)
    tensors, meta = ch.cached(name, key, compute, version=4)
    return FinetuneRun(before, Classifier.from_state_dict(tensors), meta["history"], meta["selection"])


@dataclass
class SoftmaxRun:
    """The softmax trained alone on frozen features: ``before`` / ``after`` (M members; only the softmax
    differs) and one selection record per stack (the runs of stack k are selected together)."""

    before: Classifier
    after: Classifier
    selections: list[dict]

    @property
    def converged(self) -> bool:
        return all(setting_converged(r) for r in self.selections)


def softmax_on_frozen_features(ch: runtime.Chapter, name: str, make: Callable[[Sequence[int]], Classifier],
                               what: Mapping, config: FinetuneConfig, selection: SelectionConfig,
                               seeds: Sequence[int], stack_of: Sequence[int]) -> SoftmaxRun:
    """The softmax of ``make(seeds)`` trained alone on its frozen top features, by the fair-fight protocol
    per stack: the runs m with ``stack_of[m] == k`` are one :func:`pretraining.core.selection.select_and_train`
    on stack k's features of the training and validation digits (computed once; the routine's
    validation set is shared by its members, and the features differ between stacks). Cached like
    :func:`finetuned`."""
    key = {**what, "finetune": dataclasses.asdict(config), "selection": dataclasses.asdict(selection),
           "softmax_only": True, "seeds": list(seeds)}
    data = ch.data
    before = make(seeds)

    def compute():
        after = before.clone()
        records = []
        for k in sorted(set(stack_of)):
            idx = [m for m, s in enumerate(stack_of) if s == k]
            net = before.member(idx[0])  # stack k's hidden layers (every run of stack k has them)

            def features(x: Tensor) -> Tensor:
                return torch.cat([net.hidden(x[s:s + 2000])[-1][0] for s in range(0, x.shape[0], 2000)])

            def make_top(s: Sequence[int]) -> Classifier:
                full = make(s)
                return Classifier([full.weights[-1]], [full.biases[-1]])

            sel = select_and_train(make_top, Subset(features(data.train.x), data.train.y),
                                   Subset(features(data.valid.x), data.valid.y), config, selection,
                                   [seeds[m] for m in idx], longer=LONGER_RUN)
            after.weights[-1][idx], after.biases[-1][idx] = sel.clf.weights[0], sel.clf.biases[0]
            records.append(sel.record())
        return after.state_dict(), {"selections": records}

    # version 4: selected per stack (3: one shared stack)
    tensors, meta = ch.cached(name, key, compute, version=4)
    return SoftmaxRun(before, Classifier.from_state_dict(tensors), meta["selections"])
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


def decision_map(clf: Classifier, plane: InputPlane) -> Tensor:
    """The class each member assigns to each grid point: (M, R, R) int64, rows = beta, columns = alpha."""
    R = plane.resolution
    return predict(clf, plane.points).reshape(clf.n_members, R, R)


# ----------------------------------------------------------------------------------------- figures
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


#: The panels of :func:`plot_layer_change`: measure -> (title, scale).
_PANELS = {"weight_change": ("absolute change ‖W_after − W_before‖", 1.0),
           "change_vs_pretraining": ("change ÷ pre-training's move, ‖ΔW‖ / ‖W_pt − W_init‖ (%)", 100.0),
           "cka": ("CKA of the layer's activations on test digits, before vs after", 1.0),
           "mean_cosine": ("mean cosine between a unit's weights before and after", 1.0),
           "sign_flip_fraction": ("weights whose sign flipped (%)", 100.0)}


def plot_layer_change(changes: Mapping[str, LayerChange], layer_names: Sequence[str]) -> Figure:
    """Bar charts over layers of the measures of :data:`_PANELS` (one panel each, in rows), one bar colour per
    network, error bars = std over runs; no bar where a measure does not apply (NaN).

    changes: {network label: LayerChange with len(layer_names) layers}.
    """
    if not changes:
        raise ValueError("changes must name at least one network")
    labels = list(changes)
    hatches = ["", "//", ".."]
    x = np.arange(len(layer_names))
    width = 0.8 / len(labels)
    with styled():
        fig, axes = plt.subplots(len(_PANELS), 1, figsize=(PAGE_WIDTH, 2.0 * len(_PANELS) + 0.8), sharex=True,
                                 layout="constrained")
        for ax, (stat, (title, scale)) in zip(axes, _PANELS.items()):
            for k, label in enumerate(labels):
                v = scale * _np(getattr(changes[label], stat))
                if v.shape[0] != len(layer_names):
                    raise ValueError(f"{label!r} has {v.shape[0]} layers, layer_names has {len(layer_names)}")
                shown = ~np.isnan(v).any(1)
                err = v.std(1, ddof=1) if v.shape[1] > 1 else np.zeros(v.shape[0])
                ax.bar((x + (k - (len(labels) - 1) / 2) * width)[shown], v.mean(1)[shown], width * 0.92,
                       yerr=err[shown], capsize=3, label=label, color=f"C{k}", hatch=hatches[k % len(hatches)],
                       edgecolor="white")
            ax.set_title(title)
        axes[-1].set_xticks(x, [_layer_label(n) for n in layer_names])
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper center", ncols=min(3, len(labels)))
    return fig


def plot_change_over_epochs(histories: Mapping[str, Sequence], layer_names: Sequence[str]) -> Figure:
    """Each layer's distance from its start, ||W - W_start||, against the fine-tuning epoch, one panel per
    network, in rows.

    histories: {network label: per run a list of per-epoch (L,) distances} (the runs' "distance"; runs
    stop at different epochs); lines are the mean over the runs still training, the band their min..max.
    """
    n = len(histories)
    with styled():
        fig, axes = plt.subplots(n, 1, figsize=(PAGE_WIDTH, 2.3 * n + 0.7), sharex=True, sharey=True,
                                 layout="constrained", squeeze=False)
        longest = 1
        for ax, (label, hist) in zip(axes[:, 0], histories.items()):
            v = ragged_curves(hist)  # (E, L, M)
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
            ax.set_ylabel("‖W − W_start‖")
        axes[-1, 0].set_xlabel("fine-tuning epoch")
        axes[-1, 0].set_xlim(0.5, longest + 0.5)
        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside upper center",
                   ncols=min(4, len(layer_names)))
    return fig


def plot_test_errors(errors: Mapping[str, Tensor], *, edited: Sequence[str] = (),
                     title: str | None = None) -> Figure:
    """Horizontal bars of test error (%) per condition, mean over runs with every run as a dot.

    errors: {condition label: error fractions (M,)}, drawn top to bottom in the given order; bars of
    conditions whose label starts with one of ``edited`` (networks edited after training) are orange
    (and hatched), the others blue.
    """
    with styled():
        fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.5 * len(errors) + 1.4), layout="constrained")
        for k, (label, e) in enumerate(errors.items()):
            v = 100 * _np(e).reshape(-1)
            reset = label.startswith(tuple(edited))
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
