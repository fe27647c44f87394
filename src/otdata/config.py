"""Where the Hydra configs live and the custom resolvers they use.

`CONFIG_DIR` is `conf/` at the repository root (otdata is meant to be installed editable from its
clone: `pip install -e .`); `OTDATA_CONFIG_DIR` points elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

CONFIG_DIR = Path(
    os.environ.get("OTDATA_CONFIG_DIR", Path(__file__).resolve().parents[2] / "conf")
).resolve()


def wandb_offline() -> bool:
    """W&B runs offline unless the user asked otherwise with WANDB_MODE=online."""
    return os.environ.get("WANDB_MODE", "offline") != "online"


def user_cache_dir() -> str:
    """The platform's user cache folder for otdata (e.g. ~/.cache/otdata on Linux)."""
    try:
        import platformdirs
    except ImportError:  # pragma: no cover - platformdirs comes with wandb
        return str(Path.home() / ".cache" / "otdata")
    return platformdirs.user_cache_dir("otdata", appauthor=False)


def register_resolvers() -> None:
    """Register `${otdata.*:}` resolvers (idempotent)."""
    if not OmegaConf.has_resolver("otdata.wandb_offline"):
        OmegaConf.register_new_resolver("otdata.wandb_offline", wandb_offline)
    if not OmegaConf.has_resolver("otdata.user_cache_dir"):
        OmegaConf.register_new_resolver("otdata.user_cache_dir", user_cache_dir)


def register_schemas() -> None:
    """Store the typed task schemas (`otdata.schemas`) that `conf/task/*.yaml` start from."""
    from otdata.schemas import register

    register()


register_resolvers()
register_schemas()
