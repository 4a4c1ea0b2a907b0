"""k-points in parallel worker processes under a memory budget.

:func:`solve_parallel` (``solve(op, kpts, processes=P, memory_gb=M)``, which passes itself as the
function to run) splits the k-points into
contiguous chunks (contiguous, so that the warm start of each k from the previous one's vectors
still works inside a chunk; a chunk's first k starts cold), one per worker process, and joins the
results in the order of ``kpts``. The workers are started with multiprocessing's "spawn" context
(a fresh interpreter: no copy of the parent's MKL / OpenMP thread state), so a script that calls
it must guard its top level with ``if __name__ == "__main__":``. Each worker gets the operator
once, pickled (cheaper than a temporary hotham file: for a 432-atom MoS2 cell, 88 MB of blocks,
pickling takes 0.06 s each way, writing and reading HDF5 0.14 s + 0.18 s), and
``threads // processes`` threads (:func:`hotham.threads.set_threads`; ``threads`` is the count
this process uses).

The memory rule (:func:`plan_processes`). The number of processes is
``min(processes, number of k-points, floor(budget / per-process))``, at least 1 (then the run is
serial), where the budget is ``memory_gb`` or the machine's available memory
(:func:`available_memory_gb`, /proc/meminfo's MemAvailable) and one worker process needs

* :data:`WORKER_BASE_GB`: the interpreter with numpy, scipy, torch and hotham imported
  (a spawned worker's resident memory, measured: 0.33 GB);
* three times the pickled operator: the bytes received, the operator unpickled from them, and
  the assembler's pattern and slot maps built from it (about as large);
* the working set of one k-point. Sparse shift-invert: twice the factor of H(k) - shift S(k)
  (:data:`FACTOR_COPIES`: a path through real and complex k-points keeps a factor of each),
  measured by factorising once in the parent before the workers start, at the first complex
  k-point of the list (PARDISO's own report of its peak memory, or SuperLU's L and U entries),
  plus :data:`BYTES_PER_ENTRY` (200, measured) per stored entry of H(k), plus ten blocks of the
  iteration's vectors (size x states x 16 bytes). Dense: eight size x size complex matrices per
  k of a batch (H, S, the Cholesky factor, its inverse, the reduced matrix, its vectors, the
  result).
* the chunk's results: energies, and eigenvectors when asked for (twice: the worker's and
  their pickled copy).

An error in a worker comes back as :class:`KPointError`, naming the k-point (its index in
``kpts`` and its coordinates) when the failure happened inside the loop over k-points, else the
chunk; a worker killed outright (out of memory) names the chunk it held.
"""
from __future__ import annotations

import math
import os
import pickle

import numpy as np

from ..errors import HothamError
from ..progress import Progress, proc_field_gb
from .band_edge_states import band_edge_slice
from .dense import DENSE_MAX, choose_method, dense_batch
from .hk import Assembler, as_kpoints, is_real_kpoint
from .occupation import spin_channels
from .shift_invert import ShiftInvert

__all__ = ["solve_parallel", "plan_processes", "chunk_bounds", "available_memory_gb", "KPointError",
           "WORKER_BASE_GB"]

#: resident memory of a spawned worker with numpy, scipy, torch and hotham imported, GB (measured)
WORKER_BASE_GB = 0.33

#: bytes per stored entry of H(k) while one k is solved, measured (peak resident memory of a
#: solve along a path, less the factors; 4500-orbital MoS2, SuperLU 218, PARDISO 160): H(k),
#: S(k) and K values, their index, the assembly's temporaries and the factorised selection of K
BYTES_PER_ENTRY = 200

#: factors alive at once: one for the real k-points (Gamma, zone boundary) and one for the
#: complex ones, each replaced only once its successor is built
FACTOR_COPIES = 2

#: size x states complex matrices the Davidson iteration holds (X, H X, S X, residuals,
#: corrections and their products)
VECTOR_MATRICES = 10


class KPointError(HothamError):
    """A worker process failed: ``index`` (position in the k list, or None when the failure is
    not tied to one k-point), ``kpoint`` (fractional, or None), ``chunk`` (start, stop) and
    ``worker_traceback`` (the worker's traceback, text)."""

    def __init__(self, message: str, index=None, kpoint=None, chunk=None, worker_traceback: str = ""):
        super().__init__(message)
        self.index, self.kpoint, self.chunk = index, kpoint, chunk
        self.worker_traceback = worker_traceback


