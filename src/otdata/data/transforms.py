"""Image transforms applied when a split is materialised: rotated, cropped, blurred, ... versions of
a dataset, the same items for a distance, a flow and a training run.

A transform is named by a file of ``conf/transform/`` (``crop``, ``rotate``, ``flip``, ``affine``,
``blur``, ``jitter``, ``invert``, ``noise``), whose keys are its parameters, and is carried out by
torchvision's ``transforms.v2``. Several apply in the order given. Every item gets its own random
draw, seeded by the dataset's seed, its split and the item's index in the split: the same item is
transformed the same way whatever subsample it is in, and a run repeats exactly.

On the command line each dataset has a ``transform`` entry, and the top-level ``transform`` node
holds every named transform's parameters::

    otdata task=distance source.transform=rotate
    otdata task=distance source.transform=[rotate,crop] transform.rotate.degrees=[90,90]
    otdata task=train data=usps data.transform=blur transform.blur.sigma=[1.0,1.0]

In Python: ``MNISTDataModule(..., transform="rotate")``, ``transform=["rotate", "crop"]``,
``transform={"rotate": {"degrees": 30}}``, or :func:`transform_step` to call one on images
``(n, C, H, W)`` directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchvision.transforms import v2

from otdata.data.features import as_images

__all__ = ["TRANSFORMS", "Transform", "transform_step", "transform_names"]


def _angle_range(degrees) -> list[float]:
    """``30`` → ``[-30, 30]``; ``[a, b]`` as given (``[90, 90]`` is a fixed angle)."""
    if isinstance(degrees, int | float) and not isinstance(degrees, bool):
        return [-float(degrees), float(degrees)]
    return [float(d) for d in degrees]


def _pair(value) -> list[float]:
    """A number ``v`` → ``[v, v]``; a pair as given."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [float(value), float(value)]
    return [float(v) for v in value]


def _probability(p) -> float:
    """``p`` as a probability, refused outside [0, 1] (``True`` is not one)."""
    if isinstance(p, bool) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"p={p!r} is not a probability in [0, 1]")
    return float(p)


def _finite(value, what: str):
    """Refuse NaN, inf and booleans among the numbers of a parameter."""
    for v in value if isinstance(value, list | tuple) else [value]:
        if isinstance(v, bool) or not torch.isfinite(torch.tensor(float(v))):
            raise ValueError(f"{what}={value!r} must hold finite numbers")
    return value


def _crop(size, scale, ratio):
    scale = _finite(_pair(scale), "scale")
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale={scale} must be a range within (0, 1]")
    return v2.RandomResizedCrop(size=list(size), scale=scale, ratio=_finite(_pair(ratio), "ratio"),
                                antialias=True)


def _affine(size, degrees, translate, scale, shear):
    return v2.RandomAffine(degrees=_finite(_angle_range(degrees), "degrees"),
                           translate=_finite(_pair(translate), "translate"),
                           scale=_finite(_pair(scale), "scale"), shear=_finite(_angle_range(shear), "shear"))


def _jitter(size, brightness, contrast):
    return v2.ColorJitter(brightness=_finite(brightness, "brightness"), contrast=_finite(contrast, "contrast"))


def _blur(size, kernel_size, sigma):
    if isinstance(kernel_size, bool) or int(kernel_size) != kernel_size:
        raise ValueError(f"kernel_size={kernel_size!r} must be an odd integer")
    return v2.GaussianBlur(kernel_size=int(kernel_size), sigma=_finite(_pair(sigma), "sigma"))


#: what each name builds: a function of (the image size (H, W), the parameters)
TRANSFORMS = {
    "crop": _crop,
    "rotate": lambda size, degrees: v2.RandomRotation(degrees=_finite(_angle_range(degrees), "degrees")),
    "flip": lambda size, p: v2.RandomHorizontalFlip(p=_probability(p)),
    "affine": _affine,
    "blur": _blur,
    "jitter": _jitter,
    "invert": lambda size, p: v2.RandomInvert(p=_probability(p)),
    "noise": lambda size, sigma: v2.GaussianNoise(mean=0.0, sigma=float(_finite(sigma, "sigma")), clip=True),
}


def transform_names() -> list[str]:
    """The names a ``transform`` setting accepts (besides ``none``)."""
    return sorted(TRANSFORMS)


