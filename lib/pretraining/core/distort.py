"""Seeded elastic + affine distortions of digits: an endless stream of new training digits.

Like InfiniteMNIST (Loosli, Canu & Bottou 2007), each example of the stream is a randomly deformed
copy of a real digit. The deformation is the elastic distortion of Simard, Steinkraus & Platt (2003)
— a field of uniform random displacements in [-1, 1] px, smoothed by a Gaussian of width ``sigma``
and scaled by ``alpha`` — plus a small random rotation, scaling, shear and translation, applied by
bilinear resampling (``grid_sample``), batched on any device.

Every random number of example ``i`` comes from a counter-based hash of (seed, i, counter) computed
with exact integer tensor ops, so an example is the same whatever batch it is in, and the same on
CPU and GPU up to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from .data import Subset

SIDE = 28
_MASK32 = 0xFFFFFFFF
_FIELD_DOMAIN = 0x243F6A88  # hex digits of pi: separate hash domains for distortions and pass orders
_ORDER_DOMAIN = 0x85A308D3


@dataclass(frozen=True)
class DistortionConfig:
    """How strongly digits are deformed (defaults keep them clearly legible).

    alpha: elastic strength (Simard et al. 2003 use 34 on 28x28); sigma: smoothness of the elastic
    field in px (4 in Simard et al.; larger is smoother and milder); max_rotation_deg: rotation drawn from
    [-max, max] degrees; max_scale: scale drawn from [1 - max, 1 + max]; max_shear: horizontal shear
    factor drawn from [-max, max]; max_shift_px: translation per axis drawn from [-max, max] px.
    All draws are uniform. With the defaults, a pixel-space 1-nearest-neighbour classifier built on
    the other mnist-10k training digits labels 88 % of distorted digits right (95 % of the originals).
    """

    alpha: float = 34.0
    sigma: float = 6.0
    max_rotation_deg: float = 10.0
    max_scale: float = 0.1
    max_shear: float = 0.15
    max_shift_px: float = 0.5

    def __post_init__(self) -> None:
        limits = {
            "alpha": (0.0, 100.0, "0 <= alpha <= 100"),
            "sigma": (0.5, 14.0, "0.5 <= sigma <= 14 (px)"),
            "max_rotation_deg": (0.0, 90.0, "0 <= max_rotation_deg <= 90"),
            "max_scale": (0.0, 0.5, "0 <= max_scale <= 0.5"),
            "max_shear": (0.0, 1.0, "0 <= max_shear <= 1"),
            "max_shift_px": (0.0, 7.0, "0 <= max_shift_px <= 7"),
        }
        for f in fields(self):
            value = getattr(self, f.name)
            low, high, allowed = limits[f.name]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"DistortionConfig.{f.name}={value!r} is out of range; need {allowed}")


def distort(
    images: torch.Tensor, seed: int, indices: torch.Tensor, config: DistortionConfig = DistortionConfig()
) -> torch.Tensor:
    """Distorted copies of ``images``: row n is deformed by the random draw of example ``indices[n]``.

    images: (N, 784) or (N, 28, 28) float in [0, 1]; seed: int in [0, 2**64); indices: (N,) integer
    example ids >= 0 (any device; moved to the images' device). Returns a tensor of the same shape,
    dtype and device, clipped to [0, 1]. Same (seed, index, image) -> same result, in any batch.
    """
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        raise TypeError(f"images must be a float tensor, got {_describe(images)}")
    if images.shape[1:] not in ((SIDE * SIDE,), (SIDE, SIDE)):
        raise ValueError(f"images must have shape (N, 784) or (N, 28, 28), got {tuple(images.shape)}")
    _check_seed(seed)
    if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"indices must be an integer tensor, got {_describe(indices)}")
    if indices.shape != (len(images),):
        raise ValueError(f"indices must have shape ({len(images)},) to match images, got {tuple(indices.shape)}")
    if not isinstance(config, DistortionConfig):
        raise TypeError(f"config must be a DistortionConfig, got {type(config).__name__}")
    indices = indices.to(device=images.device, dtype=torch.int64)
    if len(indices) and int(indices.min()) < 0:
        raise ValueError(f"indices must be >= 0, got a minimum of {int(indices.min())}")
    if len(images) == 0:
        return images.clone()
    grid = _sampling_grid(_uniforms(seed, indices, 2 * SIDE * SIDE + 5), config)
    pixels = images.reshape(-1, 1, SIDE, SIDE).float()
    out = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.clamp_(0.0, 1.0).reshape(images.shape).to(images.dtype)


class DistortedStream:
    """An endless stream of distorted copies of a base set, computed on demand, never stored.

    Example i of the stream is base digit ``order_p[i % N]`` (``order_p`` a seeded permutation for
    pass p = i // N) distorted with the random draw of example i, with that digit's label.
    """

    def __init__(self, base: Subset, seed: int, config: DistortionConfig = DistortionConfig()) -> None:
        if not isinstance(base, Subset) or len(base) == 0:
            raise ValueError(f"base must be a non-empty Subset, got {base!r:.80}")
        if base.x.shape[1] != SIDE * SIDE:
            raise ValueError(f"base.x must have 784 columns (28x28 digits), got {base.x.shape[1]}")
        _check_seed(seed)
        if not isinstance(config, DistortionConfig):
            raise TypeError(f"config must be a DistortionConfig, got {type(config).__name__}")
        self.base, self.seed, self.config = base, seed, config
        self._orders: dict[int, torch.Tensor] = {}

    def batch(self, start: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples start .. start+size-1: x (size, 784) in [0, 1] and y (size,) int64, on base's device."""
        _check_range(start, size)
        n = len(self.base)
        stream_ids = torch.arange(start, start + size, dtype=torch.int64)
        rows = torch.empty(size, dtype=torch.int64)
        for p in range(start // n, (start + size - 1) // n + 1):
            in_pass = (stream_ids // n) == p
            rows[in_pass] = self._order(p)[stream_ids[in_pass] % n]
        rows = rows.to(self.base.x.device)
        x = distort(self.base.x[rows], self.seed, stream_ids, self.config)
        return x, self.base.y[rows]

    def stored(self, n_examples: int, *, chunk: int = 5000) -> "StoredStream":
        """Examples 0 .. n_examples-1 computed once (``chunk`` at a time) and kept in memory.

        For runs that read the same stream prefix several times (a rate grid, several
        initialisations): batch(start, size) of the result equals this stream's, at the cost of
        n_examples * 784 * 4 bytes.
        """
        if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
            raise ValueError(f"n_examples={n_examples!r} must be an int >= 1")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"chunk={chunk!r} must be an int >= 1")
        parts = [self.batch(s, min(chunk, n_examples - s)) for s in range(0, n_examples, chunk)]
        return StoredStream(torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts]))

    def batches(self, size: int, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches of ``size`` examples from ``start`` on, without end."""
        while True:
            yield self.batch(start, size)
            start += size

    def _order(self, p: int) -> torch.Tensor:
        """The seeded permutation (CPU, int64) of the base rows used in pass p."""
        if p not in self._orders:
            if len(self._orders) >= 2:
                self._orders.pop(min(self._orders))
            positions = torch.arange(len(self.base), dtype=torch.int64)
            key = _example_keys(self.seed ^ _ORDER_DOMAIN, torch.tensor([p], dtype=torch.int64))
            high = _mix32(key ^ positions)
            low = _mix32(high ^ _FIELD_DOMAIN)
            self._orders[p] = torch.argsort((high << 31) | (low >> 1), stable=True)
        return self._orders[p]


class StoredStream:
    """A finite stream kept in memory (:meth:`DistortedStream.stored`): x (N, 784) and y (N,)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def batch(self, start: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Examples start .. start+size-1 (views), as :meth:`DistortedStream.batch`; within the stored length."""
        _check_range(start, size, len(self))
        return self.x[start:start + size], self.y[start:start + size]


def _check_range(start: object, size: object, length: int | None = None) -> None:
    """start an int >= 0 and size an int >= 1 (within ``length`` examples when the stream has a length)."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start={start!r} must be an int >= 0")
    most = None if length is None else length - start
    if isinstance(size, bool) or not isinstance(size, int) or size < 1 or (most is not None and size > most):
        if most is None:
            raise ValueError(f"size={size!r} must be an int >= 1")
        raise ValueError(f"size={size!r} must be an int in [1, {most}] (the stream stores {length} examples, "
                         f"start={start})")


def _check_seed(seed: object) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**64:
        raise ValueError(f"seed={seed!r} must be an int in [0, 2**64)")


def _describe(t: object) -> str:
    if isinstance(t, torch.Tensor):
        return f"tensor of dtype {t.dtype} and shape {tuple(t.shape)}"
    return type(t).__name__


# --- counter-based random numbers (exact integer ops, identical on every device) ---------------------
def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for int64 x in [0, 2**32), without int64 overflow (16-bit halves of c)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """The 'lowbias32' integer hash (C. Wellons) of int64 values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def _example_keys(seed: int, indices: torch.Tensor) -> torch.Tensor:
    """(N,) int64 32-bit keys, one per (seed, index); indices int64 >= 0."""
    s = torch.tensor([seed & _MASK32, (seed >> 32) & _MASK32], dtype=torch.int64, device=indices.device)
    h = _mix32(_mix32(s[0] ^ _FIELD_DOMAIN) ^ s[1])
    h = _mix32(h ^ (indices & _MASK32))
    return _mix32(h ^ (indices >> 32))


def _uniforms(seed: int, indices: torch.Tensor, count: int) -> torch.Tensor:
    """(N, count) float32 uniforms in [0, 1), 24-bit exact, a function of (seed, index, column)."""
    counters = _mix32(torch.arange(count, dtype=torch.int64, device=indices.device) ^ _ORDER_DOMAIN)
    bits = _mix32(_example_keys(seed, indices)[:, None] ^ counters[None, :])
    return (bits >> 8).to(torch.float32) * (2.0**-24)


# --- the deformation ---------------------------------------------------------------------------------
def _gaussian_weights(sigma: float) -> list[float]:
    """Normalised Gaussian weights for offsets -r..r, r = ceil(3 sigma) capped at 27."""
    radius = min(math.ceil(3 * sigma), SIDE - 1)
    w = [math.exp(-0.5 * (k / sigma) ** 2) for k in range(-radius, radius + 1)]
    total = sum(w)
    return [v / total for v in w]


def _smooth(field: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of (N, 2, 28, 28) fields, zero outside the image (scipy mode='constant').

    Written as a sum of shifted copies so each output depends only on its own example: results do
    not change with the batch size.
    """
    weights = _gaussian_weights(sigma)
    r = len(weights) // 2
    for dim in (2, 3):
        pad = (0, 0, r, r) if dim == 2 else (r, r, 0, 0)
        padded = F.pad(field, pad)
        out = torch.zeros_like(field)
        for k, w in enumerate(weights):
            out.add_(padded.narrow(dim, k, SIDE), alpha=w)
        field = out
    return field


def _sampling_grid(u: torch.Tensor, config: DistortionConfig) -> torch.Tensor:
    """(N, 28, 28, 2) ``grid_sample`` grid from (N, 2*784 + 5) uniforms.

    Output pixel p (centred coordinates) samples the input at A p + t + alpha * smooth(d)(p), where
    A = rotation @ shear @ scale and d is uniform in [-1, 1]^2 per pixel.
    """
    n = len(u)
    field = (2 * u[:, : 2 * SIDE * SIDE] - 1).reshape(n, 2, SIDE, SIDE)
    dx, dy = (config.alpha * _smooth(field, config.sigma)).unbind(1)
    a = (2 * u[:, 2 * SIDE * SIDE :] - 1)[:, :, None, None]  # (N, 5, 1, 1) in [-1, 1)
    angle = a[:, 0] * math.radians(config.max_rotation_deg)
    scale = 1 + a[:, 1] * config.max_scale
    shear = a[:, 2] * config.max_shear
    tx, ty = a[:, 3] * config.max_shift_px, a[:, 4] * config.max_shift_px
    cos, sin = torch.cos(angle), torch.sin(angle)
    # A = [[cos, -sin], [sin, cos]] @ [[1, shear], [0, 1]] * scale
    a11, a12 = cos * scale, (cos * shear - sin) * scale
    a21, a22 = sin * scale, (sin * shear + cos) * scale
    coords = torch.arange(SIDE, dtype=torch.float32, device=u.device) - (SIDE - 1) / 2
    px, py = coords[None, None, :], coords[None, :, None]
    src_x = a11 * px + a12 * py + tx + dx
    src_y = a21 * px + a22 * py + ty + dy
    # pixel centre c in 0..27 maps to (2c + 1) / 28 - 1 with align_corners=False
    return torch.stack([src_x, src_y], dim=-1) * (2.0 / SIDE)
