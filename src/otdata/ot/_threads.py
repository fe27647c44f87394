"""Thread count for small kernels.

Small tensor ops (vectors of a few thousand entries, ``eigh`` of a few hundred rows) pay an
OpenMP/LAPACK synchronisation cost per call that dominates their work, and on a busy machine
(more runnable threads than cores) each barrier can cost milliseconds (a timing is in
``benchmarks/RESULTS.md`` ("Measurements behind the code's choices")). Solvers wrap such phases in :func:`single_thread`.
"""

from __future__ import annotations

import contextlib

import torch

#: problems with up to this many cost entries are solved on one thread (per-op overhead dominates).
SINGLE_THREAD_ELEMENTS = 1 << 24


@contextlib.contextmanager
def single_thread(active: bool = True):
    """Run the block with ``torch.set_num_threads(1)`` (when ``active``), then restore."""
    prev = torch.get_num_threads()
    if not active or prev == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)
