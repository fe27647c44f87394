import pytest
import torch

from otdata.flows import DatasetFlow, FlowResult

from flowtoy import gaussians

SRC = [[0.0, 0.0], [0.0, 3.0]]
TGT = [[4.0, 0.0], [4.0, 3.0]]
DK = {"epsilon": 0.5, "relative": False}


def class_mean(X, y, c):
    return X[y == c].mean(0)


@pytest.mark.parametrize("labels", ["fixed", "attached", "joint"])
def test_otdd_flow_decreases_and_reaches_target_means(labels):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    flow = DatasetFlow(target=(Xt, yt), labels=labels, step_size=0.25, steps=25, progress=False,
                       distance=DK)
    r = flow.run(Xs, ys)
    obj = [h["objective"] for h in r.history]
    assert obj[-1] < 0.01 * obj[0]
    assert all(b <= a + 1e-3 * obj[0] for a, b in zip(obj, obj[1:]))  # (near) monotone
    for c in (0, 1):  # free OTDD matches the nearest classes: 0 -> 0, 1 -> 1; tolerance 0.2
        assert torch.dist(class_mean(r.X, r.y, c), class_mean(Xt, yt, c)) < 0.2
    assert torch.equal(r.y, ys)  # labels never change
    assert torch.equal(r.X0, Xs)
    if labels == "joint":
        mu = r.label_params["means"]
        assert torch.dist(mu[0], class_mean(Xt, yt, 0)) < 0.2
        assert r.label_params["covs"].shape == (2, 2, 2)


def test_flow_10d_three_classes():
    g = torch.Generator().manual_seed(3)
    src = torch.randn(3, 10, generator=g) * 3
    tgt = src + torch.randn(3, 10, generator=g)
    Xs, ys = gaussians(src, n=25, seed=0)
    Xt, yt = gaussians(tgt, n=25, seed=1)
    flow = DatasetFlow(target=(Xt, yt), step_size=0.25, steps=30, progress=False,
                       distance={"epsilon": 1.0, "relative": False}, correspondence="identity")
    r = flow.run(Xs, ys)
    assert r.history[-1]["objective"] < 0.05 * r.history[0]["objective"]
    for c in range(3):
        assert torch.dist(class_mean(r.X, r.y, c), class_mean(Xt, yt, c)) < 0.3


def test_prescribed_correspondence_moves_class_c_to_corr_c():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    corr = {0: 1, 1: 0}  # against the geometry: free OTDD would do 0 -> 0
    r = DatasetFlow(target=(Xt, yt), step_size=0.25, steps=25, correspondence=corr,
                    progress=False, distance=DK).run(Xs, ys)
    assert r.correspondence == corr
    for c, t in corr.items():
        assert torch.dist(class_mean(r.X, r.y, c), class_mean(Xt, yt, t)) < 0.2


def test_auto_correspondence_recovers_permutation():
    # target classes are a permutation of the source classes (labels 0,1,2 -> 2,0,1), far apart
    means = [[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]]
    Xs, ys = gaussians(means, seed=0)
    Xt, yt = gaussians([[0.5, 0.0], [6.5, 0.0], [0.5, 6.0]], seed=1, labels=[2, 0, 1])
    flow = DatasetFlow(target=(Xt, yt), steps=2, correspondence="hungarian", progress=False,
                       distance=DK)
    r = flow.run(Xs, ys)
    assert r.correspondence == {0: 2, 1: 0, 2: 1}


@pytest.mark.parametrize("objective,optimizer,step", [("mmd", "euler", 1.0), ("sliced", "adam", 0.1)])
def test_cheap_objectives_decrease(objective, optimizer, step):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    r = DatasetFlow(target=(Xt, yt), objective=objective, optimizer=optimizer, step_size=step,
                    steps=60, correspondence=None, progress=False).run(Xs, ys)  # the global objectives
    assert r.history[-1]["objective"] < 0.1 * r.history[0]["objective"]
    # MMD particle flows leave a few far particles behind (vanishing kernel gradients)
    assert torch.dist(r.X.mean(0), Xt.mean(0)) < (1.0 if objective == "mmd" else 0.5)


