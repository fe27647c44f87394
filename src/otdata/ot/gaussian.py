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

import torch
from torch import Tensor

from otdata.ot._threads import single_thread


def sqrtm_psd(S: Tensor, ridge: float = 0.0) -> Tensor:
    """Symmetric PSD square root (batched) by ``eigh``; eigenvalues clamped at 0 (+ ``ridge``)."""
    S = 0.5 * (S + S.transpose(-1, -2))
    with single_thread(S.shape[-1] <= 1024):
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


def bures_from_parts(M: Tensor, tr1: Tensor, tr2: Tensor, cross: Tensor) -> Tensor:
    """All-pairs ``W2^2 = ||m1 - m2||^2 + tr S1 + tr S2 - 2 tr (S1^{1/2} S2 S1^{1/2})^{1/2}`` from its
    parts: squared mean distances ``M`` ``(C1, C2)``, traces ``tr1`` ``(C1,)`` and ``tr2`` ``(C2,)``, and
    cross terms ``cross`` ``(C1, C2)``; clamped at 0 (rounding can take a zero distance below it)."""
    return (M + tr1.unsqueeze(1) + tr2.unsqueeze(0) - 2 * cross).clamp_min(0.0)


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
    with single_thread(size <= 1024):
        cross = torch.stack([torch.stack([bures_cross_term(f1, f2) for f2 in F2]) for f1 in F1])
    return bures_from_parts(M, tr1, tr2, cross)


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
    cross_rows = []
    for i in range(R1.shape[0]):
        M = R1[i].unsqueeze(0) @ c2 @ R1[i].unsqueeze(0)  # (C2, d, d)
        w = torch.linalg.eigvalsh(0.5 * (M + M.transpose(-1, -2)))
        cross_rows.append(w.clamp_min(0.0).sqrt().sum(-1))
    cross = torch.stack(cross_rows)
    tr1 = torch.diagonal(c1, dim1=-2, dim2=-1).sum(-1)
    tr2 = torch.diagonal(c2, dim1=-2, dim2=-1).sum(-1)
    return bures_from_parts(_sq(mu1, mu2), tr1, tr2, cross)


def bures_wasserstein_diagonal(mu1: Tensor, var1: Tensor, mu2: Tensor, var2: Tensor) -> Tensor:
    """All-pairs ``W2^2`` for diagonal covariances: ``||mu1-mu2||^2 + ||sqrt(v1) - sqrt(v2)||^2``."""
    return _sq(mu1, mu2) + _sq(var1.clamp_min(0).sqrt(), var2.clamp_min(0).sqrt())


# -- batched cross terms ----------------------------------------------------------------------------


def padded_class_index(labels: Tensor, C: int) -> tuple[Tensor, Tensor]:
    """Row positions of every class, ``(C, n_max)``, padded with ``len(labels)``, and the counts."""
    n = labels.shape[0]
    counts = torch.bincount(labels, minlength=C)
    order = torch.argsort(labels, stable=True)
    ls = labels[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=labels.device) - starts[ls]
    idx = torch.full((C, int(counts.max()) if n else 0), n, dtype=torch.long, device=labels.device)
    idx[ls, rank] = order
    return idx, counts


def nuclear_norms(K: Tensor, safe: bool = False) -> Tensor:
    """Nuclear norms of a batch ``(..., n1, n2)``: square roots of the eigenvalues of the smaller
    Gram matrix, summed. ``safe=True``: eigenvalues below ``1e-10 * max`` (per matrix) count as
    zero and get no gradient (no ``d sqrt(0)``), so zero padding leaves values and gradients alone."""
    # ||K||_* = s ||K / s||_*: scaling every matrix to max |entry| = 1 keeps LAPACK away from
    # underflow (a collapsed class gives a block of round-off, ~1e-9, whose Gram is ~1e-16)
    s = K.detach().abs().amax((-2, -1), keepdim=True).clamp_min(torch.finfo(K.dtype).tiny)
    K = K / s
    G = K @ K.mT if K.shape[-2] <= K.shape[-1] else K.mT @ K
    G = 0.5 * (G + G.mT)
    with single_thread(G.shape[-1] <= 1024):
        try:
            w = torch.linalg.eigvalsh(G)
        except torch.linalg.LinAlgError:  # rare float32 failures: retry in float64
            w = torch.linalg.eigvalsh(G.double()).to(G.dtype)
    s = s.squeeze(-1).squeeze(-1)
    if not safe:
        return w.clamp_min(0.0).sqrt().sum(-1) * s
    floor = 1e-10 * w.detach().abs().amax(-1, keepdim=True).clamp_min(1e-30)
    keep = w.detach() > floor
    return (torch.where(keep, w, floor).sqrt() * keep).sum(-1) * s


_BLOCK_ELEMENTS = 1 << 24


def _sort_by_size(pi: Tensor, pj: Tensor, n1: Tensor, n2: Tensor) -> tuple[Tensor, Tensor]:
    """Class pairs ordered by the size of their eigen-problem (the smaller class), then the larger."""
    s1, s2 = n1[pi], n2[pj]
    lo, hi = torch.minimum(s1, s2), torch.maximum(s1, s2)
    order = torch.argsort(lo * (int(hi.max()) + 1 if hi.numel() else 1) + hi, stable=True)
    return pi[order], pj[order]


