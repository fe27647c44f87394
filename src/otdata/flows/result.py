"""The outcome of a flow: the moved particles, their history, and how to save, load and extend it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from otdata.flows.fidelity import ClassFidelity

__all__ = ["FlowResult"]


@dataclass
class FlowResult:
    """Outcome of :meth:`DatasetFlow.run`.

    Attributes:
        X: ``(n, d)`` flowed particles. ``X0``: the initial ones. ``y``: labels (unchanged).
        history: one dict per evaluated step: ``step``, ``objective``, one key per objective term,
            ``grad_norm`` (rescaled particle gradient, RMS per particle), ``seconds``.
            The last entry evaluates the final particles.
        trajectory: ``{"steps": [...], "indices": (m,) or None, "frames": (T, m, d)}`` or ``None``.
        correspondence: ``{source_label: target_label}`` used, or ``None`` (free OTDD).
        label_params: ``"joint"`` only: ``{"means": (C, d), "covs": (C, d, d)}`` final label
            distributions; else ``None``.
        config: the flow's constructor arguments. ``steps_run``: steps taken. ``converged``:
            stopped by the tolerance rule.
        fidelity: where the final coupling sends each source class
            (:class:`~otdata.flows.fidelity.ClassFidelity` as a plain dict; see :attr:`class_fidelity`),
            or ``None`` when it was not measured.
    """

    X: torch.Tensor
    y: torch.Tensor
    X0: torch.Tensor
    history: list[dict] = field(default_factory=list)
    trajectory: dict | None = None
    correspondence: dict[int, int] | None = None
    label_params: dict[str, torch.Tensor] | None = None
    config: dict = field(default_factory=dict)
    steps_run: int = 0
    converged: bool = False
    fidelity: dict | None = None

    @property
    def class_fidelity(self) -> ClassFidelity | None:
        """The final coupling's class fidelity, or ``None`` when it was not measured."""
        return None if self.fidelity is None else ClassFidelity.from_dict(self.fidelity)

    @property
    def objective(self) -> float:
        return self.history[-1]["objective"] if self.history else float("nan")

    def extend(self, X_new: torch.Tensor, k: int = 10, weighting: str = "distance") -> torch.Tensor:
        """Move unseen samples with the learned displacement (:class:`KNNDisplacement`); the flow's
        box constraint (``clamp``) is applied to the result."""
        from otdata.flows.extension import KNNDisplacement

        clamp = self.config.get("clamp")
        return KNNDisplacement(self.X0, self.X, k=k, weighting=weighting)(X_new, clamp=clamp)

    def to_dict(self) -> dict:
        return {
            "X": self.X, "y": self.y, "X0": self.X0, "history": self.history,
            "trajectory": self.trajectory, "correspondence": self.correspondence,
            "label_params": self.label_params, "config": self.config,
            "steps_run": self.steps_run, "converged": self.converged, "fidelity": self.fidelity,
            "format": "otdata.FlowResult/1",
        }

    def save(self, path: str | Path) -> Path:
        """``torch.save`` of plain tensors/lists/dicts (loadable with ``weights_only=True``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.to_dict(), path)
        return path

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> "FlowResult":
        d = torch.load(path, map_location=map_location, weights_only=True)
        d.pop("format", None)
        return cls(**d)
