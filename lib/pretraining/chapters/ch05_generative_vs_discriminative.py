"""Chapter 5: the bandwidth argument for generative pre-training, as experiments.

Hinton (lecture 14c): "there is a high bandwidth from the stuff in the world to the image and a low
bandwidth from the stuff in the world to the label", so it pays to invert the image pathway first
(unsupervised pre-training) and then learn the few bits of the label. If instead the label is a
direct function of the pixels ("is the top-left pixel similar to the bottom-right one?"),
pre-training should not help.

The notebook ``chapters/05_generative_vs_discriminative.ipynb`` tells the story; this module does
the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together;
* :func:`run` — from :func:`setup` (made once per process: also on a Dask worker, which then computes
  :func:`budget_setting`s) fits the labellings (:data:`LABELLINGS`: two cause labels of the digits, two
  high-frequency pixel labels, the smooth patch label, and a cause label and a pixel label of the
  controlled world), pre-trains one RBM stack per seed on the digits and one on the world's images,
  runs the label-budget experiment for every (labelling, initialisation, label budget) (one cached
  artifact each), replays the trajectory budget with recording, reads the test NLL at matched
  training NLL, and measures the world's bits;
* one function per section — :func:`argument`, :func:`labellings`, :func:`experiment_setup`,
  :func:`training`, :func:`budget_results`, :func:`budget_summary`, :func:`literature`,
  :func:`controlled_world`, :func:`world_bits`, :func:`regularisation`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers (a part that compares a
  setting which did not converge is not tested: :func:`gate_unconverged`), the results file.

Helpers: the labellers :class:`PixelLabel` (the smooth patch label), :class:`PixelPair` and
:class:`PixelParity` (high-frequency pixel labels, chosen on training images only), :func:`chance_error`,
:func:`world_data` (the controlled world as a data set); :func:`labelled_subsets`,
:func:`budget_epoch`, :func:`budget_config`, :func:`labelled_data`, :func:`budget_makers`,
:func:`fair_budget` and :func:`trajectory` (the label-budget experiment: every (labelling,
initialisation, label budget) is trained by the book's fair-fight protocol,
:func:`pretraining.core.selection.select_and_train`, on each seed's own ``n_labels`` labelled
examples, its rate and stopping epoch chosen on a fixed validation set; the trajectory budget's
chosen training is replayed with its NLLs recorded), :func:`matched_test_nll` and
:func:`matched_summary` (test NLL read off at a common training NLL: the regularisation-versus-
optimisation reading of Erhan et al. 2010, sections 6-8), :func:`advantage_summary` and
:func:`budget_parts` (the statistics and the claim's tests), :func:`world_report` (bits and
explained variance in the controlled world of :mod:`pretraining.core.world`, measured with
:mod:`pretraining.analysis.information`), the tables :func:`labelling_table`, :func:`budget_table`
(shown with :data:`BUDGET_FORMAT`), :func:`literature_table`, :func:`world_table`,
:func:`world_mi_table`, the sentences :func:`optimisation_sentence`, :func:`regularisation_sentence`,
:func:`verdict_sentence`, and the figures :func:`causal_story_figure`, :func:`example_digits_figure`,
:func:`budget_figure`, :func:`world_figure`, :func:`nll_trajectory_figure`.

The design is paired: for each labelling, budget and seed the pre-trained, the random and the linear
net share the labelled examples and the minibatch order, the pre-trained and the random net also their
softmax initialisation (each is trained at the rate the validation set chose for its own setting), so
every comparison is made seed by seed (per-seed differences, a Student-t interval of their mean, the
Wilcoxon signed-rank test: :func:`pretraining.analysis.stats.paired_difference`,
:func:`pretraining.book.claims.paired`), and a claim part needs at least :data:`claims.MIN_PAIRS`
seeds to be tested.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ..analysis import figures, stats
from ..analysis.figures import PAGE_WIDTH, PALETTE, styled
from ..analysis.information import (
    binary_mutual_information_bits,
    entropy_bits,
    explained_variance,
    mutual_information_bits,
)
from ..analysis.references import LAROCHELLE2009_TABLE3
from ..book import claims, fairness, runtime
from ..book.experiments import pretrained_stack, selection_config
from ..book.specs import (
    MAX_EPOCHS,
    MAX_STEPS,
    ChapterSpec,
    Float,
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
from ..book.work import Work
from ..book.workplan import protocol_job, split_sizes, stack_jobs
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES, Subset
from ..core.memory import training_bytes
from ..core.models import Classifier, Stack
from ..core.rehearsal import Job
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, TrainData, select_and_train, setting_converged
from ..core.seeding import generator, member_seeds, validate_seeds
from ..core.train import FinetuneConfig, RBMConfig, evaluate, finetune, pretrain_stack
from ..core.world import SIDE, ControlledWorld, WorldConfig, sweep_causes

Tensor = torch.Tensor

__all__ = [
    "BUDGET_FORMAT",
    "CAUSE",
    "HIGH_FREQUENCY",
    "INITS",
    "INIT_NAMES",
    "LABELLINGS",
    "LABELLING_NAMES",
    "N_CLASSES",
    "NEEDS",
    "SPEC",
    "TRAJECTORY",
    "BudgetRun",
    "PixelLabel",
    "PixelPair",
    "PixelParity",
    "Result",
    "advantage_summary",
    "argument",
    "budget_config",
    "budget_epoch",
    "budget_figure",
    "budget_makers",
    "budget_parts",
    "budget_results",
    "budget_summary",
    "budget_table",
    "causal_story_figure",
    "chance_error",
    "claim_parts",
    "condition_name",
    "controlled_world",
    "epochs_text",
    "example_digits_figure",
    "experiment_setup",
    "fair_budget",
    "finish",
    "gate_unconverged",
    "labelled_data",
    "labelled_subsets",
    "labelling_table",
    "labellings",
    "literature",
    "literature_table",
    "matched_summary",
    "matched_test_nll",
    "nll_trajectory_figure",
    "optimisation_sentence",
    "regularisation",
    "regularisation_sentence",
    "results_record",
    "run",
    "start",
    "training",
    "training_curves",
    "trajectory",
    "verdict_sentence",
    "work",
    "world_bits",
    "world_data",
    "world_figure",
    "world_mi_table",
    "world_report",
    "world_stack",
    "world_table",
]

INITS = ("pretrained", "random", "linear")
INIT_NAMES = {"pretrained": "pre-trained", "random": "random init", "linear": "linear (raw pixels)"}
LABELLINGS = ("class", "class_high", "pixel_pair", "pixel_parity", "patch", "world_cause", "world_pixel")
"""The labellings, each a (train, validation, test) labelling of one image set: the digits' class (10
classes) and its half "class >= 5" (cause labels), two high-frequency pixel labels (:class:`PixelPair`,
:class:`PixelParity`), the smooth patch label (:class:`PixelLabel`); in the controlled world, the
world's class >= 5 (a function of a cause) and a :class:`PixelPair` label of the world's images."""
LABELLING_NAMES = {
    "class": "digit class (cause, 10 classes)",
    "class_high": "digit ≥ 5 (cause, binary)",
    "pixel_pair": "pixel pair (high-frequency)",
    "pixel_parity": "pixel parity (high-frequency)",
    "patch": "patch similarity (smooth pixel function)",
    "world_cause": "world: class ≥ 5 (cause)",
    "world_pixel": "world: pixel pair (pixels only)",
}
CAUSE = ("class", "class_high")
"""The digits' cause labels (part a)."""
HIGH_FREQUENCY = ("pixel_pair", "pixel_parity")
"""The digits' high-frequency pixel labels (parts b and c compare them with ``class_high``)."""
TRAJECTORY = {"cause": "class", "pixel": "pixel_pair"}
"""The two labellings whose trajectory budget is replayed, by their role in the regularisation section."""
N_CLASSES = 10
_SUBSET_DOMAIN = 0x5EB5E7  # SeedSequence tag of the labelled-subset permutations
_QUARTER = SIDE // 2       # the top-left patch must stay in the top-left quarter of the image
_INTERIOR = range(4, SIDE - 4)   # rows and columns the high-frequency labels choose their pixels from
_WORLD_SPLITS = {"train": 2, "valid": 3, "test": 4}   # seed offsets of the world's data set (1: its report)


# -- the parameters ------------------------------------------------------------------------------

def _budgets_increase(p: Mapping) -> list[str]:
    if sorted(set(p["n_labels"])) != list(p["n_labels"]):
        return [not_allowed("n_labels", p["n_labels"], "increasing, without repeats")]
    return []


def _trajectory_budget_run(p: Mapping) -> list[str]:
    if p["trajectory_n_labels"] not in p["n_labels"]:
        return [not_allowed("trajectory_n_labels", p["trajectory_n_labels"], f"one of n_labels={p['n_labels']}")]
    return []


def _patch_in_quarter(p: Mapping) -> list[str]:
    if p["pixel_offset"] + p["pixel_patch"] > _QUARTER:
        return [not_allowed("pixel_offset", p["pixel_offset"],
                            f"at most {_QUARTER - p['pixel_patch']} with pixel_patch={p['pixel_patch']}: the patch "
                            f"must stay in the top-left quarter (offset + patch <= {_QUARTER})")]
    return []


