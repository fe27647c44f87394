"""The typed schemas of the groups that build a class (`otdata.class_schemas`): a wrong type or an
unknown key in `trainer`, `logger`, `callbacks`, the data configs, their `features` and `model.net`
is refused when the config is composed, and no composed value is changed by the check."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from otdata.class_schemas import check, nodes
from otdata.config import CONFIG_DIR
from tests.fixtures import compose_config

#: how one option of each group is chosen on the command line
CHOICE = {"data": "data={0} data@source={0}", "features": "features@source.features={}", "debug": "debug={}",
          "task": "task={}", "experiment": "experiment={}"}
GROUPS = ["data", "features", "trainer", "logger", "callbacks", "debug", "model", "distance", "flow",
          "paths", "task", "experiment"]


def _options():
    for group in GROUPS:
        for path in sorted((CONFIG_DIR / group).glob("*.yaml")):
            yield pytest.param(group, path.stem, id=f"{group}={path.stem}")


@pytest.mark.parametrize("group,option", list(_options()))
def test_every_option_composes_to_the_same_config_with_and_without_the_check(group, option, monkeypatch):
    overrides = CHOICE.get(group, group + "={}").format(option).split()
    checked = compose_config(overrides)
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration",
                        ConfigLoaderImpl.load_configuration.__wrapped__)
    unchecked = compose_config(overrides)
    assert OmegaConf.to_container(checked, resolve=False) == OmegaConf.to_container(unchecked, resolve=False)
    assert OmegaConf.to_yaml(checked) == OmegaConf.to_yaml(unchecked)
    check(unchecked)  # the check itself passes the shipped option (nothing refused, nothing set)


def test_the_check_reads_every_group_that_builds_a_class():
    cfg = compose_config(["logger=wandb", "features@source.features=resize28_gray"])
    assert {key for key, _, _ in nodes(cfg)} == {
        "trainer", "logger.wandb", "callbacks.model_checkpoint", "callbacks.progress_bar",
        "model.net", "data", "source", "target", "source.features"}


#: the overrides (the test's id) and what the refusal says
REFUSED = {
    "trainer.max_epochs=abc": "`trainer.max_epochs` = 'abc' (str) is not what lightning.Trainer "
                              "takes: max_epochs must be an integer or null",
    "+trainer.max_epoch=3": "`trainer.max_epoch` is not an argument of lightning.Trainer (did you "
                            "mean `trainer.max_epochs`?)",
    "trainer.devices=true": "devices must be a list of integers or a string or an integer",
    "trainer=gpu trainer.precision=17": "precision must be one of 64, 32, 16, ",
    "debug=default trainer.limit_train_batches=abc": "`trainer.limit_train_batches` = 'abc'",
    "logger.csv.prefix=3": "`logger.csv.prefix` = 3 (int) is not what "
                           "lightning.pytorch.loggers.CSVLogger takes",
    "logger=wandb logger.wandb.log_model=maybe": "`logger.wandb.log_model` = 'maybe'",
    "+callbacks.model_checkpoint.bogus=1": "`callbacks.model_checkpoint.bogus` is not an argument",
    "callbacks.model_checkpoint.save_top_k=all": "save_top_k must be an integer",
    "source.batch_size=1.5": "`source.batch_size` = 1.5 (float) is not what "
                             "otdata.data.USPSDataModule takes: batch_size must be an integer",
    "data@target=image_folder target.channels=gray": "`target.channels` = 'gray'",
    "features@source.features=resize28_gray source.features.size=abc": "`source.features.size`",
    "model.net.channels=[a]": "`model.net.channels` = ['a']",
    "model=resnet +model.net.widht=4": "`model.net.widht` is not an argument",
}


@pytest.mark.parametrize("overrides", list(REFUSED))
def test_a_wrong_type_or_unknown_key_is_refused_at_composition_naming_it(overrides):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(overrides.split())
    assert REFUSED[overrides] in str(info.value)
    assert "Fix:" in str(info.value)


def test_every_problem_of_a_config_is_named_at_once():
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["trainer.max_epochs=abc", "source.seed=x", "+logger.csv.colour=red"])
    text = str(info.value)
    assert all(key in text for key in ("`trainer.max_epochs`", "`source.seed`", "`logger.csv.colour`"))


def test_data_configs_tolerate_keys_their_datamodule_does_not_take():
    # formats differ and steps grow around the datamodule: the datamodule decides
    cfg = compose_config(["+source.augment=flip", "data@target=image_folder", "+target.x_column=0"])
    assert cfg.source.augment == "flip" and cfg.target.x_column == 0


def test_a_value_known_only_in_a_run_is_left_to_the_class():
    # `${hydra:runtime.output_dir}` does not resolve outside a run; `???` has no value yet
    cfg = compose_config(["data@source=arrays"])
    assert OmegaConf.is_missing(cfg.source, "path")
    assert OmegaConf.to_container(cfg.trainer)["default_root_dir"] == "${paths.output_dir}"


def test_the_command_refuses_before_the_run_starts(tmp_path):
    out = subprocess.run([sys.executable, "-m", "otdata.cli", "task=train", "trainer.max_epochs=abc",
                          f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode != 0
    assert "`trainer.max_epochs` = 'abc' (str) is not what lightning.Trainer takes" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run").exists()  # refused at composition: no run folder


# -- any command-line value of a typed key composes or is refused naming the key ---------------------

CLASS_KEYS = ["trainer.max_epochs", "trainer.devices", "trainer.precision", "trainer.deterministic",
              "trainer.log_every_n_steps", "source.batch_size", "source.val_fraction",
              "source.max_samples", "logger.csv.prefix", "callbacks.model_checkpoint.save_top_k",
              "model.net.dropout", "model.net.channels"]
CLI_VALUES = ["abc", "1.5", "-3", "0", "null", "true", "[1,2]", "[a]", "1e3", "inf", "''", "{a: 1}"]


@settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(CLASS_KEYS), value=st.sampled_from(CLI_VALUES))
def test_every_class_key_composes_or_is_refused_naming_it(key, value):
    try:
        compose_config([f"++{key}={value}"])  # ++: set, or add a key the YAML leaves out
    except ConfigCompositionException as error:
        assert f"`{key}`" in str(error), str(error)


def test_a_network_size_left_to_the_data_may_be_null():
    # one's own arrays have no fixed image size: the net's `${oc.select:data.image_size,28}` is null
    # until task=train sets it from the datamodule; a size of the wrong type is still refused
    assert compose_config(["data=arrays"]).model.net.image_size is None
    with pytest.raises(ConfigCompositionException, match="`model.net.image_size` = 'big'"):
        compose_config(["model.net.image_size=big"])
