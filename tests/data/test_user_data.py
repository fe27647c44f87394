"""Readers of a user's own data: what they hand out, and a clear error for each kind of bad input."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from otdata.data import (
    ArraysDataModule,
    CSVTextDataModule,
    DataFormatError,
    HFImageDataModule,
    HFTextDataModule,
    ImageFolderDataModule,
)
from otdata.data import image_decode
from tests.fixtures import Payload, balanced_labels, class_images, write_image_folder

NAMES = ["ant", "bee", "cat"]


def folder(tmp_path, n=12, side=8, names=NAMES, rgb=False, name="imgs"):
    labels = balanced_labels(n, len(names)).astype(np.int64)
    images = class_images(labels, side, seed=0)
    if rgb:
        images = np.stack([images, images // 2, 255 - images], axis=1)
    return write_image_folder(tmp_path / name, images, labels, names), images, labels


# -- image folders -------------------------------------------------------------------------------

def test_folder_with_train_and_test_roots(tmp_path):
    root = tmp_path / "split"
    folder(root, n=12, name="train")
    folder(root, n=6, name="test")
    dm = ImageFolderDataModule(root)
    (X, y), (Xt, yt) = dm.tensors("train"), dm.tensors("test")
    assert (len(y), len(yt)) == (12, 6) and dm.class_names == NAMES and dm.name == "split"
    assert X.shape[1:] == (1, 8, 8) and 0 <= float(X.min()) and float(X.max()) <= 1


def test_seeded_stratified_split_and_rgb(tmp_path):
    root, _, _ = folder(tmp_path, n=30, rgb=True)
    a = ImageFolderDataModule(root, test_fraction=0.2, seed=1)
    b = ImageFolderDataModule(root, test_fraction=0.2, seed=1)
    assert torch.equal(a.tensors("test")[0], b.tensors("test")[0])
    assert torch.bincount(a.tensors("test")[1]).tolist() == [2, 2, 2]
    assert a.tensors("train")[0].shape == (24, 3, 8, 8)


def test_gray_and_rgb_mixed_give_three_equal_channels(tmp_path):
    from PIL import Image

    root, _, _ = folder(tmp_path)
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(root / "ant" / "colour.png")
    X, _ = ImageFolderDataModule(root, test_fraction=0.0).tensors("train")
    assert X.shape == (13, 3, 8, 8)
    gray = X[1]  # a gray image: its three channels are equal
    assert torch.equal(gray[0], gray[1]) and torch.equal(gray[0], gray[2])


def test_decoded_pixels_are_cached_and_invalidated_by_a_touched_file(tmp_path, monkeypatch):
    root, _, _ = folder(tmp_path)
    cache = tmp_path / "cache"
    first = ImageFolderDataModule(root, cache_dir=cache, test_fraction=0.0).tensors("train")[0]
    entries = list((cache / "decoded-images").iterdir())
    assert len(entries) == 1 and entries[0].suffix == ".pt"   # no temporary file left behind

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is current")

    monkeypatch.setattr(image_decode, "_decode_all", no_decoding)
    again = ImageFolderDataModule(root, cache_dir=cache, test_fraction=0.0).tensors("train")[0]
    assert torch.equal(first, again)
    touched = root / "bee" / "00001.png"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        ImageFolderDataModule(root, cache_dir=cache, test_fraction=0.0).tensors("train")


def test_bytes_rewritten_with_size_and_mtime_restored_are_decoded_again(tmp_path):
    """The decoded-pixel cache is not fooled by a file whose bytes changed while its size and
    modification time were put back (its status-change time moves). An uncompressed BMP keeps its
    size whatever its pixels."""
    from PIL import Image

    root, _, _ = folder(tmp_path)
    cache = tmp_path / "cache"
    target = root / "bee" / "extra.bmp"
    Image.fromarray(np.full((8, 8), 40, np.uint8)).save(target)
    before = ImageFolderDataModule(root, cache_dir=cache, test_fraction=0.0).tensors("train")[0]
    stat = target.stat()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(target)
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert target.stat().st_size == stat.st_size and target.stat().st_mtime_ns == stat.st_mtime_ns
    after = ImageFolderDataModule(root, cache_dir=cache, test_fraction=0.0).tensors("train")[0]
    assert not torch.equal(before, after)


def test_parallel_decoding_gives_the_same_pixels(tmp_path):
    root, _, _ = folder(tmp_path, n=30)
    one = ImageFolderDataModule(root, workers=1, test_fraction=0.0).tensors("train")[0]
    two = ImageFolderDataModule(root, workers=2, test_fraction=0.0).tensors("train")[0]
    assert torch.equal(one, two)


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no class sub-folders and no images"):
        ImageFolderDataModule(tmp_path / "empty").tensors()


def test_missing_folder(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        ImageFolderDataModule(tmp_path / "nowhere")


def test_class_folder_without_images(tmp_path):
    root, _, _ = folder(tmp_path)
    (root / "dog").mkdir()
    (root / "dog" / "notes.txt").write_text("no image here")
    with pytest.raises(DataFormatError, match="class folder 'dog' holds no image"):
        ImageFolderDataModule(root).tensors()


def test_single_class(tmp_path):
    root, _, _ = folder(tmp_path, names=["only"])
    with pytest.raises(DataFormatError, match="only one class"):
        ImageFolderDataModule(root).tensors()


@pytest.mark.parametrize("damage", ["corrupt", "truncated"])
def test_corrupt_or_truncated_image(tmp_path, damage):
    root, _, _ = folder(tmp_path)
    bad = root / "cat" / "00002.png"
    data = bad.read_bytes()
    bad.write_bytes(b"not an image at all" if damage == "corrupt" else data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="1 file\\(s\\) are not readable images.*00002.png"):
        ImageFolderDataModule(root).tensors()


def test_mixed_sizes_need_a_resize(tmp_path):
    from PIL import Image

    root, _, _ = folder(tmp_path)
    Image.fromarray(np.zeros((10, 12), np.uint8)).save(root / "ant" / "wide.png")
    with pytest.raises(DataFormatError, match="(?s)2 different sizes: 8×8 .*10×12.*image_size"):
        ImageFolderDataModule(root).tensors()
    X, _ = ImageFolderDataModule(root, image_size=8, test_fraction=0.0).tensors("train")
    assert X.shape == (13, 1, 8, 8)


# -- arrays ----------------------------------------------------------------------------------------

def save(path, **arrays):
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    elif path.suffix == ".pt":
        torch.save({k: torch.as_tensor(v) if k != "class_names" else [str(c) for c in v]
                    for k, v in arrays.items()}, path)
    else:
        from safetensors.torch import save_file

        names = arrays.pop("class_names", None)
        save_file({k: torch.as_tensor(v).contiguous() for k, v in arrays.items()}, str(path),
                  metadata={"class_names": json.dumps(list(names))} if names is not None else None)
    return path


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_arrays_in_each_format(tmp_path, suffix):
    X = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    y = np.arange(20) % 2
    path = save(tmp_path / f"feats{suffix}", X=X, y=y, X_test=X[:4], y_test=y[:4],
                class_names=np.array(["no", "yes"]))
    dm = ArraysDataModule(path)
    Xr, yr = dm.tensors("train")
    assert torch.equal(Xr, torch.from_numpy(X)) and torch.equal(yr, torch.from_numpy(y).long())
    assert len(dm.tensors("test")[1]) == 4 and dm.class_names == ["no", "yes"] and dm.name == "feats"


@pytest.mark.parametrize("y,match", [
    (np.array([0, 1, 0.5, 1] * 5), "must be integers; item 2 has 0.5"),
    (np.array([0, 1, -1, 1] * 5), "labels span -1..1"),
    (np.array([0, 1, 2, 1] * 5), "labels span 0..2, but the 2 classes"),
])
def test_non_integer_or_out_of_range_labels(tmp_path, y, match):
    path = save(tmp_path / "a.npz", X=np.zeros((20, 3), np.float32), y=y, class_names=np.array(["a", "b"]))
    with pytest.raises(DataFormatError, match=match):
        ArraysDataModule(path).tensors()


def test_length_mismatch(tmp_path):
    path = save(tmp_path / "a.npz", X=np.zeros((20, 3), np.float32), y=np.arange(19) % 2)
    with pytest.raises(DataFormatError, match="X holds 20 items but y holds 19 labels"):
        ArraysDataModule(path, test_fraction=0.0).tensors()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_features(tmp_path, bad):
    X = np.zeros((20, 3), np.float32)
    X[7, 1] = bad
    path = save(tmp_path / "a.npz", X=X, y=np.arange(20) % 2)
    with pytest.raises(DataFormatError, match="1 item\\(s\\) hold NaN or infinite values \\(first: \\[7\\]\\)"):
        ArraysDataModule(path, test_fraction=0.0).tensors()


def test_unknown_format_and_missing_keys(tmp_path):
    (tmp_path / "a.csv").write_text("1,2\n")
    with pytest.raises(DataFormatError, match="(?s)unknown format \\(.csv\\).*npz"):
        ArraysDataModule(tmp_path / "a.csv").tensors()
    path = save(tmp_path / "b.npz", features=np.zeros((4, 2)), y=np.arange(4) % 2)
    with pytest.raises(DataFormatError, match="(?s)has no 'X'.*x_key"):
        ArraysDataModule(path).tensors()


def test_a_pickled_object_in_a_pt_file_never_runs(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"X": torch.zeros(4, 2), "y": torch.tensor([0, 1, 0, 1]), "extra": Payload(marker)},
               tmp_path / "evil.pt")
    with pytest.raises(DataFormatError, match="pickled Python objects are not loaded"):
        ArraysDataModule(tmp_path / "evil.pt").tensors()
    assert not marker.exists()


# -- Hugging Face datasets -------------------------------------------------------------------------

def test_hf_parquet_with_and_without_labels(tmp_path):
    import datasets

    labels = balanced_labels(12, 3).astype(np.int64)
    images = class_images(labels, 8, seed=0)
    from PIL import Image

    features = datasets.Features({"img": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    ds = datasets.Dataset.from_dict({"img": [Image.fromarray(a) for a in images],
                                     "label": labels.tolist()}, features=features)
    ds.to_parquet(str(tmp_path / "train.parquet"))
    dm = HFImageDataModule(tmp_path / "train.parquet", image_column="img", test_fraction=0.25)
    X, y = dm.tensors("train")
    assert dm.class_names == NAMES and X.shape == (9, 1, 8, 8) and len(dm.tensors("test")[1]) == 3
    ds.remove_columns("label").to_parquet(str(tmp_path / "unlabeled.parquet"))
    with pytest.raises(DataFormatError, match="(?s)no label column 'label'.*without labels"):
        HFImageDataModule(tmp_path / "unlabeled.parquet", image_column="img").tensors()


def test_hf_unknown_format_and_missing_text_column(tmp_path):
    import datasets

    (tmp_path / "data.txt").write_text("hello")
    with pytest.raises(DataFormatError, match="unknown format \\(.txt\\)"):
        HFImageDataModule(tmp_path / "data.txt").tensors()
    datasets.Dataset.from_dict({"sentence": ["a b", "c d"], "label": [0, 1]}).save_to_disk(str(tmp_path / "t"))
    with pytest.raises(DataFormatError, match="no column 'text' \\(its columns: \\['sentence', 'label'\\]\\)"):
        HFTextDataModule(tmp_path / "t", test_fraction=0.0).texts("train")
    texts, y = HFTextDataModule(tmp_path / "t", text_column="sentence", test_fraction=0.0).texts("train")
    assert texts == ["a b", "c d"] and y.tolist() == [0, 1]


# -- CSV texts -------------------------------------------------------------------------------------

def test_csv_with_header_names_and_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('stars,title,body\ngood,"Fine, really",nice\\nthing\nbad,Meh,poor\ngood,Yes,great\n'
                    'bad,No,awful\n')
    dm = CSVTextDataModule(path, header=True, label_column="stars", text_columns=["title", "body"],
                           test_fraction=0.0)
    texts, y = dm.texts("train")
    assert dm.class_names == ["bad", "good"] and y.tolist() == [1, 0, 1, 0]
    assert texts[0] == "Fine, really nice thing"


@pytest.mark.parametrize("kwargs,match", [
    (dict(header=True, label_column="label", text_columns=["body"]), "no column 'label'"),
    (dict(header=True, label_column="stars", text_columns=["text"]), "no column 'text'"),
    (dict(header=False, label_column="stars", text_columns=[1]), "has no header row"),
    (dict(header=True, label_column="stars", text_columns=["body"], label_base=1,
          class_names=["one", "two"]), "labels \\['bad', 'good'\\] are not among"),
])
def test_csv_missing_columns_and_bad_labels(tmp_path, kwargs, match):
    path = tmp_path / "reviews.csv"
    path.write_text("stars,body\ngood,nice\nbad,poor\n")
    with pytest.raises(DataFormatError, match=match):
        CSVTextDataModule(path, test_fraction=0.0, **kwargs).texts("train")


def test_csv_integer_labels_out_of_range(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('"1","a"\n"2","b"\n"3","c"\n')
    with pytest.raises(DataFormatError, match="span 0..2, but the 2 classes"):
        CSVTextDataModule(path, label_base=1, class_names=["x", "y"], test_fraction=0.0).texts("train")


def test_channels_one_converts_rgb_with_pillows_luma(tmp_path):
    from PIL import Image

    root, images, _ = folder(tmp_path, rgb=True)
    X, _ = ImageFolderDataModule(root, channels=1, test_fraction=0.0).tensors("train")
    expected = np.asarray(Image.fromarray(images[0].transpose(1, 2, 0)).convert("L"))
    assert X.shape == (12, 1, 8, 8) and torch.equal(X[0, 0], torch.from_numpy(expected).float() / 255)


def test_hf_folder_of_parquet_files_named_by_split(tmp_path):
    import datasets

    for split, n in (("train", 12), ("test", 6)):
        labels = balanced_labels(n, 3).astype(np.int64)
        datasets.Dataset.from_dict({"x": class_images(labels, 4, seed=0).reshape(n, -1).tolist(),
                                    "label": [NAMES[c] for c in labels]}
                                   ).to_parquet(str(tmp_path / "data" / f"{split}-00000.parquet"))
    dm = HFImageDataModule(tmp_path / "data", image_column="x")
    assert dm.class_names == NAMES   # string labels: the sorted names
    assert len(dm.tensors("train")[1]) == 12 and len(dm.tensors("test")[1]) == 6
    assert dm.tensors("train")[0].shape == (12, 16)   # integer feature vectors stay vectors
