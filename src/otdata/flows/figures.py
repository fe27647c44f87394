"""Figures of image flows: snapshot grids, trajectory strips and an animated GIF.

All functions take images as ``(n, C, H, W)`` / ``(n, H, W)`` tensors, or flat ``(n, d)`` tensors
together with ``image_shape`` (e.g. ``(1, 28, 28)``). Pixel values are shown in ``value_range``
(default ``(0, 1)``; values outside are clipped).

Example::

    from otdata.flows.figures import save_image_grid, save_flow_snapshots, save_flow_gif
    save_image_grid(result.X[:64], "flowed.png", image_shape=(1, 28, 28))
    save_flow_snapshots(result.trajectory, "snapshots.png", image_shape=(1, 28, 28), n_images=8)
    save_flow_gif(result.trajectory, "flow.gif", image_shape=(1, 28, 28), n_images=32)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from otdata.plots import save_figure

__all__ = ["to_images", "image_grid", "save_image_grid", "save_flow_snapshots", "save_flow_gif",
           "plot_history"]


def to_images(X, image_shape: Sequence[int] | None = None) -> torch.Tensor:
    """``(n, C, H, W)`` float tensor from flat ``(n, d)`` (needs ``image_shape``) or image tensors."""
    X = torch.as_tensor(X).detach().cpu().float()
    if X.ndim == 2:
        if image_shape is None:
            side = int(round(math.sqrt(X.shape[1])))
            if side * side != X.shape[1]:
                raise ValueError(f"cannot infer an image shape for d={X.shape[1]}; pass image_shape")
            image_shape = (1, side, side)
        image_shape = tuple(image_shape)
        if len(image_shape) == 2:
            image_shape = (1, *image_shape)
        X = X.reshape(X.shape[0], *image_shape)
    elif X.ndim == 3:
        X = X.unsqueeze(1)
    if X.ndim != 4:
        raise ValueError(f"expected (n, d), (n, H, W) or (n, C, H, W) images, got {tuple(X.shape)}")
    return X


def image_grid(X, image_shape=None, nrow: int | None = None, value_range=(0.0, 1.0),
               padding: int = 2, pad_value: float = 1.0) -> np.ndarray:
    """Tile images into one ``uint8`` array (H_grid, W_grid) or (H_grid, W_grid, 3)."""
    imgs = to_images(X, image_shape)
    n, c, h, w = imgs.shape
    lo, hi = value_range
    imgs = ((imgs - lo) / (hi - lo)).clamp(0, 1)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n))))
    ncol_rows = int(math.ceil(n / nrow))
    H = ncol_rows * (h + padding) + padding
    W = nrow * (w + padding) + padding
    grid = torch.full((c, H, W), float(pad_value))
    for k in range(n):
        r, q = divmod(k, nrow)
        y0, x0 = padding + r * (h + padding), padding + q * (w + padding)
        grid[:, y0:y0 + h, x0:x0 + w] = imgs[k]
    arr = (grid.numpy() * 255).round().astype(np.uint8)
    return arr[0] if c == 1 else np.transpose(arr[:3], (1, 2, 0))


def save_image_grid(X, path: str | Path, image_shape=None, nrow: int | None = None,
                    value_range=(0.0, 1.0), scale: int = 2) -> Path:
    """Write :func:`image_grid` as a PNG (nearest-neighbour upscaled by ``scale``)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(image_grid(X, image_shape, nrow, value_range))
    if scale != 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
    return path


def _frames(trajectory) -> tuple[torch.Tensor, list[int]]:
    if trajectory is None:
        raise ValueError("no trajectory recorded; run the flow with trajectory_every > 0")
    if isinstance(trajectory, dict):
        frames, steps = trajectory["frames"], list(trajectory["steps"])
    else:
        frames, steps = torch.as_tensor(trajectory), list(range(len(trajectory)))
    if frames is None or len(frames) == 0:
        raise ValueError("trajectory is empty; run the flow with trajectory_every > 0")
    return frames, steps


