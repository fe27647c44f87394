"""Text datamodules end to end on tiny generated CSV releases and a tiny random BERT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import otdata.data.embed as embed
from otdata.data.errors import DataFileError
from otdata.data.subsample import stratified_indices
from otdata.data.text import (
    AGNewsDataModule,
    DBPediaDataModule,
    YelpFullDataModule,
    YelpPolarityDataModule,
)
from tests.data.conftest_text import make_ag_news, make_rows, tiny_bert, write_csv  # noqa: F401

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded(monkeypatch):
    """Records how many texts go through the encoder."""
    seen = []
    real = embed.TextEncoder._compute

    def compute(self, texts, name):
        seen.append(len(texts))
        return real(self, texts, name)

    monkeypatch.setattr(embed.TextEncoder, "_compute", compute)
    return seen


def _ag(root, tiny_bert, **kwargs):
    kwargs.setdefault("progress", False)
    return AGNewsDataModule(data_dir=root, encoder=str(tiny_bert), **kwargs)


def test_ag_news_end_to_end(tmp_path, tiny_bert):
    root = make_ag_news(tmp_path, train_per_class=10, test_per_class=5,
                        classes=("W", "S", "B", "T"))
    dm = _ag(root, tiny_bert, cache_dir=tmp_path / "cache")
    assert dm.class_names == ["W", "S", "B", "T"] and dm.num_classes == 4
    X, y = dm.tensors("train")
    assert X.shape == (40, 32) and X.dtype == torch.float32
    assert y.dtype == torch.int64 and sorted(y.unique().tolist()) == [0, 1, 2, 3]
    texts, y_texts = dm.texts("train")
    assert len(texts) == 40 and torch.equal(y, y_texts)
    assert texts[0] == " ".join(make_rows(10, seed=1)[0][1:])
    assert torch.equal(y, torch.tensor([r[0] - 1 for r in make_rows(10, seed=1)]))
    Xt, yt = dm.tensors("test")
    assert Xt.shape == (20, 32) and torch.bincount(yt).tolist() == [5, 5, 5, 5]
    assert X is dm.tensors("train", flatten=True)[0]  # in memory after the first call


def test_lightning_loaders(tmp_path, tiny_bert):
    dm = _ag(make_ag_news(tmp_path), tiny_bert, batch_size=8, val_fraction=0.25)
    dm.setup("fit")
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (8, 32) and yb.shape == (8,)
    assert len(dm.val_set) == 10 and len(dm.train_set) == 30
    assert len(dm.test_dataloader().dataset) == 20


def test_subsample_is_drawn_before_embedding(tmp_path, tiny_bert, embedded):
    root = make_ag_news(tmp_path, train_per_class=25)
    dm = _ag(root, tiny_bert, max_samples=12, seed=3)
    X, y = dm.tensors("train")
    assert embedded == [12] and X.shape == (12, 32)
    # the same items as the base class would pick from the whole split
    full = _ag(root, tiny_bert, seed=3)
    X_all, y_all = full.tensors("train")
    idx = stratified_indices(y_all, 12, seed=3)
    assert torch.equal(y, y_all[idx])
    assert torch.allclose(X, X_all[idx], atol=1e-5)
    texts, y_texts = dm.texts("train")
    assert torch.equal(y_texts, y) and texts == [full.texts("train")[0][i] for i in idx.tolist()]
    assert torch.bincount(y).tolist() == [3, 3, 3, 3]
    # a per-call override, and max_samples beyond the split size
    assert dm.tensors("train", max_samples=8)[0].shape == (8, 32)
    assert dm.tensors("train", max_samples=10_000)[0].shape == (100, 32)


def test_subsample_reuses_a_cached_full_split(tmp_path, tiny_bert, embedded):
    root = make_ag_news(tmp_path, test_per_class=10)
    cache = tmp_path / "cache"
    X_all, y_all = _ag(root, tiny_bert, cache_dir=cache).tensors("test")
    assert embedded == [40]
    dm = _ag(root, tiny_bert, cache_dir=cache, max_test_samples=8)
    X, y = dm.tensors("test")
    assert embedded == [40]  # sliced from the cached split, nothing re-embedded
    idx = stratified_indices(y_all, 8, seed=0)
    assert torch.equal(X, X_all[idx]) and torch.equal(y, y_all[idx])


def test_test_split_alone_and_missing_train(tmp_path, tiny_bert):
    root = make_ag_news(tmp_path, train=False)
    dm = _ag(root, tiny_bert)
    X, y = dm.tensors("test")
    assert X.shape == (20, 32)
    with pytest.raises(DataFileError) as info:
        dm.tensors("train")
    message = str(info.value)
    assert "AG News" in message and "train split is missing" in message
    assert str(root / "ag_news_csv" / "train.csv") in message
    assert "paths.data_dir=" in message and "`download=true`" in message


def test_missing_folder_and_bad_split(tmp_path, tiny_bert):
    dm = _ag(tmp_path, tiny_bert)
    with pytest.raises(DataFileError, match="test split is missing"):
        dm.tensors("test")
    with pytest.raises(ValueError, match="split must be one of"):
        dm.tensors("validation")
    assert dm.class_names == ["World", "Sports", "Business", "Sci/Tech"]  # no classes.txt


def test_corrupt_row_is_a_data_file_error_with_the_line(tmp_path, tiny_bert):
    rows = make_rows(3)
    rows[4] = (9, "a", "b")
    write_csv(tmp_path / "ag_news_csv" / "test.csv", rows)
    with pytest.raises(DataFileError, match=r"line 5: label 9 is out of range 1..4"):
        _ag(tmp_path, tiny_bert).tensors("test")


def test_download_failure_and_success(tmp_path, tiny_bert, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(url, download_root, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    dm = _ag(tmp_path, tiny_bert, download=True)
    with pytest.raises(DataFileError) as info:
        dm.tensors("test")
    assert "ag_news_csv.tgz failed" in str(info.value) and "network is unreachable" in str(info.value)

    urls = []

    def fake(url, download_root, **kwargs):
        urls.append((url, kwargs.get("filename")))
        make_ag_news(Path(download_root), classes=("a", "b", "c", "d"))

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", fake)
    dm = _ag(tmp_path, tiny_bert, download=True)
    assert dm.tensors("test")[0].shape == (20, 32)
    assert urls == [("https://s3.amazonaws.com/fast-ai-nlp/ag_news_csv.tgz", "ag_news_csv.tgz")]
    assert dm.class_names == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "cls, folder, classes",
    [
        (YelpPolarityDataModule, "yelp_review_polarity_csv", ["negative", "positive"]),
        (YelpFullDataModule, "yelp_review_full_csv", ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]),
    ],
)
def test_yelp_two_column_files(tmp_path, tiny_bert, cls, folder, classes):
    rows = [(1 + i % len(classes), f"review {i}\\nthe food was ok, ""fine""") for i in range(10)]
    write_csv(tmp_path / folder / "test.csv", rows)
    dm = cls(data_dir=tmp_path, encoder=str(tiny_bert), progress=False)
    assert dm.class_names == classes
    texts, y = dm.texts("test")
    assert texts[0] == "review 0 the food was ok, fine"
    assert y.max().item() == len(classes) - 1
    assert dm.tensors("test")[0].shape == (10, 32)


