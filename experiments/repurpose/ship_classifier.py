"""Ship the re-purposing experiment's frozen MNIST classifier with otdata.

Takes the classifier that `otdata experiment=repurpose task.classifier=train` trained and cached
for the default recipe (or the recipe the given overrides make), measures its accuracy on the
target's whole test split, and writes `src/otdata/models/pretrained/mnist_cnn.safetensors` with its
record `mnist_cnn.json` (digest, recipe, accuracy, commands):

    otdata experiment=repurpose task.classifier=train paths.data_dir=../shared/data   # trains, caches
    python experiments/repurpose/ship_classifier.py paths.data_dir=../shared/data
"""

from __future__ import annotations

import sys

from otdata.models import load_or_train_classifier
from otdata.models.shipped import PRETRAINED_DIR, write_shipped
from otdata.instantiate import safe_instantiate
from otdata.tasks.classifier import classifier_checkpoint, classifier_recipe

TRAIN = "otdata experiment=repurpose task.classifier=train paths.data_dir=../shared/data"


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir
    from omegaconf import open_dict

    from otdata.config import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["experiment=repurpose", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = "."  # no run folder: only the recipe and the data are read
    return cfg


def main(overrides: list[str]) -> None:
    cfg = compose(overrides)
    checkpoint = classifier_checkpoint(cfg)
    if not checkpoint.is_file():
        raise SystemExit(f"No cached classifier at {checkpoint}: run `{TRAIN}` first")
    classifier, _ = load_or_train_classifier(None, checkpoint)
    target = safe_instantiate(cfg.target)
    X, y = target.tensors("test", flatten=True)
    accuracy = round(100.0 * classifier.accuracy(X, y), 2)
    record = {
        "target": target.name, "test_accuracy": accuracy, "test_items": len(y),
        "command": TRAIN,
        "shipped_with": "python experiments/repurpose/ship_classifier.py paths.data_dir=../shared/data",
        "recipe": classifier_recipe(cfg),
    }
    weights = write_shipped(classifier, "mnist_cnn", record, PRETRAINED_DIR)
    print(f"{weights}: {accuracy:.2f}% on {len(y)} {target.name} test images")


if __name__ == "__main__":
    main(sys.argv[1:])
