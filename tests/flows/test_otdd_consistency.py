import torch

from flowtoy import gaussians
from otdata.distance import DatasetDistance
from otdata.flows import OTDDFunctional
from otdata.flows.functionals import FlowState, class_index


def test_flow_otdd_matches_dataset_distance():
    Xs, ys = gaussians([[0.0, 0.0, 0.0], [0.0, 3.0, 1.0]], n=20, seed=0)
    Xt, yt = gaussians([[2.0, 0.0, 0.0], [2.0, 3.0, 0.0]], n=25, seed=1)
    Xs, Xt = Xs.double(), Xt.double()
    kw = dict(epsilon=0.5, relative=False, tol=1e-9, max_iter=5000)
    ref = DatasetDistance(label_distance="gaussian", debiased=True, **kw)(Xs, ys, Xt, yt)
    f = OTDDFunctional(dict(label_distance="gaussian", **kw), warm_start=False).bind(Xt, yt)
    classes, yi, counts = class_index(ys)
    st = FlowState(X=Xs.clone().requires_grad_(True), y=ys, yi=yi, classes=classes, counts=counts)
    v = f(st)
    assert abs(float(v.detach()) - ref.divergence) < 1e-6 * max(1.0, abs(ref.divergence))
    W = f.label_distances(Xs, ys)
    assert torch.allclose(W, ref.label_distances.to(W), rtol=1e-6, atol=1e-6)
