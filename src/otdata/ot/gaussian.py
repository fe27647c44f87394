"""Bures-Wasserstein distances between Gaussians.

``W2^2(N(m1, S1), N(m2, S2)) = ||m1 - m2||^2 + tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}``.

The cross term only needs a *factor* ``F`` of each covariance, ``S = F^T F``:
``tr (S1^{1/2} S2 S1^{1/2})^{1/2} = ||F1 F2^T||_*`` (nuclear norm), i.e. the sum of square roots
of the eigenvalues of the small Gram matrix ``K K^T`` (or ``K^T K``), ``K = F1 F2^T``. Two factors:

* full: ``F = S^{1/2}`` (``d x d``, one batched ``eigh`` per class, negative eigenvalues
  clamped), so ``K K^T = S1^{1/2} S2 S1^{1/2}``;
* low rank: ``F = (X - mean) / sqrt(n_c)`` (``n_c x d``) when a class has ``n_c <= d`` samples;
  then ``K`` is ``n_c x n_c'`` and a pair costs ``O(n_c n_c' d)`` instead of ``O(d^3)``.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor


@contextlib.contextmanager
def _few_threads(size: int):
    """Small ``eigh``/``eigvalsh`` calls run far faster on one thread than on several (LAPACK's
    thread start-up and synchronisation dominate, badly so on a busy machine)."""
    prev = torch.get_num_threads()
    if size > 1024 or prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def sqrtm_psd(S: Tensor, ridge: float = 0.0) -> Tensor:
    """Symmetric PSD square root (batched) by ``eigh``; eigenvalues clamped at 0 (+ ``ridge``)."""
    S = 0.5 * (S + S.transpose(-1, -2))
    with _few_threads(S.shape[-1]):
        w, V = torch.linalg.eigh(S)
    w = (w.clamp_min(0.0) + ridge).sqrt()
    return (V * w.unsqueeze(-2)) @ V.transpose(-1, -2)


def covariance_factor(X: Tensor, mean: Tensor | None = None, low_rank: bool | str = "auto", ridge: float = 0.0):
    """Factor ``F`` with ``F^T F = cov(X)`` (biased, 1/n) [+ ridge I]. Returns ``(F, trace)``.

    ``low_rank="auto"`` uses the centered samples when ``n <= d`` and ``ridge == 0``.
    """
    n, d = X.shape
    mean = X.mean(0) if mean is None else mean
    Xc = (X - mean) / (n**0.5)
    if low_rank == "auto":
        low_rank = n <= d and ridge == 0
    if low_rank:
        if ridge:
            raise ValueError("the low-rank covariance route cannot add a ridge; use low_rank=False")
        return Xc, (Xc * Xc).sum()
    S = Xc.T @ Xc
    if ridge:
        S = S + ridge * torch.eye(d, dtype=S.dtype, device=S.device)
    return sqrtm_psd(S), torch.diagonal(S).sum()


def bures_cross_term(F1: Tensor, F2: Tensor) -> Tensor:
    """``tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` from factors ``S_k = F_k^T F_k``."""
    K = F1 @ F2.T
    G = K @ K.T if K.shape[0] <= K.shape[1] else K.T @ K
    w = torch.linalg.eigvalsh(0.5 * (G + G.T))
    return w.clamp_min(0.0).sqrt().sum()


def bures_wasserstein_factors(
    mu1: Tensor, F1: list[Tensor], tr1: Tensor, mu2: Tensor, F2: list[Tensor], tr2: Tensor
) -> Tensor:
    """All-pairs ``W2^2`` (``(C1, C2)``) from means, covariance factors and traces."""
    M = torch.cdist(mu1, mu2).pow(2) if mu1.requires_grad or mu2.requires_grad else _sq(mu1, mu2)
    size = max([f.shape[0] for f in list(F1) + list(F2)] + [0])
    with _few_threads(size):
        cross = torch.stack([torch.stack([bures_cross_term(f1, f2) for f2 in F2]) for f1 in F1])
    return (M + tr1.unsqueeze(1) + tr2.unsqueeze(0) - 2 * cross).clamp_min(0.0)


def _sq(x: Tensor, y: Tensor) -> Tensor:
    return ((x.unsqueeze(1) - y.unsqueeze(0)) ** 2).sum(-1)


def bures_wasserstein(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor, ridge: float = 0.0) -> Tensor:
    """All-pairs ``W2^2`` between Gaussians ``(mu1[i], cov1[i])`` and ``(mu2[j], cov2[j])``.

    ``mu*``: ``(C, d)``; ``cov*``: ``(C, d, d)``. ``S1^{1/2}`` is computed once per class, the
    pairs ``S1^{1/2} S2 S1^{1/2}`` are batched through ``eigvalsh``. Single Gaussians: pass
    ``mu[None]``, ``cov[None]``.
    """
    d = mu1.shape[-1]
    eye = torch.eye(d, dtype=cov1.dtype, device=cov1.device)
    c1 = cov1 + ridge * eye
    c2 = cov2 + ridge * eye
    R1 = sqrtm_psd(c1)  # (C1, d, d)
    out = torch.empty(mu1.shape[0], mu2.shape[0], dtype=mu1.dtype, device=mu1.device)
    cross_rows = []
    for i in range(R1.shape[0]):
        M = R1[i].unsqueeze(0) @ c2 @ R1[i].unsqueeze(0)  # (C2, d, d)
        w = torch.linalg.eigvalsh(0.5 * (M + M.transpose(-1, -2)))
        cross_rows.append(w.clamp_min(0.0).sqrt().sum(-1))
    cross = torch.stack(cross_rows)
    tr1 = torch.diagonal(c1, dim1=-2, dim2=-1).sum(-1)
    tr2 = torch.diagonal(c2, dim1=-2, dim2=-1).sum(-1)
    out = _sq(mu1, mu2) + tr1.unsqueeze(1) + tr2.unsqueeze(0) - 2 * cross
    return out.clamp_min(0.0)


def bures_wasserstein_diagonal(mu1: Tensor, var1: Tensor, mu2: Tensor, var2: Tensor) -> Tensor:
    """All-pairs ``W2^2`` for diagonal covariances: ``||mu1-mu2||^2 + ||sqrt(v1) - sqrt(v2)||^2``."""
    return _sq(mu1, mu2) + _sq(var1.clamp_min(0).sqrt(), var2.clamp_min(0).sqrt())
