"""Model selection, the book's fair fight: every compared network trained to its best on validation data.

One routine, :func:`select_and_train`, is used by every chapter for every compared condition
(initialisation x depth, width, label budget, labelling):

1. **Rate.** Every rate of a log-spaced grid (at least 5 rates spanning at least 30x) is tried on the
   first ``select_seeds`` seeds, all rates x seeds as the members of one batched run (member m equals
   its seed trained alone with its rate), each with early stopping on the validation set. The rate
   whose members have the lowest mean validation error at their best epochs wins (ties: the smaller
   rate); a rate whose run diverged counts as worst. When the winner is the smallest or the largest
   rate tried, the grid is extended one step (its ratio) beyond it and the new rate tried, at most
   ``max_extensions`` times; a winner still on an edge is recorded (``at_edge``).
2. **Seeds.** Every seed is trained with the chosen rate (the selection seeds' runs at that rate are
   reused, as they equal those seeds trained alone) and reported at its best validation epoch: early
   stopping once the validation curve has flattened (it improved by at most ``flat_tolerance``
   during the last ``patience`` epochs; not while the net is still on the plateau), within the epoch
   budget ``FinetuneConfig.epochs``. A stopped member leaves the batched run.
3. **Convergence** per seed: trained (training NLL at the end of its run below half the chance NLL,
   ln C / 2, i.e. clearly off the sigmoid plateau at ln C) and flattened (the validation error improved by at
   most ``flat_tolerance`` during the last ``patience`` epochs run), and not diverged. A setting is
   converged when every seed is.

The test set is never an argument: nothing here can choose on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from .checks import rate_grid_problem, require_float, require_int
from .data import Subset
from .models import Classifier
from .train import FinetuneConfig, TrainingDiverged, evaluate, finetune, non_finite
from .seeding import validate_seeds

__all__ = ["SelectionConfig", "Selection", "select_and_train", "early_stopped", "flattened", "log_grid",
           "choose_rate", "RateChoice", "setting_converged", "Track", "TrainData",
           "PLATEAU_FRACTION", "LONGER_RUN"]

PLATEAU_FRACTION = 0.5
"""A seed has "trained" when its training NLL at the end of its run is below this fraction of ln C."""

LONGER_RUN = 4
"""The book's longer run: a seed that did not converge is trained again with this many times the budget."""

MAX_EXTENSIONS = 6
"""The most grid extensions a configuration may ask for."""


def log_grid(low: float, high: float, n: int) -> tuple[float, ...]:
    """``n`` log-spaced rates from ``low`` to ``high`` (both included), rounded to 4 significant digits."""
    low, high = require_float("low", low, gt=0), require_float("high", high, gt=0)
    require_int("n", n, 2)
    if high <= low:
        raise ValueError(f"high={high} is not allowed; it must be larger than low={low}")
    ratio = (high / low) ** (1 / (n - 1))
    return tuple(float(f"{low * ratio ** i:.4g}") for i in range(n))


@dataclass(frozen=True)
class SelectionConfig:
    """How a condition's fine-tuning rate and stopping epoch are chosen (see the module docstring).

    lr_grid: increasing, log-spaced rates (a constant ratio within 2 %), at least 5, spanning at
    least 30x; patience and flat_tolerance: a member stops (and its curve counts as flat) when its
    validation error improved by at most ``flat_tolerance`` (a fraction) during the last
    ``patience`` epochs; max_extensions: grid steps allowed beyond an edge; select_seeds: seeds that
    choose the rate.
    """

    lr_grid: tuple[float, ...]
    patience: int = 5
    max_extensions: int = 3
    select_seeds: int = 2
    flat_tolerance: float = 0.002

    def __post_init__(self):
        problem = rate_grid_problem(self.lr_grid)
        if problem:
            raise ValueError(f"lr_grid={self.lr_grid!r} is not allowed; give {problem}")
        object.__setattr__(self, "lr_grid", tuple(float(r) for r in self.lr_grid))
        require_int("patience", self.patience, 1)
        require_int("max_extensions", self.max_extensions, 0, MAX_EXTENSIONS)
        require_int("select_seeds", self.select_seeds, 1)
        require_float("flat_tolerance", self.flat_tolerance, ge=0, lt=1)

    @property
    def ratio(self) -> float:
        """The grid's step: the geometric mean ratio of neighbouring rates."""
        return (self.lr_grid[-1] / self.lr_grid[0]) ** (1 / (len(self.lr_grid) - 1))


