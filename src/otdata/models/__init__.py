"""Classifiers: the networks (pixels in [0, 1], normalized inside; `MLP` for feature vectors), a
Lightning wrapper, and building, training, loading and fine-tuning them (:mod:`.training`)."""

from otdata.models.classifier import Classifier, random_shift
from otdata.models.nets import MLP, NETS, LeNet5, Normalize, SmallCNN, SmallResNet, net_config
from otdata.models.training import DEFAULT_MODEL, build_classifier, config_dict, load_or_train_classifier

__all__ = [
    "MLP", "NETS", "Classifier", "LeNet5", "Normalize", "SmallCNN", "SmallResNet", "net_config",
    "random_shift", "DEFAULT_MODEL", "build_classifier", "config_dict", "load_or_train_classifier",
]
