"""Training: CD-k for RBMs, denoising auto-encoders, greedy stacks, fine-tuning, evaluation.

All trainers work on M members at once (see :mod:`pretraining.models`): member m has its own
minibatch order ("order" generator), its own noise ("noise" generator) and, through the model, its
own initialisation, all derived from ``seeds[m]`` (:mod:`pretraining.seeding`), so member m of a
batched run equals seed ``seeds[m]`` trained alone.

Inputs ``x`` are (N, V), shared by all members, or (M, N, V) per member (e.g. the codes of a lower
layer of the same member). Each epoch uses floor(N / batch_size) minibatches of exactly
``batch_size`` examples from the member's fresh permutation (a remainder is skipped that epoch).
Histories hold one entry per epoch, each a list of M floats.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm

from .checks import require_float, require_int
from .models import Classifier, DenoisingAutoencoder, RBM, Stack
from .seeding import bernoulli, member_generators, permutations, uniform, validate_seeds

Tensor = torch.Tensor

EVAL_EXAMPLES = 1000  # examples (evenly spaced through x) used for the per-epoch monitoring of RBMs/DAEs


class TrainingDiverged(RuntimeError):
    """A loss or a parameter became NaN or infinite."""


# ----------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class RBMConfig:
    """CD-k training of an RBM: plain SGD with momentum and L2 weight decay on W."""

    epochs: int
    lr: float
    batch_size: int = 100
    momentum: float = 0.5
    weight_decay: float = 2e-4
    k: int = 1
    persistent: bool = False

    def __post_init__(self):
        require_int("RBMConfig.epochs", self.epochs, 1)
        require_float("RBMConfig.lr", self.lr, gt=0)
        require_int("RBMConfig.batch_size", self.batch_size, 1)
        require_float("RBMConfig.momentum", self.momentum, ge=0, lt=1)
        require_float("RBMConfig.weight_decay", self.weight_decay, ge=0)
        require_int("RBMConfig.k", self.k, 1)
        if not isinstance(self.persistent, bool):
            raise TypeError(f"RBMConfig.persistent={self.persistent!r} must be True or False")


@dataclass(frozen=True)
class DAEConfig:
    """Denoising auto-encoder training: masking noise (each input zeroed with probability ``noise``), SGD."""

    epochs: int
    lr: float
    batch_size: int = 100
    noise: float = 0.25
    tied: bool = True
    weight_decay: float = 0.0

    def __post_init__(self):
        require_int("DAEConfig.epochs", self.epochs, 1)
        require_float("DAEConfig.lr", self.lr, gt=0)
        require_int("DAEConfig.batch_size", self.batch_size, 1)
        require_float("DAEConfig.noise", self.noise, ge=0, lt=1)
        if not isinstance(self.tied, bool):
            raise TypeError(f"DAEConfig.tied={self.tied!r} must be True or False")
        require_float("DAEConfig.weight_decay", self.weight_decay, ge=0)


@dataclass(frozen=True)
class FinetuneConfig:
    """Supervised SGD on the mean negative log-likelihood (optional momentum, L2 decay on weights).

    ``lr`` and ``weight_decay`` are one number for every member or a tuple with one per member
    (M,), so a grid of rates x seeds trains as one batched computation.
    """

    epochs: int
    lr: float | tuple[float, ...]
    batch_size: int = 50
    weight_decay: float | tuple[float, ...] = 0.0
    momentum: float = 0.0

    def __post_init__(self):
        require_int("FinetuneConfig.epochs", self.epochs, 1)
        object.__setattr__(self, "lr", _per_member("FinetuneConfig.lr", self.lr, gt=0))
        require_int("FinetuneConfig.batch_size", self.batch_size, 1)
        object.__setattr__(self, "weight_decay", _per_member("FinetuneConfig.weight_decay", self.weight_decay, ge=0))
        require_float("FinetuneConfig.momentum", self.momentum, ge=0, lt=1)

    def per_member(self, n_members: int, device, dtype) -> tuple[Tensor, Tensor]:
        """The learning rates and weight decays as (n_members,) tensors."""
        out = []
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != n_members:
                raise ValueError(f"FinetuneConfig.{name} has {len(value)} values but the classifier has "
                                 f"{n_members} members; give one number or one per member")
            out.append(torch.as_tensor(value, device=device, dtype=dtype).expand(n_members).clone())
        return out[0], out[1]


def _per_member(name: str, value, **bounds) -> float | tuple[float, ...]:
    """A number, or a non-empty sequence of numbers (one per member) as a tuple, each within bounds."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name}=[] is not allowed; give a number or one number per member")
        return tuple(require_float(f"{name} entry", v, **bounds) for v in value)
    return require_float(name, value, **bounds)


