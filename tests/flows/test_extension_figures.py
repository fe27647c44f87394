import torch

from otdata.flows import DatasetFlow, KNNDisplacement, extend
from otdata.flows.figures import plot_history, save_flow_gif, save_flow_snapshots, save_image_grid

from flowtoy import gaussians


def test_knn_extension_recovers_translation():
    g = torch.Generator().manual_seed(0)
    X0 = torch.randn(200, 5, generator=g)
    t = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0])
    X_new = torch.randn(50, 5, generator=g)
    for w in ("uniform", "distance", "gaussian"):
        out = KNNDisplacement(X0, X0 + t, k=7, weighting=w)(X_new)
        assert torch.allclose(out, X_new + t, atol=1e-5)
    # a training point moves exactly like its particle
    assert torch.allclose(extend(X0[:3], X0, X0 * 2, k=5), X0[:3] * 2, atol=1e-5)


def test_extension_of_a_flow_translation():
    Xs, ys = gaussians([[0.0, 0.0], [0.0, 3.0]], seed=0)
    Xt, yt = Xs + torch.tensor([4.0, 0.0]), ys
    r = DatasetFlow(target=(Xt, yt), objective="class_means", step_size=0.25, steps=30,
                    progress=False).run(Xs, ys)  # a pure translation of each class
    X_new, _ = gaussians([[0.0, 0.0], [0.0, 3.0]], n=10, seed=5)
    moved = r.extend(X_new, k=5)
    assert torch.allclose(moved, X_new + torch.tensor([4.0, 0.0]), atol=1e-2)


def test_figures_write_files(tmp_path):
    frames = torch.rand(4, 6, 64)
    traj = {"frames": frames, "steps": [0, 1, 2, 3], "indices": None}
    assert save_image_grid(frames[0], tmp_path / "g.png", image_shape=(1, 8, 8)).stat().st_size > 0
    assert save_flow_snapshots(traj, tmp_path / "s.png", image_shape=(8, 8), n_images=4).exists()
    assert save_flow_gif(traj, tmp_path / "f.gif", image_shape=(1, 8, 8), n_images=6).exists()
    hist = [{"step": i, "objective": 1.0 / (i + 1), "otdd": 1.0 / (i + 1)} for i in range(5)]
    assert plot_history(hist, tmp_path / "h.png").exists()
