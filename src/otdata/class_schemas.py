"""Typed schemas of the config groups that build a class, read from the class itself.

`trainer`, each entry of `logger` and `callbacks`, the datasets (`data`, `source`, `target`), their
`features` steps and the network `model.net` each name a class in `_target_`. The schema of such a
node is that class's constructor: a key must be one of its arguments (arguments passed on through
`**kwargs` to a base class count, up the class's MRO), and the key's value must fit the argument's
annotation (`max_epochs: int | None`, `precision: Literal[...]`, `devices: list[int] | str | int`).
So `trainer.max_epochs=abc`, `+trainer.max_epoch=3` or `source.batch_size=1.5` are refused when the
config is composed, naming the key, what it must be and the fix, instead of failing inside
Lightning or a datamodule minutes later.

Why not a structured config (a dataclass merged under the YAML, as `otdata.schemas` does for the
tasks)? Such a schema adds every key it declares: a trainer schema would set `logger`, `callbacks`
and every other Trainer argument the YAML leaves to Lightning's defaults (a composed value changes),
and it would refuse the keys `debug=default` merges into `trainer`. Here only the keys present are
checked and nothing is added or changed (`tests/config/test_class_schemas.py` composes every option
of every group with and without the check and compares).

* **Data configs** differ per format (`root`, `x_column`, ... of one's own data) and grow steps
  around the datamodule, so a key their class does not take is tolerated here (the datamodule
  refuses it when it is built); the keys it takes are type-checked.
* **Interpolations** are checked after resolution; one that cannot be resolved while composing
  (`${hydra:runtime.output_dir}` outside a run) or a `???` value is left to the class.
* **The allow-list** decides first (:func:`otdata.instantiate.allowed_class`): a `_target_` it
  refuses is not looked up here, and is refused by name when built.

:func:`install` runs :func:`check` on every config Hydra composes from otdata's `conf/` (the
`otdata` command, each job of a sweep, `hydra.compose` in a notebook): Hydra 1.3 has no hook after
composition, so it wraps the config loader's `load_configuration`, as
:func:`otdata.instantiate.guard_hydra_callbacks` wraps Hydra's callback list.
"""

from __future__ import annotations

import collections.abc
import difflib
import functools
import inspect
import os
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from otdata.instantiate import UnsafeTargetError, allowed_class

__all__ = ["ConfigTypeError", "check", "install", "nodes"]

#: `_target_` nodes checked, and whether a key their class does not take is refused.
CLOSED = {"trainer": True, "logger.*": True, "callbacks.*": True, "model.net": True,
          "data": False, "source": False, "target": False,
          "data.features": True, "source.features": True, "target.features": True}
#: Keys a task sets from the data when it builds the node (`otdata.models.build_classifier`): null
#: there stands for "from the data" (`image_size: ${oc.select:data.image_size,28}` is null for
#: one's own arrays).
FROM_DATA = {"model.net": frozenset({"num_classes", "image_size"})}
#: Hydra's own keys of a `_target_` node.
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})


class ConfigTypeError(ValueError):
    """A composed config node has a key its class does not take, or a value of the wrong type."""


def nodes(cfg: DictConfig) -> Iterator[tuple[str, DictConfig, bool]]:
    """Every checked node of `cfg` that names a class: `(key, node, closed)`."""
    for pattern, closed in CLOSED.items():
        parent, _, last = pattern.rpartition(".")
        if last == "*":
            group = OmegaConf.select(cfg, parent)
            found = [(f"{parent}.{k}", v) for k, v in group.items()] if isinstance(group, DictConfig) else []
        else:
            found = [(pattern, OmegaConf.select(cfg, pattern))]
        for key, node in found:
            if isinstance(node, DictConfig) and isinstance(node.get("_target_"), str):
                yield key, node, closed


def check(cfg: DictConfig) -> None:
    """Raise :class:`ConfigTypeError` naming every key of a checked node that its class does not
    take (closed nodes) or whose value does not fit the argument's annotation."""
    problems = []
    for key, node, closed in nodes(cfg):
        try:
            cls = allowed_class(node._target_, key)
        except UnsafeTargetError:
            continue  # refused by name when it is built
        problems += _node_problems(key, node, cls, closed)
    if problems:
        raise ConfigTypeError("\n".join(problems))


def _node_problems(key: str, node: DictConfig, cls: type, closed: bool) -> list[str]:
    hints, is_open = arguments(cls)
    name = node._target_
    problems = []
    for arg in node:
        if arg in HYDRA_KEYS:
            continue
        if arg not in hints:
            if closed and not is_open:
                near = difflib.get_close_matches(str(arg), hints, n=1)
                problems.append(
                    f"`{key}.{arg}` is not an argument of {name}"
                    + (f" (did you mean `{key}.{near[0]}`?)" if near else "")
                    + f". Fix: drop it, or use one of its arguments: {', '.join(sorted(hints))}.")
            continue
        value = _resolved(node, arg)
        if value is None and arg in FROM_DATA.get(key, ()):
            continue
        if value is not _UNKNOWN and not _fits(value, hints[arg]):
            problems.append(
                f"`{key}.{arg}` = {_show(value)} ({type(value).__name__}) is not what {name} takes: "
                f"{arg} must be {describe(hints[arg])}. Fix: e.g. `{key}.{arg}=<{describe(hints[arg])}>`"
                " on the command line, or the value in the YAML file.")
    return problems


_UNKNOWN = object()


