"""Scoring moved particles with the target's classifier: its answers, accuracy against the classes
the particles should read as (their labels sent through a class correspondence)."""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


def predictions(classifier, X: torch.Tensor) -> torch.Tensor | None:
    """The classifier's answers on flattened items, or ``None`` when the items do not fit it."""
    try:
        return classifier.predict(X)
    except RuntimeError as err:  # e.g. another image size than the classifier was trained on
        log.info("The target's classifier does not take these items (%s); not scored", err)
        return None


def accuracy(predicted: torch.Tensor, expected: torch.Tensor) -> float:
    """Share of items (in %) where the classifier says the expected class."""
    return 100.0 * float((predicted == expected).float().mean())


def mapped(y: torch.Tensor, correspondence: dict[int, int]) -> torch.Tensor:
    """Labels sent through a correspondence; classes it does not cover become -1 (never right)."""
    return torch.tensor([correspondence.get(int(c), -1) for c in y], dtype=torch.long)
