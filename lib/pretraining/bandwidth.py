"""Chapter 5: the bandwidth argument for generative pre-training, as experiments.

Hinton (lecture 14c): "there is a high bandwidth from the stuff in the world to the image and a low
bandwidth from the stuff in the world to the label", so it pays to invert the image pathway first
(unsupervised pre-training) and then learn the few bits of the label. If instead the label is a
direct function of the pixels ("is the top-left pixel similar to the bottom-right one?"),
pre-training should not help. This module provides:

* :class:`PixelLabel` — a binary label computed from the pixels alone (is the top-left patch
  similar to the bottom-right patch?), thresholded at the training median so it is 50/50.
* :func:`labelled_subsets` and :func:`label_budget` — the label-budget experiment: pre-trained
  and randomly initialised nets of the same shape, fine-tuned as one batch of members on
  ``n_labels`` labelled examples, with the same number of updates at every budget.
* :class:`ControlledWorld` — images generated from explicit, known latent causes (digit class,
  exemplar, deformation, stroke width, position) through :func:`pretraining.distort.distort`.
* Information measures: :func:`entropy_bits`, :func:`mutual_information_bits`,
  :func:`explained_variance`, :func:`world_report`.
* :func:`matched_test_nll` — test NLL read off at a common training NLL (the
  regularisation-versus-optimisation reading of Erhan et al. 2010, sections 6-8).
* Figures: :func:`causal_story_figure`, :func:`budget_figure`, :func:`nll_trajectory_figure`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from .data import Subset
from .distort import DistortionConfig, distort
from .models import Classifier, Stack
from .plots import styled
from .seeding import validate_seeds
from .train import FinetuneConfig, evaluate, finetune
from .checks import require_int as _check_int

Tensor = torch.Tensor
SIDE = 28
INITS = ("pretrained", "random")
LABELLINGS = ("cause", "pixel")
_SUBSET_DOMAIN = 0x5EB5E7  # SeedSequence tag of the labelled-subset permutations
_WORLD_DOMAIN = 0xC0FFEE   # SeedSequence tag of the controlled world's random draws

#: Published test errors (%) on "MNIST-small" (10k train / 2k valid / 50k test, 500 units per
#: layer), random initialisation vs stacked-RBM pre-training, 1 hidden layer and 2 hidden layers.
#: Larochelle, Bengio, Louradour & Lamblin, "Exploring strategies for training deep neural
#: networks", JMLR 10 (2009), Table 3. The closest published analogue of mnist-10k with all labels.
PAPER_REFERENCE: dict = {
    "citation": "Larochelle et al. 2009, JMLR 10, Table 3 (MNIST-small, 10k labelled digits)",
    "random": {1: 4.14, 2: 4.03},
    "pretrained": {1: 3.17, 2: 2.74},
}


def _check_float(name: str, value: object, *, gt: float | None = None, ge: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (gt is None or value > gt) and (ge is None or value >= ge)
    if not ok:
        allowed = f"> {gt}" if gt is not None else f">= {ge}"
        raise ValueError(f"{name}={value!r} is not allowed; it must be a finite number {allowed}")
    return float(value)


def _check_images(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 2 or x.shape[1] != SIDE * SIDE:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a float tensor of shape (N, 784), got {shape}")
    return x


def _generator(*entropy: int) -> torch.Generator:
    """A CPU generator seeded from ``SeedSequence(entropy)`` (documented, reproducible anywhere)."""
    state = np.random.SeedSequence(list(entropy)).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed((int(state[0]) << 31) ^ int(state[1]))


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
        _check_int("patch", self.patch, 1, SIDE // 2)
        _check_int("offset", self.offset, 0, SIDE // 2 - self.patch)
        _check_float("threshold", self.threshold, ge=0.0)

    @staticmethod
    def score(x: Tensor, patch: int, offset: int) -> Tensor:
        """Mean |top-left patch - bottom-right patch| of images x (N, 784): (N,)."""
        _check_int("patch", patch, 1, SIDE // 2)
        _check_int("offset", offset, 0, SIDE // 2 - patch)
        img = _check_images("x", x).reshape(-1, SIDE, SIDE)
        a, b = offset, SIDE - offset - patch
        return (img[:, a:a + patch, a:a + patch] - img[:, b:b + patch, b:b + patch]).abs().mean(dim=(1, 2))

    @classmethod
    def fit(cls, x_train: Tensor, patch: int = 6, offset: int = 6) -> "PixelLabel":
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
    SeedSequence([seeds[s], 0x5EB5E7, n_total]); so for one seed the subsets are nested (the
    50 labelled examples are among the 100), and they do not depend on the labelling.
    """
    n_total = _check_int("n_total", n_total, 1)
    n_labels = _check_int("n_labels", n_labels, 1, n_total)
    seeds = validate_seeds(seeds)
    return torch.stack([torch.randperm(n_total, generator=_generator(s, _SUBSET_DOMAIN, n_total))[:n_labels]
                        for s in seeds])


