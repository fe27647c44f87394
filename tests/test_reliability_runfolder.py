"""Run folders: one writer at a time, outputs that appear together, runs that did not finish marked.

A `task=distance` run killed (SIGKILL) while it draws its figures leaves no complete-looking
json/csv/md beside missing PNGs, and says it did not finish; a second run pointed at a folder in
use is refused at once, naming the process that holds it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap

import pytest

from otdata.tasks.rundir import MARKER, RunFolderBusyError, lock_run_folder, run_folder
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
