"""Classifiers shipped with otdata: weights in `models/pretrained/<name>.safetensors`, and beside them
`<name>.json`, their record (sha256 digest, network, recipe, test accuracy, the command that made
them).

A shipped classifier spares a first run the training of its frozen classifier (minutes on a CPU):
`experiment=repurpose` uses `mnist_cnn` when its own classifier recipe is the one recorded (see
:mod:`otdata.tasks.classifier`). In Python::

    from otdata.models import load_shipped
    classifier = load_shipped("mnist_cnn")          # MNIST digits, pixels in [0, 1]
    classifier.predict(X)                           # X: (n, 784) or (n, 1, 28, 28)

The weights are plain tensors (safetensors: no pickle is ever loaded), and their digest is checked
against the record before they are used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from otdata.data.content_cache import file_digest
from otdata.models.classifier import Classifier

#: The folder of the shipped weights and their records (package data).
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


class ShippedWeightsError(RuntimeError):
    """A shipped weights file is missing, or differs from its recorded digest."""


def shipped_names() -> list[str]:
    """The names of the classifiers shipped with otdata (e.g. ``["mnist_cnn"]``)."""
    return sorted(p.stem for p in PRETRAINED_DIR.glob("*.json"))


def shipped_record(name: str = "mnist_cnn") -> dict[str, Any]:
    """The record of a shipped classifier: `sha256`, `hyper_parameters` (the `Classifier`'s
    arguments), `recipe` (what trained it), `test_accuracy`, `command`, ..."""
    path = PRETRAINED_DIR / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"No shipped classifier named {name!r}; shipped: {shipped_names()}")
    return json.loads(path.read_text())


def shipped_weights(name: str = "mnist_cnn") -> Path:
    """The weights file of a shipped classifier, after checking its digest against the record."""
    record = shipped_record(name)
    path = PRETRAINED_DIR / record["weights"]
    if not path.is_file():
        raise ShippedWeightsError(f"{path} is missing (the package data of otdata is incomplete); "
                                  "reinstall otdata (`pip install -e .` in its clone)")
    found = file_digest(path)
    if found != record["sha256"]:
        raise ShippedWeightsError(
            f"{path} has sha256 {found}, its record {name}.json says {record['sha256']}: the file "
            "was changed or damaged. Restore it (`git checkout -- src/otdata/models/pretrained`), or "
            "train the classifier instead (task.classifier=train)")
    return path


def load_shipped(name: str = "mnist_cnn", map_location: str | torch.device = "cpu") -> Classifier:
    """A shipped classifier, built from its record and loaded from its checked weights, in eval mode."""
    from safetensors.torch import load_file

    path = shipped_weights(name)
    classifier = Classifier(**shipped_record(name)["hyper_parameters"])
    classifier.load_state_dict(load_file(str(path), device=str(map_location)))
    return classifier.to(map_location).eval()


def write_shipped(classifier: Classifier, name: str, record: dict[str, Any],
                  folder: str | Path = PRETRAINED_DIR) -> Path:
    """Write `classifier`'s weights as `<folder>/<name>.safetensors` and its record
    `<folder>/<name>.json` (`record` plus the weights' file name, digest and hyper-parameters)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / f"{name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    save_file(tensors, str(weights))
    hparams = {k: v for k, v in dict(classifier.hparams).items()}
    full = {"name": name, "weights": weights.name, "sha256": file_digest(weights),
            "bytes": weights.stat().st_size, "hyper_parameters": hparams, **record}
    (folder / f"{name}.json").write_text(json.dumps(full, indent=2) + "\n")
    return weights
