"""The feature and label columns of a Hugging Face ``datasets.Dataset`` as arrays.

Used by :func:`otdata.data.as_labeled`; ``datasets`` itself is never imported here (the object
brings its own methods). Image columns come back as ``(n, C, H, W)`` (channels first, as torchvision
orders them) or ``(n, H, W)`` for gray images; ``ClassLabel`` names become the class names.
"""

from __future__ import annotations

import numpy as np

#: feature columns tried in this order when none is named
X_COLUMNS = ("image", "img", "pixel_values", "features", "embedding", "x")
#: label columns tried in this order when none is named (then the one ClassLabel column)
LABEL_COLUMNS = ("label", "labels", "y", "fine_label")


def _pick(columns: list[str], name: str | None, candidates, what: str, dataset: str, fix: str) -> str:
    if name is not None:
        if name not in columns:
            raise ValueError(f"{dataset} has no {what} column {name!r}; its columns are {columns}. {fix}")
        return name
    for c in candidates:
        if c in columns:
            return c
    raise ValueError(f"{dataset}: no {what} column found among {columns} (tried {list(candidates)}). {fix}")


def hf_arrays(ds, x_column: str | None, label_column: str | None, dataset: str = "X", texts: bool = False):
    """``(X array, labels array, class names or None)`` of a ``datasets.Dataset``; a text column is
    refused unless ``texts`` (then ``X`` is the list of strings, for an encoder to embed)."""
    if not hasattr(ds, "select_columns"):  # a DatasetDict
        splits = list(ds.keys()) if hasattr(ds, "keys") else []
        raise TypeError(f"{dataset} is a dataset dictionary with splits {splits}; pick one, e.g. ds['train']")
    columns = list(ds.column_names)
    features = ds.features
    class_labels = [c for c in columns if type(features[c]).__name__ == "ClassLabel"]
    ycol = _pick(columns, label_column, [*LABEL_COLUMNS, *class_labels], "label", dataset,
                 "Name it: as_labeled(ds, label_column='...') (data config: `label_column=...`).")
    xcol = _pick(columns, x_column, X_COLUMNS, "feature", dataset,
                 "Name it: as_labeled(ds, x_column='...') (data config: `x_column=...`).")
    table = ds.select_columns([xcol, ycol]).with_format("numpy")[:]
    X, y = table[xcol], table[ycol]
    if X.dtype.kind in "US" or (X.dtype == object and len(X) and isinstance(X[0], str)):
        if texts:
            return [str(t) for t in X], y, _class_names(features[ycol])
        raise TypeError(f"{dataset}: column {xcol!r} holds text; embed it first with a sentence encoder "
                        "(otdata.data.embed.embed_texts(texts, model=...), or data=hf_text)")
    if X.dtype == object:
        shapes = sorted({tuple(np.shape(v)) for v in X})
        raise ValueError(f"{dataset}: column {xcol!r} holds items of different shapes {shapes[:4]}; give them one "
                         "shape with a features step (otdata.data.features.Resize(28, channels=1), or "
                         "`source.features=resize28_gray`)")
    if type(features[xcol]).__name__ == "Image" and X.ndim == 4:
        X = np.ascontiguousarray(X.transpose(0, 3, 1, 2))  # (n, H, W, C) -> (n, C, H, W)
    return X, y, _class_names(features[ycol])


def _class_names(feature) -> list[str] | None:
    return list(feature.names) if type(feature).__name__ == "ClassLabel" else None
