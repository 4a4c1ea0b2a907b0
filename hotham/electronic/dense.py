"""The dense generalised eigenproblem: all bands of H(k) c = e S(k) c by LAPACK, batched over k
(Cholesky of S(k), then the standard Hermitian problem L^-1 H L^-H), and the rule that chooses
between it and sparse shift-invert (:func:`choose_method`).

An overlap that is not positive definite raises :class:`OverlapError` with the k-point and the
smallest eigenvalue of S(k), not a LAPACK trace.
"""
from __future__ import annotations

import numpy as np

from ..errors import HothamError
from .hk import as_kpoints

__all__ = ["DENSE_MAX", "OverlapError", "dense_eigh", "dense_batch", "choose_method"]

#: largest matrix solved densely when all bands are asked for (or by default when n is given)
DENSE_MAX = 2000


class OverlapError(HothamError, np.linalg.LinAlgError):
    """S(k) is not positive definite: names the k-point and the smallest eigenvalue."""

    def __init__(self, k, min_eig: float, source: str = ""):
        self.k = np.asarray(k, dtype=float)
        self.min_eig = float(min_eig)
        where = f" ({source})" if source else ""
        super().__init__(f"overlap S(k) is not positive definite at k = {np.array2string(self.k, precision=6)}"
                         f" (fractional): smallest eigenvalue {self.min_eig:.3e}{where}")


def _min_overlap_eig(S: np.ndarray) -> float:
    return float(np.linalg.eigvalsh(S)[0])


def dense_eigh(Hk: np.ndarray, Sk: np.ndarray, kpts, vectors: bool = False, source: str = ""):
    """Batched H c = e S c for dense [nk, n, n] matrices. Returns (e [nk, n], c [nk, n, n] or None)."""
    Hk = 0.5 * (Hk + np.conj(np.swapaxes(Hk, -1, -2)))
    Sk = 0.5 * (Sk + np.conj(np.swapaxes(Sk, -1, -2)))
    try:
        L = np.linalg.cholesky(Sk)
    except np.linalg.LinAlgError:
        # find the offending k-point for the message
        for q in range(len(Sk)):
            try:
                np.linalg.cholesky(Sk[q])
            except np.linalg.LinAlgError:
                raise OverlapError(as_kpoints(kpts)[q], _min_overlap_eig(Sk[q]), source) from None
        raise
    n = Hk.shape[-1]
    eye = np.broadcast_to(np.eye(n, dtype=Hk.dtype), Hk.shape)
    Linv = np.linalg.solve(L, eye)                       # L^-1, batched (triangular, small n)
    A = Linv @ Hk @ np.conj(np.swapaxes(Linv, -1, -2))
    A = 0.5 * (A + np.conj(np.swapaxes(A, -1, -2)))
    if not vectors:
        return np.linalg.eigvalsh(A), None
    e, y = np.linalg.eigh(A)
    c = np.conj(np.swapaxes(Linv, -1, -2)) @ y           # c = L^-H y
    return e, c


def dense_batch(size: int) -> int:
    """k-points per batch of the dense solver for a ``size`` x ``size`` problem: about 200 MB of
    complex matrices in flight (eight per k: H, S, the Cholesky factor, its inverse, ...)."""
    return max(1, int(2e8 // (16 * size * size * 4)))


def choose_method(size: int, n=None, n_below=None, n_above=None, dense_max: int = DENSE_MAX,
                  method: str = "auto") -> str:
    """"dense" or "sparse": the one rule of :func:`hotham.electronic.solve.solve` (and of the
    memory plan of :mod:`hotham.electronic.kparallel`). ``method`` other than "auto" is kept.
    All bands (``n`` None, no ``n_below`` / ``n_above``): dense; otherwise dense when the
    ``size`` x ``size`` problem is at most ``dense_max``, sparse above."""
    if method != "auto":
        return method
    if n_below is not None or n_above is not None:
        return "dense" if size <= dense_max else "sparse"
    return "dense" if (n is None or size <= dense_max) else "sparse"
