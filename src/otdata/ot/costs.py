"""Ground costs as row-block providers.

Every solver in :mod:`otdata.ot` sees a cost through the :class:`Cost` interface: ``n``, ``m``
and ``block(i0, i1)`` returning the rows ``C[i0:i1, :]``. Two implementations:

* :class:`MatrixCost` wraps an explicit ``(n, m)`` tensor;
* :class:`PointCloudCost` computes ``lambda_x * ||x_i - y_j||^p + lambda_y * W[lx_i, ly_j]`` on
  the fly (one matmul per block), so the full ``n x m`` matrix never has to exist.
"""

from __future__ import annotations

import torch
from torch import Tensor


def sqeuclidean(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances ``||x_i - y_j||^2`` (clamped at 0), one matmul."""
    x2 = (x * x).sum(-1)
    y2 = (y * y).sum(-1)
    d = torch.addmm(y2.unsqueeze(0), x, y.T, beta=1.0, alpha=-2.0) + x2.unsqueeze(1)
    return d.clamp_min(0.0)


def pairwise_cost(x: Tensor, y: Tensor, p: float = 2.0) -> Tensor:
    """``||x_i - y_j||^p`` for all pairs (``p=2``: squared Euclidean, no square root)."""
    d = sqeuclidean(x, y)
    if p == 2:
        return d
    # sqrt is not differentiable at 0; the tiny offset keeps gradients finite on the diagonal
    return (d + torch.finfo(d.dtype).tiny).sqrt().pow(p) if p != 1 else (d + 1e-30).sqrt()


class Cost:
    """A ground cost matrix given by row blocks. Subclasses implement :meth:`block`."""

    n: int
    m: int
    dtype: torch.dtype
    device: torch.device

    def block(self, i0: int, i1: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def max_value(self) -> float:
        """An upper bound (or the value) of ``max C``; used to start epsilon-scaling."""
        raise NotImplementedError

    def _weights(self, a: Tensor | None, b: Tensor | None) -> tuple[Tensor, Tensor]:
        """``a``, ``b`` as given, or uniform over the rows / columns."""
        if a is None:
            a = torch.full((self.n,), 1.0 / self.n, dtype=self.dtype, device=self.device)
        if b is None:
            b = torch.full((self.m,), 1.0 / self.m, dtype=self.dtype, device=self.device)
        return a, b

    def mean_value(self, a: Tensor | None = None, b: Tensor | None = None) -> float:
        """``<a x b, C> = sum_ij a_i b_j C_ij`` (uniform weights by default), the cost of the
        independent coupling: the scale of a relative epsilon, and an upper bound of the transport
        cost of any entropic plan."""
        a, b = self._weights(a, b)
        total = 0.0
        step = max(1, (1 << 24) // max(self.m, 1))
        with torch.no_grad():
            for i0 in range(0, self.n, step):
                i1 = min(self.n, i0 + step)
                total += float(a[i0:i1].double() @ (self.block(i0, i1).double() @ b.double()))
        return total

    @property
    def requires_grad(self) -> bool:
        return False

    def dense(self, block_rows: int | None = None) -> Tensor:
        """Materialise the full ``(n, m)`` matrix without autograd history."""
        out = torch.empty(self.n, self.m, dtype=self.dtype, device=self.device)
        step = block_rows or max(1, (1 << 24) // max(self.m, 1))
        with torch.no_grad():
            for i0 in range(0, self.n, step):
                i1 = min(self.n, i0 + step)
                out[i0:i1] = self.block(i0, i1)
        return out


class MatrixCost(Cost):
    """An explicit cost matrix ``C`` of shape ``(n, m)`` (may carry autograd history)."""

    def __init__(self, C: Tensor):
        if C.ndim != 2:
            raise ValueError(f"cost matrix must be 2-D, got shape {tuple(C.shape)}")
        self.C = C
        self.n, self.m = C.shape
        self.dtype, self.device = C.dtype, C.device

    def block(self, i0: int, i1: int) -> Tensor:
        return self.C[i0:i1]

    def max_value(self) -> float:
        return float(self.C.detach().max()) if self.C.numel() else 0.0

    def mean_value(self, a: Tensor | None = None, b: Tensor | None = None) -> float:
        a, b = self._weights(a, b)
        with torch.no_grad():
            return float(a.double() @ (self.C.detach().double() @ b.double()))

    @property
    def requires_grad(self) -> bool:
        return self.C.requires_grad

    def dense(self, block_rows: int | None = None) -> Tensor:
        return self.C.detach()


class PointCloudCost(Cost):
    """``C_ij = lambda_x * ||x_i - y_j||^p + lambda_y * W[lx_i, ly_j]``, computed per row block.

    ``W`` (``(C1, C2)``) and the integer label indices ``lx`` (``(n,)``) / ``ly`` (``(m,)``) are
    optional; without them the cost is the plain feature cost. Gradients flow to ``x``, ``y`` and
    ``W`` when they require grad.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        p: float = 2.0,
        lambda_x: float = 1.0,
        W: Tensor | None = None,
        lx: Tensor | None = None,
        ly: Tensor | None = None,
        lambda_y: float = 1.0,
    ):
        if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
            raise ValueError(f"point clouds must be (n, d) and (m, d); got {tuple(x.shape)}, {tuple(y.shape)}")
        self.x, self.y, self.p = x, y, float(p)
        self.lambda_x, self.lambda_y = float(lambda_x), float(lambda_y)
        self.W, self.lx, self.ly = W, lx, ly
        if (W is None) != (lx is None) or (W is None) != (ly is None):
            raise ValueError("give W, lx and ly together (or none of them)")
        self.n, self.m = x.shape[0], y.shape[0]
        self.dtype, self.device = x.dtype, x.device
        self._x2 = (x * x).sum(1)
        self._y2 = (y * y).sum(1)

    @property
    def requires_grad(self) -> bool:
        return bool(self.x.requires_grad or self.y.requires_grad or (self.W is not None and self.W.requires_grad))

    def block(self, i0: int, i1: int) -> Tensor:
        xb = self.x[i0:i1]
        grad = torch.is_grad_enabled() and self.requires_grad
        if grad:
            d = torch.addmm(self._y2.unsqueeze(0), xb, self.y.T, beta=1.0, alpha=-2.0)
            d = (d + self._x2[i0:i1].unsqueeze(1)).clamp_min(0.0)
            if self.p != 2:
                d = (d + 1e-30).sqrt()
                if self.p != 1:
                    d = d.pow(self.p)
            if self.lambda_x != 1.0:
                d = d * self.lambda_x
            if self.W is not None:
                d = d + self.lambda_y * self.W[self.lx[i0:i1]][:, self.ly]
            return d
        return self.tile(i0, i1, 0, len(self.y))  # in place, no autograd

    def tile(self, i0: int, i1: int, j0: int, j1: int) -> Tensor:
        """``C[i0:i1, j0:j1]`` without autograd (one matmul of the two slices): the tiles of a
        symmetric problem's half passes, which compute each pair of row blocks once."""
        with torch.no_grad():
            d = torch.addmm(self._y2[j0:j1].unsqueeze(0), self.x[i0:i1], self.y[j0:j1].T, beta=1.0, alpha=-2.0)
            d.add_(self._x2[i0:i1].unsqueeze(1)).clamp_min_(0.0)
            if self.p != 2:
                d.sqrt_()
                if self.p != 1:
                    d.pow_(self.p)
            if self.lambda_x != 1.0:
                d.mul_(self.lambda_x)
            if self.W is not None:
                d.add_(self.W[self.lx[i0:i1]].index_select(1, self.ly[j0:j1]), alpha=self.lambda_y)
        return d

    def score_factors(self, f: Tensor | None, g: Tensor | None, scale: float) -> tuple[Tensor, Tensor] | None:
        """Factors ``A`` (n, d + 3 + C1) and ``B`` (m, ...) with ``A @ B.T = scale * (f_i + g_j - C_ij)``
        (``f``, ``g`` may be ``None``: zero), or ``None`` where the cost is not a squared distance
        plus a label term (``p != 2``) or needs a gradient. The norms, the label costs and the
        potentials ride along as extra columns of one matrix product, so a block of scores costs
        that product alone, none of the elementwise passes that :meth:`block` adds to it."""
        if self.p != 2 or self.requires_grad:
            return None
        with torch.no_grad():
            lx, ly, dt = self.lambda_x, self.lambda_y, self.dtype
            one_x = torch.ones(self.n, 1, dtype=dt, device=self.device)
            one_y = torch.ones(self.m, 1, dtype=dt, device=self.device)
            ga = -lx * self._y2.unsqueeze(1) + (0.0 if g is None else g.unsqueeze(1))
            A = [self.x, self._x2.unsqueeze(1), one_x]
            B = [(2.0 * lx) * self.y, -lx * one_y, ga]
            if self.W is not None:
                A.append(self.W.to(dt)[self.lx])
                B.append(-ly * torch.nn.functional.one_hot(self.ly, self.W.shape[1]).to(dt))
            if f is not None:
                A.append(f.unsqueeze(1))
                B.append(one_y)
            return torch.cat(A, 1), torch.cat(B, 1).mul_(scale)

    def subset(self, rows: Tensor | None, cols: Tensor | None) -> "PointCloudCost":
        """The cost between the rows ``rows`` of ``x`` and ``cols`` of ``y`` (``None``: all)."""
        x, lx = (self.x, self.lx) if rows is None else (self.x[rows], None if self.lx is None else self.lx[rows])
        y, ly = (self.y, self.ly) if cols is None else (self.y[cols], None if self.ly is None else self.ly[cols])
        return PointCloudCost(x, y, self.p, self.lambda_x, self.W, lx, ly, self.lambda_y)

    def mean_value(self, a: Tensor | None = None, b: Tensor | None = None) -> float:
        if self.p != 2:
            return super().mean_value(a, b)
        a, b = self._weights(a, b)
        # closed form: E|x - y|^2 = E|x|^2 + E|y|^2 - 2 E[x].E[y] under the independent coupling
        with torch.no_grad():
            a64, b64 = a.double(), b.double()
            mx, my = a64 @ self.x.detach().double(), b64 @ self.y.detach().double()
            v = self.lambda_x * float(a64 @ self._x2.detach().double() + b64 @ self._y2.detach().double()
                                      - 2 * (mx @ my))
            if self.W is not None:
                W = self.W.detach().double()
                pa = torch.zeros(W.shape[0], dtype=torch.float64, device=a.device).index_add_(0, self.lx, a64)
                pb = torch.zeros(W.shape[1], dtype=torch.float64, device=b.device).index_add_(0, self.ly, b64)
                v += self.lambda_y * float(pa @ W @ pb)
        return max(v, 0.0)

    def max_value(self) -> float:
        with torch.no_grad():
            c = torch.cat([self.x, self.y]).mean(0)
            r = (self.x - c).norm(dim=1).max() + (self.y - c).norm(dim=1).max()
            v = self.lambda_x * float(r) ** self.p
            if self.W is not None:
                v += self.lambda_y * float(self.W.max())
        return v
