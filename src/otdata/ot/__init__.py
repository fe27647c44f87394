"""Optimal transport engine (no dataset knowledge): costs, Sinkhorn, exact OT, Gaussians, sliced.

Layering: :mod:`.config`, :mod:`.costs` -> :mod:`.engine` (the scaling loop, its dense, online
and sparse backends, Anderson acceleration) -> the front door :mod:`.sinkhorn` -> compositions
(:mod:`.divergence`, :mod:`.batched`); beside them :mod:`.exact`, :mod:`.gaussian`,
:mod:`.sliced`. See :mod:`otdata.ot.sinkhorn` for the value conventions (transport cost
``<pi, C>`` vs entropic objective vs Sinkhorn divergence) and the epsilon convention.
"""

from .config import SinkhornConfig
from .costs import Cost, MatrixCost, PointCloudCost, pairwise_cost, sqeuclidean
from .exact import emd, emd2, emd2_differentiable
from .gaussian import (
    bures_cross_term,
    bures_wasserstein,
    bures_wasserstein_diagonal,
    bures_wasserstein_factors,
    covariance_factor,
    sqrtm_psd,
)
from .divergence import DivergenceResult, debias, sinkhorn_divergence, sinkhorn_points
from .sinkhorn import ConvergenceError, ConvergenceWarning, SinkhornResult, epsilon_schedule, sinkhorn
from .sliced import sliced_wasserstein

__all__ = [
    "Cost", "MatrixCost", "PointCloudCost", "pairwise_cost", "sqeuclidean",
    "emd", "emd2", "emd2_differentiable",
    "bures_cross_term", "bures_wasserstein", "bures_wasserstein_diagonal", "bures_wasserstein_factors",
    "covariance_factor", "sqrtm_psd",
    "SinkhornConfig", "ConvergenceError", "ConvergenceWarning", "DivergenceResult", "SinkhornResult",
    "debias", "epsilon_schedule", "sinkhorn", "sinkhorn_divergence", "sinkhorn_points", "sliced_wasserstein",
]
