"""task=flow end to end on tiny data: the flowed dataset is saved, loadable, and closer to the target."""

from __future__ import annotations


from otdata.flows import FlowResult
from otdata.tasks.flow import run
from tests.fixtures import compose_config


def test_flow_task_writes_a_loadable_flowed_dataset_and_figures(data_root, tmp_path):
    cfg = compose_config([
        "task=flow", f"paths.data_dir={data_root}", "data@source=usps", "data@target=mnist",
        "task.n_source=60", "task.n_target=80", "flow.steps=6", "flow.checkpoint_every=3",
        "flow.trajectory_every=2", "flow.progress=false",
    ], output_dir=tmp_path)
    summary = run(cfg)

    result = FlowResult.load(tmp_path / "flow.pt")
    assert result.X.shape == (60, 784) and result.y.shape == (60,)
    assert 0.0 <= float(result.X.min()) and float(result.X.max()) <= 1.0  # clamped pixels
    assert summary["objective"] < summary["initial_objective"]
    assert len(result.history) >= 6
    for name in ("flow_snapshots.png", "flow.gif", "before_after.png", "objective.png",
                 "history.csv", "history.md"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert any((tmp_path / "checkpoints").iterdir())


def tiny_classifier_checkpoint(path):
    """A small CNN of 10 classes (one training step on random images): a stand-in for the target's
    frozen classifier, saved as a Lightning checkpoint."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from otdata.models import Classifier, SmallCNN

    L.seed_everything(0)
    X, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    model = Classifier(SmallCNN(num_classes=10, channels=(4, 8), hidden=16))
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(X, y), batch_size=16))
    trainer.save_checkpoint(path)
    return path


def test_flow_task_reports_class_fidelity_and_the_target_classifier(data_root, tmp_path):
    """flow.md carries the class fidelity and the classifier's accuracy on the particles before and
    after, computed on the saved particles against their matched classes; fidelity.md and
    class_mass.png are written."""
    import csv

    from otdata.models import load_or_train_classifier
    from otdata.tasks.scoring import mapped

    ckpt = tiny_classifier_checkpoint(tmp_path / "clf.ckpt")
    out = tmp_path / "run"
    cfg = compose_config([
        "task=flow", f"paths.data_dir={data_root}", "data@source=usps", "data@target=mnist",
        "task.n_source=60", "task.n_target=80", "flow.steps=3", "flow.progress=false",
        f"task.classifier_ckpt={ckpt}",
    ], output_dir=out)
    summary = run(cfg)
    result = FlowResult.load(out / "flow.pt")
    fid = result.class_fidelity
    assert fid.matching == "correspondence" and fid.matched == result.correspondence
    with open(out / "flow.csv") as f:
        row = next(csv.DictReader(f))
    assert float(row["class_fidelity"]) == round(100 * fid.overall, 2)
    classifier, _ = load_or_train_classifier(None, ckpt)
    want = mapped(result.y, fid.matched)
    for column, X in (("classifier_raw", result.X0), ("classifier_flowed", result.X)):
        expected = 100.0 * float((classifier.predict(X) == want).float().mean())
        assert abs(float(row[column]) - expected) < 0.01, column
        assert abs(summary[column] - expected) < 1e-9, column
    with open(out / "fidelity.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(fid.source_classes)
    assert (out / "class_mass.png").stat().st_size > 0


def test_flow_task_refuses_a_missing_classifier_file(data_root, tmp_path):
    import pytest

    cfg = compose_config([
        "task=flow", f"paths.data_dir={data_root}", "task.n_source=40", "task.n_target=40",
        "flow.steps=1", "flow.progress=false", f"task.classifier_ckpt={tmp_path / 'nope.ckpt'}",
    ], output_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="classifier_ckpt"):
        run(cfg)


def test_a_free_flow_that_scrambles_warns_once_with_class_names(data_root, tmp_path, monkeypatch):
    """The task reports a leaking flow once, naming classes by their names (the flow's own,
    unnamed warning is replaced)."""
    import warnings

    import torch

    from otdata.flows.fidelity import ClassFidelityWarning
    from otdata.tasks import flow as flow_task

    real = flow_task.load_source_target

    def skewed(cfg):  # every second particle of class 0 becomes a 1: class 1 is over-represented
        source, target, (Xs, ys), rest = real(cfg)
        ys = ys.clone()
        ys[torch.nonzero(ys == 0).flatten()[::2]] = 1
        return source, target, (Xs, ys), rest

    monkeypatch.setattr(flow_task, "load_source_target", skewed)
    cfg = compose_config([
        "task=flow", f"paths.data_dir={data_root}", "data@source=mnist", "data@target=mnist",
        "task.n_source=60", "task.n_target=60", "flow.steps=2", "flow.progress=false",
        "flow.correspondence=null",
    ], output_dir=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(cfg)
    messages = [str(w.message) for w in caught if issubclass(w.category, ClassFidelityWarning)]
    assert len(messages) == 1
    assert "flow.correspondence=auto" in messages[0]
