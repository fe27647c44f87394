"""A learned out-of-sample map: a network fitted to a flow's (start, end) pairs.

A flow moves a finite set of labeled particles ``X0 -> X1``. The k-NN extension
(:class:`~otdata.flows.extension.KNNDisplacement`) moves a new sample by the displacement of its
nearest particles, so it is only as good as raw nearest-neighbour structure. :class:`LearnedMap`
instead *amortises* the flow: a small convolutional encoder-decoder ``T`` is trained so that
``T(X0[i]) ≈ X1[i]`` and is then applied to any new sample, with no label and no OT solve.

Loss, per pair (x0, x1):

    pixel_weight · 100 ||T(x0) - x1||² / d  +  teacher_weight · KL( teacher(x1) || teacher(T(x0)) )

(the teacher reads each unshifted ``x1`` once, before training).

The second term is optional: with the frozen classifier of the flow's target as ``teacher``, it
asks ``T(x0)`` to be seen by that model as the flowed particle ``x1`` is seen (a perceptual loss
in the spirit of feature-matching losses). It uses no labels beyond those the flow already used
(they shaped ``x1``). Pairs are augmented by the same random shift of both images, since a shifted
source picture should land on the shifted flowed picture.

Example::

    lm = LearnedMap(image_shape=(1, 28, 28)).fit(result.X0, result.X, teacher=classifier)
    X_new_flowed = lm(X_new)             # (m, 784), pixels in [0, 1]
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from otdata import checks, progress

__all__ = ["LearnedMap", "MapNet", "shift_pairs"]


class MapNet(nn.Module):
    """Conv encoder (two conv-BN-ReLU-pool blocks, a linear code) and a mirrored decoder.

    The output is a sigmoid, i.e. pixels in (0, 1), the box the image flows are clamped to. With
    ``bounded=False`` it is linear (for features without a box).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, channels: tuple[int, int] = (32, 64),
                 code: int = 256, dropout: float = 0.1, bounded: bool = True):
        super().__init__()
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {image_size}")
        c1, c2 = channels
        s = image_size // 4
        self.shape = (in_channels, image_size, image_size)
        self.bounded = bounded
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * s * s, code), nn.ReLU(),
        )
        # nearest upsampling + 3x3 convolutions: several times faster on CPU than transposed ones
        self.decoder = nn.Sequential(
            nn.Linear(code, c2 * s * s), nn.ReLU(), nn.Unflatten(1, (c2, s, s)),
            nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(),
            nn.Upsample(scale_factor=2), nn.Conv2d(c1, c1 // 2, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1 // 2, in_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, S, S)`` or flat rows ``(B, C*S*S)`` → the same layout."""
        flat = x.dim() == 2
        out = self.decoder(self.encoder(x.reshape(len(x), *self.shape)))
        if self.bounded:
            out = torch.sigmoid(out)
        return out.reshape(len(x), -1) if flat else out


def shift_pairs(a: torch.Tensor, b: torch.Tensor, max_shift: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate image pair ``i`` of ``(B, C, H, W)`` batches ``a`` and ``b`` by the same random
    integer offset in ``[-max_shift, max_shift]²`` (zeros fill in)."""
    if max_shift <= 0:
        return a, b
    B, _, H, W = a.shape
    pad = (max_shift,) * 4
    pa, pb = F.pad(a, pad), F.pad(b, pad)
    dy = torch.randint(0, 2 * max_shift + 1, (B,))
    dx = torch.randint(0, 2 * max_shift + 1, (B,))
    rows = (torch.arange(H)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(W)[None, :] + dx[:, None])[:, None, None, :]
    idx = torch.arange(B)[:, None, None, None]
    ch = torch.arange(a.shape[1])[None, :, None, None]
    return pa[idx, ch, rows, cols], pb[idx, ch, rows, cols]


def _pairs(name: str, X, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """``X`` as float32 images ``(n, *image_shape)``; refuses empty, mis-sized or non-finite rows
    (a NaN in one pair would make every output NaN)."""
    X = torch.as_tensor(X, dtype=torch.float32)
    size = math.prod(image_shape)
    if X.numel() == 0 or X.numel() % size or (X.dim() == 2 and X.shape[1] != size):
        raise ValueError(f"{name} must hold rows of {size} values (images {image_shape}), got shape "
                         f"{tuple(X.shape)}")
    bad = ~torch.isfinite(X.reshape(len(X), -1)).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        raise ValueError(f"{name} has {len(rows)} row(s) with NaN or inf values (first: row "
                         f"{int(rows[0])}); a learned map trained on them outputs NaN. Drop those "
                         "pairs, or find where the flow diverged (lower its step_size).")
    return X.reshape(-1, *image_shape)


class LearnedMap:
    """A network ``T`` trained on a flow's pairs ``(X0[i], X1[i])``, applied to new samples.

    Args:
        image_shape: ``(C, S, S)`` of the flattened rows.
        epochs: passes over the pairs (AdamW, one-cycle learning rate); at least 1.
        batch_size, lr, weight_decay: optimisation.
        pixel_weight: weight of the squared pixel error (× 100 / d, so ~1 for images in [0, 1]).
        teacher_weight: weight of the KL term to the teacher's view of ``x1`` (0 = pixels only).
        augment_shift: random shift (pixels) applied to both images of a pair.
        code, channels, dropout: the :class:`MapNet`.
        bounded: sigmoid output (pixels in [0, 1]).
        seed: of the initialisation, batches and shifts.
        progress: show the epochs (:mod:`otdata.progress`: a bar on a terminal, log lines with
            the time left elsewhere).
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), epochs: int = 30,
                 batch_size: int = 64, lr: float = 2e-3, weight_decay: float = 1e-4,
                 pixel_weight: float = 1.0, teacher_weight: float = 1.0, augment_shift: int = 1, code: int = 256,
                 channels: tuple[int, int] = (32, 64), dropout: float = 0.1, bounded: bool = True,
                 seed: int = 0, progress: bool = True):
        if not (isinstance(image_shape, tuple | list) and len(image_shape) == 3):
            raise checks.SettingError(f"image_shape must be (channels, size, size), got {image_shape!r}")
        self.image_shape = tuple(checks.integer("image_shape", s, low=1) for s in image_shape)
        self.epochs = checks.integer("epochs", epochs, low=1)  # 0 would return an untrained map
        self.batch_size = checks.integer("batch_size", batch_size, low=1)
        self.lr = checks.number("lr", lr, low=0, low_open=True)
        self.weight_decay = checks.number("weight_decay", weight_decay, low=0)
        self.pixel_weight = checks.number("pixel_weight", pixel_weight, low=0)
        self.teacher_weight = checks.number("teacher_weight", teacher_weight, low=0)
        self.augment_shift = checks.integer("augment_shift", augment_shift, low=0)
        self.seed = checks.integer("seed", seed, low=0)
        self.progress = checks.boolean("progress", progress)
        code = checks.integer("code", code, low=1)
        channels = checks.pair("channels", channels, checks.integer, low=2)
        dropout = checks.number("dropout", dropout, low=0, high=1, high_open=True)
        bounded = checks.boolean("bounded", bounded)
        with torch.random.fork_rng(devices=[]):  # the initialisation depends on `seed` alone
            torch.manual_seed(seed)
            self.net = MapNet(self.image_shape[0], self.image_shape[1], tuple(channels), code,
                              dropout, bounded)
        self.history: list[dict] = []
        self.seconds = 0.0

    def fit(self, X0: torch.Tensor, X1: torch.Tensor, teacher: nn.Module | None = None) -> LearnedMap:
        """Train on pairs ``X0[i] → X1[i]`` (``(n, C*S*S)`` rows); ``teacher``: a frozen classifier
        of images (used only when ``teacher_weight > 0``). Returns ``self``."""
        X0, X1 = (_pairs(name, X, self.image_shape) for name, X in (("X0", X0), ("X1", X1)))
        if X0.shape != X1.shape:
            raise ValueError(f"X0 and X1 must have the same shape, got {tuple(X0.shape)} and "
                             f"{tuple(X1.shape)}")
        if teacher is not None and self.teacher_weight > 0:
            teacher.eval().requires_grad_(False)
        else:
            teacher = None
        with torch.random.fork_rng(devices=[]):  # dropout and shifts seeded, the caller's RNG untouched
            torch.manual_seed(self.seed)
            self._train(X0, X1, teacher)
        return self

    def _train(self, X0: torch.Tensor, X1: torch.Tensor, teacher: nn.Module | None) -> None:
        use_teacher = teacher is not None
        start = time.perf_counter()
        gen = torch.Generator().manual_seed(self.seed)
        net = self.net.train()
        n, d = len(X0), X0[0].numel()
        steps = self.epochs * math.ceil(n / self.batch_size)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(steps, 1),
                                                    pct_start=0.2)
        if use_teacher:  # the teacher's reading of each flowed particle, once (it is shift-robust)
            with torch.no_grad():
                readings = torch.cat([F.log_softmax(teacher(chunk), dim=1) for chunk in X1.split(512)])
        with progress.track("learned map", self.epochs, "epoch", enabled=self.progress) as bar:
            for epoch in range(self.epochs):
                totals = {"pixel": 0.0, "teacher": 0.0}
                for idx in torch.randperm(n, generator=gen).split(self.batch_size):
                    a, b = shift_pairs(X0[idx], X1[idx], self.augment_shift)
                    out = net(a)
                    pixel = F.mse_loss(out, b, reduction="sum") / (len(idx) * d) * 100
                    loss = self.pixel_weight * pixel
                    if use_teacher:
                        kl = F.kl_div(F.log_softmax(teacher(out), dim=1), readings[idx], log_target=True,
                                      reduction="batchmean")
                        loss = loss + self.teacher_weight * kl
                        totals["teacher"] += float(kl.detach()) * len(idx)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    totals["pixel"] += float(pixel.detach()) * len(idx)
                self.history.append({"epoch": epoch + 1, **{k: v / n for k, v in totals.items()}})
                if bar:
                    h = self.history[-1]
                    bar.advance(1, status=f"pixel loss {h['pixel']:.3f}, teacher KL {h['teacher']:.3f}")
        net.eval()
        self.seconds = time.perf_counter() - start

    @torch.no_grad()
    def __call__(self, X: torch.Tensor, clamp: tuple[float, float] | None = None,
                 batch_size: int = 1024) -> torch.Tensor:
        """The mapped rows ``(m, C*S*S)`` of new samples ``X`` (rows or images)."""
        X = torch.as_tensor(X, dtype=torch.float32)
        self.net.eval()
        parts = [self.net(chunk.reshape(len(chunk), -1)) for chunk in X.split(batch_size)]
        Y = torch.cat(parts) if parts else X.new_zeros(0, math.prod(self.image_shape))
        return Y.clamp(*clamp) if clamp is not None else Y

    transform = __call__
