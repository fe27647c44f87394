"""experiment=repurpose end to end on tiny data with a known answer.

The source ("KMNIST" files) is a class-permuted, brightened copy of the target (MNIST): label c
shows the picture of MNIST class perm[c]. So the frozen MNIST classifier is wrong on raw data under
the identity protocol, right under the discovered correspondence (c → perm[c]), and right after the
flow under both protocols (the flow pushes class c onto c, or onto perm[c]); unseen test samples moved
by the learned map and by the k-NN extension follow, and the from-scratch baseline is trained on the
very sample the flow used.
"""

from __future__ import annotations

import csv
import json

import pytest
import torch
from otdata import plots
from otdata.flows import FlowResult
from otdata.tasks import classifier, repurpose
from otdata.tasks.repurpose import log_results, run
from tests.fixtures import compose_config, write_emnist_letters, write_mnist_like

PERM = [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]


@pytest.fixture(scope="module")
def known_answer_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("known")
    write_mnist_like(root, "MNIST", n_train=600, n_test=200)
    write_mnist_like(root, "KMNIST", n_train=300, n_test=100, permutation=PERM, brightness=25)
    write_emnist_letters(root, n_train=260, n_test=104)
    return root


@pytest.mark.slow
def test_repurpose_protocols_and_out_of_sample(known_answer_root, tmp_path, monkeypatch):
    seen = []  # what the from-scratch baseline was trained on

    def spy(cfg, X, y, num_classes, image_shape):
        seen.append((X.clone(), y.clone(), num_classes))
        return train_from_scratch(cfg, X, y, num_classes, image_shape)

    train_from_scratch = repurpose.train_from_scratch
    monkeypatch.setattr(repurpose, "train_from_scratch", spy)
    cfg = compose_config([
        "experiment=repurpose", f"paths.data_dir={known_answer_root}",
        f"paths.cache_dir={tmp_path / 'cache'}", "task.sources=[kmnist,emnist,fashion_mnist]",
        "task.n_flow=200", "task.n_target=300", "task.n_test=100", "flow.steps=20",
        "flow.progress=false", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
        "logger=csv", "task.learned_map.epochs=20", "task.learned_map.batch_size=16",
        "task.baseline.epochs=5",
    ], output_dir=tmp_path / "run")
    result = run(cfg)

    rows = {r["dataset"]: r for r in csv.DictReader(open(tmp_path / "run" / "repurpose.csv"))}
    table = (tmp_path / "run" / "repurpose.md").read_text()
    assert table.startswith("| dataset | paper: before | paper: after | raw | flowed |")
    assert "from scratch" in table and "matching" not in table  # the paper's protocol only
    assert "→" in (tmp_path / "run" / "repurpose_correspondence.md").read_text()
    assert set(rows) == {"MNIST", "KMNIST", "EMNIST", "fashion_mnist"}
    assert "skipped" in rows["fashion_mnist"]["status"]  # no files in this root: skipped, not fatal
    assert float(rows["MNIST"]["raw_identity"]) > 95
    k = {key: float(v) for key, v in rows["KMNIST"].items()
         if key.startswith(("raw", "flowed", "out_of")) and v}
    assert all(0 <= v <= 100 for v in k.values())
    assert k["raw_identity"] < 15                  # the classifier sees perm[c], not c
    assert k["raw_correspondence"] > 90            # ... which the discovered matching recovers
    matched = [pair.split("→")[1] for pair in rows["KMNIST"]["correspondence"].split()]
    assert matched == [str(t) for t in PERM]
    assert k["flowed_identity"] > 90 and k["flowed_correspondence"] > 90
    assert k["out_of_sample_identity"] > 80 and k["out_of_sample_correspondence"] > 80
    assert k["out_of_sample_knn_identity"] > 80 and k["out_of_sample_knn_correspondence"] > 80
    # the baseline: the classifier's architecture trained on exactly the flowed, labeled sample
    flow = FlowResult.load(tmp_path / "run" / "KMNIST" / "identity" / "flow.pt")
    X, y, num_classes = seen[0]
    assert torch.equal(X, flow.X0) and torch.equal(y, flow.y) and num_classes == 10
    assert seen[1][2] == 26  # EMNIST: its own 26 letters
    base = {c: float(rows["KMNIST"][c]) for c in ("baseline_from_scratch",
                                                  "baseline_from_scratch_correspondence")}
    assert 0 <= base["baseline_from_scratch"] <= 100 and base["baseline_from_scratch_correspondence"] > 0
    decimals = [v.split(".")[1] for v in rows["KMNIST"].values() if v.replace(".", "", 1).isdigit()
                and "." in v]
    assert decimals and all(len(d) <= 2 for d in decimals)  # rounded to two decimals
    assert (tmp_path / "run" / "KMNIST" / "before_after_identity.png").stat().st_size > 0

    # 26 letters, 10 digits: under the identity protocol only letters a..j can ever be right
    # (10/26 of a balanced sample); the discovered balanced matching sends every letter somewhere
    e = {key: float(v) for key, v in rows["EMNIST"].items() if key.startswith("flowed") and v}
    assert e["flowed_identity"] <= 100 * 10 / 26 + 1e-6
    assert e["flowed_correspondence"] > 80
    assert len(rows["EMNIST"]["correspondence"].split()) == 26
    assert 0 <= result["objective"] <= 100


