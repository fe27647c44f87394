"""Class fidelity: does a flow keep every class, or does it send some of a class's mass elsewhere?

A flow carries its labels along: a particle of source class ``c`` keeps label ``c`` wherever it
ends. That is only true to the data when the coupling the flow follows sends class ``c`` onto the
target class it stands for. With free matching (no correspondence) and class proportions that
differ between the datasets (USPS has ~16 % zeros, MNIST ~10 %), a balanced coupling must send the
surplus of every over-represented class into other classes, and those particles end up looking like
another class under their old label.

:func:`class_fidelity` reads the class-to-class mass matrix of the final coupling (see
:meth:`otdata.distance.FixedTargetOTDD.class_mass`) and reports, for every source class, the share
of its mass that goes to the target class it is matched with: the flow's correspondence, or, for a
free flow, the one-to-one matching that keeps the most mass (what the coupling itself implies).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import torch

from otdata.class_names import class_name

from .correspondence import match_classes

__all__ = ["ClassFidelity", "ClassFidelityWarning", "class_fidelity", "FIDELITY_WARN"]

#: a flow whose overall fidelity is below this, or with a class below it, is reported as scrambling
FIDELITY_WARN = 0.99


class ClassFidelityWarning(UserWarning):
    """A flow sends part of some source classes into other target classes: their labels no longer
    describe the particles that carry them."""


@dataclass
class ClassFidelity:
    """Where the final coupling sends each source class.

    Attributes:
        mass: ``(C_src, C_tgt)`` coupling mass between classes, each row divided by its sum (row
            ``i`` is where source class ``source_classes[i]`` goes).
        source_classes / target_classes: label values of the rows / columns.
        matched: ``{source_label: target_label}`` each class is measured against.
        per_class: ``{source_label: share}`` of the class's mass sent to its matched class.
        overall: the same share over all particles (classes weighted by their size).
        matching: ``"correspondence"`` (the flow's own) or ``"implied"`` (free flow: the one-to-one
            matching that keeps the most mass).
        converged: whether the solve that produced the coupling converged.
    """

    mass: torch.Tensor
    source_classes: list[int]
    target_classes: list[int]
    matched: dict[int, int]
    per_class: dict[int, float]
    overall: float
    matching: str
    converged: bool = True
    class_shares: list[float] = field(default_factory=list)

    def leaks(self, threshold: float = 1.0 - FIDELITY_WARN) -> list[tuple[int, int, float]]:
        """``(source_label, target_label, share)`` for every off-match destination that receives
        more than ``threshold`` of a source class's mass, largest first."""
        out = []
        for i, c in enumerate(self.source_classes):
            for j, t in enumerate(self.target_classes):
                share = float(self.mass[i, j])
                if t != self.matched[c] and share > threshold:
                    out.append((c, t, share))
        return sorted(out, key=lambda r: -r[2])

    @property
    def keeps_classes(self) -> bool:
        return self.overall >= FIDELITY_WARN and min(self.per_class.values()) >= FIDELITY_WARN

    def message(self, source_names: Sequence[str] | None = None,
                target_names: Sequence[str] | None = None) -> str:
        """One paragraph for the log or a warning: the fidelity, the worst leaks and the fix."""
        def sn(c):
            return class_name(source_names, c)

        def tn(t):
            return class_name(target_names, t)

        head = f"class fidelity {100 * self.overall:.2f} % ({self.matching} matching)"
        if self.keeps_classes:
            return head + ": every class is sent to its matched class"
        leaks = ", ".join(f"{100 * s:.1f} % of {sn(c)} → {tn(t)} (matched: {tn(self.matched[c])})"
                          for c, t, s in self.leaks()[:6])
        fix = ("flow.correspondence=auto (class-reweighted, one target class per source class) or "
               "identity" if self.matching == "implied" else
               "a correspondence that the data support (flow.correspondence=auto), a larger "
               "flow.penalty, or more steps")
        return (f"{head}: the flow sends part of some classes into other classes, whose particles "
                f"keep their old labels: {leaks}. Use {fix}.")

    def rows(self, source_names: Sequence[str] | None = None,
             target_names: Sequence[str] | None = None) -> list[dict]:
        """One table row per source class."""
        return [{"source_class": class_name(source_names, c), "matched_target": class_name(target_names, self.matched[c]),
                 "share_of_particles": round(self.class_shares[i], 4) if self.class_shares else None,
                 "fidelity": round(self.per_class[c], 4)}
                for i, c in enumerate(self.source_classes)]

    def to_dict(self) -> dict:
        """Plain values (a ``FlowResult`` saves it with ``weights_only`` loading)."""
        return {"mass": self.mass.detach().cpu().double(), "source_classes": self.source_classes,
                "target_classes": self.target_classes, "matched": dict(self.matched),
                "per_class": dict(self.per_class), "overall": self.overall, "matching": self.matching,
                "converged": self.converged, "class_shares": list(self.class_shares)}

    @classmethod
    def from_dict(cls, d: dict) -> "ClassFidelity":
        return cls(**d)


def class_fidelity(mass: torch.Tensor, source_classes, target_classes,
                   correspondence: dict[int, int] | None = None, converged: bool = True) -> ClassFidelity:
    """Class fidelity from a ``(C_src, C_tgt)`` class-to-class coupling mass matrix.

    With a ``correspondence`` each source class is measured against its prescribed target class;
    without one, against the matching that keeps the most mass (Hungarian on ``-mass``, or the
    balanced assignment when there are more source than target classes)."""
    src = [int(c) for c in (source_classes.tolist() if torch.is_tensor(source_classes) else source_classes)]
    tgt = [int(c) for c in (target_classes.tolist() if torch.is_tensor(target_classes) else target_classes)]
    mass = torch.as_tensor(mass, dtype=torch.float64).detach().cpu()
    if mass.shape != (len(src), len(tgt)):
        raise ValueError(f"class mass matrix has shape {tuple(mass.shape)}, expected ({len(src)}, {len(tgt)})")
    totals = mass.sum(1)
    if not bool((totals > 0).all()):
        raise ValueError("every source class needs coupling mass; a row of the class mass matrix is 0")
    rows = mass / totals[:, None]
    if correspondence is not None:
        matched, matching = {c: int(correspondence[c]) for c in src}, "correspondence"
    else:
        matched, matching = match_classes(-rows, src, tgt, method="auto"), "implied"
    col = {t: j for j, t in enumerate(tgt)}
    per_class = {c: float(rows[i, col[matched[c]]]) for i, c in enumerate(src)}
    shares = (totals / totals.sum()).tolist()
    overall = float(sum(s * per_class[c] for s, c in zip(shares, src)))
    return ClassFidelity(mass=rows, source_classes=src, target_classes=tgt, matched=matched,
                         per_class=per_class, overall=overall, matching=matching,
                         converged=converged, class_shares=shares)


def warn_if_scrambled(fidelity: ClassFidelity, source_names=None, target_names=None) -> None:
    """Emit a :class:`ClassFidelityWarning` naming the leaking classes and the fix."""
    if not fidelity.keeps_classes:
        warnings.warn(fidelity.message(source_names, target_names), ClassFidelityWarning, stacklevel=3)
