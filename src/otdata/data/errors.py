"""The error raised when a dataset's files are missing or unreadable, with the fixes spelled out."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable


class DataFileError(FileNotFoundError):
    """A dataset file is missing or corrupt. The message names the files (absolute paths), the root
    and the fixes; the `otdata` command prints it alone, without a traceback."""

    def __init__(self, dataset: str, root: str | Path, files: Iterable[str | Path], problem: str):
        files = [str(Path(f).resolve()) for f in files]
        listed = "\n".join(f"  - {f}" for f in files)
        super().__init__(
            f"{dataset}: {problem}\n"
            f"data root: {Path(root).resolve()}\n"
            f"expected file(s):\n{listed}\n"
            "Fix it in one of two ways:\n"
            "  1. point at a folder that holds the files: `paths.data_dir=/path/to/data` "
            "(or set OTDATA_DATA_DIR);\n"
            "  2. let otdata download them (needs internet): add `download=true` to the command "
            "(it reaches every dataset of any task)."
        )
        self.dataset = dataset
        self.files = files


class DataFormatError(ValueError):
    """A user's dataset is there but cannot be used as it is (no images, one class, labels out of
    range, NaN features, a missing column, ...). The message names the dataset, the problem, the
    files or columns concerned and the fix; like `DataFileError`, the `otdata` command prints it
    alone. It is not a `DataFileError`: tasks that skip a dataset whose files are missing must not
    skip one whose content is wrong."""

    def __init__(self, dataset: str, problem: str, fix: str, files: Iterable[str | Path] = ()):
        files = [str(Path(f).resolve()) for f in files]
        listed = "".join(f"\n  - {f}" for f in files[:5])
        more = f"\n  ... and {len(files) - 5} more" if len(files) > 5 else ""
        where = f"\nfile(s):{listed}{more}" if files else ""
        super().__init__(f"{dataset}: {problem}{where}\nFix: {fix}")
        self.dataset = dataset
        self.files = files
