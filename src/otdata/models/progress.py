"""Lightning training shown through :mod:`otdata.progress`: one bar per fit on a terminal, plain
periodic lines with the time left in a log (`baseline, batch 384/640, epoch 12/20, ETA 1 min 10 s`).

Lightning's own bars redraw in place, which a log file records as one line at the very end (rich)
or as control codes (tqdm); this one logs through the run's logging instead.
"""

from __future__ import annotations

import math

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from otdata import progress


class PhaseProgressBar(ProgressBar):
    """Training progress of one fit, counted in batches, with the epoch and the last validation
    accuracy beside the count. `phase` names the fit in the line ("baseline", "MNIST classifier")."""

    def __init__(self, phase: str = "training"):
        super().__init__()
        self.phase = phase
        self._enabled = True
        self._tracker: progress.Tracker | None = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _total(self, trainer) -> int:
        per_epoch = trainer.num_training_batches
        per_epoch = int(per_epoch) if isinstance(per_epoch, int) or math.isfinite(per_epoch) else 0
        if trainer.max_epochs is not None and trainer.max_epochs > 0:
            total = per_epoch * trainer.max_epochs
            return min(total, trainer.max_steps) if trainer.max_steps and trainer.max_steps > 0 else total
        return max(trainer.max_steps or 0, per_epoch)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if self._enabled and self._tracker is None:
            self._tracker = progress.Tracker(self.phase, self._total(trainer), unit="batch",
                                             done=trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._tracker is None:
            return
        status = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        accuracy = trainer.callback_metrics.get("val/acc")
        if accuracy is not None:
            status += f", val acc {100 * float(accuracy):.2f}%"
        self._tracker.advance(1, status=status)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    def on_exception(self, trainer, pl_module, exception) -> None:
        self.on_train_end(trainer, pl_module)
