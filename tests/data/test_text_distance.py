"""OTDD between embedded text datasets (tiny generated CSVs, tiny random BERT)."""

from __future__ import annotations

import pytest
import torch

from otdata.data.text import AGNewsDataModule
from otdata.distance import otdd
from tests.data.conftest_text import make_ag_news, tiny_bert  # noqa: F401


@pytest.fixture(scope="module")
def text_sets(tmp_path_factory, tiny_bert):
    root = make_ag_news(tmp_path_factory.mktemp("ag"), train_per_class=15, test_per_class=15)
    dm = AGNewsDataModule(data_dir=root, encoder=str(tiny_bert), progress=False)
    return dm.tensors("train"), dm.tensors("test")


def test_text_otdd_self_is_zero_and_shuffled_labels_are_farther(text_sets):
    (X, y), (Xt, yt) = text_sets
    dd = otdd.DatasetDistance(label_distance="gaussian", p=2, epsilon=0.1, debiased=True)
    same = dd(X, y, X, y)
    other_split = dd(X, y, Xt, yt)
    shuffled = dd(X, y, X, y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))])
    assert abs(same.divergence) < 1e-3
    assert other_split.divergence > same.divergence
    assert shuffled.divergence > other_split.divergence
    assert shuffled.divergence > 10 * max(abs(same.divergence), 1e-4)
    assert shuffled.value > same.value
    # a consistent renaming of the classes changes nothing: labels are matched by their content
    renamed = dd(X, y, X, (y + 1) % 4)
    assert renamed.divergence == pytest.approx(same.divergence, abs=1e-3)
