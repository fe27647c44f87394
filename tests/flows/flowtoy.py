"""Toy labeled Gaussian datasets for the flow tests."""

import torch


def gaussians(means, n=30, scale=0.3, seed=0, labels=None):
    g = torch.Generator().manual_seed(seed)
    means = torch.as_tensor(means, dtype=torch.float32)
    C, d = means.shape
    X = torch.cat([torch.randn(n, d, generator=g) * scale + means[c] for c in range(C)])
    labels = list(range(C)) if labels is None else labels
    y = torch.tensor(labels).repeat_interleave(n)
    return X, y