def test_separation_potential_pushes_means_apart():
    Xs, ys = gaussians([[0.0, 0.0], [0.5, 0.0]], seed=0)
    r = DatasetFlow(target=(Xs, ys), objective={"name": "separation", "margin": 3.0},
                    step_size=0.2, steps=30, progress=False).run(Xs, ys)
    d0 = torch.dist(class_mean(Xs, ys, 0), class_mean(Xs, ys, 1))
    d1 = torch.dist(class_mean(r.X, r.y, 0), class_mean(r.X, r.y, 1))
    assert d1 > d0 + 1.5
    assert r.history[-1]["separation"] < r.history[0]["separation"]


def test_composite_objective_records_parts_clamp_and_trajectory(tmp_path):
    Xs, ys = gaussians(SRC, seed=0, scale=0.2)
    Xs = Xs.clamp(-1, 1) * 0.4 + 0.5
    Xt, yt = gaussians(TGT, seed=1)
    flow = DatasetFlow(target=(Xt, yt),
                       objective=[{"name": "otdd", "weight": 1.0},
                                  {"name": "class_means", "weight": 0.5}],
                       step_size=0.2, steps=8, clamp=[0, 1], trajectory_every=2,
                       trajectory_particles=10, progress=False, distance=DK)
    r = flow.run(Xs, ys)
    assert r.X.min() >= 0 and r.X.max() <= 1
    h = r.history[0]
    assert {"step", "objective", "otdd", "class_means", "grad_norm", "seconds"} <= set(h)
    assert abs(h["objective"] - (h["otdd"] + 0.5 * h["class_means"])) < 1e-4 * abs(h["objective"])
    assert r.trajectory["steps"] == [0, 2, 4, 6, 8]
    assert r.trajectory["frames"].shape == (5, 10, 2)
    p = r.save(tmp_path / "r.pt")
    r2 = FlowResult.load(p)
    assert torch.equal(r2.X, r.X) and r2.history == r.history and r2.config == r.config


def test_tolerance_stops_early():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    r = DatasetFlow(target=(Xt, yt), step_size=0.3, steps=200, tol=1e-3, patience=2,
                    progress=False, distance=DK).run(Xs, ys)
    assert r.converged and r.steps_run < 200


def test_on_step_sees_every_step_and_can_stop_the_flow():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    seen = []
    r = DatasetFlow(target=(Xt, yt), steps=4, progress=False, distance=DK).run(
        Xs, ys, on_step=lambda step, steps, value: seen.append((step, steps, value)))
    assert [(s, n) for s, n, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [v for *_, v in seen] == [h["objective"] for h in r.history[:4]]

    class Stop(Exception):
        pass

    def stop_at_two(step, steps, value):
        if step == 2:
            raise Stop

    with pytest.raises(Stop):
        DatasetFlow(target=(Xt, yt), steps=50, progress=False, distance=DK).run(Xs, ys, on_step=stop_at_two)


@pytest.mark.parametrize("labels,optimizer", [("fixed", "adam"), ("joint", "sgd")])
def test_resume_is_bit_identical(tmp_path, labels, optimizer):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    kw = dict(target=(Xt, yt), labels=labels, optimizer=optimizer, step_size=0.05, momentum=0.5,
              objective=["otdd", {"name": "sliced", "weight": 0.5, "n_projections": 8}],
              trajectory_every=3, progress=False, seed=7,
              distance=DK, label_update_every=4)
    full = DatasetFlow(steps=10, **kw).run(Xs, ys)
    ck = tmp_path / "ck"
    DatasetFlow(steps=6, checkpoint_dir=str(ck), checkpoint_every=3, **kw).run(Xs, ys)
    resumed = DatasetFlow(steps=10, checkpoint_dir=str(ck), checkpoint_every=3, **kw).run(
        Xs, ys, resume=True)
    assert torch.equal(resumed.X, full.X)
    strip = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert torch.equal(resumed.trajectory["frames"], full.trajectory["frames"])
    if labels == "joint":
        assert torch.equal(resumed.label_params["means"], full.label_params["means"])


def test_resume_refuses_other_configuration(tmp_path):
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    DatasetFlow(target=(Xt, yt), steps=2, checkpoint_dir=str(tmp_path), checkpoint_every=1,
                progress=False, distance=DK).run(Xs, ys)
    with pytest.raises(ValueError, match="different flow"):
        DatasetFlow(target=(Xt, yt), steps=4, step_size=0.9, checkpoint_dir=str(tmp_path),
                    progress=False, distance=DK).run(Xs, ys, resume=True)


def test_error_on_mismatched_feature_dims():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], seed=1)
    with pytest.raises(ValueError, match="dimension 2 but the target has 3"):
        DatasetFlow(target=(Xt, yt), progress=False).run(Xs, ys)


