"""task=train: a killed run resumed from its last.ckpt ends with the same weights and numbers as an
uninterrupted run, and two runs with one seed give the same weights."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import otdata.tasks.train as train_task
from tests.fixtures import Payload, compose_config

OVERRIDES = ["model.net.channels=[4,8]", "model.net.hidden=16", "trainer.max_epochs=3",
             "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
             "+trainer.enable_model_summary=false", "logger=none", "data.batch_size=16"]


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(data_root, out, *extra):
    return compose_config(["task=train", f"paths.data_dir={data_root}", *OVERRIDES, *extra], out)


class Kill(Callback):
    """Stands in for a killed process: fails as the second epoch starts (epoch 1 is saved)."""

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("killed")


def _weights(out):
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def _numbers(out):
    record = json.loads((out / "metrics.json").read_text())
    return record["test_acc"], record["test_loss"], record["best_val_acc"], record["epochs"]


def test_kill_and_resume_equals_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
    full = tmp_path / "full"
    train_task.run(_cfg(data_root, full))

    killed = tmp_path / "killed"
    original = train_task.instantiate_callbacks
    monkeypatch.setattr(train_task, "instantiate_callbacks", lambda cfg: [*original(cfg), Kill()])
    with pytest.raises(RuntimeError, match="killed"):
        train_task.run(_cfg(data_root, killed))
    assert (killed / "checkpoints" / "last.ckpt").is_file() and not (killed / "metrics.json").exists()
    monkeypatch.setattr(train_task, "instantiate_callbacks", original)
    train_task.run(_cfg(data_root, killed, "task.resume=true"))

    assert _numbers(killed) == _numbers(full)
    a, b = _weights(full), _weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights(data_root, tmp_path):
    for name in ("a", "b"):
        train_task.run(_cfg(data_root, tmp_path / name, "trainer.max_epochs=1"))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert _numbers(tmp_path / "a") == _numbers(tmp_path / "b")


def test_resume_without_a_checkpoint_trains_from_the_start(data_root, tmp_path, caplog):
    train_task.run(_cfg(data_root, tmp_path, "trainer.max_epochs=1", "task.resume=true"))
    assert "does not exist: training from the start" in caplog.text
    assert (tmp_path / "metrics.json").is_file()


def test_crafted_last_ckpt_is_not_run_on_resume(data_root, tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "checkpoints").mkdir()
    torch.save({"state_dict": Payload(marker)}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(Exception, match="Weights only load failed"):
        train_task.run(_cfg(data_root, tmp_path, "trainer.max_epochs=1", "task.resume=true"))
    assert not marker.exists()
