"""Optimal Transport Dataset Distance (OTDD) between labeled datasets.

Quick use::

    from otdata.distance import DatasetDistance
    dd = DatasetDistance(label_distance="gaussian", p=2, debiased=True)   # epsilon=0.01 (relative)
    res = dd(X1, y1, X2, y2)         # X: (n, ...) features, y: (n,) integer labels (any values)
    res = dd(loader1, loader2)       # or each dataset as one object: see otdata.data.as_labeled
    res.value                        # transport cost sum(pi * c) of the entropic coupling
    res.divergence                   # debiased Sinkhorn divergence (debiased=True)
    res.loss.backward()              # differentiable w.r.t. X1 / X2 when they require grad
    res.label_distances              # (C1, C2) W_p^p between classes

Ground cost: ``c((x,y),(x',y')) = lambda_x ||x-x'||^p + lambda_y W_p^p(alpha_y, alpha'_y')``.
``epsilon`` is relative to the cost scale (the mean cost under the independent coupling) unless
``relative=False``; ``res.epsilon`` is the absolute value used and ``res.converged`` says whether
every solve met its tolerance (if not, a warning said so, or ``strict=True`` raised). Plain OT on
features: ``dd(X1, None, X2, None)``.

Value convention: ``value`` is always the transport cost ``<pi, c>`` of the entropic coupling
(-> exact OTDD as epsilon -> 0); ``entropic`` is ``OT_eps``; with ``debiased=True`` the
optimised quantity ``loss``/``divergence`` is ``OT_eps(D1,D2) - OT_eps(D1,D1)/2 -
OT_eps(D2,D2)/2``; without, ``loss`` is ``OT_eps(D1,D2)``.

Reusing statistics (e.g. a fixed target in a gradient flow)::

    target = dd.prepare(X2, y2, class_names=None)   # -> LabeledCloud (X, mapped labels, stats)
    for step in ...:
        res = dd(X1, y1, target)         # or dd(dd.prepare(X1, y1), target)
        res.loss.backward()

A :class:`LabeledCloud` can stand in for any ``(X, y)`` pair. It keeps its class statistics
and, when its features do not require grad, caches its debiasing self-term ``OT_eps(D2, D2)``.
``label_grad=True`` lets gradients flow from the label distances into ``X1`` through the
class means/covariances; with ``label_grad=False`` (default) they are constants.

Also: :func:`class_stats` (means, covariances, counts), :func:`distance_matrix` (several
datasets, on-disk cache), and the label-distance functions in :mod:`.labels`.
"""

from .fixed_target import FixedTargetOTDD, WarmStart
from .labels import exact_label_distances, gaussian_label_distances, means_label_distances
from .matrix import DistanceMatrix, distance_matrix, tensor_digest
from .otdd import DatasetDistance, LabeledCloud, ScaleMismatchWarning, check_scales
from .result import DistanceResult
from .stats import ClassStats, class_stats, map_labels

__all__ = [
    "DatasetDistance", "LabeledCloud", "FixedTargetOTDD", "WarmStart", "ScaleMismatchWarning", "check_scales", "DistanceResult", "ClassStats", "class_stats", "map_labels",
    "distance_matrix", "DistanceMatrix", "tensor_digest",
    "gaussian_label_distances", "means_label_distances", "exact_label_distances",
]
from .sliced import SlicedDatasetDistance  # noqa: E402
__all__ += ["SlicedDatasetDistance"]
