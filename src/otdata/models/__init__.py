"""Image classifiers: the networks (pixels in [0, 1], normalized inside) and a Lightning wrapper."""

from otdata.models.classifier import Classifier, random_shift
from otdata.models.nets import NETS, LeNet5, Normalize, SmallCNN, SmallResNet, net_config

__all__ = [
    "NETS", "Classifier", "LeNet5", "Normalize", "SmallCNN", "SmallResNet", "net_config",
    "random_shift",
]
