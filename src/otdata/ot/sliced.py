"""Sliced Wasserstein distance (seeded random projections, exact 1-D OT per projection)."""

from __future__ import annotations

import torch
from torch import Tensor


def _quantile_w_pp(u: Tensor, v: Tensor, p: float) -> Tensor:
    """Exact ``W_p^p`` between uniform 1-D samples, batched over the last dim of projections.

    ``u``: (n, L), ``v``: (m, L). Integrates ``|F^-1(t) - G^-1(t)|^p`` over the merged grid.
    """
    n, m = u.shape[0], v.shape[0]
    us, _ = u.sort(0)
    vs, _ = v.sort(0)
    dev, dt = u.device, u.dtype
    t = torch.cat([torch.arange(1, n + 1, device=dev, dtype=dt) / n, torch.arange(1, m + 1, device=dev, dtype=dt) / m])
    t, _ = t.sort()
    w = torch.diff(torch.cat([torch.zeros(1, device=dev, dtype=dt), t]))
    mid = t - 0.5 * w
    iu = (mid * n).floor().long().clamp(0, n - 1)
    iv = (mid * m).floor().long().clamp(0, m - 1)
    return (w.unsqueeze(1) * (us[iu] - vs[iv]).abs().pow(p)).sum(0)


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
    return _quantile_w_pp(x @ th, y @ th, p).mean()
