"""Text-classification datasets (AG News, DBPedia, Yelp polarity / full) as LabeledDataModules.

Each split is read from the CSV release of Zhang et al. (2015) (see `otdata.data.csv_release`) and
embedded with a pretrained sentence encoder (see `otdata.data.embed`): `X` is float32
`(n, hidden_size)` (384 for all-MiniLM-L6-v2), `y` int64 `0..C-1`. Embeddings are cached on disk
under `cache_dir`, so a split is encoded once per encoder and settings.

Files: `<data_dir>/<folder>/{train,test}.csv` and optionally `<data_dir>/<folder>/classes.txt`, with
`<folder>` one of `ag_news_csv`, `dbpedia_csv`, `yelp_review_polarity_csv`,
`yelp_review_full_csv`. Each split is read on its own: a folder with only `test.csv` serves
`tensors("test")`.

A `max_samples` / `max_test_samples` subsample is drawn from the labels *before* embedding (the
same stratified, seeded indices the base class would take), so only the kept texts are encoded;
when the whole split is already in the cache, the subsample is sliced out of it instead.

Example:
    >>> dm = AGNewsDataModule(data_dir="../shared/data", encoder="models/all-MiniLM-L6-v2",
    ...                       cache_dir=".cache", max_test_samples=1000)
    >>> X, y = dm.tensors("test")          # (1000, 384) float32, labels 0..3
    >>> texts, y = dm.texts("test")        # the same 1000 items as strings
"""

from __future__ import annotations

from pathlib import Path

import torch

from otdata.data.base import SPLITS, LabeledDataModule
from otdata.data.csv_release import RELEASES, CSVRelease, CSVRowError, read_classes, read_csv_release
from otdata.data.embed import TextEncoder
from otdata.data.errors import DataFileError
from otdata.data.subsample import stratified_indices

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


