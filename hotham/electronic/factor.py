"""Sparse LDL^T / LU factorisations of H(k) - sigma S(k) for shift-invert.

Two backends behind one call, :func:`factorizer`:

* ``"pardiso"`` (used when the optional ``pypardiso`` wheel, i.e. Intel MKL, is installed):
  supernodal LDL^T with METIS ordering, real symmetric indefinite (MKL mtype -2) at real
  k-points and complex Hermitian indefinite (mtype -4) elsewhere; only the upper triangle is
  passed. The symbolic analysis (ordering) is done once and reused for every later matrix of
  the same pattern (all k), only the numerical factorisation is repeated.
* ``"superlu"`` (scipy, always there): LU with the symmetric-mode MMD(A^T + A) column order of
  the first matrix reused at later k.

Both return a solver object with ``factor(A)`` and ``solve(b)``.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def have_pardiso() -> bool:
    try:
        import pypardiso  # noqa: F401
        pypardiso.PyPardisoSolver()
    except Exception:  # ImportError, or MKL's runtime missing
        return False
    return True


class SuperLUFactor:
    """SuperLU with the fill-reducing column order of the first matrix kept for later ones."""

    name = "superlu"

    def __init__(self):
        self.perm = None
        self.lu = None

    def factor(self, A):
        A = sp.csc_matrix(A)
        opts = dict(options=dict(SymmetricMode=True), diag_pivot_thresh=0.0)
        if self.perm is None:
            self.lu = spla.splu(A, permc_spec="MMD_AT_PLUS_A", **opts)
            self.perm = self.lu.perm_c.copy()
            self.inv = np.empty_like(self.perm)
            self.inv[self.perm] = np.arange(len(self.perm))
            self.permuted = False
        else:
            p = self.perm
            self.lu = spla.splu(sp.csc_matrix(A[p][:, p]), permc_spec="NATURAL", **opts)
            self.permuted = True
        return self

    def solve(self, b):
        if not self.permuted:
            return self.lu.solve(b)
        return self.lu.solve(np.ascontiguousarray(b[self.perm]))[self.inv]

    @property
    def factor_nnz(self) -> int:
        return int(self.lu.L.nnz + self.lu.U.nnz)


class PardisoFactor:
    """MKL PARDISO through pypardiso's ctypes binding, symmetric/Hermitian indefinite."""

    name = "pardiso"

    def __init__(self):
        import pypardiso
        self._cls = pypardiso.PyPardisoSolver
        self.solver = None
        self.mtype = None
        self.U = None

    def factor(self, A):
        real = not np.iscomplexobj(A.data)
        mtype = -2 if real else -4
        U = sp.triu(A, format="csr")
        U.sort_indices()
        if self.solver is None or mtype != self.mtype or U.nnz != (self.U.nnz if self.U is not None else -1):
            if self.solver is not None:
                self.solver.free_memory(everything=True)
            self.solver = self._cls(mtype=mtype)
            self.mtype = mtype
            self._call(U, np.zeros((U.shape[0], 1), dtype=U.dtype), phase=11)   # ordering + symbolic
        self._call(U, np.zeros((U.shape[0], 1), dtype=U.dtype), phase=22)       # numerical factorisation
        self.U = U
        return self

    def _call(self, U, b, phase):
        s = self.solver
        s.set_iparm(12, 0)      # CSR (not transposed)
        s.set_phase(phase)
        b = np.asfortranarray(b)
        return s._call_pardiso(U, b)

    def solve(self, b):
        b = np.asarray(b, dtype=self.U.dtype)
        return self._call(self.U, b, phase=33)

    @property
    def factor_nnz(self) -> int:
        return int(self.solver.get_iparm(18)) if self.solver is not None else 0

    def __del__(self):
        try:
            if self.solver is not None:
                self.solver.free_memory(everything=True)
        except Exception:
            pass


def factorizer(backend: str = "auto"):
    """A fresh factorisation object: ``"pardiso"``, ``"superlu"`` or ``"auto"`` (PARDISO if
    available)."""
    if backend == "auto":
        backend = "pardiso" if have_pardiso() else "superlu"
    if backend == "pardiso":
        return PardisoFactor()
    if backend == "superlu":
        return SuperLUFactor()
    raise ValueError(f"unknown sparse backend {backend!r} (auto, pardiso, superlu)")