def finetune_config(n_labels: int, n_updates: int, lr: float, batch_size: int,
                    weight_decay: float = 0.0) -> FinetuneConfig:
    """Fine-tuning with (at least) ``n_updates`` SGD steps whatever the number of labels.

    The batch is min(batch_size, n_labels) examples; epochs = ceil(n_updates / steps per epoch),
    so every budget gets the same training cost (to within one epoch).
    """
    n_labels = _check_int("n_labels", n_labels, 1)
    n_updates = _check_int("n_updates", n_updates, 1)
    batch = min(_check_int("batch_size", batch_size, 1), n_labels)
    steps = n_labels // batch
    return FinetuneConfig(epochs=math.ceil(n_updates / steps), lr=lr, batch_size=batch,
                          weight_decay=weight_decay)


@dataclass
class BudgetRun:
    """One label budget: members are [pretrained seeds..., random seeds...].

    error, nll: (2, S) test error in [0, 1] and test NLL, row 0 pre-trained, row 1 random.
    epochs: (E,) epochs at which the trajectory was recorded (empty if not recorded);
    train_nll, test_nll: (E, 2, S) NLL on the labelled examples and on the test set.
    """

    error: Tensor
    nll: Tensor
    epochs: Tensor
    train_nll: Tensor
    test_nll: Tensor


def budget_classifiers(stack: Stack, n_classes: int, seeds: Sequence[int]) -> Classifier:
    """2S members: S nets initialised from ``stack`` (S members), then S random nets of the same shape.

    Member s and member S+s share seed ``seeds[s]``: the same softmax-layer initialisation stream,
    the same labelled examples and the same minibatch order, so each pair differs only in the
    initialisation of its hidden layers.
    """
    seeds = validate_seeds(seeds, stack.n_members)
    pre = Classifier.from_stack(stack, n_classes, seeds)
    rnd = Classifier.random(stack.sizes + [n_classes], seeds, device=stack.device, dtype=pre.dtype)
    return Classifier.stack_members([pre, rnd])