def _memory(p: Mapping) -> tuple[int, list[str]]:
    """Bytes of the two stacks, the largest batched fine-tuning run (the selection's rates x seeds, or all
    seeds of a condition, or the trajectory replay's 2 n_seeds nets), each member with its own labelled
    examples, and the controlled world's images (its data set and its report)."""
    n_train, n_valid, n_test = SPLIT_SIZES[p["dataset"]]
    sizes, n = [784, *p["hidden_sizes"]], p["n_seeds"]
    members = max(2 * n, len(p["finetune_lr_grid"]) * p["finetune_select_seeds"])

    def rows(k: int) -> int:   # examples on the device: a copy per member, one shared copy when all are labelled
        repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])[1]
        return k * repeats * (members if k < n_train else 1)

    need = max(2 * training_bytes(n, n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(members, max(map(rows, p["n_labels"])), [*sizes, 10], p["finetune_batch_size"],
                              greedy=False))
    return need + 4 * 784 * (p["world_samples"] + n_train + n_valid + n_test), \
        ["n_seeds", "hidden_sizes", "n_labels", "world_samples"]


SPEC = ChapterSpec(
    "05_generative_vs_discriminative",
    claim="Generative pre-training pays off when the label is caused by what caused the image, not when "
          "the label is a direct function of pixels.",
    paper="Argued in lecture 14c; not measured in the papers.",
    params={
        "n_seeds": Param(8, Int(min=2, max=1000),
                         "seeds per setting: each gets its own pre-training, labelled subset and init"),
        "hidden_sizes": Param([300], IntList(min=1, max=20000, max_len=8),
                              "hidden-layer widths of the pre-trained (RBM stack) and the random nets"),
        "rbm_epochs": Param(5, Int(min=1, max=MAX_EPOCHS), "CD-1 epochs per RBM layer, on all training images (no labels)"),
        "rbm_lr": Param(0.05, Float(gt=0, max=10), "RBM learning rate"),
        "pretrain_batch_size": Param(100, Int(min=1), "RBM minibatch size"),
        "n_labels": Param([20, 200, 2000], IntList(min=2, min_len=2, max_len=20),
                          "label budgets: numbers of labelled training examples"),
        **selection_params(grid=[0.1, 0.2371, 0.5623, 1.334, 3.162], epochs=60, patience=3, select_seeds=1),
        "finetune_epoch_examples": Param(1000, Int(min=1, max=MAX_STEPS),
                                         "least training examples per fine-tuning epoch: a budget with fewer labels "
                                         "repeats them within an epoch"),
        "finetune_batch_size": Param(50, Int(min=1),
                                     "fine-tuning minibatch size (smaller when a budget has fewer labels)"),
        "trajectory_n_labels": Param(200, Int(min=2),
                                     "the budget whose training and test NLL are followed epoch by epoch"),
        "pixel_patch": Param(6, Int(min=1, max=14), "side (px) of the two patches the patch label compares"),
        "pixel_offset": Param(6, Int(min=0, max=13),
                              "distance (px) of the top-left patch from the top-left corner (mirrored for the other)"),
        "pixel_pair_distance": Param(8, Int(min=1, max=19),
                                     "least distance (px, along rows or columns) between the two pixels the pixel-pair "
                                     "label compares"),
        "pixel_pair_balance": Param(0.05, Float(min=0, max=0.5),
                                    "the pixel-pair label's share of 1s on the training images is within this of 1/2"),
        "parity_pixels": Param(3, Int(min=2, max=8), "pixels whose thresholded values the parity label adds up"),
        "parity_distance": Param(6, Int(min=1, max=19),
                                 "least distance (px, along rows or columns) between two of the parity label's pixels"),
        "world_exemplars": Param(8, Int(min=1, max=100), "controlled world: handwriting exemplars per digit class"),
        "world_deformations": Param(64, Int(min=1, max=1_000_000),
                                    "controlled world: distinct elastic + affine deformations"),
        "world_max_shift": Param(2, Int(min=0, max=4),
                                 "controlled world: positions are shifts of -s..s px along each axis"),
        "world_samples": Param(5000, Int(min=100, max=10_000_000),
                               "controlled world: images drawn to measure bits and explained variance"),
    },
    rules=(_budgets_increase, _trajectory_budget_run, _patch_in_quarter, rate_grid_rule(), select_seeds_rule(),
           fits_split("train", "n_labels", "pretrain_batch_size"), fits_memory(_memory)),
)


def start(namespace: Mapping) -> runtime.Chapter:
    """Check the notebook's parameters (``globals()`` after the parameters cell) and begin."""
    return runtime.start(SPEC, namespace)


# -- the run -------------------------------------------------------------------------------------

@dataclass
class Result:
    """What the chapter computed.

    seeds: the S network seeds; stack: the RBM stack pre-trained on the digits (S members);
    labellers: {"pixel_pair", "pixel_parity", "patch", "world_pixel"}: the fitted pixel labellers;
    pixel_test: {labelling: (N_test,) int64} the digits' pixel labels of the test digits (for the
    example figure); info[labelling]: :func:`labelling_info` (classes, balance, chance error, bits, mutual
    information with the class);
    errors[labelling][init]: (K, S) test errors (fractions) per budget and seed, each net at its best
    validation epoch; selection[labelling][init]: K selection records
    (:meth:`pretraining.core.selection.Selection.record`), one per budget; curves[labelling][init]: K
    {"train_nll", "valid_error"} (per seed, one value per epoch run); adv[labelling]:
    :func:`advantage_summary`; traj[role]: the :class:`BudgetRun` of the trajectory budget of
    :data:`TRAJECTORY` [role]; matched[role]: :func:`matched_summary`; world: the
    :class:`~pretraining.core.world.ControlledWorld`; world_base: the causes of the world figure's
    reference image; report: :func:`world_report`; n_labels: the K budgets.
    """

    seeds: list[int]
    stack: Stack
    labellers: dict[str, object]
    pixel_test: dict[str, Tensor]
    info: dict[str, dict]
    errors: dict[str, dict[str, np.ndarray]]
    selection: dict[str, dict[str, list[dict]]]
    curves: dict[str, dict[str, list[dict]]]
    adv: dict[str, dict]
    traj: dict[str, BudgetRun]
    matched: dict[str, dict]
    world: ControlledWorld
    world_base: dict[str, int]
    report: dict
    n_labels: list[int]

    def records(self) -> dict[tuple[str, str, int], dict]:
        """Every condition's selection record, keyed (labelling, initialisation, labels)."""
        return {(lab, init, n): rec for lab, by_init in self.selection.items() for init, recs in by_init.items()
                for n, rec in zip(self.n_labels, recs)}


def _relabel(sets: Mapping[str, Subset], label: Callable[[Subset], Tensor]) -> dict[str, Subset]:
    """The same images with the labels ``label(subset)`` (N,) int64, per split."""
    return {part: Subset(s.x, label(s).to(s.y.device)) for part, s in sets.items()}


@dataclass
class Setup:
    """What every (labelling, initialisation, label budget) of a chapter run starts from (:func:`setup`).

    seeds: one per member; world, world_config, wsets: the controlled world and its data sets;
    labellers: the fitted pixel labellers; sets: {labelling: {"train", "valid", "test": Subset}};
    definition: how each labelling is defined (part of its artifacts' keys); info:
    :func:`labelling_info` per labelling; stacks: {"digits", "world": the pre-trained RBM stack};
    stack_key, world_key: their cache keys; selection: the fair-fight protocol; fits: {n_labels:
    :func:`budget_config`}.
    """

    seeds: list[int]
    world: ControlledWorld
    world_config: WorldConfig
    wsets: dict[str, Subset]
    labellers: dict[str, Any]
    sets: dict[str, dict[str, Subset]]
    definition: dict[str, Any]
    info: dict[str, dict]
    stacks: dict[str, Stack]
    stack_key: dict[str, Any]
    world_key: dict[str, Any]
    selection: SelectionConfig
    fits: dict[int, tuple[FinetuneConfig, int]]

    def fit_key(self, n: int) -> dict:
        """What one budget's training depends on besides the rate."""
        config, repeats = self.fits[n]
        return {**{k: v for k, v in dataclasses.asdict(config).items() if k != "lr"}, "repeats": repeats}

    def base_key(self, lab: str) -> dict:
        """The key every artifact of labelling ``lab`` shares."""
        return {"stack": self.world_key if lab.startswith("world") else self.stack_key, "seeds": self.seeds,
                "selection": dataclasses.asdict(self.selection), "longer": LONGER_RUN, "labelling": lab,
                "definition": self.definition[lab]}

    def makers(self, lab: str) -> dict[str, Callable[[Sequence[int]], Classifier]]:
        """:func:`budget_makers` of labelling ``lab`` (on the world's stack for a world labelling)."""
        where = "world" if lab.startswith("world") else "digits"
        return budget_makers(self.stacks[where], self.info[lab]["n_classes"], self.seeds)


@functools.lru_cache(maxsize=2)
def setup(ch: runtime.Chapter) -> Setup:
    """The labellings, the world and the two pre-trained stacks (cached) of a chapter run; made once
    per process and chapter (also on a Dask worker that computes some of its budgets)."""
    p, data = ch.params, ch.data
    seeds = member_seeds(p["seed"], p["n_seeds"])
    digits = {"train": data.train, "valid": data.valid, "test": data.test}
    world_config = WorldConfig(p["world_exemplars"], p["world_deformations"], p["world_max_shift"])
    world = ControlledWorld(data.train.to("cpu"), world_config, seed=p["seed"])
    wsets = world_data(world, {part: len(s) for part, s in digits.items()}, p["seed"])
    wsets = {part: s.to(data.train.x.device) for part, s in wsets.items()}
    labellers = {
        "pixel_pair": PixelPair.fit(data.train.x, data.train.y, distance=p["pixel_pair_distance"],
                                    balance=p["pixel_pair_balance"]),
        "pixel_parity": PixelParity.fit(data.train.x, k=p["parity_pixels"], distance=p["parity_distance"]),
        "patch": PixelLabel.fit(data.train.x, patch=p["pixel_patch"], offset=p["pixel_offset"]),
        "world_pixel": PixelPair.fit(wsets["train"].x, wsets["train"].y, distance=p["pixel_pair_distance"],
                                     balance=p["pixel_pair_balance"]),
    }
    sets = {
        "class": digits,
        "class_high": _relabel(digits, lambda s: (s.y >= 5).long()),
        **{lab: _relabel(digits, lambda s, f=labellers[lab]: f(s.x)) for lab in ("pixel_pair", "pixel_parity", "patch")},
        "world_cause": _relabel(wsets, lambda s: (s.y >= 5).long()),
        "world_pixel": _relabel(wsets, lambda s: labellers["world_pixel"](s.x)),
    }
    definition = {"class": "digit class", "class_high": "digit class >= 5", "world_cause": "world class >= 5",
                  **{lab: dataclasses.asdict(f) for lab, f in labellers.items()}}
    info = {lab: labelling_info(sets[lab], {part: s.y for part, s in (wsets if lab.startswith("world") else digits).items()})
            for lab in LABELLINGS}

    config = RBMConfig(epochs=p["rbm_epochs"], lr=p["rbm_lr"], batch_size=p["pretrain_batch_size"])
    stack, _ = pretrained_stack(ch, "rbm", p["hidden_sizes"], config, seeds)
    stack_key = {"kind": "rbm", "hidden_sizes": p["hidden_sizes"], "config": dataclasses.asdict(config), "seeds": seeds}
    world_key = {**stack_key, "world": dataclasses.asdict(world_config), "world_seed": p["seed"],
                 "n": {part: len(s) for part, s in wsets.items()}}
    compute = functools.partial(world_stack, wsets["train"].x, p["hidden_sizes"], config, seeds)
    tensors, _ = ch.cached("ch5_world_stack", world_key, compute, version=2)

    selection = selection_config(p)
    fits = {n: budget_config(n, p["finetune_epochs"], p["finetune_epoch_examples"], p["finetune_batch_size"],
                             selection) for n in p["n_labels"]}
    return Setup(seeds, world, world_config, wsets, labellers, sets, definition, info,
                 {"digits": stack, "world": Stack.from_state_dict(tensors, "rbm")}, stack_key, world_key,
                 selection, fits)


def budget_setting(ch: runtime.Chapter, lab: str, init: str, n: int) -> tuple[dict[str, Tensor], dict]:
    """The compute of one (labelling, initialisation, label budget) artifact: :func:`fair_budget` on the
    chapter's :func:`setup` (rebuilt where it runs: in the chapter's process or on a Dask worker)."""
    s = setup(ch)
    train, valid, test = (s.sets[lab][part] for part in ("train", "valid", "test"))
    return fair_budget(s.makers(lab)[init], train, valid, test, n, s.seeds, s.selection, *s.fits[n])


def run(ch: runtime.Chapter) -> Result:
    """The labellings, pre-training (digits and world), the label-budget experiment (cached per
    condition, computed by the chapter's executor), the trajectory replay, matched NLLs, the world's bits."""
    p = ch.params
    s = setup(ch)
    settings = [(lab, init, n) for lab in LABELLINGS for init in INITS for n in p["n_labels"]]
    # version 4: seven labellings, the linear baseline (3: flat-curve stopping, 2: the fair fight)
    got = dict(zip(settings, ch.cached_many([
        Work(f"ch5_budget_{lab}_{init}_{n}", {**s.base_key(lab), "init": init, "n_labels": n, "finetune": s.fit_key(n)},
             functools.partial(budget_setting, ch, lab, init, n), 4) for lab, init, n in settings])))
    errors, sel, curves, traj = {}, {}, {}, {}
    for lab in LABELLINGS:
        out = {init: [got[lab, init, n] for n in p["n_labels"]] for init in INITS}
        errors[lab] = {init: np.stack([t["error"].cpu().numpy() for t, _ in out[init]]) for init in INITS}
        sel[lab] = {init: [m["selection"] for _, m in out[init]] for init in INITS}
        curves[lab] = {init: [m["curves"] for _, m in out[init]] for init in INITS}
        if lab in TRAJECTORY.values():
            n = p["trajectory_n_labels"]
            k = p["n_labels"].index(n)
            chosen = {init: sel[lab][init][k] for init in INITS[:2]}
            key = {**s.base_key(lab), "n_labels": n, "finetune": s.fit_key(n),
                   "chosen": {init: {"lr": r["lr"], "epochs_run": r["epochs_run"]} for init, r in chosen.items()}}
            compute = functools.partial(trajectory, s.makers(lab), s.sets[lab]["train"], s.sets[lab]["test"], n,
                                        s.seeds, chosen, *s.fits[n])
            t, _ = ch.cached(f"ch5_trajectory_{lab}", key, compute, version=2)
            traj[lab] = BudgetRun(
                train_nll=t["train_nll"].cpu(), test_nll=t["test_nll"].cpu(),
                epochs_run=torch.tensor([chosen[init]["epochs_run"] for init in INITS[:2]]),
                best_epoch=torch.tensor([chosen[init]["best_epoch"] for init in INITS[:2]]))
    adv = {lab: advantage_summary(errors[lab]["pretrained"], errors[lab]["random"], s.info[lab]["chance"])
           for lab in LABELLINGS}
    traj = {role: traj[lab] for role, lab in TRAJECTORY.items()}
    causes = s.world.sample_causes(p["world_samples"], seed=p["seed"] + 1)
    wx = s.world.render(causes)
    report = world_report(s.world, wx, causes, {"class label": causes["class"],
                                              "class ≥ 5 (world cause label)": (causes["class"] >= 5).long(),
                                              "pixel pair (world pixel label)": s.labellers["world_pixel"](wx)})
    return Result(
        seeds=s.seeds, stack=s.stacks["digits"], labellers=s.labellers,
        pixel_test={lab: s.sets[lab]["test"].y.cpu() for lab in ("pixel_pair", "pixel_parity", "patch")},
        info=s.info, errors=errors, selection=sel, curves=curves, adv=adv, traj=traj, matched=matched_summary(traj),
        world=s.world, world_base={"class": 8, "exemplar": 0, "deformation": 0, "width": 1,
                                 "position": s.world_config.centre()},
        report=report, n_labels=list(p["n_labels"]))


def world_stack(x: Tensor, hidden_sizes: Sequence[int], config: RBMConfig,
                seeds: Sequence[int]) -> tuple[dict[str, Tensor], dict]:
    """The RBM stack of the controlled world (the compute of its cache entry): pre-trained greedily on the
    world's training images x (N, 784), one member per seed, as the digits' stack is on the digits.
    Returns (its state dict, {"histories": one training history per layer})."""
    stack, histories = pretrain_stack("rbm", x, hidden_sizes, config, seeds, progress=False)
    return stack.state_dict(), {"histories": histories}


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: the two RBM stacks (one member per seed, on all training images of the digits and of the
    world); every (labelling, initialisation, label budget) by the fair-fight protocol
    (:func:`fair_budget`; the linear baseline has no hidden layer), each member on its own labelled
    examples: an epoch is the budget's labels repeated :func:`budget_epoch` times, in minibatches of at
    most the budget; per labelling of :data:`TRAJECTORY` the trajectory replay (:func:`trajectory`):
    the 2 ``n_seeds`` nets of ``trajectory_n_labels`` as one batch, at most ``finetune_epochs``
    epochs (the longest run chosen), the NLL on the labelled examples and on the test set after
    every epoch.
    Not counted: grid extensions and the longer run of a seed that did not converge; the labellers,
    the world's rendering, the test evaluations, the matched NLLs and the world's bits (analysis).
    """
    train, _, test = split_sizes(p)
    n, hidden = p["n_seeds"], p["hidden_sizes"]
    jobs = [job for where in ("digits", "world")
            for job in stack_jobs(f"{where} stack", "rbm", 784, hidden, members=n, examples=train,
                                  epochs=p["rbm_epochs"], batch_size=p["pretrain_batch_size"])]
    for lab in LABELLINGS:
        classes = N_CLASSES if lab == "class" else 2
        for init in INITS:
            sizes = [784, classes] if init == "linear" else [784, *hidden, classes]
            for k in p["n_labels"]:
                batch, repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])
                jobs.append(protocol_job(f"{lab} label, {INIT_NAMES[init]}, {k:,} labels", sizes, p, n,
                                         examples=k * repeats, batch_size=batch))
        if lab in TRAJECTORY.values():
            k = p["trajectory_n_labels"]
            batch, repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])
            jobs.append(Job(f"{lab} label, trajectories of {k:,} labels", "finetune", [784, *hidden, classes],
                            members=2 * n, examples=k * repeats, epochs=p["finetune_epochs"], batch_size=batch,
                            eval_examples=k + test))
    return jobs


# -- the sections ------------------------------------------------------------------------------

def argument(ch: runtime.Chapter) -> None:
    """The argument, drawn: two causal stories of where a label comes from."""
    ch.figure("ch5_causal_stories", causal_story_figure())


def labellings(ch: runtime.Chapter, res: Result) -> None:
    """The labellings: how each was chosen, its balance, chance error and bits; example test digits."""
    p, data, info = ch.params, ch.data, res.info
    pair, parity, patch = (res.labellers[k] for k in ("pixel_pair", "pixel_parity", "patch"))
    ch.glue("patch_desc", f"{p['pixel_patch']} × {p['pixel_patch']} px", fmt="s")
    ch.glue("pixel_offset_px", p["pixel_offset"], fmt="d")
    ch.glue("pair_desc", pair.describe(), fmt="s")
    ch.glue("world_pair_desc", res.labellers["world_pixel"].describe(), fmt="s")
    ch.glue("pair_distance", p["pixel_pair_distance"], fmt="d")
    ch.glue("pair_balance", f"{0.5 - p['pixel_pair_balance']:.0%} to {0.5 + p['pixel_pair_balance']:.0%}", fmt="s")
    ch.glue("parity_desc", parity.describe(), fmt="s")
    ch.glue("parity_k", p["parity_pixels"], fmt="d")
    ch.glue("parity_distance", p["parity_distance"], fmt="d")
    ch.glue("max_mi_pixel", max(info[lab]["mi_class_test"] for lab in HIGH_FREQUENCY), fmt=".3f")
    ch.glue("cause_bits", info["class"]["bits"], fmt=".2f")
    runtime.show(_styled(labelling_table(info), LABELLING_FORMAT,
                         "The labellings: classes, share of the most frequent label, chance error, bits, and "
                         "mutual information with the class (training and test images)"))
    ch.figure("ch5_example_digits", example_digits_figure(data.test.x, data.test.y, res.pixel_test, pair, parity,
                                                          patch))


def experiment_setup(ch: runtime.Chapter, res: Result) -> None:
    """The set-up of pre-training and of the label-budget experiment, its fair-fight protocol (glued values only)."""
    p, data = ch.params, ch.data
    grid = p["finetune_lr_grid"]
    ch.glue("n_rbm_layers", len(p["hidden_sizes"]), fmt="d")
    ch.glue("rbm_layers_word", plural(len(p["hidden_sizes"]), "RBM layer"), fmt="s")
    ch.glue("architecture", "-".join(str(s) for s in res.stack.sizes), fmt="s")
    ch.glue("n_train", len(data.train), fmt=",d")
    ch.glue("n_valid", len(data.valid), fmt=",d")
    ch.glue("n_test", len(data.test), fmt=",d")
    ch.glue("pretrain_epochs_used", p["rbm_epochs"], fmt="d")
    ch.glue("budgets_text", ", ".join(f"{n:,}" for n in p["n_labels"]), fmt="s")
    ch.glue("ft_rates", f"{len(grid)} log-spaced rates from {grid[0]:g} to {grid[-1]:g}", fmt="s")
    ch.glue("ft_select_seeds", plural(p["finetune_select_seeds"], "seed"), fmt="s")
    ch.glue("ft_extensions", plural(p["finetune_max_extensions"], "time"), fmt="s")
    ch.glue("ft_patience", p["finetune_patience"], fmt="d")
    ch.glue("ft_flat", f"{selection_config(p).flat_tolerance * 100:g}", fmt="s")
    ch.glue("ft_epochs_text", plural(p["finetune_epochs"], "epoch"), fmt="s")
    ch.glue("ft_epoch_examples", p["finetune_epoch_examples"], fmt="d")
    ch.glue("ft_epochs_by_budget", epochs_text(p["n_labels"], p["finetune_epoch_examples"], p["finetune_batch_size"]),
            fmt="s")
    ch.glue("ft_batch", p["finetune_batch_size"], fmt="d")
    ch.glue("n_conditions", len(LABELLINGS) * len(INITS) * len(p["n_labels"]), fmt="d")
    ch.glue("n_select_members", len(grid) * p["finetune_select_seeds"], fmt="d")


def training(ch: runtime.Chapter, res: Result) -> None:
    """How every (labelling, initialisation, budget) was trained: the fair-fight table, which settings did
    not converge, and the training curves of the two headline labellings (:data:`TRAJECTORY`)."""
    records = res.records()
    ch.glue("convergence_sentence", fairness.convergence_sentence(records, label=condition_name), fmt="s")
    rows = {(lab, INIT_NAMES[init], f"{n:,}"): rec for (lab, init, n), rec in records.items()}
    frame = fairness.selection_frame(rows, index=["labelling", "initialisation", "labels"])
    runtime.show(frame.style.format(fairness.FORMATS)
                 .set_caption("How each setting was trained: the rate chosen on the validation set, the rates "
                              "tried, the median best epoch and epochs run over the seeds, the median training NLL "
                              "at the best epoch, and how many seeds converged"))
    for lab in TRAJECTORY.values():
        ch.figure(f"ch5_training_curves_{lab}", training_curves(res, lab))


def budget_results(ch: runtime.Chapter, res: Result) -> None:
    """The advantage of pre-training against the number of labels: the figure and one table per labelling."""
    p = ch.params
    ch.glue("n_seeds_used", p["n_seeds"], fmt="d")
    ch.glue("min_p", stats.min_wilcoxon_p(p["n_seeds"]), fmt=".2g")
    ch.glue("min_pairs", claims.MIN_PAIRS, fmt="d")
    ch.glue("alpha", claims.ALPHA, fmt="g")
    ch.glue("n_parts", len(NEEDS), fmt="d")
    ch.glue("holm_first", claims.ALPHA / len(NEEDS), fmt=".3g")
    ch.figure("ch5_budget", budget_figure(p["n_labels"], res.adv))
    table = budget_table(p["n_labels"], res.errors, res.adv, res.info)
    for lab in LABELLINGS:
        runtime.show(_styled(table[table["labelling"] == lab].drop(columns="labelling"), BUDGET_FORMAT,
                             f"{LABELLING_NAMES[lab]}: test error and advantage of pre-training per label budget",
                             text=0))


def budget_summary(ch: runtime.Chapter, res: Result) -> None:
    """What the label-budget numbers say: the advantage relative to chance at the fewest and most labels, the
    verdict part by part."""
    n_labels, adv = ch.params["n_labels"], res.adv
    ch.glue("n_budgets", len(n_labels), fmt="d")
    ch.glue("n_small", n_labels[0], fmt=",d")
    ch.glue("n_all", n_labels[-1], fmt=",d")
    for lab in LABELLINGS:
        ch.glue(f"{lab}_rel_small", adv[lab]["relative"][0], fmt="+.1%")
        ch.glue(f"{lab}_rel_all", adv[lab]["relative"][-1], fmt="+.1%")
        ch.glue(f"{lab}_linear_all", float(res.errors[lab]["linear"][-1].mean()), fmt=".1%")
        ch.glue(f"{lab}_random_all", float(res.errors[lab]["random"][-1].mean()), fmt=".1%")
    ch.glue("verdict_sentence", verdict_sentence(claim_parts(ch, res)), fmt="s")


def literature(ch: runtime.Chapter, res: Result) -> None:
    """All labels: this chapter's class-label nets beside Larochelle et al. 2009 (MNIST-small)."""
    p, cause = ch.params, res.errors["class"]
    best = {init: float(np.median(res.selection["class"][init][-1]["best_epoch"])) for init in INITS[:2]}
    training_text = (f"rate chosen on validation, stopped at the best validation epoch (median {best['random']:.0f} "
                     f"random, {best['pretrained']:.0f} pre-trained, of at most {p['finetune_epochs']})")
    runtime.show(_styled(literature_table(res.stack.sizes, p["n_labels"][-1], training_text,
                                          float(cause["random"][-1].mean()), float(cause["pretrained"][-1].mean())),
                         {}, "Class-label test error with the largest label budget, beside the literature", text=2))


def controlled_world(ch: runtime.Chapter, res: Result) -> None:
    """The controlled world: one row per cause, run through its values."""
    p = ch.params
    ch.figure("ch5_world", world_figure(res.world, res.world_base))
    ch.glue("w_exemplars", p["world_exemplars"], fmt="d")
    ch.glue("w_deformations", p["world_deformations"], fmt="d")
    ch.glue("w_shift", p["world_max_shift"], fmt="d")


def world_bits(ch: runtime.Chapter, res: Result) -> None:
    """Bits and explained variance of every cause and label of the controlled world: table and glue."""
    report = res.report
    table = world_table(report)
    runtime.show(_styled(table, {"bits": "{:.2f}", "pixel variance explained": "{:.1%}"},
                         "Bits and pixel variance explained, per cause and per label"))
    mi = world_mi_table(report)
    runtime.show(_styled(mi, {c: "{:.3f}" for c in mi.columns if c != "label"},
                         "Mutual information of each label with each cause, I(label; cause), in bits"))
    lab_c, lab_p = report["labels"]["class label"], report["labels"]["pixel pair (world pixel label)"]
    ch.glue("w_image_bits", report["image_bits"], fmt=".1f")
    ch.glue("w_cause_bits", lab_c["bits"], fmt=".2f")
    ch.glue("w_pixel_bits", lab_p["bits"], fmt=".2f")
    ch.glue("w_ratio", report["image_bits"] / lab_c["bits"], fmt=".1f")
    ch.glue("w_n", ch.params["world_samples"], fmt="d")
    ch.glue("w_class_var", report["causes"]["class"]["variance_explained"], fmt=".1%")
    ch.glue("w_width_var", report["causes"]["width"]["variance_explained"], fmt=".1%")
    ch.glue("w_cause_mi", lab_c["mi_bits"]["class"], fmt=".2f")
    ch.glue("w_pixel_mi_class", lab_p["mi_bits"]["class"], fmt=".3f")
    most = max(lab_p["mi_bits"], key=lab_p["mi_bits"].get)
    ch.glue("w_pixel_mi_max", lab_p["mi_bits"][most], fmt=".3f")
    ch.glue("w_pixel_mi_argmax", most, fmt="s")


def regularisation(ch: runtime.Chapter, res: Result) -> None:
    """Regularisation or optimisation: NLL trajectories, matched test NLLs, training NLLs after the same epochs."""
    p, matched = ch.params, res.matched
    ch.figure("ch5_nll_trajectories", nll_trajectory_figure(res.traj, p["trajectory_n_labels"]))
    for role in TRAJECTORY:
        m = matched[role]
        ch.glue(f"traj_level_{role}", m["level"], fmt=".3f")
        ch.glue(f"traj_pre_{role}", m["pretrained"], fmt=".3f")
        ch.glue(f"traj_rnd_{role}", m["random"], fmt=".3f")
        ch.glue(f"traj_epoch_{role}", plural(m["common_epoch"], "epoch"), fmt="s")
        ch.glue(f"traj_common_pre_{role}", m["train_nll_at_common"]["pretrained"], fmt=".3f")
        ch.glue(f"traj_common_rnd_{role}", m["train_nll_at_common"]["random"], fmt=".3f")
        ch.glue(f"traj_diff_{role}", m["difference_mean"], fmt="+.3f")
        ch.glue(f"traj_ci_{role}", "{:+.3f} to {:+.3f}".format(*m["difference_ci95"]), fmt="s")
        ch.glue(f"traj_p_{role}", m["difference_p"], fmt=".2g")
    ch.glue("traj_opt_sentence", optimisation_sentence(matched), fmt="s")
    ch.glue("traj_n", p["trajectory_n_labels"], fmt=",d")
    ch.glue("traj_sentence", regularisation_sentence(matched), fmt="s")


# -- the claim -----------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C5 (DESIGN.md), each tested on this run's numbers (see :func:`budget_parts`); a part
    that compares a setting which did not converge is not tested (:func:`gate_unconverged`)."""
    return gate_unconverged(budget_parts(res.adv), res.records())


_PAIRED = INITS[:2]     # the initialisations every part compares: pre-trained against random
NEEDS = {"a": tuple((lab, init) for lab in CAUSE for init in _PAIRED),
         **{f"b-{lab.removeprefix('pixel_')}": tuple((name, init) for name in ("class_high", lab) for init in _PAIRED)
            for lab in HIGH_FREQUENCY},
         "c": tuple((lab, init) for lab in ("class_high", *HIGH_FREQUENCY) for init in _PAIRED),
         "a-world": tuple(("world_cause", init) for init in _PAIRED),
         "b-world": tuple((lab, init) for lab in ("world_cause", "world_pixel") for init in _PAIRED)}
"""The (labelling, initialisation) settings each part of the claim compares, at every label budget (the
linear baseline is described, it decides no part)."""


def condition_name(condition: tuple[str, str, int]) -> str:
    """(labelling, initialisation, labels) in words: ("class", "random", 20) -> 'random init nets with 20
    digit class (cause, 10 classes) labels'."""
    lab, init, n = condition
    return f"{INIT_NAMES[init]} nets with {n:,} {LABELLING_NAMES[lab]} labels"


def gate_unconverged(parts: Sequence[claims.Part],
                     records: Mapping[tuple[str, str, int], Mapping]) -> list[claims.Part]:
    """Each part (:data:`NEEDS`) that compares a setting which did not converge
    (:func:`pretraining.core.selection.setting_converged`: a seed did not converge, or the chosen rate is on the
    edge of the rates tried) becomes "not tested at this scale" (:func:`pretraining.book.fairness.gate`),
    its numbers kept in the evidence. records: {(labelling, initialisation, labels): selection record}."""
    return fairness.gate(parts, lambda key: [k for k in records if k[:2] in NEEDS.get(key, ())], records,
                         label=condition_name)


def finish(ch: runtime.Chapter, res: Result) -> None:
    """The claim's parts and verdict, the results file, the provenance."""
    p, adv = ch.params, res.adv
    parts = claim_parts(ch, res)
    ch.glue("profile_used", ch.profile, fmt="s")
    results = results_record(p, res)
    n_labels = p["n_labels"]
    records = res.records()

    def rel(lab: str) -> str:
        return f"{adv[lab]['relative'][0]:+.1%} / {adv[lab]['relative'][-1]:+.1%}"

    finding = (f"The advantage of pre-training relative to chance (error of the random net minus that of the "
               f"pre-trained one, over the chance error) with {n_labels[0]:,} / {n_labels[-1]:,} labels was "
               f"{rel('class')} for the digit class, {rel('class_high')} for digit >= 5, {rel('pixel_pair')} for "
               f"the pixel pair, {rel('pixel_parity')} for the pixel parity, and in the controlled world "
               f"{rel('world_cause')} for its cause label and {rel('world_pixel')} for its pixel label "
               f"({p['n_seeds']} seeds; {sum(setting_converged(r) for r in records.values())} of {len(records)} "
               f"settings converged)")
    ch.finish(results, parts=parts, finding=finding)


def results_record(p: Mapping, res: Result) -> dict:
    """The chapter's results file entry: per labelling its description (:func:`labelling_info`), test errors
    per initialisation and budget, the advantage of pre-training (points and relative to chance, with
    intervals, raw p and per-seed values), the matched NLLs, the world's bits, and every condition's
    fair-fight account: the epoch of each budget, the chosen rates, the selection records and a
    ``converged`` flag per (labelling, initialisation, budget)
    (:func:`pretraining.core.selection.setting_converged`)."""
    adv, budgets = res.adv, [str(n) for n in p["n_labels"]]
    return {
        "n_labels": p["n_labels"],
        "n_seeds": p["n_seeds"],
        "labellings": {lab: {k: v for k, v in res.info[lab].items()} for lab in res.info},
        "test_error": {lab: {init: res.errors[lab][init].mean(1).tolist() for init in INITS} for lab in res.errors},
        "advantage": {lab: {k: adv[lab][k] for k in ("mean", "ci95", "p", "relative", "relative_ci95")}
                      for lab in adv},
        "per_seed": {lab: {"advantage": adv[lab]["diff"], "relative_advantage": adv[lab]["relative_diff"]}
                     for lab in adv},
        "world": res.report,
        "matched_test_nll": res.matched,
        "epoch": {str(n): dict(zip(("batch", "repeats"), budget_epoch(n, p["finetune_epoch_examples"],
                                                                        p["finetune_batch_size"])))
                  for n in p["n_labels"]},
        "finetune_lr": {lab: {init: [r["lr"] for r in res.selection[lab][init]] for init in INITS}
                        for lab in res.selection},
        "selection": {lab: {init: dict(zip(budgets, res.selection[lab][init])) for init in INITS}
                      for lab in res.selection},
        "converged": {lab: {init: {n: setting_converged(r) for n, r in zip(budgets, res.selection[lab][init])}
                            for init in INITS} for lab in res.selection},
    }


def _pts(x: float) -> str:
    """A fraction as signed percentage points: 0.0571 -> '+5.71'."""
    return f"{100 * x:+.2f}"


def epochs_text(n_labels: Sequence[int], epoch_examples: int, batch_size: int) -> str:
    """What one epoch is at each budget (:func:`budget_epoch`), in words: '20 labels: 50 passes, 50 updates; ...'."""
    out = []
    for n in n_labels:
        batch, repeats = budget_epoch(n, epoch_examples, batch_size)
        out.append(f"{n:,} labels: {plural(repeats, 'pass', 'passes')}, {plural(repeats * n // batch, 'update')}")
    return "; ".join(out)


# -- helpers ---------------------------------------------------------------------------------------

def _check_images(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 2 or x.shape[1] != SIDE * SIDE:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of shape (N, 784), got {shape}")
    return x


# ============================================================================ labellings
@dataclass(frozen=True)
class PixelLabel:
    """"Is the top-left patch similar to the bottom-right patch?" — a smooth label from pixels alone.

    The top-left patch is rows/columns ``offset .. offset+patch-1``; the bottom-right patch is its
    mirror image through the centre (rows/columns ``28-offset-patch .. 27-offset``). The score of an
    image is the mean absolute difference of the two patches, pixel by pixel; the label is 1
    ("similar") when the score is below ``threshold``. Build it with :meth:`fit`, which puts the
    threshold halfway between the two middle training scores, so exactly half of the training
    images are "similar" (unless the two middle scores tie).
    """

    patch: int
    offset: int
    threshold: float

    def __post_init__(self) -> None:
        require_int("patch", self.patch, 1, _QUARTER)
        require_int("offset", self.offset, 0, _QUARTER - self.patch)
        require_float("threshold", self.threshold, ge=0.0)

    @staticmethod
    def score(x: Tensor, patch: int, offset: int) -> Tensor:
        """Mean |top-left patch - bottom-right patch| of images x (N, 784): (N,)."""
        require_int("patch", patch, 1, _QUARTER)
        require_int("offset", offset, 0, _QUARTER - patch)
        img = _check_images("x", x).reshape(-1, SIDE, SIDE)
        a, b = offset, SIDE - offset - patch
        return (img[:, a:a + patch, a:a + patch] - img[:, b:b + patch, b:b + patch]).abs().mean(dim=(1, 2))

    @classmethod
    def fit(cls, x_train: Tensor, patch: int = 6, offset: int = 6) -> PixelLabel:
        """The labeller whose threshold splits the training images x_train (N >= 2, 784) 50/50."""
        s = torch.sort(cls.score(x_train, patch, offset).double().cpu()).values
        if len(s) < 2:
            raise ValueError(f"x_train has {len(s)} images; fitting the threshold needs at least 2")
        mid = len(s) // 2
        return cls(patch, offset, float((s[mid - 1] + s[mid]) / 2))

    def __call__(self, x: Tensor) -> Tensor:
        """Labels (N,) int64: 1 where the patches are similar (score < threshold), else 0."""
        return (self.score(x, self.patch, self.offset).double() < self.threshold).long()


def _interior(step: int = 1) -> Tensor:
    """The flat indices (P,) of the interior pixels (rows and columns 4..23, every ``step``-th), row by row."""
    return torch.tensor([r * SIDE + c for r in _INTERIOR[::step] for c in _INTERIOR[::step]])


def _apart(a: Tensor, b: Tensor) -> Tensor:
    """Chebyshev distance (px) between flat pixel indices a (P,) and b (Q,): (P, Q)."""
    ra, ca, rb, cb = a // SIDE, a % SIDE, b // SIDE, b % SIDE
    return torch.maximum((ra[:, None] - rb[None]).abs(), (ca[:, None] - cb[None]).abs())


@dataclass(frozen=True)
class PixelPair:
    """"Is pixel ``first`` brighter than pixel ``second``?" — a high-frequency label from two pixels.

    first, second: flat pixel indices (row * 28 + column). The label is 1 where x[first] > x[second].
    Build it with :meth:`fit`, which chooses the pair on training images only.
    """

    first: int
    second: int

    def __post_init__(self) -> None:
        require_int("first", self.first, 0, SIDE * SIDE - 1)
        require_int("second", self.second, 0, SIDE * SIDE - 1)
        if self.first == self.second:
            raise ValueError(f"second={self.second} is not allowed: a pixel other than first={self.first}")

    @classmethod
    def fit(cls, x_train: Tensor, classes: Tensor, *, distance: int = 8, balance: float = 0.05) -> PixelPair:
        """The pair of interior pixels (rows and columns 4..23) at least ``distance`` px apart (along rows or
        columns) whose label is balanced on x_train (N, 784) (its share of 1s within ``balance`` of 1/2)
        and, among those, shares the fewest bits with ``classes`` (N,) (the bias-corrected mutual
        information, :func:`pretraining.analysis.information.binary_mutual_information_bits`); ties: the
        first pair in row-major order. Only pixels with ink (> 0) in at least a quarter of the images are
        candidates (a label of two mostly blank pixels is mostly "not brighter")."""
        x = _check_images("x_train", x_train).cpu()
        classes = classes.cpu()
        require_int("distance", distance, 1, len(_INTERIOR) - 1)
        require_float("balance", balance, ge=0, le=0.5)
        idx = _interior()
        idx = idx[(x[:, idx] > 0).double().mean(0) >= 0.25]
        g, n = x[:, idx], len(x)                                           # (N, P)
        share = torch.cat([(g[:, rows, None] > g[:, None, :]).sum(0) for rows in torch.arange(len(idx)).split(16)]) / n
        ok = (_apart(idx, idx) >= distance) & ((share - 0.5).abs() <= balance)   # (P, P) candidate pairs
        pairs = ok.nonzero()                                               # (Q, 2), row-major order
        if len(pairs) == 0:
            raise ValueError(f"no pair of interior pixels {distance} px apart gives a label within balance={balance} "
                             "of 1/2; allow a larger balance or a smaller distance")
        mi = torch.cat([binary_mutual_information_bits(g[:, q[:, 0]] > g[:, q[:, 1]], classes)
                        for q in pairs.split(1024)])
        i, j = pairs[int(mi.argmin())].tolist()
        return cls(int(idx[i]), int(idx[j]))

    def describe(self) -> str:
        """'pixel (row 21, column 14) brighter than pixel (row 11, column 12)'."""
        (r1, c1), (r2, c2) = divmod(self.first, SIDE), divmod(self.second, SIDE)
        return f"pixel (row {r1}, column {c1}) brighter than pixel (row {r2}, column {c2})"

    def __call__(self, x: Tensor) -> Tensor:
        """Labels (N,) int64 of images x (N, 784): 1 where x[:, first] > x[:, second]."""
        x = _check_images("x", x)
        return (x[:, self.first] > x[:, self.second]).long()


@dataclass(frozen=True)
class PixelParity:
    """The parity of a few thresholded pixels: 1 where an odd number of ``pixels`` exceed ``threshold``.

    pixels: flat pixel indices, increasing. Build it with :meth:`fit` (chosen on training images only).
    """

    pixels: tuple[int, ...]
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.pixels, tuple) or len(self.pixels) < 2 or list(self.pixels) != sorted(set(self.pixels)):
            raise ValueError(f"pixels={self.pixels!r} is not allowed: a tuple of at least 2 increasing pixel indices")
        for i in self.pixels:
            require_int("pixels entry", i, 0, SIDE * SIDE - 1)
        require_float("threshold", self.threshold, gt=0, lt=1)

    @classmethod
    def fit(cls, x_train: Tensor, *, k: int = 3, distance: int = 6, threshold: float = 0.5) -> PixelParity:
        """``k`` interior pixels (rows and columns 4..23), chosen greedily on x_train (N, 784): the pixel above
        ``threshold`` in the share of images closest to 1/2, then the next closest at least ``distance`` px
        (along rows or columns) from every one chosen, and so on (ties: row-major order)."""
        x = _check_images("x_train", x_train).cpu()
        require_int("k", k, 2, 8)
        require_int("distance", distance, 1, len(_INTERIOR) - 1)
        idx = _interior()
        order = idx[torch.argsort(((x[:, idx] > threshold).double().mean(0) - 0.5).abs(), stable=True)]
        chosen: list[int] = []
        for i in order.tolist():
            if all(int(_apart(torch.tensor([i]), torch.tensor([j]))) >= distance for j in chosen):
                chosen.append(i)
            if len(chosen) == k:
                return cls(tuple(sorted(chosen)), threshold)
        raise ValueError(f"no {k} interior pixels are {distance} px apart; ask for fewer pixels or a smaller distance")

    def describe(self) -> str:
        """'the parity of pixels (r, c), (r, c), (r, c) above 0.5'."""
        where = ", ".join(f"({i // SIDE}, {i % SIDE})" for i in self.pixels)
        return f"the parity of pixels (row, column) {where} above {self.threshold:g}"

    def __call__(self, x: Tensor) -> Tensor:
        """Labels (N,) int64 of images x (N, 784): the number of pixels above the threshold, modulo 2."""
        x = _check_images("x", x)
        return ((x[:, list(self.pixels)] > self.threshold).sum(1) % 2).long()


def chance_error(y_train: Tensor, y_test: Tensor) -> float:
    """The test error of always answering the most frequent training label (ties: the smallest): the
    error a classifier that learned nothing from the images would make. y_train, y_test: (N,) int64."""
    if y_train.dim() != 1 or len(y_train) == 0 or y_test.dim() != 1 or len(y_test) == 0:
        raise ValueError("y_train and y_test must be non-empty (N,) label tensors")
    majority = int(torch.bincount(y_train.cpu()).argmax())
    return float((y_test.cpu() != majority).double().mean())


def labelling_info(sets: Mapping[str, Subset], classes: Mapping[str, Tensor]) -> dict:
    """What one labelling is: {"n_classes", "majority_train", "majority_test" (share of the most frequent
    training label on the training and the test images), "chance" (:func:`chance_error`), "bits" (entropy
    of the training labels), "mi_class_train", "mi_class_test" (bias-corrected mutual information, bits,
    with the class of the same images)}. sets: {"train", "test", ...} subsets with this labelling's
    labels; classes: {"train", "test"}: (N,) the class of those images."""
    y_train, y_test = sets["train"].y.cpu(), sets["test"].y.cpu()
    counts = torch.bincount(y_train)
    majority = int(counts.argmax())
    return {"n_classes": max(2, int(y_train.max()) + 1), "majority_train": float(counts[majority] / len(y_train)),
            "majority_test": float((y_test == majority).double().mean()), "chance": chance_error(y_train, y_test),
            "bits": entropy_bits(y_train),
            **{f"mi_class_{part}": mutual_information_bits(sets[part].y.cpu(), classes[part].cpu())
               for part in ("train", "test")}}


def world_data(world: ControlledWorld, sizes: Mapping[str, int], seed: int) -> dict[str, Subset]:
    """The controlled world as a data set: per split ("train", "valid", "test") ``sizes[split]`` images
    rendered from causes drawn with seed ``seed + 2, 3, 4``, labelled by their class cause (a
    :class:`Subset` (n, 784) on the CPU each)."""
    out = {}
    for part, offset in _WORLD_SPLITS.items():
        causes = world.sample_causes(sizes[part], seed=seed + offset)
        out[part] = Subset(world.render(causes), causes["class"])
    return out

# ============================================================================ label budget
def labelled_subsets(n_total: int, n_labels: int, seeds: Sequence[int]) -> Tensor:
    """Which training examples are labelled: (S, n_labels) int64 row indices, one row per seed.

    Row s is the first ``n_labels`` entries of a permutation of range(n_total) drawn from
    ``generator(seeds[s], 0x5EB5E7, n_total)``; so for one seed the subsets are nested (the
    50 labelled examples are among the 100), and they do not depend on the labelling.
    """
    n_total = require_int("n_total", n_total, 1)
    n_labels = require_int("n_labels", n_labels, 1, n_total)
    seeds = validate_seeds(seeds)
    return torch.stack([torch.randperm(n_total, generator=generator(s, _SUBSET_DOMAIN, n_total))[:n_labels]
                        for s in seeds])


def budget_epoch(n_labels: int, epoch_examples: int, batch_size: int) -> tuple[int, int]:
    """The minibatch and the epoch of one label budget: (batch, repeats).

    The batch is min(batch_size, n_labels) examples. An epoch trains on at least ``epoch_examples``
    examples: a budget with fewer labels repeats them ``repeats`` = ceil(epoch_examples / n_labels)
    times within the epoch (each example ``repeats`` times in one shuffled pass), so every budget is
    validated, and its patience counted, after a comparable amount of training; a budget with enough
    labels has repeats = 1 (a plain epoch).
    """
    n_labels = require_int("n_labels", n_labels, 1)
    epoch_examples = require_int("epoch_examples", epoch_examples, 1)
    batch = min(require_int("batch_size", batch_size, 1), n_labels)
    return batch, math.ceil(epoch_examples / n_labels)


def budget_config(n_labels: int, epochs: int, epoch_examples: int, batch_size: int,
                  selection: SelectionConfig) -> tuple[FinetuneConfig, int]:
    """One label budget's fine-tuning settings and its repeats per epoch (:func:`budget_epoch`).

    The config has the epoch budget ``epochs`` and the budget's batch; its rate is the grid's first
    (:func:`pretraining.core.selection.select_and_train` replaces it by the rates it tries).
    """
    batch, repeats = budget_epoch(n_labels, epoch_examples, batch_size)
    return FinetuneConfig(epochs=epochs, lr=selection.lr_grid[0], batch_size=batch), repeats


def labelled_data(train: Subset, n_labels: int, repeats: int = 1) -> TrainData:
    """Each member's labelled training examples, for :func:`pretraining.core.selection.select_and_train`.

    data(seeds) -> (x (M, repeats * n_labels, V), y (M, repeats * n_labels)): member m gets the
    :func:`labelled_subsets` row of seeds[m], repeated ``repeats`` times. With every example labelled
    (n_labels = len(train)) the subsets differ only in their order, so the examples are one shared
    :class:`Subset` (train repeated ``repeats`` times) instead.
    """
    n_labels = require_int("n_labels", n_labels, 1, len(train))
    repeats = require_int("repeats", repeats, 1)
    if n_labels == len(train):
        return Subset(train.x.repeat(repeats, 1), train.y.repeat(repeats))

    def data(seeds: Sequence[int]) -> tuple[Tensor, Tensor]:
        idx = labelled_subsets(len(train), n_labels, seeds).to(train.x.device).repeat(1, repeats)
        return train.x[idx], train.y[idx]

    return data


def budget_makers(stack: Stack, n_classes: int,
                  seeds: Sequence[int]) -> dict[str, Callable[[Sequence[int]], Classifier]]:
    """make(run_seeds) per initialisation (:data:`INITS`): a fresh :class:`Classifier` with one member
    per entry of run_seeds (each one of ``seeds``; repeats allowed), for the fair-fight protocol.

    "pretrained": the hidden layers of the seed's own member of ``stack`` (S = len(seeds) members,
    member s pre-trained with seeds[s]); "random": the same shape, uniform in +-1/sqrt(fan_in). Both
    draw the softmax layer from the seed's ("init", depth + 1) stream, so the two nets of a seed share
    their softmax initialisation (and, trained with the same seed, their labelled examples and
    minibatch order) and differ only in the initialisation of their hidden layers. "linear": no hidden
    layer, a softmax on the raw pixels (784 -> n_classes, from the seed's ("init", 1) stream): the
    baseline that needs no features at all.
    """
    seeds = validate_seeds(seeds, stack.n_members)
    n_classes = require_int("n_classes", n_classes, 2)
    pre = Classifier.from_stack(stack, n_classes, seeds)
    where = {s: i for i, s in enumerate(seeds)}

    def pretrained(run_seeds: Sequence[int]) -> Classifier:
        unknown = [s for s in run_seeds if s not in where]
        if unknown:
            raise ValueError(f"seeds {unknown} are not allowed; the stack was pre-trained for seeds {list(seeds)}")
        idx = [where[s] for s in run_seeds]
        return Classifier([W[idx] for W in pre.weights], [b[idx] for b in pre.biases])

    def random(run_seeds: Sequence[int]) -> Classifier:
        return Classifier.random(stack.sizes + [n_classes], run_seeds, device=stack.device, dtype=pre.dtype)

    def linear(run_seeds: Sequence[int]) -> Classifier:
        return Classifier.random([stack.sizes[0], n_classes], run_seeds, device=stack.device, dtype=pre.dtype)

    return {"pretrained": pretrained, "random": random, "linear": linear}


def _check_labels(n_classes: int, *sets: Subset) -> None:
    for s in sets:
        if int(s.y.max()) >= n_classes:
            raise ValueError(f"labels must be below n_classes={n_classes}")


def fair_budget(make: Callable[[Sequence[int]], Classifier], train: Subset, valid: Subset, test: Subset,
                n_labels: int, seeds: Sequence[int], selection: SelectionConfig, config: FinetuneConfig,
                repeats: int, *, progress: bool = False) -> tuple[dict[str, Tensor], dict]:
    """One (labelling, initialisation, label budget), trained by the fair-fight protocol; tested.

    make: :func:`budget_makers`' function of the initialisation; train, valid, test: images x (N, 784)
    with the labels ``y`` of this labelling; each seed's labelled examples are :func:`labelled_data`
    of ``train``; valid: the fixed validation set that chooses the rate and the stopping epoch
    (:func:`pretraining.core.selection.select_and_train` with ``selection``; config and repeats:
    :func:`budget_config`, its ``epochs`` the epoch budget; a seed that did not converge is run again
    alone with :data:`~pretraining.core.selection.LONGER_RUN` times the budget, to say what it would
    need); the test set is only measured, at each seed's best validation epoch. Returns ({"error",
    "nll": (S,) test error in [0, 1] and test NLL}, {"selection": the
    :meth:`~pretraining.core.selection.Selection.record`, "curves": {"train_nll", "valid_error"}: per
    seed, one value per epoch run}) (the compute of the condition's cache entry).
    """
    n_classes = make(list(seeds[:1])).sizes[-1]
    _check_labels(n_classes, train, valid, test)
    sel = select_and_train(make, labelled_data(train, n_labels, repeats), valid, config, selection, seeds,
                           longer=LONGER_RUN, progress=progress)
    ev = evaluate(sel.clf, test.x, test.y)
    return ({"error": ev.error.cpu(), "nll": ev.nll.cpu()},
            {"selection": sel.record(), "curves": {k: sel.curves[k] for k in ("train_nll", "valid_error")}})


def trajectory(makers: Mapping[str, Callable[[Sequence[int]], Classifier]], train: Subset, test: Subset,
               n_labels: int, seeds: Sequence[int], chosen: Mapping[str, Mapping], config: FinetuneConfig,
               repeats: int) -> tuple[dict[str, Tensor], dict]:
    """The training that the fair-fight protocol chose for one budget, replayed with its NLLs recorded.

    makers: :func:`budget_makers`; chosen[init]: for "pretrained" and "random", that condition's selection record (its rate "lr"
    and per seed "epochs_run"); config, repeats: the budget's :func:`budget_config`. All 2S nets (the
    pre-trained seeds, then the random ones, each at its condition's chosen rate) train as one batched
    run on their seeds' labelled examples with the same epochs, minibatches and order as in the
    selection, so each follows the path that was selected;
    after every epoch the NLL on the seed's labelled examples and on the test set is recorded. The
    test NLL describes, it chooses nothing. Returns ({"train_nll", "test_nll": (E, 2, S)}, {}), E the
    longest run; a net's values after its own last epoch repeat that epoch's.
    """
    seeds = validate_seeds(seeds)
    S = len(seeds)
    runs = [torch.tensor(chosen[init]["epochs_run"]) for init in _PAIRED]
    E = int(max(int(r.max()) for r in runs))
    clf = Classifier.stack_members([makers[init](seeds) for init in _PAIRED])
    fit, look = labelled_data(train, n_labels, repeats), labelled_data(train, n_labels)

    def tensors(data: TrainData) -> tuple[Tensor, Tensor]:
        if isinstance(data, Subset):
            return data.x, data.y
        x, y = data(seeds)
        return torch.cat([x, x]), torch.cat([y, y])                    # (2S, n, V): pairs share examples

    (x, y), (xl, yl) = tensors(fit), tensors(look)
    rates = tuple(float(chosen[init]["lr"]) for init in _PAIRED for _ in seeds)
    config = dataclasses.replace(config, epochs=E, lr=rates)
    train_nll, test_nll = [], []

    def on_epoch(epoch: int, net: Classifier, _nll: Tensor) -> None:
        train_nll.append(evaluate(net, xl, yl).nll.cpu())
        test_nll.append(evaluate(net, test.x, test.y).nll.cpu())

    finetune(clf, x, y, config, list(seeds) * 2, on_epoch=on_epoch, divergence="continue", progress=False)
    last = torch.cat(runs) - 1                                         # (2S,) each net's last epoch
    idx = torch.minimum(torch.arange(E).unsqueeze(1), last.unsqueeze(0))   # (E, 2S)
    return ({"train_nll": torch.stack(train_nll).gather(0, idx).reshape(E, 2, S),
             "test_nll": torch.stack(test_nll).gather(0, idx).reshape(E, 2, S)}, {})


@dataclass
class BudgetRun:
    """The trajectory budget of one labelling: row 0 the pre-trained nets, row 1 the random ones.

    train_nll, test_nll: (E, 2, S) NLL on the labelled examples and on the test set after each epoch
    of the replayed training (:func:`trajectory`; after a net's last epoch its values repeat).
    epochs_run, best_epoch: (2, S) per net (the reported net is the one at its best validation epoch).
    """

    train_nll: Tensor
    test_nll: Tensor
    epochs_run: Tensor
    best_epoch: Tensor


def matched_test_nll(train_nll: Tensor, test_nll: Tensor, level: float | None = None) -> tuple[float, Tensor]:
    """Each member's test NLL at the moment its training NLL first reaches ``level``.

    train_nll, test_nll: (E, M) per recorded epoch. ``level`` defaults to the highest of the
    members' lowest training NLLs, the lowest level every member reaches, so the members are
    compared at the same fit to their training labels. Between the last recorded point above the
    level and the first at or below it, the test NLL is interpolated linearly in the training NLL
    (a member already below the level at its first point gets that point's test NLL).
    Returns (level, (M,) test NLLs).
    """
    if not isinstance(train_nll, Tensor) or train_nll.dim() != 2 or train_nll.shape != test_nll.shape:
        raise ValueError("train_nll and test_nll must be tensors of the same shape (E, M)")
    if train_nll.shape[0] == 0:
        raise ValueError("train_nll has no recorded epochs (E = 0)")
    train_nll, test_nll = train_nll.double(), test_nll.double()
    reach = float(train_nll.min(dim=0).values.max())
    level = reach if level is None else require_float("level", level, ge=0.0)
    if level < reach:
        raise ValueError(f"level={level} is not reached by every member; use a level >= {reach:.4g}")
    first = (train_nll <= level).to(torch.int8).argmax(dim=0, keepdim=True)   # (1, M)
    before = (first - 1).clamp(min=0)
    t1, t0 = train_nll.gather(0, first), train_nll.gather(0, before)
    y1, y0 = test_nll.gather(0, first), test_nll.gather(0, before)
    w = torch.where(t0 > t1, (t0 - level) / (t0 - t1).clamp(min=1e-12), torch.ones_like(t0))
    return level, (y0 + w.clamp(0, 1) * (y1 - y0)).squeeze(0)


def matched_summary(traj: Mapping[str, BudgetRun]) -> dict[str, dict]:
    """Per labelling: the pre-trained and random nets compared at matched training NLL, seed by seed.

    traj[labelling]: a :class:`BudgetRun` with a recorded trajectory (E >= 1 epochs, (E, 2, S)
    NLLs, S >= 2). Returns per labelling {"level": the common training NLL (:func:`matched_test_nll`
    over all 2S nets), "pretrained", "random": mean test NLL at that level, "common_epoch": the
    fewest epochs any of the 2S nets ran, "train_nll_at_common": {init: mean training NLL after that
    many epochs} (the optimisation reading: who fits faster, each at its chosen rate), and of the S
    paired differences random -
    pre-trained (the two nets of a seed share labelled examples, softmax init and minibatch order):
    "n", "difference_mean", "difference_ci95" (95 % Student-t interval of their mean) and
    "difference_p" (two-sided Wilcoxon signed-rank p, raw)}.
    """
    matched = {}
    for lab, run_ in traj.items():
        n_epochs, n_seeds = run_.train_nll.shape[0], run_.train_nll.shape[-1]
        level, m = matched_test_nll(run_.train_nll.reshape(n_epochs, -1), run_.test_nll.reshape(n_epochs, -1))
        common = int(run_.epochs_run.min())
        m = m.reshape(2, n_seeds)
        diff = (m[1] - m[0]).numpy()                                   # paired: random - pre-trained, per seed
        matched[lab] = {"level": level, "pretrained": float(m[0].mean()), "random": float(m[1].mean()),
                        "common_epoch": common,
                        "train_nll_at_common": {init: float(run_.train_nll[common - 1, i].mean())
                                                for i, init in enumerate(_PAIRED)},
                        "n": int(n_seeds), "difference_mean": float(diff.mean()),
                        "difference_ci95": list(stats.t_interval(diff)), "difference_p": stats.wilcoxon(diff)["p"]}
    return matched




def advantage_summary(error_pretrained: np.ndarray, error_random: np.ndarray, chance: float) -> dict:
    """The advantage of pre-training: paired differences d = error(random) - error(pretrained), seed by seed,
    in points and relative to chance.

    error_pretrained, error_random: (K, S) test errors (fractions) per budget and seed, S >= 2,
    member s of both from the same seed; chance: the labelling's chance error (:func:`chance_error`, > 0).
    Per budget (lists over the K budgets): "mean" advantage over the seeds, "ci95" [low, high] (95 %
    Student-t interval of the mean of the S differences), "p" (two-sided Wilcoxon signed-rank p of the
    S differences, raw: not corrected for the K budgets), "relative" and "relative_ci95" (the same for
    d / chance: the share of the chance error that pre-training removes; comparable across labellings
    with different numbers of classes), "significant" (raw p < :data:`claims.ALPHA` and mean > 0; a
    description, not a decision). Per budget and seed, the claim's quantities: "diff" (K, S) d and
    "relative_diff" (K, S) d / chance, as lists.
    """
    pre, rnd = np.asarray(error_pretrained, dtype=np.float64), np.asarray(error_random, dtype=np.float64)
    if pre.ndim != 2 or pre.shape != rnd.shape or pre.shape[1] < 2:
        raise ValueError(f"errors must both have shape (K, S) with S >= 2 seeds; got {pre.shape} and {rnd.shape}")
    chance = require_float("chance", chance, gt=0, le=1)
    diff = rnd - pre
    relative = diff / chance
    p = [stats.wilcoxon(d)["p"] for d in diff]
    mean = diff.mean(1)
    return {"mean": mean.tolist(), "ci95": [list(stats.t_interval(d)) for d in diff], "p": p,
            "relative": relative.mean(1).tolist(), "relative_ci95": [list(stats.t_interval(d)) for d in relative],
            "significant": [bool(pk < claims.ALPHA and m > 0) for pk, m in zip(p, mean)],
            "diff": diff.tolist(), "relative_diff": relative.tolist()}


def budget_parts(adv: Mapping[str, Mapping]) -> list[claims.Part]:
    """The parts of C5 from the :func:`advantage_summary` of every labelling of :data:`LABELLINGS` (K budgets,
    the same S seeds each).

    Every part is the two-sided Wilcoxon signed-rank test of a per-seed difference r_s that is positive
    when the seed supports the claim (effect = its mean, with a 95 % t interval; the pre-trained and the
    random net of a seed share their labelled examples, softmax initialisation and minibatch order), built
    from the advantage relative to chance, A = (error(random) - error(pre-trained)) / chance error, of a
    labelling at a budget; :func:`pretraining.book.claims.decide` Holm-adjusts the tested parts, and a part
    holds when the adjusted p < :data:`claims.ALPHA` and the mean and the signed ranks point the claim's way:

    (a) pre-training helps cause labels: r_s = the mean of A over the two cause labellings (:data:`CAUSE`)
    and the K budgets; (b-pair), (b-parity) it helps each high-frequency pixel label of
    :data:`HIGH_FREQUENCY` less or not at all: r_s = the mean over budgets of A(class_high) - A(that label)
    (labels of the same chance rate on the same digits); (c) the difference is largest when labels are
    few: with D = A(class_high) - the mean of A over :data:`HIGH_FREQUENCY`, r_s = D at the smallest budget
    minus D at the largest; (a-world) in the controlled world, pre-training helps
    the cause label: r_s = the mean over budgets of A(world_cause); (b-world) ... and helps its pixel
    label less: r_s = the mean over budgets of A(world_cause) - A(world_pixel).
    With fewer than :data:`claims.MIN_PAIRS` seeds a part is not tested.
    """
    rel = {lab: np.asarray(adv[lab]["relative_diff"], dtype=np.float64) for lab in LABELLINGS}
    shapes = {r.shape for r in rel.values()}
    if len(shapes) != 1 or rel["class"].shape[0] < 2:
        raise ValueError(f"every labelling needs the same K >= 2 budgets and S seeds, got shapes {sorted(shapes)}")
    k = rel["class"].shape[0]
    gap = rel["class_high"] - np.mean([rel[lab] for lab in HIGH_FREQUENCY], axis=0)      # (K, S)
    world_gap = rel["world_cause"] - rel["world_pixel"]
    tests = [
        ("a", "pre-training helps labels caused by the world (the digit class, and digit ≥ 5)",
         np.mean([rel[lab] for lab in CAUSE], axis=0).mean(0),
         f"per seed, the advantage of pre-training relative to chance, averaged over the 2 cause labellings and "
         f"the {k} budgets (positive: pre-training lowered the error)"),
        *[(f"b-{lab.removeprefix('pixel_')}", f"it helps the high-frequency {LABELLING_NAMES[lab].split(' (')[0]} "
           "label less or not at all", (rel["class_high"] - rel[lab]).mean(0),
           f"per seed, the advantage relative to chance with digit ≥ 5 minus that with the "
           f"{LABELLING_NAMES[lab].split(' (')[0]} label (both binary), averaged over the {k} budgets (positive: "
           "pre-training helped the pixel label less)") for lab in HIGH_FREQUENCY],
        ("c", "the difference is largest when labels are few",
         gap[0] - gap[-1],
         "per seed, the advantage relative to chance with digit ≥ 5 minus its mean over the two high-frequency "
         "pixel labels, with the fewest labels minus with the most (positive: the difference shrinks as labels "
         "grow)"),
        ("a-world", "in the controlled world, pre-training helps the label that is a function of the causes",
         rel["world_cause"].mean(0),
         f"per seed, the advantage relative to chance with the world's class ≥ 5 label, averaged over the {k} "
         "budgets"),
        ("b-world", "in the controlled world, it helps the label that is a function of the pixels less",
         world_gap.mean(0),
         f"per seed, the advantage relative to chance with the world's cause label minus that with its pixel-pair "
         f"label, averaged over the {k} budgets"),
    ]
    parts = []
    for key, claim, r, what in tests:
        d = stats.paired_difference(r)
        parts.append(claims.paired(key, claim, d, f"{what}: {claims.paired_text(d, '+.3f')} (fractions of the chance "
                                                  f"error)", seeds_positive=d["positive"], n_budgets=k))
    return parts


VERDICT_TEXT = {
    "supported": "This is the pattern the bandwidth argument predicts: pre-training helps when the label names "
                 "a cause of the image, and less (or not at all) when it is a high-frequency pixel function.",
    "partly supported": "The pattern is only partly the one the bandwidth argument predicts: some parts hold, "
                        "others do not.",
    "not supported": "This is not the pattern the bandwidth argument predicts: no tested part holds.",
    "inconclusive": "No part could be tested at this scale (too few seeds, or settings that did not converge).",
}
"""The sentence after the label-budget numbers, per verdict of the parts (see :func:`verdict_sentence`)."""


def verdict_sentence(parts: Sequence[claims.Part]) -> str:
    """What the label-budget numbers say: :data:`VERDICT_TEXT` of the parts' verdict, then each part's status
    with its effect (a fraction of the chance error) and Holm-adjusted p, or why it was not tested.

    parts: :func:`budget_parts` after :func:`gate_unconverged`, as they come (the sentence decides them with
    Holm, :func:`pretraining.book.claims.decide`, as the chapter's ``finish`` does). A part not tested keeps
    its measured effect in the sentence, with the reason (the settings that did not converge are named by
    the training section's :func:`pretraining.book.fairness.convergence_sentence`).
    """
    parts = claims.decide(parts)
    verdict = claims.verdict(parts)

    def effect(prt: claims.Part) -> str:
        return (f"mean {prt.effect:+.1%} of the chance error, 95 % interval {prt.ci95[0]:+.1%} to "
                f"{prt.ci95[1]:+.1%}")

    def said(prt: claims.Part) -> str:
        if prt.status == claims.NOT_TESTED:
            why = ("a setting it compares did not converge" if "not_converged" in prt.numbers
                   else f"with {prt.n} seeds it cannot be")
            return f"({prt.key}) not tested ({why}; measured: {effect(prt)})"
        return f"({prt.key}) {prt.status}: {effect(prt)}, Holm-adjusted p = {prt.p_holm:.2g}"

    return f"{VERDICT_TEXT[verdict]} (Verdict: {verdict} — " + "; ".join(said(p) for p in parts) + ".)"


_OPT_TEXT = {
    (True, True): "The pre-trained nets fit their training labels faster for both labellings, so part of "
                  "their advantage may be an optimisation effect.",
    (True, False): "The pre-trained nets fit the class labels faster, but not the pixel-pair labels.",
    (False, True): "The pre-trained nets fit the pixel-pair labels faster, but not the class labels.",
    (False, False): "The pre-trained nets do not fit their training labels faster.",
}

_TRAJ_TEXT = {
    (True, True): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                  "Wilcoxon p below {alpha:g}) for both labellings: a regularisation effect, as Erhan et al. found, "
                  "but not one specific to cause labels.",
    (True, False): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                   "Wilcoxon p below {alpha:g}) for class labels, a regularisation effect as Erhan et al. found, but "
                   "not for pixel-pair labels.",
    (False, True): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                   "Wilcoxon p below {alpha:g}) only for pixel-pair labels, not for class labels, unlike in Erhan "
                   "et al.",
    (False, False): "At matched training NLL the pre-trained nets do not reach a clearly lower test NLL (seed "
                    "by seed, no Wilcoxon p below {alpha:g} with a lower test NLL) for either labelling: no clear "
                    "regularisation effect at this scale, unlike in Erhan et al.",
    "few": "With {n} seeds the matched comparison cannot tell a regularisation effect from chance (a paired "
           "test needs at least {min_pairs} seeds; with {n} the smallest possible p is {floor:.2g}).",
}


def optimisation_sentence(matched: Mapping[str, Mapping]) -> str:
    """Whether the pre-trained nets fit their training labels faster: a lower mean training NLL after the
    same number of epochs ("train_nll_at_common"), per role of :data:`TRAJECTORY` ("cause": the class,
    "pixel": the pixel pair), from :func:`matched_summary`."""
    faster = {role: matched[role]["train_nll_at_common"]["pretrained"] < matched[role]["train_nll_at_common"]["random"]
              for role in TRAJECTORY}
    return _OPT_TEXT[faster["cause"], faster["pixel"]]


def regularisation_sentence(matched: Mapping[str, Mapping]) -> str:
    """Whether the pre-trained nets generalise better at the same fit, per role of :data:`TRAJECTORY`, from
    :func:`matched_summary`: the seed-by-seed difference of the matched test NLLs (random -
    pre-trained) has a positive mean and a raw two-sided Wilcoxon p below :data:`claims.ALPHA`. With
    fewer than :data:`claims.MIN_PAIRS` seeds the sentence says the comparison cannot tell."""
    n = min(int(matched[role]["n"]) for role in TRAJECTORY)
    if n < claims.MIN_PAIRS:
        return _TRAJ_TEXT["few"].format(n=n, min_pairs=claims.MIN_PAIRS, floor=stats.min_wilcoxon_p(n))
    regular = {role: matched[role]["difference_mean"] > 0 and matched[role]["difference_p"] < claims.ALPHA
               for role in TRAJECTORY}
    return _TRAJ_TEXT[regular["cause"], regular["pixel"]].format(alpha=claims.ALPHA)


# ============================================================================ tables
def labelling_table(info: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per labelling of ``info`` ({labelling: :func:`labelling_info`}): classes, the share of the most
    frequent training label on the training and test images, the chance error, bits, mutual information
    with the class (training, test). Shown with :data:`LABELLING_FORMAT`."""
    return pd.DataFrame([{"labelling": LABELLING_NAMES[lab], "classes": v["n_classes"],
                          "majority share (train)": v["majority_train"], "majority share (test)": v["majority_test"],
                          "chance error": v["chance"], "bits": v["bits"],
                          "I(label; class), train": v["mi_class_train"], "I(label; class), test": v["mi_class_test"]}
                         for lab, v in info.items()])


LABELLING_FORMAT = {"majority share (train)": "{:.1%}", "majority share (test)": "{:.1%}", "chance error": "{:.1%}",
                    "bits": "{:.2f}", "I(label; class), train": "{:.3f}", "I(label; class), test": "{:.3f}"}


def budget_table(n_labels: Sequence[int], errors: Mapping[str, Mapping[str, np.ndarray]],
                 adv: Mapping[str, Mapping], info: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per labelling and budget: mean test errors (%) of the three initialisations, the chance error,
    the pre-trained and random errors relative to chance, the advantage of pre-training in points with its
    95 % t interval and raw Wilcoxon p, and relative to chance with its interval (as text).

    errors[labelling][init]: (K, S) fractions; adv[labelling]: :func:`advantage_summary`;
    info[labelling]: :func:`labelling_info`. Shown with :data:`BUDGET_FORMAT`.
    """
    rows = []
    for lab in errors:
        chance = info[lab]["chance"]
        for k, n in enumerate(n_labels):
            ci, rci = adv[lab]["ci95"][k], adv[lab]["relative_ci95"][k]
            pre, rnd = errors[lab]["pretrained"][k].mean(), errors[lab]["random"][k].mean()
            rows.append({"labelling": lab, "labels": n,
                         "pre-trained error %": 100 * pre, "random error %": 100 * rnd,
                         "linear error %": 100 * errors[lab]["linear"][k].mean(), "chance error %": 100 * chance,
                         "pre-trained / chance": pre / chance, "random / chance": rnd / chance,
                         "advantage (points)": 100 * adv[lab]["mean"][k],
                         "95 % t interval (points)": f"{100 * ci[0]:+.2f}\u00a0to\u00a0{100 * ci[1]:+.2f}",
                         "Wilcoxon p (raw)": adv[lab]["p"][k],
                         "advantage / chance": f"{adv[lab]['relative'][k]:+.1%}",
                         "95 % t interval (/ chance)": f"{rci[0]:+.1%}\u00a0to\u00a0{rci[1]:+.1%}"})
    return pd.DataFrame(rows)


BUDGET_FORMAT = {"labels": "{:,}", "pre-trained error %": "{:.2f}", "random error %": "{:.2f}",
                 "linear error %": "{:.2f}", "chance error %": "{:.1f}", "pre-trained / chance": "{:.3f}",
                 "random / chance": "{:.3f}", "advantage (points)": "{:+.2f}", "Wilcoxon p (raw)": "{:.2g}"}
"""How :func:`budget_table` is shown: counts as integers, errors and points to 0.01 (the test set's
resolution is 0.05 % of 2,000 digits), ratios to 0.001, p-values to two significant digits."""


def literature_table(sizes: Sequence[int], n_labels: int, training: str, error_random: float,
                     error_pretrained: float) -> pd.DataFrame:
    """This chapter's all-label cause-label errors (fractions) beside :data:`LAROCHELLE2009_TABLE3`
    at the same depth (``len(sizes) - 1`` hidden layers; "n/a" when the paper has no such depth):
    one row per source, errors as text in %; ``training`` says how this book's nets were trained."""
    ref = LAROCHELLE2009_TABLE3
    depth = len(sizes) - 1
    err = ref.numbers["error"]

    def pct(v: object) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    return pd.DataFrame({
        "source": ["this book", "Larochelle et al. (2009), Table 3"],
        "set-up": [f"{'-'.join(map(str, sizes))} net, {n_labels:,} labels, {training}",
                   f"{ref.data}; {plural(depth, 'hidden layer')}"],
        "random init, test error %": [pct(100 * error_random), pct(err["random"].get(depth))],
        "pre-trained (RBM), test error %": [pct(100 * error_pretrained), pct(err["rbm"].get(depth))],
    })


def world_table(report: Mapping) -> pd.DataFrame:
    """One row per cause, the image, and each label of :func:`world_report`: its bits and the
    fraction of the pixel variance it explains."""
    rows = [{"cause or label": f"cause: {k}", "bits": v["bits"], "pixel variance explained": v["variance_explained"]}
            for k, v in report["causes"].items()]
    rows.append({"cause or label": "the image (all causes together)", "bits": report["image_bits"],
                 "pixel variance explained": 1.0})
    rows += [{"cause or label": k, "bits": v["bits"], "pixel variance explained": v["variance_explained"]}
             for k, v in report["labels"].items()]
    return pd.DataFrame(rows)


def world_mi_table(report: Mapping) -> pd.DataFrame:
    """One row per label of :func:`world_report`, one column per cause: I(label; cause) in bits."""
    return pd.DataFrame([{"label": k, **v["mi_bits"]} for k, v in report["labels"].items()])


def _styled(table: pd.DataFrame, formats: Mapping[str, str], caption: str, text: int = 1) -> pd.io.formats.style.Styler:
    """A table as the page shows it: no index, ``formats`` per column, a caption above, some padding;
    the first ``text`` columns left-aligned (words), the others right-aligned with their headers (numbers)."""
    right = {c: [{"selector": "th, td", "props": [("text-align", "right")]}] for c in table.columns[text:]}
    return (table.style.format(formats).hide(axis="index").set_caption(caption)
            .set_table_styles([{"selector": "th, td", "props": [("padding", "0.25em 0.4em")]},
                               {"selector": "caption", "props": [("caption-side", "top"), ("text-align", "left"),
                                                                 ("font-style", "italic"), ("padding", "0.3em 0")]}])
            .set_table_styles(right, overwrite=False))




# ============================================================================ controlled world
def world_report(world: ControlledWorld, x: Tensor, causes: Mapping[str, Tensor],
                 labels: Mapping[str, Tensor]) -> dict:
    """How many bits each cause and label carries, and how much of the image each explains.

    x (n, 784): images rendered from ``causes``; labels: {name: (n,) int64}, e.g. the class label
    and a pixel label. Returns {"causes": {name: {"bits", "variance_explained"}}, "image_bits":
    bits of all causes together (the image is a function of them), "labels": {name: {"bits" (its
    empirical entropy), "mi_bits": {cause: I(label; cause)}, "variance_explained"}}}.
    Variance explained is the adjusted :func:`~pretraining.analysis.information.explained_variance`;
    mutual information is the bias-corrected
    :func:`~pretraining.analysis.information.mutual_information_bits`.
    """
    bits = world.config.bits()
    report = {"causes": {k: {"bits": bits[k], "variance_explained": explained_variance(x, v)}
                         for k, v in causes.items()},
              "image_bits": bits["all"], "labels": {}}
    for name, y in labels.items():
        report["labels"][name] = {
            "bits": entropy_bits(y),
            "mi_bits": {k: mutual_information_bits(y, v) for k, v in causes.items()},
            "variance_explained": explained_variance(x, y),
        }
    return report


# ============================================================================ figures
_INIT_STYLE = {"pretrained": {"color": "#1f77b4", "marker": "o", "label": "pre-trained"},   # tab10 blue
               "random": {"color": "#ff7f0e", "marker": "s", "label": "random"}}          # tab10 orange


def world_figure(world: ControlledWorld, base: Mapping[str, int]) -> Figure:
    """One row per cause: the image of ``base`` with that one cause run through (up to 10 of) its values."""
    names = {"class": "digit class", "exemplar": "exemplar (style)", "deformation": "deformation (pose)",
             "width": "stroke width", "position": "position (shift)"}
    card = world.config.cardinalities()
    left = 1.75                                                   # inches for the row labels
    tile = (PAGE_WIDTH - left - 0.1) / 10
    with styled():
        fig, axes = plt.subplots(len(card), 10, figsize=(PAGE_WIDTH, tile * 1.08 * len(card) + 0.5), squeeze=False)
        for r, cause in enumerate(card):
            imgs = world.render(sweep_causes(world, cause, base)).reshape(-1, SIDE, SIDE)
            for c in range(10):
                ax = axes[r, c]
                ax.set_axis_off()
                if c < len(imgs):
                    ax.imshow(imgs[c].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, 0].text(-0.12, 0.5, f"{names[cause]}\n({card[cause]:,} values)", transform=axes[r, 0].transAxes,
                            ha="right", va="center", fontsize=10)
        fig.suptitle("Each row changes one cause; the others stay fixed")
        fig.subplots_adjust(left=left / PAGE_WIDTH, right=0.99, top=1 - 0.45 / fig.get_figheight(), bottom=0.01,
                            wspace=0.05, hspace=0.08)
    return fig


def causal_story_figure() -> Figure:
    """Two causal stories, one above the other, drawn as boxes and arrows (arrow width = bandwidth)."""
    with styled():
        fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 7.6))
        stories = [
            ("(a) The label names a cause of the image", "stuff in the world\n(digit identity, pose,\nstroke, position)",
             [("image", "high bandwidth\n(many bits per image)", 7.0),
              ("label", "low bandwidth\n(log2 10 = 3.3 bits)", 1.5)],
             "pre-train: invert world→image, then learn the few label bits"),
            ("(b) The label is a function of the pixels", "stuff in the world",
             [("image", "high bandwidth", 7.0)],
             "the label is computed from the image: learn image→label directly"),
        ]
        for ax, (title, world, arrows, note) in zip(axes, stories):
            ax.set_xlim(-0.3, 9.7)
            ax.set_ylim(-0.3, 10)
            ax.set_axis_off()
            ax.set_title(title)

            def box(xy, text, color, ax=ax):
                ax.add_patch(FancyBboxPatch((xy[0] - 1.6, xy[1] - 1.0), 3.2, 2.0, boxstyle="round,pad=0.15",
                                            fc=color, ec="0.3", lw=1.2))
                ax.text(*xy, text, ha="center", va="center", fontsize=10)

            box((2.0, 5.5), world, "#f3e3c3")
            box((6.6, 8.2), "image\n(784 pixels)", "#cfe2f3")
            box((6.6, 2.8), "label", "#d9ead3")
            for target, text, width in arrows:
                end = (4.9, 8.2) if target == "image" else (4.9, 2.8)
                ax.add_patch(FancyArrowPatch((3.7, 5.5), end, arrowstyle="-|>", mutation_scale=20,
                                             lw=width, color="0.25"))
                at = (3.4, 8.3) if target == "image" else (3.4, 2.6)
                ax.text(*at, text, ha="center", va="center", fontsize=10, color="0.2")
            if len(arrows) == 1:   # (b): the label hangs off the image
                ax.add_patch(FancyArrowPatch((6.6, 7.0), (6.6, 4.0), arrowstyle="-|>", mutation_scale=20,
                                             lw=1.5, color="0.25"))
                ax.text(6.85, 5.5, "a pixel function\n(top-left similar\nto bottom-right?)", fontsize=10,
                        va="center", color="0.2")
            ax.text(4.7, 0.3, note, ha="center", va="center", fontsize=10, style="italic")
        fig.tight_layout(h_pad=2.5)
    return fig


