import json

import pytest
import torch

from otdata.distance import DatasetDistance, class_stats, distance_matrix
from otdata.ot import emd2, sinkhorn, sqeuclidean


def _data(n1=40, n2=30, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X1 = torch.randn(n1, d, generator=g, dtype=torch.float64)
    y1 = torch.arange(n1) % 3 * 7  # labels 0, 7, 14
    X2 = torch.randn(n2, d, generator=g, dtype=torch.float64) + 0.5
    y2 = torch.arange(n2) % 2 + 100  # labels 100, 101
    return X1, y1, X2, y2


@pytest.mark.parametrize("label_distance", ["gaussian", "means", "exact"])
def test_matches_emd_on_joint_cost(label_distance):
    X1, y1, X2, y2 = _data()
    dd = DatasetDistance(label_distance=label_distance, relative=False, epsilon=0.02, debiased=False, lambda_x=1.0, lambda_y=0.5,
                         tol=1e-5, max_iter=3000)
    r = dd(X1, y1, X2, y2)
    assert r.label_distances.shape == (3, 2)
    C = sqeuclidean(X1, X2) + 0.5 * r.label_distances[(torch.arange(40) % 3)][:, torch.arange(30) % 2]
    assert r.value == pytest.approx(emd2(C), rel=1e-2)


def test_label_distances_gaussian_reference():
    X1, y1, X2, y2 = _data()
    r = DatasetDistance(relative=False, epsilon=0.1)(X1, y1, X2, y2)
    from otdata.ot import bures_wasserstein
    ref = bures_wasserstein(torch.stack([X1[y1 == c].mean(0) for c in (0, 7, 14)]),
                            torch.stack([torch.cov(X1[y1 == c].T, correction=0) for c in (0, 7, 14)]),
                            torch.stack([X2[y2 == c].mean(0) for c in (100, 101)]),
                            torch.stack([torch.cov(X2[y2 == c].T, correction=0) for c in (100, 101)]))
    assert torch.allclose(r.label_distances, ref, rtol=1e-6)
    assert r.class_names1 == ["0", "7", "14"] and r.class_names2 == ["100", "101"]


def test_self_divergence_zero_and_symmetry():
    X1, y1, X2, y2 = _data()
    dd = DatasetDistance(relative=False, epsilon=0.1, tol=1e-7)
    assert abs(dd(X1, y1, X1, y1).divergence) < 1e-4
    a, b = dd(X1, y1, X2, y2), dd(X2, y2, X1, y1)
    assert a.divergence == pytest.approx(b.divergence, rel=1e-4)
    assert a.value == pytest.approx(b.value, rel=1e-4)


def test_no_labels_is_plain_ot():
    X1, _, X2, _ = _data()
    r = DatasetDistance(relative=False, epsilon=0.05, debiased=False, tol=1e-8)(X1, None, X2, None)
    ref = sinkhorn(None, None, sqeuclidean(X1, X2), 0.05, tol=1e-8)
    assert r.value == pytest.approx(float(ref.transport_cost), rel=1e-6)
    assert r.label_distances is None


def test_gradient_and_prepared_target():
    X1, y1, X2, y2 = _data()
    dd = DatasetDistance(relative=False, epsilon=0.2, tol=1e-8)
    tgt = dd.prepare(X2, y2, class_names=["a", "b"])
    X = X1.clone().requires_grad_(True)
    r = dd(X, y1, tgt)
    r.loss.backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    r2 = dd(X1, y1, X2, y2)
    assert r.divergence == pytest.approx(r2.divergence, rel=1e-8) and r.class_names2 == ["a", "b"]
    # label_grad=True: gradients also through the class statistics -> different gradient
    X.grad = None
    dd_l = DatasetDistance(relative=False, epsilon=0.2, tol=1e-8, label_grad=True)
    dd_l(X, y1, dd_l.prepare(X2, y2)).loss.backward()
    assert not torch.allclose(X.grad, torch.zeros_like(X.grad))


def test_label_grad_finite_differences():
    X1, y1, X2, y2 = _data(12, 10, 2)
    dd = DatasetDistance(relative=False, epsilon=0.5, tol=1e-11, max_iter=20000, label_grad=True, debiased=False)
    X = X1.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(dd(X, y1, X2, y2).loss, X)
    h = 1e-6
    Xp, Xm = X1.clone(), X1.clone()
    Xp[2, 1] += h
    Xm[2, 1] -= h
    fd = (dd(Xp, y1, X2, y2).entropic - dd(Xm, y1, X2, y2).entropic) / (2 * h)
    assert float(g[2, 1]) == pytest.approx(fd, rel=1e-4)


def test_result_api():
    X1, y1, X2, y2 = _data()
    r = DatasetDistance(relative=False, epsilon=0.1)(X1, y1, X2, y2)
    assert r.coupling().shape == (40, 30)
    idx, w = r.correspondences(k=2)
    assert idx.shape == (40, 2)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["n1"] == 40 and d["n2"] == 30 and d["value"] == r.value


def test_class_stats():
    X1, y1, _, _ = _data()
    s = class_stats(X1, y1)
    assert s.counts.tolist() == [14, 13, 13]
    assert torch.allclose(s.covariances[1], torch.cov(X1[y1 == 7].T, correction=0), atol=1e-10)
    assert torch.allclose(s.means[2], X1[y1 == 14].mean(0))


def test_distance_matrix_cache(tmp_path):
    X1, y1, X2, y2 = _data()
    sets = {"a": (X1, y1), "b": (X2, y2), "c": (X1[:20], y1[:20])}
    dd = DatasetDistance(label_distance="means", relative=False, epsilon=0.1)
    m1 = distance_matrix(sets, dd, cache_dir=tmp_path)
    m2 = distance_matrix(sets, dd, cache_dir=tmp_path)
    assert torch.equal(m1.values, m2.values) and m2.cached[0][1] and not m1.cached[0][1]
    assert m1.values[0, 1] == pytest.approx(dd(X1, y1, X2, y2).value)


@pytest.mark.parametrize("label_distance", ["exact", "gaussian"])
def test_self_label_distances_computed_once_per_dataset(label_distance, monkeypatch):
    """A prepared dataset's self-term label distances are computed once, however many pairs (each
    at its own epsilon) it takes part in, and the divergences equal uncached ones."""
    X1, y1, X2, y2 = _data()
    dd = DatasetDistance(label_distance=label_distance, tol=1e-6, max_iter=5000)
    a, b, c = dd.prepare(X1, y1), dd.prepare(X2, y2), dd.prepare(X1[:20] + 1.0, y1[:20])
    self_calls = []
    real = dd.label_distances
    monkeypatch.setattr(dd, "label_distances", lambda u, v: (self_calls.append(u is v) or True) and real(u, v))
    d_ab, d_ac = dd(a, b).divergence, dd(a, c).divergence
    assert self_calls.count(True) == 3  # a once (not twice), b once, c once
    monkeypatch.undo()
    assert d_ab == pytest.approx(dd(X1, y1, X2, y2).divergence, rel=1e-6)
    assert d_ac == pytest.approx(dd(X1, y1, X1[:20] + 1.0, y1[:20]).divergence, rel=1e-6)


def test_errors():
    X1, y1, X2, y2 = _data()
    dd = DatasetDistance(relative=False, epsilon=0.1)
    bad = X1.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        dd(bad, y1, X2, y2)
    with pytest.raises(ValueError, match="empty"):
        dd(X1[:0], y1[:0], X2, y2)
    with pytest.raises(ValueError, match="means"):
        dd(X1, torch.cat([y1[:-1], torch.tensor([99])]), X2, y2)
    with pytest.raises(ValueError, match="dimension"):
        dd(X1, y1, X2[:, :2], y2)
    with pytest.raises(TypeError, match="integer"):
        dd(X1, y1.double(), X2, y2)
    with pytest.raises(ValueError, match="labels"):
        dd(X1, y1[:-1], X2, y2)
    with pytest.raises(ValueError):
        DatasetDistance(label_distance="wasserstein")
    # ridge makes a one-sample class usable
    DatasetDistance(relative=False, epsilon=0.1, ridge=1e-3)(X1, torch.cat([y1[:-1], torch.tensor([99])]), X2, y2)
