"""What the explorer's pickers offer, and where it may read: the image datasets the data root
holds, the user's datasets named in the config, and folders or array files typed in the browser,
which must lie under a configured root.

Nothing here reads a dataset's pixels: :meth:`Catalog.datamodule` builds (and keeps) the
datamodule, and the page's computation reads it (:mod:`otdata.explore.items`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from otdata.config import CONFIG_DIR
from otdata.data.arrays import FORMATS as ARRAY_FORMATS
from otdata.instantiate import safe_instantiate

#: the built-in image datasets, in the order the pickers list them (their `conf/data` names)
IMAGE_DATASETS = ("mnist", "usps", "kmnist", "fashion_mnist", "emnist", "cifar10", "cifar100",
                  "svhn", "stl10")
#: what a folder or array file typed in the browser becomes: 28×28 gray, MNIST's space
TYPED_IMAGE_SIZE, TYPED_CHANNELS = 28, 1


class OutsideRootError(ValueError):
    """A path typed in the browser that does not lie under a configured data root."""


@dataclass(frozen=True)
class Entry:
    """One choice of a dataset picker: ``key`` is what the page sends back, ``label`` what it shows,
    ``node`` the resolved data config, ``missing`` the files it lacks (listed but not readable)."""

    key: str
    label: str
    node: dict
    missing: tuple[str, ...] = ()


class Catalog:
    """The datasets of one explorer: built from the composed config (``paths.data_dir``, the
    ``source`` and ``target`` data configs, ``task.datasets``)."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.data_dir = Path(cfg.paths.data_dir).expanduser().resolve()
        self.cache_dir = cfg.paths.get("cache_dir")
        self._modules: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.entries: dict[str, Entry] = {}
        for name in IMAGE_DATASETS:
            self._add_builtin(name)
        for side in ("source", "target"):  # `data@source=image_folder source.root=...` is offered too
            node = self._resolve(cfg[side])
            if not any(node == e.node for e in self.entries.values()):
                self._add(Entry(f"config:{side}", f"{_display_name(node)} ({side} config)", node))
        for name, spec in (cfg.task.get("datasets") or {}).items():
            self._add(Entry(f"user:{name}", f"{name} (task.datasets)", self._user_node(str(name), spec)))
        self.roots = tuple(dict.fromkeys([self.data_dir, *self._user_roots()]))

    # -- building the list -------------------------------------------------------------------
    def _add(self, entry: Entry) -> None:
        self.entries[entry.key] = entry

    def _add_builtin(self, name: str) -> None:
        node = self._resolve(OmegaConf.load(CONFIG_DIR / "data" / f"{name}.yaml"))
        dm = safe_instantiate(node, key=f"data.{name}")
        missing = tuple(str(p) for p in dm.missing_files("train"))
        label = dm.name + (" (files missing)" if missing else "")
        self._add(Entry(name, label, node, missing))

    def _resolve(self, node) -> dict:
        """A data config with its interpolations (`${paths.data_dir}`, `${seed}`) resolved in
        this run's config; never downloading (a browser choice reaches no network)."""
        local = self.cfg.copy()
        with open_dict(local):
            local["_explore_entry"] = node
        resolved = OmegaConf.to_container(local["_explore_entry"], resolve=True)
        resolved["download"] = False
        resolved.pop("max_samples", None)  # the page samples per class itself
        if not resolved.get("features"):
            resolved.pop("features", None)  # no feature step: the same entry as the plain config
        return resolved

    def _user_node(self, name: str, spec) -> dict:
        """``task.datasets.<name>``: ``{config: <a conf/data file>, <its keys>...}``, or a full data
        config with ``_target_``."""
        spec = OmegaConf.to_container(spec, resolve=False) if OmegaConf.is_config(spec) else dict(spec)
        if "_target_" not in spec:
            base = spec.pop("config", None)
            path = CONFIG_DIR / "data" / f"{base}.yaml"
            if base is None or not path.is_file():
                options = sorted(p.stem for p in (CONFIG_DIR / "data").glob("*.yaml"))
                raise ValueError(f"task.datasets.{name}: give `config: <one of {options}>` and its "
                                 f"settings (e.g. root=...), or a data config with _target_; got {spec}")
            spec = OmegaConf.merge(OmegaConf.load(path), spec)
        node = self._resolve(spec)
        if "name" in node and not node["name"]:  # the user data configs name their dataset
            node["name"] = name
        return node

    def _user_roots(self) -> list[Path]:
        """The folders and files the config's own datasets read, and their data roots (a config
        names them: trusted)."""
        roots = []
        for entry in self.entries.values():
            for key in ("root", "path", "data_dir"):
                value = entry.node.get(key)
                if entry.key.startswith(("config:", "user:")) and isinstance(value, str):
                    path = Path(value).expanduser()
                    roots.append((path if path.is_absolute() else self.data_dir / path).resolve())
        return roots

    # -- what the page asks for --------------------------------------------------------------
    def choices(self) -> list[tuple[str, str]]:
        """``(label, key)`` pairs for a picker: readable datasets first, then those missing files."""
        ordered = sorted(self.entries.values(), key=lambda e: bool(e.missing))
        return [(e.label, e.key) for e in ordered]

    def default(self, side: str) -> str | None:
        """The picker's first choice for ``side``: the run's own `source`/`target` config."""
        wanted = self._resolve(self.cfg[side])
        for entry in self.entries.values():
            if entry.node == wanted and not entry.missing:
                return entry.key
        readable = [e.key for e in self.entries.values() if not e.missing]
        return readable[0] if readable else None

    def resolve_path(self, text: str) -> Path:
        """A path typed in the browser, as an absolute path under one of :attr:`roots` (relative
        paths are taken under the data root); anything else is refused, and so is what does not
        exist. Symbolic links are followed before the check, so none leads out."""
        raw = Path(str(text).strip()).expanduser()
        path = (raw if raw.is_absolute() else self.data_dir / raw).resolve()
        if not any(path == root or root in path.parents for root in self.roots):
            raise OutsideRootError(
                f"{text!r} is outside the data root {self.data_dir}: the explorer reads only under "
                "its configured roots. Type a path relative to the data root (e.g. my_digits), or "
                "start the explorer with paths.data_dir=<the folder that holds it>.")
        if not path.exists():
            raise FileNotFoundError(f"{text!r}: there is no such folder or file under the data root "
                                    f"{self.data_dir}.")
        return path

    def datamodule(self, key: str, path_text: str = ""):
        """The datamodule of a picker ``key``, or of a folder / array file typed in the browser
        (``path_text``, which takes precedence), with its train split read; built once and kept."""
        if path_text and path_text.strip():
            path = self.resolve_path(path_text)
            node = self._typed_node(path)
            key = f"path:{path}"
        else:
            if key not in self.entries:
                raise ValueError(f"{key!r} is not one of the explorer's datasets: "
                                 f"{[k for _, k in self.choices()]}")
            node = self.entries[key].node
        with self._lock:
            if key not in self._modules:
                self._modules[key] = (safe_instantiate(node, key="data"), threading.Lock())
            dm, reading = self._modules[key]
        with reading:  # one reader per dataset (the warm-up and a first click may meet here)
            dm.tensors("train")
        return dm

    def warm(self, keys) -> threading.Thread:
        """Read the train splits of ``keys`` in a background thread (the page's first choices), so
        that the first computation does not wait for the files; failures are left for the page."""
        def read():
            for key in keys:
                try:
                    self.datamodule(key)
                except Exception:  # the page shows the error when this dataset is chosen
                    pass
        thread = threading.Thread(target=read, name="otdata-explore-warm", daemon=True)
        thread.start()
        return thread

    def _typed_node(self, path: Path) -> dict:
        common = {"data_dir": str(self.data_dir), "image_size": TYPED_IMAGE_SIZE, "seed": 0}
        if path.is_dir():
            return {"_target_": "otdata.data.ImageFolderDataModule", "root": str(path),
                    "channels": TYPED_CHANNELS, "workers": 1, "cache_dir": self.cache_dir, **common}
        if path.suffix.lower() in ARRAY_FORMATS:
            return {"_target_": "otdata.data.ArraysDataModule", "path": str(path), **common}
        raise ValueError(f"{path.name}: give a folder of class sub-folders of images, or an array file "
                         f"({', '.join(sorted(ARRAY_FORMATS))})")


def _display_name(node: dict) -> str:
    """A config's dataset name for a picker label (its `name`, folder or file, else the class)."""
    for key in ("name", "root", "path"):
        if node.get(key):
            return Path(str(node[key])).name if key != "name" else str(node[key])
    return str(node.get("_target_", "dataset")).rsplit(".", 1)[-1].removesuffix("DataModule")
