"""The debiased Sinkhorn divergence ``S_eps = OT_eps(a, b) - OT_eps(a, a)/2 - OT_eps(b, b)/2``.

:func:`debias` is the one place where the three entropic terms are combined; the dataset distance
(:class:`otdata.distance.DatasetDistance`), the flows' fixed-target objective and
:func:`sinkhorn_divergence` all call it. ``S_eps(a, a) = 0`` and ``S_eps >= 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .costs import PointCloudCost
from .sinkhorn import SinkhornResult, sinkhorn


def debias(xy, xx, yy):
    """``xy - xx / 2 - yy / 2``: the divergence from the three entropic terms (tensors or floats;
    differentiable losses give a differentiable divergence)."""
    return xy - 0.5 * xx - 0.5 * yy


@dataclass
class DivergenceResult:
    """Output of :func:`sinkhorn_divergence`: ``divergence`` (detached), differentiable ``loss``
    and the three underlying problems ``xy``, ``xx``, ``yy``."""

    divergence: Tensor
    loss: Tensor
    xy: SinkhornResult
    xx: SinkhornResult | None
    yy: SinkhornResult | None


def sinkhorn_divergence(
    cost_xy,
    cost_xx,
    cost_yy,
    epsilon: float,
    a: Tensor | None = None,
    b: Tensor | None = None,
    *,
    yy: SinkhornResult | Tensor | None = None,
    **kwargs,
) -> DivergenceResult:
    """Debiased ``S_eps = OT_eps(a,b) - OT_eps(a,a)/2 - OT_eps(b,b)/2`` (entropic objectives).

    ``yy`` may be a precomputed ``OT_eps(b, b)`` (a :class:`SinkhornResult` or a scalar tensor)
    to skip that solve (useful when ``b`` is a fixed target).
    """
    xy = sinkhorn(a, b, cost_xy, epsilon, **kwargs)
    xx = sinkhorn(a, a, cost_xx, epsilon, symmetric=True, **kwargs)
    if yy is None:
        yy = sinkhorn(b, b, cost_yy, epsilon, symmetric=True, **kwargs)
    loss = debias(xy.loss, xx.loss, yy.loss if isinstance(yy, SinkhornResult) else yy)
    return DivergenceResult(
        divergence=loss.detach(), loss=loss, xy=xy, xx=xx, yy=yy if isinstance(yy, SinkhornResult) else None
    )


def sinkhorn_points(x: Tensor, y: Tensor, epsilon: float, p: float = 2.0, debiased: bool = False, **kwargs):
    """Convenience: entropic OT (or the divergence if ``debiased``) between uniform point clouds
    with cost ``||x - y||^p``."""
    if not debiased:
        return sinkhorn(None, None, PointCloudCost(x, y, p), epsilon, **kwargs)
    return sinkhorn_divergence(
        PointCloudCost(x, y, p), PointCloudCost(x, x, p), PointCloudCost(y, y, p), epsilon, **kwargs
    )