@dataclass
class EarlyStopped:
    """Per member (M,): best validation error and its epoch, epochs run, training NLL at the best epoch,
    whether it diverged, and the curves (per member, one value per epoch it ran)."""

    valid_error: list[float]
    best_epoch: list[int]
    epochs_run: list[int]
    train_nll: list[float]
    diverged: list[bool]
    train_nll_curve: list[list[float]]
    valid_error_curve: list[list[float]]
    tracked_curve: list[list[list[float]]]


Track = Callable[[Classifier, Classifier], torch.Tensor]
"""track(start, current) -> (M, K): K per-member measurements of the network during training (e.g. how
far each layer moved from ``start``), recorded after every epoch."""


TrainData = Subset | Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]]
"""Training data: a :class:`Subset` shared by every member, or data(seeds) -> (x (M, N, V), y (M, N)),
each member's own examples (e.g. a labelled subset per seed) for the members' seeds (which may repeat)."""


def _train_tensors(train: TrainData, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    return (train.x, train.y) if isinstance(train, Subset) else train(seeds)


def early_stopped(clf: Classifier, train: TrainData, valid: Subset, config: FinetuneConfig, seeds: Sequence[int], *,
                  patience: int, tolerance: float = 0.0, train_layers: Sequence[int] | None = None,
                  track: Track | None = None, progress: bool = False) -> EarlyStopped:
    """Fine-tune ``clf`` in place with early stopping; afterwards each member holds its best-validation weights.

    The validation error is measured after every epoch; member m stops when its curve has flattened
    (:func:`flattened`: it improved by at most ``tolerance`` during the last ``patience`` epochs;
    with tolerance 0, ``patience`` epochs without a new best) once its training NLL is below the
    plateau bar (PLATEAU_FRACTION x ln C: a net still on the plateau has not started to learn, so it
    is not stopped for not improving), or when it diverges; it then leaves the batched run (its later
    epochs cost nothing), so it equals its seed trained alone; the run ends when every member stopped
    or after ``config.epochs``. A diverged
    member keeps its initial weights and has validation error inf. ``track``: see :data:`Track`; its
    values go to ``tracked_curve`` (per member, one list of K floats per epoch run).
    """
    require_int("patience", patience, 1)
    require_float("tolerance", tolerance, ge=0, lt=1)
    M = clf.n_members
    best_error = torch.full((M,), math.inf)
    best_epoch = torch.zeros(M, dtype=torch.int64)
    epochs_run = torch.zeros(M, dtype=torch.int64)
    best_nll = torch.full((M,), math.nan)
    diverged = torch.zeros(M, dtype=torch.bool)
    done = torch.zeros(M, dtype=torch.bool)
    best, start = clf.clone(), clf.clone()
    curves: dict[str, list[list]] = {name: [[] for _ in range(M)] for name in ("train_nll", "valid_error", "tracked")}

    def on_epoch(epoch: int, net: Classifier, train_nll: torch.Tensor) -> torch.Tensor:
        nll = train_nll.cpu()
        live = ~done
        running = live.nonzero().flatten()
        error = torch.full((M,), math.inf)
        error[running] = evaluate(net.members(running), valid.x, valid.y).error.cpu()
        bad = live & non_finite(error, net.weights).cpu()
        error[bad] = math.inf
        diverged[live & bad] = True
        improved = live & ~bad & (error < best_error)
        best_error[improved], best_epoch[improved], best_nll[improved] = error[improved], epoch, nll[improved]
        keep = improved.to(net.device)
        for target, source in zip(best.parameters(), net.parameters()):
            target.copy_(torch.where(keep.view(-1, *[1] * (source.dim() - 1)), source, target))
        tracked = track(start, net).cpu().tolist() if track is not None else None
        for m in live.nonzero().flatten().tolist():
            curves["train_nll"][m].append(float(nll[m]))
            curves["valid_error"][m].append(float(error[m]))
            if tracked is not None:
                curves["tracked"][m].append(tracked[m])
        epochs_run[live] = epoch
        # a flat curve stops a member that stopped improving, not one still on the plateau (it has not started)
        started = nll < PLATEAU_FRACTION * math.log(net.sizes[-1])
        flat = torch.tensor([bool(live[m]) and flattened(curves["valid_error"][m], patience, tolerance)
                             for m in range(M)])
        done[live & (bad | (flat & started))] = True
        return done.clone()  # finetune freezes the members that are done: they cost nothing from now on

    x, y = _train_tensors(train, seeds)
    finetune(clf, x, y, config, seeds, train_layers=train_layers, on_epoch=on_epoch,
             divergence="continue", progress=progress)
    for target, source in zip(clf.parameters(), best.parameters()):
        target.copy_(source)
    return EarlyStopped(valid_error=best_error.tolist(), best_epoch=best_epoch.tolist(), epochs_run=epochs_run.tolist(),
                        train_nll=best_nll.tolist(), diverged=diverged.tolist(),
                        train_nll_curve=curves["train_nll"], valid_error_curve=curves["valid_error"],
                        tracked_curve=curves["tracked"])


@dataclass
class Selection:
    """What :func:`select_and_train` found for one condition.

    clf: S members (one per seed), each at its best validation epoch. lr: the chosen rate; grid: the
    rates tried, increasing; grid_error: per rate the selection seeds' mean best validation error
    (None: diverged); extensions: grid steps added beyond an edge; at_edge: the chosen rate is still
    the smallest or largest tried. Per seed (S,): valid_error, best_epoch, epochs_run, train_nll (at
    the best epoch), converged, and the curves (one value per epoch run; record() adds the training
    NLL of the last epoch run, "final_train_nll", which decides "trained"). epochs: the budget;
    n_classes: C (the plateau is ln C). longer_run: when some seed did not converge and a longer run
    was asked for, how the first such seed fared alone at the chosen rate with a larger budget
    ({"seed", "lr", "epochs", "epochs_run", "best_epoch", "final_train_nll", "converged"}), else None.
    """

    clf: Classifier
    lr: float
    grid: list[float]
    grid_error: list[float | None]
    extensions: int
    at_edge: bool
    valid_error: list[float]
    best_epoch: list[int]
    epochs_run: list[int]
    train_nll: list[float]
    converged: list[bool]
    epochs: int
    n_classes: int
    curves: dict[str, list[list[float]]] = field(default_factory=dict, repr=False)
    longer_run: dict[str, Any] | None = None

    @property
    def all_converged(self) -> bool:
        return all(self.converged)

    def record(self) -> dict[str, Any]:
        """The JSON-able account of the selection (everything but the networks and curves)."""
        return {"lr": self.lr, "grid": self.grid, "grid_valid_error": self.grid_error,
                "extensions": self.extensions, "at_edge": self.at_edge, "epoch_budget": self.epochs,
                "best_epoch": self.best_epoch, "epochs_run": self.epochs_run,
                "train_nll": self.train_nll, "final_train_nll": [c[-1] for c in self.curves["train_nll"]],
                "valid_error": self.valid_error,
                "converged": self.converged, "n_converged": sum(self.converged),
                "setting_converged": self.all_converged, "longer_run": self.longer_run}


def setting_converged(record: dict[str, Any]) -> bool:
    """A condition converged (from its :meth:`Selection.record`): every seed converged and the chosen
    rate is not on the edge of the rates tried."""
    return bool(record["setting_converged"]) and not record["at_edge"]


def flattened(curve: Sequence[float], patience: int, tolerance: float) -> bool:
    """The validation error improved by at most ``tolerance`` during the last ``patience`` epochs of ``curve``."""
    if len(curve) <= patience:
        return False
    return min(curve[:-patience]) - min(curve) <= tolerance


def _converged(run: EarlyStopped, m: int, selection: SelectionConfig, n_classes: int) -> bool:
    trained = run.train_nll_curve[m][-1] < PLATEAU_FRACTION * math.log(n_classes)
    return (not run.diverged[m]) and trained and flattened(run.valid_error_curve[m], selection.patience,
                                                            selection.flat_tolerance)


def _select(member: Callable[[Sequence[int]], Classifier], train: TrainData, valid: Subset, config: FinetuneConfig,
            rates: Sequence[float], seeds: Sequence[int], selection: SelectionConfig, train_layers, member_chunk: int,
            track: Track | None, progress: bool) -> list[tuple[Classifier, EarlyStopped]]:
    """Early-stopped runs of every (rate, seed), rate-major, in batches of at most member_chunk members."""
    pairs = [(r, s) for r in rates for s in seeds]
    out = []
    for i in range(0, len(pairs), member_chunk):
        chunk = pairs[i:i + member_chunk]
        chunk_seeds = [s for _, s in chunk]
        clf = member(chunk_seeds)
        run = early_stopped(clf, train, valid, replace(config, lr=tuple(r for r, _ in chunk)), chunk_seeds,
                            patience=selection.patience, tolerance=selection.flat_tolerance,
                            train_layers=train_layers, track=track, progress=progress)
        out.append((clf, run))
    return out


def _split(parts: list[tuple[Classifier, EarlyStopped]]) -> tuple[Classifier, EarlyStopped]:
    """Concatenate batched runs' members (in order)."""
    clf = Classifier.stack_members([c for c, _ in parts])
    runs = [r for _, r in parts]
    joined = EarlyStopped(*[sum((getattr(r, f) for r in runs), []) for f in EarlyStopped.__dataclass_fields__])
    return clf, joined


def _pick(clf: Classifier, run: EarlyStopped, members: Sequence[int]) -> tuple[Classifier, EarlyStopped]:
    return clf.members(list(members)), EarlyStopped(*[[getattr(run, f)[m] for m in members] for f in EarlyStopped.__dataclass_fields__])


@dataclass
class RateChoice:
    """The outcome of :func:`choose_rate`: the chosen rate, the rates tried (increasing) with their
    validation errors (None: diverged), the grid steps added beyond an edge, and whether the chosen
    rate is still the smallest or largest tried."""

    lr: float
    grid: list[float]
    grid_error: list[float | None]
    extensions: int
    at_edge: bool


def choose_rate(trial: Callable[[Sequence[float]], Sequence[float]], selection: SelectionConfig) -> RateChoice:
    """The rate-grid protocol: ``trial(rates)`` -> per rate its validation error (inf: diverged).

    The grid is tried; while the best rate (lowest error; ties: the smaller rate) is an edge of the
    rates tried, one step (the grid's ratio) beyond it is tried, at most ``max_extensions`` times.
    Raises TrainingDiverged when every rate diverged.
    """
    errors: dict[float, float] = {}

    def run(rates: Sequence[float]) -> None:
        scores = list(trial(rates))
        if len(scores) != len(rates):
            raise ValueError(f"trial returned {len(scores)} errors for {len(rates)} rates")
        errors.update(zip(rates, (float(e) for e in scores)))

    run(selection.lr_grid)
    extensions = 0
    while True:
        grid = sorted(errors)
        best = min(grid, key=lambda r: (errors[r], r))
        edge = best in (grid[0], grid[-1]) and math.isfinite(errors[best])
        if not edge or extensions == selection.max_extensions:
            break
        step = best / selection.ratio if best == grid[0] else best * selection.ratio
        run([float(f"{step:.4g}")])
        extensions += 1
    if not math.isfinite(errors[best]):
        raise TrainingDiverged(f"fine-tuning diverged at every learning rate of {grid}; lower the rates")
    return RateChoice(lr=best, grid=grid, grid_error=[errors[r] if math.isfinite(errors[r]) else None for r in grid],
                      extensions=extensions, at_edge=edge)


def select_and_train(make: Callable[[Sequence[int]], Classifier], train: TrainData, valid: Subset,
                     config: FinetuneConfig, selection: SelectionConfig, seeds: Sequence[int], *,
                     train_layers: Sequence[int] | None = None, member_chunk: int | None = None,
                     track: Track | None = None, longer: int = 0, progress: bool = False) -> Selection:
    """The fair-fight protocol of the module docstring for one condition.

    make(seeds) -> a fresh :class:`Classifier` with one member per entry of seeds (seeds may repeat:
    the same initialisation trained with different rates). train: :data:`TrainData` (shared, or
    each member's own examples); valid: the validation set, shared by all members.
    config: fine-tuning settings; its ``epochs`` is the budget and its ``lr`` is replaced by the
    grid's rates. train_layers: as in :func:`pretraining.core.train.finetune`. member_chunk: at
    most this many members per batched run (memory); None for all. track: per-member measurements
    recorded every epoch (:data:`Track`), in ``curves["tracked"]``. longer: when > 0 and some seed
    did not converge, the first such seed is trained again alone at the chosen rate with ``longer``
    times the epoch budget, to say how many epochs it would need (``Selection.longer_run``).
    """
    if not callable(make):
        raise TypeError(f"make={make!r} must be callable(seeds) -> Classifier")
    for name, value, cls in (("config", config, FinetuneConfig), ("selection", selection, SelectionConfig),
                             ("valid", valid, Subset)):
        if not isinstance(value, cls):
            raise TypeError(f"{name}={value!r} must be a {cls.__name__}")
    if not (isinstance(train, Subset) or callable(train)):
        raise TypeError(f"train={train!r} must be a Subset or callable(seeds) -> (x, y)")
    seeds = validate_seeds(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds!r} is not allowed; the seeds must be distinct")
    if selection.select_seeds > len(seeds):
        raise ValueError(f"selection.select_seeds={selection.select_seeds} is not allowed; at most the "
                         f"{len(seeds)} seeds given")
    chunk = len(seeds) * (len(selection.lr_grid) + selection.max_extensions) if member_chunk is None else \
        require_int("member_chunk", member_chunk, 1)
    sel = seeds[:selection.select_seeds]
    tried: dict[float, tuple[Classifier, EarlyStopped]] = {}

    def trial(rates: Sequence[float]) -> list[float]:
        clf, run = _split(_select(make, train, valid, config, rates, sel, selection, train_layers,
                                  chunk, track, progress))
        k = len(sel)
        for i, r in enumerate(rates):
            tried[r] = _pick(clf, run, range(i * k, (i + 1) * k))
        return [math.inf if any(tried[r][1].diverged) else sum(tried[r][1].valid_error) / k for r in rates]

    rate = choose_rate(trial, selection)
    best = rate.lr
    rest = seeds[len(sel):]
    parts = [tried[best]]
    if rest:
        parts.append(_split(_select(make, train, valid, config, [best], rest, selection, train_layers,
                                    chunk, track, progress)))
    clf, run = _split(parts)
    n_classes = clf.sizes[-1]
    converged = [_converged(run, m, selection, n_classes) for m in range(len(seeds))]
    longer_run = None
    if require_int("longer", longer, 0) and not all(converged):
        seed = seeds[converged.index(False)]
        budget = replace(config, lr=best, epochs=config.epochs * longer)
        alone = early_stopped(make([seed]), train, valid, budget, [seed], patience=selection.patience,
                              tolerance=selection.flat_tolerance, train_layers=train_layers)
        longer_run = {"seed": seed, "lr": best, "epochs": budget.epochs, "epochs_run": alone.epochs_run[0],
                      "best_epoch": alone.best_epoch[0], "final_train_nll": alone.train_nll_curve[0][-1],
                      "converged": _converged(alone, 0, selection, n_classes)}
    return Selection(
        clf=clf, lr=best, grid=rate.grid, grid_error=rate.grid_error, extensions=rate.extensions,
        at_edge=rate.at_edge, valid_error=run.valid_error, best_epoch=run.best_epoch,
        epochs_run=run.epochs_run, train_nll=run.train_nll,
        converged=converged, epochs=config.epochs, n_classes=n_classes, longer_run=longer_run,
        curves={"train_nll": run.train_nll_curve, "valid_error": run.valid_error_curve,
                **({"tracked": run.tracked_curve} if track is not None else {})})
