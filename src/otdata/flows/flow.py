"""The flow engine: move a labeled particle set down the gradient of an objective.

See :mod:`otdata.flows` for an overview and an example.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from otdata import progress
from otdata.data.labeled import as_labeled, check_same_space
from otdata.distance import DatasetDistance, check_scales, class_stats
from otdata.flows.checkpoint import (Trajectory, check_fingerprint, fingerprint, latest_checkpoint,
                                     load_checkpoint, rng_state,
                                     save_checkpoint, set_rng_state)
from otdata.flows.correspondence import needs_label_distances, resolve_correspondence
from otdata.flows.fidelity import class_fidelity, warn_if_scrambled
from otdata.flows.functionals import (FlowState, Functional, OTDDFunctional, build_functional,
                                      class_index)
from otdata.flows.integrator import FlowRun, StepRule, take_step
from otdata.flows.result import FlowResult
from otdata.flows.settings import DTYPES, LABEL_METHODS, OPTIMIZERS, check_settings, distance_settings, plain

__all__ = ["DatasetFlow", "FlowResult", "LABEL_METHODS", "OPTIMIZERS"]

log = logging.getLogger(__name__)



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
        correspondence: ``"auto"`` (default: each source class is matched with one target class
            from the initial label distances, and the target is reweighted so that every class
            can be transported onto its match alone), ``"identity"``, ``"hungarian"``/
            ``"nearest"``/``"balanced"``, a dict ``{source_class: target_class}``, a list (see
            :mod:`otdata.flows.correspondence`), or ``None``/``"free"`` (free OTDD: a balanced
            coupling that sends the surplus of over-represented classes into other classes when
            class proportions differ; the flow then warns with its class fidelity).
        checkpoint_dir / checkpoint_every / keep_checkpoints: save a resumable checkpoint every k
            steps; ``run(..., resume=True)`` continues from the newest one.
        trajectory_every / trajectory_particles: record every k-th step (0 = off) for a seeded
            subsample of particles (``None`` or ``-1`` = all).
        seed: seeds the flow's private generator (random projections, trajectory subsample).
        distance: the OTDD of the ``"otdd"`` objective: a
            :class:`~otdata.distance.DatasetDistance` (the Hydra config passes the ``distance``
            group, so one override changes matching and flow alike) or a dict of its settings
            (default: ``DatasetDistance()``; its epsilon is relative to the initial cost scale).
        label_update_every: ``labels="fixed"``: refresh the source class statistics every k steps.
        penalty: label-cost penalty for off-correspondence class pairs (None: automatic).
        device, dtype: where and in which precision (``"float32"``/``"float64"``) to run.
        progress: show the steps (:mod:`otdata.progress`: a bar on a terminal, log lines with
            the time left elsewhere).
        fidelity: measure the final coupling's class fidelity (:mod:`otdata.flows.fidelity`) and
            warn when the flow sends part of a class into another.

    The defaults equal ``conf/flow/default.yaml`` (a test checks).
    """

    def __init__(
        self,
        target: tuple[torch.Tensor, torch.Tensor] | None = None,
        objective: Any = "otdd",
        labels: str = "fixed",
        step_size: float = 0.25,
        optimizer: str = "euler",
        steps: int = 30,
        tol: float = 0.0,
        patience: int = 3,
        momentum: float = 0.0,
        label_step_size: float | None = None,
        clamp: Sequence[float] | None = None,
        max_grad_norm: float | None = None,
        correspondence: Any = "auto",
        checkpoint_dir: str | None = None,
        checkpoint_every: int = 0,
        keep_checkpoints: int = 2,
        trajectory_every: int = 0,
        trajectory_particles: int | None = 64,
        seed: int = 0,
        distance: Any = None,
        label_update_every: int = 5,
        penalty: float | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        progress: bool = True,
        fidelity: bool = True,
    ):
        clamp = check_settings(labels, optimizer, dtype, steps, clamp, step_size=step_size, tol=tol,
                               patience=patience, momentum=momentum, seed=seed,
                               label_step_size=label_step_size, max_grad_norm=max_grad_norm,
                               checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                               trajectory_every=trajectory_every, label_update_every=label_update_every,
                               progress=progress, fidelity=fidelity)
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
        if not isinstance(distance, DatasetDistance):
            distance = DatasetDistance(**distance_settings(distance))
        self.distance = distance
        self.otdd_kwargs = dict(distance=distance, label_update_every=label_update_every, penalty=penalty)
        self.device = torch.device(device)
        self.dtype = DTYPES[dtype]
        self.progress = progress
        self.measure_fidelity = bool(fidelity)
        self.config = {k: plain(v) for k, v in dict(
            objective=objective if not isinstance(objective, Functional) else objective.name,
            labels=labels, step_size=step_size, optimizer=optimizer, steps=steps, tol=tol,
            patience=patience, momentum=momentum, label_step_size=label_step_size, clamp=clamp,
            max_grad_norm=max_grad_norm, seed=seed, distance=distance.settings(),
            label_update_every=label_update_every, penalty=penalty,
            correspondence=correspondence if not isinstance(correspondence, torch.Tensor)
            else correspondence.tolist(), dtype=dtype,
        ).items()}
        self.target = None
        self.terms: list[tuple[str, float, Functional]] | None = None
        if target is not None:
            self.set_target(target)

    # -- setup ------------------------------------------------------------------------------------

    def _check_xy(self, X, y, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(X (n, d), y (n,))`` on the flow's device and dtype, through :func:`otdata.data.as_labeled`
        (``X`` may be any dataset it accepts; uint8 images become intensities in [0, 1], as ``clamp``
        expects)."""
        data = as_labeled(X, y, name=what)
        if data.y is None:
            raise ValueError(f"the {what} dataset has no labels; a flow moves labeled datasets: pass "
                             "(X, y) or a dataset that yields (x, y)")
        return data.X.to(self.device, self.dtype), data.y.to(self.device)

    def _min_per_class(self) -> int:
        """Items a class needs: two for a gaussian label distance without a ridge (a covariance from
        one item is zero), one otherwise (means only, or a ridge that keeps every covariance
        positive definite)."""
        if self._uses("otdd") and self.distance.label_distance == "gaussian" and self.distance.ridge == 0:
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
                "sample more per class, use label_distance='means', or add a covariance ridge "
                "(distance.ridge > 0)")

    def _uses(self, name: str) -> bool:
        specs = self.objective if isinstance(self.objective, (list, tuple)) else [self.objective]
        for s in specs:
            n = s if isinstance(s, str) else getattr(s, "name", None) or (
                s.get("name") if hasattr(s, "get") else None)
            if n == name:
                return True
        return False

    def set_target(self, Xt, yt=None) -> "DatasetFlow":
        """Set the target dataset (``Xt, yt``, or one dataset :func:`otdata.data.as_labeled` accepts)
        and bind the objective terms to it (target stats computed once)."""
        Xt, yt = self._check_xy(Xt, yt, "target")
        self._check_classes(yt, "target")
        self.target = (Xt, yt)
        self._engine = None
        specs = self.objective if isinstance(self.objective, (list, tuple)) else [self.objective]
        self.terms = [build_functional(s, self.otdd_kwargs) for s in specs]
        for _, _, f in self.terms:
            f.bind(Xt, yt)
        return self

    def _otdd_term(self) -> OTDDFunctional | None:
        for _, _, f in self.terms or []:
            if isinstance(f, OTDDFunctional):
                return f
        return None

    def _coupling_engine(self) -> OTDDFunctional | None:
        """The OTDD whose coupling says where classes go: the objective's own OTDD term, else one
        with the flow's distance settings (``None`` when that distance cannot follow a moving
        source, e.g. ``label_distance="exact"``)."""
        f = self._otdd_term()
        if f is not None:
            return f
        if getattr(self, "_engine", None) is None:
            try:
                self._engine = OTDDFunctional(self.distance, **{k: v for k, v in self.otdd_kwargs.items()
                                                                if k != "distance"}).bind(*self.target)
            except ValueError:
                self._engine = False
        return self._engine or None

    def _label_distances(self, X, y) -> torch.Tensor:
        """``(C_src, C_tgt)`` label distances from ``(X, y)`` to the target (no grad)."""
        f = self._coupling_engine()
        if f is not None:
            return f.label_distances(X, y)
        d = self.distance
        return d.label_distances(d.prepare(X, y), d.prepare(*self.target))

    def _resolve_correspondence(self, X, y):
        spec = self.correspondence
        W = self._label_distances(X, y) if needs_label_distances(spec) else None
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

    def run(self, Xs, ys=None, target=None, resume: bool = False, on_step=None) -> FlowResult:
        """Flow the source ``(Xs, ys)`` toward ``target``; ``resume=True`` continues from
        ``checkpoint_dir``. Source and target are features and labels, or each one dataset
        :func:`otdata.data.as_labeled` accepts (``run(loader, target=(Xt, yt))``).
        ``on_step(step, steps, objective)`` is called after every step (a progress display); an
        exception it raises stops the flow and propagates (a cancel button)."""
        run = self._setup(Xs, ys, target, resume)
        rule = StepRule(self.step_size, self.label_step_size, self.max_grad_norm, self.clamp, self.tol,
                        self.patience)
        with progress.track("flow", self.steps, "step", done=run.step, enabled=self.progress) as bar:
            while run.step < self.steps and not run.converged:
                fval = take_step(run, self._objective, rule)
                if bar:
                    bar.advance(1, status=f"F={fval:.4g}")
                if on_step is not None:
                    on_step(run.step, self.steps, fval)
                if self.checkpoint_dir and self.checkpoint_every > 0 and (
                        run.step % self.checkpoint_every == 0 or run.converged or run.step == self.steps):
                    self._checkpoint(run)
        return self._finish(run)

    def _setup(self, Xs, ys, target, resume: bool) -> FlowRun:
        """Check the data, resolve the correspondence, build particles, optimizer and trajectory,
        and restore a checkpoint when resuming."""
        if target is not None:
            self.set_target(target)
        if self.target is None:
            raise ValueError("no target dataset: pass target=(Xt, yt) to DatasetFlow(...) or run()")
        Xs, ys = self._check_xy(Xs, ys, "source")
        check_same_space(Xs, self.target[0], ("source", "target"))
        self._check_classes(ys, "source")
        check_scales(Xs, self.target[0], ("source", "target"))
        corr = self._resolve_correspondence(Xs, ys)
        if corr is not None:
            self._check_classes(self.target[1], "target", declared=sorted(set(corr.values())))

        classes, yi, counts = class_index(ys)
        n = Xs.shape[0]
        gen = torch.Generator().manual_seed(self.seed)
        X0 = Xs.clone()
        X = Xs.clone().requires_grad_(True)
        params = [X]
        label_params = None
        if self.labels == "joint":
            label_params = self._init_label_params(X0, yi)
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

        state = FlowState(X=X, y=ys, yi=yi, classes=classes, counts=counts, labels=self.labels,
                          label_params=label_params, correspondence=corr, step=0, generator=gen)
        run = FlowRun(state=state, X0=X0, params=params, opt=opt, traj=traj,
                   class_scale=(n / counts.to(self.dtype)).tolist(),
                   fingerprint=fingerprint(Xs, ys, *self.target, self.config))
        if resume and self.checkpoint_dir and latest_checkpoint(self.checkpoint_dir) is not None:
            self._restore(run, load_checkpoint(self.checkpoint_dir))
        return run

    def _restore(self, run: FlowRun, ck: dict) -> None:
        """Continue from checkpoint ``ck`` (refused when it belongs to another flow)."""
        X = run.state.X
        check_fingerprint(ck.get("fingerprint"), run.fingerprint, ignore=("steps",),
                          where=f"the checkpoint in {self.checkpoint_dir}")
        with torch.no_grad():
            X.copy_(ck["X"])
            run.X0 = ck["X0"].to(run.X0)
            for p_, v in zip(run.params[1:], ck["label_params"] or []):
                p_.copy_(v)
        if run.opt is not None:
            run.opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"], run.state.generator)
        run.step, run.quiet = ck["step"], ck["quiet"]
        run.history = ck["history"]
        run.traj = Trajectory.from_state_dict(ck["trajectory"])
        run.state.correspondence = ck["correspondence"]
        for (_, _, f), sd in zip(self.terms, ck["objective_state"]):
            f.load_state_dict(sd)

    def _checkpoint(self, run: FlowRun) -> None:
        state = {
            "step": run.step, "quiet": run.quiet, "X": run.state.X.detach().cpu().clone(),
            "X0": run.X0.cpu(), "label_params": [v.detach().cpu().clone() for v in run.params[1:]],
            "optimizer": run.opt.state_dict() if run.opt is not None else None,
            "rng": rng_state(run.state.generator), "history": list(run.history),
            "trajectory": run.traj.state_dict(), "correspondence": run.state.correspondence,
            "config": self.config, "objective_state": [f.state_dict() for _, _, f in self.terms],
            "fingerprint": run.fingerprint,
        }
        save_checkpoint(self.checkpoint_dir, state, run.step, keep=self.keep_checkpoints)

    def _finish(self, run: FlowRun) -> FlowResult:
        """Evaluate the final particles and package the result."""
        state, X = run.state, run.state.X
        state.step = run.step
        run.traj.maybe_record(run.step, X, force=True)
        with torch.enable_grad():
            value, parts = self._objective(state)
        run.history.append({"step": run.step, "objective": float(value.detach()), **parts,
                            "grad_norm": None, "seconds": 0.0})
        lp_out = None
        if state.label_params is not None:
            lp = state.label_params
            lp_out = {"means": lp["means"].detach().cpu(),
                      "covs": torch.stack([(f.T @ f).detach().cpu() for f in lp["factors"]])}
        return FlowResult(
            X=X.detach().cpu(), y=state.y.cpu(), X0=run.X0.detach().cpu(), history=run.history,
            trajectory=run.traj.state_dict() if run.traj.every > 0 else None,
            correspondence=state.correspondence, label_params=lp_out, config=dict(self.config),
            steps_run=run.step, converged=run.converged, fidelity=self._fidelity(state))

    def _fidelity(self, state: FlowState) -> dict | None:
        """The final coupling's class fidelity (see :mod:`otdata.flows.fidelity`), with a warning
        when the flow sends part of a class into another; ``None`` when not measured."""
        if not self.measure_fidelity:
            return None
        engine = self._coupling_engine()
        if engine is None:
            log.info("class fidelity not measured: the flow's distance (label_distance=%r) has no "
                     "coupling for a moving source", self.distance.label_distance)
            return None
        try:
            mass, converged = engine.engine.class_mass(state)
        except ValueError as err:
            log.info("class fidelity not measured: %s", err)
            return None
        fid = class_fidelity(mass, state.classes, engine.engine.tclasses, state.correspondence, converged)
        warn_if_scrambled(fid)
        return fid.to_dict()

    # -- helpers ----------------------------------------------------------------------------------

    def _init_label_params(self, X, yi):
        """Initial ``"joint"`` parameters: the source class means and covariance factors."""
        with torch.no_grad():
            st = class_stats(X.detach(), yi, covariance="full", dtype=None)
        return {"means": st.means.clone().requires_grad_(True),
                "factors": [f.clone().requires_grad_(True) for f in st.factors]}

