"""Seeded elastic + affine distortions: exactness of the pieces, determinism, legibility, the stream."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from pretraining.core import distort as D
from pretraining.core.data import Subset, load_dataset
from pretraining.core.distort import DistortedStream, DistortionConfig, distort

STILL = DistortionConfig(alpha=0, max_rotation_deg=0, max_scale=0, max_shear=0, max_shift_px=0)


@pytest.fixture(scope="module")
def digits() -> Subset:
    """300 training digits, 30 of each class."""
    train = load_dataset().train
    rows = torch.cat([torch.nonzero(train.y == c)[:30, 0] for c in range(10)])
    return Subset(train.x[rows], train.y[rows])


def _lowbias32(x: int) -> int:
    """Reference: lowbias32 in plain Python integers."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_integer_hash_matches_reference() -> None:
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF, *range(12345, 12400)]
    got = D._mix32(torch.tensor(values, dtype=torch.int64)).tolist()
    assert got == [_lowbias32(v) for v in values]


def test_uniforms_are_in_unit_interval() -> None:
    u = D._uniforms(5, torch.arange(200), 1000)
    assert u.dtype == torch.float32 and u.min() >= 0 and u.max() < 1
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.002


@pytest.mark.parametrize("sigma", [1.0, 4.0, 5.0, 6.0])
def test_smoothing_equals_scipy_constant_mode(sigma: float) -> None:
    field = torch.rand(3, 2, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = np.stack(
        [[gaussian_filter(f, sigma, mode="constant", truncate=3.0) for f in pair] for pair in field.numpy()]
    )
    assert np.allclose(D._smooth(field, sigma).numpy(), expected, atol=1e-12)


def test_grid_convention_shifts_by_whole_pixels() -> None:
    """u = 0 draws every parameter at its lower bound: here a shift of -2 px in x and y."""
    config = DistortionConfig(alpha=0, max_rotation_deg=0, max_scale=0, max_shear=0, max_shift_px=2)
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    grid = D._sampling_grid(torch.zeros(1, 2 * 784 + 5), config)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    expected = torch.zeros_like(image)
    expected[..., 2:, 2:] = image[..., :-2, :-2]  # output(p) = input(p - 2): the digit moves right and down
    assert torch.allclose(out, expected, atol=1e-5)


def test_grid_convention_rotates_about_the_centre() -> None:
    """u = 0 with max_rotation_deg=90 rotates by -90 degrees about the image centre, exactly."""
    config = DistortionConfig(alpha=0, max_rotation_deg=90, max_scale=0, max_shear=0, max_shift_px=0)
    image = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    grid = D._sampling_grid(torch.zeros(1, 2 * 784 + 5), config)
    out = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # source = R(-90) p: (x, y) -> (y, -x), so output[y, x] = input[27 - x, y]: a clockwise quarter turn
    assert torch.allclose(out, torch.rot90(image, k=-1, dims=(2, 3)), atol=1e-5)


def test_still_config_is_the_identity(digits: Subset) -> None:
    assert torch.allclose(distort(digits.x, 0, torch.arange(len(digits)), STILL), digits.x, atol=1e-5)


def test_deterministic_and_seeded(digits: Subset) -> None:
    idx = torch.arange(len(digits))
    a, b = distort(digits.x, 11, idx), distort(digits.x, 11, idx)
    assert torch.equal(a, b)
    assert (a - distort(digits.x, 12, idx)).abs().amax(dim=1).min() > 0.05


def test_batch_composition_does_not_matter(digits: Subset) -> None:
    idx = torch.arange(5000, 5000 + len(digits))
    whole = distort(digits.x, 3, idx)
    chunks = torch.cat([distort(digits.x[i : i + 7], 3, idx[i : i + 7]) for i in range(0, len(digits), 7)])
    perm = torch.randperm(len(digits), generator=torch.Generator().manual_seed(0))
    assert torch.equal(whole, chunks)
    assert torch.equal(whole[perm], distort(digits.x[perm], 3, idx[perm]))
    assert torch.equal(whole[17:18], distort(digits.x[17:18], 3, idx[17:18]))


def test_shapes_dtypes_and_range(digits: Subset) -> None:
    idx = torch.arange(len(digits))
    square = distort(digits.x.reshape(-1, 28, 28), 0, idx)
    assert square.shape == (len(digits), 28, 28) and square.dtype == torch.float32
    assert torch.equal(square.reshape(-1, 784), distort(digits.x, 0, idx))
    strong = DistortionConfig(alpha=100, sigma=2, max_scale=0.5, max_shear=1)
    out = distort(digits.x.double(), 0, idx.int(), strong)
    assert out.dtype == torch.float64 and out.min() >= 0 and out.max() <= 1
    assert distort(digits.x[:0], 0, idx[:0]).shape == (0, 784)


def test_different_indices_give_different_images(digits: Subset) -> None:
    one = digits.x[:1].expand(10, 784)
    out = distort(one, 0, torch.arange(10))
    gaps = (out[:, None] - out[None, :]).abs().amax(dim=2) + torch.eye(10)
    assert gaps.min() > 0.1


def test_distorted_digits_stay_legible(digits: Subset) -> None:
    """Each distorted digit correlates with its own original far better than with other digits."""

    def z(a: torch.Tensor) -> torch.Tensor:
        a = a - a.mean(dim=1, keepdim=True)
        return a / a.norm(dim=1, keepdim=True)

    out = distort(digits.x, 7, torch.arange(len(digits)))
    corr = z(out) @ z(digits.x).T  # (distorted, original)
    own = corr.diagonal()
    others = corr.masked_fill(torch.eye(len(digits), dtype=torch.bool), float("nan")).nanmean(dim=1)
    assert own.mean() > 0.5 and (own > others).float().mean() > 0.95
    # and they still look like their class: a nearest-class-mean classifier (84 % right on the
    # originals) keeps most of its accuracy on them (about 68 %; 6 % with alpha=100, sigma=2)
    means = z(torch.stack([digits.x[digits.y == c].mean(0) for c in range(10)]))
    accuracy = [((z(a) @ means.T).argmax(1) == digits.y).float().mean() for a in (digits.x, out)]
    assert accuracy[1] > 0.7 * accuracy[0], accuracy


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_agree(digits: Subset) -> None:
    idx = torch.arange(len(digits))
    cpu = distort(digits.x, 4, idx)
    gpu = distort(digits.x.cuda(), 4, idx.cuda())
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4)


