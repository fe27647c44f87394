"""How a class is shown to people (tables, captions, warnings): its name where the dataset has
one, else its label value."""

from __future__ import annotations

from typing import Sequence


def class_name(names: Sequence[str] | None, label) -> str:
    """``names[label]`` when ``label`` indexes ``names``, else ``str(label)``."""
    label = int(label)
    return str(names[label]) if names is not None and 0 <= label < len(names) else str(label)