class TextCSVDataModule(LabeledDataModule):
    """Shared logic of the CSV text datasets; subclasses only name their release.

    Args (beyond LabeledDataModule's):
        encoder: local folder or hub name of the `transformers` encoder.
        max_length: tokens kept per text.
        embed_batch_size: texts per encoder forward pass (unrelated to the DataLoader's
            `batch_size`).
        pooling: `"mean"` (sentence-transformers models) or `"cls"`.
        normalize: L2-normalise the embeddings.
        device: where the encoder runs.
        cache_dir: folder for cached embeddings (`<cache_dir>/embeddings/`); None = no disk cache.
        newline: what an escaped line break in the CSV becomes (a space by default).
        progress: show a progress bar while embedding.
    """

    release_key: str = "ag_news"

    def __init__(
        self,
        *args,
        encoder: str = DEFAULT_ENCODER,
        max_length: int = 256,
        embed_batch_size: int = 64,
        pooling: str = "mean",
        normalize: bool = True,
        device: str = "cpu",
        cache_dir: str | Path | None = None,
        newline: str = " ",
        progress: bool = True,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.encoder = TextEncoder(
            encoder, max_length=max_length, batch_size=embed_batch_size, pooling=pooling,
            normalize=normalize, device=device, cache_dir=cache_dir, progress=progress,
        )
        self.newline = newline
        self._texts: dict[str, tuple[list[str], torch.Tensor]] = {}
        self._class_names: list[str] | None = None

    # -- release -------------------------------------------------------------------------------
    @property
    def release(self) -> CSVRelease:
        return RELEASES[self.release_key]

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.release.name

    @property
    def folder(self) -> Path:
        return self.data_dir / self.release.folder

    def expected_files(self, split: str) -> list[Path]:
        return [self.folder / f"{split}.csv"]

    @property
    def class_names(self) -> list[str]:
        """From `classes.txt` when the folder has one, else the release's documented classes."""
        if self._class_names is None:
            path = self.folder / "classes.txt"
            if path.is_file():
                try:
                    self._class_names = read_classes(path)
                except (CSVRowError, UnicodeDecodeError) as error:
                    raise DataFileError(
                        self.name, self.data_dir, [path], f"unreadable classes.txt ({error})."
                    ) from error
            else:
                return list(self.release.class_names)
        return list(self._class_names)

    # -- files ---------------------------------------------------------------------------------
    def _ensure_files(self, split: str) -> Path:
        path = self.expected_files(split)[0]
        if path.is_file():
            return path
        if self.download:
            from torchvision.datasets.utils import download_and_extract_archive

            try:
                download_and_extract_archive(
                    self.release.url, download_root=str(self.data_dir),
                    filename=self.release.archive, remove_finished=True,
                )
            except Exception as error:  # offline, HTTP error, bad archive
                raise DataFileError(
                    self.name, self.data_dir, [path],
                    f"the {split} split is missing and downloading {self.release.url} failed "
                    f"({type(error).__name__}: {error}).",
                ) from error
            self._class_names = None
            if path.is_file():
                return path
            problem = f"the {split} split is still missing after downloading {self.release.url}."
        else:
            problem = f"the {split} split is missing."
        raise DataFileError(self.name, self.data_dir, [path], problem)

    # -- raw texts -----------------------------------------------------------------------------
    def _read(self, split: str) -> tuple[list[str], torch.Tensor]:
        """The whole split as `(texts, labels 0-based)`, read once."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        if split not in self._texts:
            path = self._ensure_files(split)
            try:
                texts, labels = read_csv_release(
                    path, num_classes=self.num_classes, text_fields=self.release.text_fields,
                    newline=self.newline, style=self.release.style,
                )
            except (CSVRowError, UnicodeDecodeError) as error:
                raise DataFileError(
                    self.name, self.data_dir, [path], f"the {split} split is corrupt: {error}"
                ) from error
            self._texts[split] = (texts, torch.tensor(labels, dtype=torch.int64))
        return self._texts[split]

    def _limit(self, split: str, max_samples: int | None) -> int | None:
        if max_samples is not None:
            return int(max_samples)
        limit = self.max_samples if split == "train" else self.max_test_samples
        return None if limit is None else int(limit)

    def _indices(self, split: str, max_samples: int | None) -> torch.Tensor | None:
        texts, y = self._read(split)
        limit = self._limit(split, max_samples)
        if limit is None or limit >= len(y):
            return None
        return stratified_indices(y, limit, seed=self.seed)

    def texts(self, split: str = "train", max_samples: int | None = None) -> tuple[list[str], torch.Tensor]:
        """The (subsampled) split as `(list of strings, labels)`: the same rows, in the same order,
        as `tensors(split, max_samples)`."""
        texts, y = self._read(split)
        idx = self._indices(split, max_samples)
        if idx is None:
            return list(texts), y.clone()
        return [texts[i] for i in idx.tolist()], y[idx]

    # -- embeddings ----------------------------------------------------------------------------
    def _cache_name(self, split: str) -> str:
        return f"{self.release_key}-{split}"

    def load_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split embedded: `(float32 (n, hidden), int64 labels)`."""
        texts, y = self._read(split)
        return self.encoder.encode(texts, name=self._cache_name(split)), y

    def tensors(
        self, split: str = "train", max_samples: int | None = None, flatten: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Like `LabeledDataModule.tensors`, but only the subsampled texts are embedded (unless the
        whole split is already embedded, in memory or on disk). `flatten` changes nothing: the
        embeddings are already `(n, d)`."""
        texts, y = self._read(split)
        idx = self._indices(split, max_samples)
        if idx is None:
            if split not in self._cache:
                self._cache[split] = self.load_split(split)
            return self._cache[split]
        full_cached = split in self._cache
        if not full_cached:
            path = self.encoder.cache_path(texts, self._cache_name(split))
            full_cached = path is not None and path.is_file()
        if full_cached:
            X, _ = self.tensors(split, max_samples=len(y))
            return X[idx], y[idx]
        key = f"{split}@{len(idx)}"
        if key not in self._cache:
            chosen = [texts[i] for i in idx.tolist()]
            self._cache[key] = (self.encoder.encode(chosen, name=self._cache_name(split)), y[idx])
        return self._cache[key]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(data_dir={str(self.data_dir)!r}, max_samples={self.max_samples},"
            f" encoder={self.encoder.model!r})"
        )


class AGNewsDataModule(TextCSVDataModule):
    """AG News: 4 news topics (World, Sports, Business, Sci/Tech), 120,000 train / 7,600 test.

    Texts are `title + " " + description`. Files: `<data_dir>/ag_news_csv/{train,test}.csv`.
    """

    release_key = "ag_news"


class DBPediaDataModule(TextCSVDataModule):
    """DBPedia ontology: 14 classes, 560,000 train / 70,000 test. Texts are `title + " " + content`.

    Files: `<data_dir>/dbpedia_csv/{train,test}.csv`.
    """

    release_key = "dbpedia"


class YelpPolarityDataModule(TextCSVDataModule):
    """Yelp review polarity: negative / positive, 560,000 train / 38,000 test.

    Files: `<data_dir>/yelp_review_polarity_csv/{train,test}.csv`.
    """

    release_key = "yelp_polarity"


class YelpFullDataModule(TextCSVDataModule):
    """Yelp review full: 1 to 5 stars, 650,000 train / 50,000 test.

    Files: `<data_dir>/yelp_review_full_csv/{train,test}.csv`.
    """

    release_key = "yelp_full"
