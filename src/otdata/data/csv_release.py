"""Reader for the text-classification CSV releases of Zhang, Zhao & LeCun (2015).

The releases (`ag_news_csv/`, `dbpedia_csv/`, `yelp_review_polarity_csv/`,
`yelp_review_full_csv/`) share one format:

* `train.csv` and `test.csv`, no header; optional `classes.txt` (one class name a line);
* each row is `class index (1-based), text field[, text field]`: AG News and DBPedia have a title and
  a description/content (3 columns), Yelp has the review text (2 columns);
* fields are double-quoted, with `""` for an inner quote; fields may contain commas;
* a line break inside a text is written as the two characters backslash + `n`.

Decoding (`decode_text`) turns a text field into a plain string:

* `\\n` escapes become `newline` (a space by default: a sentence encoder treats any whitespace
  alike, and one-line texts are easier to log and print); pass `newline="\\n"` to keep real line
  breaks;
* AG News does not follow the rule its readme states: its line breaks are a lone backslash (`\\`,
  two for a paragraph), `\\$` is an escaped dollar sign, and HTML entities lost their `&` (` #39;`
  for an apostrophe, ` #36;` for `$`). With `style="ag_news"` these are undone, so `\\no` there is
  a line break followed by "no", not an escape;
* runs of spaces and tabs are collapsed and the ends stripped.

Several text fields of a row are joined with `join` (a space by default).
Labels are returned 0-based. A malformed row raises `CSVRowError` naming the file and line.
"""

from __future__ import annotations

import csv
import re
import sys
from dataclasses import dataclass
from pathlib import Path

# texts (Yelp reviews) can be long; the csv module's default field limit is 128 KiB
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

FAST_AI_MIRROR = "https://s3.amazonaws.com/fast-ai-nlp"


@dataclass(frozen=True)
class CSVRelease:
    """What is known about one release: where it lives, how many columns, its default classes."""

    name: str
    folder: str
    text_fields: int
    class_names: tuple[str, ...]
    style: str = "standard"

    @property
    def url(self) -> str:
        return f"{FAST_AI_MIRROR}/{self.folder}.tgz"

    @property
    def archive(self) -> str:
        return f"{self.folder}.tgz"


RELEASES: dict[str, CSVRelease] = {
    "ag_news": CSVRelease(
        "AG News", "ag_news_csv", 2, ("World", "Sports", "Business", "Sci/Tech"), style="ag_news"
    ),
    "dbpedia": CSVRelease(
        "DBPedia", "dbpedia_csv", 2,
        (
            "Company", "EducationalInstitution", "Artist", "Athlete", "OfficeHolder",
            "MeanOfTransportation", "Building", "NaturalPlace", "Village", "Animal", "Plant",
            "Album", "Film", "WrittenWork",
        ),
    ),
    "yelp_polarity": CSVRelease(
        "Yelp Review Polarity", "yelp_review_polarity_csv", 1, ("negative", "positive")
    ),
    "yelp_full": CSVRelease(
        "Yelp Review Full", "yelp_review_full_csv", 1,
        ("1 star", "2 stars", "3 stars", "4 stars", "5 stars"),
    ),
}


class CSVRowError(ValueError):
    """A row of a release CSV is malformed. `path` and `line` (1-based, where the row starts)."""

    def __init__(self, path: str | Path, line: int, problem: str):
        super().__init__(f"{path}, line {line}: {problem}")
        self.path = str(path)
        self.line = line
        self.problem = problem


_ESCAPED_NEWLINE = re.compile(r"\\n")
_AG_ESCAPED_DOLLAR = re.compile(r"\\\$")
_AG_BREAK = re.compile(r"\\+")
_AG_ENTITY = re.compile(r" ?#(\d{2,5});")
_SPACES = re.compile(r"[ \t]+")


def decode_text(text: str, newline: str = " ", style: str = "standard") -> str:
    """One text field as a plain string (see the module docstring for the rules)."""
    if style == "ag_news":
        text = _AG_ESCAPED_DOLLAR.sub("$", text)
        text = _AG_BREAK.sub(lambda _: newline, text)
        text = _AG_ENTITY.sub(lambda m: chr(int(m.group(1))), text)
    elif style == "standard":
        text = _ESCAPED_NEWLINE.sub(lambda _: newline, text)
    else:
        raise ValueError(f"style must be 'standard' or 'ag_news', got {style!r}.")
    text = _SPACES.sub(" ", text)
    return "\n".join(part.strip() for part in text.split("\n")).strip()


def read_classes(path: str | Path) -> list[str]:
    """Class names from a `classes.txt` (one a line, blank lines ignored)."""
    names = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n]
    if not names:
        raise CSVRowError(path, 1, "classes.txt lists no class.")
    return names


def read_csv_release(
    path: str | Path,
    num_classes: int,
    text_fields: int | None = None,
    newline: str = " ",
    join: str = " ",
    style: str = "standard",
) -> tuple[list[str], list[int]]:
    """Read one release CSV: `(texts, labels)` with labels 0-based.

    Args:
        path: the CSV file.
        num_classes: labels on disk must lie in `1..num_classes`.
        text_fields: text columns after the label (1 or 2); None takes the count of the first row,
            and every row must then have the same.
        newline: what an escaped line break becomes.
        join: separator between the text fields of a row.
        style: `"standard"` or `"ag_news"` (see `decode_text`).

    Raises:
        CSVRowError: a row with the wrong number of fields, or a label that is not an integer in
            `1..num_classes` (blank lines are skipped); also an empty file.
    """
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                raise CSVRowError(path, start, f"unreadable CSV ({error}).") from error
            line, start = start, reader.line_num + 1
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if text_fields is None:
                text_fields = len(row) - 1
                if text_fields not in (1, 2):
                    raise CSVRowError(
                        path, line, f"expected 2 or 3 fields (label, text[, text]), got {len(row)}."
                    )
            if len(row) != text_fields + 1:
                raise CSVRowError(
                    path, line, f"expected {text_fields + 1} fields, got {len(row)}."
                )
            raw = row[0].strip()
            try:
                label = int(raw)
            except ValueError:
                raise CSVRowError(path, line, f"label {raw!r} is not an integer.") from None
            if not 1 <= label <= num_classes:
                raise CSVRowError(
                    path, line, f"label {label} is out of range 1..{num_classes}."
                )
            parts = [decode_text(field, newline=newline, style=style) for field in row[1:]]
            texts.append(join.join(p for p in parts if p))
            labels.append(label - 1)
    if not labels:
        raise CSVRowError(path, 1, "the file holds no row.")
    return texts, labels
