"""Flow checkpoints: crafted pickles never run, a truncated last.pt falls back, fingerprints."""

from __future__ import annotations

import errno
import threading
from pathlib import Path

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


# -- checkpoints that load but are malformed; full disks; concurrent writers -----------------------

def _flow(ck, steps=2):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    flow = DatasetFlow(target=(Xt, yt), steps=steps, checkpoint_dir=str(ck), checkpoint_every=1, **KW)
    return flow, Xs, ys


def _malform(state, how):
    if how == "a list":
        return [state]
    state = dict(state)
    if how == "fingerprint a string":
        state["fingerprint"] = "abc"
    elif how == "X missing":
        del state["X"]
    elif how == "X mis-shaped":
        state["X"] = state["X"][:5]
    elif how == "step a string":
        state["step"] = "3"
    return state


MALFORMED = {"a list": "holds a list, not a flow checkpoint",
             "fingerprint a string": "'fingerprint' is a str, expected the digests",
             "X missing": "'X' is missing",
             "X mis-shaped": r"'X0' has shape \[60, 2\], 'X' \[5, 2\]",
             "step a string": "'step' is a str, expected the step counter"}


@pytest.mark.parametrize("how", list(MALFORMED))
def test_malformed_checkpoints_are_named_on_resume(how, tmp_path):
    flow, Xs, ys = _flow(tmp_path)
    flow.run(Xs, ys)
    files = sorted(tmp_path.glob("*.pt"))
    for f in files:  # every checkpoint damaged alike: nothing to fall back to
        torch.save(_malform(torch.load(f, weights_only=True), how), f)
    with pytest.raises(CheckpointError, match=rf"(?s)no flow checkpoint .* can be read.*"
                                              rf"{MALFORMED[how]}.*task.resume=false"):
        _flow(tmp_path, steps=3)[0].run(Xs, ys, resume=True)
    with pytest.raises(CheckpointError, match=MALFORMED[how]):
        load_checkpoint(files[0])


def test_a_malformed_last_pt_falls_back_to_the_newest_good_step(tmp_path, caplog):
    flow, Xs, ys = _flow(tmp_path)
    flow.run(Xs, ys)
    last = tmp_path / "last.pt"
    torch.save(_malform(torch.load(last, weights_only=True), "fingerprint a string"), last)
    state = load_checkpoint(tmp_path)
    assert state["step"] == 2 and "cannot be used" in caplog.text


def _disk_full(obj, f, *args, **kwargs):
    Path(f).write_bytes(b"PK\x03\x04 partial")  # what torch leaves when the device fills up
    raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed "
                       "writing file data/0: file write failed")


@pytest.mark.parametrize("error", ["torch", "oserror"])
def test_full_disk_during_a_checkpoint_says_space_and_leaves_no_temporary_file(error, tmp_path,
                                                                               monkeypatch):
    save_checkpoint(tmp_path, {"step": 1}, step=1)
    good = (tmp_path / "last.pt").read_bytes()

    def enospc(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", _disk_full if error == "torch" else enospc)
    with pytest.raises(CheckpointError, match=r"could not be written .* MiB are free on its device: "
                                              r"a full disk is the usual cause"):
        save_checkpoint(tmp_path, {"step": 2}, step=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_0000001.pt"]
    assert (tmp_path / "last.pt").read_bytes() == good  # the last complete checkpoint is kept


def test_two_writers_of_one_folder_do_not_remove_each_others_temporary_files(tmp_path):
    """The same flow started twice used to die with FileNotFoundError (one fixed temp name)."""
    errors = []

    def writer(k):
        try:
            for step in range(15):
                save_checkpoint(tmp_path, {"step": step, "writer": k}, step=step, keep=0)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    assert torch.load(tmp_path / "last.pt", weights_only=True)["step"] == 14
