"""The distance-matrix cache: atomic writes, unreadable entries recomputed, pickles never run."""

from __future__ import annotations

import pytest
import torch

from otdata.distance import DatasetDistance
from otdata.distance.matrix import distance_matrix
from tests.fixtures import Payload


def _datasets():
    g = torch.Generator().manual_seed(0)
    return {k: (torch.randn(30, 4, generator=g) + i, torch.arange(30) % 2)
            for i, k in enumerate("ab")}


def _dd():
    return DatasetDistance(label_distance="means", epsilon=1.0)


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_a_result", "crafted", "value_a_string",
                                    "value_a_list", "divergence_a_string", "value_missing"])
def test_unreadable_entry_is_recomputed(damage, tmp_path):
    first = distance_matrix(_datasets(), _dd(), cache_dir=tmp_path)
    (entry,) = list(tmp_path.glob("otdd_*.pt"))
    marker = tmp_path / "pwned"
    if damage == "empty":
        entry.write_bytes(b"")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "not_a_result":
        torch.save([1, 2, 3], entry)
    elif damage == "value_a_string":
        torch.save({"value": "abc", "divergence": None}, entry)
    elif damage == "value_a_list":
        torch.save({"value": [1.0], "divergence": 0.5}, entry)
    elif damage == "divergence_a_string":
        torch.save({"value": 1.0, "divergence": "x"}, entry)
    elif damage == "value_missing":
        torch.save({"divergence": 0.5}, entry)
    else:
        torch.save({"value": Payload(marker), "divergence": None}, entry)
    again = distance_matrix(_datasets(), _dd(), cache_dir=tmp_path)
    assert again.cached[0][1] is False and torch.equal(again.values, first.values)
    assert not marker.exists()
    third = distance_matrix(_datasets(), _dd(), cache_dir=tmp_path)  # rewritten, readable again
    assert third.cached[0][1] is True and torch.equal(third.values, first.values)


def test_entries_are_written_atomically(tmp_path, monkeypatch):
    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("otdata.data.content_cache.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        distance_matrix(_datasets(), _dd(), cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a half-written entry nor a temporary file
