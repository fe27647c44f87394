"""Work off the page's thread: a :class:`Job` runs one computation in a thread of its own, reports
its progress, and stops at its next report once cancelled; a :class:`ResultCache` keeps the last
results by their settings, so a choice seen before shows at once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any


class Cancelled(Exception):
    """Raised inside a job at its next progress report once the job is cancelled."""


class Job:
    """``fn(report)`` in a daemon thread; ``report(fraction, text)`` records progress and raises
    :class:`Cancelled` once :meth:`cancel` was called."""

    def __init__(self, fn: Callable[[Callable[[float, str], None]], Any], name: str = "job"):
        self.fraction, self.text = 0.0, "starting"
        self.result: Any = None
        self.error: BaseException | None = None
        self._cancel = threading.Event()
        self.done = threading.Event()
        self.started = time.perf_counter()
        self._thread = threading.Thread(target=self._main, args=(fn,), name=f"otdata-explore-{name}",
                                        daemon=True)
        self._thread.start()

    def _main(self, fn) -> None:
        try:
            self.result = fn(self.report)
        except BaseException as error:  # handed to whoever waits on the job
            self.error = error
        finally:
            self.done.set()

    def report(self, fraction: float, text: str) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"cancelled during: {self.text}")
        self.fraction, self.text = max(0.0, min(1.0, float(fraction))), str(text)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, on_progress: Callable[[float, str], None] | None = None, poll: float = 0.1) -> Any:
        """Wait for the result, calling ``on_progress(fraction, text)`` while the job runs; the
        job's error (:class:`Cancelled` too) is raised here."""
        while not self.done.wait(poll):
            if on_progress is not None:
                on_progress(self.fraction, self.text)
        if self.error is not None:
            raise self.error
        return self.result


class SessionJobs:
    """The running jobs of each browser session, so that its Stop button cancels its own work."""

    def __init__(self):
        self._jobs: dict[str, list[Job]] = {}
        self._lock = threading.Lock()

    def start(self, session: str, fn, name: str = "job") -> Job:
        job = Job(fn, name)
        with self._lock:
            alive = [j for j in self._jobs.get(session, []) if not j.done.is_set()]
            self._jobs[session] = alive + [job]
        return job

    def cancel(self, session: str) -> int:
        """Cancel the session's running jobs; how many there were."""
        with self._lock:
            running = [j for j in self._jobs.pop(session, []) if not j.done.is_set()]
        for job in running:
            job.cancel()
        return len(running)


class ResultCache:
    """The last ``size`` results, by key (least recently used out first); thread-safe."""

    def __init__(self, size: int = 32):
        self.size = max(0, int(size))
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        if self.size == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
