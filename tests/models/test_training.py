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