def label_budget(stack: Stack, train: Subset, test: Subset, n_classes: int, n_labels: int,
                 seeds: Sequence[int], *, n_updates: int, lr: float, batch_size: int,
                 weight_decay: float = 0.0, trajectory_points: int = 0,
                 progress: bool = False) -> BudgetRun:
    """Fine-tune pre-trained and random nets on ``n_labels`` labelled examples; test them.

    stack: pre-trained Stack with S = len(seeds) members (its own pre-training per seed).
    train, test: images x (N, 784) with the labels ``y`` of this labelling (values < n_classes).
    Each seed's labelled examples are :func:`labelled_subsets` of ``train`` (all of ``train``, shared,
    when n_labels = len(train)); training uses
    :func:`finetune_config`. With ``trajectory_points`` > 0, the NLL on the labelled examples and
    on the test set is recorded after about that many evenly spaced epochs (the last included).
    """
    n_classes = _check_int("n_classes", n_classes, 2)
    _check_int("trajectory_points", trajectory_points, 0)
    seeds = validate_seeds(seeds, stack.n_members)
    config = finetune_config(n_labels, n_updates, lr, batch_size, weight_decay)
    if int(train.y.max()) >= n_classes or int(test.y.max()) >= n_classes:
        raise ValueError(f"labels must be below n_classes={n_classes}")
    if n_labels == len(train):                                 # every example labelled: share x
        x, y = train.x, train.y
    else:
        idx = labelled_subsets(len(train), n_labels, seeds).to(train.x.device)
        idx = torch.cat([idx, idx])                            # (2S, n): pairs share examples
        x, y = train.x[idx], train.y[idx]                      # (2S, n, 784), (2S, n)
    clf = budget_classifiers(stack, n_classes, seeds)
    member_seeds = list(seeds) * 2
    S = len(seeds)
    record: set[int] = set()
    if trajectory_points:
        record = {math.ceil(config.epochs * (i + 1) / trajectory_points) for i in range(trajectory_points)}
    epochs, train_nll, test_nll = [], [], []

    def on_epoch(epoch: int, net: Classifier) -> None:
        if epoch in record:
            epochs.append(epoch)
            train_nll.append(evaluate(net, x, y).nll.reshape(2, S))
            test_nll.append(evaluate(net, test.x, test.y).nll.reshape(2, S))

    finetune(clf, x, y, config, member_seeds, on_epoch=on_epoch, progress=progress)
    ev = evaluate(clf, test.x, test.y)
    empty = torch.zeros(0, 2, S)
    return BudgetRun(
        error=ev.error.reshape(2, S).cpu(), nll=ev.nll.reshape(2, S).cpu(),
        epochs=torch.tensor(epochs, dtype=torch.int64),
        train_nll=torch.stack(train_nll).cpu() if epochs else empty,
        test_nll=torch.stack(test_nll).cpu() if epochs else empty,
    )


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
    level = reach if level is None else _check_float("level", level, ge=0.0)
    if level < reach:
        raise ValueError(f"level={level} is not reached by every member; use a level >= {reach:.4g}")
    first = (train_nll <= level).to(torch.int8).argmax(dim=0, keepdim=True)   # (1, M)
    before = (first - 1).clamp(min=0)
    t1, t0 = train_nll.gather(0, first), train_nll.gather(0, before)
    y1, y0 = test_nll.gather(0, first), test_nll.gather(0, before)
    w = torch.where(t0 > t1, (t0 - level) / (t0 - t1).clamp(min=1e-12), torch.ones_like(t0))
    return level, (y0 + w.clamp(0, 1) * (y1 - y0)).squeeze(0)


def advantage_summary(error_pretrained: np.ndarray, error_random: np.ndarray, *, seed: int = 0) -> dict:
    """The advantage of pre-training per budget: paired differences error(random) - error(pretrained).

    error_pretrained, error_random: (K, S) test errors (fractions) per budget and seed, S >= 2,
    member s of both from the same seed. Returns lists over the K budgets: "mean" advantage,
    "ci95" [low, high] (bootstrap of the mean of the S paired differences, stats.bootstrap_ci),
    "relative" mean advantage / mean random error, "significant" (ci95 low > 0).
    """
    from .stats import bootstrap_ci

    pre, rnd = np.asarray(error_pretrained, dtype=np.float64), np.asarray(error_random, dtype=np.float64)
    if pre.ndim != 2 or pre.shape != rnd.shape or pre.shape[1] < 2:
        raise ValueError(f"errors must both have shape (K, S) with S >= 2 seeds; got {pre.shape} and {rnd.shape}")
    diff = rnd - pre
    ci = [list(bootstrap_ci(d, np.mean, n_boot=10000, seed=seed)) for d in diff]
    mean = diff.mean(1)
    return {"mean": mean.tolist(), "ci95": ci,
            "relative": (mean / np.maximum(rnd.mean(1), 1e-12)).tolist(),
            "significant": [bool(lo > 0) for lo, _ in ci]}


