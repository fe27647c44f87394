"""Any labeled CSV of texts, as a LabeledDataModule (texts embedded with a sentence encoder).

One label column and one or more text columns (joined with a space), with or without a header
row. Columns are named by header name or by 0-based position. Labels are class names, or
integers: the distinct values found become the classes, or, with `class_names`, `value -
label_base` indexes them (`label_base=1` for the Zhang et al. releases' labels 1..C). Text fields are
cleaned as the Zhang releases need (`escapes="standard"`: the two characters backslash + `n` become
a space, runs of spaces collapse), or only stripped (`escapes=null`).

The Zhang et al. (2015) releases are thin configs on this reader (`conf/data/amazon_polarity.yaml`,
`amazon_full.yaml`, `yahoo_answers.yaml`; AG News, DBPedia and Yelp keep their own loaders in
`otdata.data.text`, which also download them, and read the same rows as this reader).

Example:
    >>> dm = CSVTextDataModule(train_file="reviews.csv", label_column="stars",
    ...                        text_columns=["title", "body"], header=True, encoder="models/minilm")
    >>> X, y = dm.tensors("train")          # (n, 384) for all-MiniLM-L6-v2
"""

from __future__ import annotations

import csv
from pathlib import Path

from otdata.data.csv_release import decode_text  # also lifts the csv module's field size limit
from otdata.data.errors import DataFormatError
from otdata.data.user_text import UserTextDataModule


class CSVTextDataModule(UserTextDataModule):
    """Labeled texts from CSV files (see the module docstring).

    Args (beyond UserTextDataModule's and TextCSVDataModule's):
        train_file: the CSV (absolute, or relative to the working directory or else to `data_dir`).
        test_file: a second CSV for the test split; None holds out `test_fraction` of `train_file`.
        label_column: header name or 0-based position of the label column.
        text_columns: header names or positions of the text columns (one or more).
        header: whether the first row names the columns.
        delimiter: the field separator.
        escapes: `"standard"` (the Zhang releases' `\\n` escapes) or None (texts only stripped).
    """

    def __init__(self, train_file: str | Path, *args, test_file: str | Path | None = None,
                 label_column: int | str = 0, text_columns: list[int | str] | int | str = (1,),
                 header: bool = False, delimiter: str = ",", escapes: str | None = "standard",
                 **kwargs):
        if not kwargs.get("name"):
            kwargs["name"] = Path(str(train_file)).parent.name or Path(str(train_file)).stem
        super().__init__(*args, **kwargs)
        self.files = {"train" if test_file else "all": self._resolve(Path(train_file))}
        if test_file:
            self.files["test"] = self._resolve(Path(test_file))
        self.label_column = label_column
        self.text_columns = [text_columns] if isinstance(text_columns, (int, str)) else list(text_columns)
        if not self.text_columns:
            raise ValueError("text_columns must name at least one column.")
        self.header, self.delimiter, self.escapes = bool(header), delimiter, escapes

    def _resolve(self, path: Path) -> Path:
        path = path.expanduser()
        return path if path.is_file() or path.is_absolute() else self.data_dir / path

    def _positions(self, path: Path, names: list[str] | None) -> tuple[int, list[int]]:
        """Positions of the label and text columns in the rows of `path`."""
        def position(column) -> int:
            if isinstance(column, int) or (isinstance(column, str) and column.isdigit() and names is None):
                return int(column)
            if names is None:
                raise DataFormatError(
                    self.name, f"column {column!r} is named, but {path.name} has no header row.",
                    "name columns by position (0, 1, ...) or set `header=true`.", [path])
            if column not in names:
                raise DataFormatError(
                    self.name, f"{path.name} has no column {column!r} (its columns: {names}).",
                    "set `label_column` / `text_columns` to columns of the file.", [path])
            return names.index(column)

        return position(self.label_column), [position(c) for c in self.text_columns]

    def _read_file(self, path: Path) -> tuple[list[str], list[str]]:
        if not path.is_file():
            raise DataFormatError(self.name, "the CSV file does not exist.", "check the path: a relative path is looked up in the working directory, then under `paths.data_dir`.", [path])
        texts, labels = [], []
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=self.delimiter)
            try:
                names = next(reader, []) if self.header else None
                label_at, text_at = self._positions(path, names) if names != [] else (0, [0])
                width = max(label_at, *text_at) + 1
                for row in reader:
                    if not row or (len(row) == 1 and not row[0].strip()):
                        continue
                    if len(row) < width:
                        raise DataFormatError(
                            self.name, f"{path.name}, line {reader.line_num}: {len(row)} field(s), "
                            f"but column {width - 1} is read.", "fix that row, or check "
                            "`label_column`, `text_columns` and `delimiter`.", [path])
                    parts = [self._clean(row[i]) for i in text_at]
                    texts.append(" ".join(p for p in parts if p))
                    labels.append(row[label_at].strip())
            except csv.Error as error:
                raise DataFormatError(self.name, f"{path.name}, line {reader.line_num}: unreadable "
                                      f"CSV ({error}).", "fix the quoting of that row.", [path]) from error
        if not labels:
            raise DataFormatError(self.name, f"{path.name} holds no row.", "give a CSV with data rows.",
                                  [path])
        return texts, labels

    def _clean(self, text: str) -> str:
        return decode_text(text, style=self.escapes) if self.escapes else text.strip()

    def read_texts(self) -> tuple[dict[str, tuple[list[str], list]], list[Path]]:
        return {split: self._read_file(path) for split, path in self.files.items()}, list(self.files.values())
