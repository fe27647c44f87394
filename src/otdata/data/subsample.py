"""Seeded, stratified subsampling: keep class proportions when taking `n` of a labeled set."""

from __future__ import annotations

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
