"""Chapter 5: the bandwidth argument for generative pre-training, as experiments.

Hinton (lecture 14c): "there is a high bandwidth from the stuff in the world to the image and a low
bandwidth from the stuff in the world to the label", so it pays to invert the image pathway first
(unsupervised pre-training) and then learn the few bits of the label. If instead the label is a
direct function of the pixels ("is the top-left pixel similar to the bottom-right one?"),
pre-training should not help.

The notebook ``chapters/05_generative_vs_discriminative.ipynb`` tells the story; this module does
the work:

* :data:`SPEC` — the claim and the parameters, with the rules that tie them together;
* :func:`run` — fits the pixel label, pre-trains one RBM stack per seed, runs the label-budget
  experiment for both labellings (one cached artifact per labelling, initialisation and budget), replays
  the trajectory budget with recording, reads the test NLL at matched training NLL, builds the
  controlled world and measures its bits;
* one function per section — :func:`argument`, :func:`two_labellings`, :func:`experiment_setup`,
  :func:`training`, :func:`budget_results`, :func:`budget_summary`, :func:`literature`,
  :func:`controlled_world`, :func:`world_bits`, :func:`regularisation`;
* :func:`claim_parts` and :func:`finish` — the claim's parts tested on the numbers (a part that compares a
  setting which did not converge is not tested: :func:`gate_unconverged`), the results file.

Helpers: :class:`PixelLabel` (a binary label from the pixels alone), :func:`labelled_subsets`,
:func:`budget_epoch`, :func:`budget_config`, :func:`labelled_data`, :func:`budget_makers`,
:func:`fair_budget` and :func:`trajectory` (the label-budget experiment: every (labelling,
initialisation, label budget) is trained by the book's fair-fight protocol,
:func:`pretraining.core.selection.select_and_train`, on each seed's own ``n_labels`` labelled
examples, its rate and stopping epoch chosen on a fixed validation set; the trajectory budget's
chosen training is replayed with its NLLs recorded),
:func:`matched_test_nll` and
:func:`matched_summary` (test NLL read off at a common training NLL: the regularisation-versus-
optimisation reading of Erhan et al. 2010, sections 6-8), :func:`advantage_summary` and
:func:`budget_parts` (the statistics and the claim's tests),
:func:`world_report` (bits and explained variance in the controlled world of
:mod:`pretraining.core.world`, measured with :mod:`pretraining.analysis.information`), the tables :func:`budget_table` (shown with :data:`BUDGET_FORMAT`),
:func:`literature_table`, :func:`world_table`, :func:`world_mi_table`, the sentences :func:`pixel_mi_verdict`, :func:`optimisation_sentence`,
:func:`regularisation_sentence`, :func:`verdict_sentence`, and the figures
:func:`causal_story_figure`, :func:`example_digits_figure`, :func:`budget_figure`,
:func:`world_figure`, :func:`nll_trajectory_figure`.

The design is paired: for each budget and seed the pre-trained and the random net share the labelled
examples, the softmax initialisation and the minibatch order (each is trained at the rate the validation
set chose for its own setting), so every comparison is made seed by seed
(per-seed differences, a Student-t interval of their mean, the Wilcoxon signed-rank test:
:func:`pretraining.analysis.stats.paired_difference`, :func:`pretraining.book.claims.paired`), and a
claim part needs at least :data:`claims.MIN_PAIRS` seeds to be tested.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from ..analysis import figures, stats
from ..analysis.figures import PAGE_WIDTH, styled
from ..analysis.information import (
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
from ..book.workplan import protocol_job, split_sizes, stack_jobs
from ..core.checks import require_float, require_int
from ..core.data import SPLIT_SIZES, Subset
from ..core.memory import training_bytes
from ..core.models import Classifier, Stack
from ..core.rehearsal import Job
from ..core.selection import LONGER_RUN, PLATEAU_FRACTION, SelectionConfig, TrainData, select_and_train, setting_converged
from ..core.seeding import generator, member_seeds, validate_seeds
from ..core.train import FinetuneConfig, RBMConfig, evaluate, finetune
from ..core.world import SIDE, ControlledWorld, WorldConfig, sweep_causes

Tensor = torch.Tensor

__all__ = [
    "BUDGET_FORMAT",
    "INITS",
    "LABELLINGS",
    "N_CLASSES",
    "SPEC",
    "BudgetRun",
    "INIT_NAMES",
    "NEEDS",
    "PixelLabel",
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
    "claim_parts",
    "controlled_world",
    "condition_name",
    "epochs_text",
    "example_digits_figure",
    "experiment_setup",
    "fair_budget",
    "finish",
    "gate_unconverged",
    "labelled_data",
    "labelled_subsets",
    "literature",
    "literature_table",
    "matched_summary",
    "matched_test_nll",
    "nll_trajectory_figure",
    "optimisation_sentence",
    "pixel_mi_verdict",
    "regularisation",
    "regularisation_sentence",
    "results_record",
    "run",
    "start",
    "trajectory",
    "training",
    "training_curves",
    "two_labellings",
    "verdict_sentence",
    "world_bits",
    "world_figure",
    "world_mi_table",
    "world_report",
    "world_table",
    "work",
]

INITS = ("pretrained", "random")
INIT_NAMES = {"pretrained": "pre-trained", "random": "random init"}
LABELLINGS = ("cause", "pixel")
N_CLASSES = 10
_SUBSET_DOMAIN = 0x5EB5E7  # SeedSequence tag of the labelled-subset permutations
_QUARTER = SIDE // 2       # the top-left patch must stay in the top-left quarter of the image


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
    """Bytes of the stacks, the largest batched fine-tuning run (the selection's rates x seeds, or all
    seeds of a condition, or the trajectory replay's 2 n_seeds nets), each member with its own labelled
    examples, and the controlled world's images."""
    n_train, sizes, n = SPLIT_SIZES[p["dataset"]][0], [784, *p["hidden_sizes"]], p["n_seeds"]
    members = max(2 * n, len(p["finetune_lr_grid"]) * p["finetune_select_seeds"])

    def rows(k: int) -> int:   # examples on the device: a copy per member, one shared copy when all are labelled
        repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])[1]
        return k * repeats * (members if k < n_train else 1)

    need = max(training_bytes(n, n_train, sizes, p["pretrain_batch_size"]),
               training_bytes(members, max(map(rows, p["n_labels"])), [*sizes, 10], p["finetune_batch_size"],
                              greedy=False))
    return need + 4 * 784 * p["world_samples"], ["n_seeds", "hidden_sizes", "n_labels", "world_samples"]


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
        "n_labels": Param([20, 100, 500, 2000, 7000], IntList(min=2, min_len=2, max_len=20),
                          "label budgets: numbers of labelled training examples"),
        **selection_params(grid=[0.1, 0.2371, 0.5623, 1.334, 3.162], epochs=60, patience=3, select_seeds=1),
        "finetune_epoch_examples": Param(1000, Int(min=1, max=MAX_STEPS),
                                         "least training examples per fine-tuning epoch: a budget with fewer labels "
                                         "repeats them within an epoch"),
        "finetune_batch_size": Param(50, Int(min=1),
                                     "fine-tuning minibatch size (smaller when a budget has fewer labels)"),
        "trajectory_n_labels": Param(2000, Int(min=2),
                                     "the budget whose training and test NLL are followed epoch by epoch"),
        "pixel_patch": Param(6, Int(min=1, max=14), "side (px) of the two patches the pixel label compares"),
        "pixel_offset": Param(6, Int(min=0, max=13),
                              "distance (px) of the top-left patch from the top-left corner (mirrored for the other)"),
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

    seeds: the S network seeds; stack: the pre-trained RBM stack (S members); labeller: the pixel
    label fitted on the training images; pixel_train (N_train,), pixel_test (N_test,): the pixel
    labels (int64 0/1; the validation images get theirs from the same labeller); label_bits: bits of
    one cause label ("cause"), one pixel label ("pixel") and their mutual information
    ("pixel_mi_class"), on the training set;
    errors[labelling][init]: (K, S) test errors (fractions) per budget and seed, each net at its best
    validation epoch; selection[labelling][init]: K selection records
    (:meth:`pretraining.core.selection.Selection.record`), one per budget; curves[labelling][init]: K
    {"train_nll", "valid_error"} (per seed, one value per epoch run); adv[labelling]:
    :func:`advantage_summary`; traj[labelling]: the :class:`BudgetRun` of the trajectory budget;
    matched[labelling]: :func:`matched_summary`; world: the
    :class:`~pretraining.core.world.ControlledWorld`; world_base: the causes of the world figure's
    reference image; report: :func:`world_report`; n_labels: the K budgets.
    """

    seeds: list[int]
    stack: Stack
    labeller: PixelLabel
    pixel_train: Tensor
    pixel_test: Tensor
    label_bits: dict[str, float]
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


def run(ch: runtime.Chapter) -> Result:
    """Pixel labels, pre-training, the label-budget experiment (cached per condition), the trajectory
    replay, matched NLLs, the world."""
    p, data = ch.params, ch.data
    seeds = member_seeds(p["seed"], p["n_seeds"])
    labeller = PixelLabel.fit(data.train.x, patch=p["pixel_patch"], offset=p["pixel_offset"])
    pixel = {part: labeller(getattr(data, part).x) for part in ("train", "valid", "test")}
    labellings = {
        "cause": (data.train, data.valid, data.test, N_CLASSES),
        "pixel": tuple(Subset(getattr(data, part).x, pixel[part]) for part in ("train", "valid", "test")) + (2,),
    }
    config = RBMConfig(epochs=p["rbm_epochs"], lr=p["rbm_lr"], batch_size=p["pretrain_batch_size"])
    stack, _ = pretrained_stack(ch, "rbm", p["hidden_sizes"], config, seeds)
    selection = selection_config(p)
    base = {"stack": {"kind": "rbm", "hidden_sizes": p["hidden_sizes"], "config": dataclasses.asdict(config),
                      "seeds": seeds},
            "seeds": seeds, "selection": dataclasses.asdict(selection), "longer": LONGER_RUN,
            "pixel": [p["pixel_patch"], p["pixel_offset"]]}
    fits = {n: budget_config(n, p["finetune_epochs"], p["finetune_epoch_examples"], p["finetune_batch_size"],
                             selection) for n in p["n_labels"]}

    def fit_key(n: int) -> dict:                                  # what one budget's training depends on
        config, repeats = fits[n]
        return {**{k: v for k, v in dataclasses.asdict(config).items() if k != "lr"}, "repeats": repeats}

    errors, sel, curves, traj = {}, {}, {}, {}
    for lab, (train, valid, test, n_classes) in labellings.items():
        makers = budget_makers(stack, n_classes, seeds)
        out = {init: [] for init in INITS}
        for init in INITS:
            for n in p["n_labels"]:
                key = {**base, "labelling": lab, "init": init, "n_labels": n, "finetune": fit_key(n)}
                compute = functools.partial(fair_budget, makers[init], train, valid, test, n, seeds, selection,
                                            *fits[n])
                # version 3: early stopping once the validation curve flattened (2: the fair-fight protocol)
                out[init].append(ch.cached(f"ch5_budget_{lab}_{init}_{n}", key, compute, version=3))
        errors[lab] = {init: np.stack([t["error"].cpu().numpy() for t, _ in out[init]]) for init in INITS}
        sel[lab] = {init: [m["selection"] for _, m in out[init]] for init in INITS}
        curves[lab] = {init: [m["curves"] for _, m in out[init]] for init in INITS}
        k = p["n_labels"].index(p["trajectory_n_labels"])
        chosen = {init: sel[lab][init][k] for init in INITS}
        n = p["trajectory_n_labels"]
        key = {**base, "labelling": lab, "n_labels": n, "finetune": fit_key(n),
               "chosen": {init: {"lr": r["lr"], "epochs_run": r["epochs_run"]} for init, r in chosen.items()}}
        compute = functools.partial(trajectory, makers, train, test, n, seeds, chosen, *fits[n])
        t, _ = ch.cached(f"ch5_trajectory_{lab}", key, compute, version=1)
        traj[lab] = BudgetRun(
            train_nll=t["train_nll"].cpu(), test_nll=t["test_nll"].cpu(),
            epochs_run=torch.tensor([chosen[init]["epochs_run"] for init in INITS]),
            best_epoch=torch.tensor([chosen[init]["best_epoch"] for init in INITS]))
    adv = {lab: advantage_summary(errors[lab]["pretrained"], errors[lab]["random"]) for lab in LABELLINGS}
    world_config = WorldConfig(p["world_exemplars"], p["world_deformations"], p["world_max_shift"])
    world = ControlledWorld(data.train.to("cpu"), world_config, seed=p["seed"])
    causes = world.sample_causes(p["world_samples"], seed=p["seed"] + 1)
    wx = world.render(causes)
    world_labeller = PixelLabel.fit(wx, patch=p["pixel_patch"], offset=p["pixel_offset"])
    report = world_report(world, wx, causes, {"cause label (class)": causes["class"],
                                              "pixel label": world_labeller(wx)})
    return Result(
        seeds=seeds, stack=stack, labeller=labeller, pixel_train=pixel["train"], pixel_test=pixel["test"],
        label_bits={"cause": entropy_bits(data.train.y.cpu()), "pixel": entropy_bits(pixel["train"]),
                    "pixel_mi_class": mutual_information_bits(pixel["train"], data.train.y.cpu())},
        errors=errors, selection=sel, curves=curves, adv=adv, traj=traj, matched=matched_summary(traj),
        world=world, world_base={"class": 8, "exemplar": 0, "deformation": 0, "width": 1,
                                 "position": world_config.centre()},
        report=report, n_labels=list(p["n_labels"]))


def work(p: Mapping) -> list[Job]:
    """The chapter's full run as rehearsal jobs (:mod:`pretraining.book.workplan`), from its checked
    values ``p`` (as ``ch.params``).

    Counted: the RBM stack (one member per seed, on all training images); every (labelling,
    initialisation, label budget) by the fair-fight protocol (:func:`fair_budget`), each member on
    its own labelled examples: an epoch is the budget's labels repeated :func:`budget_epoch` times,
    in minibatches of at most the budget; per labelling the trajectory replay (:func:`trajectory`):
    the 2 ``n_seeds`` nets of ``trajectory_n_labels`` as one batch, at most ``finetune_epochs``
    epochs (the longest run chosen), the NLL on the labelled examples and on the test set after
    every epoch.
    Not counted: grid extensions and the longer run of a seed that did not converge; the pixel
    labeller, the test evaluations, the matched NLLs and the controlled world (analysis).
    """
    train, _, test = split_sizes(p)
    n, hidden = p["n_seeds"], p["hidden_sizes"]
    jobs = stack_jobs("stack", "rbm", 784, hidden, members=n, examples=train, epochs=p["rbm_epochs"],
                      batch_size=p["pretrain_batch_size"])
    classes = {"cause": N_CLASSES, "pixel": 2}  # the pixel label is 0/1 (PixelLabel)
    for lab in LABELLINGS:
        sizes = [784, *hidden, classes[lab]]
        for init in INITS:
            for k in p["n_labels"]:
                batch, repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])
                jobs.append(protocol_job(f"{lab} label, {INIT_NAMES[init]}, {k:,} labels", sizes, p, n,
                                         examples=k * repeats, batch_size=batch))
        k = p["trajectory_n_labels"]
        batch, repeats = budget_epoch(k, p["finetune_epoch_examples"], p["finetune_batch_size"])
        jobs.append(Job(f"{lab} label, trajectories of {k:,} labels", "finetune", sizes, members=2 * n,
                        examples=k * repeats, epochs=p["finetune_epochs"], batch_size=batch,
                        eval_examples=k + test))
    return jobs


# -- the sections ------------------------------------------------------------------------------

def argument(ch: runtime.Chapter) -> None:
    """The argument, drawn: two causal stories of where a label comes from."""
    ch.figure("ch5_causal_stories", causal_story_figure())


def two_labellings(ch: runtime.Chapter, res: Result) -> None:
    """The pixel label's geometry, balance and bits, and example test digits with both labels."""
    p, data, bits = ch.params, ch.data, res.label_bits
    ch.glue("patch_desc", f"{p['pixel_patch']} × {p['pixel_patch']} px", fmt="s")
    ch.glue("pixel_offset_px", p["pixel_offset"], fmt="d")
    ch.glue("pixel_balance_train", float(res.pixel_train.float().mean()), fmt=".1%")
    ch.glue("pixel_balance_test", float(res.pixel_test.float().mean()), fmt=".1%")
    ch.glue("pixel_mi_class", bits["pixel_mi_class"], fmt=".3f")
    ch.glue("pixel_bits", bits["pixel"], fmt=".2f")
    ch.glue("cause_bits", bits["cause"], fmt=".2f")
    ch.glue("pixel_mi_verdict", pixel_mi_verdict(bits["pixel_mi_class"], bits["pixel"]), fmt="s")
    ch.figure("ch5_example_digits",
              example_digits_figure(data.test.x, data.test.y, res.pixel_test, p["pixel_patch"], p["pixel_offset"]))


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
    not converge, and the training curves of each labelling."""
    records = res.records()
    ch.glue("convergence_sentence", fairness.convergence_sentence(records, label=condition_name), fmt="s")
    rows = {(lab, INIT_NAMES[init], f"{n:,}"): rec for (lab, init, n), rec in records.items()}
    frame = fairness.selection_frame(rows, index=["labelling", "initialisation", "labels"])
    runtime.show(frame.style.format(fairness.FORMATS)
                 .set_caption("How each setting was trained: the rate chosen on the validation set, the rates "
                              "tried, the median best epoch and epochs run over the seeds, the median training NLL "
                              "at the best epoch, and how many seeds converged"))
    for lab in LABELLINGS:
        ch.figure(f"ch5_training_curves_{lab}", training_curves(res, lab))


def budget_results(ch: runtime.Chapter, res: Result) -> None:
    """Test error against the number of labels: the figure and the table."""
    p = ch.params
    ch.glue("n_seeds_used", p["n_seeds"], fmt="d")
    ch.glue("min_p", stats.min_wilcoxon_p(p["n_seeds"]), fmt=".2g")
    ch.glue("min_pairs", claims.MIN_PAIRS, fmt="d")
    ch.glue("alpha", claims.ALPHA, fmt="g")
    ch.figure("ch5_budget", budget_figure(p["n_labels"], res.errors, {lab: res.adv[lab]["ci95"] for lab in LABELLINGS}))
    table = budget_table(p["n_labels"], res.errors, res.adv, res.label_bits)
    names = {"cause": "Cause labels (digit class)", "pixel": "Pixel labels (patch similarity)"}
    for lab in LABELLINGS:
        runtime.show(_styled(table[table["labelling"] == lab].drop(columns="labelling"), BUDGET_FORMAT,
                             f"{names[lab]}: test error and advantage of pre-training per label budget", text=0))


def budget_summary(ch: runtime.Chapter, res: Result) -> None:
    """What the label-budget numbers say: budgets helped, advantages, relative gains, the verdict."""
    n_labels, adv = ch.params["n_labels"], res.adv
    ch.glue("n_budgets", len(n_labels), fmt="d")
    ch.glue("n_small", n_labels[0], fmt="d")
    ch.glue("n_all", n_labels[-1], fmt="d")
    for lab in LABELLINGS:
        ch.glue(f"{lab}_n_better", sum(m > 0 for m in adv[lab]["mean"]), fmt="d")
        ch.glue(f"{lab}_n_sig", sum(adv[lab]["significant"]), fmt="d")
        ch.glue(f"{lab}_adv_small", _pts(adv[lab]["mean"][0]), fmt="s")
        ch.glue(f"{lab}_adv_all", _pts(adv[lab]["mean"][-1]), fmt="s")
        ch.glue(f"{lab}_rel", float(np.mean(adv[lab]["relative"])), fmt=".0%")
    ch.glue("verdict_sentence", verdict_sentence(claim_parts(ch, res), adv["cause"], adv["pixel"]), fmt="s")


def literature(ch: runtime.Chapter, res: Result) -> None:
    """All labels: this chapter's cause-label nets beside Larochelle et al. 2009 (MNIST-small)."""
    p, cause = ch.params, res.errors["cause"]
    best = {init: float(np.median(res.selection["cause"][init][-1]["best_epoch"])) for init in INITS}
    training_text = (f"rate chosen on validation, stopped at the best validation epoch (median {best['random']:.0f} "
                     f"random, {best['pretrained']:.0f} pre-trained, of at most {p['finetune_epochs']})")
    runtime.show(_styled(literature_table(res.stack.sizes, p["n_labels"][-1], training_text,
                                          float(cause["random"][-1].mean()), float(cause["pretrained"][-1].mean())),
                         {}, "Cause-label test error with the largest label budget, beside the literature", text=2))


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
    lab_c, lab_p = report["labels"]["cause label (class)"], report["labels"]["pixel label"]
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
    for lab in LABELLINGS:
        m = matched[lab]
        ch.glue(f"traj_level_{lab}", m["level"], fmt=".3f")
        ch.glue(f"traj_pre_{lab}", m["pretrained"], fmt=".3f")
        ch.glue(f"traj_rnd_{lab}", m["random"], fmt=".3f")
        ch.glue(f"traj_epoch_{lab}", plural(m["common_epoch"], "epoch"), fmt="s")
        ch.glue(f"traj_common_pre_{lab}", m["train_nll_at_common"]["pretrained"], fmt=".3f")
        ch.glue(f"traj_common_rnd_{lab}", m["train_nll_at_common"]["random"], fmt=".3f")
        ch.glue(f"traj_diff_{lab}", m["difference_mean"], fmt="+.3f")
        ch.glue(f"traj_ci_{lab}", "{:+.3f} to {:+.3f}".format(*m["difference_ci95"]), fmt="s")
        ch.glue(f"traj_p_{lab}", m["difference_p"], fmt=".2g")
    ch.glue("traj_opt_sentence", optimisation_sentence(matched), fmt="s")
    ch.glue("traj_n", p["trajectory_n_labels"], fmt="d")
    ch.glue("traj_sentence", regularisation_sentence(matched), fmt="s")


