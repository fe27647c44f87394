"""Checkpoints of a running flow, their fingerprint, and the trajectory recorder.

A checkpoint holds everything the next step depends on — particles, label parameters (``"joint"``),
optimizer state, the flow's private random generator, the global torch/numpy/python RNG states,
the step counter, the history and the trajectory so far — so that a resumed run ends bit-identical
to an uninterrupted one on CPU (same seed, same configuration).

Safety: checkpoints hold plain data only (tensors, numbers, strings, ``None`` and lists, tuples and
dicts of them; ``save_checkpoint`` refuses anything else) and are read with
``torch.load(weights_only=True)``, so a crafted file cannot run code when a run resumes.

Files are written atomically (a temporary file named for the writing process, then a rename) as ``step_{step:07d}.pt`` plus a copy
``last.pt``; only the newest ``keep`` step files are kept. A ``last.pt`` that cannot be read (a
run killed while the disk was full, a truncated copy) falls back to the newest intact step file.

A *fingerprint* (:func:`fingerprint`) records digests of the source, the target and the settings;
:func:`check_fingerprint` refuses to resume a checkpoint written for other data or settings.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import pickle
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from otdata.distance import tensor_digest
from otdata.rng import rng_state, set_rng_state

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state",
           "fingerprint", "check_fingerprint", "check_flow_state", "CheckpointError", "CheckpointMismatchError",
           "Trajectory"]

log = logging.getLogger(__name__)

_PLAIN_SCALARS = (int, float, bool, str, type(None), torch.dtype, torch.device)


class CheckpointError(RuntimeError):
    """A flow checkpoint cannot be read, or holds something other than plain data."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint file holds objects other than plain data; it is never loaded."""


class CheckpointMismatchError(ValueError):
    """A checkpoint belongs to another flow: different source, target or settings."""


# -- plain-data check ---------------------------------------------------------------------------

def check_plain(obj, where: str = "state") -> None:
    """Raise ``TypeError`` naming the first entry that ``torch.load(weights_only=True)`` would
    refuse (anything but tensors, numbers, strings, ``None``, dtypes and lists/tuples/dicts)."""
    if isinstance(obj, (torch.Tensor, *_PLAIN_SCALARS)):
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, int | str):
                raise TypeError(f"{where} has a key of type {type(k).__name__}; use str or int keys")
            check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, list | tuple):  # torch.Size is a tuple
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__name__}; checkpoints store "
                    "only tensors, numbers, strings and lists/dicts of them")


# -- files --------------------------------------------------------------------------------------

def _atomic_save(obj, path: Path) -> None:
    """Write ``obj`` to a temporary file named for this process, then rename it onto ``path``.

    The temporary name is unique per process and call, so two runs writing the same folder never
    remove each other's file; whatever happens, no temporary file is left behind. A full disk is
    reported as such (torch's own error names only its zip writer)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if _write_failed(error):
            free = shutil.disk_usage(path.parent).free / 2**20
            raise CheckpointError(
                f"the flow checkpoint {path} could not be written ({error}); {free:.0f} MiB are "
                "free on its device: a full disk is the usual cause. Free some space (or set "
                "flow.checkpoint_every=0 to write none) and run again with task.resume=true: the "
                "last complete checkpoint is kept.") from error
        raise


def _write_failed(error: BaseException | None) -> bool:
    """Whether ``error`` (or one it came from) is a failed write: a full disk or quota, or torch's
    zip writer failing ("PytorchStreamWriter failed writing file ...")."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            return True
        if "failed writing file" in str(error) or "file write failed" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def save_checkpoint(directory: str | Path, state: dict, step: int, keep: int = 2) -> Path:
    """Write ``state`` to ``directory/step_{step}.pt`` and ``directory/last.pt``; prune old ones.

    ``state`` must be plain data (see :func:`check_plain`), so that it loads with
    ``weights_only=True``."""
    check_plain(state, "checkpoint state")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"step_{step:07d}.pt"
    _atomic_save(state, path)
    _atomic_save(state, directory / "last.pt")
    if keep is not None and keep > 0:
        old = sorted(directory.glob("step_*.pt"))[:-keep]
        for p in old:
            p.unlink(missing_ok=True)
    return path


def latest_checkpoint(directory: str | Path) -> Path | None:
    directory = Path(directory)
    if (directory / "last.pt").exists():
        return directory / "last.pt"
    steps = sorted(directory.glob("step_*.pt"))
    return steps[-1] if steps else None