def claim_verdict(cause: Mapping, pixel: Mapping, n_seeds: int) -> tuple[str, str]:
    """Verdict on C5 from two :func:`advantage_summary` results; returns (verdict, reason).

    The claim holds ("supported") when pre-training significantly helps cause labels at half of the
    budgets or more, while for pixel labels it helps significantly at fewer than half of the budgets
    and its mean relative gain is below half of the cause labels'. It fails ("not supported") when
    cause labels are not helped at half of the budgets, or pixel labels gain at least as much
    (relative) as cause labels. Anything between is "partly supported"; fewer than 3 seeds is
    "inconclusive".
    """
    n_seeds = _check_int("n_seeds", n_seeds, 1)
    k = len(cause["significant"])
    sig_c, sig_p = sum(cause["significant"]), sum(pixel["significant"])
    rel_c, rel_p = float(np.mean(cause["relative"])), float(np.mean(pixel["relative"]))
    facts = (f"pre-training helps cause labels significantly at {sig_c} of {k} budgets "
             f"(mean relative gain {rel_c:.0%}) and pixel labels at {sig_p} of {k} (mean relative gain {rel_p:.0%})")
    if n_seeds < 3:
        return "inconclusive", f"only {n_seeds} seeds: too few for intervals; {facts}"
    if 2 * sig_c < k or rel_p >= rel_c:
        return "not supported", facts
    if 2 * sig_p < k and rel_p < rel_c / 2:
        return "supported", facts
    return "partly supported", facts


