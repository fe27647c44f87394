"""Progress off a terminal: a run whose output goes to a file (a `nohup` run, a cluster job) logs
periodic progress lines with the time left, in one log format, without terminal control codes."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys

import pytest

from otdata import progress

STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")


@pytest.mark.slow
def test_a_run_redirected_to_a_file_logs_progress_with_eta_in_one_format(tmp_path, data_root):
    env = {**os.environ, "OTDATA_DATA_DIR": str(data_root), "OTDATA_CACHE_DIR": str(tmp_path / "cache"),
           "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1",
           progress.EVERY_ENV: "0"}
    args = ["experiment=repurpose", "debug=default", "task.sources=usps", "task.n_flow=60",
            "task.n_target=60", "task.n_test=30", "flow.steps=3", "logger=wandb", "hydra.run.dir=run"]
    with open(tmp_path / "out.log", "w") as out:
        result = subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path, env=env,
                                stdout=out, stderr=subprocess.STDOUT, timeout=300)
    text = (tmp_path / "out.log").read_text()
    assert result.returncode == 0, text[-3000:]

    assert re.search(r"^\[\d\d:\d\d:\d\d\] MNIST classifier, batch (\d+)/\1, epoch 1/1, done in \d+ s$",
                     text, re.M)  # the frozen classifier's training (one batch of the tiny data)
    for phase in (r"usps: 1 of 1 datasets, baseline, batch \d+/\d+, epoch \d/2",
                  r"usps: 1 of 1 datasets, flow, step \d/3, F=[\d.]+",
                  r"usps: 1 of 1 datasets, learned map, epoch 1/2, pixel loss [\d.]+, teacher KL [\d.]+"):
        assert re.search(rf"^\[\d\d:\d\d:\d\d\] {phase}, ETA \d+ s$", text, re.M), phase
    assert re.search(r"^\[\d\d:\d\d:\d\d\] usps: 1 of 1 datasets, flow, step 3/3, F=[\d.]+, done in ", text, re.M)
    assert re.search(r"^\[\d\d:\d\d:\d\d\] task=repurpose finished in \d+ (s|min \d\d s) \(total\)$",
                     text, re.M)

    log_file = (tmp_path / "run" / "cli.log").read_text()
    for name, content in (("output", text), ("cli.log", log_file)):
        assert "\x1b" not in content, f"terminal control codes in the {name}"
        stamped = [line for line in content.splitlines() if line.startswith("[")]
        assert stamped and all(STAMP.match(line) for line in stamped), \
            [line for line in stamped if not STAMP.match(line)][:3]
        assert "[HYDRA]" not in content and not re.search(r"^\[\d{4}-\d\d-\d\d", content, re.M)
    assert "baseline, batch" in log_file  # the progress lines are in the run's log file too


def test_plain_lines_come_at_most_every_interval_with_the_time_left(monkeypatch, caplog):
    clock = iter(range(0, 1000, 10))  # every reading of the clock is 10 s later
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    monkeypatch.setenv(progress.EVERY_ENV, "25")
    with caplog.at_level(logging.INFO, logger="otdata.progress"):
        with progress.stage("KMNIST: 2 of 4 datasets"):
            with progress.track("baseline", total=8, unit="epoch") as bar:
                for _ in range(8):
                    bar.advance(status="loss 0.1")
    assert [r.getMessage() for r in caplog.records] == [  # at 30 s and 60 s, then the last line
        "KMNIST: 2 of 4 datasets, baseline, epoch 3/8, loss 0.1, ETA 50 s",
        "KMNIST: 2 of 4 datasets, baseline, epoch 6/8, loss 0.1, ETA 20 s",
        "KMNIST: 2 of 4 datasets, baseline, epoch 8/8, loss 0.1, done in 1 min 30 s"]
    assert progress.where("flow") == "flow"  # the stage ended with its block


def test_a_bad_interval_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setenv(progress.EVERY_ENV, "often")
    with pytest.raises(ValueError, match="OTDATA_PROGRESS_EVERY='often': give the seconds"):
        progress.every_seconds()
