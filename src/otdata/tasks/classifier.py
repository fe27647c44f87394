"""The target's frozen classifier: its cache key, loading or training it, and finding it again.

`experiment=repurpose` trains the target's classifier once and caches it under
`paths.cache_dir/classifiers`, keyed by everything that shapes it (model, trainer, target data,
seed). `task=flow` scores its flowed particles with the same classifier when it is in the cache, or
with `task.classifier_ckpt`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from otdata.instantiate import safe_instantiate as instantiate
from otdata.models import load_or_train_classifier

log = logging.getLogger(__name__)

#: Trainer keys that do not change the trained classifier (left out of its cache key).
NOT_SHAPING = ("default_root_dir", "enable_progress_bar", "enable_model_summary", "log_every_n_steps",
               "logger", "callbacks")

def classifier_seed(cfg) -> int:
    """The frozen classifier's seed: `task.classifier_seed`, or the run's seed when that is null."""
    seed = cfg.task.get("classifier_seed")
    return int(cfg.seed if seed is None else seed)


def classifier_checkpoint(cfg) -> Path:
    """`task.classifier_ckpt`, or a cache path keyed by everything that shapes the classifier."""
    if cfg.task.classifier_ckpt:
        return Path(cfg.task.classifier_ckpt)
    recipe = OmegaConf.to_container(cfg, resolve=True)
    shaping = {key: recipe[key] for key in ("model", "trainer")}
    shaping["seed"] = classifier_seed(cfg)
    # steps that are off (an empty mapping, e.g. no `features`) leave the classifier as it was
    shaping["target"] = {k: v for k, v in recipe["target"].items()
                         if k not in ("data_dir", "num_workers", "download") and v != {}}
    shaping["target"]["seed"] = classifier_seed(cfg)
    for key in NOT_SHAPING:  # display and bookkeeping only: the same classifier either way
        shaping["trainer"].pop(key, None)
    key = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.paths.cache_dir) / "classifiers" / f"{cfg.target._target_.split('.')[-1]}-{key}.ckpt"


def frozen_classifier(cfg):
    """The target's classifier: loaded from `task.classifier_ckpt` or the cache, else trained (and
    cached), with log lines that say which and how long it took."""
    checkpoint = classifier_checkpoint(cfg)
    seed = classifier_seed(cfg)
    if checkpoint.is_file():
        return load_or_train_classifier(None, checkpoint)
    log.info("No cached %s classifier at %s: training one now (model=%s, %s epochs, seed %d; "
             "about 5 min on 2 idle CPU cores). Later runs load it from the cache; "
             "task.classifier_ckpt=<file> uses another.",
             cfg.target._target_.split(".")[-1].removesuffix("DataModule"), checkpoint,
             cfg.model.net._target_.split(".")[-1], cfg.trainer.get("max_epochs"), seed)
    start = time.perf_counter()
    train_dm = instantiate(cfg.target, seed=seed)
    classifier, checkpoint = load_or_train_classifier(
        train_dm, checkpoint, model=cfg.model, trainer=cfg.trainer, seed=seed)
    log.info("Trained the classifier in %.0f s → %s", time.perf_counter() - start, checkpoint)
    return classifier, checkpoint


def repurpose_checkpoint(cfg: DictConfig, target: str | None = None) -> Path | None:
    """Where `experiment=repurpose` caches the frozen classifier of ``target`` (a `data` config name;
    default: this run's `data@target` choice, ``None`` outside a Hydra run), for the same data root
    and cache folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    composing = GlobalHydra.instance().is_initialized()
    if target is None:
        if not (composing and HydraConfig.initialized()):
            return None
        target = HydraConfig.get().runtime.choices.get("data@target")
        if not target:
            return None
    overrides = ["experiment=repurpose", f"data@target={target}"]
    if composing:
        rcfg = compose(config_name="config", overrides=overrides)
    else:  # a Python session (the explorer's tests): compose from the config folder
        from otdata.config import CONFIG_DIR

        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            rcfg = compose(config_name="config", overrides=overrides)
    with open_dict(rcfg):
        rcfg.paths.data_dir = cfg.paths.data_dir
        rcfg.paths.cache_dir = cfg.paths.cache_dir
        rcfg.target.data_dir = cfg.paths.data_dir  # not part of the cache key: the data, not its place
        if not HydraConfig.initialized():  # the run folder only feeds keys left out of the cache key
            rcfg.paths.output_dir = "."
    return classifier_checkpoint(rcfg)


def target_classifier(cfg: DictConfig):
    """For tasks that only score (`task=flow`): `task.classifier_ckpt`, else the classifier that
    `experiment=repurpose` cached for this target (never trained here: that takes minutes), else
    ``None`` with a log line that says how to get one."""
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
