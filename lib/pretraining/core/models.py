"""RBMs, denoising auto-encoders, greedy stacks and classifiers, each with a members dimension.

Every parameter tensor has a leading *members* dimension M: M independently seeded networks that
are evaluated (and trained, see :mod:`pretraining.train`) as one batched computation with
``torch.baddbmm``. M = 1 is the ordinary single network. Inputs are (M, B, V), or (B, V) shared by
all members. Shapes: V visible / input units, H hidden units, C classes.

All models offer ``state_dict()``, ``from_state_dict(d)`` and ``to(device)``; the artifact cache
stores state dicts as safetensors (no code runs on load).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .checks import require_int
from .seeding import bernoulli, member_generators, uniform, validate_seeds

Tensor = torch.Tensor


def _as_members(x: Tensor, n_members: int, width: int, name: str = "x") -> Tensor:
    """(B, W) shared -> (M, B, W) view; (M, B, W) checked. Raises on a wrong shape."""
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(n_members, -1, -1)
    if x.dim() != 3 or x.shape[0] != n_members or x.shape[2] != width:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; expected (B, {width}) or ({n_members}, B, {width})"
        )
    return x


def _uniform_fan_in(n_in: int, n_out: int, seeds: Sequence[int], layer: int, device, dtype) -> Tensor:
    """Weights (M, n_in, n_out) uniform in +-1/sqrt(n_in), member m from its own init generator."""
    gens = member_generators(seeds, "init", layer, device)
    bound = 1.0 / math.sqrt(n_in)
    return (uniform((n_in, n_out), gens, device=device, dtype=dtype) * 2.0 - 1.0) * bound


class _Model:
    """Shared plumbing: parameters are plain tensors named in ``_param_names``."""

    _param_names: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Tensor]:
        return {n: getattr(self, n) for n in self._param_names if getattr(self, n) is not None}

    def to(self, device=None, dtype=None):
        """Move (or cast) all parameters in place; returns self."""
        for n in self._param_names:
            t = getattr(self, n)
            if t is not None:
                setattr(self, n, t.to(device=device, dtype=dtype))
        return self

    @property
    def device(self) -> torch.device:
        return self.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W.dtype

    @property
    def n_members(self) -> int:
        return self.W.shape[0]

    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[2]

    def clone(self):
        return type(self).from_state_dict({k: v.clone() for k, v in self.state_dict().items()})

    def repeat(self, n_members: int):
        """An M=1 model -> ``n_members`` identical copies."""
        require_int("n_members", n_members, 1)
        if self.n_members != 1:
            raise ValueError(f"repeat needs a model with 1 member, this one has {self.n_members}")
        return type(self).from_state_dict(
            {k: v.expand(n_members, *v.shape[1:]).clone() for k, v in self.state_dict().items()}
        )


class RBM(_Model):
    """Bernoulli-Bernoulli restricted Boltzmann machine.

    Energy E(v, h) = -v.b_visible - h.b_hidden - v W h. Parameters W (M, V, H), b_visible (M, V),
    b_hidden (M, H).
    """

    _param_names = ("W", "b_visible", "b_hidden")

    def __init__(self, W: Tensor, b_visible: Tensor, b_hidden: Tensor):
        if W.dim() != 3 or b_visible.shape != (W.shape[0], W.shape[1]) or b_hidden.shape != (W.shape[0], W.shape[2]):
            raise ValueError(
                f"RBM shapes disagree: W {tuple(W.shape)}, b_visible {tuple(b_visible.shape)}, b_hidden {tuple(b_hidden.shape)}"
            )
        self.W, self.b_visible, self.b_hidden = W, b_visible, b_hidden

    @classmethod
    def init(cls, n_visible: int, n_hidden: int, seeds: Sequence[int], *, device=None,
             dtype: torch.dtype = torch.float32, init_std: float = 0.01, layer: int = 1) -> "RBM":
        """W ~ N(0, init_std^2) from each member's ("init", layer) generator; zero biases."""
        require_int("n_visible", n_visible, 1)
        require_int("n_hidden", n_hidden, 1)
        if not (isinstance(init_std, (int, float)) and init_std >= 0 and math.isfinite(init_std)):
            raise ValueError(f"init_std={init_std!r} is not allowed; it must be a finite float >= 0")
        seeds = validate_seeds(seeds)
        device = torch.device(device) if device is not None else torch.device("cpu")
        gens = member_generators(seeds, "init", layer, device)
        W = torch.stack([torch.randn(n_visible, n_hidden, generator=g, device=device, dtype=dtype) for g in gens])
        M = len(seeds)
        return cls(W * init_std, torch.zeros(M, n_visible, device=device, dtype=dtype),
                   torch.zeros(M, n_hidden, device=device, dtype=dtype))

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> "RBM":
        return cls(d["W"], d["b_visible"], d["b_hidden"])

    def hidden_probs(self, v: Tensor) -> Tensor:
        """p(h=1 | v): v (M, B, V) or (B, V) -> (M, B, H)."""
        v = _as_members(v, self.n_members, self.n_visible, "v")
        return torch.sigmoid(torch.baddbmm(self.b_hidden.unsqueeze(1), v, self.W))

    def visible_probs(self, h: Tensor) -> Tensor:
        """p(v=1 | h): h (M, B, H) -> (M, B, V)."""
        h = _as_members(h, self.n_members, self.n_hidden, "h")
        return torch.sigmoid(torch.baddbmm(self.b_visible.unsqueeze(1), h, self.W.transpose(1, 2)))

    def free_energy(self, v: Tensor) -> Tensor:
        """F(v) = -v.b_visible - sum_j softplus((v W + b_hidden)_j): (M, B, V) -> (M, B)."""
        v = _as_members(v, self.n_members, self.n_visible, "v")
        pre = torch.baddbmm(self.b_hidden.unsqueeze(1), v, self.W)
        return -(v * self.b_visible.unsqueeze(1)).sum(-1) - F.softplus(pre).sum(-1)

    def gibbs(self, v: Tensor, k: int, generators: Sequence[torch.Generator]) -> Tensor:
        """``k`` full Gibbs steps v -> h -> v (sampled); v (M, B, V) -> binary samples (M, B, V)."""
        require_int("k", k, 1)
        v = _as_members(v, self.n_members, self.n_visible, "v")
        for _ in range(k):
            h = bernoulli(self.hidden_probs(v), generators)
            v = bernoulli(self.visible_probs(h), generators)
        return v

    def reconstruction_error(self, v: Tensor) -> Tensor:
        """Mean (over examples and pixels) squared error of the mean-field reconstruction: (M,)."""
        v = _as_members(v, self.n_members, self.n_visible, "v")
        return (v - self.visible_probs(self.hidden_probs(v))).pow(2).mean(dim=(1, 2))

    def pseudo_log_likelihood(self, v: Tensor, generators: Sequence[torch.Generator] | None = None) -> Tensor:
        """Stochastic pseudo-log-likelihood, mean over examples: (M,).

        For each example one bit i is drawn uniformly (from the member's generator; a fixed
        generator seeded 0 when ``generators`` is None) and V * log p(v_i | v_-i) is returned,
        an unbiased estimate of sum_i log p(v_i | v_-i) for binary v (as scikit-learn's
        BernoulliRBM.score_samples).
        """
        v = _as_members(v, self.n_members, self.n_visible, "v")
        M, B, V = v.shape
        if generators is None:
            generators = member_generators([0] * M, "eval", 0, v.device)
        idx = (uniform((B,), generators, device=v.device, dtype=v.dtype) * V).long().clamp_(max=V - 1)
        flipped = v.clone()
        bit = flipped.gather(2, idx.unsqueeze(-1))
        flipped.scatter_(2, idx.unsqueeze(-1), 1.0 - bit)
        return (V * F.logsigmoid(self.free_energy(flipped) - self.free_energy(v))).mean(-1)


