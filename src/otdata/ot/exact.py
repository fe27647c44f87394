"""Exact OT through POT (``ot.emd`` / ``ot.emd2``), for small problems and references."""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor


def _weights(w: Tensor | None, n: int) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    w = w.detach().cpu().double().numpy()
    return w / w.sum()


def emd2(C: Tensor, a: Tensor | None = None, b: Tensor | None = None, num_itermax: int = 1_000_000) -> float:
    """Exact OT cost ``min_pi <pi, C>`` (float64 network simplex via ``ot.emd2``)."""
    Cn = C.detach().cpu().double().numpy()
    return float(ot.emd2(_weights(a, Cn.shape[0]), _weights(b, Cn.shape[1]), Cn, numItermax=num_itermax))


def emd(C: Tensor, a: Tensor | None = None, b: Tensor | None = None, num_itermax: int = 1_000_000) -> Tensor:
    """Exact optimal coupling (``(n, m)`` tensor, dtype/device of ``C``) via ``ot.emd``."""
    Cn = C.detach().cpu().double().numpy()
    P = ot.emd(_weights(a, Cn.shape[0]), _weights(b, Cn.shape[1]), Cn, numItermax=num_itermax)
    return torch.as_tensor(P, dtype=C.dtype, device=C.device)


def emd2_differentiable(C: Tensor, a: Tensor | None = None, b: Tensor | None = None) -> Tensor:
    """Exact OT cost as a tensor whose gradient w.r.t. ``C`` is the optimal coupling."""
    P = emd(C, a, b)
    return (P * C).sum()
