"""experiment=transferability end to end on tiny generated images, and its building blocks."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf, open_dict

from otdata.tasks.transferability import resolve_pairs, run
from tests.fixtures import compose_config, write_emnist_letters, write_mnist_like, write_usps

FAST = ["task.num_threads=1", "task.n_pool=100", "task.n_test=40", "task.n_distance=60", "task.n_pretrain=80",
        "task.pretrain_epochs=1", "task.n_finetune=30", "task.finetune_epochs=2",
        "task.seeds=[0,1]", "trainer.accelerator=cpu", "distance=means", "task.cache_dir=null"]


def compose_experiment(name: str, overrides: list[str], output_dir) -> OmegaConf:
    return compose_config([f"experiment={name}", *overrides], output_dir)


@pytest.fixture(scope="module")
def partial_root(tmp_path_factory):
    """MNIST, USPS and EMNIST only: KMNIST's files are missing."""
    root = tmp_path_factory.mktemp("partial")
    write_mnist_like(root, "MNIST")
    write_usps(root)
    write_emnist_letters(root)
    return root


def test_run_on_tiny_images_writes_one_row_per_pair(partial_root, tmp_path):
    pairs = "[[mnist,usps],[usps,mnist],[emnist,mnist],[mnist,kmnist]]"
    cfg = compose_experiment("transferability", [
        f"paths.data_dir={partial_root}", f"task.pairs={pairs}", *FAST,
        "task.representation=normalized", "task.representations=[input,features]"], tmp_path)
    result = run(cfg)
    rows = result["rows"]
    assert [r["pair"] for r in rows] == ["MNIST→USPS", "USPS→MNIST", "EMNIST→MNIST", "mnist→kmnist"]
    done, skipped = rows[:3], rows[3]
    assert all(r["status"] == "ok" for r in done)
    assert "KMNIST data files missing" in skipped["status"]  # a row, not a crash
    for row in done:
        assert row["otdd"] > 0 and math.isfinite(row["gain"]) and math.isfinite(row["gain_std"])
        assert 0 <= row["scratch_acc"] <= 100 and 0 <= row["finetune_acc"] <= 100
        assert row["gain"] == pytest.approx(row["finetune_acc"] - row["scratch_acc"])
        assert row["seeds"] == 2 and row["n_finetune"] == 30
        assert row["n_test"] == {"USPS": 30, "MNIST": 40}[row["target"]]  # the whole tiny test split
    assert [r["head"] for r in done] == ["kept", "kept", "replaced"]  # 26 letters → 10 digits
    assert rows[0]["otdd"] == rows[1]["otdd"]  # the OTDD is computed once per unordered pair

    out = tmp_path
    assert (out / "transferability.csv").read_text().count("\n") == 5  # header + 4 rows
    assert (out / "transferability.md").is_file() and (out / "scatter.png").stat().st_size > 0
    record = json.loads((out / "transferability.json").read_text())
    assert record["correlation"]["n"] == 3 and len(record["runs"]) == 6
    assert -1 <= record["correlation"]["spearman_rho"] <= 1
    assert result["correlation"] == record["correlation"]
    assert record["datasets"]["kmnist"].startswith("skipped")
    # every distance column (compare + representations) with its statistics, and the figures
    stats = {(e["distance"], e["outcome"]): e for e in record["statistics"]}
    keys = {"otdd", "exact", "means", "sliced", "otdd@input", "otdd@features"}
    assert {k for k, _ in stats} == keys
    assert {o for _, o in stats} == {f"{o}{v}" for o in ("gain", "error_drop")
                                     for v in ("", " (within target)", " (within source)")}
    for row in done:
        assert all(row[k] > 0 for k in keys)
        scratch_err = 100 - row["scratch_acc"]
        assert row["error_drop"] == pytest.approx(100 * row["gain"] / scratch_err, rel=0.2)  # seed means
    main = stats[("otdd", "gain")]
    assert main["spearman_rho"] == pytest.approx(record["correlation"]["spearman_rho"])
    assert 0 < main["spearman_perm_p"] <= 1 and main["n_permutations"] >= 1
    assert main["spearman_ci"][0] <= main["spearman_ci"][1]
    assert math.isnan(main["rank_vs_otdd"])  # 2 unordered pairs: too few for a rank agreement
    assert record["timings"]["sliced"]["computed"] == 3  # the matrix among MNIST, USPS and EMNIST
    assert (out / "correlations.csv").is_file() and (out / "distances.png").stat().st_size > 0
    assert (out / "scatter_all.png").stat().st_size > 0
    assert "sliced" in (out / "transferability.csv").read_text().splitlines()[0]
    assert set(record["variance"]["gain"]) == {"n", "source", "target", "additive", "antisymmetric"}
    assert sorted(p.name for p in (out / "pretrained").glob("*.ckpt")) == [
        "EMNIST.ckpt", "MNIST.ckpt", "USPS.ckpt"]  # each source pre-trained once


