"""The flow engine: move a labeled particle set down the gradient of an objective.

See :mod:`otdata.flows` for an overview and an example.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from otdata.flows.checkpoint import (Trajectory, latest_checkpoint, load_checkpoint, rng_state,
                                     save_checkpoint, set_rng_state)
from otdata.flows.correspondence import resolve_correspondence
from otdata.flows.functionals import (FlowState, Functional, OTDDFunctional, build_functional,
                                      class_index)

__all__ = ["DatasetFlow", "FlowResult", "LABEL_METHODS", "OPTIMIZERS"]

LABEL_METHODS = ("fixed", "attached", "joint")
OPTIMIZERS = ("euler", "sgd", "adam")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
            "steps_run": self.steps_run, "converged": self.converged, "format": "otdata.FlowResult/1",
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


def _plain(v):
    """Config values as plain python (lists for tuples, dicts for mappings)."""
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict) or (hasattr(v, "items") and not isinstance(v, (str, torch.Tensor))):
        return {str(k) if not isinstance(k, int) else k: _plain(x) for k, x in v.items()}
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return repr(v)


class DatasetFlow:
    """Gradient flow of a labeled dataset toward a target dataset.

    Args:
        target: ``(Xt, yt)`` target dataset (can also be given to :meth:`run` or :meth:`set_target`).
        objective: ``"otdd"``, ``"mmd"``, ``"sliced"``, a :class:`Functional`, a dict
            ``{"name": ..., "weight": ..., **kwargs}``, or a list of those (weighted sum).
        labels: ``"fixed"``, ``"attached"`` or ``"joint"`` (see :mod:`otdata.flows`).
        step_size: Euler/SGD step on the *rescaled* gradient (particle gradient times ``n``); for
            OTDD with ``p=2`` a step of 0.5 moves a particle to its barycentric target in one go,
            so 0.05-0.3 are sensible. For ``"adam"`` it is Adam's learning rate (feature units).
        label_step_size: step for the ``"joint"`` label parameters (default: ``step_size``).
        optimizer: ``"euler"`` (explicit Euler), ``"sgd"`` (with ``momentum``) or ``"adam"``.
        steps: step budget. ``tol``/``patience``: stop once the relative objective change
            ``|F_t - F_{t-1}| / max(1, |F_{t-1}|)`` stays below ``tol`` for ``patience`` steps
            (``tol=0`` disables).
        clamp: ``[lo, hi]`` box projection after every step (e.g. ``[0, 1]`` for pixels).
        max_grad_norm: clip the RMS per-particle rescaled gradient to this value (None = off).
        correspondence: ``None`` (free OTDD), ``"identity"``, ``"auto"``/``"hungarian"``/
            ``"nearest"``/``"balanced"`` (computed from the initial label distances), a dict
            ``{source_class: target_class}`` or a list (see :mod:`otdata.flows.correspondence`).
        checkpoint_dir / checkpoint_every / keep_checkpoints: save a resumable checkpoint every k
            steps; ``run(..., resume=True)`` continues from the newest one.
        trajectory_every / trajectory_particles: record every k-th step (0 = off) for a seeded
            subsample of particles (``None`` or ``-1`` = all).
        seed: seeds the flow's private generator (random projections, trajectory subsample).
        distance_kwargs: arguments of the OTDD functional (``label_distance``, ``epsilon``, ``p``,
            ``debiased``, ``label_update_every``, ``penalty``, ...).
        device, dtype: where and in which precision (``"float32"``/``"float64"``) to run.
        progress: show a ``rich`` progress bar.
    """

    def __init__(
        self,
        target: tuple[torch.Tensor, torch.Tensor] | None = None,
        objective: Any = "otdd",
        labels: str = "fixed",
        step_size: float = 0.1,
        optimizer: str = "euler",
        steps: int = 100,
        tol: float = 0.0,
        patience: int = 3,
        momentum: float = 0.0,
        label_step_size: float | None = None,
        clamp: Sequence[float] | None = None,
        max_grad_norm: float | None = None,
        correspondence: Any = None,
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 0,
        keep_checkpoints: int = 2,
        trajectory_every: int = 0,
        trajectory_particles: int | None = 64,
        seed: int = 0,
        distance_kwargs: dict | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        progress: bool = True,
    ):
        if labels not in LABEL_METHODS:
            raise ValueError(f"labels={labels!r} is not a label method; use one of {LABEL_METHODS}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer={optimizer!r} is unknown; use one of {OPTIMIZERS}")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r}; use 'float32' or 'float64'")
        if step_size <= 0:
            raise ValueError(f"step_size must be > 0, got {step_size}")
        if clamp is not None:
            clamp = [float(clamp[0]), float(clamp[1])]
            if not clamp[0] < clamp[1]:
                raise ValueError(f"clamp must be [lo, hi] with lo < hi, got {clamp}")
        self.objective = objective
        self.labels = labels
        self.step_size = float(step_size)
        self.label_step_size = float(label_step_size) if label_step_size is not None else None
        self.optimizer = optimizer
        self.steps = int(steps)
        self.tol = float(tol)
        self.patience = int(patience)
        self.momentum = float(momentum)
        self.clamp = clamp
        self.max_grad_norm = max_grad_norm
        self.correspondence = correspondence
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = int(checkpoint_every or 0)
        self.keep_checkpoints = keep_checkpoints
        self.trajectory_every = int(trajectory_every or 0)
        self.trajectory_particles = trajectory_particles
        self.seed = int(seed)
        self.distance_kwargs = dict(distance_kwargs or {})
        self.device = torch.device(device)
        self.dtype = _DTYPES[dtype]
        self.progress = progress
        self.config = {k: _plain(v) for k, v in dict(
            objective=objective if not isinstance(objective, Functional) else objective.name,
            labels=labels, step_size=step_size, optimizer=optimizer, steps=steps, tol=tol,
            patience=patience, momentum=momentum, label_step_size=label_step_size, clamp=clamp,
            max_grad_norm=max_grad_norm, seed=seed, distance_kwargs=self.distance_kwargs,
            correspondence=correspondence if not isinstance(correspondence, torch.Tensor)
            else correspondence.tolist(), dtype=dtype,
        ).items()}
        self.target = None
        self.terms: list[tuple[str, float, Functional]] | None = None
        if target is not None:
            self.set_target(*target)

    # -- setup ------------------------------------------------------------------------------------

    def _check_xy(self, X, y, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        X = torch.as_tensor(X)
        y = torch.as_tensor(y)
        if X.ndim > 2:
            X = X.reshape(X.shape[0], -1)
        if X.ndim != 2:
            raise ValueError(f"{what} features must be (n, d), got shape {tuple(X.shape)}")
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise ValueError(f"{what} labels must be (n,) with n={X.shape[0]} matching the "
                             f"features, got shape {tuple(y.shape)}")
        if X.shape[0] == 0:
            raise ValueError(f"{what} dataset is empty; pass at least one sample per class")
        if y.is_floating_point():
            raise ValueError(f"{what} labels must be integers, got {y.dtype}; cast with y.long()")
        if not torch.isfinite(X).all():
            raise ValueError(f"{what} features contain NaN/inf; clean or impute them first")
        return X.to(self.device, self.dtype), y.to(self.device).long()

    def _min_per_class(self) -> int:
        if self._uses("otdd") and self.distance_kwargs.get("label_distance", "gaussian") == "gaussian":
            return 2
        return 1

    def _check_classes(self, y, what: str, declared: Sequence[int] | None = None):
        classes, counts = torch.unique(y, return_counts=True)
        need = self._min_per_class()
        if declared is not None:
            empty = sorted(set(int(c) for c in declared) - set(classes.tolist()))
            if empty:
                raise ValueError(
                    f"{what} class(es) {empty} have no samples; drop them from the class list / "
                    "correspondence or sample the data stratified by class")
        small = [int(c) for c, n in zip(classes.tolist(), counts.tolist()) if n < need]
        if small:
            raise ValueError(
                f"{what} class(es) {small} have fewer than {need} samples, too few for class "
                "statistics (the gaussian label distance needs a covariance); drop those classes, "
                "sample more per class, or use label_distance='means'")

    def _uses(self, name: str) -> bool:
        specs = self.objective if isinstance(self.objective, (list, tuple)) else [self.objective]
        for s in specs:
            n = s if isinstance(s, str) else getattr(s, "name", None) or (
                s.get("name") if hasattr(s, "get") else None)
            if n == name:
                return True
        return False

    def set_target(self, Xt, yt) -> "DatasetFlow":
        """Set the target dataset and bind the objective terms to it (target stats computed once)."""
        Xt, yt = self._check_xy(Xt, yt, "target")
        self._check_classes(yt, "target")
        self.target = (Xt, yt)
        specs = self.objective if isinstance(self.objective, (list, tuple)) else [self.objective]
        self.terms = [build_functional(s, self.distance_kwargs) for s in specs]
        for _, _, f in self.terms:
            f.bind(Xt, yt)
        return self

    def _otdd_term(self) -> OTDDFunctional | None:
        for _, _, f in self.terms or []:
            if isinstance(f, OTDDFunctional):
                return f
        return None

    def _resolve_correspondence(self, X, y):
        spec = self.correspondence
        if isinstance(spec, str) and spec.lower() in ("auto", "hungarian", "nearest", "balanced"):
            f = self._otdd_term()
            if f is None:
                from otdata.flows.functionals import OTDDFunctional as _O

                f = _O(**self.distance_kwargs).bind(*self.target)
            W = f.label_distances(X, y)
        else:
            W = None
        src = torch.unique(y).tolist()
        tgt = torch.unique(self.target[1]).tolist()
        corr = resolve_correspondence(spec, src, tgt, W=W)
        needs = [n for n, _, f in self.terms if getattr(f, "needs_correspondence", False)]
        if corr is None and needs:
            corr = resolve_correspondence("identity", src, tgt)
        return corr

    # -- run --------------------------------------------------------------------------------------

    def _objective(self, state: FlowState) -> tuple[torch.Tensor, dict[str, float]]:
        total = state.X.new_zeros(())
        parts = {}
        for name, w, f in self.terms:
            v = f(state)
            key = name
            i = 2
            while key in parts:
                key = f"{name}_{i}"
                i += 1
            parts[key] = float(v.detach())
            total = total + w * v
        return total, parts

    def run(self, Xs, ys, target=None, resume: bool = False) -> FlowResult:
        """Flow the source ``(Xs, ys)``; ``resume=True`` continues from ``checkpoint_dir``."""
        if target is not None:
            self.set_target(*target)
        if self.target is None:
            raise ValueError("no target dataset: pass target=(Xt, yt) to DatasetFlow(...) or run()")
        Xs, ys = self._check_xy(Xs, ys, "source")
        d_s, d_t = Xs.shape[1], self.target[0].shape[1]
        if d_s != d_t:
            raise ValueError(
                f"source features have dimension {d_s} but the target has {d_t}; flows need a "
                "common feature space: resize/flatten images to the same shape (e.g. 16x16 -> "
                "28x28 with F.interpolate) or embed both datasets with the same encoder")
        self._check_classes(ys, "source")
        corr = self._resolve_correspondence(Xs, ys)
        if corr is not None:
            self._check_classes(self.target[1], "target", declared=sorted(set(corr.values())))

        classes, yi, counts = class_index(ys)
        C, n = len(classes), Xs.shape[0]
        gen = torch.Generator().manual_seed(self.seed)
        X0 = Xs.clone()
        X = Xs.clone().requires_grad_(True)
        params = [X]
        label_params = None
        if self.labels == "joint":
            label_params = self._init_label_params(X0, yi, C)
            params += [label_params["means"], *label_params["factors"]]

        traj_idx = None
        if self.trajectory_every > 0 and self.trajectory_particles not in (None, -1) \
                and self.trajectory_particles < n:
            traj_idx = torch.randperm(n, generator=gen)[: self.trajectory_particles].sort().values
        traj = Trajectory(self.trajectory_every, traj_idx)

        opt = None
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(params, lr=self.step_size, momentum=self.momentum)
        elif self.optimizer == "adam":
            opt = torch.optim.Adam(params, lr=self.step_size)
        if opt is not None and label_params is not None and self.label_step_size is not None:
            opt.param_groups[0]["params"] = [X]
            opt.add_param_group({"params": params[1:], "lr": self.label_step_size})

        history: list[dict] = []
        start, quiet, converged = 0, 0, False
        if resume and self.checkpoint_dir and latest_checkpoint(self.checkpoint_dir) is not None:
            ck = load_checkpoint(self.checkpoint_dir)
            same = {k: v for k, v in ck["config"].items() if k != "steps"} == \
                {k: v for k, v in self.config.items() if k != "steps"}
            if tuple(ck["X"].shape) != tuple(X.shape) or not same:
                raise ValueError(
                    f"checkpoint in {self.checkpoint_dir} belongs to a different flow (shape "
                    f"{tuple(ck['X'].shape)} vs {tuple(X.shape)} or another configuration); use a "
                    "fresh checkpoint_dir or resume=False (only `steps` may differ)")
            with torch.no_grad():
                X.copy_(ck["X"])
                X0 = ck["X0"].to(X0)
                for p_, v in zip(params[1:], ck["label_params"] or []):
                    p_.copy_(v)
            if opt is not None:
                opt.load_state_dict(ck["optimizer"])
            set_rng_state(ck["rng"], gen)
            start, quiet = ck["step"], ck["quiet"]
            history = ck["history"]
            traj = Trajectory.from_state_dict(ck["trajectory"])
            corr = ck["correspondence"]
            cache = ck["cache"]
        else:
            cache = {}

        state = FlowState(X=X, y=ys, yi=yi, classes=classes, counts=counts, labels=self.labels,
                          label_params=label_params, correspondence=corr, step=start, generator=gen,
                          cache=cache)
        lr_label = self.label_step_size if self.label_step_size is not None else self.step_size
        # label-parameter gradients are rescaled by n / n_c (class c's share of the mass)
        class_scale = (n / counts.to(self.dtype)).tolist()

        progress = self._progress()
        task = progress.add_task("flow", total=self.steps, completed=start) if progress else None
        if progress:
            progress.start()
        step = start
        try:
            while step < self.steps:
                t0 = time.perf_counter()
                state.step = step
                traj.maybe_record(step, X)
                for p in params:
                    p.grad = None
                value, parts = self._objective(state)
                value.backward()
                with torch.no_grad():
                    g = X.grad.mul_(n)  # Wasserstein gradient: particle gradient times n
                    gnorm = float(g.pow(2).sum(1).mean().sqrt())
                    if self.max_grad_norm is not None and gnorm > self.max_grad_norm:
                        g.mul_(self.max_grad_norm / gnorm)
                    if label_params is not None:
                        m_ = label_params["means"]
                        if m_.grad is not None:
                            m_.grad.mul_(torch.tensor(class_scale, dtype=m_.dtype,
                                                      device=m_.device)[:, None])
                        for f_, sc in zip(label_params["factors"], class_scale):
                            if f_.grad is not None:
                                f_.grad.mul_(sc)
                    if opt is None:
                        X.sub_(self.step_size * g)
                        for p_ in params[1:]:
                            if p_.grad is not None:
                                p_.sub_(lr_label * p_.grad)
                    else:
                        opt.step()
                    if self.clamp is not None:
                        X.clamp_(self.clamp[0], self.clamp[1])
                fval = float(value.detach())
                if not math.isfinite(fval):
                    raise FloatingPointError(
                        f"objective became {fval} at step {step}; lower step_size, raise epsilon "
                        "or use dtype='float64'")
                history.append({"step": step, "objective": fval, **parts, "grad_norm": gnorm,
                                "seconds": time.perf_counter() - t0})
                step += 1
                if len(history) >= 2 and self.tol > 0:
                    prev = history[-2]["objective"]
                    quiet = quiet + 1 if abs(fval - prev) <= self.tol * max(1.0, abs(prev)) else 0
                    if quiet >= self.patience:
                        converged = True
                if progress:
                    progress.update(task, advance=1, description=f"flow F={fval:.4g}")
                if self.checkpoint_dir and self.checkpoint_every > 0 and \
                        (step % self.checkpoint_every == 0 or converged or step == self.steps):
                    self._checkpoint(step, quiet, X, X0, params[1:], opt, gen, history, traj, corr,
                                     state.cache)
                if converged:
                    break
        finally:
            if progress:
                progress.stop()

        # evaluate the final particles
        state.step = step
        traj.maybe_record(step, X, force=True)
        with torch.enable_grad():
            value, parts = self._objective(state)
        history.append({"step": step, "objective": float(value.detach()), **parts,
                        "grad_norm": None, "seconds": 0.0})

        lp_out = None
        if label_params is not None:
            lp_out = {"means": label_params["means"].detach().cpu(),
                      "covs": torch.stack([(f.T @ f).detach().cpu()
                                           for f in label_params["factors"]])}
        return FlowResult(
            X=X.detach().cpu(), y=ys.cpu(), X0=X0.detach().cpu(), history=history,
            trajectory=traj.state_dict() if traj.every > 0 else None, correspondence=corr,
            label_params=lp_out, config=dict(self.config), steps_run=step, converged=converged)

    # -- helpers ----------------------------------------------------------------------------------

    def _init_label_params(self, X, yi, C):
        from otdata.flows.otdd_adapter import source_stats

        means, factors = source_stats(X, yi, C)
        return {"means": means.clone().requires_grad_(True),
                "factors": [f.clone().requires_grad_(True) for f in factors]}

    def _checkpoint(self, step, quiet, X, X0, label_params, opt, gen, history, traj, corr, cache):
        state = {
            "step": step, "quiet": quiet, "X": X.detach().cpu().clone(), "X0": X0.cpu(),
            "label_params": [v.detach().cpu().clone() for v in label_params],
            "optimizer": opt.state_dict() if opt is not None else None,
            "rng": rng_state(gen), "history": list(history), "trajectory": traj.state_dict(),
            "correspondence": corr, "config": self.config,
            "cache": {k: (v.detach().clone() if isinstance(v, torch.Tensor) else v)
                      for k, v in cache.items()},
        }
        save_checkpoint(self.checkpoint_dir, state, step, keep=self.keep_checkpoints)

    def _progress(self):
        if not self.progress:
            return None
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
