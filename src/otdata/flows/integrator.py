"""The particle integrator: one step of a flow (objective, Wasserstein gradient, update, box
projection, stopping rule) on the state of a run."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from otdata.flows.checkpoint import Trajectory
from otdata.flows.functionals import FlowState

__all__ = ["FlowRun", "StepRule", "take_step"]


@dataclass
class FlowRun:
    """The mutable state of one run of :meth:`DatasetFlow.run` (what a checkpoint saves)."""

    state: FlowState
    X0: torch.Tensor
    params: list
    opt: Any
    traj: Trajectory
    class_scale: list
    step: int = 0
    quiet: int = 0
    converged: bool = False
    history: list = field(default_factory=list)
    fingerprint: dict | None = None  # digests of source, target and settings (refuses a wrong resume)


@dataclass(frozen=True)
class StepRule:
    """How a step moves the particles: Euler/SGD/Adam step sizes, gradient clipping, the box
    projection, and the stopping rule (``tol``, ``patience``)."""

    step_size: float
    label_step_size: float | None
    max_grad_norm: float | None
    clamp: Sequence[float] | None
    tol: float
    patience: int


def take_step(run: FlowRun, objective, rule: StepRule) -> float:
    """One step: objective, Wasserstein gradient, update, box projection, history; ``objective``
    maps a :class:`FlowState` to ``(value, {term: value})``."""
    t0 = time.perf_counter()
    state, X = run.state, run.state.X
    n = X.shape[0]
    state.step = run.step
    run.traj.maybe_record(run.step, X)
    for p in run.params:
        p.grad = None
    value, parts = objective(state)
    value.backward()
    label_params = state.label_params
    with torch.no_grad():
        g = X.grad.mul_(n)  # Wasserstein gradient: particle gradient times n
        gnorm = float(g.pow(2).sum(1).mean().sqrt())
        if rule.max_grad_norm is not None and gnorm > rule.max_grad_norm:
            g.mul_(rule.max_grad_norm / gnorm)
        if label_params is not None:  # rescaled by n / n_c (class c's share of the mass)
            m_ = label_params["means"]
            if m_.grad is not None:
                m_.grad.mul_(torch.tensor(run.class_scale, dtype=m_.dtype, device=m_.device)[:, None])
            for f_, sc in zip(label_params["factors"], run.class_scale):
                if f_.grad is not None:
                    f_.grad.mul_(sc)
        if run.opt is None:
            lr_label = rule.label_step_size if rule.label_step_size is not None else rule.step_size
            X.sub_(rule.step_size * g)
            for p_ in run.params[1:]:
                if p_.grad is not None:
                    p_.sub_(lr_label * p_.grad)
        else:
            run.opt.step()
        if rule.clamp is not None:
            X.clamp_(rule.clamp[0], rule.clamp[1])
    fval = float(value.detach())
    if not math.isfinite(fval):
        raise FloatingPointError(
            f"objective became {fval} at step {run.step}; lower step_size, raise epsilon "
            "or use dtype='float64'")
    run.history.append({"step": run.step, "objective": fval, **parts, "grad_norm": gnorm,
                        "seconds": time.perf_counter() - t0})
    run.step += 1
    if len(run.history) >= 2 and rule.tol > 0:
        prev = run.history[-2]["objective"]
        run.quiet = run.quiet + 1 if abs(fval - prev) <= rule.tol * max(1.0, abs(prev)) else 0
        run.converged = run.quiet >= rule.patience
    return fval