@pytest.mark.parametrize(
    ("field", "value"),
    [("alpha", -1.0), ("sigma", 0.0), ("sigma", float("nan")), ("max_rotation_deg", 91.0),
     ("max_scale", 0.6), ("max_shear", -0.1), ("max_shift_px", 8.0), ("alpha", True), ("sigma", "4")],
)
def test_bad_config_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"DistortionConfig.{field}="):
        DistortionConfig(**{field: value})


def test_bad_arguments_are_refused(digits: Subset) -> None:
    x, idx = digits.x[:4], torch.arange(4)
    with pytest.raises(TypeError, match="images must be a float tensor"):
        distort((x * 255).to(torch.uint8), 0, idx)
    with pytest.raises(ValueError, match=r"images must have shape .* got \(4, 783\)"):
        distort(x[:, :783], 0, idx)
    with pytest.raises(ValueError, match="seed=-1"):
        distort(x, -1, idx)
    with pytest.raises(ValueError, match="seed=True"):
        distort(x, True, idx)
    with pytest.raises(TypeError, match="indices must be an integer tensor"):
        distort(x, 0, idx.float())
    with pytest.raises(ValueError, match=r"indices must have shape \(4,\)"):
        distort(x, 0, idx[:3])
    with pytest.raises(ValueError, match="indices must be >= 0"):
        distort(x, 0, idx - 2)
    with pytest.raises(TypeError, match="config must be a DistortionConfig"):
        distort(x, 0, idx, {"alpha": 1})


# --- the stream --------------------------------------------------------------------------------------
def test_stream_keeps_labels_and_visits_every_digit_once_per_pass(digits: Subset) -> None:
    stream = DistortedStream(digits, seed=5, config=STILL)
    n = len(digits)
    x, y = stream.batch(0, 2 * n)
    # undistorted, each stream example is exactly one base digit: find it and compare labels
    dist = torch.cdist(x, digits.x, compute_mode="donot_use_mm_for_euclid_dist")
    match = dist.argmin(dim=1)
    assert dist.min(dim=1).values.max() < 1e-3
    assert torch.equal(y, digits.y[match])
    for p in range(2):
        assert sorted(match[p * n : (p + 1) * n].tolist()) == list(range(n))
    assert not torch.equal(match[:n], match[n:])  # a new order each pass
    assert not torch.equal(match[:n], torch.arange(n))


def test_stream_batches_are_consistent_across_boundaries(digits: Subset) -> None:
    stream = DistortedStream(digits, seed=9)
    n = len(digits)
    x, y = stream.batch(n - 20, 50)
    x1, y1 = stream.batch(n - 20, 20)
    x2, y2 = DistortedStream(digits, seed=9).batch(n, 30)  # a fresh stream: nothing carried over
    assert torch.equal(x, torch.cat([x1, x2])) and torch.equal(y, torch.cat([y1, y2]))
    far, _ = stream.batch(10**12, 4)  # any length: far positions need no storage
    assert far.shape == (4, 784) and far.min() >= 0 and far.max() <= 1
    first = next(stream.batches(50, start=n - 20))
    assert torch.equal(first[0], x)


def test_stream_seed_matters(digits: Subset) -> None:
    a, _ = DistortedStream(digits, seed=1).batch(0, 20)
    b, _ = DistortedStream(digits, seed=2).batch(0, 20)
    assert not torch.equal(a, b)


def test_stream_validates(digits: Subset) -> None:
    stream = DistortedStream(digits, seed=0)
    with pytest.raises(ValueError, match="start=-1"):
        stream.batch(-1, 4)
    with pytest.raises(ValueError, match="size=0"):
        stream.batch(0, 0)
    with pytest.raises(ValueError, match="base must be a non-empty Subset"):
        DistortedStream(Subset(digits.x[:0], digits.y[:0]), seed=0)
    with pytest.raises(ValueError, match="seed=1.5"):
        DistortedStream(digits, seed=1.5)


def test_stored_stream_equals_the_stream_it_stores(digits: Subset) -> None:
    stream = DistortedStream(digits, seed=4)
    n = len(digits)
    stored = stream.stored(2 * n + 7, chunk=n // 3)  # chunks that straddle the passes
    assert len(stored) == 2 * n + 7
    for start, size in [(0, 1), (n - 5, 12), (2 * n, 7)]:
        x, y = stored.batch(start, size)
        x0, y0 = DistortedStream(digits, seed=4).batch(start, size)
        assert torch.equal(x, x0) and torch.equal(y, y0)
    with pytest.raises(ValueError, match=r"size=8 must be an int in \[1, 7\]"):
        stored.batch(2 * n, 8)
    with pytest.raises(ValueError, match="n_examples=0"):
        stream.stored(0)
