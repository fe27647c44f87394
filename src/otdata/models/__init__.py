"""Classifiers: the networks (pixels in [0, 1], normalized inside), a Lightning wrapper, building,
training and loading them (:mod:`.training`), and the transfer-learning helpers (:mod:`.transfer`)."""

from otdata.models.classifier import Classifier, random_shift
from otdata.models.nets import NETS, LeNet5, Normalize, SmallCNN, SmallResNet, net_config
from otdata.models.training import DEFAULT_MODEL, build_classifier, config_dict, load_or_train_classifier

__all__ = [
    "NETS", "Classifier", "LeNet5", "Normalize", "SmallCNN", "SmallResNet", "net_config",
    "random_shift", "DEFAULT_MODEL", "build_classifier", "config_dict", "load_or_train_classifier",
]
