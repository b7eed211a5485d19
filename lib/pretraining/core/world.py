"""A controlled world: digit images rendered from explicit, known latent causes.

Real digits come from causes nobody observes. :class:`ControlledWorld` renders images from five
independent causes whose values are known: the digit class, a handwriting exemplar of that class,
a deformation (pose, a seeded draw of :func:`pretraining.core.distort.distort`), the stroke width
and the position. Chapter 5 uses it to count how many bits the world puts into an image and into
a label (:mod:`pretraining.analysis.information`).

* :class:`WorldConfig` — how many values each cause takes, and their entropies;
* :class:`ControlledWorld` — exemplars from real digits, :meth:`~ControlledWorld.sample_causes`,
  :meth:`~ControlledWorld.render`;
* :func:`sweep_causes` — causes that run one cause through its values and keep the others fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import require_int
from .data import Subset
from .distort import DistortionConfig, distort
from .seeding import generator

__all__ = ["SIDE", "WIDTHS", "WorldConfig", "ControlledWorld", "sweep_causes"]

Tensor = torch.Tensor
SIDE = 28
"""Side (px) of a digit image; images are flat rows of SIDE * SIDE = 784 grey levels."""

WIDTHS = ("thin", "normal", "bold")
"""The values of the stroke-width cause, in index order."""

_WORLD_DOMAIN = 0xC0FFEE  # SeedSequence tag of the controlled world's random draws


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
        require_int("n_exemplars", self.n_exemplars, 1)
        require_int("n_deformations", self.n_deformations, 1)
        require_int("max_shift", self.max_shift, 0, 4)

    def cardinalities(self) -> dict[str, int]:
        """Number of equally likely values of each cause."""
        return {"class": 10, "exemplar": self.n_exemplars, "deformation": self.n_deformations,
                "width": len(WIDTHS), "position": (2 * self.max_shift + 1) ** 2}

    def bits(self) -> dict[str, float]:
        """Entropy (bits) of each cause (uniform, independent) and their sum under "all"."""
        b = {k: math.log2(v) for k, v in self.cardinalities().items()}
        return {**b, "all": sum(b.values())}

    def centre(self) -> int:
        """The position index of no shift (the centre of the (2s+1) x (2s+1) grid of shifts)."""
        return (2 * self.max_shift + 1) ** 2 // 2


class ControlledWorld:
    """Digits rendered from explicit causes: class, exemplar, deformation, stroke width, position.

    An image is: base digit ``exemplars[class, exemplar]`` -> deformed by draw number
    ``deformation`` of :func:`pretraining.core.distort.distort` (seed ``seed``) -> stroke width
    (thin: clamp(2x - 1), normal: x, bold: 3x3 grey-level dilation) -> shifted by ``position``
    (index p: p // (2s+1) - s px down and p % (2s+1) - s px right, s = max_shift; zeros enter).
    The exemplars are the first ``n_exemplars`` digits of each class in a seeded permutation of
    ``base`` (``generator(seed, 0xC0FFEE, 0)``).

    Attributes: exemplars (10, n_exemplars, 784) float on the CPU; config; seed.
    """

    def __init__(self, base: Subset, config: WorldConfig = WorldConfig(), seed: int = 0):
        if not isinstance(base, Subset):
            raise TypeError(f"base must be a Subset, got {type(base).__name__}")
        if not isinstance(config, WorldConfig):
            raise TypeError(f"config must be a WorldConfig, got {type(config).__name__}")
        seed = require_int("seed", seed, 0)
        perm = torch.randperm(len(base), generator=generator(seed, _WORLD_DOMAIN, 0)).to(base.y.device)
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
        """n independent, uniform draws of every cause: {name: (n,) int64} (position as one index).

        The draws come from ``generator(seed, 0xC0FFEE, 1)``, one cause after another.
        """
        n = require_int("n", n, 1)
        seed = require_int("seed", seed, 0)
        g = generator(seed, _WORLD_DOMAIN, 1)
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