class Transform:
    """Named image transforms applied in order, each item with its own seeded draw.

    Args:
        steps: ``[(name, parameters), ...]``, names from :data:`TRANSFORMS`.
    """

    def __init__(self, steps: Sequence[tuple[str, Mapping[str, Any]]]):
        self.steps = [(name, dict(params)) for name, params in steps]
        for name, params in self.steps:
            _build(name, params, (28, 28))  # refuse a bad name or parameter now, not at first use

    def __call__(self, X: Tensor, *, seed: int = 0, index: Tensor | None = None, split: str = "train",
                 name: str = "X") -> Tensor:
        """``X`` (images ``(n, C, H, W)`` or ``(n, H, W)``) transformed, as float ``(n, C, H, W)``.
        ``index[i]`` is item i's position in its whole split (default ``0..n-1``): with ``seed``
        and ``split`` it fixes the item's random draw."""
        if torch.as_tensor(X).ndim not in (3, 4):
            raise ValueError(f"{name} has items of shape {tuple(X.shape[1:])}, not images: image transforms "
                             "apply to image datasets only; set this dataset's `transform` to none")
        X = as_images(X, name)
        index = torch.arange(len(X)) if index is None else torch.as_tensor(index)
        op = v2.Compose([_build(n, p, tuple(X.shape[-2:])) for n, p in self.steps])
        out = torch.empty_like(X)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one small image at a time: threads cost more than they give
        try:
            with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
                for i, j in enumerate(index.tolist()):
                    torch.default_generator.manual_seed(_item_seed(seed, split, j))
                    out[i] = op(X[i])
        finally:
            torch.set_num_threads(threads)
        return out

    def describe(self) -> list[dict[str, Any]]:
        """The transforms and their parameters, in order (for settings, tables and cache keys)."""
        return [{"transform": name, **params} for name, params in self.steps]

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in p.items())})" for n, p in self.steps)
        return f"Transform({inner})"


def _item_seed(seed: int, split: str, index: int) -> int:
    """A well-mixed 32-bit seed for one item (torch's CPU generator keeps 32 bits of a seed)."""
    return int(np.random.SeedSequence([int(seed), int(split != "train"), int(index)]).generate_state(1)[0])


def _build(name: str, params: Mapping[str, Any], size: tuple[int, int]):
    """The torchvision transform of one named step; a bad name or parameter is refused with the
    choices."""
    if name not in TRANSFORMS:
        raise ValueError(f"transform {name!r} is not known; use one of {['none', *transform_names()]} "
                         "(files of conf/transform/), or a list of them, e.g. `source.transform=[rotate,crop]`")
    try:
        return TRANSFORMS[name](size, **params)
    except (TypeError, ValueError) as error:
        allowed = sorted(_defaults(name))
        raise ValueError(f"transform {name!r} with parameters {dict(params)} is refused ({error}); its "
                         f"parameters are {allowed} (conf/transform/{name}.yaml says what each means), "
                         f"e.g. `transform.{name}.{allowed[0]}=...`") from None


def _defaults(name: str) -> dict[str, Any]:
    """The parameters of ``conf/transform/<name>.yaml`` (the command line's defaults)."""
    from omegaconf import OmegaConf

    from otdata.config import CONFIG_DIR

    node = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "transform" / f"{name}.yaml"), resolve=True)
    return dict(node or {})


def _step(item, options: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """One ``(name, parameters)`` from a name or a one-key mapping ``{name: {parameter: value}}``;
    parameters not given come from ``options[name]``, then from the name's config file."""
    if isinstance(item, str):
        name, given = item.strip().lower(), {}
    elif isinstance(item, Mapping) and len(item) == 1:
        (name, given), = item.items()
        name, given = str(name).lower(), dict(given or {})
    else:
        raise ValueError(f"a transform is a name or a one-key mapping {{name: {{parameter: value}}}}, got {item!r}")
    if name in ("none", "null", ""):
        return None
    if name not in TRANSFORMS:
        _build(name, {}, (28, 28))
    params = {**_defaults(name), **dict(options.get(name) or {}), **given}
    unknown = sorted(set(params) - set(_defaults(name)))
    if unknown:
        raise ValueError(f"transform {name!r} has no parameter(s) {unknown}; its parameters are "
                         f"{sorted(_defaults(name))} (conf/transform/{name}.yaml)")
    return name, params


def transform_step(spec, options: Mapping[str, Any] | None = None) -> Transform | None:
    """A :class:`Transform` from what a config or a caller gives: ``None``/``"none"`` (no
    transform), a name, a list of names or one-key mappings, a mapping ``{name: parameters}``
    (applied in its order), or a :class:`Transform`. ``options`` holds parameters per name (the
    command line's top-level ``transform`` node)."""
    if spec is None or isinstance(spec, Transform):
        return spec
    options = _plain(options) or {}
    spec = _plain(spec)
    if isinstance(spec, str):
        spec = [spec]
    elif isinstance(spec, Mapping):
        spec = [{name: params} for name, params in spec.items()]
    if not isinstance(spec, list):
        raise ValueError(f"transform must be a name, a list of names or a mapping of name → parameters, "
                         f"got {type(spec).__name__}; use one of {['none', *transform_names()]}")
    steps = [s for s in (_step(item, options) for item in spec) if s is not None]
    return Transform(steps) if steps else None


def _plain(value):
    """An OmegaConf node as plain Python containers (others as they are)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value
