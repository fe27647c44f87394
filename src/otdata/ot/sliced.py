"""Sliced Wasserstein distance (seeded random projections, exact 1-D OT per projection)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def w_pp_sorted(u: Tensor, v: Tensor, p: float) -> Tensor:
    """Exact ``W_p^p`` between uniform 1-D samples whose rows are already sorted.

    ``u``: ``(L, n)``, ``v``: ``(L, m)``; returns ``(L,)``. Equal sizes pair the order statistics;
    otherwise the two quantile functions are compared on the merged grid ``{i/n} U {j/m}``.
    Differentiable w.r.t. ``u`` and ``v`` (the grid is not).
    """
    n, m = u.shape[1], v.shape[1]
    if n == m:
        return (u - v).abs().pow(p).mean(1)
    t = np.sort(np.concatenate([np.arange(1, n + 1) / n, np.arange(1, m + 1) / m]))
    w = np.diff(np.concatenate([[0.0], t]))
    mid = t - 0.5 * w
    iu = torch.from_numpy(np.minimum((mid * n).astype(np.int64), n - 1)).to(u.device)
    iv = torch.from_numpy(np.minimum((mid * m).astype(np.int64), m - 1)).to(u.device)
    weights = torch.from_numpy(w).to(u.device, u.dtype)
    return (weights * (u[:, iu] - v[:, iv]).abs().pow(p)).sum(1)


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int = 128, p: float = 2.0, seed: int = 0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Sliced ``W_p^p``: mean over ``n_projections`` random unit directions of 1-D ``W_p^p``.

    Uniform weights; differentiable w.r.t. ``x`` and ``y``; directions drawn from ``generator``
    (e.g. a flow's own, advanced at every call) or else from a generator seeded with ``seed``
    (same seed, same directions).
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, d) and (m, d); got {tuple(x.shape)}, {tuple(y.shape)}")
    gen = generator if generator is not None else torch.Generator(device="cpu").manual_seed(seed)
    th = torch.randn(x.shape[1], n_projections, generator=gen, dtype=torch.float64).to(x.device, x.dtype)
    th = th / th.norm(dim=0, keepdim=True)
    return w_pp_sorted((x @ th).T.sort(1).values, (y @ th).T.sort(1).values, p).mean()