def test_error_on_empty_or_tiny_classes():
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    ys_bad = ys.clone()
    ys_bad[0] = 5  # class 5 has a single sample: no covariance
    with pytest.raises(ValueError, match=r"class\(es\) \[5\].*fewer than 2"):
        DatasetFlow(target=(Xt, yt), progress=False).run(Xs, ys_bad)
    # a prescribed correspondence pointing at a target class with no samples
    with pytest.raises(ValueError, match=r"target class\(es\) \[7\]"):
        DatasetFlow(target=(Xt, yt), correspondence={0: 7, 1: 1}, progress=False).run(Xs, ys)
    with pytest.raises(ValueError, match="empty"):
        DatasetFlow(target=(Xt, yt), progress=False).run(Xs[:0], ys[:0])


def test_bad_options_raise():
    with pytest.raises(ValueError, match="label method"):
        DatasetFlow(labels="soft")
    with pytest.raises(ValueError, match="optimizer"):
        DatasetFlow(optimizer="lbfgs")
    with pytest.raises(ValueError, match="no target"):
        DatasetFlow(progress=False).run(*gaussians(SRC))


def test_correspondence_with_unequal_class_proportions():
    # source classes 3:1, target classes 1:1: with a uniform target, a quarter of the mass would be
    # forced across classes and drag class-0 particles toward target class 1
    Xs0, _ = gaussians(SRC[:1], n=45, seed=0)
    Xs1, _ = gaussians(SRC[1:], n=15, seed=2)
    Xs, ys = torch.cat([Xs0, Xs1]), torch.tensor([0] * 45 + [1] * 15)
    Xt, yt = gaussians(TGT, n=30, seed=1)
    r = DatasetFlow(target=(Xt, yt), step_size=0.25, steps=25, correspondence="identity",
                    progress=False, distance=DK).run(Xs, ys)
    objective = [h["objective"] for h in r.history]
    assert all(b <= a + 1e-4 for a, b in zip(objective, objective[1:]))
    for c in (0, 1):
        assert torch.dist(class_mean(r.X, r.y, c), class_mean(Xt, yt, c)) < 0.2
    # every class-0 particle ends nearer target class 0 than target class 1
    to0 = (r.X[ys == 0] - class_mean(Xt, yt, 0)).norm(dim=1)
    to1 = (r.X[ys == 0] - class_mean(Xt, yt, 1)).norm(dim=1)
    assert bool((to0 < to1).all())


@pytest.mark.parametrize("scale", [1.0, 255.0])
@pytest.mark.parametrize("rel", [1e-3, 1e-2])
def test_float32_flow_at_small_relative_epsilon_stays_finite_and_descends(rel, scale):
    """The default distance settings (relative epsilon) serve any feature scale: no NaN at step 1
    in float32 even where the Gibbs kernel underflows, and the objective goes down."""
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    flow = DatasetFlow(target=(Xt * scale, yt), step_size=0.25, steps=4, progress=False,
                       distance={"epsilon": rel})
    r = flow.run(Xs * scale, ys)
    obj = [h["objective"] for h in r.history]
    assert all(torch.isfinite(torch.tensor(obj))) and torch.isfinite(r.X).all()
    assert obj[-1] < obj[0]


def test_flow_epsilon_is_fixed_from_the_initial_cost_scale():
    """Relative epsilon is resolved once (not re-scaled as the particles move), and scales with the
    squared feature scale, as the costs do."""
    Xs, ys = gaussians(SRC, seed=0)
    Xt, yt = gaussians(TGT, seed=1)
    eps = {}
    for scale in (1.0, 10.0):
        flow = DatasetFlow(target=(Xt * scale, yt), step_size=0.25, steps=3, progress=False,
                           distance={"epsilon": 0.01})
        flow.run(Xs * scale, ys)
        eps[scale] = flow.terms[0][2].engine.warm.epsilon
    assert eps[10.0] == pytest.approx(100 * eps[1.0], rel=1e-4)
