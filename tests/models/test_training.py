"""Fine-tuning pieces of :mod:`otdata.models.training`: a classifier started from pre-trained weights."""

from __future__ import annotations

import pytest
import torch

from otdata.models.training import build, transfer_weights


def test_transfer_weights_replaces_the_head_only_when_needed():
    cfg = {"_target_": "otdata.models.Classifier",
           "net": {"_target_": "otdata.models.MLP", "in_features": 1, "hidden": [8]}}
    X = torch.randn(5, 12)
    pre = build(cfg, 4, X)
    assert pre.net.in_features == 12
    same = build(cfg, 4, X)
    assert transfer_weights(pre, same) == []
    assert torch.equal(same.net.classifier.weight, pre.net.classifier.weight)
    reset = build(cfg, 4, X)
    assert transfer_weights(pre, reset, head="reset") == ["net.classifier.weight", "net.classifier.bias"]
    other = build(cfg, 2, X)
    assert transfer_weights(pre, other) == ["net.classifier.weight", "net.classifier.bias"]
    assert torch.equal(other.net.body[0].weight, pre.net.body[0].weight)
    with pytest.raises(ValueError):
        transfer_weights(pre, build(cfg, 2, X), head="keep")


def test_training_from_python_prints_no_vendor_adverts_or_srun_hint(tmp_path, capfd):
    """The Python API path (no CLI console setup) keeps Lightning's adverts and its `srun` hint
    (printed on any machine with SLURM installed) out of the user's output."""
    import warnings

    import torch

    from otdata.data.base import TensorDataModule
    from otdata.models import load_or_train_classifier

    X, y = torch.rand(40, 1, 28, 28), torch.arange(40) % 10
    dm = TensorDataModule("toy", {"train": (X, y), "test": (X, y)},
                          class_names=[str(i) for i in range(10)], image_size=28)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        load_or_train_classifier(dm, tmp_path / "c.ckpt", trainer={"max_epochs": 1},
                                 out_dir=tmp_path / "out")
    out, err = capfd.readouterr()
    assert "Tip:" not in out + err and "litlogger" not in (out + err).lower()
    assert not [w for w in caught if "srun" in str(w.message)]
