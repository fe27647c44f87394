"""task=flow: a killed run resumed with task.resume=true ends as an uninterrupted run; a resume with
other data is refused, naming what differs."""

from __future__ import annotations

import pytest
import torch

from otdata.flows import DatasetFlow, FlowResult
from otdata.flows.checkpoint import CheckpointMismatchError
from otdata.tasks.flow import run
from tests.fixtures import compose_config

BASE = ["task=flow", "data@source=usps", "data@target=mnist", "task.n_source=30",
        "task.n_target=40", "flow.steps=4", "flow.checkpoint_every=2", "flow.trajectory_every=0",
        "flow.progress=false"]


@pytest.fixture(autouse=True)
def _one_thread_no_figures(monkeypatch, one_thread):
    monkeypatch.setattr("otdata.tasks.flow.save_flow_figures", lambda *args, **kwargs: None)


def _run(data_root, out, *extra):
    return run(compose_config([*BASE, f"paths.data_dir={data_root}", *extra], output_dir=out))


def _killed_after_step_2(monkeypatch):
    original = DatasetFlow._checkpoint

    def checkpoint_then_die(self, state):
        original(self, state)
        if state.step == 2:
            raise RuntimeError("killed")

    monkeypatch.setattr(DatasetFlow, "_checkpoint", checkpoint_then_die)


def test_kill_and_resume_equals_an_uninterrupted_run(data_root, tmp_path, monkeypatch):
    _run(data_root, tmp_path / "full")
    with monkeypatch.context() as m:
        _killed_after_step_2(m)
        with pytest.raises(RuntimeError, match="killed"):
            _run(data_root, tmp_path / "killed")
    assert not (tmp_path / "killed" / "flow.pt").exists()
    _run(data_root, tmp_path / "killed", "task.resume=true")
    full, resumed = (FlowResult.load(tmp_path / name / "flow.pt") for name in ("full", "killed"))
    assert torch.equal(resumed.X, full.X)
    assert [h["objective"] for h in resumed.history] == [h["objective"] for h in full.history]


@pytest.mark.parametrize("change,message", [
    (["target.seed=1"], r"the target dataset differs \(same shape"),
    (["task.n_target=50"], r"the target dataset differs \(shape \[40, 784\] vs \[50, 784\]\)"),
    (["data@source=fashion_mnist"], r"the source dataset differs \(same shape"),
    (["flow.step_size=0.1"], r"setting 'step_size': 0.25 in the checkpoint, 0.1 now"),
])
def test_resume_with_other_data_or_settings_is_refused(change, message, data_root, tmp_path):
    _run(data_root, tmp_path, "flow.steps=2")
    with pytest.raises(CheckpointMismatchError, match=message):
        _run(data_root, tmp_path, "task.resume=true", *change)
    _run(data_root, tmp_path, "task.resume=true", "flow.steps=3")  # a longer budget is fine


@pytest.mark.parametrize("steps", [-3, 0])
def test_non_positive_steps_are_refused_before_anything_is_written(steps, data_root, tmp_path):
    with pytest.raises(Exception, match=r"steps must be >= 1.*flow.steps"):
        _run(data_root, tmp_path, f"flow.steps={steps}")
    assert not (tmp_path / "flow.pt").exists()
