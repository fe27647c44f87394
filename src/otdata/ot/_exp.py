"""Exponentials of log-domain scores, most of which underflow, at full vector speed.

On CPU, torch's vectorised ``exp`` leaves its fast path for inputs below the logarithm of the
smallest normal number (float32: about -87.3), several times slower; at a small epsilon most
kernel entries are such scores (timings in ``benchmarks/RESULTS.md`` ("Measurements behind the code's choices")). Clamping the
scores at that logarithm first keeps every input on the fast path. An entry that would have underflowed to zero, or to a
denormal, becomes ``exp(floor)``, about 1.4 times the smallest normal number: relative to its row's
largest entry (1 after the usual shift) it carries no mass that a marginal or a cost can register.
Other devices compute ``exp`` as is.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor


@functools.cache
def exp_floor(dtype: torch.dtype) -> float:
    """The smallest integer whose ``exp`` is a normal number of ``dtype`` (float32: -87)."""
    return float(math.ceil(math.log(torch.finfo(dtype).tiny)))


def exp_(T: Tensor) -> Tensor:
    """``T.exp_()`` with scores below :func:`exp_floor` raised to it first (CPU)."""
    if T.device.type == "cpu":
        T.clamp_(min=exp_floor(T.dtype))
    return T.exp_()


def exp(T: Tensor) -> Tensor:
    """Out-of-place :func:`exp_` (keeps autograd: below the floor the gradient is zero, as
    ``exp`` of such a score is zero to working precision anyway)."""
    if T.device.type == "cpu":
        T = T.clamp(min=exp_floor(T.dtype))
    return T.exp()
