"""The generalised eigenproblem H(k) c = e S(k) c: the entry point (:func:`solve`,
:func:`eigenvalues`) that picks how to solve it and returns :class:`Eigen`.

* dense (:mod:`hotham.electronic.dense`): LAPACK, all bands, batched over k. Used when all bands
  are wanted, or ``n`` is given but the matrix size is at most ``dense_max``
  (:func:`~hotham.electronic.dense.choose_method`, the one rule).
* sparse shift-invert (:mod:`hotham.electronic.shift_invert`): the ``n`` eigenpairs nearest a
  target energy, one factorisation of H(k) - shift S(k) per k, iterated by block Davidson
  (``eigensolver="davidson"``, the default, :mod:`hotham.electronic.davidson`) or ARPACK.
* band-edge states (``n_below`` / ``n_above``, :mod:`hotham.electronic.band_edge_states`): the
  states just below E_F and from it up, from one factorisation at E_F per k.
* ``processes`` > 1: the k-points in worker processes (:mod:`hotham.electronic.kparallel`, a
  process pool that runs :func:`solve` on chunks of k-points).

An overlap that is not positive definite raises :class:`~hotham.electronic.dense.OverlapError`
with the k-point and the smallest eigenvalue of S(k), not a LAPACK trace.

Collinear spin: ``channel=0`` / ``channel=1`` solve one channel; ``channel=None`` (the default) solves
both and concatenates them along the band axis, up bands first (each half ascending), so a
collinear operator with N orbitals gives 2N bands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HothamError
from ..operator import BlockOperator
from .band_edge_states import band_edge_states
from .dense import DENSE_MAX, OverlapError, choose_method, dense_batch, dense_eigh  # noqa: F401  (OverlapError: re-exported)
from .ghosts import canonical_eigh, s_quotient
from .hk import Assembler, as_kpoints
from .kparallel import solve_parallel
from .occupation import spin_channels
from .shift_invert import ShiftInvert, SolverError  # noqa: F401  (SolverError: re-exported)

__all__ = ["solve", "eigenvalues", "Eigen", "DENSE_MAX"]


@dataclass
class Eigen:
    """Eigenpairs at a set of k-points.

    energies : float [nk, nb], eV, ascending per k
    vectors : complex [nk, n, nb] or None (columns S-orthonormal: c^H S c = 1)
    kpts : float [nk, 3], fractional
    channel : collinear channel of every band (collinear ``channel=None``: [nb] with 0 then 1), or None
    processes : the worker processes that solved them (``solve(..., processes=P)`` starts at most P)
    slices : sparse ``n_below`` / ``n_above`` solves: for every k, the list of its shift-invert
        slices (collinear: both channels' in turn), each a dict with ``shift`` (eV), ``states``,
        ``t_factor``, ``t_iterate`` (s), ``iterations`` and ``factor_mflop`` (what each band edge
        cost); else None
    s_quotient : float [nk, nb], c^H S c / c^H c of every state (small: in S's near-null space,
        see :mod:`hotham.electronic.ghosts`): from every sparse solve, from a dense one when
        vectors or ``ghosts`` were asked for; else None
    dropped : canonical orthogonalisation (``canonical=``): int [nk], S eigenvectors dropped at
        every k (their bands are NaN, last); else None
    """
    energies: np.ndarray
    vectors: np.ndarray | None
    kpts: np.ndarray
    channel: np.ndarray | None = None
    processes: int = 1
    slices: list | None = None
    s_quotient: np.ndarray | None = None
    dropped: np.ndarray | None = None



def solve(op: BlockOperator, kpts, *, n: int | None = None, around: float | None = None,
          n_below: int | None = None, n_above: int | None = None,
          channel: int | None = None, vectors: bool = False, dense_max: int = DENSE_MAX,
          method: str = "auto", backend: str = "auto", precision: str = "auto",
          eigensolver: str = "auto", progress=False, processes: int = 1,
          memory_gb: float | None = None, ghosts: bool = False, canonical: float | None = None) -> Eigen:
    """Eigenpairs of H(k) c = e S(k) c at fractional ``kpts`` [nk, 3].

    ``n=None``: all bands (dense). Else the ``n`` states nearest ``around`` (eV, default
    ``op.fermi_level``): dense (then cut) when the matrix is at most ``dense_max``, otherwise
    sparse shift-invert (``method`` "dense" / "sparse" forces one; ``backend`` picks the sparse
    factorisation, see :mod:`hotham.electronic.factor`; ``eigensolver`` "davidson" or "arpack" and
    ``precision``, see :class:`ShiftInvert`). Collinear operators: see the
    module docstring (``channel=None`` concatenates up and down). ``progress``: a bar over the
    k-points of the sparse solver, with its ETA, on stderr (a flag or a
    :class:`hotham.progress.Progress`). Returns :class:`Eigen`.

    ``n_below`` / ``n_above`` (instead of ``n``): the states just below E_F (``around``, default
    ``op.fermi_level``) and from it up, at every k: the band edges of an insulator, whatever
    the gap, or the states around E_F of a metal (:func:`~hotham.electronic.band_edge_states.band_edge_states`: one shift at E_F, whose
    slice takes states from each side; along a path each k starts from the previous k's vectors).

    ``processes`` > 1: the k-points in contiguous chunks, one per worker process, at most as
    many processes as the memory budget ``memory_gb`` (GB, default the machine's available
    memory) holds, the threads shared among them (:func:`hotham.electronic.kparallel.solve_parallel`:
    the rule, and the errors of a worker). The same result, in the order of ``kpts``.

    ``ghosts``: also the S quotient of every state (``Eigen.s_quotient``, what
    :func:`hotham.electronic.ghosts.warn_ghosts` flags); sparse solves always give it, dense ones
    then compute the eigenvectors. ``canonical``: a threshold (e.g.
    :data:`hotham.electronic.ghosts.CANONICAL_THRESHOLD`): dense solves by canonical
    orthogonalisation, S eigenvectors below it dropped (``Eigen.dropped`` per k; those bands NaN,
    last); only with the dense solver.
    """
    if canonical is not None and (method == "sparse" or n_below is not None or n_above is not None
                                  or (n is not None and method == "auto" and Assembler(op).size > dense_max)):
        raise HothamError("canonical orthogonalisation (canonical=) needs the dense solver (all bands, or n on "
                          "a matrix of at most dense_max)")
    if processes != 1:
        return solve_parallel(solve, op, kpts, processes=processes, memory_gb=memory_gb, progress=progress,
                              n=n, around=around, n_below=n_below, n_above=n_above, channel=channel,
                              vectors=vectors, dense_max=dense_max, method=method, backend=backend,
                              precision=precision, eigensolver=eigensolver, ghosts=ghosts, canonical=canonical)
    if n_below is not None or n_above is not None:
        if n is not None:
            raise HothamError("give n (states nearest `around`) or n_below / n_above (around E_F), not both")
        n_below, n_above = int(n_below or 0), int(n_above or 0)
        if n_below < 0 or n_above < 0 or n_below + n_above < 1:
            raise HothamError(f"n_below = {n_below}, n_above = {n_above}: at least one state, none negative")
        return _solve_band_edges(op, kpts, around, n_below, n_above, channel, vectors, dense_max, method,
                                 dict(backend=backend, precision=precision, eigensolver=eigensolver), progress, ghosts)
    from ..progress import Progress
    progress = Progress.of(progress, "bands")
    for name, X in (("Hamiltonian (H)", op.H), ("overlap (S)", op.S)):
        if X is None:
            raise HothamError(f"{op.source or 'operator'}: no {name} blocks to diagonalise")
    k = as_kpoints(kpts)
    asm = Assembler(op)
    size = asm.size
    chans = spin_channels(op, channel)
    if n is not None:
        n = int(n)
        if n < 1 or n > size:
            raise HothamError(f"n = {n} states requested, the problem has {size}")
    method = choose_method(size, n, None, None, dense_max, method)
    if method == "sparse" and n is None:
        raise HothamError("the sparse solver needs n (number of states near `around`)")
    target = op.fermi_level if around is None else float(around)
    if n is not None and not np.isfinite(target):
        raise HothamError("n states near `around` requested but `around` is not given and the operator "
                          f"has no Fermi level ({op.source or 'operator'})")
    E, C, Q, D = [], [], [], []
    for s in chans:
        if method == "dense":
            e_all, c_all, q_all, d_all = [], [], [], []
            batch = dense_batch(size)                             # bound memory of the batch
            for q0 in range(0, len(k), batch):
                kq = k[q0:q0 + batch]
                Hq, Sq = asm.dense(kq, "H", s), asm.dense(kq, "S")
                if canonical is not None:
                    e, c, dropped = canonical_eigh(Hq, Sq, canonical, vectors or ghosts)
                    d_all.append(dropped)
                else:
                    e, c = dense_eigh(Hq, Sq, kq, vectors or ghosts, op.source)
                quot = None if c is None else s_quotient(c)
                if n is not None:
                    idx = _nearest(e, target, n)
                    e = np.take_along_axis(e, idx, 1)
                    if c is not None:
                        c = np.take_along_axis(c, idx[:, None, :], 2)
                        quot = np.take_along_axis(quot, idx, 1)
                e_all.append(e)
                c_all.append(c)
                q_all.append(quot)
            E.append(np.concatenate(e_all))
            C.append(np.concatenate(c_all) if vectors else None)
            Q.append(np.concatenate(q_all) if q_all[0] is not None else None)
            D.append(np.concatenate(d_all) if d_all else None)
        elif method == "sparse":
            si = ShiftInvert(op, target, asm, channel=s, backend=backend, precision=precision,
                             eigensolver=eigensolver)
            what = "k-points" + (f" (channel {s})" if len(chans) > 1 else "")
            es, cs, qs = [], [], []
            for kq in progress.bar(k, what):
                e, c = si.solve(kq, n, vectors)
                es.append(e)
                cs.append(c)
                qs.append(si.last_quotient)
            E.append(np.stack(es))
            C.append(np.stack(cs) if vectors else None)
            Q.append(np.stack(qs))
        else:
            raise HothamError(f"unknown method {method!r} (auto, dense, sparse)")
    energies = np.concatenate(E, axis=1)
    vecs = np.concatenate(C, axis=2) if vectors else None
    quotient = np.concatenate(Q, axis=1) if all(q is not None for q in Q) else None
    dropped = np.max(D, axis=0) if D and all(d is not None for d in D) else None
    spin_idx = np.repeat(chans, [E[0].shape[1]] * len(chans)) if op.spin == "collinear" else None
    return Eigen(energies, vecs, k, spin_idx, s_quotient=quotient, dropped=dropped)


def _solve_band_edges(op, kpts, around, n_below, n_above, channel, vectors, dense_max, method, solver_kw,
                      progress, ghosts=False) -> Eigen:
    """:func:`solve` with ``n_below`` / ``n_above``."""
    from ..progress import Progress
    progress = Progress.of(progress, "bands")
    fermi = op.fermi_level if around is None else float(around)
    if not np.isfinite(fermi):
        raise HothamError(f"{op.source or 'operator'} has no Fermi level for n_below / n_above: find it first "
                          "(hotham.electronic.find_fermi_level) or give `around`")
    k = as_kpoints(kpts)
    asm = Assembler(op)
    method = choose_method(asm.size, None, n_below, n_above, dense_max, method)
    chans = spin_channels(op, channel)
    nb = n_below + n_above
    E, C, Q, slices = [], [], [], None if method == "dense" else [[] for _ in k]
    for s in chans:
        if method == "dense":
            eig = solve(op, k, channel=s, vectors=vectors, method="dense", ghosts=ghosts)
            e = eig.energies
            first = np.sum(e < fermi, axis=1)[:, None] - n_below
            if first.min() < 0 or first.max() + nb > e.shape[1]:
                raise HothamError(f"fewer than {n_below} bands below or {n_above} above E_F = {fermi:.4f} eV")
            idx = first + np.arange(nb)
            E.append(np.take_along_axis(e, idx, 1))
            C.append(np.take_along_axis(eig.vectors, idx[:, None, :], 2) if vectors else None)
            Q.append(None if eig.s_quotient is None else np.take_along_axis(eig.s_quotient, idx, 1))
            continue
        si = ShiftInvert(op, fermi, asm, channel=s, **solver_kw)
        es, cs, qs, X0 = [], [], [], None
        for q in progress.bar(range(len(k)), "k-points (band edges)"):
            e, c, X0 = band_edge_states(si, k[q], fermi, n_below, n_above, vectors, X0=X0, log=slices[q],
                                        quotients=qs)
            es.append(e)
            cs.append(c)
        E.append(np.stack(es))
        C.append(np.stack(cs) if vectors else None)
        Q.append(np.stack(qs))
    energies = np.concatenate(E, axis=1)
    vecs = np.concatenate(C, axis=2) if vectors else None
    quotient = np.concatenate(Q, axis=1) if all(q is not None for q in Q) else None
    spin_idx = np.repeat(chans, [nb] * len(chans)) if op.spin == "collinear" else None
    return Eigen(energies, vecs, k, spin_idx, slices=slices, s_quotient=quotient)


def _nearest(e: np.ndarray, target: float, n: int) -> np.ndarray:
    """Indices [nk, n] of the n eigenvalues nearest target, kept in ascending energy order."""
    idx = np.argsort(np.abs(e - target), axis=1, kind="stable")[:, :n]
    return np.sort(idx, axis=1)


def eigenvalues(op: BlockOperator, kpts, *, n: int | None = None, around: float | None = None,
                channel: int | None = None, **kwargs) -> np.ndarray:
    """Band energies (eV) at fractional k-points ``kpts`` [nk, 3], shape [nk, nbands].

    All bands (dense LAPACK) when ``n`` is None; else the ``n`` eigenvalues nearest ``around``
    (eV, default ``op.fermi_level``), through sparse shift-invert for matrices larger than
    :data:`DENSE_MAX`; or with ``n_below`` / ``n_above`` the states just below and above E_F
    (band edges, :func:`solve`). Collinear operators: ``channel`` 0/1 picks a channel, ``None`` gives
    [up bands | down bands] concatenated (2 x nbands). SOC: 2N spinor bands.
    """
    return solve(op, kpts, n=n, around=around, channel=channel, **kwargs).energies