def _load_file(path: Path) -> dict:
    """``torch.load(weights_only=True)``; an unsafe payload is refused, never run."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise UnsafeCheckpointError(
                f"{path} holds objects other than tensors and plain data; it was not written by "
                "otdata and is not loaded (loading it could run code). Delete it, or resume from a "
                "run folder whose checkpoints otdata wrote."
            ) from error
        raise


#: What a flow checkpoint holds: key -> (accepted types, description for errors).
_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "step": ((int,), "the step counter (an integer >= 0)"),
    "quiet": ((int,), "the count of quiet steps (an integer >= 0)"),
    "X": ((torch.Tensor,), "the particles (a 2-D float tensor)"),
    "X0": ((torch.Tensor,), "the initial particles (a tensor shaped like X)"),
    "label_params": ((list, tuple, type(None)), "the label parameters (a list of tensors)"),
    "optimizer": ((dict, type(None)), "the optimizer state (a dict or None)"),
    "rng": ((dict,), "the random generator states (a dict)"),
    "history": ((list,), "the objective history (a list of dicts)"),
    "trajectory": ((dict, type(None)), "the trajectory recorder (a dict)"),
    "objective_state": ((list, tuple), "the objective terms' states (a list)"),
    "fingerprint": ((dict,), "the digests of the data and settings (a dict)"),
}
_FINGERPRINT = {"source": str, "target": str, "config": str, "source_shape": list,
                "target_shape": list, "settings": dict}


def check_flow_state(state, where: str = "the checkpoint") -> dict:
    """Return ``state`` if it has the shape of a flow checkpoint; else raise
    :class:`CheckpointError` naming every key that is missing or of the wrong type."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} holds a {type(state).__name__}, not a flow checkpoint "
                              "(a dict of the flow's state)")
    problems = []
    for key, (types, what) in _SCHEMA.items():
        if key not in state:
            problems.append(f"{key!r} is missing ({what})")
        elif not isinstance(state[key], types) or isinstance(state[key], bool):
            problems.append(f"{key!r} is a {type(state[key]).__name__}, expected {what}")
    if not problems:
        problems = _check_values(state)
    if problems:
        raise CheckpointError(f"{where} is not a valid flow checkpoint: " + "; ".join(problems))
    return state


