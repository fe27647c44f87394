"""Pixels on disk → the float tensors every image dataset hands out.

One function, shared by the built-in loaders and the general readers (image folders, arrays,
Hugging Face datasets, CIFAR/SVHN/STL-10), so the same uint8 images give the same tensors whichever
reader brought them in: `X` float32 `(n, C, S, S)`, pixels scaled to [0, 1], resized to a common side
(bilinear, antialiased) when `image_size` is set, optionally normalized. `stack_pixels` first
turns a list of decoded images (gray or RGB, maybe of several sizes) into one tensor.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from otdata.data.features import resize_images


def to_float_images(images: torch.Tensor, image_size: int | None = None, normalize: bool = False,
                    mean: float = 0.1307, std: float = 0.3081) -> torch.Tensor:
    """uint8 `(n, H, W)` (one channel) or `(n, C, H, W)` → float32 `(n, C, S, S)` in [0, 1].

    `image_size=None` keeps the stored size; otherwise a non-square or differently sized image is
    resized to `image_size × image_size`. `normalize` subtracts `mean` and divides by `std` after
    scaling (one value for every channel).
    """
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {images.dtype}.")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (n, H, W) or (n, C, H, W), got {tuple(images.shape)}.")
    X = images.float().div_(255.0)
    if image_size is not None:
        X = resize_images(X, (image_size, image_size))
    if normalize:
        X = (X - mean) / std
    return X


class MixedSizes(ValueError):
    """Images of several sizes and no `image_size` to bring them to one. `sizes` counts the items
    per `(H, W)`; `examples` gives the index of the first item of each size."""

    def __init__(self, sizes: Counter, examples: dict[tuple[int, int], int]):
        self.sizes, self.examples = sizes, examples
        listed = ", ".join(f"{h}×{w} ({n} items, e.g. item {examples[(h, w)]})"
                           for (h, w), n in sizes.most_common(4))
        super().__init__(f"the images have {len(sizes)} different sizes: {listed}")


def stack_pixels(images: list[np.ndarray], image_size: int | None = None) -> torch.Tensor:
    """Decoded images (uint8 `(H, W)` gray or `(H, W, 3)` RGB) as one tensor.

    uint8 `(n, C, H, W)` when every image has one size (gray images get three equal channels when
    any image is RGB); images of several sizes are each resized to `image_size` and returned as
    float `(n, C, S, S)` in [0, 1]; without `image_size` they raise `MixedSizes`.
    """
    rgb = any(a.ndim == 3 for a in images)
    sizes = Counter(a.shape[:2] for a in images)
    if len(sizes) == 1 and len({a.ndim for a in images}) == 1:  # the common case: one stack
        stacked = torch.from_numpy(np.stack(images))
        return stacked.permute(0, 3, 1, 2).contiguous() if rgb else stacked[:, None]
    tensors = [torch.from_numpy(np.array(a)) for a in images]
    tensors = [t.permute(2, 0, 1) if t.ndim == 3 else (t.expand(3, *t.shape) if rgb else t[None])
               for t in tensors]
    if len(sizes) == 1:
        return torch.stack(tensors)
    if image_size is None:
        examples: dict[tuple[int, int], int] = {}
        for i, a in enumerate(images):
            examples.setdefault(a.shape[:2], i)
        raise MixedSizes(sizes, examples)
    return torch.cat([to_float_images(t[None], image_size) for t in tensors])
