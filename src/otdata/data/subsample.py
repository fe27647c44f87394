"""Seeded, stratified subsampling and splitting of a labeled set: keep class proportions when taking
`n` of it (`stratified_indices`, `sample`), take the same `k` of every class (`per_class_indices`, a
k-shot draw), deal its rows into disjoint parts (`disjoint_parts`) and
carve a sub-task out of it (`carve`: some classes, one part, a train/test split)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def stratified_indices(y: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """Indices of `n` items of `y`, drawn per class in proportion to the class sizes.

    Every class present in `y` keeps at least one item when `n` allows it. The same `(y, n, seed)`
    always gives the same indices, sorted ascending. Asking for `n >= len(y)` returns all indices.
    """
    total = len(y)
    if n >= total:
        return torch.arange(total)
    if n <= 0:
        raise ValueError(f"max_samples must be positive, got {n}.")
    generator = torch.Generator().manual_seed(seed)
    classes, counts = torch.unique(y, return_counts=True)
    quota = torch.floor(counts.double() * n / total).long()
    if n >= len(classes):
        quota = quota.clamp(min=1)
    # hand out what rounding left, largest remainders first
    remainder = counts.double() * n / total - quota.double()
    for i in torch.argsort(remainder, descending=True)[: max(n - int(quota.sum()), 0)]:
        quota[i] += 1
    while int(quota.sum()) > n:  # the min-1 rule may overshoot by a few
        quota[torch.argmax(quota)] -= 1
    chosen = []
    for c, k in zip(classes, quota):
        members = torch.nonzero(y == c).flatten()
        perm = torch.randperm(len(members), generator=generator)[: int(k)]
        chosen.append(members[perm])
    return torch.sort(torch.cat(chosen)).values


def per_class_indices(y: torch.Tensor, k: int, seed: int = 0,
                      class_names: Sequence[str] | None = None) -> torch.Tensor:
    """Indices of ``k`` items of every class of ``y``, drawn at random (seeded), sorted ascending.

    Unlike `stratified_indices`, which keeps class proportions, every class gets the same ``k``: the
    few-shot protocol. The same ``(y, k, seed)`` always gives the same indices, and a larger ``k``
    with the same seed keeps the items of a smaller one (each class is one seeded shuffle, cut at
    ``k``). A class with fewer than ``k`` items is refused, naming it (by ``class_names[c]`` when
    given) and the largest ``k`` that works."""
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"samples per class must be a positive integer, got {k!r}.")
    k = int(k)
    classes, counts = torch.unique(y, return_counts=True)
    smallest = int(torch.argmin(counts))
    if k > int(counts[smallest]):
        c = int(classes[smallest])
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        most = int(counts[smallest])
        raise ValueError(f"{k} samples per class were asked for, but class {name!r} has only {most} "
                         f"items; choose at most {most} per class (k <= {most}, the size of the smallest class).")
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        members = torch.nonzero(y == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.sort(torch.cat(chosen)).values


def sample(y: torch.Tensor, n: int | None, seed: int) -> torch.Tensor:
    """A stratified, seeded subsample of `n` indices of `y` (all of them when `n` is None)."""
    return torch.arange(len(y)) if n is None else stratified_indices(y, int(n), seed=seed)


def disjoint_parts(y: torch.Tensor, parts: int, seed: int = 0) -> torch.Tensor:
    """Part index `0..parts-1` of every row: rows are shuffled (seeded) within their class and dealt
    out in turn, so every part has about the same class proportions and no two parts share a row."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}.")
    generator = torch.Generator().manual_seed(seed)
    part = torch.empty(len(y), dtype=torch.long)
    for c in torch.unique(y):
        members = torch.nonzero(y == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        part[members] = torch.arange(len(members)) % parts
    return part


def carve(X: torch.Tensor, y: torch.Tensor, class_names: Sequence[str], *,
          classes: Sequence[int] | None = None, part: int = 0, parts: int = 1,
          test_fraction: float = 0.5, seed: int = 0):
    """A sub-task of one labeled split: part `part` of `parts` disjoint parts of its rows (see
    `disjoint_parts`), only the rows of `classes` (relabelled `0..k-1` in the given order; None =
    all), then per class the first `test_fraction` of a seeded shuffle as test, the rest as train.

    Sub-tasks with the same `parts` and `seed` never share a row when they use different parts or
    disjoint classes. Returns `((X_train, y_train), (X_test, y_test), names)`.
    """
    if not 0 <= part < parts:
        raise ValueError(f"part must be in 0..{parts - 1}, got {part}.")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    classes = list(range(len(class_names))) if classes is None else [int(c) for c in classes]
    unknown = [c for c in classes if not 0 <= c < len(class_names)]
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct indices of {list(class_names)}, got {classes}.")
    mine = disjoint_parts(y, parts, seed) == part
    generator = torch.Generator().manual_seed(seed + 1)
    train, test = [], []
    for new, old in enumerate(classes):
        rows = torch.nonzero(mine & (y == old)).flatten()
        rows = rows[torch.randperm(len(rows), generator=generator)]
        n_test = int(round(test_fraction * len(rows)))
        test.append((rows[:n_test], new))
        train.append((rows[n_test:], new))

    def gather(chunks):
        index = torch.cat([rows for rows, _ in chunks])
        labels = torch.cat([torch.full((len(rows),), new, dtype=torch.long) for rows, new in chunks])
        order = torch.argsort(index)
        return X[index[order]], labels[order]

    return gather(train), gather(test), [str(class_names[c]) for c in classes]