class DenoisingAutoencoder(_Model):
    """Sigmoid auto-encoder trained to reconstruct clean inputs from corrupted ones.

    W (M, V, H), b_hidden (M, H), b_visible (M, V), W_decoder (M, H, V) or None when tied
    (decoder weights W^T).
    """

    _param_names = ("W", "b_hidden", "b_visible", "W_decoder")

    def __init__(self, W: Tensor, b_hidden: Tensor, b_visible: Tensor, W_decoder: Tensor | None = None):
        M, V, H = W.shape
        if b_hidden.shape != (M, H) or b_visible.shape != (M, V) or (
            W_decoder is not None and W_decoder.shape != (M, H, V)
        ):
            raise ValueError(
                f"DenoisingAutoencoder shapes disagree: W {tuple(W.shape)}, b_hidden {tuple(b_hidden.shape)}, "
                f"b_visible {tuple(b_visible.shape)}, W_decoder {None if W_decoder is None else tuple(W_decoder.shape)}"
            )
        self.W, self.b_hidden, self.b_visible, self.W_decoder = W, b_hidden, b_visible, W_decoder

    @classmethod
    def init(cls, n_visible: int, n_hidden: int, seeds: Sequence[int], *, tied: bool = True, device=None,
             dtype: torch.dtype = torch.float32, layer: int = 1) -> "DenoisingAutoencoder":
        """Weights uniform in +-1/sqrt(fan_in) (the untied decoder from a second stream); zero biases."""
        require_int("n_visible", n_visible, 1)
        require_int("n_hidden", n_hidden, 1)
        if not isinstance(tied, bool):
            raise TypeError(f"tied={tied!r} must be True or False")
        seeds = validate_seeds(seeds)
        device = torch.device(device) if device is not None else torch.device("cpu")
        gens = member_generators(seeds, "init", layer, device)
        W = (uniform((n_visible, n_hidden), gens, device=device, dtype=dtype) * 2 - 1) / math.sqrt(n_visible)
        W_dec = None
        if not tied:
            W_dec = (uniform((n_hidden, n_visible), gens, device=device, dtype=dtype) * 2 - 1) / math.sqrt(n_hidden)
        M = len(seeds)
        return cls(W, torch.zeros(M, n_hidden, device=device, dtype=dtype),
                   torch.zeros(M, n_visible, device=device, dtype=dtype), W_dec)

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> "DenoisingAutoencoder":
        return cls(d["W"], d["b_hidden"], d["b_visible"], d.get("W_decoder"))

    @property
    def tied(self) -> bool:
        return self.W_decoder is None

    def encode(self, x: Tensor) -> Tensor:
        """sigm(x W + b_hidden): (M, B, V) or (B, V) -> (M, B, H)."""
        x = _as_members(x, self.n_members, self.n_visible)
        return torch.sigmoid(torch.baddbmm(self.b_hidden.unsqueeze(1), x, self.W))

    def decode_logits(self, h: Tensor) -> Tensor:
        """Pre-sigmoid reconstruction: (M, B, H) -> (M, B, V)."""
        W_dec = self.W.transpose(1, 2) if self.W_decoder is None else self.W_decoder
        return torch.baddbmm(self.b_visible.unsqueeze(1), h, W_dec)

    def decode(self, h: Tensor) -> Tensor:
        """Reconstruction probabilities: (M, B, H) -> (M, B, V)."""
        return torch.sigmoid(self.decode_logits(h))

    def loss(self, x_clean: Tensor, x_corrupted: Tensor) -> Tensor:
        """Cross-entropy of the clean input under decode(encode(x_corrupted)), summed over V, mean over B: (M,)."""
        x_clean = _as_members(x_clean, self.n_members, self.n_visible, "x_clean")
        logits = self.decode_logits(self.encode(x_corrupted))
        return F.binary_cross_entropy_with_logits(logits, x_clean, reduction="none").sum(-1).mean(-1)

    def reconstruction_error(self, x: Tensor) -> Tensor:
        """Mean squared error of decode(encode(x)) (mean over examples and pixels): (M,)."""
        x = _as_members(x, self.n_members, self.n_visible)
        return (x - self.decode(self.encode(x))).pow(2).mean(dim=(1, 2))


