"""Helpers for the text tests: a tiny random BERT (no download) and tiny CSV releases.

Imported explicitly by the text test modules (`from tests.data.conftest_text import ...`).
"""

from __future__ import annotations

import csv
import string
from pathlib import Path

import pytest

WORDS = (
    "the a of and to in on for is was with at by an it as news world sports game team won lost "
    "market stock shares price bank oil company computer software space science research phone "
    "internet web new says first year win match cup season profit sales deal chip"
).split()

# a few hand-made items per AG News class, combined into more rows by `make_rows`
TOPICS = {
    1: ["world leaders meet", "war in the world", "the new president says"],
    2: ["team won the cup", "the game was lost", "first match of the season"],
    3: ["stock market price", "bank profit and sales", "oil company shares"],
    4: ["new computer chip", "space science research", "internet phone software"],
}


def write_vocab(path: Path) -> Path:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    tokens += WORDS + ["##s", "##ing", "##ed"]
    seen = list(dict.fromkeys(tokens))
    path.write_text("\n".join(seen) + "\n", encoding="utf-8")
    return path


def make_tiny_bert(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    """A random BERT encoder + WordPiece tokenizer saved with `save_pretrained` in `folder`."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder / "vocab.txt")
    tokenizer = BertTokenizerFast(vocab=str(vocab))
    tokenizer.model_max_length = 128
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(tokenizer.get_vocab()), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(folder)
    return folder


def write_csv(path: Path, rows) -> Path:
    """Rows of `(label 1-based, field, ...)`, written the way the releases are (all quoted)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return path


def make_rows(per_class: int, seed: int = 0, topics=TOPICS):
    """`per_class` AG-News-like rows per class: `(label, title, description)`."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(per_class):
        for label, phrases in topics.items():
            title = rng.choice(phrases)
            description = " ".join(rng.sample(phrases, 2)) + f", item {i}"
            rows.append((label, title, description))
    rng.shuffle(rows)
    return rows


def make_ag_news(root: Path, train_per_class: int = 10, test_per_class: int = 5,
                 classes=("World", "Sports", "Business", "Sci/Tech"), train: bool = True) -> Path:
    folder = root / "ag_news_csv"
    if train:
        write_csv(folder / "train.csv", make_rows(train_per_class, seed=1))
    write_csv(folder / "test.csv", make_rows(test_per_class, seed=2))
    if classes is not None:
        (folder / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture(scope="session")
def tiny_bert_other(tmp_path_factory) -> Path:
    """Another tiny BERT (different config and weights)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_bert_other"), seed=1, layers=1)