# ============================================================================ information
def entropy_bits(labels: Tensor) -> float:
    """Empirical entropy (bits) of integer labels (N,) — the bits one label carries."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.is_floating_point() or len(labels) == 0:
        raise ValueError("labels must be a non-empty 1-D integer tensor")
    p = torch.bincount(labels.cpu() - labels.min().cpu()).double() / len(labels)
    p = p[p > 0]
    return float(-(p * p.log2()).sum())


def mutual_information_bits(a: Tensor, b: Tensor, *, correct_bias: bool = True) -> float:
    """Mutual information (bits) between two integer labellings a, b (N,) of the same items.

    The plug-in estimate from the joint histogram; with ``correct_bias`` each entropy of
    I = H(a) + H(b) - H(a, b) gets the Miller-Madow correction (K - 1) / (2 N ln 2), K its number of
    observed values (cells): for independent variables with all A x B cells observed that removes
    (A - 1)(B - 1) / (2 N ln 2). Floored at 0.
    (Two independent variables with 10 and 64 values give a plug-in value of about 0.14 bits on
    3000 items; the corrected one is close to 0.)
    """
    if not isinstance(correct_bias, bool):
        raise TypeError(f"correct_bias={correct_bias!r} must be True or False")
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, Tensor) or t.dim() != 1 or t.is_floating_point() or len(t) == 0:
            raise ValueError(f"{name} must be a non-empty 1-D integer tensor")
    if len(a) != len(b):
        raise ValueError(f"a and b must label the same items: lengths {len(a)} and {len(b)}")
    a, b = a.cpu() - a.min().cpu(), b.cpu() - b.min().cpu()
    nb = int(b.max()) + 1
    joint = torch.bincount(a * nb + b, minlength=(int(a.max()) + 1) * nb).reshape(-1, nb).double() / len(a)
    outer = joint.sum(1, keepdim=True) * joint.sum(0, keepdim=True)
    nz = joint > 0
    mi = float((joint[nz] * (joint[nz] / outer[nz]).log2()).sum())
    if correct_bias:  # Miller-Madow for each entropy of I = H(a) + H(b) - H(a, b)
        n_a, n_b, n_ab = int((joint.sum(1) > 0).sum()), int((joint.sum(0) > 0).sum()), int(nz.sum())
        mi += ((n_a - 1) + (n_b - 1) - (n_ab - 1)) / (2 * len(a) * math.log(2))
    return max(0.0, mi)


def explained_variance(x: Tensor, groups: Tensor, *, adjusted: bool = True) -> float:
    """Fraction of the total pixel variance of images x (N, D) explained by a discrete variable.

    groups: (N,) integer with G observed values. Unadjusted (eta squared): 1 - W / T, W the sum of
    squared deviations from the group means, T from the overall mean, both summed over all pixels;
    1 when the variable determines the image, 0 when every group has the same mean image.
    ``adjusted`` (epsilon squared) corrects the upward bias of G group means fitted to N
    examples: 1 - (W / (N - G)) / (T / (N - 1)) (about 0 for an unrelated variable; may be < 0).
    """
    if not isinstance(adjusted, bool):
        raise TypeError(f"adjusted={adjusted!r} must be True or False")
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError("x must be a float tensor of shape (N, D)")
    if not isinstance(groups, Tensor) or groups.shape != (len(x),) or groups.is_floating_point():
        raise ValueError(f"groups must be an integer tensor of shape ({len(x)},)")
    x = x.double().cpu()
    g = groups.cpu() - groups.min().cpu()
    total = ((x - x.mean(0)) ** 2).sum()
    if total == 0:
        raise ValueError("x has zero variance: nothing to explain")
    n_groups = int(g.max()) + 1
    sums = torch.zeros(n_groups, x.shape[1], dtype=torch.float64).index_add_(0, g, x)
    counts = torch.bincount(g, minlength=n_groups).double().clamp(min=1).unsqueeze(1)
    within = ((x - (sums / counts)[g]) ** 2).sum()
    if not adjusted:
        return float(1 - within / total)
    n, n_obs = len(x), int((torch.bincount(g) > 0).sum())
    if n <= n_obs:
        raise ValueError(f"the adjusted fraction needs more examples ({n}) than groups ({n_obs})")
    return float(1 - (within / (n - n_obs)) / (total / (n - 1)))


# ============================================================================ controlled world
WIDTHS = ("thin", "normal", "bold")


@dataclass(frozen=True)
class WorldConfig:
    """The latent causes of the controlled world and how many values each takes.

    n_exemplars: base digits (handwriting styles) per class; n_deformations: distinct elastic +
    affine deformations (pose); the stroke width takes 3 values; the position is a shift of
    -max_shift..max_shift px along each axis.
    """

    n_exemplars: int = 8
    n_deformations: int = 64
    max_shift: int = 2

    def __post_init__(self) -> None:
        _check_int("n_exemplars", self.n_exemplars, 1)
        _check_int("n_deformations", self.n_deformations, 1)
        _check_int("max_shift", self.max_shift, 0, 4)

    def cardinalities(self) -> dict[str, int]:
        """Number of equally likely values of each cause."""
        return {"class": 10, "exemplar": self.n_exemplars, "deformation": self.n_deformations,
                "width": len(WIDTHS), "position": (2 * self.max_shift + 1) ** 2}

    def bits(self) -> dict[str, float]:
        """Entropy (bits) of each cause (uniform, independent) and their sum under "all"."""
        b = {k: math.log2(v) for k, v in self.cardinalities().items()}
        return {**b, "all": sum(b.values())}


class ControlledWorld:
    """Digits rendered from explicit causes: class, exemplar, deformation, stroke width, position.

    An image is: base digit ``exemplars[class, exemplar]`` -> deformed by draw number
    ``deformation`` of :func:`pretraining.distort.distort` (seed ``seed``) -> stroke width (thin:
    clamp(2x - 1), normal: x, bold: 3x3 grey-level dilation) -> shifted by ``position``
    (index p: p // (2s+1) - s px down and p % (2s+1) - s px right, s = max_shift; zeros enter).
    The exemplars are the first ``n_exemplars`` digits of each class in a seeded permutation of
    ``base``.
    """

    def __init__(self, base: Subset, config: WorldConfig = WorldConfig(), seed: int = 0):
        if not isinstance(base, Subset):
            raise TypeError(f"base must be a Subset, got {type(base).__name__}")
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
        seed = validate_seeds([seed], name="seed")[0]
        perm = torch.randperm(len(base), generator=_generator(seed, _WORLD_DOMAIN, 0)).to(base.y.device)
        rows = []
        for c in range(10):
            of_class = perm[base.y[perm] == c][:config.n_exemplars]
            if len(of_class) < config.n_exemplars:
                raise ValueError(f"base has {len(of_class)} digits of class {c}; "
                                 f"n_exemplars={config.n_exemplars} needs that many of every class")
            rows.append(of_class)
        self.exemplars = base.x[torch.stack(rows)].cpu()     # (10, K, 784)
        self.config, self.seed = config, seed

    def sample_causes(self, n: int, seed: int) -> dict[str, Tensor]:
        """n independent, uniform draws of every cause: {name: (n,) int64} (position as one index)."""
        n = _check_int("n", n, 1)
        seed = validate_seeds([seed], name="seed")[0]
        g = _generator(seed, _WORLD_DOMAIN, 1)
        return {k: torch.randint(v, (n,), generator=g) for k, v in self.config.cardinalities().items()}

    def render(self, causes: Mapping[str, Tensor]) -> Tensor:
        """Images (n, 784) in [0, 1] for causes {name: (n,) int64} as from :meth:`sample_causes`."""
        card = self.config.cardinalities()
        if set(causes) != set(card):
            raise ValueError(f"causes must have exactly the keys {sorted(card)}, got {sorted(causes)}")
        n = len(causes["class"])
        for k, v in causes.items():
            if not isinstance(v, Tensor) or v.shape != (n,) or v.is_floating_point() \
                    or int(v.min()) < 0 or int(v.max()) >= card[k]:
                raise ValueError(f"causes[{k!r}] must be an int tensor of shape ({n},) with values in 0..{card[k] - 1}")
        x = distort(self.exemplars[causes["class"], causes["exemplar"]], self.seed, causes["deformation"],
                    DistortionConfig())
        img = x.reshape(n, 1, SIDE, SIDE)
        thin = (2 * img - 1).clamp(0, 1)
        bold = F.max_pool2d(img, 3, stride=1, padding=1)
        w = causes["width"].reshape(n, 1, 1, 1)
        img = torch.where(w == 0, thin, torch.where(w == 2, bold, img))
        s = self.config.max_shift
        side = 2 * s + 1
        dy, dx = causes["position"] // side - s, causes["position"] % side - s   # shifts down, right
        padded = F.pad(img, (s, s, s, s))                    # out[i, j] = img[i - dy, j - dx]
        rows = (torch.arange(SIDE).unsqueeze(0) + (s - dy).unsqueeze(1)).reshape(n, 1, SIDE, 1)
        cols = (torch.arange(SIDE).unsqueeze(0) + (s - dx).unsqueeze(1)).reshape(n, 1, 1, SIDE)
        out = padded.gather(2, rows.expand(n, 1, SIDE, SIDE + 2 * s)).gather(3, cols.expand(n, 1, SIDE, SIDE))
        return out.reshape(n, SIDE * SIDE)


def world_report(world: ControlledWorld, x: Tensor, causes: Mapping[str, Tensor],
                 labels: Mapping[str, Tensor]) -> dict:
    """How many bits each cause and label carries, and how much of the image each explains.

    x (n, 784): images rendered from ``causes``; labels: {name: (n,) int64}, e.g. the class label
    and a pixel label. Returns {"causes": {name: {"bits", "variance_explained"}}, "image_bits":
    bits of all causes together (the image is a function of them), "labels": {name: {"bits" (its
    empirical entropy), "mi_bits": {cause: I(label; cause)}, "variance_explained"}}}.
    Variance explained is the adjusted :func:`explained_variance`; mutual information is the
    bias-corrected :func:`mutual_information_bits`.
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


def sweep_causes(world: ControlledWorld, vary: str, base: Mapping[str, int]) -> dict[str, Tensor]:
    """Causes that keep ``base`` fixed and run ``vary`` through all its values (at most 10, evenly).

    base: {cause: int value} for every cause. Returns {cause: (n,) int64}, n = min(values, 10).
    """
    card = world.config.cardinalities()
    if vary not in card:
        raise ValueError(f"vary={vary!r} is not a cause; use one of {', '.join(card)}")
    if set(base) != set(card) or any(not 0 <= int(v) < card[k] for k, v in base.items()):
        raise ValueError(f"base must give every cause ({', '.join(card)}) a value within its range")
    values = torch.linspace(0, card[vary] - 1, min(card[vary], 10)).round().long()
    return {k: values if k == vary else torch.full((len(values),), int(v), dtype=torch.int64)
            for k, v in base.items()}


# ============================================================================ figures
def world_figure(world: ControlledWorld, base: Mapping[str, int]) -> Figure:
    """One row per cause: the image of ``base`` with that one cause run through its values."""
    names = {"class": "digit class", "exemplar": "exemplar (style)", "deformation": "deformation (pose)",
             "width": "stroke width", "position": "position (shift)"}
    card = world.config.cardinalities()
    with styled():
        fig, axes = plt.subplots(len(card), 10, figsize=(10, 1.1 * len(card) + 0.4))
        for r, cause in enumerate(card):
            imgs = world.render(sweep_causes(world, cause, base)).reshape(-1, SIDE, SIDE)
            for c in range(10):
                ax = axes[r, c]
                ax.set_axis_off()
                if c < len(imgs):
                    ax.imshow(imgs[c].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, 0].text(-0.15, 0.5, f"{names[cause]}\n({card[cause]} values)", transform=axes[r, 0].transAxes,
                            ha="right", va="center", fontsize=10)
        fig.suptitle("The controlled world: each row changes one latent cause, the others stay fixed")
        fig.subplots_adjust(left=0.2, wspace=0.05, hspace=0.08)
    return fig


def causal_story_figure() -> Figure:
    """Two causal stories side by side, drawn as boxes and arrows (arrow width = bandwidth)."""
    with styled():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        stories = [
            ("(a) The label names a cause of the image", "stuff in the world\n(digit identity, pose,\nstroke, position)",
             [("image", "high bandwidth\n(many bits per image)", 7.0),
              ("label", "low bandwidth\n(log2 10 = 3.3 bits)", 1.5)],
             "pre-train: invert world→image,\nthen learn the few label bits"),
            ("(b) The label is a function of the pixels", "stuff in the world",
             [("image", "high bandwidth", 7.0)],
             "the label is computed from the image:\nlearn image→label directly"),
        ]
        for ax, (title, world, arrows, note) in zip(axes, stories):
            ax.set_xlim(0, 10)
            ax.set_ylim(0, 10)
            ax.set_axis_off()
            ax.set_title(title)

            def box(xy, text, color):
                ax.add_patch(FancyBboxPatch((xy[0] - 1.6, xy[1] - 0.9), 3.2, 1.8, boxstyle="round,pad=0.15",
                                            fc=color, ec="0.3", lw=1.2))
                ax.text(*xy, text, ha="center", va="center", fontsize=10)

            box((2.2, 5.5), world, "#f3e3c3")
            box((7.8, 8.0), "image\n(784 pixels)", "#cfe2f3")
            box((7.8, 3.0), "label", "#d9ead3")
            for target, text, width in arrows:
                end = (6.1, 8.0) if target == "image" else (6.1, 3.0)
                ax.add_patch(FancyArrowPatch((3.9, 5.5), end, arrowstyle="-|>", mutation_scale=20,
                                             lw=width, color="0.25"))
                at = (3.6, 8.1) if target == "image" else (3.6, 2.9)
                ax.text(*at, text, ha="center", va="center", fontsize=9, color="0.2")
            if len(arrows) == 1:   # (b): the label hangs off the image
                ax.add_patch(FancyArrowPatch((7.8, 7.0), (7.8, 4.0), arrowstyle="-|>", mutation_scale=20,
                                             lw=1.5, color="0.25"))
                ax.text(8.05, 5.5, "a pixel function\n(top-left similar\nto bottom-right?)", fontsize=9,
                        va="center", color="0.2")
            ax.text(5, 0.6, note, ha="center", va="center", fontsize=10, style="italic")
        fig.tight_layout()
    return fig


def budget_figure(n_labels: Sequence[int], errors: Mapping[str, Mapping[str, np.ndarray]],
                  intervals: Mapping[str, Sequence[Sequence[float]]]) -> Figure:
    """Test error against the number of labels (left) and the advantage of pre-training (right).

    errors[labelling][init]: (K, S) test errors (fractions) per budget and seed;
    intervals[labelling]: K [low, high] 95 % intervals of the mean advantage (random - pretrained).
    """
    colors = {"pretrained": "#1f77b4", "random": "#d62728"}
    styles = {"cause": "-", "pixel": "--"}
    names = {"cause": "cause labels (digit class)", "pixel": "pixel labels (patch similarity)"}
    n = np.asarray(n_labels)
    with styled():
        fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.8))
        for lab, by_init in errors.items():
            for init, e in by_init.items():
                e = 100 * np.asarray(e)
                ax0.plot(n, e.mean(1), styles[lab], marker="o", color=colors[init], label=f"{names[lab]}, {init}")
                for k in range(e.shape[1]):
                    ax0.scatter(n, e[:, k], s=8, color=colors[init], alpha=0.35)
            adv = 100 * (np.asarray(by_init["random"]) - np.asarray(by_init["pretrained"])).mean(1)
            ci = 100 * np.asarray(intervals[lab])
            ax1.errorbar(n, adv, yerr=[adv - ci[:, 0], ci[:, 1] - adv], fmt=styles[lab] + "o", capsize=4,
                         label=names[lab], color="k" if lab == "cause" else "0.5")
        ax0.set(ylabel="test error (%)", title="Test error: pre-trained vs random initialisation")
        ax0.legend(fontsize=9)
        ax1.axhline(0, color="0.6", lw=1)
        ax1.set(ylabel="error(random) - error(pre-trained)  (% points)",
                title="Advantage of pre-training (mean, 95 % bootstrap interval)")
        ax1.legend(fontsize=9)
        for ax in (ax0, ax1):
            ax.set_xscale("log")
            ax.set_xticks(n, [f"{v:,}" for v in n])
            ax.minorticks_off()
            ax.set_xlabel("number of labelled training examples (log scale)")
        fig.tight_layout()
    return fig


def nll_trajectory_figure(runs: Mapping[str, BudgetRun], n_labels: int) -> Figure:
    """Test NLL against training NLL, one line per net (one point per recorded epoch), per labelling."""
    colors = {"pretrained": "#1f77b4", "random": "#d62728"}
    with styled():
        fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.8), squeeze=False)
        for ax, (lab, run) in zip(axes[0], runs.items()):
            for i, init in enumerate(INITS):
                tr, te = run.train_nll[:, i].numpy(), run.test_nll[:, i].numpy()
                for m in range(tr.shape[1]):
                    ax.plot(tr[:, m], te[:, m], "-", color=colors[init], alpha=0.6, lw=1.2,
                            label=init if m == 0 else None)
                    ax.scatter(tr[-1, m], te[-1, m], color=colors[init], s=25, zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
            ax.set(xlabel="training NLL on the labelled examples (log scale; better to the right)",
                   ylabel="test NLL (log scale)", title=f"{lab} labels, {n_labels} labels: one line per net,\n"
                                            "one point per epoch (dot: last epoch)")
            ax.invert_xaxis()
            ax.legend()
        fig.tight_layout()
    return fig
