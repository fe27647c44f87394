"""Flow checkpoints: crafted pickles never run, a truncated last.pt falls back, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flowtoy import gaussians
from otdata.flows import DatasetFlow
from otdata.flows.checkpoint import (CheckpointError, CheckpointMismatchError, check_fingerprint,
                                     fingerprint, load_checkpoint, save_checkpoint)
from tests.fixtures import Payload

SRC = [[0.0, 0.0], [0.0, 3.0]]
TGT = [[4.0, 0.0], [4.0, 3.0]]
KW = dict(step_size=0.05, progress=False, seed=3, distance={"epsilon": 0.5, "relative": False})


def _crafted(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"step": 1, "X": Payload(marker)}, path)


def test_crafted_last_pt_is_refused_on_resume(tmp_path):
    marker = tmp_path / "pwned"
    ck = tmp_path / "run" / "checkpoints"
    _crafted(ck / "last.pt", marker)
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    flow = DatasetFlow(target=(Xt, yt), steps=2, checkpoint_dir=str(ck), checkpoint_every=1, **KW)
    with pytest.raises(CheckpointError, match="not loaded"):
        flow.run(Xs, ys, resume=True)
    assert not marker.exists()


def test_crafted_file_is_refused_by_load_checkpoint(tmp_path):
    marker = tmp_path / "pwned"
    _crafted(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_non_plain_state_is_not_written(tmp_path):
    with pytest.raises(TypeError, match=r"\['rng'\]\['numpy'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path, {"rng": {"numpy": np.zeros(3)}}, step=1)
    assert not list(tmp_path.glob("*.pt"))


def test_truncated_last_pt_falls_back_to_newest_step_and_resumes_exactly(tmp_path):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    full = DatasetFlow(target=(Xt, yt), steps=8, **KW).run(Xs, ys)
    ck = tmp_path / "ck"
    DatasetFlow(target=(Xt, yt), steps=6, checkpoint_dir=str(ck), checkpoint_every=3, **KW).run(Xs, ys)
    last = ck / "last.pt"
    last.write_bytes(last.read_bytes()[:200])  # killed mid-copy
    resumed = DatasetFlow(target=(Xt, yt), steps=8, checkpoint_dir=str(ck), checkpoint_every=3,
                          **KW).run(Xs, ys, resume=True)
    assert torch.equal(resumed.X, full.X)


def test_every_checkpoint_unreadable_is_a_clear_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "step_0000003.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match=r"(?s)no flow checkpoint .* can be read.*task.resume=false"):
        load_checkpoint(tmp_path)


def test_checkpoints_load_with_weights_only(tmp_path):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    DatasetFlow(target=(Xt, yt), steps=2, checkpoint_dir=str(tmp_path), checkpoint_every=1,
                optimizer="adam", **KW).run(Xs, ys)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["X"].shape == Xs.shape


def _fp(Xs, ys, Xt, yt, **settings):
    return fingerprint(Xs, ys, Xt, yt, {"epsilon": 0.5, "steps": 10, **settings})


def test_fingerprint_names_what_differs():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    saved = _fp(Xs, ys, Xt, yt)
    check_fingerprint(saved, _fp(Xs, ys, Xt, yt, steps=20))  # only the budget changed: fine
    Xt2, yt2 = gaussians(TGT, seed=2)  # another target sample (target.seed=1)
    with pytest.raises(CheckpointMismatchError, match=r"the target dataset differs \(same shape"):
        check_fingerprint(saved, _fp(Xs, ys, Xt2, yt2))
    with pytest.raises(CheckpointMismatchError, match=r"the target dataset differs \(shape \[60, 2\] "
                                                      r"vs \[40, 2\]\)"):
        check_fingerprint(saved, _fp(Xs, ys, Xt[:40], yt[:40]))
    with pytest.raises(CheckpointMismatchError, match=r"the source dataset differs"):
        check_fingerprint(saved, _fp(Xs + 1e-3, ys, Xt, yt))
    with pytest.raises(CheckpointMismatchError, match=r"setting 'epsilon': 0.5 in the checkpoint, 1.0"):
        check_fingerprint(saved, _fp(Xs, ys, Xt, yt, epsilon=1.0))
    with pytest.raises(CheckpointMismatchError, match="no fingerprint"):
        check_fingerprint(None, saved)
