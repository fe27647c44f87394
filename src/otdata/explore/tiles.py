"""Grids of small gray images with a caption under each, drawn with PIL (tens of milliseconds where
a matplotlib grid of 60 axes takes seconds): the coupled samples and the flow's frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

SCALE, CAPTION, PAD, HEADER = 3, 14, 4, 18  # default upscaling, caption and header heights, padding (pixels)


def tile_grid(images: torch.Tensor, captions: Sequence[Sequence[str]], header: Sequence[str] = (),
              gap_after: int | None = None, scale: int = SCALE):
    """A PIL image of ``images`` ``(rows, cols, H, W)`` in [0, 1], ``captions[r][c]`` under each,
    ``header[c]`` above each column, and a wider gap after column ``gap_after`` (e.g. between a
    source item and its matches); each pixel drawn ``scale`` × ``scale``."""
    from PIL import Image, ImageDraw

    rows, cols, h, w = images.shape
    cell_w, cell_h = w * scale + 2 * PAD, h * scale + CAPTION + 2 * PAD
    gap = 3 * PAD if gap_after is not None else 0
    top = HEADER if header else 0
    canvas = Image.new("RGB", (cols * cell_w + gap, top + rows * cell_h), "white")
    draw = ImageDraw.Draw(canvas)
    pixels = (images.detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)
    for c in range(cols):
        x = c * cell_w + (gap if gap_after is not None and c > gap_after else 0)
        if header:
            draw.text((x + PAD, 2), str(header[c]), fill="black")
        for r in range(rows):
            y = top + r * cell_h
            tile = Image.fromarray(pixels[r, c]).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (x + PAD, y + PAD))
            draw.text((x + PAD, y + PAD + h * scale + 1), str(captions[r][c])[:12], fill="black")
    return canvas
