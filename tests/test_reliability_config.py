"""Bad values on the command line are refused when the config is composed, naming the key; run
folders are distinct for runs started in the same second."""

from __future__ import annotations

import re

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import ConfigCompositionException

from otdata.config import CONFIG_DIR
from tests.fixtures import compose_config


@pytest.mark.parametrize("overrides,key,expected", [
    (["task=distance", "task.n_source=abc"], "task.n_source", "converted to Integer"),
    (["task=flow", "task.n_target=1.5e3x"], "task.n_target", "converted to Integer"),
    (["task=flow", "task.resume=maybe"], "task.resume", "not a valid bool"),
    (["task=train", "task.resume=later"], "task.resume", "not a valid bool"),
    # round two: every task and the distance / flow / paths groups are typed too
    (["experiment=repurpose", "task.n_flow=abc"], "task.n_flow", "converted to Integer"),
    (["experiment=repurpose", "task.learned_map.epochs=2.5"], "task.learned_map.epochs",
     "converted to Integer"),
    (["experiment=transferability", "task.seeds=[a]"], "task.seeds[0]", "converted to Integer"),
    (["experiment=transferability", "task.strict=perhaps"], "task.strict", "not a valid bool"),
    (["experiment=kshot", "task.shots=one"], "task.shots", "converted to Integer"),
    (["task=distance", "distance.epsilon=abc"], "distance.epsilon", "converted to Float"),
    (["task=distance", "distance.epsilon=true"], "distance.epsilon", "converted to Float"),
    (["task=distance", "distance=sliced", "distance.n_projections=1e3x"], "distance.n_projections",
     "converted to Integer"),
    (["task=flow", "flow.steps=2.5"], "flow.steps", "converted to Integer"),
    (["task=flow", "flow.progress=loud"], "flow.progress", "not a valid bool"),
    (["task=train", "model.lr=fast"], "model.lr", "converted to Float"),
    (["task=distance_matrix", "task.n=many"], "task.n", "converted to Integer"),
    (["task=train", "model=resnet", "model.augment_shift=1.5"], "model.augment_shift",
     "converted to Integer"),
])
def test_wrong_type_names_the_key_and_the_type(overrides, key, expected):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config(overrides)
    cause = str(info.value.__cause__ or info.value)
    assert f"full_key: {key}" in cause and expected in cause


def test_typed_tasks_keep_their_yaml_defaults():
    cfg = compose_config(["task=flow"])
    assert (cfg.task.n_source, cfg.task.n_target, cfg.task.resume) == (1000, 2000, False)
    assert compose_config(["task=flow", "task.n_source=null"]).task.n_source is None
    assert compose_config(["task=train"]).task.resume is False


def _run_dir() -> str:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["task=distance"], return_hydra_config=True)
    return str(cfg.hydra.run.dir), str(cfg.hydra.sweep.dir)


def test_runs_started_in_the_same_second_get_their_own_folders():
    (run1, sweep1), (run2, sweep2) = _run_dir(), _run_dir()
    assert re.fullmatch(r"outputs/distance/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d-\d{6}", run1)
    assert run1 != run2 and sweep1 != sweep2


def test_non_numeric_epsilon_names_the_setting():
    """`distance.epsilon=abc` is refused when the config is composed (typed `distance` schema);
    an unlisted solver key added with `+` is checked by `SinkhornConfig` when the distance is built."""
    from otdata.instantiate import safe_instantiate

    with pytest.raises(ConfigCompositionException) as info:
        compose_config(["task=distance", "distance.epsilon=abc"])
    assert "full_key: distance.epsilon" in str(info.value.__cause__)
    cfg = compose_config(["task=distance", "+distance.tol=abc"])
    with pytest.raises(Exception, match=r"(?s)DatasetDistance.*tol must be a finite number > 0, got 'abc'"):
        safe_instantiate(cfg.distance)


def test_typed_groups_keep_their_yaml_defaults():
    cfg = compose_config(["task=flow"])
    assert cfg.distance.epsilon == 0.01 and cfg.distance.p == 2 and cfg.flow.steps == 30
    assert compose_config(["distance=sliced"]).distance.n_projections == 1000
    assert compose_config(["experiment=repurpose"]).task.learned_map.channels == [16, 32]
    assert compose_config(["task=train", "model=resnet"]).model.lr == 0.1