# -- the claim -----------------------------------------------------------------------------------

def claim_parts(ch: runtime.Chapter, res: Result) -> list[claims.Part]:
    """The parts of C5 (DESIGN.md), each tested on this run's numbers (see :func:`budget_parts`); a part
    that compares a setting which did not converge is not tested (:func:`gate_unconverged`)."""
    return gate_unconverged(budget_parts(res.adv["cause"], res.adv["pixel"]), res.records())


NEEDS = {"a": (("cause", "pretrained"), ("cause", "random")),
         "b": tuple((lab, init) for lab in LABELLINGS for init in INITS),
         "c": ()}
"""The (labelling, initialisation) settings each part of the claim compares, at every label budget."""


def condition_name(condition: tuple[str, str, int]) -> str:
    """(labelling, initialisation, labels) in words: ("cause", "random", 20) -> 'random init nets with 20
    cause labels'."""
    lab, init, n = condition
    return f"{INIT_NAMES[init]} nets with {n:,} {lab} labels"


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
    finding = (f"The advantage of pre-training (test error of the random net minus that of the pre-trained one) was "
               f"{_pts(adv['cause']['mean'][0])} / {_pts(adv['cause']['mean'][-1])} points with {n_labels[0]:,} / "
               f"{n_labels[-1]:,} cause labels and {_pts(adv['pixel']['mean'][0])} / "
               f"{_pts(adv['pixel']['mean'][-1])} points with pixel labels (mean relative gain "
               f"{np.mean(adv['cause']['relative']):.0%} vs {np.mean(adv['pixel']['relative']):.0%}, "
               f"{p['n_seeds']} seeds; {sum(setting_converged(r) for r in records.values())} of {len(records)} "
               f"settings converged)")
    ch.finish(results, parts=parts, finding=finding)


