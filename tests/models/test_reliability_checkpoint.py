"""A crafted classifier checkpoint (`task.classifier_ckpt=evil.ckpt`) cannot make otdata build
anything but an allowed network."""

from __future__ import annotations

import pytest
import torch

from otdata.instantiate import UnsafeTargetError
from otdata.models import Classifier, SmallCNN


def test_crafted_net_config_in_a_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    model = Classifier(net=SmallCNN(channels=[4, 8], hidden=16))
    path = tmp_path / "evil.ckpt"
    ckpt = {"state_dict": model.state_dict(), "pytorch-lightning_version": "2.6.0",
            "hyper_parameters": {**dict(model.hparams),
                                 "net_config": {"_target_": "builtins.open", "file": str(marker),
                                                "mode": "w"}}}
    torch.save(ckpt, path)
    with pytest.raises(UnsafeTargetError, match="builtins.open"):
        Classifier.load_from_checkpoint(path)
    assert not marker.exists()


def test_genuine_checkpoint_still_loads(tmp_path):
    model = Classifier(net=SmallCNN(channels=[4, 8], hidden=16))
    path = tmp_path / "ok.ckpt"
    torch.save({"state_dict": model.state_dict(), "pytorch-lightning_version": "2.6.0",
                "hyper_parameters": dict(model.hparams)}, path)
    loaded = Classifier.load_from_checkpoint(path)
    assert list(loaded.net.init_args["channels"]) == [4, 8]