# ----------------------------------------------------------------------------------------- helpers
def _check_config(config, cls) -> None:
    if not isinstance(config, cls):
        raise TypeError(f"config={config!r} must be a {cls.__name__}")


def _prepare_x(x, n_members: int, width: int, batch_size: int, device, dtype, name: str = "x") -> Tensor:
    """Validate x ((N, width) or (n_members, N, width)) and move it to the model's device/dtype."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    ok = (x.dim() == 2 and x.shape[1] == width) or (x.dim() == 3 and x.shape[0] == n_members and x.shape[2] == width)
    if not ok:
        raise ValueError(f"{name} has shape {tuple(x.shape)}; expected (N, {width}) or ({n_members}, N, {width})")
    n = x.shape[-2]
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the number of examples N={n}; use batch_size <= {n}")
    return x.to(device=device, dtype=dtype)


def _prepare_y(y, n_members: int, n: int, n_classes: int, device, *, check_range: bool = True) -> Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise TypeError(f"y must be an integer torch.Tensor of class labels, got {getattr(y, 'dtype', type(y))}")
    if not ((y.dim() == 1 and y.shape[0] == n) or (y.dim() == 2 and y.shape == (n_members, n))):
        raise ValueError(f"y has shape {tuple(y.shape)}; expected ({n},) or ({n_members}, {n}) to match x")
    if check_range and y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"y holds labels in [{int(y.min())}, {int(y.max())}]; allowed are 0..{n_classes - 1}")
    return y.to(device=device, dtype=torch.int64)


def _rows(t: Tensor, idx: Tensor, shared: bool) -> Tensor:
    """Member m's rows idx[m] (idx (M, B)): shared t (N, ...) or per-member t (M, N, ...) -> (M, B, ...)."""
    if shared:
        return t[idx]
    return t[torch.arange(t.shape[0], device=t.device).unsqueeze(1), idx]


def _eval_subset(x: Tensor) -> Tensor:
    """EVAL_EXAMPLES rows evenly spaced through x (..., N, V): a data set stored sorted by class (as
    mnist-10k is) is monitored on every class, not on the first one or two."""
    n = x.shape[-2]
    idx = torch.linspace(0, n - 1, min(n, EVAL_EXAMPLES), device=x.device).round().long()
    return x[..., idx, :]


def _diverged(what: str, layer, epoch: int, lr, values: Tensor, params: Sequence[Tensor],
              members: Sequence[int] | None = None) -> None:
    """Raise TrainingDiverged if ``values`` (K,) or any parameter is not finite (lr: one or (M,) rates;
    members: the K members' numbers, None for 0..K-1)."""
    bad = non_finite(values, params)
    if bool(bad.any()):
        members = [m if members is None else members[m] for m in bad.nonzero().flatten().tolist()]
        rates = lr if not isinstance(lr, tuple) else [lr[m] for m in members]
        raise TrainingDiverged(
            f"{what} (layer {layer}) diverged at epoch {epoch} with lr={rates}: NaN/inf in member(s) {members}; "
            "lower the learning rate"
        )


def non_finite(values: Tensor, params: Sequence[Tensor]) -> Tensor:
    """(M,) bool: member m's value or any of its parameters is NaN or infinite."""
    bad = ~torch.isfinite(values)
    for p in params:
        bad |= ~torch.isfinite(p.reshape(p.shape[0], -1)).all(dim=1)
    return bad