def example_digits_figure(x: Tensor, y: Tensor, pixel: Mapping[str, Tensor], pair: PixelPair, parity: PixelParity,
                          patch: PixelLabel) -> Figure:
    """Two digits of each class with the pixels of the pixel labels marked and every label in the title.

    x (N, 784) images, y (N,) classes, pixel: {"pixel_pair", "pixel_parity", "patch"}: (N,) their labels;
    pair, parity, patch: the labellers (pair: cyan squares, the first solid, the second dashed; parity:
    magenta circles; patch: orange outlines). The first two digits of each class are shown, in a grid of
    4 rows and 5 columns: rows 1-2 classes 0-4 (first and second digit), rows 3-4 classes 5-9.
    """
    _check_images("x", x)
    y = y.cpu()
    first_two = [torch.nonzero(y == c)[:2, 0].tolist() for c in range(10)]
    a, b, side = patch.offset, SIDE - patch.offset - patch.patch, patch.patch
    with styled():
        fig, axes = plt.subplots(4, 5, figsize=(PAGE_WIDTH, 8.0))
        for r in range(4):
            for c in range(5):
                ax, cls = axes[r, c], c + 5 * (r // 2)
                ax.set_axis_off()
                if r % 2 >= len(first_two[cls]):
                    continue
                i = first_two[cls][r % 2]
                ax.imshow(x[i].reshape(SIDE, SIDE).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                for q in (a, b):
                    ax.add_patch(plt.Rectangle((q - 0.5, q - 0.5), side, side, fill=False, ec="orange", lw=1.2))
                for j, style in ((pair.first, "-"), (pair.second, "--")):
                    ax.add_patch(plt.Rectangle((j % SIDE - 1, j // SIDE - 1), 2, 2, fill=False, ec="cyan", lw=1.5,
                                               ls=style))
                for j in parity.pixels:
                    ax.add_patch(plt.Circle((j % SIDE, j // SIDE), 1.2, fill=False, ec="magenta", lw=1.5))
                lab = {k: int(v[i]) for k, v in pixel.items()}
                ax.set_title(f"class {int(y[i])}\npair {lab['pixel_pair']} · parity {lab['pixel_parity']}\n"
                             f"patch {'similar' if lab['patch'] else 'differ'}", fontsize=10)
        fig.suptitle("The labels of each digit: class, pixel pair (cyan), parity (magenta), patch (orange)")
        fig.tight_layout()
    return fig


def _log_budget_axis(ax, n: np.ndarray) -> None:
    ax.set_xscale("log")
    ax.set_xticks(n, [f"{v:,}" for v in n], rotation=45 if len(n) > 7 else 0)   # many budgets: slanted labels
    ax.minorticks_off()
    ax.set_xlabel("number of labelled training examples (log scale)")


_LABELLING_STYLE = {   # cause labels solid, high-frequency pixel labels dashed, the smooth patch label dotted
    "class": dict(color=PALETTE[0], linestyle="-", marker="o"),
    "class_high": dict(color=PALETTE[2], linestyle="-", marker="s"),
    "pixel_pair": dict(color=PALETTE[1], linestyle="--", marker="^"),
    "pixel_parity": dict(color=PALETTE[3], linestyle="--", marker="v"),
    "patch": dict(color=PALETTE[7], linestyle=":", marker="D"),
    "world_cause": dict(color=PALETTE[0], linestyle="-", marker="o"),
    "world_pixel": dict(color=PALETTE[1], linestyle="--", marker="^"),
}


def budget_figure(n_labels: Sequence[int], adv: Mapping[str, Mapping]) -> Figure:
    """The advantage of pre-training relative to chance against the number of labels, one line per labelling
    (mean over seeds, 95 % t interval as error bars): the digits' labellings on the left, the controlled
    world's on the right. adv[labelling]: :func:`advantage_summary` (its "relative", "relative_ci95")."""
    n = np.asarray(n_labels, dtype=np.float64)
    panels = [("The digits", [lab for lab in LABELLINGS if not lab.startswith("world")]),
              ("The controlled world", [lab for lab in LABELLINGS if lab.startswith("world")])]
    with styled():
        fig, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 5.6), sharey=True)
        for ax, (title, labs) in zip(axes, panels):
            labs = [lab for lab in labs if lab in adv]
            for i, lab in enumerate(labs):
                mean = 100 * np.asarray(adv[lab]["relative"])
                ci = 100 * np.asarray(adv[lab]["relative_ci95"])
                nudge = 1.06 ** (i - (len(labs) - 1) / 2)             # side by side on the log axis
                ax.errorbar(n * nudge, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], capsize=3, lw=1.5,
                            label=LABELLING_NAMES[lab], **_LABELLING_STYLE[lab])
            ax.axhline(0, color="0.6", lw=1)
            ax.set_title(title)
            _log_budget_axis(ax, n.astype(int))
            ax.set_xlabel("labelled examples (log scale)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=1, fontsize=10)
        axes[0].set_ylabel("advantage of pre-training\n(% of the chance error)")
        fig.tight_layout()
    return fig


def training_curves(res: Result, labelling: str) -> Figure:
    """The training NLL and validation error per epoch of every (initialisation, budget) of one labelling
    (:func:`pretraining.analysis.figures.training_curves`; each seed's run at its setting's chosen rate)."""
    curves = {f"{INIT_NAMES[init]}, {n:,} labels": c
              for init in INITS for n, c in zip(res.n_labels, res.curves[labelling][init])}
    n_classes = N_CLASSES if labelling == "class" else 2
    return figures.training_curves(curves, n_classes=n_classes, plateau_fraction=PLATEAU_FRACTION,
                                   title=LABELLING_NAMES[labelling])


def nll_trajectory_figure(runs: Mapping[str, BudgetRun], n_labels: int) -> Figure:
    """Test NLL against training NLL, one line per net (one point per epoch of the replayed training), a
    marker at the reported net (its best validation epoch), one panel per role of :data:`TRAJECTORY`
    ("cause", "pixel": the keys of ``runs``), one above the other."""
    with styled():
        fig, axes = plt.subplots(len(runs), 1, figsize=(PAGE_WIDTH, 4.3 * len(runs)), squeeze=False)
        for ax, (lab, run_) in zip(axes[:, 0], runs.items()):
            for i, init in enumerate(_PAIRED):
                st = _INIT_STYLE[init]
                tr, te = run_.train_nll[:, i].numpy(), run_.test_nll[:, i].numpy()
                for m in range(tr.shape[1]):
                    last, best = int(run_.epochs_run[i, m]), int(run_.best_epoch[i, m]) - 1
                    ax.plot(tr[:last, m], te[:last, m], "-" if init == "pretrained" else "--", color=st["color"],
                            alpha=0.6, lw=1.2, label=st["label"] if m == 0 else None)
                    ax.scatter(tr[best, m], te[best, m], color=st["color"], marker=st["marker"], s=25, zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0)))   # labelled even in a narrow range
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
            ax.set(xlabel="training NLL on the labelled examples (log scale; better to the right)",
                   ylabel="test NLL (log scale)",
                   title=f"{LABELLING_NAMES[TRAJECTORY[lab]]}, {n_labels:,} labels:\none line per net "
                         "(marker: best epoch)")
            ax.invert_xaxis()
            ax.legend()
        fig.tight_layout()
    return fig