def _resolved(node: DictConfig, key: str) -> Any:
    """The value of `node.key` with interpolations resolved; `_UNKNOWN` when it cannot be known
    while composing (`???`, or `${hydra:...}` outside a run)."""
    if OmegaConf.is_missing(node, key):
        return _UNKNOWN
    try:
        value = node[key]
        if isinstance(value, DictConfig | ListConfig):
            value = OmegaConf.to_container(value, resolve=True)
    except OmegaConfBaseException:
        return _UNKNOWN
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@functools.lru_cache(maxsize=None)
def arguments(cls: type) -> tuple[dict[str, Any], bool]:
    """The constructor arguments of `cls` with their annotations, following `**kwargs` up the MRO;
    and whether `cls` takes other keywords too (a `**kwargs` that does not end in a base class's
    constructor). An annotation is `Any` where there is none or it cannot be evaluated, and admits
    None where the default is None (as PEP 484 once read it) and for a base class's argument,
    which a subclass may fill in when it is null."""
    hints: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        if klass is object:
            return hints, True  # the last `**kwargs` went somewhere else than a constructor
        params = inspect.signature(init).parameters
        for name, param in list(params.items())[1:]:
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                hint = _annotation(init, param.annotation)
                # None: the default, or a base class's argument, which a subclass may fill in
                filled = param.default is None or klass is not cls
                hints.setdefault(name, hint | None if filled else hint)
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return hints, False
    return hints, True


def _annotation(func: Any, annotation: Any) -> Any:
    """`annotation` evaluated in `func`'s module (string annotations), else `Any`."""
    if annotation is inspect.Parameter.empty:
        return Any
    if isinstance(annotation, str):
        func = inspect.unwrap(func)
        module = sys.modules.get(func.__module__)
        try:  # the annotation the class's own module wrote, as typing.get_type_hints reads it
            return eval(annotation, dict(vars(module)) if module else {})  # noqa: S307
        except Exception:  # noqa: BLE001 - a name only imported for type checkers: unchecked
            return Any
    return annotation


_SEQUENCES = (list, tuple, set, frozenset, collections.abc.Sequence, collections.abc.Iterable,
              collections.abc.Collection, typing.Sequence, typing.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _fits(value: Any, hint: Any) -> bool:
    """Whether a config value (a resolved YAML scalar, list or mapping) fits an annotation.

    Strict where YAML is ambiguous: a bool is not a number, a float is not an int. A class that
    YAML cannot write (an `Accelerator`, a `Logger`) is met by a name (str) or a nested config."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar | typing.ForwardRef | str):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if hint is None or hint is type(None):
        return value is None
    if value is None:
        return False
    if origin is not None:
        return _fits_generic(value, origin, args)
    return _fits_class(value, hint)


def _fits_generic(value: Any, origin: Any, args: tuple) -> bool:
    if origin in _SEQUENCES:
        if not isinstance(value, list):
            return False
        if origin is tuple and args and Ellipsis not in args:  # tuple[int, int]: one type per item
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin in _MAPPINGS:
        return isinstance(value, dict) and (len(args) != 2 or all(_fits(v, args[1]) for v in value.values()))
    return True  # Callable[...], type[...]: not written in YAML; left to the class


def _fits_class(value: Any, hint: Any) -> bool:
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint in _SEQUENCES:
        return isinstance(value, list)
    if hint in _MAPPINGS:
        return isinstance(value, dict)
    if not isinstance(hint, type) or isinstance(value, hint):
        return True
    if issubclass(hint, PurePath | os.PathLike):
        return isinstance(value, str)
    return isinstance(value, str | dict)


_PLURALS = {int: "integers", float: "numbers", str: "strings", bool: "true/false values"}


def describe(hint: Any) -> str:
    """An annotation in words: "an integer or null", "one of 64, 32, '16-mixed'", "a list of integers"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        literals = [a for a in args if typing.get_origin(a) is typing.Literal]
        rest = [describe(a) for a in args if a not in literals]
        values = [v for lit in literals for v in typing.get_args(lit)]
        return " or ".join(([f"one of {', '.join(map(repr, values))}"] if values else []) + rest)
    if origin is typing.Literal:
        return f"one of {', '.join(map(repr, args))}"
    if hint is None or hint is type(None):
        return "null"
    if origin is tuple and args and Ellipsis not in args:
        return f"a list of {len(args)} ({', '.join(describe(a) for a in args)})"
    if origin in _SEQUENCES:
        return f"a list of {_PLURALS.get(args[0], describe(args[0]))}" if args else "a list"
    if origin in _MAPPINGS:
        return "a mapping"
    if hint is float:
        return "a number"
    if isinstance(hint, type):
        if hint in (bool, int, str):
            return {bool: "true or false", int: "an integer", str: "a string"}[hint]
        return f"a {hint.__name__} (a name or a nested config)"
    return str(hint)


def install() -> None:
    """Run :func:`check` on every config composed from otdata's `conf/` (idempotent)."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    load = ConfigLoaderImpl.load_configuration
    if getattr(load, "_otdata_checked", False):
        return

    @functools.wraps(load)
    def load_checked(self: Any, *args: Any, **kwargs: Any) -> DictConfig:
        cfg = load(self, *args, **kwargs)
        if _is_otdata(self):
            try:
                check(cfg)
            except ConfigTypeError as error:
                from hydra.errors import ConfigCompositionException

                raise ConfigCompositionException(str(error)) from error
        return cfg

    load_checked._otdata_checked = True  # type: ignore[attr-defined]
    ConfigLoaderImpl.load_configuration = load_checked  # type: ignore[method-assign]


def _is_otdata(loader: Any) -> bool:
    """Whether the loader composes from otdata's `conf/` (other Hydra apps are left alone)."""
    from otdata.config import CONFIG_DIR

    return any(str(CONFIG_DIR) in str(element.path) for element in loader.get_search_path().get_path())
