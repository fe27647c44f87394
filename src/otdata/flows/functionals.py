"""Functionals ``F(rho)`` of a labeled particle measure, the terms of a flow's objective.

Every functional is *measure-level*: it sees the particles as the empirical measure
``rho = (1/n) sum_i delta_(x_i, y_i)``, so its gradient w.r.t. one particle is ``O(1/n)``. The flow
engine rescales particle gradients by ``n`` (the Wasserstein gradient ``grad_x dF/drho``), which
makes step sizes independent of the number of particles.

A functional is bound once to the target (``bind``), which is where target statistics are computed,
then called on a :class:`FlowState` at every step and returns a scalar tensor.

Available (name in an objective spec -> class):

* ``"otdd"``  :class:`OTDDFunctional` — (debiased) entropic OTDD to the target (the
  :class:`~otdata.distance.DatasetDistance` of ``task=distance``, kept for a fixed target);
* ``"mmd"``   :class:`MMDFunctional` — squared MMD, Gaussian kernel(s), to the target;
* ``"sliced"`` :class:`SlicedWassersteinFunctional` — sliced W_2^2 to the target;
* ``"separation"`` :class:`ClassSeparationPotential` — hinge penalty pushing class means apart;
* ``"class_means"`` :class:`ClassMeanMatching` — pulls source class ``c``'s mean to the mean of
  target class ``corr[c]``.

With a class correspondence, MMD and sliced are class-conditional: ``sum_c (n_c/n) D(rho_c,
target_corr[c])``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from otdata.distance import DatasetDistance, FixedTargetOTDD, WarmStart
from otdata.ot import sliced_wasserstein, sqeuclidean

__all__ = [
    "FlowState",
    "Functional",
    "OTDDFunctional",
    "MMDFunctional",
    "SlicedWassersteinFunctional",
    "ClassSeparationPotential",
    "ClassMeanMatching",
    "FUNCTIONALS",
    "build_functional",
    "class_index",
    "class_means",
]


@dataclass
class FlowState:
    """What a functional sees at one step.

    Attributes:
        X: ``(n, d)`` particle features (requires grad).
        y: ``(n,)`` particle labels (label values, fixed during the flow).
        yi: ``(n,)`` class positions ``0..C-1`` (index into ``classes``).
        classes: sorted unique source labels.
        counts: ``(C,)`` particles per class.
        labels: label-handling method, ``"fixed"``, ``"attached"`` or ``"joint"``.
        label_params: for ``"joint"``: ``{"means": (C, d), "factors": [F_c]}`` free parameters
            (covariance of class c is ``F_c.T @ F_c``); otherwise ``None``.
        correspondence: ``{source_label: target_label}`` or ``None``.
        step: the step number.
        generator: the flow's private random generator (projections, subsampling).
    """

    X: torch.Tensor
    y: torch.Tensor
    yi: torch.Tensor
    classes: torch.Tensor
    counts: torch.Tensor
    labels: str = "fixed"
    label_params: dict[str, torch.Tensor] | None = None
    correspondence: dict[int, int] | None = None
    step: int = 0
    generator: torch.Generator | None = None

    @property
    def n(self) -> int:
        return self.X.shape[0]


def class_index(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sorted unique labels, positions ``0..C-1`` of every sample, and per-class counts."""
    classes, yi, counts = torch.unique(y, sorted=True, return_inverse=True, return_counts=True)
    return classes, yi, counts


def class_means(X: torch.Tensor, yi: torch.Tensor, C: int) -> torch.Tensor:
    """``(C, d)`` class means from positions ``yi`` (differentiable w.r.t. ``X``)."""
    S = torch.zeros(C, X.shape[1], dtype=X.dtype, device=X.device).index_add(0, yi, X)
    cnt = torch.bincount(yi, minlength=C).to(X.dtype).clamp_min(1)
    return S / cnt[:, None]


