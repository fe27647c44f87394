"""Run folders: one writer at a time, outputs that appear together, runs that did not finish marked.

A run of any task killed (SIGKILL) or failing half way leaves no complete-looking result files
beside missing ones, and says it did not finish (`task=distance` killed while it draws its figures,
`task=flow` and `task=train` killed after their first result file, `experiment=repurpose` and
`experiment=transferability` failing after their first part, which they keep in `partial/`); a
second run pointed at a folder in use is refused at once, naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest

from otdata.tasks.rundir import MARKER, PARTIAL, RunFolderBusyError, lock_run_folder, run_folder
from tests.fixtures import compose_config

BASE = ["task=distance", "data@source=usps", "data@target=mnist", "task.n_source=20",
        "task.n_target=20", "distance=means"]
RESULTS = {"distance.json", "distance.csv", "distance.md", "label_distances.png",
           "correspondences.png"}


@contextlib.contextmanager
def _held_elsewhere(out):
    """Another process holding the lock of run folder `out` for the duration of the block."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from otdata.tasks.rundir import lock_run_folder\n"
                               f"with lock_run_folder({str(out)!r}):\n"
                               "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def _visible(folder):
    return {p.name for p in folder.iterdir() if not p.name.startswith(".")}


def _killed_run(tmp_path, module: str, step: str, overrides: list[str]) -> None:
    """Run `otdata.tasks.<module>.run` in a process that kills itself (SIGKILL) when the task calls
    `<module>.<step>`; check that it died so."""
    script = textwrap.dedent(f"""
        import os, signal
        from otdata.tasks import {module} as task
        from tests.fixtures import compose_config

        def killed(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)

        task.{step} = killed
        task.run(compose_config({overrides!r}, output_dir={str(tmp_path / "run")!r}))
    """)
    env = {**os.environ, "MPLBACKEND": "Agg", "OTDATA_CACHE_DIR": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.getcwd())
    assert proc.returncode == -9, proc.stderr[-3000:]


FLOW = ["task=flow", "task.n_source=20", "task.n_target=20", "flow.steps=2", "flow.progress=false",
        "flow.checkpoint_every=1", "flow.trajectory_every=0"]


def test_sigkill_of_a_flow_leaves_its_checkpoints_no_results_and_a_mark(data_root, tmp_path):
    """Killed while drawing its figures (flow.pt, history and fidelity tables already written): only
    `checkpoints/` and the mark are there, and `task.resume=true` finishes the flow from them."""
    out = tmp_path / "run"
    overrides = [*FLOW, f"paths.data_dir={data_root}"]
    _killed_run(tmp_path, "flow", "save_flow_figures", overrides)
    assert _visible(out) == {MARKER, "checkpoints"}
    assert (out / "checkpoints" / "last.pt").is_file()
    from otdata.tasks import flow

    result = flow.run(compose_config([*overrides, "task.resume=true"], output_dir=out))
    assert result["steps"] == 2
    assert {"flow.pt", "flow.csv", "history.csv", "fidelity.csv", "before_after.png"} <= _visible(out)
    assert MARKER not in _visible(out) and not [p for p in out.iterdir() if p.name.startswith(".partial-")]


def test_sigkill_of_training_leaves_lightnings_files_no_results_and_a_mark(data_root, tmp_path):
    """Killed while writing its table (metrics.json already written): Lightning's checkpoints and
    logs are there (`task.resume=true` continues from them), metrics.json and train.csv are not."""
    overrides = ["task=train", f"paths.data_dir={data_root}", "model.net.channels=[4,8]",
                 "model.net.hidden=16", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
                 "trainer.accelerator=cpu", "+trainer.limit_train_batches=2",
                 "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1"]
    _killed_run(tmp_path, "train", "write_table", overrides)
    out = tmp_path / "run"
    assert _visible(out) == {MARKER, "checkpoints", "csv"}
    assert (out / "checkpoints" / "last.ckpt").is_file()


def _fails_on_the_second_part(monkeypatch, owner, part, first, run, cfg, out):
    """`run(cfg)` with `owner.part` replaced: its first call is `first` (which writes into the run's
    folder and returns a row), its second fails. The failed run leaves no result beside missing
    ones, its mark, and what it had written in `partial/` (returned)."""
    calls = []

    def half(*args):
        calls.append(args)
        if len(calls) == 2:
            raise RuntimeError("the second part failed")
        return first(*args)

    monkeypatch.setattr(owner, part, half)
    with pytest.raises(RuntimeError, match="the second part failed"):
        run(cfg)
    assert _visible(out) == {MARKER, PARTIAL}
    mark = (out / MARKER).read_text()
    assert f"in {PARTIAL}/" in mark and "It stopped with RuntimeError: the second part failed" in mark
    return out / PARTIAL


def test_repurpose_failing_half_way_keeps_the_finished_dataset_apart(data_root, tmp_path, monkeypatch):
    from otdata.tasks import repurpose

    class Frozen:  # the target's cached classifier (its training is not what is tested here)
        def eval(self):
            return self

        def requires_grad_(self, flag):
            return self

        def predict(self, X):
            return X.new_zeros(len(X), dtype=int)

    def first_dataset(cfg, name, classifier, target_dm, Xt, yt, out):
        (out / name).mkdir()
        (out / name / "before_after_identity.png").write_bytes(b"png")
        return {"dataset": name, "flowed_identity": 99.0}

    monkeypatch.setattr(repurpose, "frozen_classifier", lambda cfg: (Frozen(), "cached.ckpt"))
    out = tmp_path / "run"
    cfg = compose_config(["experiment=repurpose", f"paths.data_dir={data_root}",
                          "task.sources=[usps,kmnist]", "task.n_target=20"], output_dir=out)
    partial = _fails_on_the_second_part(monkeypatch, repurpose, "repurpose_one", first_dataset,
                                        repurpose.run, cfg, out)
    assert {"repurpose.csv", "repurpose.md", "usps"} <= {p.name for p in partial.iterdir()}
    assert "usps" in (partial / "repurpose.csv").read_text()


