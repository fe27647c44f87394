"""Sinkhorn's knobs, declared once: :class:`SinkhornConfig`.

Every entropic solve of the project (one-shot dataset distances, the flows' warm-started steps,
the label distances of ``label_distance="exact"``) reads its settings from one of these objects,
so a default lives in exactly one place (here).

**The epsilon convention.** ``epsilon`` is *relative* by default: the solver runs at the absolute
regularisation ``epsilon * scale``, where ``scale`` is the mean ground cost under the independent
coupling, ``<a x b, C>`` (:meth:`otdata.ot.Cost.mean_value`). Pixels (costs ~50-250) and sentence
embeddings (costs ~1-3) then get the same relative blur from the same default, as OTT-JAX's
``scale_cost`` and GeomLoss's blur-versus-diameter do. ``relative=False`` makes ``epsilon``
absolute, in cost units (POT's ``reg``). Every result reports the absolute value it used.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

from otdata import checks

#: ``backend="auto"`` stores the cost matrix when it takes at most this many bytes (the dense
#: solver keeps the cost and its kernel: twice this).
DEFAULT_MAX_DENSE_BYTES = 1024**3

BACKENDS = ("auto", "dense", "online", "sparse")
ACCELERATIONS = ("anderson", "overrelax", "none")


@dataclass(frozen=True)
class SinkhornConfig:
    """Settings of an entropic OT solve.

    Attributes:
        epsilon: entropic regularisation; relative to the cost scale unless ``relative=False``.
            0.01 puts the transport cost within ~1 % of exact OT on pixel and embedding data
            (``benchmarks/bench_epsilon.py``) and converges in a few hundred iterations.
        relative: ``epsilon`` is a fraction of ``<a x b, C>`` (True) or absolute (False).
        max_iter: iterations at the target epsilon before the solver escalates (log domain) and,
            failing that, reports ``converged=False`` with a warning.
        tol: stopping tolerance on the L1 marginal violation ``sum_j |(pi^T 1)_j - b_j|``.
        warm_tol: the same tolerance for warm-started repeated solves (a flow's steps): each step
            starts from the previous potentials, so a residual is carried forward and corrected, not
            accumulated, so a looser tolerance takes far fewer iterations per step.
        scaling: epsilon-scaling factor per level (anneal from ``max C`` down to epsilon).
        acceleration: of the dense iterations at the target epsilon: ``"anderson"`` (Anderson
            acceleration of the plain Sinkhorn map, depth 5, restarted when the error grows),
            ``"overrelax"`` (over-relaxation by ``overrelax``) or ``"none"`` (plain Sinkhorn).
            Anderson needed the fewest iterations at every epsilon measured (counts in
            ``benchmarks/RESULTS.md``).
        overrelax: over-relaxation ``omega``, in (0, 2) (1 = plain Sinkhorn; it falls back to 1 by
            itself when the marginal error grows) of the dense iterations with ``acceleration="overrelax"``,
            of the batched and of the sparse backend's iterations. 1.8 needed the fewest
            iterations at relative epsilon <= 0.03 (counts in ``benchmarks/RESULTS.md``).
        backend: ``"auto"`` | ``"dense"`` (stored kernel, mat-vecs) | ``"online"`` (log domain,
            cost blocks recomputed: memory O(n + m)) | ``"sparse"`` (truncated kernel certified on
            the full cost, :mod:`otdata.ot.engine.sparse`; what ``"auto"`` picks for point clouds too big
            to store when no gradient is needed).
        max_dense_bytes: ``"auto"`` stores the cost up to this size.
        strict: raise :class:`~otdata.ot.ConvergenceError` instead of warning when a solve does
            not converge.
    """

    epsilon: float = 0.01
    relative: bool = True
    max_iter: int = 1000
    tol: float = 1e-4
    warm_tol: float = 1e-3
    scaling: float = 0.5
    acceleration: str = "anderson"
    overrelax: float = 1.8
    backend: str = "auto"
    max_dense_bytes: int = DEFAULT_MAX_DENSE_BYTES
    strict: bool = False

    def __post_init__(self):
        """Check every setting's type and range (:mod:`otdata.checks`): a bool is not a number,
        tolerances and epsilon are finite and > 0, iteration counts are integers."""
        positive = dict(low=0, low_open=True)
        checked = dict(
            epsilon=checks.number("epsilon", self.epsilon, **positive),
            relative=checks.boolean("relative", self.relative),
            max_iter=checks.integer("max_iter", self.max_iter, low=1),
            tol=checks.number("tol", self.tol, **positive),
            warm_tol=checks.number("warm_tol", self.warm_tol, **positive),
            scaling=checks.number("scaling", self.scaling, low=0, high=1, low_open=True, high_open=True),
            acceleration=checks.choice("acceleration", self.acceleration, ACCELERATIONS),
            overrelax=checks.number("overrelax", self.overrelax, low=0, high=2, low_open=True,
                                    high_open=True),
            backend=checks.choice("backend", self.backend, BACKENDS),
            max_dense_bytes=checks.integer("max_dense_bytes", self.max_dense_bytes, low=0),
            strict=checks.boolean("strict", self.strict),
        )
        for name, value in checked.items():  # store the checked value (1e3 -> 1000)
            object.__setattr__(self, name, value)

    @classmethod
    def from_kwargs(cls, **kwargs) -> "SinkhornConfig":
        """Build from keyword arguments, naming any unknown key (and the known ones)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise checks.UnknownSettingError(f"unknown solver setting(s) {unknown}; the settings are "
                                             f"{sorted(known)}")
        return cls(**kwargs)

    def absolute_epsilon(self, scale: float) -> float:
        """The absolute epsilon for a problem whose cost scale is ``scale``."""
        if not self.relative:
            return float(self.epsilon)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"cannot scale epsilon by the cost scale {scale}: the ground cost is "
                             "zero or not finite; pass an absolute epsilon (relative=False)")
        return float(self.epsilon) * float(scale)

    def with_(self, **changes) -> "SinkhornConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
