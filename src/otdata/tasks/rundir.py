"""One writer per run folder, outputs that appear together, and a mark on runs that did not finish.

    with run_folder(out) as stage:        # `out` locked; `out/UNFINISHED` written
        write results into `stage`         # a hidden folder inside `out`
    # on success: every file of `stage` renamed into `out`, then `UNFINISHED` removed

* **Lock.** ``run_folder`` holds an exclusive ``fcntl`` lock on ``out/.lock`` for the whole run. A
  second run pointed at the same folder (two ``task=flow`` runs with one ``hydra.run.dir``, the same
  flow started twice) is refused at once with :class:`RunFolderBusyError`, naming the process that
  holds it. The operating system releases the lock when its process ends, however it ends, so a
  killed run never leaves a stale lock behind.
* **Outputs together.** A task writes its results into the staging folder; they are renamed into
  the run folder only once all of them are complete (each rename is atomic), so a run killed while
  it writes its figures leaves no complete-looking json/csv/md beside missing or empty images.
* **Unfinished mark.** ``out/UNFINISHED`` is written when the run starts and removed only after its
  results are in place. A run that was killed, or that failed (the error is appended), keeps it.
* **What stays in the run folder.** State that a run resumes from, or that a library writes as it
  goes, is not staged: a flow's ``checkpoints/`` (``task.resume``), Lightning's ``checkpoints/``
  and ``csv/`` logs. Tasks of many parts (``experiment=repurpose``, ``experiment=transferability``)
  keep what they staged before a failure in ``partial/``; a killed run's staging folder stays
  hidden until the next run in that folder clears it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, the rest still applies
    fcntl = None

__all__ = ["MARKER", "PARTIAL", "RunFolderBusyError", "is_staged", "lock_run_folder", "run_folder"]

MARKER = "UNFINISHED"
PARTIAL = "partial"
_STAGE_PREFIX = ".partial-"


class RunFolderBusyError(RuntimeError):
    """Another process is writing the same run folder."""


_HELD: set[Path] = set()  # run folders this process holds (the command's lock, then the task's)


@contextlib.contextmanager
def lock_run_folder(out: str | Path) -> Iterator[Path]:
    """Hold the run folder's lock, mark it unfinished, and unmark it when the block succeeds.

    Re-entrant within a process: a task run by the ``otdata`` command finds the folder already
    held by the command and goes on under that lock and mark."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    if key in _HELD:
        yield out
        return
    _HELD.add(key)
    try:
        with _locked(out) as held:
            yield held
    finally:
        _HELD.discard(key)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[Path]:
    handle = open(out / ".lock", "a+")  # noqa: SIM115 - held open for the whole run
    try:
        _acquire(handle, out)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, started {dt.datetime.now().isoformat(timespec='seconds')}\n")
        handle.flush()
        for stale in out.glob(_STAGE_PREFIX + "*"):  # left by a killed run: we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        marker = out / MARKER
        marker.write_text(
            f"This run did not finish (started {dt.datetime.now().isoformat(timespec='seconds')}, "
            f"pid {os.getpid()}): its results are missing or incomplete. Run it again, or resume it "
            "with task.resume=true and hydra.run.dir=<this folder> where the task supports it.\n")
        try:
            yield out
        except BaseException as error:
            with contextlib.suppress(OSError):
                with marker.open("a") as f:
                    f.write(f"It stopped with {type(error).__name__}: {error}\n")
            raise
        marker.unlink(missing_ok=True)
    finally:
        handle.close()  # releases the lock


def _acquire(handle, out: Path) -> None:
    if fcntl is None:  # pragma: no cover
        return
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        raise RunFolderBusyError(
            f"the run folder {out} is being written by another otdata run ({holder}). Two runs in "
            "one folder would overwrite each other's results and checkpoints. Wait for it to finish, "
            "or give this run its own folder (drop hydra.run.dir, or set another one).") from None


@contextlib.contextmanager
def run_folder(out: str | Path, keep_partial: bool = False) -> Iterator[Path]:
    """Lock ``out`` (:func:`lock_run_folder`) and yield a staging folder inside it whose files are
    renamed into ``out`` once the block succeeds; on failure they are discarded, or with
    ``keep_partial`` (tasks of many parts, whose finished parts are worth keeping) moved to
    ``out/partial/`` and named in the ``UNFINISHED`` mark."""
    with lock_run_folder(out) as out:
        stage = out / f"{_STAGE_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            yield stage
            publish(stage, out)
        except BaseException:
            if keep_partial and any(stage.iterdir()):
                _keep_partial(stage, out)
            raise
        finally:
            shutil.rmtree(stage, ignore_errors=True)


def _keep_partial(stage: Path, out: Path) -> None:
    """Move a failed run's staged files to ``out/partial/`` (replacing an older one) and say so."""
    partial = out / PARTIAL
    if partial.is_dir():
        shutil.rmtree(partial)
    os.replace(stage, partial)
    with contextlib.suppress(OSError), (out / MARKER).open("a") as f:
        f.write(f"What it had written before it stopped is in {PARTIAL}/ (the parts that finished; "
                "not a complete result).\n")


def is_staged(path: Path, root: Path) -> bool:
    """Whether ``path``, found under ``root``, lies in a staging folder or a failed run's
    ``partial/``: not a result, whatever its name."""
    parts = Path(path).relative_to(root).parts
    return any(part.startswith(_STAGE_PREFIX) or part == PARTIAL for part in parts)


def publish(stage: Path, out: Path) -> None:
    """Rename every entry of ``stage`` into ``out`` (replacing what was there)."""
    for entry in sorted(stage.iterdir()):
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)
