"""Instantiate config nodes, refusing any `_target_` that is not on otdata's allow-list.

Hydra's `instantiate` calls whatever a `_target_` names: `builtins.open`, `shutil.copyfile` or
`pathlib.Path.unlink` would truncate, overwrite or delete files from a single command-line override.
Every config object otdata builds goes through `safe_instantiate`, which accepts only classes
(never functions or methods) defined in:

  otdata.*                           the project's datamodules, models, distances and flows
  torch.optim.*, torch.nn.*          optimisers, schedulers and network modules
  lightning.*                        Trainer, callbacks, loggers
  hydra_plugins.hydra_submitit_launcher.*   the SLURM / local launchers

The check runs before anything is imported: a target outside these packages is refused by name,
and a target inside them must resolve to a class whose own module is inside them too (so
`otdata.tasks.train.shutil.copyfile`, a re-export of another package, is refused as well).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ALLOWED_PACKAGES", "UnsafeTargetError", "check_targets", "safe_instantiate"]

#: Packages whose classes a config may name in `_target_`.
ALLOWED_PACKAGES: tuple[str, ...] = (
    "otdata",
    "torch.optim",
    "torch.nn",
    "lightning",
    "hydra_plugins.hydra_submitit_launcher",
)


class UnsafeTargetError(ValueError):
    """A config's `_target_` names something otdata does not instantiate."""


def _in_allowed(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in ALLOWED_PACKAGES)


def _refuse(key: str, target: Any, why: str) -> UnsafeTargetError:
    allowed = ", ".join(f"{p}.*" for p in ALLOWED_PACKAGES)
    return UnsafeTargetError(
        f"config `{key}._target_` = {target!r} is refused: {why}. otdata builds only classes from "
        f"{allowed}. Fix: choose a config option instead (e.g. `distance=gaussian`, `model=cnn`), "
        f"or set `{key}._target_` to one of the project's classes."
    )


def _locate(path: str) -> Any:
    """The object named by a dotted path: the longest importable module, then attributes.

    Raises `LookupError` when nothing by that name exists; an import error raised inside an
    existing module (a missing dependency) propagates unchanged."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        name = ".".join(parts[:i])
        try:
            obj = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and (name == error.name or name.startswith(error.name + ".")):
                continue  # `name` itself is not a module: try a shorter prefix
            raise
        for attr in parts[i:]:
            try:
                obj = getattr(obj, attr)
            except AttributeError as error:
                raise LookupError(f"{name!r} has no attribute path {'.'.join(parts[i:])!r}") from error
        return obj
    raise LookupError(f"no module in {path!r} can be imported")


def check_target(target: Any, key: str = "config") -> None:
    """Raise `UnsafeTargetError` unless `target` names an allowed class."""
    if not isinstance(target, str):
        raise _refuse(key, target, "it is not a dotted class name")
    if not _in_allowed(target):
        raise _refuse(key, target, "it is outside the allowed packages")
    try:
        obj = _locate(target)
    except LookupError as error:
        raise UnsafeTargetError(
            f"config `{key}._target_` = {target!r} does not exist ({error}). Fix: check the spelling, "
            "or choose a config option (`otdata --help` lists them)."
        ) from error
    if not isinstance(obj, type):
        raise _refuse(key, target, "it is not a class (functions and methods are not instantiated)")
    if not _in_allowed(obj.__module__):
        raise _refuse(key, target, f"it is defined in {obj.__module__!r}, outside the allowed packages")


def check_targets(node: Any, key: str = "config") -> None:
    """Check every `_target_` in a (nested) config: mappings, lists, `DictConfig`s alike."""
    if isinstance(node, DictConfig | Mapping):
        for name, value in node.items():
            if name == "_target_":
                check_target(value, key)
            else:
                check_targets(value, f"{key}.{name}")
    elif isinstance(node, ListConfig | Sequence) and not isinstance(node, str | bytes):
        for i, value in enumerate(node):
            check_targets(value, f"{key}[{i}]")


def _key_of(config: Any, key: str | None) -> str:
    if key:
        return key
    if isinstance(config, DictConfig):
        full = config._get_full_key(None)
        if full:
            return str(full)
    return "config"


def safe_instantiate(config: Any, *args: Any, key: str | None = None, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate(config, *args, **kwargs)` after checking every `_target_`.

    `key` names the config node in errors (default: the node's own key, e.g. `distance`).
    Interpolations are resolved first, so a `_target_` built by `${...}` is checked as well.
    """
    key = _key_of(config, key)
    if isinstance(config, DictConfig | ListConfig):
        resolved = OmegaConf.to_container(config, resolve=True)
    else:
        resolved = config
    check_targets(resolved, key)
    for name, value in kwargs.items():
        check_targets(value, f"{key}.{name}")
    return instantiate(resolved, *args, **kwargs)
