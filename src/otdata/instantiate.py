"""Instantiate config nodes, refusing any `_target_` that is not on otdata's allow-list.

Hydra's `instantiate` calls whatever a `_target_` names: `builtins.open`, `shutil.copyfile` or
`pathlib.Path.unlink` would truncate, overwrite or delete files from a single command-line override,
and merely *importing* a module can run code (`lightning.__setup__` runs a script from the working
directory). So the decision is taken on the name, before anything outside otdata is imported:

  otdata.<module>.<Class>       a class defined in otdata (the project's datamodules, models,
                                distances, flows, callbacks); only otdata's own modules are imported
                                to find it, and a re-export of another package is refused
  ALLOWED_CLASSES               the third-party classes the configs use, each by its full name
                                (Trainer, checkpoint and progress-bar callbacks, CSV/W&B loggers)
  torch.optim.<Optimizer>,      an optimiser, learning-rate scheduler or network layer, looked up by
  torch.optim.lr_scheduler.<S>, name in the already-imported `torch.optim` / `torch.nn` namespaces
  torch.nn.<Module>

Anything else is refused by name: no third-party package is allowed as a whole (its demos create
folders and download files, its CLIs parse `sys.argv`). Hydra's own callbacks (`hydra.callbacks.*`)
are checked by the same rule through `guard_hydra_callbacks`, before Hydra builds any of them.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

__all__ = ["ALLOWED_CLASSES", "UnsafeTargetError", "allowed_class", "check_target", "check_targets",
           "guard_hydra_callbacks", "safe_instantiate"]

#: Third-party classes a config may name in `_target_`, by full dotted name.
ALLOWED_CLASSES: frozenset[str] = frozenset({
    "lightning.Trainer",
    "lightning.pytorch.Trainer",
    "lightning.pytorch.callbacks.ModelCheckpoint",
    "lightning.pytorch.callbacks.EarlyStopping",
    "lightning.pytorch.callbacks.LearningRateMonitor",
    "lightning.pytorch.callbacks.RichProgressBar",
    "lightning.pytorch.callbacks.TQDMProgressBar",
    "lightning.pytorch.loggers.CSVLogger",
    "lightning.pytorch.loggers.WandbLogger",
    "lightning.pytorch.loggers.TensorBoardLogger",
})

_OWN = "otdata"


def _is_own(name: str) -> bool:
    return name == _OWN or name.startswith(_OWN + ".")


class UnsafeTargetError(ValueError):
    """A config's `_target_` names something otdata does not instantiate."""


def _refuse(key: str, target: Any, why: str) -> UnsafeTargetError:
    return UnsafeTargetError(
        f"config `{key}._target_` = {target!r} is refused: {why}. otdata builds only its own "
        "classes (otdata.*), torch optimisers, schedulers and nn layers, and the Lightning trainer, "
        "callbacks and loggers its configs name (otdata.instantiate.ALLOWED_CLASSES). Fix: choose a "
        "config option instead (e.g. `distance=gaussian`, `model=cnn`), or set "
        f"`{key}._target_` to one of the project's classes."
    )


def _torch_class(name: str) -> type | None:
    """The torch optimiser, scheduler or nn layer called `name`, from torch's own namespaces."""
    scheduler = torch.optim.lr_scheduler
    tables = (("torch.optim.lr_scheduler.", scheduler, scheduler.LRScheduler),
              ("torch.optim.", torch.optim, torch.optim.Optimizer),
              ("torch.nn.", torch.nn, torch.nn.Module))
    for prefix, namespace, base in tables:
        if name.startswith(prefix):
            attr = name[len(prefix):]
            obj = vars(namespace).get(attr) if attr.isidentifier() else None
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base:
                return obj
            return None
    return None


def _own_module(name: str) -> Any | None:
    """Import `name` if it is one of otdata's own modules, else None (nothing else is imported)."""
    if not _is_own(name):
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent is not a package (`otdata.cli.x`)
        return None
    return importlib.import_module(name) if spec is not None else None


def _own_class(target: str, key: str) -> type:
    """The class `target` names inside otdata; refuses anything defined elsewhere."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        obj = _own_module(".".join(parts[:i]))
        if obj is None:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                raise UnsafeTargetError(
                    f"config `{key}._target_` = {target!r} does not exist ({'.'.join(parts[:i])!r} "
                    f"has no attribute path {'.'.join(parts[i:])!r}). Fix: check the spelling, or "
                    "choose a config option (`otdata --help` lists them).")
            if isinstance(obj, ModuleType) and not _is_own(obj.__name__):
                raise _refuse(key, target, f"it reaches the module {obj.__name__!r}, outside otdata")
        if not isinstance(obj, type):
            raise _refuse(key, target, "it is not a class (functions and methods are not instantiated)")
        if not _is_own(obj.__module__):
            raise _refuse(key, target, f"it is defined in {obj.__module__!r}, outside otdata")
        return obj
    raise UnsafeTargetError(
        f"config `{key}._target_` = {target!r} does not exist (no otdata module by that name). "
        "Fix: check the spelling, or choose a config option (`otdata --help` lists them).")


def check_target(target: Any, key: str = "config") -> None:
    """Raise `UnsafeTargetError` unless `target` names an allowed class.

    Decided on the name: only otdata's own modules are ever imported here."""
    if not isinstance(target, str) or not target:
        raise _refuse(key, target, "it is not a dotted class name")
    if target in ALLOWED_CLASSES or _torch_class(target) is not None:
        return
    if _is_own(target):
        _own_class(target, key)
        return
    raise _refuse(key, target, "it is not on the allow-list")


def allowed_class(target: Any, key: str = "config") -> type:
    """The class `target` names, once the allow-list (:func:`check_target`) has accepted the name:
    only then is a third-party module imported (to read the class's constructor, for example)."""
    check_target(target, key)
    if _is_own(target):
        return _own_class(target, key)
    found = _torch_class(target)
    if found is not None:
        return found
    module, _, name = target.rpartition(".")
    return getattr(importlib.import_module(module), name)


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


def _hydra_callback_targets(config: DictConfig) -> Any:
    node = OmegaConf.select(config, "hydra.callbacks")
    if node is None:
        return None
    try:
        return OmegaConf.to_container(node, resolve=True)
    except Exception:  # noqa: BLE001 - a resolver needing the run's state: check the raw names
        return OmegaConf.to_container(node, resolve=False)


def guard_hydra_callbacks() -> None:
    """Make Hydra check `hydra.callbacks.*._target_` against the allow-list before building any.

    Hydra 1.3 builds every entry of `hydra.callbacks` with its own `instantiate` as soon as the
    config is composed, before any callback hook runs (and it only warns when a hook raises), so a
    callback of the project's cannot refuse the others in time. The check therefore wraps the
    constructor of Hydra's callback list; `otdata.cli` installs it once at import."""
    from hydra._internal.callbacks import Callbacks

    if getattr(Callbacks.__init__, "_otdata_checked", False):
        return
    build = Callbacks.__init__

    def checked_init(self: Any, config: DictConfig | None = None, *args: Any, **kwargs: Any) -> None:
        if config is not None:
            check_targets(_hydra_callback_targets(config), "hydra.callbacks")
        build(self, config, *args, **kwargs)

    checked_init._otdata_checked = True  # type: ignore[attr-defined]
    Callbacks.__init__ = checked_init  # type: ignore[method-assign]