def results_record(p: Mapping, res: Result) -> dict:
    """The chapter's results file entry: test errors and advantages per labelling and budget, the
    matched NLLs, the world's bits, and every condition's fair-fight account: the epoch of each budget,
    the chosen rates, the selection records and a ``converged`` flag per (labelling, initialisation,
    budget) (:func:`pretraining.core.selection.setting_converged`)."""
    adv = res.adv
    return {
        "n_labels": p["n_labels"],
        "test_error": {lab: {init: res.errors[lab][init].mean(1).tolist() for init in INITS} for lab in LABELLINGS},
        "advantage": {lab: adv[lab]["mean"] for lab in LABELLINGS},
        "advantage_ci95": {lab: adv[lab]["ci95"] for lab in LABELLINGS},
        "advantage_p": {lab: adv[lab]["p"] for lab in LABELLINGS},
        "relative_advantage": {lab: adv[lab]["relative"] for lab in LABELLINGS},
        "per_seed": {lab: {"advantage": adv[lab]["per_seed"], "relative_advantage": adv[lab]["relative_per_seed"]}
                     for lab in LABELLINGS},
        "n_seeds": p["n_seeds"],
        "label_bits": res.label_bits,
        "world": res.report,
        "matched_test_nll": res.matched,
        "epoch": {str(n): dict(zip(("batch", "repeats"), budget_epoch(n, p["finetune_epoch_examples"],
                                                                        p["finetune_batch_size"])))
                  for n in p["n_labels"]},
        "finetune_lr": {lab: {init: [r["lr"] for r in res.selection[lab][init]] for init in INITS}
                        for lab in LABELLINGS},
        "selection": {lab: {init: {str(n): r for n, r in zip(p["n_labels"], res.selection[lab][init])}
                            for init in INITS} for lab in LABELLINGS},
        "converged": {lab: {init: {str(n): setting_converged(r)
                                   for n, r in zip(p["n_labels"], res.selection[lab][init])}
                            for init in INITS} for lab in LABELLINGS},
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


# ============================================================================ pixel labels
@dataclass(frozen=True)
class PixelLabel:
    """"Is the top-left patch similar to the bottom-right patch?" — a label from pixels alone.

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
    member s pre-trained with seeds[s]); "random": uniform in +-1/sqrt(fan_in). Both draw the softmax
    layer from the seed's ("init", depth + 1) stream, so the two nets of a seed share their softmax
    initialisation (and, trained with the same seed, their labelled examples and minibatch order)
    and differ only in the initialisation of their hidden layers.
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

    return {"pretrained": pretrained, "random": random}


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

    makers: :func:`budget_makers`; chosen[init]: that condition's selection record (its rate "lr"
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
    runs = [torch.tensor(chosen[init]["epochs_run"]) for init in INITS]
    E = int(max(int(r.max()) for r in runs))
    clf = Classifier.stack_members([makers[init](seeds) for init in INITS])
    fit, look = labelled_data(train, n_labels, repeats), labelled_data(train, n_labels)

    def tensors(data: TrainData) -> tuple[Tensor, Tensor]:
        if isinstance(data, Subset):
            return data.x, data.y
        x, y = data(seeds)
        return torch.cat([x, x]), torch.cat([y, y])                    # (2S, n, V): pairs share examples

    (x, y), (xl, yl) = tensors(fit), tensors(look)
    rates = tuple(float(chosen[init]["lr"]) for init in INITS for _ in seeds)
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
                                                for i, init in enumerate(INITS)},
                        "n": int(n_seeds), "difference_mean": float(diff.mean()),
                        "difference_ci95": list(stats.t_interval(diff)), "difference_p": stats.wilcoxon(diff)["p"]}
    return matched


def advantage_summary(error_pretrained: np.ndarray, error_random: np.ndarray) -> dict:
    """The advantage of pre-training: paired differences d = error(random) - error(pretrained), seed by seed.

    error_pretrained, error_random: (K, S) test errors (fractions) per budget and seed, S >= 2,
    member s of both from the same seed. Per budget (lists over the K budgets): "mean" advantage
    over the seeds, "ci95" [low, high] (95 % Student-t interval of the mean of the S differences),
    "p" (two-sided Wilcoxon signed-rank p of the S differences, raw: not corrected for the K
    budgets), "relative" (the mean over seeds of the relative advantage d / error(random)),
    "significant" (raw p < :data:`claims.ALPHA` and mean > 0; a description, not a decision).
    Per seed (lists over the S seeds), the claim's quantities: "per_seed" (the mean over budgets of
    d) and "relative_per_seed" (the mean over budgets of d / error(random); a random error of 0
    counts as 1e-12).
    """
    pre, rnd = np.asarray(error_pretrained, dtype=np.float64), np.asarray(error_random, dtype=np.float64)
    if pre.ndim != 2 or pre.shape != rnd.shape or pre.shape[1] < 2:
        raise ValueError(f"errors must both have shape (K, S) with S >= 2 seeds; got {pre.shape} and {rnd.shape}")
    diff = rnd - pre
    relative = diff / np.maximum(rnd, 1e-12)
    ci = [list(stats.t_interval(d)) for d in diff]
    p = [stats.wilcoxon(d)["p"] for d in diff]
    mean = diff.mean(1)
    return {"mean": mean.tolist(), "ci95": ci, "p": p, "relative": relative.mean(1).tolist(),
            "significant": [bool(pk < claims.ALPHA and m > 0) for pk, m in zip(p, mean)],
            "per_seed": diff.mean(0).tolist(), "relative_per_seed": relative.mean(0).tolist()}


def _facts(cause: Mapping, pixel: Mapping) -> str:
    k = len(cause["mean"])
    sig_c, sig_p = sum(cause["significant"]), sum(pixel["significant"])
    a = stats.paired_difference(cause["per_seed"])
    b = stats.paired_difference(cause["relative_per_seed"], pixel["relative_per_seed"])
    rel_c, rel_p = float(np.mean(cause["relative_per_seed"])), float(np.mean(pixel["relative_per_seed"]))
    return (f"per seed, averaged over the {k} budgets, the advantage of pre-training with cause labels was "
            f"{_pts(a['effect'])} points (95 % t interval {_pts(a['ci95'][0])} to {_pts(a['ci95'][1])}, positive in "
            f"{a['positive']} of {a['n']} seeds) and the relative gain with cause labels ({rel_c:.0%}) exceeded "
            f"that with pixel labels ({rel_p:.0%}) in {b['positive']} of {b['n']} seeds; per budget the raw "
            f"Wilcoxon p is below {claims.ALPHA:g} at {sig_c} of {k} budgets for cause labels and {sig_p} of {k} "
            f"for pixel labels")


def budget_parts(cause: Mapping, pixel: Mapping) -> list[claims.Part]:
    """The parts of C5 from two :func:`advantage_summary` results (K budgets, S seeds each).

    Paired by seed (the pre-trained and the random net of a seed and budget share the labelled
    examples, the softmax initialisation and the minibatch order); each part is the two-sided
    Wilcoxon signed-rank test of a per-seed difference that is positive when the seed supports the
    claim (effect = its mean, with a 95 % t interval; :func:`pretraining.book.claims.decide`
    Holm-adjusts the tested parts, and a part holds when the adjusted p < :data:`claims.ALPHA` and
    the mean and the signed ranks point the claim's way):
    (a) pre-training helps cause labels: d_s = the mean over budgets of error(random) -
    error(pre-trained) with cause labels; (b) it helps pixel labels less or not at all: d_s = the
    mean over budgets of the relative advantage (advantage / error(random)) with cause labels minus
    that with pixel labels; (c) the difference is largest when labels are few: not measured yet
    (issue 18). With fewer than :data:`claims.MIN_PAIRS` seeds (a) and (b) are not tested.
    """
    k = len(cause["mean"])
    rel_c = np.asarray(cause["relative_per_seed"], dtype=np.float64)
    rel_p = np.asarray(pixel["relative_per_seed"], dtype=np.float64)
    if rel_c.shape != rel_p.shape:
        raise ValueError(f"cause and pixel must have the same seeds, got {rel_c.size} and {rel_p.size}")
    a = stats.paired_difference(cause["per_seed"])
    b = stats.paired_difference(rel_c, rel_p)
    return [
        claims.paired("a", "pre-training helps labels caused by the world (the digit class)", a,
                      f"per seed, the cause-label test error of the random net minus that of the pre-trained net, "
                      f"averaged over the {k} budgets (fractions of the test digits; positive: pre-training "
                      f"lowered the error): {claims.paired_text(a, '+.4f', interval=False)}",
                      seeds_positive=a["positive"], n_budgets=k, mean_advantage_per_budget=list(cause["mean"])),
        claims.paired("b", "it helps high-frequency pixel-function labels less or not at all", b,
                      f"per seed, the relative advantage of pre-training (advantage / error of the random net, "
                      f"averaged over the {k} budgets) with cause labels minus that with pixel labels (fractions; "
                      f"positive: pre-training helped the pixel labels less): "
                      f"{claims.paired_text(b, '+.3f', interval=False)}; mean relative advantage "
                      f"{float(rel_c.mean()):.0%} with cause labels, {float(rel_p.mean()):.0%} with pixel labels",
                      seeds_positive=b["positive"], n_budgets=k, mean_relative_gain=float(rel_p.mean()),
                      cause_mean_relative_gain=float(rel_c.mean())),
        claims.part("c", "the difference is largest when labels are few", None, "not measured yet (issue 18)"),
    ]


# ============================================================================ sentences
VERDICT_TEXT = {
    "supported": "This is the pattern the bandwidth argument predicts: pre-training helps when the label names "
                 "a cause of the image, and less (or not at all) when it is a pixel function.",
    "partly supported": "The pattern leans the way the bandwidth argument predicts, but not cleanly: "
                        "relative to their error, pre-training did not clearly help the pixel labels less.",
    "partly supported, cause labels not helped": "The pattern is only half the one the bandwidth argument "
                                                 "predicts: pre-training helped the pixel labels little, but "
                                                 "the cause labels not clearly either.",
    "not supported": "This is not the pattern the bandwidth argument predicts.",
    "inconclusive": "With so few seeds the experiment cannot decide.",
    "not converged": "Not every setting the claim compares converged within the budget, so the experiment "
                     "cannot decide at this scale.",
    "cause only, holds": "Pre-training helped the cause labels, as the bandwidth argument predicts; whether it "
                         "helps the pixel labels less is not tested at this scale, because a setting did not "
                         "converge.",
    "cause only, fails": "Pre-training did not clearly help the cause labels, against the bandwidth argument; "
                         "whether it helps the pixel labels less is not tested at this scale, because a setting "
                         "did not converge.",
}
"""The sentence after the label-budget numbers, per verdict of the parts (see :func:`verdict_sentence`)."""


def verdict_sentence(parts: Sequence[claims.Part], cause: Mapping, pixel: Mapping) -> str:
    """What the label-budget numbers say: :data:`VERDICT_TEXT` of the parts' verdict, and its facts.

    parts: :func:`budget_parts` (part "a" first) after :func:`gate_unconverged`, as they come (the
    sentence decides them with Holm, :func:`pretraining.book.claims.decide`, as the chapter's ``finish``
    does); cause, pixel: :func:`advantage_summary` results. A part not tested because a setting did not
    converge is said so, with the settings.
    """
    parts = claims.decide(parts)
    verdict = claims.verdict(parts)
    text = VERDICT_TEXT[verdict]
    if verdict == "partly supported" and parts[0].status == claims.FAILS:
        text = VERDICT_TEXT["partly supported, cause labels not helped"]
    reason = _facts(cause, pixel)
    n_seeds = len(cause["per_seed"])
    gated = [p for p in parts if "not_converged" in p.numbers]
    if gated:                                   # part b compares every setting part a does, and more
        if verdict == "inconclusive":
            text = VERDICT_TEXT["not converged"]
        else:
            text = VERDICT_TEXT["cause only, holds" if parts[0].status == claims.HOLDS else "cause only, fails"]
        reason = f"did not converge: {gated[-1].numbers['not_converged']}; {reason}"
    elif verdict == "inconclusive":
        reason = (f"only {n_seeds} seeds: too few for a paired test (at least {claims.MIN_PAIRS}); {reason}")
    return f"{text} (Verdict: {verdict} — {reason}.)"


def pixel_mi_verdict(mi_bits: float, pixel_bits: float) -> str:
    """How related the pixel label is to the digit class: 'almost unrelated' below 20 % of its bits."""
    return ("almost unrelated to the digit class" if mi_bits < 0.2 * pixel_bits
            else "noticeably related to the digit class (a confound to keep in mind)")


_OPT_TEXT = {
    (True, True): "The pre-trained nets fit their training labels faster for both labellings, so part of "
                  "their advantage may be an optimisation effect.",
    (True, False): "The pre-trained nets fit the cause labels faster, but not the pixel labels.",
    (False, True): "The pre-trained nets fit the pixel labels faster, but not the cause labels.",
    (False, False): "The pre-trained nets do not fit their training labels faster.",
}

_TRAJ_TEXT = {
    (True, True): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                  "Wilcoxon p below {alpha:g}) for both labellings: a regularisation effect, as Erhan et al. found, "
                  "but not one specific to cause labels.",
    (True, False): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                   "Wilcoxon p below {alpha:g}) for cause labels, a regularisation effect as Erhan et al. found, but "
                   "not for pixel labels.",
    (False, True): "At matched training NLL the pre-trained nets reach a clearly lower test NLL (seed by seed, "
                   "Wilcoxon p below {alpha:g}) only for pixel labels, not for cause labels, unlike in Erhan et al.",
    (False, False): "At matched training NLL the pre-trained nets do not reach a clearly lower test NLL (seed "
                    "by seed, no Wilcoxon p below {alpha:g} with a lower test NLL) for either labelling: no clear "
                    "regularisation effect at this scale, unlike in Erhan et al.",
    "few": "With {n} seeds the matched comparison cannot tell a regularisation effect from chance (a paired "
           "test needs at least {min_pairs} seeds; with {n} the smallest possible p is {floor:.2g}).",
}


def optimisation_sentence(matched: Mapping[str, Mapping]) -> str:
    """Whether the pre-trained nets fit their training labels faster: a lower mean training NLL after the
    same number of epochs ("train_nll_at_common"), per labelling ("cause", "pixel"), from :func:`matched_summary`."""
    faster = {lab: matched[lab]["train_nll_at_common"]["pretrained"] < matched[lab]["train_nll_at_common"]["random"]
              for lab in LABELLINGS}
    return _OPT_TEXT[faster["cause"], faster["pixel"]]


def regularisation_sentence(matched: Mapping[str, Mapping]) -> str:
    """Whether the pre-trained nets generalise better at the same fit, per labelling, from
    :func:`matched_summary`: the seed-by-seed difference of the matched test NLLs (random -
    pre-trained) has a positive mean and a raw two-sided Wilcoxon p below :data:`claims.ALPHA`. With
    fewer than :data:`claims.MIN_PAIRS` seeds the sentence says the comparison cannot tell."""
    n = min(int(matched[lab]["n"]) for lab in LABELLINGS)
    if n < claims.MIN_PAIRS:
        return _TRAJ_TEXT["few"].format(n=n, min_pairs=claims.MIN_PAIRS, floor=stats.min_wilcoxon_p(n))
    regular = {lab: matched[lab]["difference_mean"] > 0 and matched[lab]["difference_p"] < claims.ALPHA
               for lab in LABELLINGS}
    return _TRAJ_TEXT[regular["cause"], regular["pixel"]].format(alpha=claims.ALPHA)


# ============================================================================ tables
def budget_table(n_labels: Sequence[int], errors: Mapping[str, Mapping[str, np.ndarray]],
                 adv: Mapping[str, Mapping], label_bits: Mapping[str, float]) -> pd.DataFrame:
    """One row per labelling and budget: the labels, their bits ("label bits": n x bits per label), mean test
    errors (%), the advantage (points), its 95 % t interval over seeds, the raw Wilcoxon p of the
    per-seed advantages and the relative gain (as text).

    errors[labelling][init]: (K, S) fractions; adv[labelling]: :func:`advantage_summary`;
    label_bits[labelling]: bits of one label. Shown with :data:`BUDGET_FORMAT`.
    """
    rows = []
    for lab in errors:
        for k, n in enumerate(n_labels):
            ci = adv[lab]["ci95"][k]
            rows.append({"labelling": lab, "labels": n, "label bits": n * label_bits[lab],
                         "pre-trained error %": 100 * errors[lab]["pretrained"][k].mean(),
                         "random error %": 100 * errors[lab]["random"][k].mean(),
                         "advantage (points)": 100 * adv[lab]["mean"][k],
                         "95 % t interval (points)": f"{100 * ci[0]:+.2f}\u00a0to\u00a0{100 * ci[1]:+.2f}",
                         "Wilcoxon p (raw)": adv[lab]["p"][k],
                         "relative gain": f"{adv[lab]['relative'][k]:.0%}"})
    return pd.DataFrame(rows)


BUDGET_FORMAT = {"labels": "{:,}", "label bits": "{:,.0f}", "pre-trained error %": "{:.2f}",
                 "random error %": "{:.2f}", "advantage (points)": "{:+.2f}", "Wilcoxon p (raw)": "{:.2g}"}
"""How :func:`budget_table` is shown: counts as integers, errors and points to 0.01 (the test set's
resolution is 0.01 % of 10,000 digits), p-values to two significant digits."""


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


def example_digits_figure(x: Tensor, y: Tensor, pixel: Tensor, patch: int, offset: int) -> Figure:
    """Two digits of each class with the two patches outlined and both labels in the title.

    x (N, 784) images, y (N,) classes, pixel (N,) pixel labels (1 = similar); patch, offset: the
    pixel label's geometry (:class:`PixelLabel`). The first two digits of each class are shown, in a
    grid of 4 rows and 5 columns: rows 1-2 classes 0-4 (first and second digit), rows 3-4 classes 5-9.
    """
    _check_images("x", x)
    y, pixel = y.cpu(), pixel.cpu()
    first_two = [torch.nonzero(y == c)[:2, 0].tolist() for c in range(10)]
    a, b = offset, SIDE - offset - patch
    with styled():
        fig, axes = plt.subplots(4, 5, figsize=(6.6, 6.9))
        for r in range(4):
            for c in range(5):
                ax, cls = axes[r, c], c + 5 * (r // 2)
                ax.set_axis_off()
                if r % 2 >= len(first_two[cls]):
                    continue
                i = first_two[cls][r % 2]
                ax.imshow(x[i].reshape(SIDE, SIDE).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
                for q in (a, b):
                    ax.add_patch(plt.Rectangle((q - 0.5, q - 0.5), patch, patch, fill=False, ec="orange", lw=1.5))
                ax.set_title(f"class {int(y[i])}\n{'similar' if pixel[i] else 'different'}", fontsize=10)
        fig.suptitle("Cause label (class) and pixel label (are the orange patches similar?)")
        fig.tight_layout()
    return fig


def _log_budget_axis(ax, n: np.ndarray) -> None:
    ax.set_xscale("log")
    ax.set_xticks(n, [f"{v:,}" for v in n], rotation=45 if len(n) > 7 else 0)   # many budgets: slanted labels
    ax.minorticks_off()
    ax.set_xlabel("number of labelled training examples (log scale)")


def budget_figure(n_labels: Sequence[int], errors: Mapping[str, Mapping[str, np.ndarray]],
                  intervals: Mapping[str, Sequence[Sequence[float]]]) -> Figure:
    """Test error against the number of labels (top) and the advantage of pre-training (bottom).

    errors[labelling][init]: (K, S) test errors (fractions) per budget and seed;
    intervals[labelling]: K [low, high] 95 % t intervals of the mean advantage (random - pretrained)
    over the seeds.
    """
    styles = {"cause": "-", "pixel": "--"}
    names = {"cause": "cause labels (digit class)", "pixel": "pixel labels (patch similarity)"}
    nudge = {"cause": 0.97, "pixel": 1.03}          # the two labellings' error bars side by side (log x)
    n = np.asarray(n_labels)
    with styled():
        fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 9.6))
        for lab, by_init in errors.items():
            for init, e in by_init.items():
                st = _INIT_STYLE[init]
                e = 100 * np.asarray(e)
                ax0.plot(n, e.mean(1), styles[lab], marker=st["marker"], color=st["color"],
                         label=f"{names[lab]}, {st['label']}")
                for k in range(e.shape[1]):
                    ax0.scatter(n, e[:, k], s=10, marker=st["marker"], color=st["color"], alpha=0.35)
            adv = 100 * (np.asarray(by_init["random"]) - np.asarray(by_init["pretrained"])).mean(1)
            ci = 100 * np.asarray(intervals[lab])
            ax1.errorbar(n * nudge[lab], adv, yerr=[adv - ci[:, 0], ci[:, 1] - adv], fmt=styles[lab] + "o",
                         capsize=4, label=names[lab], color="k" if lab == "cause" else "0.5",
                         markerfacecolor="k" if lab == "cause" else "white")
        ax0.set(ylabel="test error (%)", title="Test error: pre-trained vs random initialisation")
        ax0.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)   # below the axes: no data hidden
        ax1.axhline(0, color="0.6", lw=1)
        ax1.set(ylabel="error(random) − error(pre-trained)\n(percentage points)",
                title="Advantage of pre-training (mean, 95 % t interval over seeds)")
        ax1.legend(loc="best")
        for ax in (ax0, ax1):
            _log_budget_axis(ax, n)
        fig.tight_layout()
    return fig


def training_curves(res: Result, labelling: str) -> Figure:
    """The training NLL and validation error per epoch of every (initialisation, budget) of one labelling
    (:func:`pretraining.analysis.figures.training_curves`; each seed's run at its setting's chosen rate)."""
    curves = {f"{INIT_NAMES[init]}, {n:,} labels": c
              for init in INITS for n, c in zip(res.n_labels, res.curves[labelling][init])}
    n_classes = N_CLASSES if labelling == "cause" else 2
    return figures.training_curves(curves, n_classes=n_classes, plateau_fraction=PLATEAU_FRACTION,
                                   title=f"{labelling} labels")


def nll_trajectory_figure(runs: Mapping[str, BudgetRun], n_labels: int) -> Figure:
    """Test NLL against training NLL, one line per net (one point per epoch of the replayed training), a
    marker at the reported net (its best validation epoch), one panel per labelling, one above the other."""
    with styled():
        fig, axes = plt.subplots(len(runs), 1, figsize=(PAGE_WIDTH, 4.3 * len(runs)), squeeze=False)
        for ax, (lab, run_) in zip(axes[:, 0], runs.items()):
            for i, init in enumerate(INITS):
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
                   title=f"{lab} labels, {n_labels:,} labels: one line per net (marker: best epoch)")
            ax.invert_xaxis()
            ax.legend()
        fig.tight_layout()
    return fig