def test_dbpedia_defaults(tmp_path, tiny_bert):
    rows = [(c, f"Title {c}", f"Content of class {c}.") for c in range(1, 15)]
    write_csv(tmp_path / "dbpedia_csv" / "test.csv", rows)
    dm = DBPediaDataModule(data_dir=tmp_path, encoder=str(tiny_bert), progress=False)
    assert dm.num_classes == 14 and dm.class_names[0] == "Company"
    X, y = dm.tensors("test")
    assert X.shape == (14, 32) and y.tolist() == list(range(14))


@pytest.mark.parametrize("name", ["ag_news", "dbpedia", "yelp_polarity", "yelp_full"])
def test_configs_instantiate(tmp_path, tiny_bert, name):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    data = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    cfg = OmegaConf.create({
        "seed": 7,
        "paths": {"data_dir": str(tmp_path), "models_dir": str(tmp_path), "cache_dir": str(tmp_path / "c")},
        "data": data,
    })
    cfg.data.encoder = str(tiny_bert)
    dm = instantiate(cfg.data)
    assert dm.seed == 7 and dm.data_dir == tmp_path and dm.download is False
    assert dm.encoder.cache_dir == tmp_path / "c" and dm.encoder.max_length == 256
    raw = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml"))
    assert raw["encoder"] == "${paths.models_dir}/all-MiniLM-L6-v2"
