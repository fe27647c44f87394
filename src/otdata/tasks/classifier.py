"""The target's frozen classifier: its recipe, loading it (shipped, given, cached) or training it.

`experiment=repurpose` needs a frozen classifier of its target. With `task.classifier=shipped` (the
default) it uses the classifier shipped with otdata (:mod:`otdata.models.shipped`) when the run's
recipe (model, trainer, target data, seed) is the one that trained it. Otherwise, and with
`task.classifier=train`, it trains one once and caches it under `paths.cache_dir/classifiers`,
keyed by that recipe. `task.classifier_ckpt` names a checkpoint to use instead. `task=flow` scores
its flowed particles with the same classifier when one is shipped or cached, or with
`task.classifier_ckpt`.
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
from otdata.models.shipped import PRETRAINED_DIR, load_shipped, shipped_names, shipped_record

log = logging.getLogger(__name__)

#: Trainer keys that do not change the trained classifier (left out of its cache key).
NOT_SHAPING = ("default_root_dir", "enable_progress_bar", "enable_model_summary", "log_every_n_steps",
               "logger", "callbacks")
#: `task.classifier`: use the shipped weights when the recipe is theirs, or train one here.
CLASSIFIER_MODES = ("shipped", "train")

def classifier_seed(cfg) -> int:
    """The frozen classifier's seed: `task.classifier_seed`, or the run's seed when that is null."""
    seed = cfg.task.get("classifier_seed")
    return int(cfg.seed if seed is None else seed)


def classifier_recipe(cfg) -> dict:
    """Everything that shapes the target's classifier, as plain JSON values: the model, the trainer
    (less its display and bookkeeping keys), the target's data config (less where it is read from)
    and the seed. Two runs with the same recipe train the same classifier."""
    recipe = OmegaConf.to_container(cfg, resolve=True)
    shaping = {key: recipe[key] for key in ("model", "trainer")}
    shaping["seed"] = classifier_seed(cfg)
    # steps that are off (an empty mapping, e.g. no `features`) leave the classifier as it was
    shaping["target"] = {k: v for k, v in recipe["target"].items()
                         if k not in ("data_dir", "num_workers", "download") and v != {}}
    if shaping["target"].get("transform") in (None, "none"):  # no transform: the classifier as it was
        shaping["target"].pop("transform", None)
        shaping["target"].pop("transform_options", None)
    shaping["target"]["seed"] = classifier_seed(cfg)
    for key in NOT_SHAPING:  # display and bookkeeping only: the same classifier either way
        shaping["trainer"].pop(key, None)
    return json.loads(json.dumps(shaping, sort_keys=True))


def classifier_checkpoint(cfg) -> Path:
    """`task.classifier_ckpt`, or a cache path keyed by everything that shapes the classifier."""
    if cfg.task.classifier_ckpt:
        return Path(cfg.task.classifier_ckpt)
    key = hashlib.sha256(json.dumps(classifier_recipe(cfg), sort_keys=True).encode()).hexdigest()[:12]
    return Path(cfg.paths.cache_dir) / "classifiers" / f"{cfg.target._target_.split('.')[-1]}-{key}.ckpt"


def differences(ours: dict, theirs: dict, prefix: str = "") -> list[str]:
    """The dotted keys where two nested recipes differ, as `key: ours ≠ theirs` lines."""
    out = []
    for key in sorted(set(ours) | set(theirs)):
        a, b = ours.get(key, "(unset)"), theirs.get(key, "(unset)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} ≠ {b}")
    return out


def shipped_match(cfg) -> str | None:
    """The name of the shipped classifier trained by this run's recipe, or ``None``; with
    `task.classifier=shipped`, a log line says why none fits (the recipe keys that differ)."""
    if cfg.task.get("classifier_ckpt") or classifier_mode(cfg) != "shipped":
        return None
    recipe = classifier_recipe(cfg)
    closest = None
    for name in shipped_names():
        diff = differences(recipe, shipped_record(name)["recipe"])
        if not diff:
            return name
        if closest is None or len(diff) < len(closest[1]):
            closest = (name, diff)
    if closest:
        log.info("The shipped classifier %s was trained with another recipe (%s%s): not used",
                 closest[0], "; ".join(closest[1][:3]), "; ..." if len(closest[1]) > 3 else "")
    return None


def classifier_mode(cfg) -> str:
    """`task.classifier`: `shipped` (the default: otdata's own weights when the recipe is theirs) or
    `train` (train it here once, then load it from the cache)."""
    mode = cfg.task.get("classifier", "shipped")
    if mode not in CLASSIFIER_MODES:
        raise ValueError(f"task.classifier={mode!r}: use one of {list(CLASSIFIER_MODES)} (shipped: the "
                         "weights otdata ships when this run's recipe is theirs; train: train one here)")
    return mode


def frozen_classifier(cfg):
    """The target's classifier and the file it came from: `task.classifier_ckpt`, the shipped one,
    the cached one, else trained (and cached), with log lines that say which and how long it took."""
    name = shipped_match(cfg)
    if name:
        record = shipped_record(name)
        log.info("Using the classifier shipped with otdata (%s: %.2f%% on %s test; "
                 "task.classifier=train trains one instead)", name, record["test_accuracy"],
                 record["target"])
        return load_shipped(name), PRETRAINED_DIR / record["weights"]
    checkpoint = classifier_checkpoint(cfg)
    seed = classifier_seed(cfg)
    if checkpoint.is_file():
        return load_or_train_classifier(None, checkpoint)
    log.info("No cached %s classifier at %s: training one now (model=%s, %s epochs, seed %d; "
             "minutes on a CPU). Later runs load it from the cache; "
             "task.classifier_ckpt=<file> uses another.",
             cfg.target._target_.split(".")[-1].removesuffix("DataModule"), checkpoint,
             cfg.model.net._target_.split(".")[-1], cfg.trainer.get("max_epochs"), seed)
    start = time.perf_counter()
    train_dm = instantiate(cfg.target, seed=seed)
    classifier, checkpoint = load_or_train_classifier(
        train_dm, checkpoint, model=cfg.model, trainer=cfg.trainer, seed=seed,
        phase=f"{train_dm.name} classifier")
    log.info("Trained the classifier in %.0f s → %s", time.perf_counter() - start, checkpoint)
    return classifier, checkpoint


def repurpose_config(cfg: DictConfig, target: str | None = None) -> DictConfig | None:
    """The config `experiment=repurpose` would run with for ``target`` (a `data` config name;
    default: this run's `data@target` choice, ``None`` outside a Hydra run), for the same data root
    and cache folder."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    composing, named = GlobalHydra.instance().is_initialized(), target is not None
    if target is None:
        if not (composing and HydraConfig.initialized()):
            return None
        target = HydraConfig.get().runtime.choices.get("data@target")
        if not target:
            return None
    overrides = ["experiment=repurpose", f"data@target={target}"]
    if composing:
        rcfg = compose(config_name="config", overrides=overrides)
    else:  # a Python session (the explorer): compose from the config folder
        from otdata.config import CONFIG_DIR

        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            rcfg = compose(config_name="config", overrides=overrides)
    with open_dict(rcfg):
        rcfg.paths.data_dir = cfg.paths.data_dir
        rcfg.paths.cache_dir = cfg.paths.cache_dir
        rcfg.target.data_dir = cfg.paths.data_dir if named else \
            cfg.target.get("data_dir", rcfg.target.get("data_dir"))
        if not HydraConfig.initialized():  # the run folder only feeds keys left out of the cache key
            rcfg.paths.output_dir = "."
    return rcfg


def find_classifier(cfg: DictConfig, target: str | None = None) -> tuple[str | None, Path | None]:
    """Where the frozen classifier of ``target`` (a `data` config name; default: this run's
    `data@target`) is, without training one: ``(name, None)`` for a classifier shipped with otdata
    whose recipe is the one `experiment=repurpose` would use, else ``(None, path)``: the
    `task.classifier_ckpt` given, or the cache path of `experiment=repurpose` (which may not exist
    yet); ``(None, None)`` outside a Hydra run when no target is named."""
    given = cfg.task.get("classifier_ckpt")
    if given:
        return None, Path(given)
    rcfg = repurpose_config(cfg, target)
    if rcfg is None:
        return None, None
    name = shipped_match(rcfg)
    return (name, None) if name else (None, classifier_checkpoint(rcfg))


def target_classifier(cfg: DictConfig):
    """For tasks that only score (`task=flow`): `task.classifier_ckpt`, else the classifier that
    `experiment=repurpose` would use for this target when it is shipped or cached (never trained
    here: that takes minutes), else ``None`` with a log line that says how to get one."""
    given = cfg.task.get("classifier_ckpt")
    try:
        name, path = find_classifier(cfg)
    except Exception as err:  # a lookup that fails only means: no score
        log.info("No frozen classifier of the target looked up (%s: %s)", type(err).__name__, err)
        return None
    if name:
        log.info("Scoring with the classifier shipped with otdata (%s)", name)
        return load_shipped(name)
    if path is None or not path.is_file():
        if given:
            raise FileNotFoundError(f"task.classifier_ckpt={given} does not exist; give a checkpoint "
                                    "of a classifier of the target, or null")
        log.info("No frozen classifier of the target shipped or in the cache%s: the flowed particles "
                 "are not scored. `otdata experiment=repurpose` trains and caches one; "
                 "task.classifier_ckpt=<file> uses another.", f" ({path})" if path else "")
        return None
    classifier, _ = load_or_train_classifier(None, path)
    return classifier