def chunk_bounds(nk: int, chunks: int) -> list[tuple[int, int]]:
    """Contiguous (start, stop) index ranges splitting ``nk`` k-points into ``chunks`` parts
    whose lengths differ by at most one (the first ``nk % chunks`` one longer)."""
    if chunks < 1 or nk < chunks:
        raise HothamError(f"cannot split {nk} k-points into {chunks} chunks (1 to {nk})")
    sizes = np.full(chunks, nk // chunks)
    sizes[:nk % chunks] += 1
    stops = np.cumsum(sizes)
    return [(int(b - s), int(b)) for s, b in zip(sizes, stops)]


def available_memory_gb() -> float:
    """Memory available to new processes, GB: /proc/meminfo's MemAvailable (what can be
    allocated without swapping, page cache included), else the free physical pages."""
    available = proc_field_gb("/proc/meminfo", "MemAvailable")
    if available is not None:
        return available
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1024 ** 3


def _states(size: int, n, n_below, n_above) -> int:
    """States per k and channel a solve returns (sparse: the slice's, with band_edge_states' guards)."""
    if n_below is not None or n_above is not None:
        return band_edge_slice(int(n_below or 0), int(n_above or 0))[0]
    return size if n is None else int(n)


def plan_processes(op, kpts, processes: int, memory_gb: float | None = None, operator_bytes: int | None = None,
                   **solve_kw) -> dict:
    """How many worker processes :func:`solve_parallel` starts (the rule: module docstring).

    ``solve_kw``: the keywords of :func:`~hotham.electronic.solve.solve` (n, around, n_below,
    n_above, channel, vectors, dense_max, method, backend, precision, eigensolver).
    ``operator_bytes``: the pickled operator's size (default: pickled here). For the sparse
    solver this factorises H(k) - shift S(k) once at the first k-point (the factor's size).
    Returns {"processes", "per_process_gb", "budget_gb", "working_set_gb", "operator_gb"}.
    """
    k = as_kpoints(kpts)
    processes = int(processes)
    if processes < 1:
        raise HothamError(f"processes must be >= 1, got {processes}")
    budget = float(memory_gb) if memory_gb is not None else available_memory_gb()
    if budget <= 0:
        raise HothamError(f"memory budget must be positive, got {budget} GB")
    if operator_bytes is None:
        operator_bytes = len(pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL))
    asm = Assembler(op)
    size = asm.size
    n, n_below, n_above = solve_kw.get("n"), solve_kw.get("n_below"), solve_kw.get("n_above")
    vectors = bool(solve_kw.get("vectors", False))
    nchan = len(spin_channels(op, solve_kw.get("channel")))
    states = _states(size, n, n_below, n_above)
    bands = nchan * (size if (n is None and n_below is None and n_above is None) else
                     (int(n) if n is not None else int(n_below or 0) + int(n_above or 0)))
    if choose_method(size, n, n_below, n_above, solve_kw.get("dense_max", DENSE_MAX),
                     solve_kw.get("method", "auto")) == "dense":
        batch = dense_batch(size)                                 # the batch of solve's dense branch
        per_k = 8 * 16 * size * size
        work = lambda chunk: per_k * min(batch, chunk)            # noqa: E731
    else:
        target = solve_kw.get("around")
        target = op.fermi_level if target is None else float(target)
        si = ShiftInvert(op, target, asm, channel=spin_channels(op, solve_kw.get("channel"))[0],
                         backend=solve_kw.get("backend", "auto"), precision=solve_kw.get("precision", "auto"),
                         eigensolver=solve_kw.get("eigensolver", "auto"))
        # at a complex k when there is one: its factor is the larger (real ones take half)
        probe = next((q for q in k if not is_real_kpoint(op, q)), k[0])
        info = si.factorise(probe)
        fixed = (FACTOR_COPIES * info["factor_bytes"] + BYTES_PER_ENTRY * info["nnz"]
                 + VECTOR_MATRICES * 16 * size * states)
        del si
        work = lambda chunk: fixed                                 # noqa: E731

    def per_process(p: int) -> float:
        chunk = math.ceil(len(k) / p)
        results = chunk * bands * 8 + (2 * chunk * size * bands * 16 if vectors else 0)
        return WORKER_BASE_GB + (3 * operator_bytes + work(chunk) + results) / 1024 ** 3

    p = min(processes, len(k))
    while p > 1 and p * per_process(p) > budget:
        p -= 1
    return dict(processes=p, per_process_gb=per_process(p), budget_gb=budget,
                working_set_gb=work(math.ceil(len(k) / p)) / 1024 ** 3, operator_gb=operator_bytes / 1024 ** 3)


class _Where(Progress):
    """A silent progress whose loops remember the position reached: the failing k of a worker."""

    def __init__(self):
        super().__init__("worker", enabled=False)
        self.index = None

    def bar(self, iterable, what: str, total: int | None = None, leave: bool = True):
        for q, item in enumerate(iterable):
            self.index = q
            yield item
        self.index = None


