"""How many threads hotham's numerics use, chosen once per process.

torch's intra-op pool and the BLAS/LAPACK of numpy and scipy (OpenBLAS, or MKL with PARDISO)
each start one thread per core by default. On a machine whose cores are already busy (a shared
node, a second job, an MPI rank per core) those threads fight for the same cores and spin-wait,
and a computation runs many times slower than on fewer threads (figures in
benchmarks/RESULTS.md). So hotham takes, in order:

1. the number given (``hotham --threads N``, :func:`set_threads(N)`);
2. ``OMP_NUM_THREADS``, then ``SLURM_CPUS_PER_TASK`` (a batch system's allocation);
3. the cores this process may run on, less the whole cores already busy (the integer part of
   the 1-minute load average), at least 1;

and applies it to torch and, through threadpoolctl, to every BLAS/OpenMP pool (interop threads: 1).
"""
from __future__ import annotations

import os

__all__ = ["thread_count", "set_threads", "threads_in_use"]

_LIMITS = None      # the threadpoolctl limiter, kept alive for the process
_SET = None         # the count the last set_threads applied


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return os.cpu_count() or 1


def thread_count(threads: int | None = None) -> int:
    """The thread count hotham uses (see the module docstring for the order of the sources)."""
    if threads is not None:
        if int(threads) < 1:
            from .errors import HothamError
            raise HothamError(f"--threads must be >= 1, got {threads}")
        return int(threads)
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            return int(v)
    cores = _cores()
    try:
        # whole cores kept busy by others: a fraction of a core (this shell, a short job) is
        # not worth halving the threads for; a core's worth of load is
        busy = int(os.getloadavg()[0])
    except OSError:
        busy = 0
    return max(1, min(cores, cores - busy))


def set_threads(threads: int | None = None) -> int:
    """Apply :func:`thread_count` to torch and the BLAS/OpenMP pools; returns the count."""
    global _LIMITS, _SET
    n = thread_count(threads)
    _SET = n
    import torch
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:            # only settable before the first parallel work
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return n
    _LIMITS = threadpool_limits(limits=n)
    return n


def threads_in_use() -> int:
    """The count :func:`set_threads` applied in this process, else :func:`thread_count` (what
    it would apply): the threads a computation may split among worker processes."""
    return _SET if _SET is not None else thread_count()
