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
