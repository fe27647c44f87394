"""Feature steps: put two datasets in one feature space before they are compared or flowed.

A step maps a batch of items ``X`` (images ``(n, C, H, W)`` or ``(n, H, W)``, floats in [0, 1] or
uint8) to new items. Two steps come with otdata:

* :class:`Resize` — images to one size and one channel count (``Resize(28, channels=1)`` makes a
  32×32 RGB set comparable with MNIST; bilinear, antialiased, as the built-in loaders resize);
* :class:`~otdata.data.image_encoder.ImageEncoder` — a pretrained image encoder read from a local
  weights file or folder (any torchvision model, or a Hugging Face image model), its vectors cached
  on disk by content hash.

Texts have their encoder already: :class:`~otdata.data.embed.TextEncoder` (``embed_texts``).

In Python, call a step on a tensor (``Resize(28, channels=1)(X)``) or give it to a datamodule
(``MNISTDataModule(..., features=step)``: applied to every split it hands out, after subsampling).
On the command line, each dataset config has a ``features`` entry (the ``features`` config group):

    otdata task=distance data@source=image_folder source.root=... source.features=resize28_gray
    otdata task=distance ... features@source.features=encoder source.features.model=/path/weights.pt \\
        features@target.features=encoder target.features.model=/path/weights.pt

``source.features=<name>`` names a file of ``conf/features/`` (settings as written there);
``features@source.features=<name>`` selects the same file as a config group, whose keys can then be
overridden (``source.features.size=32``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["FeatureStep", "Resize", "feature_step", "resize_images"]


class FeatureStep:
    """A map from a batch of items to features, with a description of what it does."""

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The settings that change the output (for tables and cache keys)."""
        return {"step": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "step")
        return f"{type(self).__name__}({args})"


def as_images(X: Tensor, name: str = "X") -> Tensor:
    """``X`` as float ``(n, C, H, W)`` images (uint8 read as intensities /255); ``(n, H, W)`` is
    one channel. Flattened items cannot be resized: the error says so."""
    X = torch.as_tensor(X)
    if X.ndim == 3:
        X = X[:, None]
    if X.ndim != 4:
        raise ValueError(f"{name} has items of shape {tuple(X.shape[1:])}, not images (C, H, W) or (H, W); a "
                         "resize or image-encoder step needs the images unflattened (the datamodule's "
                         "tensors(flatten=False), or X.reshape(n, C, H, W))")
    if X.dtype == torch.uint8:
        return X.float() / 255.0
    return X if torch.is_floating_point(X) else X.float()


def resize_images(X: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize of float ``(n, C, H, W)`` images (as the built-in loaders resize),
    clamped to [0, 1] or to the input's wider range (antialiasing overshoots at edges)."""
    if tuple(X.shape[-2:]) == tuple(size):
        return X
    lo, hi = min(float(X.min()), 0.0), max(float(X.max()), 1.0)
    return F.interpolate(X, size=size, mode="bilinear", antialias=True, align_corners=False).clamp_(lo, hi)


def convert_channels(X: Tensor, channels: int | None, name: str = "X") -> Tensor:
    """Gray → RGB by repeating the channel; RGB(A) → gray by ITU-R 601 luma (as PIL's ``convert("L")``)."""
    c = X.shape[1]
    if channels is None or channels == c:
        return X
    if channels == 3 and c == 1:
        return X.expand(-1, 3, -1, -1).contiguous()
    if channels == 1 and c in (3, 4):
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=X.dtype, device=X.device)
        return (X[:, :3] * weights[None, :, None, None]).sum(1, keepdim=True)
    if channels == 3 and c == 4:
        return X[:, :3]
    raise ValueError(f"{name}: cannot turn images with {c} channel(s) into {channels}; use channels=1 (gray) "
                     "or 3 (RGB), from 1, 3 or 4 stored channels")


class Resize(FeatureStep):
    """Images to ``size`` (an int for square, or ``(H, W)``) and ``channels`` (1 gray, 3 RGB, None
    as stored). Output: float ``(n, channels, H, W)`` in the input's range."""

    def __init__(self, size: int | tuple[int, int] | list[int], channels: int | None = None):
        size = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"size must be a positive int or (H, W), got {size!r}")
        if channels not in (None, 1, 3):
            raise ValueError(f"channels must be 1 (gray), 3 (RGB) or None (as stored), got {channels!r}")
        self.size, self.channels = size, channels

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:
        return resize_images(convert_channels(as_images(X, name), self.channels, name), self.size)

    def describe(self) -> dict[str, Any]:
        return {"step": "Resize", "size": list(self.size), "channels": self.channels}


def feature_step(spec) -> FeatureStep | None:
    """A step from what a config or a caller gives: None, ``"none"`` or an empty mapping (no step),
    a :class:`FeatureStep`, a mapping with ``_target_`` (built through otdata's allow-list), or the
    name of a file of ``conf/features/``."""
    if spec is None or isinstance(spec, FeatureStep):
        return spec
    if isinstance(spec, str):
        return None if spec.lower() in ("none", "null", "") else _named_step(spec)
    if isinstance(spec, Mapping) or hasattr(spec, "items"):
        if len(spec) == 0:
            return None
        from otdata.instantiate import safe_instantiate

        return feature_step(safe_instantiate(spec, key="features"))
    if callable(spec):
        return _Callable(spec)
    raise TypeError(f"features must be a feature step, a config mapping or a name in conf/features/, got "
                    f"{type(spec).__name__}")


def _named_step(name: str) -> FeatureStep | None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from otdata.config import CONFIG_DIR

    path = CONFIG_DIR / "features" / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / "features").glob("*.yaml"))
        raise ValueError(f"features={name!r} is not a feature step; use one of {options} (files of {path.parent})")
    node = OmegaConf.load(path)
    fix = (f"select it as a config group and set them, e.g. `features@source.features={name} "
           "source.features.model=/path/to/weights`")
    missing = sorted(str(k) for k in node if OmegaConf.is_missing(node, k))
    if missing:
        raise ValueError(f"features={name!r} needs settings {missing}; {fix}")
    try:
        OmegaConf.resolve(node)
    except OmegaConfBaseException as error:
        raise ValueError(f"features={name!r} refers to other settings of the run ({error}); {fix}") from None
    return feature_step(node)


class _Callable(FeatureStep):
    """Any function of the items (Python only)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:
        return self.fn(X)

    def describe(self) -> dict[str, Any]:
        return {"step": getattr(self.fn, "__name__", repr(self.fn))}
