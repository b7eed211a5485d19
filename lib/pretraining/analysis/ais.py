"""Log-likelihood of Bernoulli RBMs: exact partition functions and annealed importance sampling.

An RBM with visible units v in {0,1}^V and hidden units h in {0,1}^H has the energy
``E(v, h) = -v·W·h - b_visible·v - b_hidden·h`` and the free energy

    F(v) = -b_visible·v - sum_j softplus(b_hidden_j + (v W)_j),    p(v) = exp(-F(v)) / Z.

Every function takes the parameters of M independently trained RBMs at once (the library's
"members" dimension): ``W (M, V, H)``, ``b_visible (M, V)``, ``b_hidden (M, H)``, and returns one
value per member. Computations run on the device the tensors are on.

* :func:`log_partition_exact` sums over the 2^min(V, H) states of the smaller layer (tiny RBMs,
  tests, and the base-rate model).
* :func:`ais_log_partition` estimates log Z by annealed importance sampling from a base-rate
  model, as in Salakhutdinov & Murray, "On the quantitative analysis of deep belief networks",
  ICML 2008.
* :func:`log_likelihood` turns a log Z into the mean log-probability of binary data.
* :func:`raise_log_likelihood` estimates log p(v) of every data vector directly by reverse
  annealing (RAISE; Burda, Grosse & Salakhutdinov, "Accurate and conservative estimates of MRF
  log-likelihood using reverse annealing", AISTATS 2015). It needs no log Z and errs on the
  *low* side, while AIS (whose log Z errs low) makes the likelihood err high: reported together,
  the two sandwich the true test log-likelihood.

Cost of AIS: every inverse temperature costs two batched matrix products of shape
(M, n_chains, V) x (V, H). For a 784 x 500 RBM with 100 chains that is about 0.16 GFLOP per
temperature. Measured on 2 shared CPU cores (float32, 1 member): 1,000 temperatures take 2.4 s,
so the paper's 14,500 take about 35 s; time grows linearly with members x chains x temperatures.

Cost of RAISE: the same two products per temperature, for N x n_chains chains (one reverse chain
per data vector and chain), so it costs what AIS with N x n_chains chains costs (measured side by
side on a 784 x 500 RBM, 100 vectors x 1 chain and 100-chain AIS took about the same time).
10,000 test vectors with one chain each thus cost about 100 times the 100-chain AIS run above:
extrapolated, about 4 minutes at 1,000 temperatures on 2 CPU cores. chunk_size bounds the
memory, not the work.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.checks import require_int

__all__ = [
    "AISResult",
    "ais_log_partition",
    "base_rate_visible_bias",
    "beta_schedule",
    "free_energy",
    "log_likelihood",
    "log_partition_exact",
    "RAISEResult",
    "raise_log_likelihood",
]

MAX_ENUMERATED_UNITS = 20
"""log_partition_exact refuses layers with more units than this (2^20 states)."""

_LAYERS = ("auto", "visible", "hidden")


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_rbm(W: Tensor, b_visible: Tensor, b_hidden: Tensor) -> tuple[int, int, int]:
    """Validate RBM parameters with a members dimension; return (M, V, H)."""
    for name, t in (("W", W), ("b_visible", b_visible), ("b_hidden", b_hidden)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if W.dim() != 3:
        raise ValueError(f"W must have shape (members, visible, hidden), got shape {tuple(W.shape)}")
    M, V, H = W.shape
    if M < 1 or V < 1 or H < 1:
        raise ValueError(f"W must have non-empty dimensions (members, visible, hidden), got {tuple(W.shape)}")
    if tuple(b_visible.shape) != (M, V):
        raise ValueError(f"b_visible must have shape {(M, V)} to match W {tuple(W.shape)}, got {tuple(b_visible.shape)}")
    if tuple(b_hidden.shape) != (M, H):
        raise ValueError(f"b_hidden must have shape {(M, H)} to match W {tuple(W.shape)}, got {tuple(b_hidden.shape)}")
    if b_visible.device != W.device or b_hidden.device != W.device:
        raise ValueError(
            f"W, b_visible and b_hidden must be on one device, got {W.device}, {b_visible.device}, {b_hidden.device}"
        )
    for name, t in (("W", W), ("b_visible", b_visible), ("b_hidden", b_hidden)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
    return M, V, H


def _check_seed(seed: object) -> int:
    """Validate the seed of a sampler: a plain int (bools refused)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__} {seed!r}")
    return seed


