"""experiment=kshot on tiny generated images, and its building blocks: the k-shot draw, the flow
toward a 1-shot target, the shared draw of every column, and the settings it refuses."""

from __future__ import annotations

import json
import math

import pytest
import torch

from otdata.data.subsample import per_class_indices
from otdata.flows import DatasetFlow
from otdata.tasks import kshot_methods
from otdata.tasks.kshot import run
from otdata.tables import read_csv
from otdata.tasks.kshot_methods import column_names, nearest_shot_agreement
from tests.fixtures import compose_config

FAST = ["task.n_source=6", "task.epochs=1", "task.n_pretrain=40", "task.pretrain_epochs=1",
        "task.cache_dir=null", "task.num_threads=1", "flow.steps=3", "trainer.accelerator=cpu"]


def compose(root, tmp_path, *overrides):
    return compose_config(["experiment=kshot", f"paths.data_dir={root}", *FAST, *overrides], tmp_path)


def test_kshot_draw_takes_k_of_every_class_seeded_and_nested():
    y = torch.tensor([0] * 7 + [1] * 3 + [2] * 12)
    draw = per_class_indices(y, 2, seed=5)
    assert torch.bincount(y[draw]).tolist() == [2, 2, 2]
    assert torch.equal(draw, per_class_indices(y, 2, seed=5))
    assert not torch.equal(per_class_indices(y, 3, seed=5), per_class_indices(y, 3, seed=6))
    assert set(draw.tolist()) <= set(per_class_indices(y, 3, seed=5).tolist())  # k=2 inside k=3


@pytest.mark.parametrize("k,message", [(4, "k <= 3, the size of the smallest class"),
                                       (0, "positive integer"), (-1, "positive integer")])
def test_kshot_draw_refuses_k_beyond_the_smallest_class_or_below_one(k, message):
    y = torch.tensor([0] * 7 + [1] * 3)
    with pytest.raises(ValueError, match=message):
        per_class_indices(y, k)


def _blobs(n_per_class, seed, shift=0.0):
    """Two classes of 2-D points around (0, 0) and (4, 4), shifted."""
    g = torch.Generator().manual_seed(seed)
    X = torch.cat([torch.randn(n_per_class, 2, generator=g) * 0.5 + c * 4.0 + shift for c in (0, 1)])
    return X, torch.arange(2).repeat_interleave(n_per_class)


@pytest.mark.parametrize("distance", [{"label_distance": "means"},
                                      {"label_distance": "gaussian", "ridge": 0.05}])
def test_a_flow_toward_a_one_shot_target_stays_finite_and_keeps_its_labels(distance):
    Xs, ys = _blobs(30, seed=0)
    Xk, yk = _blobs(1, seed=1, shift=1.5)
    result = DatasetFlow(steps=20, distance=distance, progress=False).run(Xs, ys, target=(Xk, yk))
    assert torch.isfinite(result.X).all()
    assert torch.equal(result.y, ys)
    assert result.correspondence == {0: 0, 1: 1}
    # every flowed particle sits nearer the shot of its own class than it started
    moved = (result.X - Xk[ys]).norm(dim=1) < (Xs - Xk[ys]).norm(dim=1)
    assert bool(moved.all())
    assert nearest_shot_agreement(result.X, ys, Xk, yk) == 100.0


def test_a_gaussian_label_cost_without_a_ridge_is_refused_for_a_one_shot_target():
    Xs, ys = _blobs(30, seed=0)
    Xk, yk = _blobs(1, seed=1)
    with pytest.raises(ValueError, match="distance.ridge > 0"):
        DatasetFlow(steps=2, progress=False).run(Xs, ys, target=(Xk, yk))


def test_flow_columns_are_named_after_their_objectives():
    assert column_names(["otdd", {"name": "mmd", "weight": 50}, "mmd"]) == ["flow_otdd", "flow_mmd",
                                                                            "flow_mmd_2"]
    assert column_names([{"name": "otdd", "steps": 5}, "otdd"]) == ["flow_otdd_5steps", "flow_otdd"]
    with pytest.raises(ValueError, match="task.flows entries"):
        column_names([3])