def _size_chunks(s1: list[int], s2: list[int], slack: float = 1.1):
    """Consecutive runs of size-sorted pairs solved as one padded batch ``(k0, k1, rows, cols)``:
    a run grows while its eigen-problem size stays within ``slack`` of its first pair's and the
    batch within ``_BLOCK_ELEMENTS`` padded entries, so no pair pays for a much larger class."""
    k0, P = 0, len(s1)
    while k0 < P:
        R, S = s1[k0], s2[k0]
        limit = slack * min(R, S) + 8
        k1 = k0 + 1
        while k1 < P:
            R2, S2 = max(R, s1[k1]), max(S, s2[k1])
            if min(R2, S2) > limit or (k1 - k0 + 1) * R2 * S2 > _BLOCK_ELEMENTS:
                break
            R, S, k1 = R2, S2, k1 + 1
        yield k0, k1, R, S
        k0 = k1


def _cross_from_gram(K: Tensor, l1: Tensor, C1: int, l2: Tensor, C2: int, symmetric: bool,
                     centre: bool, safe: bool) -> Tensor:
    n, m = K.shape
    idx1, n1 = padded_class_index(l1, C1)
    idx2, n2 = (idx1, n1) if symmetric else padded_class_index(l2, C2)
    if symmetric:
        pi, pj = torch.triu_indices(C1, C1, 1, device=K.device)
    else:
        pi = torch.arange(C1, device=K.device).repeat_interleave(C2)
        pj = torch.arange(C2, device=K.device).repeat(C1)
    Kp = torch.nn.functional.pad(K, (0, 1, 0, 1))  # zero row n and column m for the padding
    out = K.new_zeros(C1, C2)
    pi, pj = _sort_by_size(pi, pj, n1, n2)
    vals = []
    # the Gram route gathers and double-centres every chunk (three extra passes), so it takes fewer,
    # larger chunks; the factor route (no centring) is faster with tighter ones (timings in
    # benchmarks/RESULTS.md)
    chunks = _size_chunks(n1[pi].tolist(), n2[pj].tolist(), slack=1.5 if centre else 1.1)
    with single_thread():  # small gathers and eigen-problems: one thread
        for k0, k1, R, S in chunks:
            qi, qj = pi[k0:k1], pj[k0:k1]
            r, c = idx1[qi][:, :R], idx2[qj][:, :S]
            B = Kp[r[:, :, None], c[:, None, :]]
            if centre:
                a = n1[qi].to(K.dtype)[:, None, None]
                b = n2[qj].to(K.dtype)[:, None, None]
                B = (B - B.sum(-1, keepdim=True) / b - B.sum(-2, keepdim=True) / a
                     + B.sum((-2, -1), keepdim=True) / (a * b))
                B = B * ((r < n).to(K.dtype)[:, :, None] * (c < m).to(K.dtype)[:, None, :]) / (a * b).sqrt()
            vals.append(nuclear_norms(B, safe=safe))
    if vals:
        out = out.index_put((pi, pj), torch.cat(vals))
    if symmetric:
        out = out + out.T
        # diagonal: ||F F^T||_* = tr(F F^T) (PSD), read off the diagonal blocks of the Gram matrix
        Kd = torch.diagonal(Kp)[idx1]  # (C, n_max), zero on padding
        diag = Kd.sum(1)
        if centre:
            blk = Kp[idx1[:, :, None], idx1[:, None, :]]
            cnt = n1.to(K.dtype)
            diag = (diag - blk.sum((-2, -1)) / cnt) / cnt
        out = out + torch.diag(diag)
    return out


def bures_cross_terms(F1: list[Tensor], F2: list[Tensor] | None = None, safe: bool = False) -> Tensor:
    """All class-pair cross terms ``||F1[i] F2[j]^T||_*`` (``(C1, C2)``) in one matmul and one
    batched ``eigvalsh``: the factors are stacked, ``K = F_1 F_2^T`` computed once, and the blocks
    (zero-padded to the largest class) go through :func:`nuclear_norms`. ``F2=None``: the
    symmetric self-term (upper triangle solved, diagonal ``tr(F F^T)``). Pairs are batched by size
    (:func:`_size_chunks`), so padding adds at most ~10 % to any eigen-problem. ``safe=True`` keeps
    gradients finite (see :func:`nuclear_norms`). Equals :func:`bures_cross_term` pair by pair."""
    symmetric = F2 is None
    F2 = F1 if symmetric else F2
    A = torch.cat(list(F1))
    B = A if symmetric else torch.cat(list(F2))
    dev = A.device
    l1 = torch.repeat_interleave(torch.arange(len(F1), device=dev),
                                 torch.tensor([f.shape[0] for f in F1], device=dev))
    l2 = l1 if symmetric else torch.repeat_interleave(
        torch.arange(len(F2), device=dev), torch.tensor([f.shape[0] for f in F2], device=dev))
    return _cross_from_gram(A @ B.T, l1, len(F1), l2, len(F2), symmetric, False, safe)


def bures_cross_terms_gram(G: Tensor, l1: Tensor, C1: int, l2: Tensor | None = None,
                           C2: int | None = None, safe: bool = False) -> Tensor:
    """Cross terms between the class covariances (biased, ``1/n_c``) of two labeled samples,
    from their *uncentred* Gram matrix ``G = X1 X2^T`` (``(n, m)``, labels ``l1``/``l2`` in
    ``0..C-1``): each class-pair block is double-centred and scaled by ``1/sqrt(n_c n_c')``,
    which is ``F_c F_c'^T`` for the low-rank factors of :func:`covariance_factor`. Reuses a Gram
    matrix computed anyway (e.g. for a squared-Euclidean cost) instead of a second big matmul.
    ``l2=None``: ``G = X1 X1^T`` and the symmetric self-term."""
    symmetric = l2 is None
    return _cross_from_gram(G, l1, C1, l1 if symmetric else l2, C1 if symmetric else C2,
                            symmetric, True, safe)
