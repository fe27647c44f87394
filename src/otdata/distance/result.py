"""The result of a dataset distance computation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from otdata.display import ALERT, Summarised, number
from otdata.ot.sinkhorn import SinkhornResult


@dataclass(repr=False)
class DistanceResult(Summarised):
    """Outcome of :class:`~otdata.distance.DatasetDistance`.

    * ``value`` (float): transport cost ``sum_ij pi_ij c_ij`` of the entropic coupling ``pi``
      between the two datasets, ``c = lambda_x ||x - x'||^p + lambda_y W_p^p(class, class')``.
      Tends to the exact OTDD (``ot.emd2`` on the same cost) as ``epsilon -> 0``.
    * ``entropic`` (float): the entropic objective ``OT_eps(D1, D2)`` (= ``<a,f> + <b,g>``).
    * ``divergence`` (float or None): debiased Sinkhorn divergence
      ``OT_eps(D1,D2) - OT_eps(D1,D1)/2 - OT_eps(D2,D2)/2`` when ``debiased=True``.
    * ``loss`` (0-d tensor): what is optimised — ``divergence`` if debiased else ``entropic`` —
      differentiable w.r.t. the features (and, with ``label_grad=True``, through the class
      statistics); its gradient is exact by the envelope theorem.
    * ``label_distances``: ``(C1, C2)`` W_p^p between classes (detached); ``class_names1/2`` name
      their rows/columns. ``f``/``g``: dual potentials of the (D1, D2) problem (None for
      distances without them, e.g. sliced).
    * ``epsilon``: the **absolute** entropic regularisation used; ``epsilon_relative``: the
      dimensionless value set (None when it was absolute); ``cost_scale``: the mean ground cost
      under the independent coupling (``epsilon = epsilon_relative * cost_scale``), also an upper
      bound of ``value``.
    * ``converged``: every Sinkhorn solve behind the numbers (the cross term and, debiased, both
      self terms) met its tolerance; ``marginal_error``: the largest L1 marginal violation among
      them; ``n_iter``: iterations of the cross term. An unconverged result was also announced by
      a :class:`~otdata.ot.ConvergenceWarning` (or refused with ``strict=True``).

    Its ``repr`` (and the table a notebook shows) is a few lines: value, ε, convergence, sizes.
    """

    value: float
    entropic: float
    divergence: float | None
    loss: Tensor
    label_distances: Tensor | None
    class_names1: list[str]
    class_names2: list[str]
    f: Tensor | None
    g: Tensor | None
    epsilon: float
    n1: int
    n2: int
    seconds: float
    n_iter: int
    converged: bool
    backend: str
    settings: dict[str, Any] = field(default_factory=dict)
    epsilon_relative: float | None = None
    cost_scale: float | None = None
    marginal_error: float = 0.0
    _ot: SinkhornResult | None = field(default=None, repr=False)

    def coupling(self, dense: bool = True, k: int = 10) -> Tensor:
        """The coupling ``pi`` (``(n1, n2)``), rebuilt from the potentials. ``dense=False``: sparse
        tensor with the ``k`` largest entries per row (for large problems)."""
        return self._solved().coupling(dense=dense, k=k)

    def correspondences(self, k: int = 5) -> tuple[Tensor, Tensor]:
        """For each item of dataset 1, the indices of its ``k`` most coupled items of dataset 2
        and the coupling masses: two ``(n1, k)`` tensors."""
        return self._solved().correspondences(k)

    def _solved(self) -> SinkhornResult:
        if self._ot is None:
            raise ValueError("this distance has no coupling (it was not computed by a Sinkhorn solve)")
        return self._ot

    def _summary_rows(self) -> list[tuple[str, str]]:
        """What the ``repr`` and the notebook table show (see :mod:`otdata.display`)."""
        rows = [("value", f"{number(self.value)} (transport cost of the coupling)")]
        if self.divergence is not None:
            rows.append(("divergence", f"{number(self.divergence)} (debiased Sinkhorn divergence)"))
        eps = number(self.epsilon, 4)
        if self.epsilon_relative is not None:
            eps += (f" (relative {number(self.epsilon_relative, 4)} of the cost scale "
                    f"{number(self.cost_scale, 4)})")
        rows.append(("epsilon", eps))
        detail = f"marginal error {self.marginal_error:.2g}, {self.n_iter} iterations"
        rows.append(("converged", f"yes ({detail})" if self.converged else
                     f"{ALERT}: {detail}; do not trust the value (see the ConvergenceWarning)"))
        return rows + self._size_rows()

    def _size_rows(self) -> list[tuple[str, str]]:
        """The sizes and the solver line shared with the sliced result."""
        classes = (f", {len(self.class_names1)} × {len(self.class_names2)} classes"
                   if self.class_names1 or self.class_names2 else ", no labels")
        return [("sizes", f"{self.n1} × {self.n2} items{classes}"),
                ("solver", f"{self.backend}, {self.seconds:.2f} s")]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (no potentials)."""
        return {
            "value": self.value,
            "entropic": self.entropic,
            "divergence": self.divergence,
            "label_distances": None if self.label_distances is None else self.label_distances.tolist(),
            "class_names1": list(self.class_names1),
            "class_names2": list(self.class_names2),
            "epsilon": self.epsilon,
            "epsilon_relative": self.epsilon_relative,
            "cost_scale": self.cost_scale,
            "marginal_error": self.marginal_error,
            "n1": self.n1,
            "n2": self.n2,
            "seconds": self.seconds,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "backend": self.backend,
            "settings": dict(self.settings),
        }