def test_run_writes_every_column_on_one_shared_draw(data_root, tmp_path, monkeypatch):
    trained = []  # (seed, the k shots each column trained on)
    train = kshot_methods.Recipe.train

    def spy(self, X, y, *args, **kwargs):
        trained.append((args[2], X[-20:].clone()))  # the 2 × 10 shots come last
        return train(self, X, y, *args, **kwargs)

    monkeypatch.setattr(kshot_methods.Recipe, "train", spy)
    cfg = compose(data_root, tmp_path, "task.shots=2", "task.seeds=[0,1]", "task.flows=[otdd,mmd]")
    result = run(cfg)
    rows = {r["method"]: r for r in result["rows"]}
    assert list(rows) == ["target_only", "source", "finetune", "flow_otdd", "flow_mmd"]
    for row in rows.values():
        assert 0 <= row["accuracy"] <= 100 and row["n_seeds"] == 2 and math.isfinite(row["accuracy_std"])
    assert rows["target_only"]["n_train"] == rows["finetune"]["n_train"] == 20  # 2 shots × 10 classes
    assert rows["source"]["n_train"] == rows["flow_otdd"]["n_train"] == 20 + 60  # + 6 source × 10
    assert rows["flow_otdd"]["finite"] is True and rows["flow_otdd"]["class_fidelity"] > 99
    for seed in (0, 1):  # every column of a seed trained on the same shots
        shots = [X for s, X in trained if s == seed]
        assert len(shots) == 5 and all(torch.equal(X, shots[0]) for X in shots)
    assert not torch.equal(trained[0][1], trained[5][1])  # another seed, another draw
    record = json.loads((tmp_path / "kshot.json").read_text())
    assert len(record["runs"]) == 10 and set(record["matching"]) == {"0", "1"}
    assert record["published"] is None  # the tiny data have no 2-shot row in the paper
    assert (tmp_path / "kshot.md").read_text().count("\n| MNIST |") == 5
    assert (tmp_path / "kshot_runs.csv").read_text().count("\n") == 11


def test_a_flow_column_may_set_its_own_steps(data_root, tmp_path):
    cfg = compose(data_root, tmp_path, "task.baselines=[]", "flow.steps=4",
                  "task.flows=[otdd,{name:otdd,steps:1,step_size:0.5}]")
    rows = {r["method"]: r for r in run(cfg)["rows"]}
    runs = {r["method"]: r for r in json.loads((tmp_path / "kshot.json").read_text())["runs"]}
    assert list(rows) == ["flow_otdd", "flow_otdd_1steps"]
    assert rows["flow_otdd_1steps"]["finite"] and runs["flow_otdd_1steps"]["steps"] == 1
    assert runs["flow_otdd"]["steps"] == 4


def test_seeds_default_to_the_runs_seed(data_root, tmp_path):
    cfg = compose(data_root, tmp_path, "seed=3", "task.flows=[]", "task.baselines=[target_only]")
    (row,) = run(cfg)["rows"]
    assert row["n_seeds"] == 1 and row["accuracy_std"] is None
    assert json.loads((tmp_path / "kshot.json").read_text())["runs"][0]["seed"] == 3


@pytest.mark.parametrize("override,message", [
    ("task.shots=0", "task.shots must be a positive integer"),
    ("task.shots=13", "task.shots=13 on FashionMNIST's training split: .* choose at most 12 per class"),  # 12 a class
    ("task.n_source=13", "task.n_source=13 on MNIST's training split"),
    ("task.baselines=[scratch]", "unknown column"),
    ("flow.correspondence=null", "set flow.correspondence=auto"),
])
def test_bad_settings_are_refused_with_the_fix(data_root, tmp_path, override, message):
    with pytest.raises(ValueError, match=message):
        run(compose(data_root, tmp_path, override))


def test_a_seed_sweep_is_averaged_per_column_by_the_sweep_summary(data_root, tmp_path):
    from omegaconf import OmegaConf

    from otdata.summary import summarize

    accuracies = {}
    for seed in (0, 1):
        job = tmp_path / str(seed)
        cfg = compose(data_root, job, f"seed={seed}", "task.flows=[otdd]", "task.baselines=[target_only]")
        accuracies[seed] = {r["method"]: r["accuracy"] for r in run(cfg)["rows"]}
        (job / ".hydra").mkdir()
        OmegaConf.save(cfg, job / ".hydra" / "config.yaml")
        OmegaConf.save(OmegaConf.create([f"seed={seed}", "task.shots=1"]), job / ".hydra" / "overrides.yaml")
    summarize(tmp_path)
    rows = {r["method"]: r for r in read_csv(tmp_path / "summary_seeds.csv")}
    assert set(rows) == {"target_only", "flow_otdd"}
    for method, row in rows.items():
        assert row["seeds"] == 2
        assert row["accuracy"] == pytest.approx((accuracies[0][method] + accuracies[1][method]) / 2)


def test_the_sweep_composes_with_the_slurm_launcher():
    cfg = compose_config(["experiment=kshot", "hydra/launcher=slurm", "task.shots=5"], hydra_config=True)
    assert "otdata" in cfg.hydra.launcher._target_ and cfg.task.name == "kshot" and cfg.task.shots == 5
