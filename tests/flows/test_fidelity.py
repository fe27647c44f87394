"""Class fidelity (otdata.flows.fidelity): the default flow keeps every class when class proportions
differ; free matching is reported as scrambling, with a warning that names the classes."""

import warnings

import pytest
import torch

from otdata.flows import DatasetFlow
from otdata.flows.fidelity import ClassFidelityWarning, class_fidelity

# three well separated classes; the source holds 3x as many of class 0 as of the others
SRC = [[0.0, 0.0], [0.0, 4.0], [4.0, 0.0]]
TGT = [[1.0, 1.0], [1.0, 5.0], [5.0, 1.0]]
DK = {"epsilon": 0.05, "relative": False}


def skewed(means, counts, seed):
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.randn(n, 2, generator=g) * 0.3 + torch.tensor(m) for m, n in zip(means, counts)])
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return X, y


@pytest.fixture(scope="module")
def data():
    return skewed(SRC, (60, 20, 20), 0), skewed(TGT, (30, 30, 30), 1)


def nearest_target_class(X, Xt, yt):
    """Label of each particle's nearest target item: which class region it ended in."""
    return yt[torch.cdist(X, Xt).argmin(1)]


def test_default_flow_keeps_every_class(data):
    (Xs, ys), (Xt, yt) = data
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClassFidelityWarning)
        r = DatasetFlow(target=(Xt, yt), distance=DK, progress=False).run(Xs, ys)
    assert r.correspondence == {0: 0, 1: 1, 2: 2}
    fid = r.class_fidelity
    assert fid.matching == "correspondence"
    assert torch.diagonal(fid.mass).min() >= 0.99
    assert fid.keeps_classes and fid.overall >= 0.99
    # independent check: the particles ended in their own class's region of the target
    assert (nearest_target_class(r.X, Xt, yt) == ys).float().mean() >= 0.99


def test_free_matching_is_reported_as_scrambling(data):
    (Xs, ys), (Xt, yt) = data
    with pytest.warns(ClassFidelityWarning, match=r"of 0 → [12]"):
        r = DatasetFlow(target=(Xt, yt), distance=DK, correspondence=None, progress=False).run(Xs, ys)
    fid = r.class_fidelity
    assert fid.matching == "implied"
    assert not fid.keeps_classes
    # a balanced coupling sends class 0's surplus (60 of 100 particles onto a third of the target)
    # into the other classes: about half of class 0 leaves
    assert fid.per_class[0] < 0.7
    assert (nearest_target_class(r.X, Xt, yt) == ys).float().mean() < 0.9


def test_fidelity_survives_save_and_load(tmp_path, data):
    (Xs, ys), (Xt, yt) = data
    r = DatasetFlow(target=(Xt, yt), distance=DK, steps=3, progress=False).run(Xs, ys)
    r.save(tmp_path / "flow.pt")
    from otdata.flows import FlowResult

    back = FlowResult.load(tmp_path / "flow.pt").class_fidelity
    assert back.per_class == r.class_fidelity.per_class
    assert torch.equal(back.mass, r.class_fidelity.mass)


def test_class_fidelity_from_a_mass_matrix():
    mass = torch.tensor([[0.3, 0.1], [0.0, 0.6]])
    f = class_fidelity(mass, [4, 7], [0, 1])  # implied matching keeps the most mass: 4->0, 7->1
    assert f.matched == {4: 0, 7: 1}
    assert f.per_class == pytest.approx({4: 0.75, 7: 1.0})
    assert f.overall == pytest.approx(0.4 * 0.75 + 0.6 * 1.0)
    assert f.leaks() == [(4, 1, pytest.approx(0.25))]
    g = class_fidelity(mass, [4, 7], [0, 1], correspondence={4: 1, 7: 0})
    assert g.per_class == pytest.approx({4: 0.25, 7: 0.0})
    with pytest.raises(ValueError, match="shape"):
        class_fidelity(mass, [4], [0, 1])


def test_flow_defaults_equal_the_yaml():
    """`DatasetFlow()` in Python is the same flow as `conf/flow/default.yaml`."""
    import inspect
    from pathlib import Path

    from omegaconf import OmegaConf

    yaml = OmegaConf.load(Path(__file__).parents[2] / "conf" / "flow" / "default.yaml")
    defaults = {k: p.default for k, p in inspect.signature(DatasetFlow).parameters.items()}
    for key in ("objective", "labels", "optimizer", "step_size", "steps", "tol", "correspondence",
                "label_update_every", "device", "dtype", "progress"):
        assert defaults[key] == yaml[key], key
