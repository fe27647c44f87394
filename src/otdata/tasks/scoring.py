"""The target's frozen classifier for scoring flowed particles outside `experiment=repurpose`.

`task=flow` scores its flowed particles with a classifier of the target when one exists: the file
given as `task.classifier_ckpt`, else the classifier that `experiment=repurpose` trained and cached
for the same target (looked up by the same cache key, never trained here: training takes minutes).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, open_dict

log = logging.getLogger(__name__)


def repurpose_checkpoint(cfg: DictConfig) -> Path | None:
    """Where `experiment=repurpose` caches the frozen classifier of this run's target (the same
    data config, data root and cache folder), or ``None`` outside a Hydra run (no composition)."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from otdata.tasks.repurpose import classifier_checkpoint

    if not (GlobalHydra.instance().is_initialized() and HydraConfig.initialized()):
        return None
    choice = HydraConfig.get().runtime.choices.get("data@target")
    if not choice:
        return None
    rcfg = compose(config_name="config", overrides=["experiment=repurpose", f"data@target={choice}"])
    with open_dict(rcfg):
        rcfg.paths.data_dir = cfg.paths.data_dir
        rcfg.paths.cache_dir = cfg.paths.cache_dir
        rcfg.target.data_dir = cfg.target.get("data_dir", rcfg.target.get("data_dir"))
    return classifier_checkpoint(rcfg)


def target_classifier(cfg: DictConfig):
    """The frozen classifier of the target (see the module docstring), or ``None`` with a log line
    that says how to get one."""
    from otdata.models import load_or_train_classifier

    given = cfg.task.get("classifier_ckpt")
    path = Path(given) if given else None
    if path is None:
        try:
            path = repurpose_checkpoint(cfg)
        except Exception as err:  # a lookup that fails only means: no score
            log.info("No frozen classifier of the target looked up (%s: %s)", type(err).__name__, err)
            return None
    if path is None or not path.is_file():
        if given:
            raise FileNotFoundError(f"task.classifier_ckpt={given} does not exist; give a checkpoint "
                                    "of a classifier of the target, or null")
        log.info("No frozen classifier of the target in the cache%s: the flowed particles are not "
                 "scored. `otdata experiment=repurpose` trains and caches one; "
                 "task.classifier_ckpt=<file> uses another.", f" ({path})" if path else "")
        return None
    classifier, _ = load_or_train_classifier(None, path)
    return classifier


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
