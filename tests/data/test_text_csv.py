"""The general CSV reader reads the Zhang et al. releases row for row as their own loader does, and
its thin configs (Amazon Reviews, Yahoo Answers) read those releases' layout."""

from __future__ import annotations

import pytest
import torch

from otdata.data import CSVTextDataModule, DBPediaDataModule, YelpFullDataModule
from tests.config.test_compose import compose_with
from tests.data.conftest_text import make_rows, tiny_bert, write_csv  # noqa: F401
from tests.fixtures import write_zhang_csv


@pytest.mark.parametrize("cls,folder,columns", [
    (DBPediaDataModule, "dbpedia_csv", [1, 2]),
    (YelpFullDataModule, "yelp_review_full_csv", [1]),
])
def test_same_rows_as_the_release_loader(tmp_path, cls, folder, columns):
    rows = [(label % 4 + 1, *fields[: len(columns)]) for label, *fields in make_rows(5, seed=3)]
    rows[0] = (rows[0][0], "a title with a \\n break, and commas", *rows[0][2:])
    write_csv(tmp_path / folder / "test.csv", rows)
    release = cls(data_dir=tmp_path)
    general = CSVTextDataModule(f"{folder}/test.csv", data_dir=tmp_path, label_column=0,
                                text_columns=columns, label_base=1,
                                class_names=release.class_names, test_fraction=0.0)
    texts, y = general.texts("train")
    ref_texts, ref_y = release.texts("test")
    assert texts == ref_texts and y.tolist() == ref_y.tolist()
    assert "a title with a break, and commas" in texts[0]


@pytest.mark.parametrize("option,folder,fields,classes,first", [
    ("amazon_polarity", "amazon_review_polarity_csv", 2, 2, "negative"),
    ("amazon_full", "amazon_review_full_csv", 2, 5, "1 star"),
    ("yahoo_answers", "yahoo_answers_csv", 3, 10, "Society & Culture"),
])
def test_zhang_configs_read_their_layout(tmp_path, option, folder, fields, classes, first):
    write_zhang_csv(tmp_path, folder, fields, classes)
    from hydra.utils import instantiate

    dm = instantiate(compose_with([f"data={option}", f"paths.data_dir={tmp_path}"]).data)
    texts, y = dm.texts("test")
    assert dm.class_names[0] == first and len(dm.class_names) == classes
    assert y.tolist() == [i % classes for i in range(20)]
    assert texts[0] == " ".join(f"text 1 field {f} line 0" for f in range(fields))


def test_embeddings_of_a_user_csv_and_a_hf_text_dataset(tmp_path, tiny_bert):
    """Texts read by the general readers are embedded as the built-in text datasets embed them:
    the encoder's vectors of the same strings, subsampled before embedding."""
    import datasets

    from otdata.data import HFTextDataModule
    from otdata.data.embed import TextEncoder

    rows = make_rows(4, seed=5)
    (tmp_path / "news.csv").write_text("topic,title,body\n" + "".join(
        f'{label},"{title}","{body}"\n' for label, title, body in rows))
    csv_dm = CSVTextDataModule(tmp_path / "news.csv", header=True, label_column="topic",
                               text_columns=["title", "body"], test_fraction=0.25, encoder=str(tiny_bert),
                               progress=False, max_samples=8)
    texts, y = csv_dm.texts("train")
    X, y2 = csv_dm.tensors("train")
    assert X.shape == (8, 32) and torch.equal(y, y2) and csv_dm.class_names == ["1", "2", "3", "4"]  # as found
    expected = TextEncoder(str(tiny_bert), progress=False).encode(texts)
    assert torch.allclose(X, expected, atol=1e-6)

    datasets.Dataset.from_dict({"text": texts, "label": y.tolist()}).save_to_disk(str(tmp_path / "hf"))
    hf_dm = HFTextDataModule(tmp_path / "hf", test_fraction=0.0, encoder=str(tiny_bert), progress=False)
    assert torch.allclose(hf_dm.tensors("train")[0], expected, atol=1e-6)