def moving_rows(frames: torch.Tensor, n_snapshots: int, still: float = 0.005) -> list[int]:
    """Which recorded frames to show: spread evenly over how far the particles moved (their summed
    mean absolute change), not over the steps, so the rows come where the particles still move; the
    first and last frames always, and no row whose mean absolute difference to the next shown row is
    under `still` (in pixel units: a row that would look the same)."""
    flat = frames.reshape(len(frames), -1).float()
    if len(flat) <= 1:
        return [0]
    path = torch.cat([torch.zeros(1), torch.cumsum((flat[1:] - flat[:-1]).abs().mean(dim=1), 0)])
    marks = torch.linspace(0, float(path[-1]), max(2, n_snapshots))
    picks = sorted({min(int(torch.searchsorted(path, m)), len(flat) - 1) for m in marks} | {0, len(flat) - 1})
    rows = [picks[-1]]
    for t in reversed(picks[:-1]):  # from the end: keep the last frame, drop look-alikes before it
        if float((flat[t] - flat[rows[0]]).abs().mean()) >= still:
            rows.insert(0, t)
    return rows


def save_flow_snapshots(trajectory, path: str | Path, image_shape=None, n_images: int = 8,
                        n_snapshots: int = 6, value_range=(0.0, 1.0), title: str | None = None,
                        captions: Sequence[str] | None = None) -> Path:
    """One row per snapshot (step), ``n_images`` particles per row, step numbers on the left.

    ``trajectory`` is ``FlowResult.trajectory`` (dict with ``frames``/``steps``) or a
    ``(T, m, d)`` tensor. Up to ``n_snapshots`` rows, at the steps where the particles move
    (:func:`moving_rows`: a flow that settles early gets its rows early, and no two rows look the
    same). ``captions`` (one per recorded particle, e.g. its class name) are written under the
    columns of the last row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames, steps = _frames(trajectory)
    rows = moving_rows(frames[:, :n_images], n_snapshots)
    n_images = min(n_images, frames.shape[1])
    fig, axes = plt.subplots(len(rows), 1, figsize=(1.0 * n_images + 1.2, 1.1 * len(rows) + 1.0),
                             squeeze=False)
    side = None
    for ax, t in zip(axes[:, 0], rows):
        grid = image_grid(frames[t, :n_images], image_shape, nrow=n_images, value_range=value_range)
        side = (grid.shape[1] - 2) / n_images
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(f"step {steps[t]}", rotation=0, ha="right", va="center", fontsize=11)
    if captions is not None and side:
        last = axes[-1, 0]
        last.set_xticks([2 + side * (j + 0.5) - 1 for j in range(n_images)],
                        [str(c) for c in list(captions)[:n_images]], fontsize=11)
        last.tick_params(length=0)
    fig.suptitle(title or "Particles along the flow (one row per step, the same particles in "
                 "every row)", fontsize=12)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def _captioned(grid, captions: Sequence[str], nrow: int, side: int, font, padding: int = 2):
    """A grid image (``image_grid`` of ``side``-pixel cells, upscaled) with a text strip under each
    row of cells holding each cell's caption."""
    from PIL import Image, ImageDraw

    strip = int(getattr(font, "size", 12)) + padding + 4
    rows = -(-len(captions) // nrow)
    cell = side + padding
    out = Image.new("L", (grid.width, grid.height + rows * strip), color=255)
    draw = ImageDraw.Draw(out)
    for r in range(rows):
        band = grid.crop((0, r * cell, grid.width, (r + 1) * cell + padding))
        out.paste(band, (0, r * (cell + strip)))
        for q in range(nrow):
            k = r * nrow + q
            if k < len(captions):
                x = padding + q * cell + side // 2
                draw.text((x, r * (cell + strip) + cell + padding + 2), str(captions[k]), fill=0,
                          font=font, anchor="mt")
    return out


def save_flow_gif(trajectory, path: str | Path, image_shape=None, n_images: int = 32,
                  nrow: int | None = None, duration_ms: int = 120, value_range=(0.0, 1.0),
                  scale: int = 3, hold_last_ms: int = 1000, title: str | None = None,
                  captions: Sequence[str] | None = None) -> Path:
    """Animated GIF: one frame per recorded step, each frame a grid of ``n_images`` particles with
    a header line carrying the step number (and ``title``); ``captions`` (one per recorded
    particle, e.g. its class name) are written under the particles in every frame, the last one
    (held ``hold_last_ms``) included."""
    from PIL import Image, ImageDraw

    frames, steps = _frames(trajectory)
    n_images = min(n_images, frames.shape[1])
    nrow = nrow or max(1, int(math.ceil(math.sqrt(n_images))))
    last = steps[-1] if steps else len(frames) - 1
    font = _font(14)
    imgs = []
    for t in range(len(frames)):
        im = Image.fromarray(image_grid(frames[t, :n_images], image_shape, nrow, value_range))
        if scale != 1:
            im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
        im = im.convert("L")
        if captions is not None:
            side = to_images(frames[t, :1], image_shape).shape[-1] * scale
            im = _captioned(im, [str(c).replace("→", "->") for c in list(captions)[:n_images]], nrow,
                            side, font, padding=2 * scale)
        framed = Image.new("L", (im.width, im.height + 22), color=255)
        framed.paste(im, (0, 22))
        header = f"step {steps[t]} / {last}" + (f"   {title}" if title else "")
        header = header.replace("→", "->")  # the default bitmap font has no arrow
        ImageDraw.Draw(framed).text((4, 3), header, fill=0, font=font)
        imgs.append(framed.convert("P"))
    durations = [duration_ms] * len(imgs)
    durations[-1] = max(duration_ms, hold_last_ms)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=durations, loop=0)
    return path


