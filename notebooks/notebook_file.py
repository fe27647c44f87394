"""Writing a notebook from its cells: the step every generator here (`make_*.py`) shares."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook


def write_notebook(cells: list, path: Path) -> Path:
    """Write `cells` as a Python 3 notebook at `path` (outputs are added by running it)."""
    notebook = new_notebook(cells=cells, metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, path)
    return path