def _check_binary_data(v: object, V: int) -> Tensor:
    """Validate data for the likelihood functions: (N, V) with N >= 1, every value 0 or 1."""
    if not isinstance(v, Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.dim() != 2 or v.shape[1] != V or v.shape[0] < 1:
        raise ValueError(f"v must have shape (N, {V}) with N >= 1, got {tuple(v.shape)}")
    if not bool(((v == 0) | (v == 1)).all()):
        raise ValueError("v must be binary (0/1); binarise grey levels first, e.g. (x > 0.5) or a seeded Bernoulli sample")
    return v


def _base_bias(base_visible_bias: object, M: int, V: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The base-rate model's visible biases as (M, V) in the parameters' device and dtype."""
    if base_visible_bias is None:
        return torch.zeros(M, V, dtype=dtype, device=device)
    if not isinstance(base_visible_bias, Tensor):
        raise TypeError(f"base_visible_bias must be a torch.Tensor or None, got {type(base_visible_bias).__name__}")
    if tuple(base_visible_bias.shape) not in ((V,), (M, V)):
        raise ValueError(f"base_visible_bias must have shape ({V},) or {(M, V)}, got {tuple(base_visible_bias.shape)}")
    if not bool(torch.isfinite(base_visible_bias).all()):
        raise ValueError("base_visible_bias contains NaN or infinite values")
    return base_visible_bias.to(device=device, dtype=dtype).expand(M, V)


# --------------------------------------------------------------------------------------------
# free energy, exact partition function
# --------------------------------------------------------------------------------------------
def free_energy(W: Tensor, b_visible: Tensor, b_hidden: Tensor, v: Tensor, *, chunk_size: int = 2048) -> Tensor:
    """Free energy F(v) of every row of ``v`` under every member.

    W (M, V, H), b_visible (M, V), b_hidden (M, H), v (N, V) -> (M, N), float64.
    The matrix product runs in the parameters' dtype; the softplus and the sums in float64.
    """
    M, V, H = _check_rbm(W, b_visible, b_hidden)
    require_int("chunk_size", chunk_size, 1)
    if not isinstance(v, Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.dim() != 2 or v.shape[1] != V:
        raise ValueError(f"v must have shape (N, {V}) to match W {tuple(W.shape)}, got {tuple(v.shape)}")
    v = v.to(device=W.device, dtype=W.dtype)
    out = []
    for start in range(0, v.shape[0], chunk_size):
        rows = v[start : start + chunk_size]  # (n, V)
        x = torch.einsum("nv,mvh->mnh", rows, W) + b_hidden[:, None, :]  # (M, n, H)
        visible_term = (rows.double() @ b_visible.double().T).T  # (M, n)
        out.append(-visible_term - torch.nn.functional.softplus(x.double()).sum(-1))
    if not out:
        return torch.zeros(M, 0, dtype=torch.float64, device=W.device)
    return torch.cat(out, dim=1)


def _binary_states(start: int, stop: int, n_bits: int, device: torch.device) -> Tensor:
    """Rows start..stop-1 of the 2^n_bits binary states, as float64 (stop - start, n_bits)."""
    codes = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(n_bits, device=device, dtype=torch.int64)
    return ((codes[:, None] >> bits[None, :]) & 1).to(torch.float64)


def log_partition_exact(W: Tensor, b_visible: Tensor, b_hidden: Tensor, *, layer: str = "auto") -> Tensor:
    """Exact log Z of every member by enumerating all states of one layer, in float64.

    W (M, V, H), b_visible (M, V), b_hidden (M, H) -> (M,) float64.
    ``layer="auto"`` enumerates the smaller layer; ``"visible"`` / ``"hidden"`` force one
    (both give the same value; the other layer is summed out analytically). Layers with more
    than 20 units (2^20 states) are refused.
    """
    M, V, H = _check_rbm(W, b_visible, b_hidden)
    if layer not in _LAYERS:
        raise ValueError(f"layer={layer!r} is not allowed; use one of {', '.join(_LAYERS)}")
    if layer == "auto":
        layer = "visible" if V <= H else "hidden"
    n = V if layer == "visible" else H
    if n > MAX_ENUMERATED_UNITS:
        raise ValueError(
            f"log_partition_exact would enumerate 2^{n} states of the {layer} layer; "
            f"at most 2^{MAX_ENUMERATED_UNITS} are allowed (use ais_log_partition)"
        )
    W64, bv, bh = W.double(), b_visible.double(), b_hidden.double()
    if layer == "visible":  # sum over v of exp(b_v·v + sum_j softplus(b_h + vW))
        own_bias, other_bias, weights = bv, bh, W64
    else:  # sum over h of exp(b_h·h + sum_i softplus(b_v + W h))
        own_bias, other_bias, weights = bh, bv, W64.transpose(1, 2)
    other = weights.shape[2]
    n_states = 1 << n
    chunk = max(1, min(n_states, (1 << 22) // max(1, M * other)))
    parts = []
    for start in range(0, n_states, chunk):
        s = _binary_states(start, min(n_states, start + chunk), n, W.device)  # (c, n)
        x = torch.einsum("cn,mno->mco", s, weights) + other_bias[:, None, :]  # (M, c, other)
        log_unnorm = s @ own_bias.T  # (c, M)
        log_unnorm = log_unnorm.T + torch.nn.functional.softplus(x).sum(-1)  # (M, c)
        parts.append(torch.logsumexp(log_unnorm, dim=1))
    return torch.logsumexp(torch.stack(parts, dim=1), dim=1)


# --------------------------------------------------------------------------------------------
# annealed importance sampling
# --------------------------------------------------------------------------------------------
def _annealing(W: Tensor, base_visible_bias: Tensor | None, n_betas: int | None,
               betas: Sequence[float] | Tensor | None, seed: int) -> tuple[Tensor, Tensor, Tensor, torch.Generator]:
    """What AIS and RAISE share: the schedule (K+1,) float64, the base-rate model's visible biases
    (M, V) in W's dtype, its exact log Z (M,) float64 = H log 2 + sum softplus(bias), and the seeded
    generator on W's device."""
    M, V, H = W.shape
    _check_seed(seed)
    schedule = _schedule(n_betas, betas)
    base = _base_bias(base_visible_bias, M, V, W.device, W.dtype)
    log_z_base = H * math.log(2.0) + torch.nn.functional.softplus(base.double()).sum(1)
    gen = torch.Generator(device=W.device)
    gen.manual_seed(seed)
    return schedule, base, log_z_base, gen


@dataclass(frozen=True)
class AISResult:
    """Result of :func:`ais_log_partition` for M members.

    log_z            (M,) float64  the AIS estimate log Z_A + log(mean importance weight)
    log_z_std_error  (M,) float64  delta-method standard error of that estimate:
                                   std(w) / (sqrt(n_chains) * mean(w)), w the importance weights
    log_weights      (M, n_chains) float64  log importance weights (log Z_A not included)
    log_z_base       (M,) float64  exact log Z of the base-rate model
    betas            (K,) float64  the inverse temperatures used, 0 ... 1
    """

    log_z: Tensor
    log_z_std_error: Tensor
    log_weights: Tensor
    log_z_base: Tensor
    betas: Tensor

    def bounds(self, n_std: float = 3.0) -> tuple[Tensor, Tensor]:
        """(lower, upper) = log(mean(w) -/+ n_std * std(w) / sqrt(n_chains)) + log Z_A, each (M,).

        This is the interval Salakhutdinov & Murray (2008) report with n_std=3. The lower end is
        -inf when the interval reaches zero; AIS tends to *under*-estimate log Z when the chains
        are too few or the schedule too short, so a too-narrow interval is not proof of accuracy.
        """
        if not isinstance(n_std, (int, float)) or isinstance(n_std, bool) or not n_std > 0:
            raise ValueError(f"n_std must be a positive number, got {n_std!r}")
        shift = self.log_weights.max(dim=1, keepdim=True).values
        w = torch.exp(self.log_weights - shift)  # weights scaled so that the largest is 1
        mean = w.mean(1)
        half = n_std * w.std(1, unbiased=True) / math.sqrt(w.shape[1])
        offset = shift[:, 0] + self.log_z_base
        return offset + torch.log((mean - half).clamp_min(0.0)), offset + torch.log(mean + half)


def beta_schedule(n_betas: int) -> Tensor:
    """Inverse temperatures 0 = beta_0 < ... < beta_{n-1} = 1, (n_betas,) float64.

    Piecewise linear with the proportions of Salakhutdinov & Murray (2008): their 14,500
    temperatures are 500 evenly spaced in [0, 0.5], 4,000 in [0.5, 0.9] and 10,000 in
    [0.9, 1.0]; here the same fractions (1/29, 8/29, 20/29) of ``n_betas``.
    """
    require_int("n_betas", n_betas, 4)
    n1 = max(1, round(n_betas * 500 / 14500))
    n2 = max(1, round(n_betas * 4000 / 14500))
    n3 = n_betas - 1 - n1 - n2  # intervals in the last segment; n_betas - 1 intervals in total
    if n3 < 1:
        raise ValueError(f"n_betas={n_betas} is too small for the three-segment schedule; use at least 4")
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, n1 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, dtype=torch.float64)[:-1],
            torch.linspace(0.9, 1.0, n3 + 1, dtype=torch.float64),
        ]
    )


