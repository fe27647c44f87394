"""A quiet console: the README's main command prints each line once, no vendor tip, no
deprecation warning, a first line that says where the results go and the results table at the end."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import warnings

import pytest

from otdata import console

STAMP = re.compile(r"^\[[^\]]+\](\[[^\]]+\])*( - )?\s*|^(INFO|WARNING|ERROR): ")


def log_lines(text: str) -> list[str]:
    """The lines that come from a logging handler, without their time/level prefix."""
    return [STAMP.sub("", line) for line in text.splitlines() if STAMP.match(line)]


@pytest.mark.slow
def test_main_command_prints_each_line_once_without_vendor_tips(tmp_path, data_root):
    env = {**os.environ, "OTDATA_DATA_DIR": str(data_root), "OTDATA_CACHE_DIR": str(tmp_path / "cache"),
           "MPLBACKEND": "Agg", "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    args = ["experiment=repurpose", "debug=default", "task.sources=usps", "task.n_flow=60",
            "task.n_target=60", "task.n_test=30", "flow.steps=3", "hydra.run.dir=run"]
    result = subprocess.run([sys.executable, "-m", "otdata.cli", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    captured = result.stdout + result.stderr

    lines = log_lines(captured)
    assert len(lines) >= 4
    repeated = {line for line in lines if lines.count(line) > 1}
    assert not repeated, repeated
    assert not re.search(r"^INFO: ", captured, re.M)          # Lightning's own handler is gone
    assert "💡" not in captured and "Tip:" not in captured and "litlogger" not in captured
    assert "deprecated" not in captured.lower()
    assert "GPU available" not in captured                     # boilerplate: log file only
    assert lines[0].startswith("otdata experiment=repurpose") and lines[0].endswith("run")
    tail = result.stdout[result.stdout.rindex("| dataset |"):]
    assert "| USPS |" in tail and "repurpose.md" in tail      # the results table comes last

    log_file = (tmp_path / "run" / "cli.log").read_text()
    assert "GPU available" in log_file and "💡" not in log_file
    assert "Command: `otdata experiment=repurpose" in (tmp_path / "run" / "repurpose.md").read_text()


def test_setup_removes_vendor_handlers_and_filters_the_console(capsys, monkeypatch):
    monkeypatch.setattr(console.importlib, "import_module", lambda name: None)  # no slow imports
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    handler = logging.StreamHandler(sys.stdout)
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    try:
        logging.getLogger("lightning").addHandler(logging.StreamHandler())
        logging.getLogger("submitit").addHandler(logging.StreamHandler())
        console.setup()
        console.setup()  # twice: still one filter of each kind
        for vendor in ("lightning", "submitit"):
            assert not [h for h in logging.getLogger(vendor).handlers
                        if type(h) is logging.StreamHandler]
        assert len(handler.filters) == 2
        rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
        rank_zero.info("💡 Tip: try our cloud")
        rank_zero.info("GPU available: False, used: False")
        rank_zero.warning("something the user must see")
        logging.getLogger("otdata.test").info("flowing USPS 1/4 ...")
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            console.setup()
            warnings.warn("Sinkhorn did not converge", RuntimeWarning)
            warnings.warn("The `srun` command is available on your system but is not used. HINT: "
                          "If your intention is to run Lightning on SLURM, prepend ...", UserWarning)
    finally:
        root.handlers = saved
        root.setLevel(level)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d\] warning: something the user must see", out[0])
    assert out[1].endswith("] flowing USPS 1/4 ...")
    assert out[2].endswith("] warning: RuntimeWarning: Sinkhorn did not converge")


def test_finish_records_the_command_once(tmp_path, capsys):
    (tmp_path / "distance.md").write_text("| a |\n|---|\n| 1 |\n")
    for _ in range(2):
        console.finish("distance", str(tmp_path), ["task=distance", "distance=means"])
    text = (tmp_path / "distance.md").read_text()
    assert text.count("Command: `otdata task=distance distance=means`") == 1
    assert "| 1 |" in capsys.readouterr().out
    assert console.finish("flow", str(tmp_path), []) is None


def test_durations_read_as_people_say_them_and_the_total_counts_from_process_start():
    assert [console.duration(s) for s in (0.4, 48, 192, 3900)] == ["0 s", "48 s", "3 min 12 s", "1 h 05 min"]
    import time

    age = console.process_seconds()
    assert age is None or age > 0  # None off Linux; here: since this interpreter started
    if age is not None:
        time.sleep(0.05)
        assert console.process_seconds() > age
