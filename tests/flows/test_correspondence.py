import pytest
import torch

from otdata.flows import correspondence_matrix, match_classes, resolve_correspondence


def test_hungarian_recovers_permutation():
    perm = [3, 0, 2, 1]
    W = torch.full((4, 4), 5.0)
    for i, j in enumerate(perm):
        W[i, j] = 0.1
    W[0, 0] = 0.05  # greedy row-wise choice would be fine here, but the assignment must be 1-1
    W[1, 3] = 0.2
    corr = match_classes(W, method="hungarian")
    assert corr == {0: 3, 1: 0, 2: 2, 3: 1} or len(set(corr.values())) == 4
    assert len(set(corr.values())) == 4


def test_labels_are_values_not_positions():
    W = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert match_classes(W, [3, 7], [10, 20]) == {3: 20, 7: 10}


def test_more_source_than_target_classes_balanced_and_nearest():
    torch.manual_seed(0)
    W = torch.rand(26, 10)
    W[:, 0] -= 1.0  # every letter is nearest to digit 0
    near = match_classes(W, method="nearest")
    assert set(near.values()) == {0}
    bal = match_classes(W)  # auto -> balanced
    counts = torch.bincount(torch.tensor(list(bal.values())), minlength=10)
    assert counts.min() >= 2 and counts.max() <= 3 and counts.sum() == 26
    with pytest.raises(ValueError, match="balanced"):
        match_classes(W, method="hungarian")


def test_resolve_specs():
    assert resolve_correspondence(None, [0, 1], [0, 1]) is None
    assert resolve_correspondence("identity", [0, 1], [0, 1, 2]) == {0: 0, 1: 1}
    assert resolve_correspondence({"0": 1, "1": 0}, [0, 1], [0, 1]) == {0: 1, 1: 0}
    assert resolve_correspondence([2, 0], [4, 5], [0, 2]) == {4: 2, 5: 0}
    with pytest.raises(ValueError, match="no target for source"):
        resolve_correspondence({0: 1}, [0, 1], [0, 1])
    with pytest.raises(ValueError, match="does not have"):
        resolve_correspondence("identity", [0, 5], [0, 1])
    with pytest.raises(ValueError, match="label-distance matrix"):
        resolve_correspondence("auto", [0, 1], [0, 1])
    M = correspondence_matrix({4: 2, 5: 0}, [4, 5], [0, 2])
    assert M.tolist() == [[0.0, 1.0], [1.0, 0.0]]
