"""Checkpoints of a running flow, and the trajectory recorder.

A checkpoint holds everything the next step depends on — particles, label parameters (``"joint"``),
optimizer state, the flow's private random generator, the global torch/numpy/python RNG states,
the step counter, the history and the trajectory so far — so that a resumed run ends bit-identical
to an uninterrupted one on CPU (same seed, same configuration).

Files are written atomically (``*.tmp`` then rename) as ``step_{step:07d}.pt`` plus a copy
``last.pt``; only the newest ``keep`` step files are kept.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "latest_checkpoint", "rng_state", "set_rng_state",
           "Trajectory"]


def rng_state(generator: torch.Generator | None = None) -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict, generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def save_checkpoint(directory: str | Path, state: dict, step: int, keep: int = 2) -> Path:
    """Write ``state`` to ``directory/step_{step}.pt`` and ``directory/last.pt``; prune old ones."""
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


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint file (or the newest one in a directory)."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"no flow checkpoint (last.pt / step_*.pt) in {path}")
        path = found
    # checkpoints contain numpy RNG state and python tuples: not loadable with weights_only=True
    return torch.load(path, map_location="cpu", weights_only=False)


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
