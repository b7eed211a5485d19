"""How similar two representations of the same inputs are.

:func:`linear_cka` is linear centred kernel alignment (Kornblith, Norouzi, Lee and Hinton 2019,
"Similarity of neural network representations revisited", ICML): for activations X (N, D1) and
Y (N, D2) of the same N inputs, with every column centred over the inputs,

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F),

which equals HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the linear kernels K = X X^T, L = Y Y^T
(HSIC(K, L) = tr(K H L H), H the centring matrix). It lies in [0, 1], is 1 for representations that
differ by an orthogonal transformation and an isotropic scaling (and a shift), and is invariant to
exactly those; it is not invariant to rescaling single units. Like every other model in the library
it carries a members dimension M first.
"""

from __future__ import annotations

import torch

__all__ = ["linear_cka"]

Tensor = torch.Tensor


def _members(name: str, t: object) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of activations (N, D) or (M, N, D), got {type(t).__name__}")
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.dim() != 3:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; expected activations (N, D) or (M, N, D)")
    return t.double()


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Linear CKA between x (M, N, D1) and y (M, N, D2), member by member: (M,) float64.

    (N, D) inputs count as one member (broadcast against the other's M). Rows are the same N >= 2
    inputs in both. Raises ValueError on mismatched shapes or when a member's x or y is constant over
    the inputs (CKA is undefined there).
    """
    x, y = _members("x", x), _members("y", y)
    if x.shape[1] != y.shape[1] or (x.shape[0] != y.shape[0] and 1 not in (x.shape[0], y.shape[0])):
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must hold the same inputs (N) and members (M, or 1)")
    if x.shape[1] < 2:
        raise ValueError(f"linear_cka needs at least 2 inputs, got N={x.shape[1]}")
    x = x - x.mean(1, keepdim=True)
    y = y - y.mean(1, keepdim=True)
    cross = torch.linalg.matrix_norm(y.transpose(1, 2) @ x) ** 2
    norm_x = torch.linalg.matrix_norm(x.transpose(1, 2) @ x)
    norm_y = torch.linalg.matrix_norm(y.transpose(1, 2) @ y)
    if bool((norm_x == 0).any()) or bool((norm_y == 0).any()):
        raise ValueError("linear_cka: a member's activations are constant over the inputs; CKA is undefined there")
    return cross / (norm_x * norm_y)
