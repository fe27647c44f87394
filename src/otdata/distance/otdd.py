"""Optimal Transport Dataset Distance (Alvarez-Melis & Fusi, NeurIPS 2020)."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from otdata import checks
from otdata.data.labeled import as_labeled, check_same_space, dataset_arguments
from otdata.ot.config import SinkhornConfig
from otdata.ot.costs import PointCloudCost
from otdata.ot.divergence import debias
from otdata.ot.sinkhorn import ConvergenceWarning, SinkhornResult, check_cost, sinkhorn

from .labels import LABEL_DISTANCES, exact_label_distances, exact_label_path, label_distances_from_stats
from .result import DistanceResult
from .stats import ClassStats, class_stats, map_labels

log = logging.getLogger(__name__)

_PRECISIONS = {"fp32": torch.float32, "float32": torch.float32, "fp64": torch.float64,
               "float64": torch.float64}


@dataclass
class LabeledCloud:
    """A dataset prepared by :meth:`DatasetDistance.prepare`: features, labels mapped to
    ``0..C-1`` (sorted original values in ``classes``), class names and class statistics.

    Pass it to :class:`DatasetDistance` in place of an ``(X, y)`` pair to reuse its statistics
    (and, for a fixed dataset, its cached debiasing self-term).
    """

    X: Tensor
    labels: Tensor | None
    classes: Tensor | None
    class_names: list[str]
    stats: ClassStats | None
    settings: tuple
    cache: dict = field(default_factory=dict, repr=False)
    item_shape: tuple = ()  # one item's shape before flattening, e.g. (1, 28, 28), for messages

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def num_classes(self) -> int:
        return 0 if self.classes is None else int(self.classes.numel())


#: features whose typical magnitudes differ by more than this factor are probably in other units
SCALE_MISMATCH = 30.0


class ScaleMismatchWarning(UserWarning):
    """Two datasets' features differ in magnitude by orders: probably different units."""


def feature_scale(X: Tensor) -> float:
    """The root-mean-square feature value: the typical magnitude of a dataset's features."""
    return float(X.detach().double().pow(2).mean().sqrt())


def check_scales(X1: Tensor, X2: Tensor, names: tuple[str, str] = ("X1", "X2")) -> None:
    """Warn (:class:`ScaleMismatchWarning`) when two datasets' feature magnitudes differ by more
    than ``SCALE_MISMATCH``: e.g. images in 0..255 against images in [0, 1], where the distance
    would mostly measure the units."""
    s1, s2 = feature_scale(X1), feature_scale(X2)
    lo, hi = sorted((s1, s2))
    if lo == 0.0 or hi / lo > SCALE_MISMATCH:
        warnings.warn(
            f"{names[0]} and {names[1]} have features of very different magnitudes (RMS {s1:.3g} vs {s2:.3g}): "
            "are both in the same units (e.g. pixels in [0, 1] on both sides, not 0..255 on one)? Rescale one "
            "of them; the distance would mostly measure the difference in units.", ScaleMismatchWarning,
            stacklevel=3)