def _check_values(state: dict) -> list[str]:
    problems = []
    if state["step"] < 0 or state["quiet"] < 0:
        problems.append(f"'step'/'quiet' are negative ({state['step']}, {state['quiet']})")
    X, X0 = state["X"], state["X0"]
    if X.ndim != 2 or not X.is_floating_point():
        problems.append(f"'X' has shape {list(X.shape)} and dtype {X.dtype}, expected a 2-D float tensor")
    elif X0.shape != X.shape:
        problems.append(f"'X0' has shape {list(X0.shape)}, 'X' {list(X.shape)}")
    fp = state["fingerprint"]
    for key, kind in _FINGERPRINT.items():
        if not isinstance(fp.get(key), kind):
            problems.append(f"fingerprint[{key!r}] is a {type(fp.get(key)).__name__}, expected a "
                            f"{kind.__name__}")
    if not problems and list(X.shape) != fp["source_shape"]:
        problems.append(f"'X' has shape {list(X.shape)}, its fingerprint says {fp['source_shape']}")
    if not all(isinstance(h, dict) for h in state["history"]):
        problems.append("'history' holds entries that are not dicts")
    return problems


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file, or the newest readable one in a directory.

    In a directory, ``last.pt`` is tried first, then the ``step_*.pt`` files from the newest; an
    unreadable file (truncated, empty) or one that loads but is not a flow checkpoint (a key missing
    or of the wrong type, :func:`check_flow_state`) is skipped with a warning. A file with a
    non-plain payload raises :class:`UnsafeCheckpointError` (nothing in it is run)."""
    path = Path(path)
    if not path.is_dir():
        try:
            return check_flow_state(_load_file(path), f"flow checkpoint {path}")
        except CheckpointError:
            raise
        except Exception as error:
            raise CheckpointError(f"flow checkpoint {path} cannot be read ({error}).") from error
    candidates = [path / "last.pt"] if (path / "last.pt").exists() else []
    candidates += sorted(path.glob("step_*.pt"), reverse=True)
    if not candidates:
        raise FileNotFoundError(f"no flow checkpoint (last.pt / step_*.pt) in {path}")
    problems = []
    for file in candidates:
        try:
            state = check_flow_state(_load_file(file), file.name)
        except UnsafeCheckpointError:
            raise
        except Exception as error:  # truncated, empty or malformed: try an older one
            problems.append(f"{file.name}: {type(error).__name__}: {error}")
            log.warning("Flow checkpoint %s cannot be used (%s); trying an older one.", file, error)
            continue
        if problems:
            log.warning("Resuming from %s.", file)
        return state
    raise CheckpointError(
        f"no flow checkpoint in {path} can be read:\n  " + "\n  ".join(problems)
        + "\nStart afresh (task.resume=false) or in a new run folder.")


# -- fingerprint --------------------------------------------------------------------------------

def fingerprint(source_X: torch.Tensor, source_y: torch.Tensor, target_X: torch.Tensor,
                target_y: torch.Tensor, config: Mapping) -> dict:
    """Digests (sha256 of dtype, shape and bytes) of the source and target datasets and of
    ``config`` (plain settings), plus their shapes and the config itself for error messages."""
    config = json.loads(json.dumps(dict(config), sort_keys=True, default=str))
    return {
        "source": tensor_digest(source_X, source_y), "source_shape": list(source_X.shape),
        "target": tensor_digest(target_X, target_y), "target_shape": list(target_X.shape),
        "config": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "settings": config,
    }


def check_fingerprint(saved: Mapping | None, current: Mapping, ignore: Iterable[str] = ("steps",),
                      where: str = "the checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` naming what differs between a checkpoint's
    fingerprint and the current run's (settings in ``ignore``, e.g. the step budget, may differ)."""
    if saved is None:
        raise CheckpointMismatchError(
            f"{where} has no fingerprint of its data (written by an older otdata); it cannot be "
            "checked against this run. Start afresh (task.resume=false) or in a new run folder.")
    problems = []
    for side in ("source", "target"):
        if saved.get(side) != current[side]:
            shapes = (saved.get(f"{side}_shape"), current[f"{side}_shape"])
            what = f"shape {shapes[0]} vs {shapes[1]}" if shapes[0] != shapes[1] \
                else f"same shape {shapes[1]}, other values"
            problems.append(f"the {side} dataset differs ({what})")
    ignore = set(ignore)
    old, new = dict(saved.get("settings") or {}), dict(current.get("settings") or {})
    changed = sorted(k for k in set(old) | set(new) if k not in ignore and old.get(k) != new.get(k))
    problems += [f"setting {k!r}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now"
                 for k in changed]
    if problems:
        raise CheckpointMismatchError(
            f"{where} belongs to a different flow: " + "; ".join(problems) + ". Resume only with the "
            "same data and settings (the step budget may change), or start afresh "
            "(task.resume=false) or in a new run folder.")


class Trajectory:
    """Records a fixed subsample of particles every ``every`` steps.

    ``indices`` are the particle rows kept (``None`` = all). ``steps`` lists the recorded step
    numbers (step 0 = the initial particles) and ``frames`` a ``(T, m, d)`` tensor (float32, CPU).
    """

    def __init__(self, every: int = 0, indices: torch.Tensor | None = None):
        self.every = int(every or 0)
        self.indices = indices
        self.steps: list[int] = []
        self._frames: list[torch.Tensor] = []

    def maybe_record(self, step: int, X: torch.Tensor, force: bool = False) -> None:
        if self.every <= 0:
            return
        if self.steps and self.steps[-1] == step:
            return
        if force or step % self.every == 0:
            x = X.detach()
            if self.indices is not None:
                x = x[self.indices]
            self._frames.append(x.to("cpu", torch.float32).clone())
            self.steps.append(int(step))

    @property
    def frames(self) -> torch.Tensor | None:
        return torch.stack(self._frames) if self._frames else None

    def state_dict(self) -> dict:
        return {"every": self.every, "indices": self.indices, "steps": list(self.steps),
                "frames": self.frames}

    @classmethod
    def from_state_dict(cls, sd: dict | None) -> "Trajectory":
        if sd is None:
            return cls(0)
        t = cls(sd["every"], sd["indices"])
        t.steps = list(sd["steps"])
        if sd["frames"] is not None:
            t._frames = list(sd["frames"].unbind(0))
        return t
