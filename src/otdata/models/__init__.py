"""Classifiers: the networks (pixels in [0, 1], normalized inside; `MLP` for feature vectors), a
Lightning wrapper, building, training, loading and fine-tuning them (:mod:`.training`), and the
classifiers shipped with otdata (:mod:`.shipped`)."""

from otdata.models.classifier import Classifier, random_shift
from otdata.models.nets import MLP, NETS, LeNet5, Normalize, SmallCNN, SmallResNet, net_config
from otdata.models.shipped import load_shipped, shipped_names, shipped_record
from otdata.models.training import DEFAULT_MODEL, build_classifier, config_dict, load_or_train_classifier

__all__ = [
    "MLP", "NETS", "Classifier", "LeNet5", "Normalize", "SmallCNN", "SmallResNet", "net_config",
    "random_shift", "DEFAULT_MODEL", "build_classifier", "config_dict", "load_or_train_classifier",
    "load_shipped", "shipped_names", "shipped_record",
]
