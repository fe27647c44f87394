"""Text embeddings with a tiny random BERT: pooling, normalisation, and the on-disk cache."""

from __future__ import annotations

import pytest
import torch

import otdata.data.embed as embed
from otdata.data.embed import TextEncoder, embed_texts, texts_digest
from tests.data.conftest_text import tiny_bert, tiny_bert_other  # noqa: F401  (fixtures)

TEXTS = ["the team won the cup", "stock market price", "new computer chip", "a", "space science research news"]


@pytest.fixture
def counting(monkeypatch):
    """Counts encoder loads and forward passes."""
    calls = {"load": 0, "forward": 0}
    real_load = embed.load_encoder

    def load(model, device="cpu"):
        calls["load"] += 1
        tokenizer, encoder = real_load(model, device)
        encoder.register_forward_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
        return tokenizer, encoder

    monkeypatch.setattr(embed, "load_encoder", load)
    return calls


def test_shape_dtype_and_normalisation(tiny_bert):
    X = TextEncoder(tiny_bert, progress=False).encode(TEXTS)
    assert X.shape == (len(TEXTS), 32) and X.dtype == torch.float32
    assert torch.allclose(X.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-5)
    raw = TextEncoder(tiny_bert, normalize=False, progress=False).encode(TEXTS)
    assert not torch.allclose(raw.norm(dim=1), torch.ones(len(TEXTS)), atol=1e-3)
    assert torch.allclose(torch.nn.functional.normalize(raw, dim=1), X, atol=1e-5)
    assert len(set(map(tuple, X.round(decimals=4).tolist()))) == len(TEXTS)  # distinct texts differ


def test_mean_pooling_ignores_padding_and_keeps_order(tiny_bert):
    enc = TextEncoder(tiny_bert, batch_size=3, normalize=False, progress=False)
    together = enc.encode(TEXTS)  # sorted by length internally, padded within batches
    alone = torch.cat([enc.encode([t]) for t in TEXTS])
    assert torch.allclose(together, alone, atol=1e-5)


def test_mean_and_cls_pooling_match_a_manual_forward(tiny_bert):
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(tiny_bert), AutoModel.from_pretrained(tiny_bert).eval()
    batch = tokenizer([TEXTS[0]], return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state[0]
    mean = TextEncoder(tiny_bert, normalize=False, progress=False).encode([TEXTS[0]])[0]
    cls = TextEncoder(tiny_bert, pooling="cls", normalize=False, progress=False).encode([TEXTS[0]])[0]
    assert torch.allclose(mean, hidden.mean(0), atol=1e-5)
    assert torch.allclose(cls, hidden[0], atol=1e-5)


def test_max_length_truncates(tiny_bert):
    long = " ".join(["market"] * 50)
    short = TextEncoder(tiny_bert, max_length=4, progress=False).encode([long, "market market"])
    assert torch.allclose(short[0], short[1], atol=1e-5)  # [CLS] market market [SEP] both


def test_cache_miss_then_hit_without_loading_the_model(tiny_bert, tmp_path, counting):
    enc = TextEncoder(tiny_bert, cache_dir=tmp_path, batch_size=2, progress=False)
    first = enc.encode(TEXTS, name="ag_news-test")
    assert counting == {"load": 1, "forward": 3}
    files = list((tmp_path / "embeddings").glob("*.pt"))
    assert len(files) == 1 and files[0].name.startswith("ag_news-test-")
    mtime = files[0].stat().st_mtime_ns

    again = TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False).encode(TEXTS, name="ag_news-test")
    assert counting == {"load": 1, "forward": 3}  # no load, no forward
    assert torch.equal(first, again)
    assert files[0].stat().st_mtime_ns == mtime
    # batch size and device are not part of the key
    TextEncoder(tiny_bert, cache_dir=tmp_path, batch_size=5, progress=False).encode(TEXTS, name="ag_news-test")
    assert counting["load"] == 1


@pytest.mark.parametrize(
    "change",
    [
        {"max_length": 8},
        {"normalize": False},
        {"pooling": "cls"},
        {"texts": TEXTS[:-1]},
        {"texts": list(reversed(TEXTS))},
        {"name": "ag_news-train"},
    ],
)
def test_cache_invalidation_on_settings_and_texts(tiny_bert, tmp_path, counting, change):
    change = dict(change)
    texts = change.pop("texts", TEXTS)
    name = change.pop("name", "ag_news-test")
    TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False).encode(TEXTS, name="ag_news-test")
    TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False, **change).encode(texts, name=name)
    assert counting["load"] == 2
    assert len(list((tmp_path / "embeddings").glob("*.pt"))) == 2


def test_cache_invalidation_on_model(tiny_bert, tiny_bert_other, tmp_path, counting):
    a = TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False).encode(TEXTS)
    b = TextEncoder(tiny_bert_other, cache_dir=tmp_path, progress=False).encode(TEXTS)
    assert counting["load"] == 2 and not torch.allclose(a, b)
    assert len(list((tmp_path / "embeddings").glob("*.pt"))) == 2


def test_cache_invalidation_when_the_config_in_the_same_folder_changes(tiny_bert, tmp_path, counting):
    import shutil

    from transformers import BertConfig, BertModel

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    cache = tmp_path / "cache"
    TextEncoder(folder, cache_dir=cache, progress=False).encode(TEXTS)
    config = BertConfig.from_pretrained(folder)
    config.hidden_act = "relu"
    BertModel(config).save_pretrained(folder)
    TextEncoder(folder, cache_dir=cache, progress=False).encode(TEXTS)
    assert counting["load"] == 2


def test_corrupt_cache_entry_is_recomputed(tiny_bert, tmp_path, counting):
    enc = TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False)
    first = enc.encode(TEXTS)
    path = enc.cache_path(TEXTS)
    path.write_bytes(b"not a torch file")
    again = TextEncoder(tiny_bert, cache_dir=tmp_path, progress=False).encode(TEXTS)
    assert counting["load"] == 2 and torch.allclose(first, again)
    assert torch.load(path, weights_only=True)["embeddings"].shape == first.shape


def test_no_cache_dir_and_progress_bar(tiny_bert, tmp_path):
    X = embed_texts(TEXTS, tiny_bert, progress=True)
    assert X.shape == (len(TEXTS), 32)
    assert TextEncoder(tiny_bert).cache_path(TEXTS) is None


def test_empty_input_and_bad_settings(tiny_bert):
    assert TextEncoder(tiny_bert, progress=False).encode([]).shape == (0, 32)
    with pytest.raises(ValueError):
        TextEncoder(tiny_bert, pooling="max")
    with pytest.raises(ValueError):
        TextEncoder(tiny_bert, max_length=1)


def test_texts_digest_sees_boundaries():
    assert texts_digest(["ab", "c"]) != texts_digest(["a", "bc"])
    assert texts_digest(["a"]) == texts_digest(["a"])