_OP = None      # the worker's operator


def _start_worker(payload: bytes, threads: int) -> None:
    """Worker initialiser: its thread count (MKL's runtime loaded first, so that the limit
    reaches PARDISO's threads too) and the operator, unpickled once."""
    global _OP
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    from ..threads import set_threads
    from .factor import have_pardiso
    have_pardiso()
    set_threads(threads)
    _OP = pickle.loads(payload)


def _solve_chunk(run, start: int, kpts: np.ndarray, kw: dict):
    """One chunk in a worker: ("ok", ``run``'s result) or ("error", index in the whole k list or
    None, message)."""
    import traceback
    where = _Where()
    try:
        return "ok", run(_OP, kpts, progress=where, **kw)
    except Exception as exc:
        q = where.index
        if q is None and getattr(exc, "k", None) is not None:     # an error that names its k (OverlapError)
            hit = np.flatnonzero(np.all(np.isclose(kpts, np.asarray(exc.k, dtype=float).reshape(1, 3)), axis=1))
            q = int(hit[0]) if len(hit) else None
        return "error", None if q is None else start + q, f"{type(exc).__name__}: {exc}", traceback.format_exc()


def solve_parallel(run, op, kpts, *, processes: int, memory_gb: float | None = None, progress=False,
                   **solve_kw):
    """``run(op, kpts, progress=..., **solve_kw)`` (:func:`~hotham.electronic.solve.solve`, a
    module-level function: the workers import it by name) over ``kpts`` [nk, 3] in up to
    ``processes`` worker processes under a memory budget of ``memory_gb`` GB (default the
    available memory); see the module docstring for the rule. ``solve_kw``: solve's other
    keywords. Returns the :class:`~hotham.electronic.solve.Eigen` of the serial run (the same
    numbers, k in order: the chunks' results joined). Raises :class:`KPointError` when a worker
    fails."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool
    from dataclasses import replace
    from ..threads import threads_in_use
    k = as_kpoints(kpts)
    progress = Progress.of(progress, "bands")
    if int(processes) <= 1 or len(k) < 2:
        return run(op, k, progress=progress, **solve_kw)
    payload = pickle.dumps(op, protocol=pickle.HIGHEST_PROTOCOL)
    plan = plan_processes(op, k, processes, memory_gb, operator_bytes=len(payload), **solve_kw)
    p = plan["processes"]
    if p == 1:
        del payload
        return run(op, k, progress=progress, **solve_kw)
    threads = max(1, threads_in_use() // p)
    chunks = chunk_bounds(len(k), p)
    parts = [None] * p
    with progress.stage(f"{len(k)} k-points in {p} processes x {threads} threads "
                        f"({plan['per_process_gb']:.2f} GB each of a {plan['budget_gb']:.1f} GB budget)"):
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=p, mp_context=ctx, initializer=_start_worker,
                                 initargs=(payload, threads)) as pool:
            del payload
            futures = {pool.submit(_solve_chunk, run, a, k[a:b], solve_kw): c for c, (a, b) in enumerate(chunks)}
            try:
                for fut in progress.bar(as_completed(futures), "k-chunks", total=p):
                    c = futures[fut]
                    a, b = chunks[c]
                    try:
                        out = fut.result()
                    except BrokenProcessPool:
                        raise KPointError(f"a worker process died while solving k-points {a}..{b - 1} of {len(k)} "
                                          f"(killed, out of memory? the rule estimated {plan['per_process_gb']:.2f} "
                                          "GB per process: give fewer processes or a smaller memory budget)",
                                          chunk=(a, b)) from None
                    if out[0] == "error":
                        _, q, msg, trace = out
                        where = (f"k-point {q} of {len(k)} (k = {np.array2string(k[q], precision=6)}, fractional)"
                                 if q is not None else f"k-points {a}..{b - 1} of {len(k)}")
                        raise KPointError(f"{where} failed in a worker process: {msg}", index=q,
                                          kpoint=None if q is None else k[q].copy(), chunk=(a, b),
                                          worker_traceback=trace)
                    parts[c] = out[1]
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    vecs = np.concatenate([e.vectors for e in parts]) if solve_kw.get("vectors") else None
    slices = sum((e.slices for e in parts), []) if parts[0].slices is not None else None
    quotient = (np.concatenate([e.s_quotient for e in parts])
                if all(e.s_quotient is not None for e in parts) else None)
    dropped = np.concatenate([e.dropped for e in parts]) if all(e.dropped is not None for e in parts) else None
    return replace(parts[0], energies=np.concatenate([e.energies for e in parts]), vectors=vecs, kpts=k,
                   processes=p, slices=slices, s_quotient=quotient, dropped=dropped)
