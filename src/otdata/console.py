"""A quiet console: each log line once, in a short format, without vendor boilerplate.

Hydra sends every log record to the console and to `<run folder>/<job>.log`. Lightning and
torchmetrics attach console handlers of their own at import, so without this each of their lines is
printed twice. :func:`setup` (called by the `otdata` command once Hydra has configured logging):

* removes those extra handlers, so Lightning's records reach the console once, through Hydra's;
* drops Lightning's advertising tips everywhere, and its per-Trainer boilerplate (GPU/TPU
  availability, seeding, ...) from the console only (the run's log file keeps it);
* shortens the console format to `[HH:MM:SS] message` (warnings and errors say so);
* silences known third-party warnings that the user cannot act on (deprecations inside libraries,
  Lightning's `srun` hint on SLURM hosts), and prints the other warnings as one log line each.
"""

from __future__ import annotations

import importlib
import logging
import re
import sys
import warnings
from pathlib import Path

#: Loggers that install console handlers of their own at import time (submitit: inside a sweep's
#: job, where its lines would otherwise be printed twice in the job's log).
VENDOR_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                  "lightning_fabric", "torchmetrics", "submitit")
#: Never shown: advertising.
ADVERTS = re.compile(r"💡|\bTip:|litlogger|LitLogger|lightning\.ai/|litmodels")
#: Kept in the log file, not on the console: said by every Trainer, useful only when debugging.
BOILERPLATE = re.compile(
    r"^(GPU available|TPU available|HPU available|IPU available|LOCAL_RANK|Seed set to|"
    r"Loading `train_dataloader`|`Trainer\.fit` stopped|Using default `ModelCheckpoint`|"
    r"You are using a CUDA device|Restoring states from|Loaded model weights from)")
#: Third-party deprecation warnings raised inside libraries, not by otdata's own calls.
IGNORED_WARNINGS = (
    (FutureWarning, r".*isinstance\(treespec, LeafSpec\)"),  # torch, via lightning's _pytree
    # Lightning, on any machine with SLURM installed: otdata runs its single-process trainers
    # without `srun` on purpose (inside a SLURM job, submitit's own `srun` starts them).
    (UserWarning, r"The `srun` command is available on your system but is not used"),
)

CONSOLE_FORMAT = "[%(asctime)s] %(message)s"


class DropAdverts(logging.Filter):
    """Drops vendor tips and adverts."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not ADVERTS.search(record.getMessage())


class DropBoilerplate(logging.Filter):
    """Drops Lightning's per-Trainer information lines (for the console only)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(("lightning", "pytorch_lightning")):
            return True
        return record.levelno > logging.INFO or not BOILERPLATE.search(record.getMessage())


class ConsoleFormatter(logging.Formatter):
    """`[HH:MM:SS] message`, with the level in front of warnings and errors."""

    def __init__(self):
        super().__init__(CONSOLE_FORMAT, datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, message = text.partition("] ")
            text = f"{stamp}] {record.levelname.lower()}: {message}"
        return text


def _is_console(handler: logging.Handler) -> bool:
    stream = getattr(handler, "stream", None)
    return not isinstance(handler, logging.FileHandler) and stream in (sys.stdout, sys.stderr,
                                                                       sys.__stdout__, sys.__stderr__)


def setup() -> None:
    """Make the console quiet (see the module docstring). Safe to call more than once."""
    for module in ("lightning", "torchmetrics"):  # their handlers are added at import: import now
        try:
            importlib.import_module(module)
        except ImportError:
            pass
    for name in VENDOR_LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                logger.removeHandler(handler)
        logger.propagate = True
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, DropAdverts) for f in handler.filters):
            handler.addFilter(DropAdverts())
        if _is_console(handler):
            if not any(isinstance(f, DropBoilerplate) for f in handler.filters):
                handler.addFilter(DropBoilerplate())
            handler.setFormatter(ConsoleFormatter())
    for category, message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    warnings.showwarning = _log_warning


def quiet_vendor_lines() -> None:
    """For the Python API (no :func:`setup`): vendor adverts dropped from the vendor loggers' own
    handlers and the `srun` hint ignored; the user's logging and other warnings are left alone.
    Safe to call more than once."""
    for name in VENDOR_LOGGERS:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, DropAdverts) for f in handler.filters):
                handler.addFilter(DropAdverts())
    for category, message in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one log line (`warning: ConvergenceWarning: ...`), in the console and the log
    file, instead of Python's two lines with a source excerpt."""
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message)


def command_line(overrides: list[str]) -> str:
    """The `otdata ...` command that reproduces a job (its task overrides)."""
    return " ".join(["otdata", *overrides])


def announce(task: str, output_dir: str, overrides: list[str]) -> None:
    """The run's first line: what runs and where its results and full log go."""
    logging.getLogger("otdata").info("%s → %s", command_line(overrides) if overrides
                                     else f"otdata task={task}", output_dir)


def duration(seconds: float) -> str:
    """A duration as people say it: `48 s`, `3 min 12 s`, `1 h 05 min`."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def process_seconds() -> float | None:
    """Seconds since this process started, interpreter start-up and imports included (Linux:
    /proc), or None where that is not known."""
    import os

    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        return float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def total_time(task: str, seconds: float) -> None:
    """The run's last line: how long the whole command took."""
    logging.getLogger("otdata").info("task=%s finished in %s (total)", task, duration(seconds))


def finish(task: str, output_dir: str, overrides: list[str], show: bool = True) -> str | None:
    """Append the command to the task's result table `<task>.md` (so the table records the
    settings that made it) and print the table; returns its text, or None if the task wrote none."""
    table = Path(output_dir) / f"{task}.md"
    if not table.is_file():
        return None
    text = table.read_text()
    line = f"Command: `{command_line(overrides)}`"
    if line not in text:
        text = text.rstrip("\n") + f"\n\n{line}\n"
        table.write_text(text)
    if show:
        rows = "\n".join(line for line in text.splitlines() if line.startswith("|"))
        print(f"\n{rows}\n(table, notes and settings: {table})\n", flush=True)
    return text
