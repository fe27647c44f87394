"""Config `_target_`s: only otdata's own classes, torch optimisers/modules and Lightning are built.

Each attack writes or names a file in `tmp_path` and asserts that nothing touched it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from otdata.config import CONFIG_DIR
from otdata.instantiate import UnsafeTargetError, check_targets, safe_instantiate
from tests.fixtures import compose_config

GROUPS = ["data", "model", "trainer", "logger", "callbacks", "distance", "flow", "task", "debug",
          "experiment"]


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "precious.txt"
    path.write_text("keep me")
    return path


@pytest.mark.parametrize("target,kwargs", [
    ("builtins.open", {"file": "{victim}", "mode": "w"}),                     # truncates
    ("shutil.copyfile", {"src": "{other}", "dst": "{victim}"}),               # overwrites
    ("pathlib.Path.unlink", {"self": "{victim}"}),                            # deletes
    ("otdata.tasks.train.shutil.copyfile", {"src": "{other}", "dst": "{victim}"}),  # re-export
    ("otdata.flows.checkpoint.load_checkpoint", {"path": "{victim}"}),        # a function
    ("os.system", {"_args_": ["touch {victim}.ran"]}),
])
def test_refused_targets_touch_nothing(target, kwargs, victim, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text("overwrite with this")
    fill = {"victim": str(victim), "other": str(other)}
    node = OmegaConf.create({"distance": {
        "_target_": target,
        **{k: ([a.format(**fill) for a in v] if isinstance(v, list) else v.format(**fill))
           for k, v in kwargs.items()}}})
    with pytest.raises(UnsafeTargetError, match=r"`distance._target_`.*refused") as info:
        safe_instantiate(node.distance)
    assert "Fix:" in str(info.value)
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "precious.txt.ran").exists()


def test_nested_target_is_checked_before_anything_is_built(victim):
    node = OmegaConf.create({"model": {
        "_target_": "otdata.models.Classifier",
        "net": {"_target_": "builtins.open", "file": str(victim), "mode": "w"}}})
    with pytest.raises(UnsafeTargetError, match=r"`model.net._target_`"):
        safe_instantiate(node.model)
    assert victim.read_text() == "keep me"


def test_interpolated_target_is_checked_after_resolution(victim):
    node = OmegaConf.create({"evil": "builtins.open",
                             "distance": {"_target_": "${evil}", "file": str(victim), "mode": "w"}})
    with pytest.raises(UnsafeTargetError, match="builtins.open"):
        safe_instantiate(node.distance)
    assert victim.read_text() == "keep me"


def test_task_refuses_an_override_target(victim, data_root, tmp_path):
    """`otdata task=distance distance._target_=builtins.open +distance.file=... +distance.mode=w`."""
    from otdata.tasks import distance

    cfg = compose_config(["task=distance", f"paths.data_dir={data_root}",
                          "distance._target_=builtins.open", f"+distance.file={victim}",
                          "+distance.mode=w"], output_dir=tmp_path / "run")
    with pytest.raises(UnsafeTargetError):
        distance.run(cfg)
    assert victim.read_text() == "keep me"


def test_misspelled_target_is_a_clear_error():
    node = OmegaConf.create({"distance": {"_target_": "otdata.distance.DatasetDistanse"}})
    with pytest.raises(UnsafeTargetError, match="does not exist"):
        safe_instantiate(node.distance)


def _options(group):
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_shipped_target_is_allowed(group, option, data_root, tmp_path):
    cfg = compose_config([f"{group}={option}", f"paths.data_dir={data_root}"], output_dir=tmp_path)
    check_targets(OmegaConf.to_container(cfg, resolve=True))


def test_allowed_classes_still_build(tmp_path):
    node = OmegaConf.create({"opt": {"_target_": "torch.nn.Linear", "in_features": 2,
                                     "out_features": 1},
                             "cb": {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                                    "dirpath": str(tmp_path)}})
    assert safe_instantiate(node.opt).in_features == 2
    assert safe_instantiate(node.cb).dirpath == str(tmp_path)


# Round two: the decision is taken on the name; nothing outside otdata is imported to take it.

@pytest.mark.parametrize("target", [
    "lightning.__setup__",                                   # importing it runs ./.actions/assistant.py
    "lightning.pytorch.demos.mnist_datamodule._MNIST",       # creates folders, starts a download
    "lightning.pytorch.cli.LightningCLI",                    # parses sys.argv, runs a trainer
    "lightning.pytorch.callbacks.BasePredictionWriter",      # inside an allowed class's package
    "torch.optim.Optimizer",                                 # the base class, not an optimiser
    "torch.hub.load",
])
def test_third_party_names_off_the_list_are_refused_without_importing(target, tmp_path,
                                                                      monkeypatch):
    import sys

    actions = tmp_path / ".actions"
    actions.mkdir()
    (actions / "assistant.py").write_text(
        f"open({str(tmp_path / 'ran.txt')!r}, 'w').write('ran')\n")
    monkeypatch.chdir(tmp_path)
    module = target.rsplit(".", 1)[0]
    was_loaded = module in sys.modules
    with pytest.raises(UnsafeTargetError, match="not on the allow-list") as info:
        check_targets({"data": {"_target_": target, "data_dir": str(tmp_path / "download")}}, "cfg")
    assert "Fix:" in str(info.value)
    assert not (tmp_path / "ran.txt").exists() and not (tmp_path / "download").exists()
    assert was_loaded or module not in sys.modules  # the refusal imported nothing


@pytest.mark.parametrize("target", [
    "torch.optim.AdamW", "torch.optim.lr_scheduler.StepLR", "torch.nn.Linear",
    "lightning.Trainer", "lightning.pytorch.loggers.CSVLogger", "otdata.distance.DatasetDistance",
    "otdata.summary.SweepSummary",
])
def test_the_classes_configs_name_are_allowed(target):
    check_targets({"x": {"_target_": target}})


def test_a_foreign_module_reached_through_otdata_is_refused():
    with pytest.raises(UnsafeTargetError, match="reaches the module 'lightning'"):
        check_targets({"x": {"_target_": "otdata.tasks.train.L.Trainer"}})


def test_hydra_callbacks_are_checked_before_hydra_builds_any(victim, tmp_path):
    """`+hydra.callbacks.evil._target_=shutil.copyfile`: refused before Hydra instantiates it."""
    from hydra._internal.callbacks import Callbacks

    from otdata.instantiate import guard_hydra_callbacks

    guard_hydra_callbacks()
    other = tmp_path / "other.txt"
    other.write_text("overwrite with this")
    cfg = OmegaConf.create({"hydra": {"callbacks": {
        "sweep_summary": {"_target_": "otdata.summary.SweepSummary"},
        "evil": {"_target_": "shutil.copyfile", "src": str(other), "dst": str(victim)}}}})
    with pytest.raises(UnsafeTargetError, match=r"`hydra.callbacks.evil._target_`"):
        Callbacks(cfg)
    assert victim.read_text() == "keep me"
    del cfg.hydra.callbacks.evil
    assert len(Callbacks(cfg).callbacks) == 1  # the project's own callback still builds


def test_hydra_callback_override_on_the_command_line_is_refused(victim, tmp_path):
    from tests.test_reliability_cli import otdata

    other = tmp_path / "other.txt"
    other.write_text("overwrite with this")
    result = otdata(["task=distance", "+hydra.callbacks.evil._target_=shutil.copyfile",
                     f"+hydra.callbacks.evil.src={other}", f"+hydra.callbacks.evil.dst={victim}"],
                    tmp_path, tmp_path / "no-data")
    assert result.returncode != 0
    assert "`hydra.callbacks.evil._target_` = 'shutil.copyfile' is refused" in result.stderr
    assert victim.read_text() == "keep me"