def test_one_job_per_pair_shares_caches_and_collects(partial_root, tmp_path):
    """A sweep over task.pair_index: the second job reads the first one's distance and pre-trained
    model from task.cache_dir, and task.collect merges both records into the one-run table."""
    cache, sweep = tmp_path / "cache", tmp_path / "sweep"
    common = [f"paths.data_dir={partial_root}", "task.pairs=[[mnist,usps],[usps,mnist]]", *FAST,
              f"task.cache_dir={cache}", "~task.compare.exact", "~task.compare.means"]
    records = []
    for index in (0, 1):
        run(compose_experiment("transferability", [*common, f"task.pair_index={index}"], sweep / str(index)))
        records.append(json.loads((sweep / str(index) / "transferability.json").read_text()))
    assert [r["rows"][0]["pair"] for r in records] == ["MNIST→USPS", "USPS→MNIST"]
    assert records[0]["timings"]["otdd"]["computed"] == 1 and records[1]["timings"]["otdd"]["computed"] == 0
    assert records[1]["rows"][0]["otdd"] == records[0]["rows"][0]["otdd"]
    assert sorted(p.name for p in (cache / "pretrained").glob("*/*.ckpt")) == ["MNIST.ckpt", "USPS.ckpt"]
    assert len(list((cache / "runs").glob("*.json"))) == 4  # 2 pairs × 2 seeds, each fine-tuned once
    again = compose_experiment("transferability", [*common, "task.pair_index=0"], sweep / "again")
    assert run(again)["rows"][0]["gain"] == records[0]["rows"][0]["gain"]  # read back, not retrained
    merged = run(compose_experiment("transferability", [*common, f"task.collect={sweep}"], tmp_path / "all"))
    by_pair = {r["pair"]: r for r in merged["rows"]}
    assert set(by_pair) == {"MNIST→USPS", "USPS→MNIST"}
    for rec in records:
        row = rec["rows"][0]
        assert by_pair[row["pair"]]["gain"] == pytest.approx(row["gain"])
        assert by_pair[row["pair"]]["sliced"] == pytest.approx(row["sliced"])
    assert len(json.loads((tmp_path / "all" / "transferability.json").read_text())["runs"]) == 4


def test_null_n_pretrain_pre_trains_on_the_whole_training_split(partial_root, tmp_path):
    """task.n_pretrain=null: the source's whole training split (120 tiny MNIST items), not its pool
    (task.n_pool=100); the pool, and so the distances and target samples, stay the same."""
    common = [f"paths.data_dir={partial_root}", "task.pairs=[[mnist,usps]]", *FAST, "task.seeds=[0]",
              "~task.compare.exact", "~task.compare.means", "~task.compare.sliced"]
    pool = run(compose_experiment("transferability", common, tmp_path / "pool"))["rows"][0]
    whole = run(compose_experiment("transferability", [*common, "task.n_pretrain=null"], tmp_path / "whole"))["rows"][0]
    assert pool["n_pretrain"] == 80 and whole["n_pretrain"] == 120
    assert whole["otdd"] == pool["otdd"]  # the same pool, so the same distance subsamples
    assert whole["pretrain_seconds"] >= 0


def test_strict_stops_on_missing_data(partial_root, tmp_path):
    cfg = compose_experiment("transferability", [
        f"paths.data_dir={partial_root}", "task.pairs=[[kmnist,mnist]]", "task.strict=true",
        *FAST], tmp_path)
    with pytest.raises(FileNotFoundError, match="KMNIST"):
        run(cfg)


def test_pairs_all_or_listed(tmp_path):
    cfg = compose_experiment("transferability", ["task.datasets=[a,b,c]"], tmp_path)
    assert resolve_pairs(cfg.task) == [("a", "b"), ("a", "c"), ("b", "a"), ("b", "c"),
                                       ("c", "a"), ("c", "b")]
    cfg = compose_experiment("transferability", ["task.pairs=[[usps,mnist]]"], tmp_path)
    assert resolve_pairs(cfg.task) == [("usps", "mnist")]
    with open_dict(cfg):
        cfg.task.pairs = "some"
    with pytest.raises(ValueError):
        resolve_pairs(cfg.task)


def test_text_config_composes_with_subtasks(tmp_path):
    cfg = compose_experiment("transferability_text", [], tmp_path)
    assert list(cfg.task.datasets) == ["ag_news_a", "ag_news_b", "world_sports", "business_scitech", "dbpedia", "yelp_full"]
    assert set(cfg.task.compare) == {"exact", "means", "sliced"}
    assert cfg.task.model.net._target_ == "otdata.models.MLP"
    assert {"ag_news_a", "world_sports"} <= set(cfg.task.subsets)
