"""One input path for every distance and flow: whatever labeled data a user holds, as validated
tensors.

:func:`as_labeled` accepts

* tensors or numpy arrays of any item shape (``(n, 1, 28, 28)`` images are flattened to
  ``(n, 784)``), nested Python lists, with labels as a tensor, an array or a Python list (of
  integers, or of strings, which become the class names);
* an ``(X, y)`` tuple;
* a ``torch.utils.data.Dataset`` or ``DataLoader`` yielding ``(x, y)`` (tensors, arrays, numbers
  or PIL images; torchvision's ``classes`` attribute gives the class names);
* a :class:`~otdata.data.LabeledDataModule` (its ``split``, subsampled as it is configured);
* a Hugging Face ``datasets.Dataset`` (an image or numeric feature column and a label column;
  ``ClassLabel`` names become the class names);
* a :class:`LabeledData` or a dataset a distance prepared (``DatasetDistance.prepare``),

and returns a :class:`LabeledData`: ``X`` float ``(n, d)``, ``y`` int64 ``(n,)`` (or ``None``:
unlabeled) and one class name per distinct label. uint8 features are images as stored and are
divided by 255, as torchvision's ``ToTensor`` does; float32/float64 features keep their precision
and autograd graph. Bad input (no items, NaN/inf, ``X``/``y`` length mismatch, labels that are not
integers) is refused with a message that names the problem and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ["LabeledData", "as_labeled", "check_same_space", "dataset_arguments"]

#: what the feature-space errors suggest
FEATURES_FIX = (
    "put both in one feature space with a features step: on the command line "
    "`source.features=resize28_gray` (resize + grayscale, or `resize32_rgb`) or "
    "`features@source.features=encoder source.features.model=...` and the same for the target (one "
    "pretrained encoder for both); in Python `otdata.data.features.Resize(28, channels=1)(X)` or "
    "`otdata.data.image_encoder.ImageEncoder(...)(X)`")


@dataclass
class LabeledData:
    """A dataset as the OT code consumes it.

    Attributes:
        X: ``(n, d)`` float32 or float64 features (items flattened).
        y: ``(n,)`` int64 labels, or ``None`` for an unlabeled set.
        class_names: one name per distinct label, in sorted label order (empty when unlabeled).
        item_shape: the shape of one item before flattening (e.g. ``(1, 28, 28)``), for messages
            and for reshaping flowed particles back into images.
    """

    X: Tensor
    y: Tensor | None
    class_names: list[str]
    item_shape: tuple[int, ...]

    @property
    def n(self) -> int:
        return int(self.X.shape[0])

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])


# ------------------------------------------------------------------------------------------------
# the public door
# ------------------------------------------------------------------------------------------------


def as_labeled(obj, y=None, class_names: Sequence[str] | None = None, name: str = "X", *,
               split: str = "train", max_samples: int | None = None, x_column: str | None = None,
               label_column: str | None = None, features=None) -> LabeledData:
    """``obj`` (see the module doc for the kinds) as a validated :class:`LabeledData`.

    Args:
        obj: the features, or an object that holds features and labels.
        y: labels for array-like ``obj`` (a tensor, array or list; strings become class names); for
            a Hugging Face dataset, the label column's name. Must be None when ``obj`` holds labels.
        class_names: names of the classes, either one per distinct label in sorted order or one per
            label value ``0..C-1`` (torchvision's ``classes``, a ``ClassLabel``'s ``names``).
        name: how error messages call this dataset (``X1``, ``source``, ...).
        split, max_samples: for a :class:`~otdata.data.LabeledDataModule`: which split, and a
            stratified subsample size (default: the datamodule's own setting).
        x_column, label_column: for a Hugging Face dataset (default: the first of ``image``,
            ``img``, ``pixel_values``, ``features``, ``embedding``, ``x`` present; ``label`` or
            ``labels`` or the one ``ClassLabel`` column).
        features: a step applied to the items before they are flattened: a feature step of
            :mod:`otdata.data.features` (``Resize(28, channels=1)``, an ``ImageEncoder``) or, for
            texts (a list of strings, a text column), a :class:`~otdata.data.embed.TextEncoder`.
    """
    yname = name.replace("X", "y") if "X" in name else f"labels of {name}"
    opts = dict(split=split, max_samples=max_samples, x_column=x_column, label_column=label_column,
                texts=features is not None)
    X, labels, names = _unpack(obj, y, name, opts)
    if features is not None:
        X = _apply_features(X, features, name)
    if class_names is not None:
        names = [str(c) for c in class_names]
    X, item_shape = _check_features(X, name)
    if labels is None:
        if class_names is not None:
            raise ValueError(f"class_names were given for {name} but no labels; pass y (one integer label "
                             "per row) or drop class_names")
        return LabeledData(X, None, [], item_shape)
    labels, names = _labels_from_strings(labels, names, yname)
    labels = _check_labels(labels, X.shape[0], yname).to(X.device)
    return LabeledData(X, labels, _present_names(labels, names, yname), item_shape)


def check_same_space(a, b, names: tuple[str, str] = ("X1", "X2")) -> None:
    """Refuse two datasets whose feature dimensions differ, naming both shapes and the fix.

    ``a``, ``b``: ``(n, d)`` tensors, or objects with ``X`` or ``dim`` (and, for the message,
    ``item_shape``)."""
    da, db = _dim(a), _dim(b)
    if da == db:
        return
    sa, sb = (getattr(x, "item_shape", None) or (_dim(x),) for x in (a, b))
    raise ValueError(
        f"{names[0]} features have dimension {da} but the {names[1]} has {db} (items of shape {sa} vs "
        f"{sb}); distances and flows compare datasets in one feature space. Fix: {FEATURES_FIX}.")


def dataset_arguments(args: tuple, is_prepared=lambda a: False) -> list:
    """The two datasets of a distance call, each ``(X, y)`` or one object.

    ``dd(X1, y1, X2, y2)`` (labels: tensors, arrays, lists or None), ``dd(a, b)`` (each a prepared
    dataset, a tuple, a loader, a datamodule, ...), or three arguments with one prepared dataset:
    ``dd(X1, y1, b)`` / ``dd(a, X2, y2)``."""
    def whole(a) -> bool:  # a complete dataset, not a bare features array
        return is_prepared(a) or not (a is None or isinstance(a, (Tensor, np.ndarray, list)))

    if len(args) == 4:
        return [(args[0], args[1]), (args[2], args[3])]
    if len(args) == 2 and not (getattr(args[1], "ndim", 2) <= 1 or args[1] is None):
        return [args[0], args[1]]
    if len(args) == 3 and whole(args[0]) and not whole(args[1]):
        return [args[0], (args[1], args[2])]
    if len(args) == 3 and whole(args[2]) and not whole(args[0]):
        return [(args[0], args[1]), args[2]]
    raise TypeError(
        f"a distance compares two datasets; got {len(args)} positional argument(s) that do not form two. "
        "Call it as dd(X1, y1, X2, y2) (labels: tensors, arrays or lists; None for plain OT), as dd(a, b) "
        "with a and b each a (X, y) tuple, a Dataset, a DataLoader, a LabeledDataModule, a datasets.Dataset "
        "or dd.prepare(X, y), or as dd(X1, y1, b) / dd(a, X2, y2)")


# ------------------------------------------------------------------------------------------------
# validation (features and labels)
# ------------------------------------------------------------------------------------------------


def _dim(a) -> int:
    """Feature dimension of an ``(n, d)`` tensor, an object with ``X``, or one with ``dim``."""
    if isinstance(a, Tensor):
        return int(a.shape[1])
    return int(a.X.shape[1]) if hasattr(a, "X") else int(a.dim)


def _to_tensor(a, name: str) -> Tensor:
    """A tensor view of ``a`` (tensor, numpy array, or nested list of numbers)."""
    if isinstance(a, Tensor):
        return a
    if isinstance(a, (list, tuple)):
        a = np.asarray(a)
    if isinstance(a, np.ndarray):
        if a.dtype == object or a.dtype.kind in "USV":
            raise TypeError(f"{name} holds {a.dtype} values (ragged rows or text?); pass numbers of one shape "
                            "per item (texts: embed them first, otdata.data.embed.embed_texts(texts, model=...))")
        return torch.from_numpy(np.ascontiguousarray(a))
    raise TypeError(f"{name} must be a tensor, a numpy array or a list of numbers, got {type(a).__name__}; "
                    "see otdata.data.as_labeled for the objects a dataset may be")


def _check_features(X, name: str) -> tuple[Tensor, tuple[int, ...]]:
    """``(X as float (n, d), item shape)``; uint8 read as intensities (/255)."""
    X = _to_tensor(X, name)
    if X.ndim == 0 or X.shape[0] == 0:
        raise ValueError(f"{name} is empty (0 samples); pass at least one sample per dataset")
    if X.ndim == 1:
        raise ValueError(f"{name} has shape {tuple(X.shape)}: one number per sample is ambiguous; pass "
                         f"{name}.reshape(-1, 1) for n samples of one feature")
    item_shape = tuple(int(s) for s in X.shape[1:])
    X = X.reshape(X.shape[0], -1)
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 features per sample (items of shape {item_shape})")
    if X.dtype == torch.uint8:  # images as stored (0..255): read as intensities in [0, 1]
        log.info("%s holds uint8 values: read as images and divided by 255 (pass floats to keep another scale)", name)
        X = X.float() / 255.0
    elif X.dtype == torch.bool or torch.is_complex(X):
        raise TypeError(f"{name} holds {X.dtype} values; pass real-valued features (e.g. {name}.float())")
    elif X.dtype not in (torch.float32, torch.float64):
        X = X.float()
    finite = torch.isfinite(X.detach()).all(1)
    if not bool(finite.all()):
        rows = torch.nonzero(~finite).flatten().tolist()
        shown = ", ".join(map(str, rows[:5])) + (f" (and {len(rows) - 5} more)" if len(rows) > 5 else "")
        raise ValueError(f"{name} contains NaN or inf values in {len(rows)} row(s): row(s) {shown}; clean, impute "
                         "or drop those rows before computing distances or flows")
    return X, item_shape


def _labels_from_strings(y, names: list[str] | None, yname: str):
    """String labels become indices into the class names (given, or the sorted distinct strings)."""
    if isinstance(y, np.ndarray) and y.dtype.kind in "US":
        y = y.tolist()
    if not (isinstance(y, (list, tuple)) and y and all(isinstance(v, str) for v in y)):
        return y, names
    if names is None:
        names = sorted(set(y))
    index = {c: i for i, c in enumerate(names)}
    unknown = sorted(set(y) - set(index))
    if unknown:
        raise ValueError(f"{yname} holds labels {unknown[:5]} that are not among the class names {names[:10]}; "
                         "pass class_names that list every label, or leave them out")
    return torch.tensor([index[v] for v in y], dtype=torch.long), names


def _check_labels(y, n: int, yname: str) -> Tensor:
    y = _to_tensor(y, yname)
    if torch.is_floating_point(y) or torch.is_complex(y) or y.dtype == torch.bool:
        raise TypeError(f"{yname} must hold integer class labels, got dtype {y.dtype}; convert with "
                        f"{yname}.long() (torch) or {yname}.astype(int) (numpy) if they are whole numbers")
    if y.ndim != 1:
        raise ValueError(f"{yname} must be 1-D (n,), got shape {tuple(y.shape)}; one integer label per row")
    if y.shape[0] != n:
        raise ValueError(f"{yname} has {y.shape[0]} labels but the features have {n} rows; they must match "
                         "(one label per row, in the same order)")
    return y.long()


def _present_names(y: Tensor, names: list[str] | None, yname: str) -> list[str]:
    """One name per distinct label (sorted), from names given per distinct label or per value."""
    present = torch.unique(y).tolist()
    if names is None:
        return [str(c) for c in present]
    if len(names) == len(present):
        return list(names)
    if all(0 <= c < len(names) for c in present):  # names per label value 0..C-1
        return [names[c] for c in present]
    raise ValueError(f"{len(names)} class names for {len(present)} distinct labels {present[:10]} in {yname}; "
                     "give one name per distinct label (sorted) or one per label value 0..C-1")


# ------------------------------------------------------------------------------------------------
# the kinds of objects
# ------------------------------------------------------------------------------------------------


def _unpack(obj, y, name, opts: dict):
    """``(features, labels, class names or None)`` of any supported object (``opts``: the keyword
    arguments of :func:`as_labeled` that say how to read it)."""
    if isinstance(obj, LabeledData):
        return _only(obj.X, obj.y, obj.class_names, y, name)
    if _is_prepared(obj):  # a dataset a distance prepared: original label values back
        labels = None if obj.labels is None else obj.classes[obj.labels]
        return _only(obj.X, labels, obj.class_names, y, name)
    if isinstance(obj, tuple):
        if len(obj) != 2:
            raise TypeError(f"{name}: a tuple must be (X, y), got {len(obj)} element(s)")
        if obj[1] is None and not isinstance(obj[0], (Tensor, np.ndarray, list)):
            return _unpack(obj[0], y, name, opts)  # (dataset, None)
        return _only(obj[0], obj[1], None, y, name)
    if _is_hf_dataset(obj):
        from otdata.data.hf_columns import hf_arrays

        label_column = opts["label_column"]
        if isinstance(y, str):  # as_labeled(ds, "label"): the label column by name
            label_column, y = label_column or y, None
        return _only(*hf_arrays(obj, opts["x_column"], label_column, name, texts=opts["texts"]), y, name)
    if hasattr(obj, "tensors") and hasattr(obj, "class_names") and hasattr(obj, "load_split"):
        X, labels = obj.tensors(opts["split"], max_samples=opts["max_samples"])
        return _only(X, labels, list(obj.class_names), y, name)
    if isinstance(obj, torch.utils.data.DataLoader):
        X, labels = _collect(obj, name)
        return _only(X, labels, _classes_of(obj.dataset), y, name)
    if isinstance(obj, torch.utils.data.Dataset):
        loader = torch.utils.data.DataLoader(obj, batch_size=512, collate_fn=_collate)
        X, labels = _collect(loader, name)
        return _only(X, labels, _classes_of(obj), y, name)
    return obj, y, None


def _is_texts(X) -> bool:
    if isinstance(X, np.ndarray):
        return X.dtype.kind in "US" or (X.dtype == object and len(X) > 0 and isinstance(X.flat[0], str))
    return isinstance(X, (list, tuple)) and len(X) > 0 and all(isinstance(t, str) for t in X)


def _apply_features(X, features, name: str) -> Tensor:
    """A text encoder on texts, or a feature step (:mod:`otdata.data.features`) on the items."""
    if _is_texts(X):
        if not hasattr(features, "encode"):
            raise TypeError(f"{name} holds texts: features= must be a text encoder, e.g. "
                            f"otdata.data.embed.TextEncoder(model=...), got {type(features).__name__}")
        return features.encode([str(t) for t in X], name=name)
    from otdata.data.features import feature_step

    return feature_step(features)(_to_tensor(X, name), name=name)


def _only(X, labels, names, y, name):
    if y is not None:
        raise TypeError(f"{name} already holds its labels; pass y=None (got a separate y as well)")
    return X, labels, names


def _is_prepared(obj) -> bool:
    return all(hasattr(obj, a) for a in ("X", "labels", "classes", "class_names", "stats"))


def _is_hf_dataset(obj) -> bool:
    return type(obj).__module__.split(".")[0] == "datasets" and hasattr(obj, "column_names")


def _classes_of(dataset) -> list[str] | None:
    """torchvision's ``classes`` (also through a ``Subset``), or None."""
    for d in (dataset, getattr(dataset, "dataset", None)):
        classes = getattr(d, "classes", None)
        if isinstance(classes, (list, tuple)) and classes and all(isinstance(c, str) for c in classes):
            return list(classes)
    return None


def item_tensor(x) -> Tensor:
    """One item as a tensor: PIL images become ``(C, H, W)`` uint8 (as ``ToTensor`` orders them)."""
    if isinstance(x, Tensor):
        return x
    if hasattr(x, "getbands") and hasattr(x, "size"):  # a PIL image
        a = np.asarray(x)
        return torch.from_numpy(a.copy()).permute(2, 0, 1) if a.ndim == 3 else torch.from_numpy(a.copy())[None]
    return torch.as_tensor(np.asarray(x))


def _collate(items):
    """Stack ``(x, y)`` items of any kind (the default collate refuses PIL images)."""
    xs, ys = [], []
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"dataset items must be (x, y) pairs, got {type(item).__name__}; wrap the dataset so "
                            "that it returns (features, label)")
        xs.append(item_tensor(item[0]))
        ys.append(torch.as_tensor(item[1]).reshape(()))  # dtype kept: float labels are refused later
    _same_shapes([x.shape for x in xs])
    return torch.stack(xs), torch.stack(ys)


