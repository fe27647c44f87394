"""`debug=default` shrinks every phase of every task: item counts, epochs, flow steps, batches, seeds.

Each task and experiment is composed with `debug=default`, and every size and epoch setting in the
composed config (datamodules, trainer, flow, the task's own keys) is checked against a cap. A new
task needs its `conf/debug/task/default_<task>.yaml`, or its sizes fail here.
"""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from otdata.config import CONFIG_DIR
from tests.fixtures import compose_config

TASKS = sorted(p.stem for p in (CONFIG_DIR / "task").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
#: (pattern on the dotted key, largest value allowed under debug=default; None is never allowed)
CAPS = [
    (r"^(data|source|target|task)\.(\w+\.)*(n|n_(?!projections|moments)\w+|max_samples|max_test_samples)$", 512),
    (r"(^|\.)\w*epochs$", 2),
    (r"^flow\.steps$", 5),
    (r"^trainer\.limit_\w+_batches$", 4),
]


def settings(node, prefix=""):
    """(dotted key, value) of every leaf of a plain config."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from settings(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def capped(overrides: list[str]) -> dict[str, object]:
    cfg = compose_config([*overrides, "debug=default"], output_dir="/tmp/otdata-debug")
    found = {}
    for key, value in settings(OmegaConf.to_container(cfg, resolve=False)):
        for pattern, cap in CAPS:
            if re.search(pattern, key):
                assert value is not None and value <= cap, \
                    f"{' '.join(overrides)} debug=default: {key}={value} (cap {cap})"
                found[key] = value
    assert len(cfg.task.get("seeds") or [0]) == 1, "debug=default runs one seed (null: the run's seed)"
    return found


@pytest.mark.parametrize("overrides", [[f"task={t}"] for t in TASKS] + [[f"experiment={e}"] for e in EXPERIMENTS],
                         ids=lambda o: o[0])
def test_debug_caps_every_phase(overrides):
    found = capped(overrides)
    assert found["flow.steps"] == 5 and found["trainer.max_epochs"] == 1
    assert found["trainer.limit_train_batches"] == 4
    assert {"data.max_samples", "source.max_test_samples", "target.max_samples"} <= set(found)
    task = compose_config(overrides, output_dir="/tmp/otdata-debug").task.name
    assert (CONFIG_DIR / "debug" / "task" / f"default_{task}.yaml").is_file(), \
        f"add conf/debug/task/default_{task}.yaml with small sizes for task={task}"


def test_debug_shrinks_the_repurposing_phases_and_leaves_other_runs_alone():
    found = capped(["experiment=repurpose"])
    assert found["task.learned_map.epochs"] <= 2 and found["task.baseline.epochs"] <= 2
    assert found["task.n_flow"] <= 512 and found["task.n_test"] <= 512
    full = compose_config(["experiment=repurpose"], output_dir="/tmp/otdata-debug")
    assert full.task.learned_map.epochs == 20 and full.flow.steps == 30  # the defaults, untouched
    given = compose_config(["experiment=repurpose", "debug=default", "task.n_flow=300"],
                           output_dir="/tmp/otdata-debug")
    assert given.task.n_flow == 300  # the command line still wins