def _progress(total: int, desc: str, progress: bool):
    return tqdm(range(1, total + 1), desc=desc, disable=not progress, file=sys.stderr, leave=False, dynamic_ncols=True)


# ----------------------------------------------------------------------------------------- RBM
def cd_phases(rbm: RBM, v0: Tensor, k: int, generators: Sequence[torch.Generator],
              chain: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """The two phases of CD-k (or persistent CD): p(h | v0), the chain's end v_k and p(h | v_k).

    v0 (M, B, V). The negative phase runs ``k`` full Gibbs steps (hidden and visible units
    sampled) from v0, or from ``chain`` (M, B, V) for persistent CD.
    Returns ph0 (M, B, H), v_k (M, B, V), ph_k (M, B, H).
    """
    ph0 = rbm.hidden_probs(v0)
    v = v0 if chain is None else chain
    ph = ph0 if chain is None else rbm.hidden_probs(chain)
    for _ in range(k):
        v = bernoulli(rbm.visible_probs(bernoulli(ph, generators)), generators)
        ph = rbm.hidden_probs(v)
    return ph0, v, ph


def cd_gradient(rbm: RBM, v0: Tensor, k: int, generators: Sequence[torch.Generator],
                chain: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """CD-k (or persistent CD) estimate of the gradient of the mean log-likelihood of v0 (M, B, V),
    from :func:`cd_phases`. Returns dW (M, V, H), db_visible (M, V), db_hidden (M, H) and the
    chain's end v_k (M, B, V)."""
    ph0, v, ph = cd_phases(rbm, v0, k, generators, chain)
    B = v0.shape[1]
    dW = torch.baddbmm(torch.bmm(v0.transpose(1, 2), ph0), v.transpose(1, 2), ph, alpha=-1.0).div_(B)
    return dW, (v0 - v).mean(1), (ph0 - ph).mean(1), v


def _rbm_step(rbm: RBM, velocity: Sequence[Tensor], v0: Tensor, ph0: Tensor, v: Tensor, ph: Tensor,
              config: RBMConfig) -> None:
    """One momentum step from the CD phases (v0, v (M, B, V); ph0, ph (M, B, H)), in place:
    vel <- momentum * vel + lr * (grad - weight_decay * W), W <- W + vel (no decay on biases),
    with grad = :func:`cd_gradient`'s. The weight gradient is written by two GEMMs straight
    into the velocity (momentum as their beta, lr / B as their alpha), not formed on its own:
    3 passes over W-sized tensors instead of 7 (the same update up to fp32 rounding)."""
    vW, vbv, vbh = velocity
    lr, momentum, step = config.lr, config.momentum, config.lr / v0.shape[1]
    vW.baddbmm_(v0.transpose(1, 2), ph0, beta=momentum, alpha=step)
    vW.baddbmm_(v.transpose(1, 2), ph, alpha=-step)
    if config.weight_decay:
        vW.add_(rbm.W, alpha=-lr * config.weight_decay)
    vbv.mul_(momentum).add_((v0 - v).mean(1), alpha=lr)
    vbh.mul_(momentum).add_((ph0 - ph).mean(1), alpha=lr)
    for p, buf in zip((rbm.W, rbm.b_visible, rbm.b_hidden), velocity):
        p.add_(buf)


def train_rbm(rbm: RBM, x: Tensor, config: RBMConfig, seeds: Sequence[int], *, progress: bool = True,
              layer: int = 1) -> dict[str, list]:
    """Train ``rbm`` in place with CD-k (PCD-k if ``config.persistent``).

    x (N, V) or (M, N, V), values in [0, 1]. Update per minibatch of B examples:
    vel <- momentum * vel + lr * (grad - weight_decay * W) (no decay on biases); W <- W + vel.
    Returns {"recon_error": [...], "pll": [...]}: per epoch, (M,) lists measured on
    EVAL_EXAMPLES examples (mean-field reconstruction MSE; stochastic pseudo-log-likelihood with
    fixed ("eval", layer) bits). Raises TrainingDiverged on NaN/inf.
    """
    _check_config(config, RBMConfig)
    seeds = validate_seeds(seeds, rbm.n_members)
    x = _prepare_x(x, rbm.n_members, rbm.n_visible, config.batch_size, rbm.device, rbm.dtype)
    order = member_generators(seeds, "order", layer, rbm.device)
    noise = member_generators(seeds, "noise", layer, rbm.device)
    n, B, lr = x.shape[-2], config.batch_size, config.lr
    x_eval = _eval_subset(x)
    vel = [torch.zeros_like(rbm.W), torch.zeros_like(rbm.b_visible), torch.zeros_like(rbm.b_hidden)]
    chain = None
    history: dict[str, list] = {"recon_error": [], "pll": []}
    bar = _progress(config.epochs, f"RBM layer {layer}", progress)
    for epoch in bar:
        perm = permutations(n, order, device=rbm.device)
        for start in range(0, n - B + 1, B):
            v0 = _rows(x, perm[:, start:start + B], x.dim() == 2)
            if config.persistent and chain is None:
                chain = bernoulli(v0, noise)
            ph0, v_end, ph = cd_phases(rbm, v0, config.k, noise, chain)
            _rbm_step(rbm, vel, v0, ph0, v_end, ph, config)
            if config.persistent:
                chain = v_end
        recon = rbm.reconstruction_error(x_eval)
        _diverged("RBM", layer, epoch, lr, recon, rbm.state_dict().values())
        pll = rbm.pseudo_log_likelihood(x_eval, member_generators(seeds, "eval", layer, rbm.device))
        history["recon_error"].append(recon.tolist())
        history["pll"].append(pll.tolist())
        bar.set_postfix(recon=f"{recon.mean():.4f}", pll=f"{pll.mean():.1f}")
    return history


# ----------------------------------------------------------------------------------------- DAE
def corrupt(x: Tensor, noise: float, generators: Sequence[torch.Generator]) -> Tensor:
    """Masking noise: each entry of x (M, B, V) is set to 0 with probability ``noise``."""
    return uniform(x.shape[1:], generators, device=x.device, dtype=x.dtype).ge_(noise).mul_(x)


def train_dae(dae: DenoisingAutoencoder, x: Tensor, config: DAEConfig, seeds: Sequence[int], *,
              progress: bool = True, layer: int = 1) -> dict[str, list]:
    """Train ``dae`` in place by SGD on :meth:`DenoisingAutoencoder.loss` of masked inputs (autograd).

    x (N, V) or (M, N, V) in [0, 1]. Update: p <- p - lr * (grad + weight_decay * p) for weights.
    Returns {"loss": per-epoch mean training loss (M,), "recon_error": MSE on
    EVAL_EXAMPLES clean examples (M,)}. Raises TrainingDiverged on NaN/inf.
    """
    _check_config(config, DAEConfig)
    if config.tied != dae.tied:
        raise ValueError(f"DAEConfig.tied={config.tied} but the auto-encoder has tied={dae.tied}; make them agree")
    seeds = validate_seeds(seeds, dae.n_members)
    x = _prepare_x(x, dae.n_members, dae.n_visible, config.batch_size, dae.device, dae.dtype)
    order = member_generators(seeds, "order", layer, dae.device)
    noise = member_generators(seeds, "noise", layer, dae.device)
    n, B, lr = x.shape[-2], config.batch_size, config.lr
    params = [p for p in dae.state_dict().values()]
    history: dict[str, list] = {"loss": [], "recon_error": []}
    bar = _progress(config.epochs, f"DAE layer {layer}", progress)
    for p in params:
        p.requires_grad_(True)
    try:
        for epoch in bar:
            perm = permutations(n, order, device=dae.device)
            total = torch.zeros(dae.n_members, device=dae.device, dtype=dae.dtype)
            n_batches = 0
            for start in range(0, n - B + 1, B):
                xb = _rows(x, perm[:, start:start + B], x.dim() == 2)
                loss = dae.loss(xb, corrupt(xb, config.noise, noise))
                grads = torch.autograd.grad(loss.sum(), params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        if config.weight_decay and p.dim() == 3:
                            g = g.add(p, alpha=config.weight_decay)
                        p.sub_(g, alpha=lr)
                total += loss.detach()
                n_batches += 1
            with torch.no_grad():
                mean_loss = total / n_batches
                _diverged("DAE", layer, epoch, lr, mean_loss, params)
                recon = dae.reconstruction_error(_eval_subset(x))
            history["loss"].append(mean_loss.tolist())
            history["recon_error"].append(recon.tolist())
            bar.set_postfix(loss=f"{mean_loss.mean():.2f}", recon=f"{recon.mean():.4f}")
    finally:
        for p in params:
            p.requires_grad_(False)
    return history


# ----------------------------------------------------------------------------------------- stacks
def pretrain_stack(kind: str, x: Tensor, hidden_sizes: Sequence[int], config: RBMConfig | DAEConfig,
                   seeds: Sequence[int], *, progress: bool = True) -> tuple[Stack, list[dict]]:
    """Greedy layer-wise pre-training of ``len(hidden_sizes)`` RBMs or DAEs.

    x (N, V) on the device to train on. Layer k (1-based) is initialised from ("init", k) and trained
    on the mean-field codes (M, N, H_{k-1}) of layers 1..k-1 of the same member. Float32 unless x is
    float64. Returns the stack and one history per layer.
    """
    if kind not in Stack.KINDS:
        raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
    _check_config(config, RBMConfig if kind == "rbm" else DAEConfig)
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence) or not hidden_sizes:
        raise ValueError(f"hidden_sizes={hidden_sizes!r} is not allowed; give a non-empty list of ints >= 1")
    for h in hidden_sizes:
        if isinstance(h, bool) or not isinstance(h, int) or h < 1:
            raise ValueError(f"hidden_sizes={list(hidden_sizes)!r} is not allowed; every size must be an int >= 1")
    seeds = validate_seeds(seeds)
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a (N, V) tensor, got shape {tuple(getattr(x, 'shape', ()))}")
    if config.batch_size > x.shape[0]:
        raise ValueError(f"batch_size={config.batch_size} is larger than the number of examples N={x.shape[0]}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x = x.to(dtype)
    layers, histories, inputs = [], [], x
    for k, n_out in enumerate(hidden_sizes, start=1):
        n_in = inputs.shape[-1]
        if kind == "rbm":
            model = RBM.init(n_in, n_out, seeds, device=x.device, dtype=dtype, layer=k)
            histories.append(train_rbm(model, inputs, config, seeds, progress=progress, layer=k))
            with torch.no_grad():
                inputs = model.hidden_probs(inputs)
        else:
            model = DenoisingAutoencoder.init(n_in, n_out, seeds, tied=config.tied, device=x.device, dtype=dtype, layer=k)
            histories.append(train_dae(model, inputs, config, seeds, progress=progress, layer=k))
            with torch.no_grad():
                inputs = model.encode(inputs)
        layers.append(model)
    return Stack(kind, layers), histories


# ----------------------------------------------------------------------------------------- fine-tuning
def _train_set(clf: Classifier, train_layers) -> list[int]:
    if train_layers is None:
        return list(range(clf.depth + 1))
    layers = sorted(set(train_layers))
    if not layers or any(isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= clf.depth for i in layers):
        raise ValueError(f"train_layers={train_layers!r} is not allowed; give layer indices in 0..{clf.depth} "
                         f"({clf.depth} is the softmax layer) or None for all")
    return layers


def _sgd_step(clf: Classifier, x: Tensor, y: Tensor, lr: Tensor, weight_decay: Tensor | None, momentum: float,
              layers: list[int], velocity: list[tuple[Tensor, Tensor]] | None) -> tuple[Tensor, Tensor]:
    """One SGD step on the mean NLL of (x (M, B, V), y (M, B)) with hand-written backprop.

    lr (M,) per-member learning rates; weight_decay (M,) per-member L2 decay, or None for none.
    Returns the minibatch NLL (M,) and the number of errors (M,) before the step.
    """
    acts = [x]
    for W, b in zip(clf.weights[:-1], clf.biases[:-1]):
        acts.append(torch.sigmoid(torch.baddbmm(b.unsqueeze(1), acts[-1], W)))
    logp = torch.log_softmax(torch.baddbmm(clf.biases[-1].unsqueeze(1), acts[-1], clf.weights[-1]), dim=-1)
    target = y.unsqueeze(-1)
    nll = -logp.gather(2, target).squeeze(-1).mean(-1)
    errors = (logp.argmax(-1) != y).sum(-1)
    delta = logp.exp_().scatter_add_(2, target, torch.full_like(target, -1, dtype=logp.dtype))
    delta.div_(x.shape[1])  # d mean-NLL / d logits, (M, B, C)
    lr3, lowest = lr.view(-1, 1, 1), layers[0]
    decay = None if weight_decay is None else (lr * weight_decay).view(-1, 1, 1)
    for i in range(clf.depth, lowest - 1, -1):
        W, b, a = clf.weights[i], clf.biases[i], acts[i]
        next_delta = torch.bmm(delta, W.transpose(1, 2)).mul_(a * (1 - a)) if i > lowest else None
        if i in layers:
            step = delta.mul_(lr3)  # lr * gradient w.r.t. the logits of layer i, per member
            if velocity is None:
                if decay is not None:
                    W.sub_(W * decay)
                W.baddbmm_(a.transpose(1, 2), step, alpha=-1.0)
                b.sub_(step.sum(1))
            else:
                vW, vb = velocity[i]
                vW.baddbmm_(a.transpose(1, 2), step, beta=momentum, alpha=-1.0)
                if decay is not None:
                    vW.sub_(W * decay)
                vb.mul_(momentum).sub_(step.sum(1))
                W.add_(vW)
                b.add_(vb)
        delta = next_delta
    return nll, errors


def _velocity(clf: Classifier, config: FinetuneConfig):
    if config.momentum == 0:
        return None
    return [(torch.zeros_like(W), torch.zeros_like(b)) for W, b in zip(clf.weights, clf.biases)]


@dataclass
class _Active:
    """The members a fine-tuning run still trains: their positions in the full classifier and their own
    copies of everything per member (weights, velocity, rates, generators, per-member data)."""

    idx: Tensor
    clf: Classifier
    velocity: list[tuple[Tensor, Tensor]] | None
    lr: Tensor
    decay: Tensor | None
    order: list[torch.Generator]
    x: Tensor
    y: Tensor

    def keep(self, keep: Tensor) -> "_Active":
        """Only the members where keep (K,) bool is True, compacted."""
        k = keep.nonzero().flatten().to(self.lr.device)
        return _Active(
            idx=self.idx[k], clf=self.clf.members(k),
            velocity=None if self.velocity is None else [(vW[k], vb[k]) for vW, vb in self.velocity],
            lr=self.lr[k], decay=None if self.decay is None else self.decay[k],
            order=[self.order[i] for i in k.tolist()],
            x=self.x if self.x.dim() == 2 else self.x[k], y=self.y if self.y.dim() == 1 else self.y[k])

    def write_back(self, clf: Classifier) -> None:
        """Copy the active members' weights into their places in ``clf`` (the full classifier)."""
        if self.clf is not clf:
            for target, source in zip(clf.parameters(), self.clf.parameters()):
                target[self.idx] = source


@torch.no_grad()
def finetune(clf: Classifier, x: Tensor, y: Tensor, config: FinetuneConfig, seeds: Sequence[int], *,
             train_layers: Sequence[int] | None = None,
             on_epoch: Callable[[int, Classifier, Tensor], bool | Tensor | None] | None = None,
             divergence: str = "raise", progress: bool = True) -> dict[str, list]:
    """Supervised fine-tuning of ``clf`` in place: minibatch SGD on the mean NLL.

    x (N, V) or (M, N, V); y (N,) or (M, N) int labels. ``train_layers``: None for all layers, or the
    indices to update (0..depth-1 hidden, depth the softmax; e.g. [clf.depth] trains only the
    softmax on frozen features). ``on_epoch(epoch, clf, train_nll)`` runs after each epoch 1..E
    (train_nll: (M,) the epoch's running training NLL, NaN for a frozen member); it returns True to
    stop training after that epoch, or an (M,) bool tensor of the members to freeze from then on
    (early stopping per member: a frozen member keeps its weights and costs nothing; every other
    member is unaffected, as each member has its own generators; training stops when all are frozen).
    ``divergence``: "raise" (raise TrainingDiverged on NaN/inf) or "continue" (leave the non-finite
    members as they are, every other member is unaffected; for rate grids, whose largest rates may
    diverge). Returns {"train_nll": per epoch (M,), "train_error": per epoch (M,)} (running averages
    over the epoch's minibatches, measured before each step; NaN for a frozen member).
    """
    _check_config(config, FinetuneConfig)
    seeds = validate_seeds(seeds, clf.n_members)
    layers = _train_set(clf, train_layers)
    if on_epoch is not None and not callable(on_epoch):
        raise TypeError(f"on_epoch={on_epoch!r} must be callable(epoch, clf, train_nll) or None")
    if divergence not in ("raise", "continue"):
        raise ValueError(f"divergence={divergence!r} is not allowed; use 'raise' or 'continue'")
    M = clf.n_members
    lr, wd = config.per_member(M, clf.device, clf.dtype)
    x = _prepare_x(x, M, clf.sizes[0], config.batch_size, clf.device, clf.dtype)
    y = _prepare_y(y, M, x.shape[-2], clf.sizes[-1], clf.device)
    run = _Active(idx=torch.arange(M, device=clf.device), clf=clf, velocity=_velocity(clf, config), lr=lr,
                  decay=wd if bool(wd.any()) else None, order=member_generators(seeds, "order", 0, clf.device),
                  x=x, y=y)
    n, B = x.shape[-2], config.batch_size
    history: dict[str, list] = {"train_nll": [], "train_error": []}
    bar = _progress(config.epochs, "fine-tune", progress)
    for epoch in bar:
        net = run.clf
        perm = permutations(n, run.order, device=clf.device)
        nll_sum = torch.zeros(net.n_members, device=clf.device, dtype=clf.dtype)
        err_sum = torch.zeros(net.n_members, device=clf.device, dtype=torch.int64)
        n_batches = 0
        for start in range(0, n - B + 1, B):
            idx = perm[:, start:start + B]
            nll, errors = _sgd_step(net, _rows(run.x, idx, run.x.dim() == 2), _rows(run.y, idx, run.y.dim() == 1),
                                    run.lr, run.decay, config.momentum, layers, run.velocity)
            nll_sum += nll
            err_sum += errors
            n_batches += 1
        train_nll = torch.full((M,), float("nan"), device=clf.device, dtype=clf.dtype)
        train_error = train_nll.clone()
        train_nll[run.idx] = nll_sum / n_batches
        train_error[run.idx] = err_sum.to(clf.dtype) / (n_batches * B)
        run.write_back(clf)
        if divergence == "raise":
            _diverged("fine-tuning", "all" if train_layers is None else layers, epoch, config.lr,
                      train_nll[run.idx], net.weights, members=run.idx.tolist())
        history["train_nll"].append(train_nll.tolist())
        history["train_error"].append(train_error.tolist())
        bar.set_postfix(nll=f"{train_nll[run.idx].mean():.4f}")
        stop = on_epoch(epoch, clf, train_nll) if on_epoch is not None else None
        if isinstance(stop, Tensor):
            if stop.shape != (M,) or stop.dtype != torch.bool:
                raise ValueError(f"on_epoch returned a tensor of shape {tuple(stop.shape)} and dtype {stop.dtype}; "
                                 f"expected ({M},) bool (the members to freeze)")
            keep = ~stop.to(clf.device)[run.idx]
            if not bool(keep.any()):
                break
            if not bool(keep.all()):
                run = run.keep(keep)
        elif stop:
            break
    return history


@torch.no_grad()
def finetune_stream(clf: Classifier, next_batch: Callable[[int], tuple[Tensor, Tensor]], n_steps: int,
                    config: FinetuneConfig, *, log_every: int = 100, divergence: str = "raise",
                    progress: bool = True) -> dict[str, list]:
    """Online SGD on a stream (each example seen once): ``next_batch(step)`` -> (x (M, B, V) or (B, V), y).

    Uses config.lr, weight_decay and momentum (epochs and batch_size are set by the stream).
    Returns {"step": [last step of each block], "train_nll": [(M,) mean over the block]} with blocks
    of ``log_every`` steps. ``divergence``: "raise" (TrainingDiverged on NaN/inf) or "continue"
    (non-finite members are left as they are, as in :func:`finetune`).
    """
    _check_config(config, FinetuneConfig)
    if divergence not in ("raise", "continue"):
        raise ValueError(f"divergence={divergence!r} is not allowed; use 'raise' or 'continue'")
    require_int("finetune_stream.n_steps", n_steps, 1)
    require_int("finetune_stream.log_every", log_every, 1)
    if not callable(next_batch):
        raise TypeError(f"next_batch={next_batch!r} must be callable(step) -> (x, y)")
    layers = list(range(clf.depth + 1))
    velocity = _velocity(clf, config)
    lr, wd = config.per_member(clf.n_members, clf.device, clf.dtype)
    decay = wd if bool(wd.any()) else None
    history: dict[str, list] = {"step": [], "train_nll": []}
    nll_sum = torch.zeros(clf.n_members, device=clf.device, dtype=clf.dtype)
    count = 0
    bar = tqdm(range(n_steps), desc="fine-tune (stream)", disable=not progress, file=sys.stderr, leave=False)
    for step in bar:
        xb, yb = next_batch(step)
        xb = _prepare_x(xb, clf.n_members, clf.sizes[0], 1, clf.device, clf.dtype, name="next_batch x")
        if xb.dim() == 2:
            xb = xb.unsqueeze(0).expand(clf.n_members, -1, -1)
        # the label range is checked on the first batch only (the check costs a device sync)
        yb = _prepare_y(yb, clf.n_members, xb.shape[1], clf.sizes[-1], clf.device, check_range=step == 0)
        if yb.dim() == 1:
            yb = yb.expand(clf.n_members, -1)
        nll, _ = _sgd_step(clf, xb, yb, lr, decay, config.momentum, layers, velocity)
        nll_sum += nll
        count += 1
        if count == log_every or step == n_steps - 1:
            mean = nll_sum / count
            if divergence == "raise":
                _diverged("fine-tuning (stream)", "all", step + 1, config.lr, mean, clf.weights)
            history["step"].append(step + 1)
            history["train_nll"].append(mean.tolist())
            bar.set_postfix(nll=f"{mean.mean():.4f}")
            nll_sum.zero_()
            count = 0
    return history


# ----------------------------------------------------------------------------------------- evaluation
@dataclass
class Evaluation:
    """error (M,) fraction misclassified in [0, 1]; nll (M,) mean NLL; probs (M, N, C)."""

    error: Tensor
    nll: Tensor
    probs: Tensor


@torch.no_grad()
def evaluate(clf: Classifier, x: Tensor, y: Tensor, *, batch_size: int = 2000) -> Evaluation:
    """Test error, mean NLL and class probabilities of every member on (x (N, V) or (M, N, V), y)."""
    require_int("evaluate.batch_size", batch_size, 1)
    x = _prepare_x(x, clf.n_members, clf.sizes[0], 1, clf.device, clf.dtype)
    n = x.shape[-2]
    y = _prepare_y(y, clf.n_members, n, clf.sizes[-1], clf.device)
    y = y.expand(clf.n_members, -1) if y.dim() == 1 else y
    logps = [torch.log_softmax(clf.logits(x[..., s:s + batch_size, :]), dim=-1) for s in range(0, n, batch_size)]
    logp = torch.cat(logps, dim=1)
    nll = -logp.gather(2, y.unsqueeze(-1)).squeeze(-1).mean(-1)
    error = (logp.argmax(-1) != y).to(clf.dtype).mean(-1)
    return Evaluation(error=error, nll=nll, probs=logp.exp())