def test_wandb_logger_records_table_and_figures_offline(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)  # offline is the default
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    plots.image_rows({"flowed": torch.rand(4, 784)}, out / "USPS" / "before_after_identity.png")
    cfg = compose_config(["experiment=repurpose", "logger=wandb"], output_dir=out)
    log_results(cfg, [{"dataset": "USPS", "raw_identity": 80.0, "flowed_identity": 99.5}], out)

    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1  # offline: nothing sent, everything kept for `wandb sync`
    tables = list(runs[0].glob("files/media/table/repurpose_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["dataset", "raw_identity", "flowed_identity"]
    assert table["data"] == [["USPS", 80.0, 99.5]]
    assert list(runs[0].glob("files/media/images/before_after_*.png"))


@pytest.mark.parametrize("overrides", [["experiment=repurpose"], ["task=distance"], ["task=train"]])
def test_one_download_switch_reaches_every_dataset(overrides):
    from otdata.tasks.common import source_config

    cfg = compose_config([*overrides, "download=true"])
    assert cfg.data.download is True and cfg.source.download is True and cfg.target.download is True
    assert source_config(cfg, "emnist").source.download is True  # the experiment's own sources
    assert compose_config(overrides).target.download is False


def test_cache_defaults_to_the_user_cache_folder(monkeypatch, tmp_path):
    """Cached classifiers are found from any working folder: OTDATA_CACHE_DIR, else the platform's
    user cache folder (never a folder relative to where the command runs)."""
    from otdata.config import user_cache_dir

    monkeypatch.delenv("OTDATA_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    default = compose_config(["experiment=repurpose"], output_dir=tmp_path).paths.cache_dir
    assert default == user_cache_dir() and default.endswith("otdata") and default.startswith("/")
    monkeypatch.setenv("OTDATA_CACHE_DIR", str(tmp_path / "c"))
    cfg = compose_config(["experiment=repurpose"], output_dir=tmp_path)
    assert cfg.paths.cache_dir == str(tmp_path / "c")
    assert classifier.classifier_checkpoint(cfg).parent == tmp_path / "c" / "classifiers"
    # the classifier's cache key ignores display settings and the run's seed (one frozen model)
    keys = {classifier.classifier_checkpoint(compose_config(["experiment=repurpose", *o], output_dir=tmp_path)).name
            for o in ([], ["trainer.enable_progress_bar=false"], ["seed=3"])}
    assert len(keys) == 1
    assert classifier.classifier_checkpoint(
        compose_config(["experiment=repurpose", "trainer.max_epochs=1"], output_dir=tmp_path)).name not in keys


def test_before_after_grids_show_the_expected_class_and_colour_the_model_right_or_wrong(monkeypatch, tmp_path):
    """Under the correspondence protocol each caption says which digit the item should read as;
    under both protocols a caption is green where the frozen model says it, red where not."""
    from types import SimpleNamespace

    drawn = {}
    monkeypatch.setattr(repurpose.plots, "image_rows", lambda images, path, **kw: drawn.setdefault(path, kw))
    said = torch.tensor([7, 3])
    model = SimpleNamespace(predict=lambda X: said[:len(X)])
    source = SimpleNamespace(name="KMNIST", class_names=["o", "ki"], image_size=28)
    target = SimpleNamespace(name="MNIST", class_names=[str(d) for d in range(10)])
    images = {"source": torch.rand(2, 784), "test": torch.rand(2, 784)}
    y = torch.tensor([0, 1])
    for protocol, corr in (("identity", {0: 0, 1: 1}), ("correspondence", {0: 7, 1: 2})):
        repurpose.before_after_grid(images, y, y, corr, protocol, source, target, model,
                                    tmp_path / protocol)
    identity, matched = drawn[tmp_path / "identity"], drawn[tmp_path / "correspondence"]
    assert identity["captions"]["source"] == ["o\nmodel: 7", "ki\nmodel: 3"]
    assert identity["caption_colors"]["source"] == [plots.WRONG, plots.WRONG]
    assert matched["captions"]["test"] == ["o\n→ 7\nmodel: 7", "ki\n→ 2\nmodel: 3"]
    assert matched["caption_colors"]["test"] == [plots.RIGHT, plots.WRONG]
    assert "green" in matched["title"] and "correspondence protocol" in matched["title"]
