"""Texts → fixed-size vectors with a pretrained `transformers` encoder, cached on disk.

`TextEncoder(model=...)` loads `AutoTokenizer`/`AutoModel.from_pretrained(model)` (a local folder or
a hub name), runs the texts through it in batches under `torch.inference_mode()`, pools the last
hidden states (mean over the attention mask by default, as sentence-transformers models expect, or
the `[CLS]` vector) and optionally L2-normalises the result. Output: float32 `(n, hidden_size)`.

With a `cache_dir`, `encode(texts, name=...)` stores the result with `torch.save` under a key made
of the name (e.g. `ag_news-test`), the model's identity (its path or hub name, a hash of its config
and, for a local folder, of its tokenizer files and the sizes of its weight files), the settings that
change the vectors (`max_length`, `pooling`, `normalize`) and a hash of the texts themselves. A later
call with the same key reads the file and never loads the model; anything else makes a new entry.
`batch_size` and `device` are not part of the key (they do not change the vectors beyond rounding).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Sequence

import torch

from otdata.data.content_cache import cached_tensor, texts_digest

POOLINGS = ("mean", "cls")
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json",
    "merges.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
)
_WEIGHT_SUFFIXES = (".safetensors", ".bin")


def model_identity(model: str | os.PathLike) -> dict:
    """What identifies an encoder without loading its weights.

    A local folder: its resolved path, a hash of `config.json` (minus the fields that only record
    where and with which library version it was saved), a hash of its tokenizer files and the
    names and sizes of its weight files. A hub name: the name and a hash of its config (read through
    `AutoConfig`, i.e. from the local hub cache when offline).
    """
    path = Path(model).expanduser()
    if path.is_dir():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        tok = hashlib.sha256()
        for name in _TOKENIZER_FILES:
            f = path / name
            if f.is_file():
                tok.update(name.encode())
                tok.update(f.read_bytes())
        weights = sorted(
            (f.name, f.stat().st_size) for f in path.iterdir() if f.name.endswith(_WEIGHT_SUFFIXES)
        )
        ident = {"model": str(path.resolve()), "tokenizer": tok.hexdigest()[:16], "weights": weights}
    else:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(str(model)).to_dict()
        ident = {"model": str(model)}
    for volatile in ("_name_or_path", "transformers_version", "name_or_path"):
        config.pop(volatile, None)
    ident["config"] = hashlib.sha256(
        json.dumps(config, sort_keys=True, default=str).encode()
    ).hexdigest()[:16]
    return ident


def load_encoder(model: str | os.PathLike, device: str | torch.device = "cpu"):
    """`(tokenizer, model)` from a local folder or hub name, in eval mode on `device`."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    encoder = AutoModel.from_pretrained(str(model)).to(device).eval()
    return tokenizer, encoder


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "texts"


class TextEncoder:
    """A pretrained encoder that turns texts into vectors, with an on-disk cache.

    Args:
        model: local folder or hub name of a `transformers` encoder (e.g. all-MiniLM-L6-v2).
        max_length: tokens kept per text (longer texts are truncated).
        batch_size: texts per forward pass.
        pooling: `"mean"` (over real tokens, the sentence-transformers way) or `"cls"`.
        normalize: L2-normalise each vector.
        device: where the model runs (`"cpu"`, `"cuda"`, ...).
        cache_dir: folder for cached embeddings; None disables the cache.
        progress: show a progress bar over batches.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        max_length: int = 256,
        batch_size: int = 64,
        pooling: str = "mean",
        normalize: bool = True,
        device: str | torch.device = "cpu",
        cache_dir: str | os.PathLike | None = None,
        progress: bool = True,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}.")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {max_length}.")
        self.model = str(model)
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.pooling = pooling
        self.normalize = bool(normalize)
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.progress = progress
        self._loaded = None
        self._identity: dict | None = None

    def __repr__(self) -> str:
        return (
            f"TextEncoder(model={self.model!r}, max_length={self.max_length}, "
            f"pooling={self.pooling!r}, normalize={self.normalize})"
        )

    # -- cache ----------------------------------------------------------------------------------
    def identity(self) -> dict:
        if self._identity is None:
            self._identity = model_identity(self.model)
        return self._identity

    def cache_key(self, texts: Sequence[str], name: str = "texts") -> dict:
        """Everything the cached vectors depend on."""
        return {
            "name": name,
            **self.identity(),
            "max_length": self.max_length,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "texts": texts_digest(texts),
            "n": len(texts),
        }

    def cache_path(self, texts: Sequence[str], name: str = "texts") -> Path | None:
        if self.cache_dir is None:
            return None
        key = self.cache_key(texts, name)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
        model_name = _slug(Path(self.model).name or self.model)
        return self.cache_dir / "embeddings" / f"{_slug(name)}-{model_name}-{digest}.pt"

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str], name: str = "texts") -> torch.Tensor:
        """float32 `(len(texts), hidden_size)`, from the cache when possible (then no model load)."""
        texts = [str(t) for t in texts]
        return cached_tensor(self.cache_path(texts, name), self.cache_key(texts, name),
                             lambda: self._compute(texts, name), f"embeddings of {name}")

    def _load(self):
        if self._loaded is None:
            self._loaded = load_encoder(self.model, self.device)
        return self._loaded

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

    def _compute(self, texts: list[str], name: str) -> torch.Tensor:
        tokenizer, model = self._load()
        hidden_size = model.config.hidden_size
        out = torch.empty(len(texts), hidden_size, dtype=torch.float32)
        if not texts:
            return out
        # longest first: batches of similar lengths waste little on padding
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        batches = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("[bold]embedding {task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("batches"), TimeElapsedColumn(), TimeRemainingColumn(),
        )
        with torch.inference_mode(), Progress(*columns, disable=not self.progress) as bar:
            task = bar.add_task(name, total=len(batches))
            for idx in batches:
                batch = tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True,
                    max_length=self.max_length, return_tensors="pt",
                ).to(self.device)
                hidden = model(**batch).last_hidden_state
                vectors = self._pool(hidden, batch["attention_mask"]).float()
                if self.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                out[torch.as_tensor(idx)] = vectors.cpu()
                bar.advance(task)
        return out


def embed_texts(
    texts: Sequence[str], model: str | os.PathLike, name: str = "texts", **settings
) -> torch.Tensor:
    """One-call form: `TextEncoder(model, **settings).encode(texts, name)`."""
    return TextEncoder(model, **settings).encode(texts, name)