def _same(a: list, b: list) -> bool:
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    return bool(pairs) and all(math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9) for x, y in pairs)


def plot_history(history: list[dict], path: str | Path, keys: Sequence[str] | None = None,
                 logy: bool = True, title: str = "Flow objective per step",
                 ylabel: str = "objective value", refresh_every: int | None = None) -> Path:
    """Objective (and its terms) against the step number.

    A term equal to the objective (a one-term objective) is not drawn again: the objective's legend
    names it. ``refresh_every=k`` marks the steps where the moving classes' statistics are
    recomputed (the curve jumps there). The y axis is logarithmic when every value is positive, with
    labelled ticks at 1, 2 and 5 times each power of ten (also 3 and 7 over a narrow range)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    keys = list(keys or [k for k in history[0] if k not in ("step", "grad_norm", "seconds")])
    steps = [h["step"] for h in history]
    series = {k: [h.get(k) for h in history] for k in keys}
    names = {k: k for k in keys}
    if "objective" in series:
        for k in [k for k in keys if k != "objective"]:
            if _same(series[k], series["objective"]):
                names["objective"] = f"objective (= {k})"
                del series[k]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k, vals in series.items():
        ax.plot(steps, [float("nan") if v is None else v for v in vals], label=names[k],
                marker="." if len(steps) <= 60 else None, lw=1.4)
    values = [v for vals in series.values() for v in vals if v is not None and math.isfinite(v)]
    if logy and values and min(values) > 0:
        ax.set_yscale("log")
        narrow = max(values) / min(values) < 30  # under 1.5 decades: more ticks
        subs = (1.0, 2.0, 3.0, 5.0, 7.0) if narrow else (1.0, 2.0, 5.0)
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=subs))
        ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0,
                                                           8.0, 9.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ylabel += " (log scale)"
    if refresh_every and refresh_every > 0 and steps:
        marks = [s for s in range(refresh_every, int(max(steps)) + 1, refresh_every)]
        for i, s in enumerate(marks):
            ax.axvline(s, color="0.6", ls=":", lw=1,
                       label=f"class statistics refreshed (every {refresh_every} steps)"
                       if i == 0 else None)
    ax.set_xlabel("flow step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=12)
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