def _same_shapes(shapes) -> None:
    first = tuple(shapes[0])
    other = next((tuple(s) for s in shapes if tuple(s) != first), None)
    if other is not None:
        raise ValueError(f"items have different shapes, {first} and {other}; give every item one shape: "
                         "a features step such as otdata.data.features.Resize(28, channels=1) resizes images")


def _collect(loader, name: str) -> tuple[Tensor, Tensor | None]:
    """Concatenate a loader's batches: ``(x, y)`` pairs, or bare feature batches (unlabeled)."""
    xs, ys = [], []
    try:
        batches = list(loader)
    except TypeError as error:
        if "collate" not in str(error):
            raise
        raise TypeError(f"{name}: the DataLoader cannot batch its items ({error}); pass the Dataset itself "
                        "(as_labeled reads PIL images and arrays), or give it transform=ToTensor()") from error
    for batch in batches:
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            xs.append(item_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
        elif isinstance(batch, (Tensor, np.ndarray)):
            xs.append(item_tensor(batch))
        else:
            raise TypeError(f"{name}: the loader yields {type(batch).__name__}; it must yield (x, y) batches")
    if not xs:
        raise ValueError(f"{name} is empty: the dataset / loader yielded no items")
    _same_shapes([x.shape[1:] for x in xs])
    return torch.cat(xs), (torch.cat([v.reshape(-1) for v in ys]) if ys else None)