class Stack:
    """A greedily trained stack of RBMs (a deep belief net) or of denoising auto-encoders.

    ``layers[k]`` maps the mean-field codes of layers 0..k-1 of the same member to its own codes.
    """

    KINDS = ("rbm", "dae")

    def __init__(self, kind: str, layers: Sequence[RBM | DenoisingAutoencoder]):
        if kind not in self.KINDS:
            raise ValueError(f"kind={kind!r} is not allowed; use 'rbm' or 'dae'")
        cls = RBM if kind == "rbm" else DenoisingAutoencoder
        if not layers or not all(isinstance(layer, cls) for layer in layers):
            raise ValueError(f"a {kind!r} stack needs a non-empty list of {cls.__name__} layers")
        for lower, upper in zip(layers, layers[1:]):
            if lower.n_hidden != upper.n_visible or lower.n_members != upper.n_members:
                raise ValueError("stack layers disagree: each layer's n_visible must equal the previous n_hidden, "
                                 "and all layers need the same number of members")
        self.kind, self.layers = kind, list(layers)

    @property
    def sizes(self) -> list[int]:
        return [self.layers[0].n_visible] + [layer.n_hidden for layer in self.layers]

    @property
    def n_members(self) -> int:
        return self.layers[0].n_members

    @property
    def device(self) -> torch.device:
        return self.layers[0].device

    def _code(self, layer, x: Tensor) -> Tensor:
        return layer.hidden_probs(x) if self.kind == "rbm" else layer.encode(x)

    def encode(self, x: Tensor, upto: int | None = None) -> Tensor:
        """Mean-field codes of layer ``upto`` (default: the top): (N, V) or (M, N, V) -> (M, N, H_upto)."""
        n = len(self.layers) if upto is None else upto
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self.layers):
            raise ValueError(f"upto={upto!r} is not allowed; use an int in 1..{len(self.layers)} or None")
        for layer in self.layers[:n]:
            x = self._code(layer, x)
        return x

    def hidden_parameters(self) -> list[tuple[Tensor, Tensor]]:
        """[(W (M, n_in, n_out), b_hidden (M, n_out)) for each layer] (the tensors themselves, not copies)."""
        return [(layer.W, layer.b_hidden) for layer in self.layers]

    def sample(self, n: int, gibbs_steps: int, seeds: Sequence[int]) -> Tensor:
        """Generate from a DBN: a Gibbs chain in the top RBM, then one top-down pass.

        Each member's chain starts from uniform random bits at the top RBM's visible layer (from its
        ("sample", depth) generator), runs ``gibbs_steps`` full Gibbs steps; the last hidden sample
        is propagated down with mean-field probabilities. Returns (M, n, V) pixel probabilities.
        """
        if self.kind != "rbm":
            raise ValueError("sample needs an RBM stack (kind='rbm'); auto-encoder stacks are not generative models")
        require_int("n", n, 1)
        require_int("gibbs_steps", gibbs_steps, 1)
        seeds = validate_seeds(seeds, self.n_members)
        top = self.layers[-1]
        gens = member_generators(seeds, "sample", len(self.layers), top.device)
        v = bernoulli(torch.full((self.n_members, n, top.n_visible), 0.5, device=top.device, dtype=top.dtype), gens)
        for _ in range(gibbs_steps):
            h = bernoulli(top.hidden_probs(v), gens)
            v = bernoulli(top.visible_probs(h), gens)
        p = top.visible_probs(h)
        for layer in reversed(self.layers[:-1]):
            p = layer.visible_probs(p)
        return p

    def repeat(self, n_members: int) -> "Stack":
        """M=1 stack -> ``n_members`` identical copies (fine-tune one pre-trained stack with many seeds)."""
        return Stack(self.kind, [layer.repeat(n_members) for layer in self.layers])

    def clone(self) -> "Stack":
        return Stack(self.kind, [layer.clone() for layer in self.layers])

    def to(self, device=None, dtype=None) -> "Stack":
        for layer in self.layers:
            layer.to(device, dtype)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        return {f"layers.{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.state_dict().items()}

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor], kind: str) -> "Stack":
        layer_cls = RBM if kind == "rbm" else DenoisingAutoencoder
        n = 1 + max(int(k.split(".")[1]) for k in d)
        return cls(kind, [layer_cls.from_state_dict({k.split(".", 2)[2]: v for k, v in d.items()
                                                     if k.startswith(f"layers.{i}.")}) for i in range(n)])


