import pytest
import torch

from otdata.ot.gaussian import (bures_cross_term, bures_cross_terms, bures_cross_terms_gram,
                                covariance_factor, padded_class_index)


def _factors(sizes, d, seed):
    g = torch.Generator().manual_seed(seed)
    X = [torch.randn(n, d, generator=g, dtype=torch.float64) * (1 + k) + k for k, n in enumerate(sizes)]
    return X, [covariance_factor(x)[0] for x in X]


def _safe_loop(F1, F2):
    # reference: the per-pair gradient-safe cross term (eigenvalues below 1e-10 max get no gradient)
    out = []
    for f1 in F1:
        row = []
        for f2 in F2:
            K = f1 @ f2.T
            G = K @ K.T if K.shape[0] <= K.shape[1] else K.T @ K
            w = torch.linalg.eigvalsh(0.5 * (G + G.T))
            floor = 1e-10 * w.detach().abs().max().clamp_min(1e-30)
            keep = w.detach() > floor
            row.append((torch.where(keep, w, floor).sqrt() * keep).sum())
        out.append(torch.stack(row))
    return torch.stack(out)


def test_padded_class_index():
    y = torch.tensor([2, 0, 2, 1, 0, 2])
    idx, cnt = padded_class_index(y, 3)
    assert cnt.tolist() == [2, 1, 3]
    assert idx.tolist() == [[1, 4, 6], [3, 6, 6], [0, 2, 5]]


@pytest.mark.parametrize("sizes1,sizes2", [([7, 5, 9], [6, 8]), ([4, 12], [12, 3, 5])])
def test_batched_equals_pair_loop(sizes1, sizes2):
    _, F1 = _factors(sizes1, 10, 0)
    _, F2 = _factors(sizes2, 10, 1)
    ref = torch.stack([torch.stack([bures_cross_term(a, b) for b in F2]) for a in F1])
    out = bures_cross_terms(F1, F2)
    assert torch.allclose(out, ref, rtol=1e-6, atol=1e-6)
    self_ref = torch.stack([torch.stack([bures_cross_term(a, b) for b in F1]) for a in F1])
    assert torch.allclose(bures_cross_terms(F1), self_ref, rtol=1e-6, atol=1e-6)


def test_gram_route_equals_factor_route():
    X1, F1 = _factors([7, 5, 9], 12, 2)
    X2, F2 = _factors([6, 8, 4], 12, 3)
    l1 = torch.repeat_interleave(torch.arange(3), torch.tensor([7, 5, 9]))
    l2 = torch.repeat_interleave(torch.arange(3), torch.tensor([6, 8, 4]))
    A, B = torch.cat(X1), torch.cat(X2)
    # shuffle rows: the Gram route takes labels, not contiguous classes
    p, q = torch.randperm(len(l1)), torch.randperm(len(l2))
    out = bures_cross_terms_gram(A[p] @ B[q].T, l1[p], 3, l2[q], 3)
    assert torch.allclose(out, bures_cross_terms(F1, F2), rtol=1e-6, atol=1e-6)
    out_s = bures_cross_terms_gram(A[p] @ A[p].T, l1[p], 3)
    assert torch.allclose(out_s, bures_cross_terms(F1), rtol=1e-6, atol=1e-6)


def test_safe_gradient_matches_pair_loop_and_finite_differences():
    _, F1 = _factors([6, 4, 5], 9, 4)
    _, F2 = _factors([5, 7], 9, 5)
    F1 = [f.clone().requires_grad_(True) for f in F1]
    wts = torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = bures_cross_terms(F1, F2, safe=True)
    ref = _safe_loop(F1, F2)
    assert torch.allclose(out, ref, rtol=1e-5, atol=1e-8)
    g = torch.autograd.grad((wts * out).sum(), F1)
    g_ref = torch.autograd.grad((wts * ref).sum(), F1)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)
    # finite differences along a centred direction (keeps the factor's rank: the nuclear norm is
    # not differentiable where a zero singular value would become nonzero)
    d = torch.randn_like(F1[1])
    d = d - d.mean(0)
    h = 1e-4
    with torch.no_grad():
        plus = [f.clone() for f in F1]
        minus = [f.clone() for f in F1]
        plus[1] += h * d
        minus[1] -= h * d
        # safe=True also drops the round-off eigenvalues (~1e-16), whose square roots would swamp the
        # difference quotient
        fd = ((wts * bures_cross_terms(plus, F2, safe=True)).sum()
              - (wts * bures_cross_terms(minus, F2, safe=True)).sum()) / (2 * h)
    assert abs(float((g[1] * d).sum()) - float(fd)) < 1e-5 * max(1.0, abs(float(fd)))


def test_safe_self_term_gradient_matches_pair_loop():
    _, F1 = _factors([6, 4, 5], 9, 6)
    F1 = [f.clone().requires_grad_(True) for f in F1]
    out = bures_cross_terms(F1, safe=True)
    ref = _safe_loop(F1, F1)
    iu = torch.triu_indices(3, 3, 1)
    assert torch.allclose(out[iu[0], iu[1]], ref[iu[0], iu[1]], rtol=1e-5)
    g = torch.autograd.grad(out[iu[0], iu[1]].sum(), F1)
    g_ref = torch.autograd.grad(ref[iu[0], iu[1]].sum(), F1)
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-8)


def test_chunked_pairs_give_the_same_values(monkeypatch):
    import otdata.ot.gaussian as gaussian

    _, F1 = _factors([7, 5, 9], 10, 7)
    _, F2 = _factors([6, 8], 10, 8)
    full, self_full = bures_cross_terms(F1, F2), bures_cross_terms(F1)
    monkeypatch.setattr(gaussian, "_BLOCK_ELEMENTS", 100)  # one pair per chunk
    assert torch.allclose(bures_cross_terms(F1, F2), full, rtol=1e-7, atol=1e-6)  # eigen round-off only
    assert torch.allclose(bures_cross_terms(F1), self_full, rtol=1e-7, atol=1e-6)


def test_pairs_are_batched_by_size_without_large_padding():
    from otdata.ot.gaussian import _size_chunks, _sort_by_size

    n1, n2 = torch.tensor([100, 30, 300, 32]), torch.tensor([31, 290, 105])
    pi, pj = _sort_by_size(torch.arange(4).repeat_interleave(3), torch.arange(3).repeat(4), n1, n2)
    s1, s2 = n1[pi].tolist(), n2[pj].tolist()
    chunks = list(_size_chunks(s1, s2))
    assert sum(k1 - k0 for k0, k1, _, _ in chunks) == 12
    for k0, k1, R, S in chunks:  # every pair's eigen-problem padded by at most 10 % (+8)
        assert R == max(s1[k0:k1]) and S == max(s2[k0:k1])
        assert all(min(R, S) <= 1.1 * min(a, b) + 8 for a, b in zip(s1[k0:k1], s2[k0:k1]))
