"""`as_labeled`, the one input path of distances and flows: every kind of object a user holds gives
the same tensors as the plain `X.float() / 255` reference, distances and flows give the same numbers
whichever kind they were handed, and bad input is refused with the problem and the fix named."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, TensorDataset

from otdata.data import LabeledDataModule
from otdata.data.labeled import LabeledData, as_labeled
from otdata.distance import DatasetDistance, SlicedDatasetDistance, distance_matrix
from otdata.flows import DatasetFlow

NAMES = ["zero", "one", "two"]


def images(n=24, channels=1, side=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, 256, (n, channels, side, side), generator=g, dtype=torch.uint8)
    return X, torch.arange(n) % 3


class PILDataset(Dataset):
    """torchvision-style: PIL images and int labels, a `classes` attribute, no transform."""

    classes = NAMES

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        a = self.X[i].numpy()
        return Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)), int(self.y[i])


class TinyModule(LabeledDataModule):
    name = "tiny"

    def __init__(self, X, y, **kw):
        super().__init__(**kw)
        self.X, self.y = X, y

    def load_split(self, split):
        return self.X.float() / 255, self.y

    @property
    def class_names(self):
        return NAMES


class ItemsDataset(Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def hf_dataset(X, y):
    import datasets
    arr = X.numpy()
    pics = [Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)) for a in arr]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"image": pics, "label": y.tolist()}, features=features)


@pytest.mark.parametrize("channels", [1, 3])
def test_every_input_kind_gives_the_reference_tensors(channels):
    X, y = images(channels=channels)
    ref = X.reshape(len(X), -1).float() / 255  # the reference: ToTensor's scaling, C-H-W order
    kinds = {
        "tensor": as_labeled(X, y, NAMES),
        "numpy": as_labeled(X.numpy(), y.numpy(), NAMES),
        "list labels": as_labeled(X, y.tolist(), NAMES),
        "string labels": as_labeled(X, [NAMES[i] for i in y.tolist()], NAMES),
        "tuple": as_labeled((X, y), class_names=NAMES),
        "TensorDataset": as_labeled(TensorDataset(X, y), class_names=NAMES),
        "DataLoader": as_labeled(DataLoader(TensorDataset(X, y), batch_size=5), class_names=NAMES),
        "PIL Dataset": as_labeled(PILDataset(X, y)),
        "PIL DataLoader": as_labeled(DataLoader(PILDataset(X, y), batch_size=7, collate_fn=_pil_collate)),
        "datamodule": as_labeled(TinyModule(X, y)),
        "datasets.Dataset": as_labeled(hf_dataset(X, y)),
    }
    kinds["LabeledData"] = as_labeled(kinds["tensor"])
    kinds["prepared"] = as_labeled(DatasetDistance().prepare(X, y, NAMES))
    for kind, data in kinds.items():
        assert isinstance(data, LabeledData), kind
        assert data.X.dtype == torch.float32 and data.X.shape == ref.shape, kind
        assert torch.equal(data.X, ref), kind
        assert data.y.dtype == torch.int64 and torch.equal(data.y, y), kind
        assert data.class_names == NAMES, kind
    assert kinds["tensor"].item_shape == (channels, 6, 6)


def _pil_collate(batch):
    from otdata.data.labeled import item_tensor

    return torch.stack([item_tensor(x) for x, _ in batch]), torch.tensor([c for _, c in batch])


def test_class_names_per_label_value_keep_the_present_classes():
    X, _ = images(n=6)
    y = torch.tensor([0, 2, 0, 2, 0, 2])  # class 1 absent from this sample
    assert as_labeled(X, y, NAMES).class_names == ["zero", "two"]
    assert as_labeled(X, y + 5).class_names == ["5", "7"]
    assert as_labeled(X, None).y is None


@pytest.mark.parametrize("bad, error, match", [
    (lambda X, y: as_labeled(X.float().index_fill(0, torch.tensor([3, 7]), float("nan")), y),
     ValueError, r"2 row\(s\): row\(s\) 3, 7.*drop those rows"),
    (lambda X, y: as_labeled(X.float().index_fill(0, torch.tensor([4]), float("inf")), y), ValueError, "row"),
    (lambda X, y: as_labeled(X, y[:-1]), ValueError, "23 labels but the features have 24 rows"),
    (lambda X, y: as_labeled(X, y.float() + 0.5), TypeError, r"integer class labels.*y.long\(\)"),
    (lambda X, y: as_labeled(X, [0.5] * 24), TypeError, "integer class labels"),
    (lambda X, y: as_labeled(X[:0], y[:0]), ValueError, "empty.*at least one sample"),
    (lambda X, y: as_labeled(DataLoader(TensorDataset(X[:0], y[:0]))), ValueError, "empty"),
    (lambda X, y: as_labeled(X[:, 0, 0, 0], y), ValueError, r"reshape\(-1, 1\)"),
    (lambda X, y: as_labeled(["a text"] * 24, y), TypeError, "embed them first"),
    (lambda X, y: as_labeled(X, y[:, None]), ValueError, "1-D"),
    (lambda X, y: as_labeled(X, None, NAMES), ValueError, "no labels; pass y"),
    (lambda X, y: as_labeled((X, y), y), TypeError, "already holds its labels"),
    (lambda X, y: as_labeled(X, ["cat"] * 24, NAMES), ValueError, "not among the class names"),
    (lambda X, y: as_labeled(X, y + 7, ["a", "b"]), ValueError, "2 class names for 3 distinct labels"),
    (lambda X, y: as_labeled(object(), y), TypeError, "as_labeled for the objects"),
    (lambda X, y: as_labeled(DataLoader([{"x": 1}] * 3)), TypeError, r"must yield \(x, y\)"),
    (lambda X, y: as_labeled(DataLoader(PILDataset(X, y), batch_size=4)), TypeError, "pass the Dataset itself"),
    (lambda X, y: as_labeled(ItemsDataset([(X[0], 0), (torch.zeros(1, 8, 8, dtype=torch.uint8), 1)])),
     ValueError, r"different shapes, \(1, 6, 6\) and \(1, 8, 8\).*Resize"),
])
def test_bad_input_names_the_problem_and_the_fix(bad, error, match):
    X, y = images()
    with pytest.raises(error, match=match):
        bad(X, y)


def test_hf_dataset_columns_are_named_in_errors():
    X, y = images()
    ds = hf_dataset(X, y)
    with pytest.raises(ValueError, match=r"no label column 'target'.*\['image', 'label'\]"):
        as_labeled(ds, label_column="target")
    import datasets

    texts = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    with pytest.raises(TypeError, match="holds text; embed it first"):
        as_labeled(texts, x_column="text")
    assert torch.equal(as_labeled(ds, "label").y, y)  # the label column named positionally


def test_distance_on_a_loader_equals_the_distance_on_its_tensors():
    X1, y1 = images(n=30, seed=1)
    X2, y2 = images(n=24, seed=2)
    dd = DatasetDistance(dtype=torch.float64)
    ref = dd(X1.float() / 255, y1, X2.float() / 255, y2)
    by_loader = dd(DataLoader(TensorDataset(X1, y1), batch_size=8), DataLoader(PILDataset(X2, y2), batch_size=5,
                                                                             collate_fn=_pil_collate))
    by_lists = dd(X1.numpy(), y1.tolist(), X2, y2.tolist())  # list labels: no "4 positional arguments" error
    assert ref.converged
    for res in (by_loader, by_lists):
        assert res.value == pytest.approx(ref.value, rel=1e-6, abs=1e-9)
        assert res.divergence == pytest.approx(ref.divergence, rel=1e-6, abs=1e-9)
    assert by_loader.class_names2 == NAMES


def test_sliced_distance_reads_uint8_images_as_intensities():
    X1, y1 = images(n=30, seed=1)
    X2, y2 = images(n=24, seed=2)
    dd = SlicedDatasetDistance(n_projections=64, dtype=torch.float64)
    as_float = dd(X1.double() / 255, y1, X2.double() / 255, y2).value
    assert as_float < 1.0  # pixels in [0, 1]: a 1e46 here meant raw 0..255 values to the 7th power
    as_uint8 = dd(X1, y1, X2, y2).value
    assert as_uint8 == pytest.approx(dd(X1.float() / 255, y1, X2.float() / 255, y2).value, rel=1e-12)
    assert as_uint8 == pytest.approx(as_float, rel=1e-6)  # float32 division's rounding
    assert dd(TensorDataset(X1, y1), (X2, y2)).value == pytest.approx(as_uint8, rel=1e-12)


def test_flow_and_matrix_take_any_dataset():
    Xs, ys = images(n=18, seed=1)
    Xt, yt = images(n=18, seed=2)
    kw = dict(steps=2, progress=False, distance=dict(label_distance="means"))
    ref = DatasetFlow(**kw).run(Xs.float() / 255, ys, target=(Xt.float() / 255, yt))
    got = DatasetFlow(**kw).run(DataLoader(TensorDataset(Xs, ys), batch_size=4), target=TensorDataset(Xt, yt))
    assert torch.allclose(got.X, ref.X, atol=1e-6)
    with pytest.raises(ValueError, match="no labels"):
        DatasetFlow(**kw).run(Xs, target=(Xt, yt))
    dd = DatasetDistance(label_distance="means")
    m1 = distance_matrix({"a": (Xs.float() / 255, ys), "b": (Xt.float() / 255, yt)}, dd)
    m2 = distance_matrix({"a": TensorDataset(Xs, ys), "b": DataLoader(TensorDataset(Xt, yt))}, dd)
    assert torch.allclose(m1.values, m2.values, rtol=1e-6)


def test_different_feature_spaces_name_both_shapes_and_the_fix():
    gray, y = images(side=28)
    rgb, _ = images(channels=3, side=32)
    for call in (lambda: DatasetDistance()(gray, y, rgb, y), lambda: SlicedDatasetDistance()(gray, y, rgb, y)):
        with pytest.raises(ValueError, match=r"dimension 784 but the X2 has 3072 \(items of shape \(1, 28, 28\) "
                                             r"vs \(3, 32, 32\)\).*source.features=resize28_gray"):
            call()