class DatasetDistance:
    """OTDD: OT between datasets of (feature, label) pairs with ground cost
    ``c((x,y),(x',y')) = lambda_x ||x - x'||^p + lambda_y W_p^p(alpha_y, alpha'_y')``.

    Parameters: ``label_distance`` ``"gaussian"`` (Bures W_2^2 between class Gaussians, needs
    ``p=2``), ``"exact"`` (OT between class samples) or ``"means"`` (``||mu - mu'||^p``);
    ``debiased``: optimise the
    Sinkhorn divergence (see :class:`~otdata.distance.result.DistanceResult` for ``value`` vs
    ``divergence`` vs ``loss``); ``covariance``: ``"full"`` or ``"diagonal"``; ``ridge``: added to
    class covariances (allows one-sample classes, stabilises near-singular ones);
    ``label_grad``: let gradients flow through the source class statistics (else label
    distances are constants); ``dtype``/``device``: solver precision and device (default: those
    of ``X1``; integer features become float32). Sinkhorn's settings come as ``solver`` (a
    :class:`~otdata.ot.SinkhornConfig` or a dict) and/or as keywords (``epsilon``, ``relative``,
    ``max_iter``, ``tol``, ``scaling``, ``acceleration``, ``overrelax``, ``backend``, ``max_dense_bytes``,
    ``strict``);
    their defaults live in :class:`~otdata.ot.SinkhornConfig` alone. ``epsilon`` is relative to the
    cost scale by default (the result reports the absolute value); all three problems of a debiased
    distance use the same absolute epsilon, the one of the cross term.
    """

    def __init__(
        self,
        label_distance: str = "gaussian",
        p: float = 2,
        debiased: bool = True,
        lambda_x: float = 1.0,
        lambda_y: float = 1.0,
        covariance: str = "full",
        ridge: float = 0.0,
        label_grad: bool = False,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        exact_method: str = "auto",
        precision: str | None = None,
        solver: SinkhornConfig | Mapping | None = None,
        **solver_settings,
    ):
        label_distance = checks.choice("label_distance", label_distance, LABEL_DISTANCES)
        p = checks.number("p", p, low=1)
        if label_distance == "gaussian" and p != 2:
            raise ValueError("label_distance='gaussian' is the closed form of W_2^2 and needs p=2; "
                             "use label_distance='exact' or 'means' for other p")
        if covariance not in ("full", "diagonal"):
            raise ValueError(f"covariance must be 'full' or 'diagonal', got {covariance!r}")
        lambda_x, lambda_y = (checks.number(k, v, low=0) for k, v in
                              (("lambda_x", lambda_x), ("lambda_y", lambda_y)))
        ridge = checks.number("ridge", ridge, low=0)
        debiased, label_grad = checks.boolean("debiased", debiased), checks.boolean("label_grad", label_grad)
        if precision is not None:
            dtype = _PRECISIONS[checks.choice("precision", precision, tuple(_PRECISIONS))]
        if isinstance(solver, SinkhornConfig):
            self.solver = solver.with_(**solver_settings) if solver_settings else solver
        elif solver is not None and not isinstance(solver, Mapping):
            raise checks.SettingError(f"solver must be a SinkhornConfig or a mapping of its settings, "
                                      f"got {solver!r} ({type(solver).__name__})")
        else:
            self.solver = SinkhornConfig.from_kwargs(**{**dict(solver or {}), **solver_settings})
        self.label_distance, self.p, self.debiased = label_distance, float(p), debiased
        self.lambda_x, self.lambda_y = float(lambda_x), float(lambda_y)
        self.covariance, self.ridge, self.label_grad = covariance, float(ridge), label_grad
        self.device, self.dtype = device, dtype
        exact_label_path(exact_method)  # refuses an unknown method at construction
        self.exact_method = exact_method

    @property
    def epsilon(self) -> float:
        """The entropic regularisation as set (relative unless ``solver.relative`` is False)."""
        return self.solver.epsilon

    # ------------------------------------------------------------------ settings
    def settings(self) -> dict[str, Any]:
        return dict(label_distance=self.label_distance, p=self.p, debiased=self.debiased,
                    lambda_x=self.lambda_x, lambda_y=self.lambda_y, covariance=self.covariance, ridge=self.ridge,
                    label_grad=self.label_grad, exact_method=self.exact_method, **self.solver.to_dict())

    def label_solver(self) -> str:
        """How the label distances are computed: ``"gaussian"`` and ``"means"`` (closed forms), or for
        ``"exact"`` the inner solver, ``"exact:batched"`` | ``"exact:emd"`` | ``"exact:sinkhorn"``."""
        if self.label_distance != "exact":
            return self.label_distance
        return "exact:" + exact_label_path(self.exact_method)

    def _stats_key(self) -> tuple:
        return (self.label_distance, self.covariance, self.ridge, self.label_grad, self.p)

    # ------------------------------------------------------------------ preparation
    def prepare(self, X, y=None, class_names: Sequence[str] | None = None, name: str = "X") -> LabeledCloud:
        """Validate a dataset and compute what the label distance needs (class statistics).

        ``X``: features, or any dataset :func:`otdata.data.as_labeled` accepts (a ``(X, y)`` tuple,
        a ``Dataset``/``DataLoader``, a ``LabeledDataModule``, a ``datasets.Dataset``, ...).
        ``y``: integer labels (any values; mapped to ``0..C-1`` in sorted order) or ``None``.
        ``class_names``: one name per distinct label in sorted label order, or one per label value
        ``0..C-1`` (default ``str`` of the label values). With ``label_grad=False`` statistics are
        computed without autograd.
        """
        data = as_labeled(X, y, class_names, name=name)
        X = data.X.to(device=self.device or data.X.device, dtype=self.dtype or data.X.dtype)
        if data.y is None:
            return LabeledCloud(X, None, None, [], None, self._stats_key(), item_shape=data.item_shape)
        labels, classes = map_labels(data.y.to(X.device))
        names = data.class_names
        stats = None
        if self.label_distance in ("gaussian", "means"):
            cov = self.covariance if self.label_distance == "gaussian" else None
            Xs = X if self.label_grad else X.detach()
            min_count = 2 if (self.label_distance == "gaussian" and self.ridge == 0) else 1
            with torch.set_grad_enabled(self.label_grad and torch.is_grad_enabled()):
                stats = class_stats(Xs, labels, covariance=cov, ridge=self.ridge, min_count=min_count)
            stats.classes = classes
        return LabeledCloud(X, labels, classes, names, stats, self._stats_key(), item_shape=data.item_shape)

    # ------------------------------------------------------------------ label distances
    def label_distances(self, a: LabeledCloud, b: LabeledCloud) -> Tensor:
        """``(C_a, C_b)`` matrix of W_p^p between the classes of two prepared datasets (float64)."""
        grad = self.label_grad and torch.is_grad_enabled()
        with torch.set_grad_enabled(grad):
            if self.label_distance in ("gaussian", "means"):
                return label_distances_from_stats(a.stats, b.stats, self.label_distance, self.p, symmetric=a is b)
            Xa = a.X if grad else a.X.detach()
            Xb = b.X if grad else b.X.detach()
            return exact_label_distances(Xa.double(), a.labels, a.num_classes, Xb.double(), b.labels,
                                         b.num_classes, self.p, self.exact_method, self.solver, symmetric=a is b)

    def ground_cost(self, X1: Tensor, X2: Tensor, W: Tensor | None = None, y1: Tensor | None = None,
                    y2: Tensor | None = None) -> PointCloudCost:
        """The OTDD ground cost ``lambda_x ||x - x'||^p + lambda_y W[y, y']`` between the rows of ``X1``
        and ``X2`` (computed block by block, never stored unless asked), with label distances ``W``
        ``(C1, C2)`` indexed by the labels ``y1``, ``y2`` (``0..C-1``); ``W=None``: features only.
        ``W`` is cast to the features' dtype."""
        if W is None:
            return PointCloudCost(X1, X2, self.p, self.lambda_x)
        return PointCloudCost(X1, X2, self.p, self.lambda_x, W.to(X1.dtype), y1, y2, self.lambda_y)

    def _self_label_distances(self, c: LabeledCloud) -> Tensor:
        """``label_distances(c, c)``, cached on ``c`` when no gradient flows through it: a dataset's
        self term is solved at each pair's epsilon, but its label distances do not depend on it (an
        exact one is most of a small self term's cost)."""
        if (self.label_grad and torch.is_grad_enabled()) or c.X.requires_grad:
            return self.label_distances(c, c)
        key = ("self-labels", self.label_distance, self.exact_method, self.p, self.solver)
        if key not in c.cache:
            c.cache[key] = self.label_distances(c, c)
        return c.cache[key]

    def _self_term(self, c: LabeledCloud, epsilon: float) -> SinkhornResult:
        """``OT_eps(D, D)`` (symmetric solve), cached on ``c`` when its features carry no gradient."""
        cacheable = not c.X.requires_grad
        key = ("self", epsilon, self.lambda_x, self.lambda_y, self.solver)
        if cacheable and key in c.cache:
            return c.cache[key]
        W = self._self_label_distances(c) if c.labels is not None else None
        cost = self.ground_cost(c.X, c.X, W, c.labels, c.labels)
        r = sinkhorn(None, None, cost, epsilon, self.solver, symmetric=True)
        if cacheable:
            c.cache[key] = r
        return r

    # ------------------------------------------------------------------ call
    def _as_cloud(self, item, name: str, class_names) -> LabeledCloud:
        if isinstance(item, LabeledCloud):
            if item.settings != self._stats_key():
                raise ValueError(f"{name} was prepared with other settings {item.settings}; "
                                 f"prepare it again with this DatasetDistance ({self._stats_key()})")
            return item
        return self.prepare(item, class_names=class_names, name=name)  # (X, y), or a whole dataset

    @staticmethod
    def _parse(args) -> list:
        """The two datasets of a call (:func:`otdata.data.labeled.dataset_arguments`)."""
        return dataset_arguments(args, lambda a: isinstance(a, LabeledCloud))

    def __call__(self, *args, class_names1: Sequence[str] | None = None,
                 class_names2: Sequence[str] | None = None) -> DistanceResult:
        """Distance between two datasets; see the class and module docs for the call forms."""
        t0 = time.perf_counter()
        i1, i2 = self._parse(args)
        src = self._as_cloud(i1, "X1", class_names1)
        tgt = self._as_cloud(i2, "X2", class_names2)
        check_same_space(src, tgt, ("X1", "X2"))
        check_scales(src.X, tgt.X)
        if (src.labels is None) != (tgt.labels is None):
            raise ValueError("give labels for both datasets or for neither (y1=y2=None: plain OT on features)")
        if tgt.X.dtype != src.X.dtype or tgt.X.device != src.X.device:
            tgt = LabeledCloud(tgt.X.to(src.X), tgt.labels.to(src.X.device) if tgt.labels is not None else None,
                               tgt.classes, tgt.class_names, tgt.stats, tgt.settings, tgt.cache)
        W = self.label_distances(src, tgt) if src.labels is not None else None
        cost = self.ground_cost(src.X, tgt.X, W, src.labels, tgt.labels)
        scale = cost.mean_value()
        if not math.isfinite(scale):
            check_cost(cost)  # raises the overflow error that names the fix
        eps = self.solver.absolute_epsilon(scale)
        xy = sinkhorn(None, None, cost, eps, self.solver)
        solves = [xy]
        loss, divergence = xy.loss, None
        if self.debiased:
            xx, yy = self._self_term(src, eps), self._self_term(tgt, eps)
            solves += [xx, yy]
            loss = debias(xy.loss, xx.loss, yy.loss)
            divergence = float(loss.detach())
        converged = all(r.converged for r in solves)
        value = float(xy.transport_cost)
        if converged and value > scale * (1 + 1e-3) + 1e-12:
            converged = False  # no feasible entropic plan costs more than the independent one
            warnings.warn(f"OTDD value {value:.6g} exceeds the cost of the independent coupling {scale:.6g}: "
                          "the solve cannot be trusted; use float64 features or a larger epsilon",
                          ConvergenceWarning, stacklevel=2)
        return DistanceResult(
            value=value, entropic=float(xy.entropic), divergence=divergence, loss=loss,
            label_distances=None if W is None else W.detach(),
            class_names1=list(src.class_names), class_names2=list(tgt.class_names),
            f=xy.f, g=xy.g, epsilon=eps, epsilon_relative=self.epsilon if self.solver.relative else None,
            cost_scale=scale, n1=src.n, n2=tgt.n, seconds=time.perf_counter() - t0,
            n_iter=xy.n_iter, converged=converged, marginal_error=max(r.marginal_error for r in solves),
            backend=xy.backend, settings={**self.settings(), "label_solver": self.label_solver()}, _ot=xy,
        )
