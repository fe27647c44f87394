"""The outcome of a dataset flow: the moved particles, their history and where their classes went."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from otdata.display import ALERT, Summarised, number
from otdata.flows.fidelity import ClassFidelity

__all__ = ["FlowResult"]


@dataclass(repr=False)
class FlowResult(Summarised):
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

    Its ``repr`` (and the table a notebook shows) is a few lines: objective, steps, stopping rule,
    sizes, correspondence and class fidelity.
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

    def _summary_rows(self) -> list[tuple[str, str]]:
        """What the ``repr`` and the notebook table show (see :mod:`otdata.display`)."""
        first = self.history[0]["objective"] if self.history else None
        rows = [("objective", f"{number(first)} → {number(self.objective)} (start → end)"),
                ("steps", f"{self.steps_run} of {self.config.get('steps', '-')}")]
        tol = self.config.get("tol") or 0
        rows.append(("converged", f"yes (objective change below tol {tol:g})" if self.converged else
                     f"no (tol {tol:g} not met)" if tol > 0 else "not checked (tol = 0: the full step budget)"))
        classes = len(torch.unique(self.y)) if self.y.numel() else 0
        rows.append(("particles", f"{self.X.shape[0]} × {self.X.shape[1]} features, {classes} classes"))
        rows.append(("correspondence", _correspondence_text(self.correspondence)))
        fid = self.class_fidelity
        if fid is None:
            rows.append(("keeps classes", "not measured"))
        else:
            worst = min(fid.per_class, key=fid.per_class.get)
            text = (f"{100 * fid.overall:.1f} % of the mass goes to the matched class (lowest: class "
                    f"{worst}, {100 * fid.per_class[worst]:.1f} %)")
            rows.append(("keeps classes", ("yes: " if fid.keeps_classes else f"{ALERT}: ") + text))
        return rows


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


def _correspondence_text(corr: dict[int, int] | None, shown: int = 8) -> str:
    """``free`` / ``identity`` / ``0→3, 1→1, ...`` (the first ``shown`` pairs)."""
    if corr is None:
        return "free (the coupling chooses)"
    if all(int(s) == int(t) for s, t in corr.items()):
        return f"identity ({len(corr)} classes)"
    pairs = [f"{s}→{t}" for s, t in list(corr.items())[:shown]]
    return ", ".join(pairs) + (f", ... ({len(corr)} classes)" if len(corr) > shown else "")
