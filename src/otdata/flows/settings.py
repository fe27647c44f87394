"""A flow's settings: checked on construction (type and range, with the setting's name and the
fix) and recorded as plain values (the ``config`` of a result and the fingerprint of a checkpoint)."""

from __future__ import annotations

from typing import Any

import torch

from otdata import checks
from otdata.distance import SlicedDatasetDistance

__all__ = ["LABEL_METHODS", "OPTIMIZERS", "DTYPES", "check_settings", "distance_settings", "plain"]

LABEL_METHODS = ("fixed", "attached", "joint")
OPTIMIZERS = ("euler", "sgd", "adam")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def plain(v):
    """Config values as plain python (lists for tuples, dicts for mappings)."""
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dict) or (hasattr(v, "items") and not isinstance(v, (str, torch.Tensor))):
        return {str(k) if not isinstance(k, int) else k: plain(x) for k, x in v.items()}
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


def _check_numbers(**settings: Any) -> None:
    """Type and range checks of the flow's numeric and boolean settings (:mod:`otdata.checks`)."""
    positive = dict(low=0, low_open=True)
    checks.number("step_size", settings["step_size"], **positive)
    checks.number("tol", settings["tol"], low=0)
    checks.number("momentum", settings["momentum"], low=0, high=1, high_open=True)
    checks.optional(checks.number, "label_step_size", settings["label_step_size"], **positive)
    checks.optional(checks.number, "max_grad_norm", settings["max_grad_norm"], **positive)
    checks.integer("patience", settings["patience"], low=0)
    checks.integer("seed", settings["seed"], low=0)
    for name in ("checkpoint_every", "trajectory_every"):
        checks.optional(checks.integer, name, settings[name], low=0)
    checks.optional(checks.pair, "clamp", settings["clamp"])
    checks.optional(checks.integer, "keep_checkpoints", settings["keep_checkpoints"], low=0)
    checks.integer("label_update_every", settings["label_update_every"], low=1)
    for name in ("progress", "fidelity"):
        checks.boolean(name, settings[name])


def distance_settings(distance: Any) -> dict:
    """The keyword arguments of the flow's :class:`DatasetDistance`, from ``None`` or a mapping;
    anything else (the sliced OTDD among them) is refused with the reason."""
    if isinstance(distance, SlicedDatasetDistance):
        raise checks.SettingError(
            "the sliced OTDD (distance=sliced) cannot drive a flow: it compares fixed datasets and "
            "has no coupling or gradient for the particles to follow. Flow with distance=gaussian "
            "(the default), means or exact; for a sliced objective keep one of those and set "
            "flow.objective=sliced (the sliced Wasserstein distance of the features, class by "
            "class).")
    if distance is not None and not hasattr(distance, "keys"):
        raise checks.SettingError(f"distance must be a DatasetDistance or a mapping of its settings, "
                                  f"got {distance!r} ({type(distance).__name__})")
    return dict(distance or {})


def check_settings(labels, optimizer, dtype, steps, clamp, **numbers: Any) -> list[float] | None:
    """Check every constructor setting of :class:`~otdata.flows.DatasetFlow`; returns ``clamp`` as
    ``[lo, hi]`` floats (or ``None``)."""
    if labels not in LABEL_METHODS:
        raise ValueError(f"labels={labels!r} is not a label method; use one of {LABEL_METHODS}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer={optimizer!r} is unknown; use one of {OPTIMIZERS}")
    checks.choice("dtype", dtype, tuple(DTYPES))
    _check_numbers(clamp=clamp, **numbers)
    try:
        checks.integer("steps", steps, low=1)
    except checks.SettingError:
        raise checks.SettingError(f"steps must be >= 1, got {steps!r}; set flow.steps to the "
                                  "number of steps to take (an integer)") from None
    if clamp is None:
        return None
    clamp = [float(clamp[0]), float(clamp[1])]
    if not clamp[0] < clamp[1]:
        raise ValueError(f"clamp must be [lo, hi] with lo < hi, got {clamp}")
    return clamp