def base_rate_visible_bias(v: Tensor, *, eps: float = 1e-3) -> Tensor:
    """Visible biases of the base-rate model: logit of the pixel means of the data.

    v (N, V) values in [0, 1] -> (V,) in the dtype of v (float32 for integer input); the means are
    clipped to [eps, 1 - eps] so pixels that are always off get a finite bias.
    """
    if not isinstance(v, Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.dim() != 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise ValueError(f"v must have shape (N, V) with N, V >= 1, got {tuple(v.shape)}")
    if not isinstance(eps, float) or not 0.0 < eps < 0.5:
        raise ValueError(f"eps must be a float in (0, 0.5), got {eps!r}")
    dtype = v.dtype if v.is_floating_point() else torch.float32
    v = v.to(dtype)
    if not bool(((v >= 0) & (v <= 1)).all()):
        raise ValueError("v must hold values in [0, 1]")
    p = v.double().mean(0).clamp(eps, 1 - eps)
    return torch.log(p / (1 - p)).to(dtype)


def _check_schedule(betas: object) -> Tensor:
    t = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
    if t.dim() != 1 or t.numel() < 2:
        raise ValueError(f"betas must be a 1-D sequence of at least 2 inverse temperatures, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or t[0] != 0.0 or t[-1] != 1.0 or not bool((t[1:] > t[:-1]).all()):
        raise ValueError("betas must increase strictly from exactly 0.0 to exactly 1.0")
    return t


def _schedule(n_betas: int | None, betas: object) -> Tensor:
    """The annealing schedule from n_betas or an explicit betas (10,000 temperatures by default)."""
    if n_betas is not None and betas is not None:
        raise ValueError("give either n_betas or betas (an explicit schedule), not both")
    return _check_schedule(betas) if betas is not None else beta_schedule(10000 if n_betas is None else n_betas)


def ais_log_partition(
    W: Tensor,
    b_visible: Tensor,
    b_hidden: Tensor,
    *,
    n_chains: int = 100,
    n_betas: int | None = None,
    betas: Sequence[float] | Tensor | None = None,
    base_visible_bias: Tensor | None = None,
    seed: int = 0,
) -> AISResult:
    """Estimate log Z of every member by annealed importance sampling (Salakhutdinov & Murray 2008).

    W (M, V, H), b_visible (M, V), b_hidden (M, H): the RBMs (any float dtype, any device).
    n_chains: independent AIS runs per member (vectorised).
    n_betas: length of the default schedule :func:`beta_schedule` (10,000 when neither n_betas
        nor betas is given); betas: an explicit schedule instead, increasing from 0.0 to 1.0.
    base_visible_bias: (V,) or (M, V) visible biases of the base-rate model (zero weights, zero
        hidden biases, H hidden units), e.g. :func:`base_rate_visible_bias` of the training data;
        None gives the uniform model. Its log Z is exact: H log 2 + sum softplus(base bias).
    seed: the chains' random numbers (same seed, device and dtype -> identical result).

    The intermediate distributions are
    p_k(v) ∝ exp((1-β_k) b_A·v + β_k b_visible·v) · prod_j (1 + exp(β_k (b_hidden_j + (vW)_j))),
    the base model at β=0 and the target RBM at β=1; each transition is one Gibbs sweep
    h | v, v | h that leaves p_k invariant. Log-weights are accumulated in float64.
    The result is a stochastic *lower* bound in expectation (E[Ẑ] = Z, so E[log Ẑ] <= log Z):
    with too few temperatures log Z is underestimated and the likelihood overestimated.
    """
    M, V, H = _check_rbm(W, b_visible, b_hidden)
    require_int("n_chains", n_chains, 2)
    schedule, base, log_z_base, gen = _annealing(W, base_visible_bias, n_betas, betas, seed)
    device, dtype = W.device, W.dtype
    softplus = torch.nn.functional.softplus
    bias_diff = (b_visible.double() - base.double())[:, None, :]  # (M, 1, V)
    Wt = W.transpose(1, 2)  # (M, H, V)

    def bernoulli(p: Tensor) -> Tensor:
        return (torch.rand(p.shape, generator=gen, device=device, dtype=dtype) < p).to(dtype)

    v = bernoulli(torch.sigmoid(base)[:, None, :].expand(M, n_chains, V))  # exact sample of p_0
    x = torch.baddbmm(b_hidden[:, None, :], v, W)  # (M, n_chains, H) hidden inputs at β = 1
    log_w = torch.zeros(M, n_chains, dtype=torch.float64, device=device)
    betas_list = schedule.tolist()
    for k in range(1, len(betas_list)):
        b_prev, b_k = betas_list[k - 1], betas_list[k]
        x64 = x.double()
        log_w += (b_k - b_prev) * (v.double() * bias_diff).sum(-1)
        log_w += (softplus(b_k * x64) - softplus(b_prev * x64)).sum(-1)
        if k < len(betas_list) - 1:  # one Gibbs sweep leaving p_k invariant
            h = bernoulli(torch.sigmoid(b_k * x))
            v_in = torch.baddbmm(b_visible[:, None, :], h, Wt)  # (M, n_chains, V)
            v = bernoulli(torch.sigmoid((1.0 - b_k) * base[:, None, :] + b_k * v_in))
            x = torch.baddbmm(b_hidden[:, None, :], v, W)

    log_mean_w = torch.logsumexp(log_w, dim=1) - math.log(n_chains)
    shift = log_w.max(dim=1, keepdim=True).values
    w = torch.exp(log_w - shift)
    std_error = w.std(1, unbiased=True) / (math.sqrt(n_chains) * w.mean(1))
    return AISResult(
        log_z=log_z_base + log_mean_w,
        log_z_std_error=std_error,
        log_weights=log_w,
        log_z_base=log_z_base,
        betas=schedule,
    )


def log_likelihood(W: Tensor, b_visible: Tensor, b_hidden: Tensor, v: Tensor, log_z: Tensor) -> Tensor:
    """Mean log p(v) = mean over rows of (-F(v)) - log Z, per member.

    W (M, V, H), b_visible (M, V), b_hidden (M, H), v (N, V) binary {0, 1}, log_z (M,)
    (from :func:`log_partition_exact` or ``ais_log_partition(...).log_z``) -> (M,) float64, nats.
    Grey-level images are refused: binarise them first (threshold or a seeded Bernoulli sample),
    since p(v) is a distribution over binary vectors.
    """
    M, V, H = _check_rbm(W, b_visible, b_hidden)
    _check_binary_data(v, V)
    if not isinstance(log_z, Tensor):
        raise TypeError(f"log_z must be a torch.Tensor, got {type(log_z).__name__}")
    if tuple(log_z.shape) != (M,):
        raise ValueError(f"log_z must have shape ({M},), one value per member, got {tuple(log_z.shape)}")
    if not bool(torch.isfinite(log_z).all()):
        raise ValueError("log_z contains NaN or infinite values")
    return -free_energy(W, b_visible, b_hidden, v).mean(1) - log_z.to(device=W.device, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# reverse annealing (RAISE)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RAISEResult:
    """Result of :func:`raise_log_likelihood` for M members and N data vectors.

    log_likelihood  (M, N) float64  per data vector, log of the mean of its chains' weights ŵ:
                                    an estimate of log p(v) that errs low (see the function)
    log_weights     (M, N, n_chains) float64  log ŵ of every reverse chain (log Z_0 included,
                                    so E[ŵ] is the annealing model's probability q(v) itself)
    betas           (K + 1,) float64  the inverse temperatures used, 0 ... 1

    ``mean`` (M,) is the mean log-likelihood over the N vectors (nats) and ``std_error`` (M,) the
    standard error of that mean over the vectors, sample std / sqrt(N) (NaN when N = 1); it
    contains the chains' Monte-Carlo noise but not the estimator's downward bias.
    """

    log_likelihood: Tensor
    log_weights: Tensor
    betas: Tensor

    @property
    def mean(self) -> Tensor:
        """(M,) float64: mean over the N data vectors of the per-vector log-likelihood."""
        return self.log_likelihood.mean(1)

    @property
    def std_error(self) -> Tensor:
        """(M,) float64: sample standard deviation over the N vectors / sqrt(N); NaN when N = 1."""
        M, N = self.log_likelihood.shape
        if N < 2:
            return torch.full((M,), math.nan, dtype=torch.float64, device=self.log_likelihood.device)
        return self.log_likelihood.std(1, unbiased=True) / math.sqrt(N)


def raise_log_likelihood(
    W: Tensor,
    b_visible: Tensor,
    b_hidden: Tensor,
    v: Tensor,
    *,
    n_chains: int = 1,
    n_betas: int | None = None,
    betas: Sequence[float] | Tensor | None = None,
    base_visible_bias: Tensor | None = None,
    seed: int = 0,
    chunk_size: int = 8192,
) -> RAISEResult:
    """Estimate log p(v) of every data vector by reverse annealing (RAISE; Burda et al. 2015).

    W (M, V, H), b_visible (M, V), b_hidden (M, H): the RBMs (any float dtype, any device).
    v (N, V) binary {0, 1}: the data vectors (grey levels are refused; binarise them first).
    n_chains: independent reverse chains per data vector; their weights are averaged.
    n_betas, betas, base_visible_bias: the schedule and base-rate model, exactly as in
        :func:`ais_log_partition` (10,000 temperatures of :func:`beta_schedule` by default).
    seed: the chains' random numbers (same seed, device, dtype and chunk_size -> identical result).
        All members share the uniform numbers (common random numbers), so member m of a batched
        call equals that member run alone; their Monte-Carlo errors are therefore correlated.
    chunk_size: at most this many chains (vectors x n_chains) per member in one pass, but at least
        one vector; bounds the memory to a few (M, chunk_size, V + H) tensors.
    Returns a :class:`RAISEResult` (log-likelihood (M, N), log-weights (M, N, n_chains), betas).

    Model. With the schedule 0 = β_0 < ... < β_K = 1 (K + 1 temperatures) and base visible biases
    b_A, the unnormalised marginals are
    log f_k(x) = (1-β_k) b_A·x + β_k b_visible·x + sum_j softplus(β_k (b_hidden + xW)_j),
    f_0 the base model (log Z_0 = H log 2 + sum softplus(b_A), exact) and f_K the RBM. T_k is one
    Gibbs sweep h | x, x' | h of p_k (the sweep of :func:`ais_log_partition`); as a kernel x -> x'
    it is reversible with respect to p_k, so it is its own reversal.
    RAISE estimates the marginal q(v) of the *annealing model*
    x_0 ~ p_0,  x_k ~ T_k(· | x_{k-1}) for k = 1 .. K,  v = x_K
    (K sweeps, the last one at β_K = 1; AIS needs none at β = 1, RAISE's model has it).

    Bookkeeping. One reverse chain starts at x_K = v and, for k = K-1 down to 0, draws
    x_k ~ T_{k+1}(· | x_{k+1}): the sweep that produces x_k runs at β_{k+1}, so the first one,
    from the data, is a sweep of the RBM itself (β_K = 1) and the last, producing x_0, runs at
    β_1. No sweep runs at β_0. Its weight is
    log ŵ = log f_K(v) - log Z_0 + sum_{k=0}^{K-1} [log f_k(x_k) - log f_{k+1}(x_k)],
    the ratio of the forward joint p_0(x_0) prod_k T_k(x_k | x_{k-1}) to the reverse chain's
    probability prod_k T_k(x_{k-1} | x_k); reversibility, T_k(x' | x) / T_k(x | x') =
    f_k(x') / f_k(x), makes every ratio of kernels a ratio of f_k, so E[ŵ] = q(v) exactly.

    Bias. log_likelihood is the log of the mean of n_chains unbiased estimates of q(v), so in
    expectation it is at most log q(v) (Jensen); and q -> p as the schedule gets finer. Averaged
    over data from the model, E[log q(v)] <= E[log p(v)] (Gibbs' inequality), so RAISE is
    conservative: a short schedule under-estimates the test log-likelihood, whereas AIS
    under-estimates log Z and so over-estimates it. The two together bracket the truth.
    With strong weights and a coarse schedule ŵ is heavy-tailed (on an 8 x 5 RBM with weights of
    scale 3 and 10 temperatures single chains reached 150 times the mean), so one vector's estimate
    is noisy and its error bar unreliable; judge the mean over many vectors (``std_error``).
    Log-weights are accumulated in float64; the matrix products run in the parameters' dtype.
    """
    M, V, H = _check_rbm(W, b_visible, b_hidden)
    _check_binary_data(v, V)
    require_int("n_chains", n_chains, 1)
    require_int("chunk_size", chunk_size, 1)
    schedule, base, log_z_base, gen = _annealing(W, base_visible_bias, n_betas, betas, seed)
    device, dtype = W.device, W.dtype
    softplus = torch.nn.functional.softplus
    bv64 = b_visible.double()[:, None, :]  # (M, 1, V)
    bias_diff = bv64 - base.double()[:, None, :]  # (M, 1, V)
    base_in = base[:, None, :]  # (M, 1, V)
    Wt = W.transpose(1, 2)  # (M, H, V)
    betas_list = schedule.tolist()
    K = len(betas_list) - 1

    def bernoulli(p: Tensor) -> Tensor:  # p (M, R, D); one uniform per chain and unit, shared by the members
        u = torch.rand(p.shape[1:], generator=gen, device=device, dtype=dtype)
        return (u < p).to(dtype)

    data = v.to(device=device, dtype=dtype)
    N = data.shape[0]
    per_pass = max(1, chunk_size // n_chains)  # data vectors per pass
    parts = []
    for start in range(0, N, per_pass):
        rows = data[start : start + per_pass]  # (n, V)
        n = rows.shape[0]
        # chain c of vector i is row i * n_chains + c
        x = rows.repeat_interleave(n_chains, dim=0).expand(M, n * n_chains, V)  # x_K = v, (M, R, V)
        a = torch.baddbmm(b_hidden[:, None, :], x, W)  # (M, R, H) hidden inputs at β = 1
        log_w = (x.double() * bv64).sum(-1) + softplus(a.double()).sum(-1)  # log f_K(v), (M, R)
        for k in range(K - 1, -1, -1):
            b_k, b_next = betas_list[k], betas_list[k + 1]
            # x_k ~ T_{k+1}(. | x_{k+1}): one Gibbs sweep leaving p_{k+1} invariant
            h = bernoulli(torch.sigmoid(b_next * a))
            v_in = torch.baddbmm(b_visible[:, None, :], h, Wt)  # (M, R, V)
            x = bernoulli(torch.sigmoid((1.0 - b_next) * base_in + b_next * v_in))
            a = torch.baddbmm(b_hidden[:, None, :], x, W)
            a64 = a.double()
            # log f_k(x_k) - log f_{k+1}(x_k)
            log_w += (b_k - b_next) * (x.double() * bias_diff).sum(-1)
            log_w += (softplus(b_k * a64) - softplus(b_next * a64)).sum(-1)
        parts.append((log_w - log_z_base[:, None]).view(M, n, n_chains))
    log_weights = torch.cat(parts, dim=1)  # (M, N, n_chains)
    log_lik = torch.logsumexp(log_weights, dim=2) - math.log(n_chains)
    return RAISEResult(log_likelihood=log_lik, log_weights=log_weights, betas=schedule)
