"""A pretrained image encoder as a feature step, read from local weights, with an on-disk cache.

``ImageEncoder(model=...)`` takes

* a folder holding a Hugging Face image model (``config.json`` + weights, as ``save_pretrained``
  writes it): loaded with ``transformers.AutoModel``; the vector is the model's ``pooler_output``
  or, without one, the mean of its last hidden states;
* a weights file (``.pt``/``.pth``/``.bin``: a ``state_dict`` read with ``weights_only=True``, or
  ``.safetensors``) of a torchvision architecture named by ``arch`` (e.g. ``resnet18``): built
  with ``torchvision.models.get_model(arch, weights=None)``, its last linear layer (the classifier
  head) replaced by the identity, so the vector is the penultimate representation.

Nothing is downloaded. Images are turned into the encoder's input first: ``channels`` (3 for RGB
encoders; gray images are repeated), ``image_size`` (a Hugging Face model's own size is read from
its config), then normalised with ``mean``/``std`` (a Hugging Face folder's
``preprocessor_config.json`` values when present, else ImageNet's). Output: float32 ``(n, D)``.

With ``cache_dir``, vectors are stored under a key hashing the encoder (file content, or a folder's
config and weight files, see :func:`otdata.data.embed.model_identity`), the preprocessing settings
and the images' bytes; a later call with the same key reads them without loading the model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from otdata.data.content_cache import cached_tensor, file_digest, tensor_digest
from otdata.data.embed import model_identity
from otdata.data.features import FeatureStep, as_images, convert_channels, resize_images

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_FILES = (".pt", ".pth", ".bin", ".safetensors")


class ImageEncoder(FeatureStep):
    """Images → vectors of a pretrained encoder (see the module doc for the model forms).

    Args:
        model: local folder (Hugging Face) or weights file (torchvision, with ``arch``).
        arch: torchvision architecture of a weights file (any name ``torchvision.models.get_model``
            knows); None for a Hugging Face folder.
        image_size: side of the encoder's input (None: a Hugging Face model's configured size, else 224).
        channels: input channels of the encoder (3 for the usual RGB encoders).
        mean, std: per-channel normalisation (None: the model folder's or ImageNet's).
        batch_size: images per forward pass. device: where the encoder runs.
        cache_dir: folder for cached vectors (None: no cache).
    """

    def __init__(self, model: str | os.PathLike | None, arch: str | None = None, image_size: int | None = None,
                 channels: int = 3, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 batch_size: int = 64, device: str = "cpu", cache_dir: str | os.PathLike | None = None):
        if model is None:
            raise ValueError("the image encoder needs its weights: set `source.features.model=/path` (and "
                             "`target.features.model`) to a torchvision weights file (with `.arch=resnet18` or the "
                             "architecture it holds) or a Hugging Face model folder; nothing is downloaded")
        self.model = Path(model).expanduser()
        if not self.model.exists():
            raise FileNotFoundError(
                f"image encoder {str(self.model)!r} does not exist; give a local weights file (with arch=...) or "
                "a Hugging Face model folder (`source.features.model=/path`); nothing is downloaded")
        self.hf = self.model.is_dir()
        if self.hf and not (self.model / "config.json").is_file():
            raise ValueError(f"{self.model} is a folder without config.json: not a Hugging Face model folder; "
                             "pass the folder save_pretrained wrote, or a torchvision weights file with arch=...")
        if not self.hf and (arch is None or self.model.suffix not in WEIGHT_FILES):
            raise ValueError(f"{self.model.name}: a weights file needs arch= (a torchvision architecture, e.g. "
                             f"'resnet18') and one of the suffixes {WEIGHT_FILES}")
        self.arch, self.channels, self.batch_size, self.device = arch, int(channels), int(batch_size), device
        config = self._preprocessor_config() if self.hf else {}
        self.image_size = int(image_size or config.get("image_size") or 224)
        self.mean = tuple(mean or config.get("image_mean") or IMAGENET_MEAN)[: self.channels]
        self.std = tuple(std or config.get("image_std") or IMAGENET_STD)[: self.channels]
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._net = None
        self._identity: dict | None = None

    def _preprocessor_config(self) -> dict:
        """Input size and normalisation a Hugging Face folder declares."""
        out = {}
        model_config = json.loads((self.model / "config.json").read_text(encoding="utf-8"))
        if isinstance(model_config.get("image_size"), int):
            out["image_size"] = model_config["image_size"]
        pre = self.model / "preprocessor_config.json"
        if pre.is_file():
            p = json.loads(pre.read_text(encoding="utf-8"))
            out.update({k: p[k] for k in ("image_mean", "image_std") if k in p})
        return out

    # -- identity and cache ---------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        return {"step": "ImageEncoder", "model": str(self.model), "arch": self.arch, "image_size": self.image_size,
                "channels": self.channels, "mean": list(self.mean), "std": list(self.std)}

    def identity(self) -> dict:
        if self._identity is None:
            ident = model_identity(self.model) if self.hf else {"model": str(self.model.resolve()),
                                                                "weights": file_digest(self.model)}
            self._identity = {**self.describe(), **ident}
        return self._identity

    def cache_path(self, key: dict, name: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        slug = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{name}-{self.model.stem}")
        return self.cache_dir / "embeddings" / f"{slug}-{digest}.pt"

    def __call__(self, X: Tensor, name: str = "X") -> Tensor:
        X = torch.as_tensor(X)
        key = {**self.identity(), "images": tensor_digest(X), "n": int(X.shape[0])}
        return cached_tensor(self.cache_path(key, name), key, lambda: self._encode(X, name),
                             f"image embeddings of {name}")

    # -- encoding -------------------------------------------------------------------------------
    def _load(self):
        if self._net is None:
            self._net = (self._load_hf() if self.hf else self._load_torchvision()).to(self.device).eval()
        return self._net

    def _load_hf(self):
        from transformers import AutoModel

        return AutoModel.from_pretrained(str(self.model))

    def _load_torchvision(self):
        import torchvision

        if self.model.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(self.model))
        else:
            state = torch.load(self.model, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        net = torchvision.models.get_model(self.arch, weights=None)
        heads = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)]
        if heads:  # drop the classifier head: its weights and its layer
            head = heads[-1]
            state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
            parent, _, leaf = head.rpartition(".")
            setattr(net.get_submodule(parent) if parent else net, leaf, torch.nn.Identity())
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{self.model.name} does not hold {self.arch} weights: missing {missing[:4]}, unexpected "
                             f"{unexpected[:4]}; check arch= (the architecture the file was saved from)")
        return net

    def _prepare(self, X: Tensor, name: str) -> Tensor:
        X = convert_channels(as_images(X, name), self.channels, name)
        X = resize_images(X, (self.image_size, self.image_size))
        mean = torch.tensor(self.mean, dtype=X.dtype)[None, :, None, None]
        std = torch.tensor(self.std, dtype=X.dtype)[None, :, None, None]
        return (X - mean) / std

    def _forward(self, net, batch: Tensor) -> Tensor:
        if not self.hf:
            return net(batch).flatten(1)
        out = net(pixel_values=batch)
        pooled = getattr(out, "pooler_output", None)
        return (pooled if pooled is not None else out.last_hidden_state.mean(1)).flatten(1)

    def _encode(self, X: Tensor, name: str) -> Tensor:
        net = self._load()
        chunks = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], self.batch_size):
                batch = self._prepare(X[start:start + self.batch_size], name).float().to(self.device)
                chunks.append(self._forward(net, batch).float().cpu())
        return torch.cat(chunks)
