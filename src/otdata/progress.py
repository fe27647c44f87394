"""Progress of long phases (flow steps, training epochs): a rich bar on a terminal, plain log lines
with the time left everywhere else (a log file, `nohup`, a cluster job's output).

Phases sit inside stages, so that every line says where the run is::

    with progress.stage("KMNIST: 2 of 4 datasets"):
        with progress.track("baseline", total=20, unit="epoch") as bar:
            for epoch in range(20):
                ...
                bar.advance()

On a terminal this draws one bar, `KMNIST: 2 of 4 datasets, baseline`. Off a terminal it logs
`KMNIST: 2 of 4 datasets, baseline, epoch 12/20, ETA 1 min 10 s` at most every
`OTDATA_PROGRESS_EVERY` seconds (default 30), and one line when the phase is done. The lines go
through logging, in the run's one log format, without terminal control codes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

from otdata.console import duration

log = logging.getLogger("otdata.progress")

#: Seconds between two plain progress lines (off a terminal).
EVERY_ENV = "OTDATA_PROGRESS_EVERY"
DEFAULT_EVERY = 30.0

_STAGES: list[str] = []


def on_terminal() -> bool:
    """Whether the output can show a live bar: a terminal (not a dumb one), or a notebook."""
    from rich.console import Console

    console = Console(file=sys.stdout)
    return (console.is_terminal and not console.is_dumb_terminal) or console.is_jupyter


def every_seconds() -> float:
    """`OTDATA_PROGRESS_EVERY` (seconds between plain lines), checked."""
    raw = os.environ.get(EVERY_ENV)
    if raw is None or raw == "":
        return DEFAULT_EVERY
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise ValueError(f"{EVERY_ENV}={raw!r}: give the seconds between two progress lines, a "
                         f"number >= 0 (0: a line at every step; unset: {DEFAULT_EVERY:.0f})")
    return value


@contextlib.contextmanager
def stage(label: str) -> Iterator[None]:
    """Name the part of the run the phases inside belong to (`"KMNIST: 2 of 4 datasets"`)."""
    _STAGES.append(label)
    try:
        yield
    finally:
        _STAGES.pop()


def where(phase: str) -> str:
    """`"<stage>, <phase>"`: the label of a phase inside the current stages."""
    return ", ".join([*_STAGES, phase] if phase else _STAGES)


class Tracker:
    """One phase of `total` units (steps, epochs). :meth:`advance` after each; `status` is a short
    text shown beside the count (an objective, a loss)."""

    def __init__(self, phase: str, total: int, unit: str = "step", done: int = 0,
                 terminal: bool | None = None):
        self.label, self.total, self.unit = where(phase), int(total), unit
        self.done = self.first = int(done)
        self.every = every_seconds()
        self.started = self.last_line = time.perf_counter()
        self.status = ""
        self._bar = self._rich() if (on_terminal() if terminal is None else terminal) else None

    def _rich(self):
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._task = bar.add_task(self.label, total=self.total, completed=self.done)
        bar.start()
        return bar

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate so far, or None before the first unit."""
        ran = self.done - self.first
        if ran <= 0:
            return None
        now = time.perf_counter() if now is None else now
        return (now - self.started) / ran * (self.total - self.done)

    def line(self, now: float | None = None) -> str:
        """`<stage>, <phase>, <unit> i/n[, status], ETA ...` (the plain progress line)."""
        eta = self.eta(now)
        status = f", {self.status}" if self.status else ""
        return (f"{self.label}, {self.unit} {self.done}/{self.total}{status}, "
                f"ETA {duration(eta) if eta is not None else '?'}")

    def advance(self, n: int = 1, status: str | None = None) -> None:
        self.done += n
        if status is not None:
            self.status = status
        if self._bar is not None:
            text = f"{self.label} {self.status}" if self.status else self.label
            self._bar.update(self._task, advance=n, description=text)
            return
        now = time.perf_counter()
        if self.done < self.total and now - self.last_line >= self.every:
            self.last_line = now
            log.info(self.line(now))

    def close(self) -> None:
        """Stop the bar, or log the phase's last line (with how long it took)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            return
        status = f", {self.status}" if self.status else ""
        log.info("%s, %s %d/%d%s, done in %s", self.label, self.unit, self.done, self.total, status,
                 duration(time.perf_counter() - self.started))


@contextlib.contextmanager
def track(phase: str, total: int, unit: str = "step", done: int = 0,
          enabled: bool = True) -> Iterator[Tracker | None]:
    """A :class:`Tracker` for the phase (``None`` when not `enabled`), closed on the way out."""
    if not enabled:
        yield None
        return
    tracker = Tracker(phase, total, unit, done)
    try:
        yield tracker
    finally:
        tracker.close()