class Functional:
    """Base class. Subclasses implement ``bind`` (optional) and ``__call__``."""

    name = "functional"
    needs_correspondence = False

    def bind(self, Xt: torch.Tensor, yt: torch.Tensor) -> "Functional":
        self.Xt = Xt
        self.yt = yt
        self.tclasses, self.tyi, self.tcounts = class_index(yt)
        return self

    def __call__(self, state: FlowState) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What the next step depends on besides the particles (saved in flow checkpoints)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` (resuming a flow)."""

    def _target_rows(self, label: int) -> torch.Tensor:
        return self.Xt[self.yt == label]


# ------------------------------------------------------------------------------------------------
# OTDD
# ------------------------------------------------------------------------------------------------


class OTDDFunctional(Functional):
    """The (debiased) entropic OTDD between the particles and a fixed target: a
    :class:`~otdata.distance.FixedTargetOTDD` around a :class:`~otdata.distance.DatasetDistance`,
    so a flow optimises exactly the distance that ``task=distance`` reports.

    What happens to the *source* class statistics depends on ``state.labels``: ``"fixed"`` —
    recomputed from the moving particles every ``label_update_every`` steps, without gradient;
    ``"attached"`` — recomputed every step *with* gradient; ``"joint"`` — the free parameters
    ``state.label_params``. With a correspondence, off-correspondence class pairs get ``penalty``.

    Args:
        distance: a :class:`~otdata.distance.DatasetDistance`, or a dict of its settings (e.g.
            ``{"label_distance": "means", "epsilon": 0.02}``); default: ``DatasetDistance()``.
        label_update_every, penalty, warm_start: see :class:`~otdata.distance.FixedTargetOTDD`.
    """

    name = "otdd"

    def __init__(self, distance=None, label_update_every: int = 1, penalty: float | None = None,
                 warm_start: bool = True):
        if not isinstance(distance, DatasetDistance):
            distance = DatasetDistance(**dict(distance or {}))
        self.distance = distance
        self.engine = FixedTargetOTDD(distance, penalty=penalty, label_update_every=label_update_every,
                                      warm_start=warm_start)

    def bind(self, Xt, yt):
        super().bind(Xt, yt)
        self.engine.bind(Xt, yt)
        return self

    def label_distances(self, X, y) -> torch.Tensor:
        """``(C_src, C_tgt)`` label-distance matrix between ``(X, y)`` and the target (no grad)."""
        return self.engine.label_distances(X, y)

    def __call__(self, state: FlowState) -> torch.Tensor:
        return self.engine.value(state)

    def state_dict(self) -> dict:
        return self.engine.warm.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.engine.warm = WarmStart.from_state_dict(state)


# ------------------------------------------------------------------------------------------------
# cheap alternatives
# ------------------------------------------------------------------------------------------------


class _PerClass(Functional):
    """Applies ``self.divergence(Xs, Xt)`` globally, or class-conditionally with a correspondence."""

    def __call__(self, state: FlowState) -> torch.Tensor:
        if state.correspondence is None:
            return self.divergence(state.X, self.Xt, state)
        total = state.X.new_zeros(())
        n = state.n
        for k, c in enumerate(state.classes.tolist()):
            Xc = state.X[state.yi == k]
            total = total + (Xc.shape[0] / n) * self.divergence(
                Xc, self._target_rows(state.correspondence[c]), state)
        return total

    def divergence(self, Xs, Xt, state):  # pragma: no cover - abstract
        raise NotImplementedError


class MMDFunctional(_PerClass):
    """Squared MMD with a sum of Gaussian kernels ``exp(-|x - x'|^2 / (2 s^2))``.

    Args:
        bandwidth: a float, a list of floats, or ``None`` for the median heuristic on the target
            (median pairwise distance, times ``scales``).
        scales: multipliers of the median bandwidth (multi-scale kernel).
        max_target: subsample the target to at most this many points at bind time.
    """

    name = "mmd"

    def __init__(self, bandwidth=None, scales=(0.5, 1.0, 2.0), max_target: int = 4096):
        self.bandwidth = bandwidth
        self.scales = tuple(scales)
        self.max_target = max_target

    def bind(self, Xt, yt):
        if Xt.shape[0] > self.max_target:
            g = torch.Generator().manual_seed(0)
            idx = torch.randperm(Xt.shape[0], generator=g)[: self.max_target].to(Xt.device)
            Xt, yt = Xt[idx], yt[idx]
        super().bind(Xt, yt)
        if self.bandwidth is None:
            sub = Xt[: min(1000, Xt.shape[0])]
            med = sqeuclidean(sub, sub).sqrt().median().clamp_min(1e-6)
            self.sigmas = [float(med) * s for s in self.scales]
        elif isinstance(self.bandwidth, (list, tuple)):
            self.sigmas = [float(b) for b in self.bandwidth]
        else:
            self.sigmas = [float(self.bandwidth)]
        return self

    def _k(self, D2):
        return sum(torch.exp(-D2 / (2 * s * s)) for s in self.sigmas)

    def divergence(self, Xs, Xt, state):
        Xt = Xt.to(Xs.dtype)
        return (self._k(sqeuclidean(Xs, Xs)).mean() + self._k(sqeuclidean(Xt, Xt)).mean()
                - 2 * self._k(sqeuclidean(Xs, Xt)).mean())


class SlicedWassersteinFunctional(_PerClass):
    """Sliced ``W_2^2`` to the target (:func:`otdata.ot.sliced_wasserstein`, exact 1-D OT per
    direction), ``n_projections`` random directions drawn every step from the flow's generator
    (so checkpoint/resume stays exact)."""

    name = "sliced"

    def __init__(self, n_projections: int = 128):
        self.n_projections = int(n_projections)

    def divergence(self, Xs, Xt, state):
        return sliced_wasserstein(Xs, Xt.to(Xs.dtype), self.n_projections, p=2.0, generator=state.generator)


class ClassSeparationPotential(Functional):
    """Potential pushing class means apart (toward linear separability):
    ``mean_{a<b} relu(margin - |mu_a - mu_b|)^2``, means of the moving particles.

    Args:
        margin: distance beyond which two class means no longer interact. ``None`` = twice the
            mean distance between target class means (computed at bind).
    """

    name = "separation"

    def __init__(self, margin: float | None = None):
        self.margin = margin

    def bind(self, Xt, yt):
        super().bind(Xt, yt)
        if self.margin is None:
            mt = class_means(Xt, self.tyi, len(self.tclasses))
            if mt.shape[0] > 1:
                D = torch.cdist(mt, mt)
                iu = torch.triu_indices(mt.shape[0], mt.shape[0], 1)
                self.margin = 2.0 * float(D[iu[0], iu[1]].mean())
            else:
                self.margin = 1.0
        return self

    def __call__(self, state: FlowState) -> torch.Tensor:
        C = len(state.classes)
        if C < 2:
            return state.X.new_zeros(())
        mu = class_means(state.X, state.yi, C)
        iu = torch.triu_indices(C, C, 1, device=mu.device)
        diff = mu[iu[0]] - mu[iu[1]]
        dist = diff.pow(2).sum(1).add(1e-12).sqrt()
        return torch.relu(self.margin - dist).pow(2).mean()


class ClassMeanMatching(Functional):
    """``sum_c (n_c / n) |mu_c(X) - mu_target[corr[c]]|^2`` (identity correspondence by default).

    The particle-level (rescaled) gradient is ``2 (mu_c - mu_target)``: a rigid translation of each
    class onto its target class mean. Useful as an auxiliary term next to OTDD or on its own."""

    name = "class_means"
    needs_correspondence = True

    def bind(self, Xt, yt):
        super().bind(Xt, yt)
        self.tmeans = class_means(Xt, self.tyi, len(self.tclasses))
        self.tpos = {int(c): k for k, c in enumerate(self.tclasses.tolist())}
        return self

    def __call__(self, state: FlowState) -> torch.Tensor:
        C = len(state.classes)
        corr = state.correspondence or {c: c for c in state.classes.tolist()}
        idx = torch.tensor([self.tpos[corr[c]] for c in state.classes.tolist()], device=state.X.device)
        mu = class_means(state.X, state.yi, C)
        w = state.counts.to(mu.dtype) / state.n
        return (w * (mu - self.tmeans[idx].to(mu.dtype)).pow(2).sum(1)).sum()


FUNCTIONALS: dict[str, type[Functional]] = {
    "otdd": OTDDFunctional,
    "mmd": MMDFunctional,
    "sliced": SlicedWassersteinFunctional,
    "separation": ClassSeparationPotential,
    "class_means": ClassMeanMatching,
}


def build_functional(spec, otdd_kwargs: dict | None = None) -> tuple[str, float, Functional]:
    """``spec``: a name, a :class:`Functional`, or a dict ``{"name": ..., "weight": ..., **kwargs}``.
    Returns ``(name, weight, functional)``. ``otdd_kwargs`` (``distance``, ``label_update_every``,
    ``penalty``) are passed to ``"otdd"``."""
    if isinstance(spec, Functional):
        return spec.name, 1.0, spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) and hasattr(spec, "items"):
        spec = dict(spec.items())  # e.g. an OmegaConf DictConfig
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"cannot build a functional from {spec!r}; use a name from "
                         f"{sorted(FUNCTIONALS)} or a dict {{'name': ..., 'weight': ...}}")
    spec = dict(spec)
    name = spec.pop("name")
    weight = float(spec.pop("weight", 1.0))
    if name not in FUNCTIONALS:
        raise ValueError(f"unknown functional {name!r}; available: {sorted(FUNCTIONALS)}")
    if name == "otdd" and otdd_kwargs:
        spec = {**dict(otdd_kwargs), **spec}
    return name, weight, FUNCTIONALS[name](**spec)
