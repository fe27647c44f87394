"""Geometric transforms of images, as feature steps: the items a distance or a flow sees after a
crop or a rotation (the talk's "None / Crop / Rotate" choices).

Both keep the image size and channels, so a transformed MNIST stays in MNIST's feature space and
can be compared with any 28×28 gray dataset:

* :class:`Crop` — the centred ``size`` × ``size`` square, resized back to the full side (a zoom);
* :class:`Rotate` — a rotation by ``degrees`` counter-clockwise about the centre, bilinear, the
  corners filled with 0 (the background of the *NIST digits).

In Python: ``Rotate(30)(X)``, or ``MNISTDataModule(..., features=Crop(20))``. On the command line,
``source.features=crop`` / ``rotate`` (``conf/features/``), or as a group to set the parameter:
``features@source.features=rotate source.features.degrees=45``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from otdata.data.features import FeatureStep, as_images, resize_images

__all__ = ["Crop", "Rotate", "TRANSFORMS", "transform_step"]


class Crop(FeatureStep):
    """The centred ``size`` × ``size`` square of each image, resized back to the image's own side
    (bilinear, antialiased). ``size`` at least the side: the images unchanged."""

    def __init__(self, size: int = 20):
        if isinstance(size, bool) or int(size) != size or size < 2:
            raise ValueError(f"crop size must be an integer number of pixels >= 2, got {size!r}")
        self.size = int(size)

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:
        X = as_images(X, name)
        h, w = X.shape[-2:]
        if self.size >= min(h, w):
            return X
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return resize_images(X[..., top:top + self.size, left:left + self.size].contiguous(), (h, w))

    def describe(self) -> dict[str, Any]:
        return {"step": "Crop", "size": self.size}


class Rotate(FeatureStep):
    """Each image rotated by ``degrees`` counter-clockwise about its centre (bilinear; the corners
    that come in from outside the image are 0)."""

    def __init__(self, degrees: float = 30.0):
        degrees = float(degrees)
        if not math.isfinite(degrees):
            raise ValueError(f"rotation degrees must be a finite number, got {degrees!r}")
        self.degrees = degrees

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:
        X = as_images(X, name)
        if self.degrees % 360 == 0:
            return X
        t = -math.radians(self.degrees)  # image rows grow downward: a visual counter-clockwise turn
        h, w = X.shape[-2:]
        # output pixel -> input pixel (normalised coordinates, aspect-corrected): rotate by -t
        theta = torch.tensor([[math.cos(t), math.sin(t) * h / w, 0.0],
                              [-math.sin(t) * w / h, math.cos(t), 0.0]], dtype=X.dtype)
        grid = F.affine_grid(theta.expand(len(X), 2, 3), list(X.shape), align_corners=False)
        return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def describe(self) -> dict[str, Any]:
        return {"step": "Rotate", "degrees": self.degrees}


#: the transforms by name, with their one parameter
TRANSFORMS = {"none": None, "crop": Crop, "rotate": Rotate}


def transform_step(name: str, parameter: float | None = None) -> FeatureStep | None:
    """``"none"`` → None, ``"crop"`` → ``Crop(parameter)``, ``"rotate"`` → ``Rotate(parameter)``
    (each class's default when ``parameter`` is None)."""
    key = str(name).lower()
    if key not in TRANSFORMS:
        raise ValueError(f"transform must be one of {sorted(TRANSFORMS)}, got {name!r}")
    cls = TRANSFORMS[key]
    if cls is None:
        return None
    return cls() if parameter is None else cls(int(parameter) if cls is Crop and float(parameter).is_integer()
                                               else parameter)
