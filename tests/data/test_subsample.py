import pytest
import torch

from otdata.data import stratified_indices
from otdata.data.subsample import carve, disjoint_parts, per_class_indices


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


def test_carved_subtasks_share_no_rows():
    X = torch.arange(400, dtype=torch.float32)[:, None]  # the row index as the feature
    y = torch.arange(400) % 4
    names = ["World", "Sports", "Business", "Sci/Tech"]
    parts = disjoint_parts(y, 4)
    assert torch.bincount(parts).tolist() == [100] * 4
    specs = [dict(classes=None, part=0), dict(classes=[0, 1], part=2),
             dict(classes=[2, 3], part=2), dict(classes=[0, 2], part=3)]
    seen = []
    for spec in specs:
        (Xtr, ytr), (Xte, yte), kept = carve(X, y, names, parts=4, test_fraction=0.5, **spec)
        rows = set(Xtr.flatten().tolist()) | set(Xte.flatten().tolist())
        assert not set(Xtr.flatten().tolist()) & set(Xte.flatten().tolist())
        assert all(not rows & other for other in seen)
        seen.append(rows)
        k = len(kept)
        assert set(ytr.tolist()) == set(range(k)) and abs(len(yte) - len(ytr)) <= k  # half / half
    (_, ytr), _, kept = carve(X, y, names, classes=[2, 3], parts=4, part=2)
    assert kept == ["Business", "Sci/Tech"]
    with pytest.raises(ValueError):
        carve(X, y, names, classes=[5])


def test_per_class_indices_draws_k_of_every_class_the_same_way_each_time():
    y = torch.tensor([0] * 10 + [1] * 5 + [2] * 7)
    idx = per_class_indices(y, 4, seed=3)
    assert torch.bincount(y[idx]).tolist() == [4, 4, 4] and idx.equal(idx.sort().values)
    assert idx.equal(per_class_indices(y, 4, seed=3)) and not idx.equal(per_class_indices(y, 4, seed=4))
    assert len(per_class_indices(y, 5)) == 15


def test_per_class_indices_names_the_class_too_small_for_k():
    y = torch.tensor([0] * 10 + [1] * 5)
    with pytest.raises(ValueError, match="class 'one' has only 5 items; choose at most 5 per class"):
        per_class_indices(y, 6, class_names=["zero", "one"])
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            per_class_indices(y, bad)
