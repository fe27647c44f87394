import torch

from otdata.data import stratified_indices


def test_keeps_class_proportions_and_every_class():
    y = torch.tensor([0] * 80 + [1] * 15 + [2] * 5)
    idx = stratified_indices(y, 20, seed=0)
    counts = torch.bincount(y[idx], minlength=3).tolist()
    assert len(idx) == 20 and counts == [16, 3, 1]
    assert len(set(idx.tolist())) == 20


def test_tiny_budget_still_gives_exact_count():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    for n in (1, 2, 3, 7):
        assert len(stratified_indices(y, n, seed=1)) == n


def test_all_when_budget_exceeds_size():
    y = torch.arange(10) % 2
    assert torch.equal(stratified_indices(y, 50), torch.arange(10))
