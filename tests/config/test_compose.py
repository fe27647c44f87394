"""Every option of every config group composes, resolves and (where it builds an object) instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from otdata.config import CONFIG_DIR
from otdata.data import TextCSVDataModule
from tests.fixtures import USER_DATA_OVERRIDES, compose_config

GROUPS = ["data", "model", "trainer", "logger", "callbacks", "distance", "flow", "task", "debug",
          "experiment"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose_with(overrides: list[str], hydra_cfg: bool = False, output_dir: str = "/tmp/otdata-test"):
    # ${hydra:...} only resolves inside a run: stand in for it unless the hydra node is asked for
    return compose_config(overrides, None if hydra_cfg else output_dir, hydra_config=hydra_cfg)


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)]
)
def test_every_group_option_composes_and_resolves(group, option, data_root, tmp_path):
    key = group if group not in ("experiment", "debug") else group
    cfg = compose_with([f"{key}={option}", f"paths.data_dir={data_root}"], output_dir=str(tmp_path))
    OmegaConf.resolve(cfg)
    assert cfg.seed is not None


@pytest.mark.parametrize("option", options("data"))
def test_data_configs_instantiate_datamodules(option, data_root, user_data_root):
    builtin = (CONFIG_DIR / "data" / f"{option}.yaml").read_text().count("otdata.data.text.") or option in (
        "mnist", "usps", "kmnist", "fashion_mnist", "emnist")
    root = data_root if builtin else user_data_root
    extra = [f"data.{o}" for o in USER_DATA_OVERRIDES.get(option, [])]
    cfg = compose_with([f"data={option}", f"paths.data_dir={root}", *extra])
    dm = instantiate(cfg.data)
    assert Path(dm.data_dir) == root
    if not isinstance(dm, TextCSVDataModule):
        X, y = dm.tensors("test")
        assert len(X) == len(y) > 0
    elif not builtin:  # texts read without an encoder (embedding: see tests/data/test_text.py)
        texts, y = dm.texts("test")
        assert len(texts) == len(y) > 0 and all(isinstance(t, str) and t for t in texts)


@pytest.mark.parametrize("group", ["model", "distance", "flow"])
def test_object_groups_instantiate(group):
    for option in options(group):
        cfg = compose_with([f"{group}={option}"])
        obj = instantiate(cfg[group])
        assert obj is not None and not isinstance(obj, dict)


@pytest.mark.parametrize("group", ["logger", "callbacks"])
def test_logger_and_callback_groups_instantiate(group, tmp_path):
    for option in options(group):
        cfg = compose_with([f"{group}={option}"], output_dir=str(tmp_path))
        built = [instantiate(entry) for entry in (cfg[group] or {}).values()]
        assert all(not isinstance(b, dict) for b in built)


def test_source_and_target_are_separate_uses_of_the_data_group(data_root):
    cfg = compose_with(["data@source=fashion_mnist", "data@target=usps"])
    assert cfg.source._target_.endswith("FashionMNISTDataModule")
    assert cfg.target._target_.endswith("USPSDataModule")


@pytest.mark.parametrize("launcher,target", [("slurm", "SlurmLauncher"), ("local", "LocalLauncher")])
def test_submitit_launchers_resolve(launcher, target):
    cfg = compose_with([f"hydra/launcher={launcher}"], hydra_cfg=True)
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith(target)
    assert launcher_cfg.timeout_min > 0
    assert "submitit" in launcher_cfg.submitit_folder


def test_wrong_override_is_a_clear_error():
    with pytest.raises(ConfigCompositionException, match="Could not find 'data/not_a_dataset'"):
        compose_with(["data=not_a_dataset"])


def test_wandb_logger_is_offline_unless_asked(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert compose_with(["logger=wandb"]).logger.wandb.offline is True
    monkeypatch.setenv("WANDB_MODE", "online")
    assert compose_with(["logger=wandb"]).logger.wandb.offline is False
