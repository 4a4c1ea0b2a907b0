"""How many threads hotham's numerics use, chosen once per process.

torch's intra-op pool and the BLAS/LAPACK of numpy and scipy (OpenBLAS, or MKL with PARDISO)
each start one thread per core by default. On a machine whose cores are already busy (a shared
node, a second job, an MPI rank per core) those threads fight for the same cores and spin-wait,
and a computation runs many times slower than on fewer threads (figures in
benchmarks/RESULTS.md). So hotham takes, in order:

1. the number given (``hotham --threads N``, :func:`set_threads(N)`);
2. ``OMP_NUM_THREADS``, then ``SLURM_CPUS_PER_TASK`` (a batch system's allocation);
3. the cores this process may run on, less those busy *now*: the busy share of each of them
   over a short sample of ``/proc/stat`` (:data:`SAMPLE_S`), summed, a core counted from
   :data:`BUSY_CORE` of one (else the runnable count of ``/proc/loadavg`` less this process),
   at least 1. Not the 1-minute load average: it lags a minute behind and still counts
   hotham's own previous command, so commands run one after another would each get one thread;

and applies it to torch and, through threadpoolctl, to every BLAS/OpenMP pool (interop threads: 1).
:func:`threads_reason` says which source gave the count; the progress output of a command
(:class:`hotham.progress.Progress`) prints it once.
"""
from __future__ import annotations

import os
import time

__all__ = ["thread_count", "set_threads", "threads_in_use", "threads_reason", "busy_cores"]

_LIMITS = None      # the threadpoolctl limiter, kept alive for the process
_SET = None         # the count the last set_threads applied
_REASON = None      # why: the text of the last thread_count

#: seconds over which /proc/stat is sampled
SAMPLE_S = 0.1
#: seconds for which a sample is reused (one process asks again: threads_in_use, a second command)
SAMPLE_REUSE_S = 10.0
_SAMPLED = None     # (time.monotonic(), cpus, busy) of the last sample of busy_cores
#: a core counts as busy from this share of it: a shell or a short job (a fraction of a core) is
#: not worth halving the threads for, a running computation is
BUSY_CORE = 0.75


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _cpu_times(text: str, cpus) -> dict[int, tuple[int, int]]:
    """{cpu: (busy jiffies, total jiffies)} of the ``cpuN`` lines of /proc/stat for ``cpus``
    (idle and iowait count as idle)."""
    out = {}
    for line in text.splitlines():
        name, *fields = line.split() or [""]
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit() or int(name[3:]) not in cpus:
            continue
        t = [int(x) for x in fields[:8]]
        idle = t[3] + (t[4] if len(t) > 4 else 0)
        out[int(name[3:])] = (sum(t) - idle, sum(t))
    return out


def busy_cores(cpus=None, *, read=_read, sample_s: float | None = None) -> float | None:
    """Cores' worth of work running now on ``cpus`` (default: those this process may use): the
    busy share of each over ``sample_s`` seconds of /proc/stat, summed; else the runnable count
    of /proc/loadavg (4th field, "running/total") less this process; None when neither is
    readable (not Linux). ``read(path)`` returns a file's text (tests pass fake /proc files);
    with the real files, a sample of the same cpus less than :data:`SAMPLE_REUSE_S` old is reused."""
    global _SAMPLED
    cpus = set(_affinity() if cpus is None else cpus)
    if read is _read and _SAMPLED is not None and _SAMPLED[1] == cpus and \
            time.monotonic() - _SAMPLED[0] < SAMPLE_REUSE_S:
        return _SAMPLED[2]
    busy = _measure(cpus, read, SAMPLE_S if sample_s is None else sample_s)
    if read is _read:
        _SAMPLED = (time.monotonic(), cpus, busy)
    return busy


def _measure(cpus: set, read, sample_s: float) -> float | None:
    try:
        first = _cpu_times(read("/proc/stat"), cpus)
        time.sleep(sample_s)
        second = _cpu_times(read("/proc/stat"), cpus)
        shares = [(second[c][0] - first[c][0]) / (second[c][1] - first[c][1])
                  for c in second if c in first and second[c][1] > first[c][1]]
        if shares:
            return float(sum(shares))
    except (OSError, ValueError, IndexError):
        pass
    try:
        running = int(read("/proc/loadavg").split()[3].split("/")[0])
        return float(max(0, running - 1))
    except (OSError, ValueError, IndexError):
        return None


def _affinity() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:          # not on Linux
        return list(range(os.cpu_count() or 1))


def _cores() -> int:
    return len(_affinity())


def thread_count(threads: int | None = None) -> int:
    """The thread count hotham uses (see the module docstring for the order of the sources);
    :func:`threads_reason` then says which source gave it."""
    global _REASON
    if threads is not None:
        if int(threads) < 1:
            from .errors import HothamError
            raise HothamError(f"--threads must be >= 1, got {threads}")
        _REASON = f"{int(threads)} thread(s), as given (--threads)"
        return int(threads)
    for var in ("OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"):
        v = os.environ.get(var, "").strip()
        if v.isdigit() and int(v) > 0:
            _REASON = f"{int(v)} thread(s), from ${var}"
            return int(v)
    cores = _cores()
    busy = busy_cores()
    # whole cores kept busy by others: a fraction of a core (this shell, a short job) is not
    # worth halving the threads for; most of a core is
    whole = 0 if busy is None else int(busy + 1.0 - BUSY_CORE)
    n = max(1, min(cores, cores - whole))
    seen = "load not readable" if busy is None else f"{busy:.1f} of them busy now"
    _REASON = f"{n} thread(s): {cores} core(s), {seen} (hotham --threads N to choose)"
    return n


def threads_reason() -> str | None:
    """How the last :func:`thread_count` chose (e.g. "2 thread(s): 2 core(s), 0.1 of them busy
    now"), or None before the first."""
    return _REASON


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
