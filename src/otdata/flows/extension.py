"""Out-of-sample extension: move samples that were not part of the flow.

A flow moves a finite set of training particles ``X0 -> X1``. To move *new* source samples (no
labels needed) we interpolate the learned displacement field ``v(x0) = X1 - X0``:

    x_new  ->  x_new + sum_j w_j(x_new) * (X1[j] - X0[j])

over the ``k`` nearest *initial* particles ``X0[j]`` of ``x_new``. Weights are uniform,
inverse-distance, or softmax(-||x - X0[j]||^2 / (2 h^2)) ("gaussian"). A pure translation
``X1 = X0 + t`` is reproduced exactly for any weighting (weights sum to one).

Example::

    ext = KNNDisplacement(result.X0, result.X, k=10)
    X_new_flowed = ext(X_new)          # or result.extend(X_new)

:func:`barycentric_projection` is the alternative when a coupling ``P`` (n_new, m) between the new
samples and a set of flowed points ``Y`` is available: ``x -> (P @ Y) / P.sum(1)``.
"""

from __future__ import annotations

import torch

__all__ = ["KNNDisplacement", "barycentric_projection", "extend"]


class KNNDisplacement:
    """k-nearest-neighbour interpolation of a flow's displacement field.

    Args:
        X0: ``(n, d)`` initial particle positions (where the flow started).
        X1: ``(n, d)`` final particle positions (same order as ``X0``).
        k: number of neighbours (clipped to ``n``).
        weighting: ``"uniform"``, ``"distance"`` (inverse distance; an exact match takes the
            particle's own displacement) or ``"gaussian"`` (bandwidth ``bandwidth``, default: the
            median k-NN distance of the query batch).
        batch_size: query rows processed at once (bounds memory to ``batch_size * n`` floats).
    """

    def __init__(self, X0: torch.Tensor, X1: torch.Tensor, k: int = 10, weighting: str = "distance",
                 bandwidth: float | None = None, batch_size: int = 4096):
        X0 = torch.as_tensor(X0)
        X1 = torch.as_tensor(X1)
        if X0.shape != X1.shape or X0.ndim != 2:
            raise ValueError(f"X0 and X1 must both be (n, d) with the same shape, got "
                             f"{tuple(X0.shape)} and {tuple(X1.shape)}")
        if weighting not in ("uniform", "distance", "gaussian"):
            raise ValueError(f"unknown weighting {weighting!r}; use 'uniform', 'distance' or 'gaussian'")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.X0 = X0.detach()
        self.V = (X1 - X0).detach()
        self.k = min(int(k), X0.shape[0])
        self.weighting = weighting
        self.bandwidth = bandwidth
        self.batch_size = batch_size

    def weights(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Neighbour indices ``(m, k)`` and weights ``(m, k)`` (rows sum to one) for queries ``X``."""
        X = X.to(self.X0.dtype)
        _, idx = torch.cdist(X, self.X0).topk(self.k, dim=1, largest=False)
        # exact distances of the selected neighbours (the matmul-based cdist is not exact at 0)
        dist = (X.unsqueeze(1) - self.X0[idx]).norm(dim=-1)
        if self.weighting == "uniform":
            w = torch.ones_like(dist)
        elif self.weighting == "distance":
            exact = dist <= 1e-7 * (1 + dist.max())
            w = 1.0 / dist.clamp_min(1e-12)
            w = torch.where(exact.any(1, keepdim=True), exact.to(w.dtype), w)
        else:
            h = self.bandwidth if self.bandwidth is not None else float(dist.median().clamp_min(1e-12))
            w = torch.softmax(-(dist**2) / (2 * h * h), dim=1)
        return idx, w / w.sum(1, keepdim=True)

    @torch.no_grad()
    def displacement(self, X: torch.Tensor) -> torch.Tensor:
        """Interpolated displacement ``(m, d)`` at query points ``X`` (m, d)."""
        X = torch.as_tensor(X)
        if X.ndim != 2 or X.shape[1] != self.X0.shape[1]:
            raise ValueError(f"queries must be (m, {self.X0.shape[1]}), got {tuple(X.shape)}; "
                             "flatten images the same way as the flowed particles")
        out = []
        for s in range(0, X.shape[0], self.batch_size):
            idx, w = self.weights(X[s:s + self.batch_size])
            out.append((w.unsqueeze(-1) * self.V[idx]).sum(1))
        if not out:
            return X.new_zeros(0, self.X0.shape[1])
        return torch.cat(out).to(X.dtype)

    @torch.no_grad()
    def __call__(self, X: torch.Tensor, clamp: tuple[float, float] | None = None) -> torch.Tensor:
        """Flowed version of ``X``; ``clamp=(lo, hi)`` projects the result into a box."""
        Y = torch.as_tensor(X) + self.displacement(X)
        if clamp is not None:
            Y = Y.clamp(clamp[0], clamp[1])
        return Y

    transform = __call__


def extend(X_new, X0, X1, k: int = 10, weighting: str = "distance", clamp=None) -> torch.Tensor:
    """Functional form of :class:`KNNDisplacement`: ``KNNDisplacement(X0, X1, k, weighting)(X_new)``."""
    return KNNDisplacement(X0, X1, k=k, weighting=weighting)(X_new, clamp=clamp)


@torch.no_grad()
def barycentric_projection(P: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    """Map each row ``i`` of a coupling ``P`` (m, n) to ``sum_j P_ij Y_j / sum_j P_ij``."""
    if P.ndim != 2 or P.shape[1] != Y.shape[0]:
        raise ValueError(f"coupling {tuple(P.shape)} does not match points {tuple(Y.shape)}")
    return (P @ Y.to(P.dtype)) / P.sum(1, keepdim=True).clamp_min(1e-300)