def test_transferability_failing_half_way_keeps_the_finished_pair_apart(data_root, tmp_path, monkeypatch):
    from otdata.tasks import transferability

    def first_pair(experiment, source, target):
        return {"pair": f"{source.name}→{target.name}", "source": source.name, "target": target.name,
                "status": "ok", "otdd": 1.0}, []

    monkeypatch.setattr(transferability.Experiment, "compute_distances", lambda *args: None)
    out = tmp_path / "run"
    cfg = compose_config(["experiment=transferability", f"paths.data_dir={data_root}",
                          "task.pairs=[[usps,mnist],[mnist,usps]]", "task.n_pool=40", "task.n_test=20",
                          "task.n_distance=20", "task.cache_dir=null", "task.num_threads=1"],
                         output_dir=out)
    partial = _fails_on_the_second_part(monkeypatch, transferability.Experiment, "pair", first_pair,
                                        transferability.run, cfg, out)
    assert (partial / "transferability.csv").read_text().count("→") == 1


def test_sigkill_while_drawing_figures_leaves_no_results_and_a_mark(data_root, tmp_path):
    out = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal
        from otdata import plots
        from otdata.tasks import distance
        from tests.fixtures import compose_config

        def killed(*args, **kwargs):  # the json and tables are written by now
            os.kill(os.getpid(), signal.SIGKILL)

        plots.label_distance_heatmap = killed
        distance.run(compose_config({BASE + [f"paths.data_dir={data_root}"]!r},
                                    output_dir={str(out)!r}))
    """)
    env = {**os.environ, "MPLBACKEND": "Agg", "OTDATA_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.getcwd())
    assert proc.returncode == -9, proc.stderr
    assert _visible(out) == {MARKER}  # nothing complete-looking, and the mark says so
    assert "did not finish" in (out / MARKER).read_text()
    # the next run in that folder clears the killed run's staging folder and finishes
    from otdata.tasks import distance

    distance.run(compose_config([*BASE, f"paths.data_dir={data_root}"], output_dir=out))
    assert _visible(out) == RESULTS
    assert not [p for p in out.iterdir() if p.name.startswith(".partial-")]


def test_a_failed_run_keeps_its_mark_with_the_error(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="boom"):
        with run_folder(out) as stage:
            (stage / "distance.json").write_text("{}")
            raise RuntimeError("boom")
    assert _visible(out) == {MARKER}
    assert "It stopped with RuntimeError: boom" in (out / MARKER).read_text()


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with _held_elsewhere(out) as holder:
        with pytest.raises(RunFolderBusyError, match=rf"being written by another otdata run "
                                                     rf"\(pid {holder.pid}, started"):
            with lock_run_folder(out):
                pass
    with lock_run_folder(out):  # released when its holder ended
        pass
    assert _visible(out) == set()


def test_the_command_refuses_a_second_flow_in_a_busy_folder(data_root, tmp_path):
    """Two `task=flow` runs with one `hydra.run.dir`: the second exits at once with the reason."""
    from otdata.cli import run_task

    out = tmp_path / "run"
    cfg = compose_config(["task=flow", f"paths.data_dir={data_root}", "task.n_source=20",
                          "task.n_target=20", "flow.steps=1"], output_dir=out)
    with _held_elsewhere(out):
        with pytest.raises(SystemExit, match="otdata: the run folder .* is being written by another"):
            run_task(cfg)
    assert not (out / "checkpoints").exists()  # the second run wrote nothing


def test_task_flow_called_from_python_holds_the_lock_too(data_root, tmp_path, monkeypatch):
    """`otdata.tasks.flow.run(cfg)` (not only the command) refuses a folder in use."""
    from otdata.tasks import flow

    out = tmp_path / "run"
    cfg = compose_config(["task=flow", f"paths.data_dir={data_root}", "task.n_source=20",
                          "task.n_target=20", "flow.steps=1", "flow.progress=false"], output_dir=out)
    with _held_elsewhere(out):
        with pytest.raises(RunFolderBusyError):
            flow.run(cfg)
    monkeypatch.setattr("otdata.tasks.flow.save_flow_figures", lambda *a, **k: None)
    flow.run(cfg)  # free again: runs, and leaves no mark
    assert (out / "flow.csv").is_file() and not (out / MARKER).exists()


def test_collect_reads_finished_jobs_only(tmp_path):
    """`task.collect` merges the records of finished jobs: not a killed job's staging folder, not a
    failed job's `partial/`, not the collecting run's own folder."""
    from otdata.tasks.transfer_records import job_records

    sweep = tmp_path / "sweep"
    for folder in ("0", "1/.partial-123-abcd1234", "2/partial", "collected"):
        (sweep / folder).mkdir(parents=True)
        (sweep / folder / "transferability.json").write_text("{}")
    found = job_records(sweep, own=sweep / "collected")
    assert [p.relative_to(sweep).as_posix() for p in found] == ["0/transferability.json"]
