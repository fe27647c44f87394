"""A Lightning classifier around any image network (see `otdata.models.nets`)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from otdata.instantiate import safe_instantiate
from otdata.models.nets import net_config as _net_config

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULERS = ("onecycle", "cosine", "none")


def random_shift(x: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Translate each image of `(B, C, H, W)` by its own random integer offset in
    `[-max_shift, max_shift]²`, filling with zeros."""
    if max_shift <= 0:
        return x
    B, C, H, W = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    dy = torch.randint(0, 2 * max_shift + 1, (B,), device=x.device)
    dx = torch.randint(0, 2 * max_shift + 1, (B,), device=x.device)
    rows = (torch.arange(H, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(W, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    b = torch.arange(B, device=x.device)[:, None, None, None]
    c = torch.arange(C, device=x.device)[None, :, None, None]
    return padded[b, c, rows, cols]


class Classifier(L.LightningModule):
    """Cross-entropy classifier with train/val/test accuracy, for `(x, y)` batches of pixels.

    Args:
        net: the network (an `nn.Module` mapping pixel inputs to logits). Hydra instantiates it
            from `model.net`. May be omitted when `net_config` is given.
        net_config: a Hydra config (`_target_` + arguments) that rebuilds the network. Filled in
            automatically for the `otdata.models.nets` networks; stored in the checkpoint so that
            `Classifier.load_from_checkpoint(path)` needs nothing else. For other networks, pass
            it, or pass `net=` again to `load_from_checkpoint`.
        num_classes: defaults to `net.num_classes`.
        optimizer: "adamw", "adam" or "sgd" (with `momentum`, Nesterov).
        lr: the (peak) learning rate. weight_decay: decoupled for AdamW, L2 for SGD.
        scheduler: "onecycle" (per step, peak `lr`), "cosine" (per step, down to 0) or "none".
        pct_start: share of the one-cycle schedule spent warming up.
        label_smoothing: of the cross-entropy.
        augment_shift: random translation of training images by up to this many pixels (0 = off).
    """

    def __init__(
        self,
        net: nn.Module | None = None,
        net_config: dict[str, Any] | None = None,
        num_classes: int | None = None,
        optimizer: str = "adamw",
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        scheduler: str = "onecycle",
        pct_start: float = 0.2,
        label_smoothing: float = 0.0,
        augment_shift: int = 0,
    ):
        super().__init__()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}.")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}.")
        if isinstance(net_config, DictConfig):
            net_config = OmegaConf.to_container(net_config, resolve=True)
        if net is None:
            if net_config is None:
                raise ValueError("Classifier needs a `net` module or a `net_config` to build one.")
            net = safe_instantiate(net_config, key="net_config")  # may come from a checkpoint file
        elif net_config is None:
            net_config = _net_config(net)
        if num_classes is None:
            num_classes = getattr(net, "num_classes", None)
            if num_classes is None:
                raise ValueError("num_classes is required when the net has no `num_classes`.")
        # Everything but the module itself goes into the checkpoint (`net_config` rebuilds it).
        self.save_hyperparameters(ignore=["net"])
        # channels-last convolution weights (the nets' `Normalize` hands them channels-last
        # inputs): ~1.5x faster CPU training of the small CNNs, where batch norm and pooling are
        # memory-bound in NCHW
        self.net = net.to(memory_format=torch.channels_last)
        self.num_classes = int(num_classes)
        self.train_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(self.num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(self.num_classes, average="micro")

    # -- forward / steps --------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.hparams.augment_shift and x.dim() == 4:
            x = random_shift(x, int(self.hparams.augment_shift))
        logits = self(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits.detach(), y)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _eval_step(self, batch, stage: str, metric: MulticlassAccuracy):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        metric(logits, y)
        self.log(f"{stage}/loss", loss, on_epoch=True, prog_bar=stage == "val")
        self.log(f"{stage}/acc", metric, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        return self._eval_step(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx):
        return self._eval_step(batch, "test", self.test_acc)

    def predict_step(self, batch, batch_idx, dataloader_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self(x).argmax(dim=1)

    # -- optimization -----------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum,
                                  weight_decay=hp.weight_decay, nesterov=hp.momentum > 0)
        elif hp.optimizer == "adam":
            opt = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=hp.lr, total_steps=max(total, 1), pct_start=hp.pct_start
            )
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- plain-tensor helpers ---------------------------------------------------------------------
    @torch.no_grad()
    def logits(self, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Logits of a tensor of inputs (images or flat vectors), in eval mode, on CPU."""
        was_training = self.training
        self.eval()
        try:
            out = [self(chunk.to(self.device, self.dtype)).float().cpu()
                   for chunk in torch.split(X, batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.num_classes)

    def predict(self, X: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        """Predicted labels (int64, CPU) of a tensor of inputs."""
        return self.logits(X, batch_size).argmax(dim=1)

    def accuracy(self, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
        """Share of `X` predicted as `y`."""
        if len(y) == 0:
            return float("nan")
        return (self.predict(X, batch_size) == y.cpu()).float().mean().item()