class Classifier:
    """Feed-forward net: sigmoid hidden layers, softmax output.

    ``weights[i]`` (M, n_in, n_out), ``biases[i]`` (M, n_out); layer index ``depth`` is the softmax.
    """

    def __init__(self, weights: Sequence[Tensor], biases: Sequence[Tensor]):
        if len(weights) < 1 or len(weights) != len(biases):
            raise ValueError("a Classifier needs as many biases as weights, and at least one layer")
        for i, (W, b) in enumerate(zip(weights, biases)):
            if W.dim() != 3 or b.shape != (W.shape[0], W.shape[2]) or (i and W.shape[1] != weights[i - 1].shape[2]) \
                    or W.shape[0] != weights[0].shape[0]:
                raise ValueError(f"Classifier layer {i} has inconsistent shapes W {tuple(W.shape)}, b {tuple(b.shape)}")
        self.weights, self.biases = list(weights), list(biases)

    @classmethod
    def random(cls, sizes: Sequence[int], seeds: Sequence[int], *, device=None,
               dtype: torch.dtype = torch.float32) -> "Classifier":
        """Weights uniform in +-1/sqrt(fan_in) (layer i from the ("init", i+1) generator), zero biases."""
        sizes = cls._check_sizes(sizes)
        seeds = validate_seeds(seeds)
        device = torch.device(device) if device is not None else torch.device("cpu")
        weights = [_uniform_fan_in(a, b, seeds, i + 1, device, dtype) for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
        biases = [torch.zeros(len(seeds), b, device=device, dtype=dtype) for b in sizes[1:]]
        return cls(weights, biases)

    @classmethod
    def from_stack(cls, stack: Stack, n_classes: int, seeds: Sequence[int]) -> "Classifier":
        """Hidden layers copied (cloned) from ``stack``; softmax layer random (as in :meth:`random`)."""
        require_int("n_classes", n_classes, 1)
        seeds = validate_seeds(seeds, stack.n_members)
        weights = [W.clone() for W, _ in stack.hidden_parameters()]
        biases = [b.clone() for _, b in stack.hidden_parameters()]
        n_top = stack.sizes[-1]
        weights.append(_uniform_fan_in(n_top, n_classes, seeds, len(weights) + 1, weights[0].device, weights[0].dtype))
        biases.append(torch.zeros(len(seeds), n_classes, device=weights[0].device, dtype=weights[0].dtype))
        return cls(weights, biases)

    @staticmethod
    def _check_sizes(sizes: Sequence[int]) -> list[int]:
        if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence) or len(sizes) < 2:
            raise ValueError(f"sizes={sizes!r} is not allowed; give at least [n_inputs, n_classes], e.g. [784, 500, 10]")
        for s in sizes:
            require_int("sizes entry", s, 1)
        return list(sizes)

    @property
    def sizes(self) -> list[int]:
        return [self.weights[0].shape[1]] + [W.shape[2] for W in self.weights]

    @property
    def n_members(self) -> int:
        return self.weights[0].shape[0]

    @property
    def depth(self) -> int:
        """Number of hidden layers."""
        return len(self.weights) - 1

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    def hidden(self, x: Tensor) -> list[Tensor]:
        """Activations of each hidden layer: x (B, V) or (M, B, V) -> [(M, B, H_i)]."""
        h = _as_members(x, self.n_members, self.sizes[0])
        out = []
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.sigmoid(torch.baddbmm(b.unsqueeze(1), h, W))
            out.append(h)
        return out

    def logits(self, x: Tensor) -> Tensor:
        """Pre-softmax outputs: x (B, V) or (M, B, V) -> (M, B, C)."""
        hs = self.hidden(x)
        top = hs[-1] if hs else _as_members(x, self.n_members, self.sizes[0])
        return torch.baddbmm(self.biases[-1].unsqueeze(1), top, self.weights[-1])

    def predict_proba(self, x: Tensor) -> Tensor:
        """Class probabilities (M, B, C)."""
        return torch.softmax(self.logits(x), dim=-1)

    def nll(self, x: Tensor, y: Tensor) -> Tensor:
        """Mean negative log-likelihood of labels y (B,) or (M, B): (M,)."""
        logp = torch.log_softmax(self.logits(x), dim=-1)
        y = y.expand(self.n_members, -1) if y.dim() == 1 else y
        return -logp.gather(2, y.unsqueeze(-1)).squeeze(-1).mean(-1)

    def parameters(self) -> list[Tensor]:
        return [t for pair in zip(self.weights, self.biases) for t in pair]

    def clone(self) -> "Classifier":
        return Classifier([W.clone() for W in self.weights], [b.clone() for b in self.biases])

    def member(self, m: int) -> "Classifier":
        """Member ``m`` alone, as an M=1 classifier (a copy)."""
        if not -self.n_members <= m < self.n_members:
            raise IndexError(f"member m={m} is out of range for {self.n_members} members")
        return self.members([m])

    def members(self, idx: Sequence[int] | Tensor) -> "Classifier":
        """The members ``idx`` (K,) in that order (repeats allowed), as a K-member classifier (a copy)."""
        idx = torch.as_tensor(idx, dtype=torch.int64).flatten()
        if not idx.numel() or int(idx.min()) < -self.n_members or int(idx.max()) >= self.n_members:
            raise IndexError(f"members idx={idx.tolist()} must be non-empty and within 0..{self.n_members - 1}")
        idx = idx.to(self.device)
        return Classifier([W[idx] for W in self.weights], [b[idx] for b in self.biases])

    @staticmethod
    def stack_members(classifiers: Sequence["Classifier"]) -> "Classifier":
        """Concatenate the members of classifiers with equal sizes into one classifier."""
        if not classifiers or len({tuple(c.sizes) for c in classifiers}) != 1:
            raise ValueError("stack_members needs a non-empty list of classifiers with equal sizes")
        depth = len(classifiers[0].weights)
        return Classifier([torch.cat([c.weights[i] for c in classifiers]) for i in range(depth)],
                          [torch.cat([c.biases[i] for c in classifiers]) for i in range(depth)])

    def to(self, device=None, dtype=None) -> "Classifier":
        self.weights = [W.to(device=device, dtype=dtype) for W in self.weights]
        self.biases = [b.to(device=device, dtype=dtype) for b in self.biases]
        return self

    def state_dict(self) -> dict[str, Tensor]:
        d = {f"weights.{i}": W for i, W in enumerate(self.weights)}
        d.update({f"biases.{i}": b for i, b in enumerate(self.biases)})
        return d

    @classmethod
    def from_state_dict(cls, d: dict[str, Tensor]) -> "Classifier":
        n = sum(k.startswith("weights.") for k in d)
        return cls([d[f"weights.{i}"] for i in range(n)], [d[f"biases.{i}"] for i in range(n)])
