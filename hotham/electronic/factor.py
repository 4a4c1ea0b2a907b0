"""Sparse LDL^T / LU factorisations of H(k) - shift S(k) for shift-invert.

Two backends behind one call, :func:`factorizer`:

* ``"pardiso"`` (used when the optional ``pypardiso`` wheel, i.e. Intel MKL, is installed):
  supernodal LDL^T with METIS ordering, real symmetric indefinite (MKL mtype -2) at real
  k-points and complex Hermitian indefinite (mtype -4) elsewhere; only the upper triangle is
  passed. The symbolic analysis (ordering) is done once and reused for every later matrix of
  the same pattern (all k), only the numerical factorisation is repeated.
* ``"superlu"`` (scipy, always there): LU with the symmetric-mode MMD(A^T + A) column order of
  the first matrix reused at later k.

Both return a solver object with ``factor(A)``, ``solve(b)`` and ``inertia()``: by Sylvester's
law of inertia the signs of the pivots D of A = P^T L D L^H P (P a permutation) are those of the
eigenvalues of A, so for A = H(k) - E S(k) with S positive definite the number of negative
pivots is the number of bands below E at k. PARDISO reports it (iparm 22/23); SuperLU factorises
with diagonal pivots only (symmetric mode, pivot threshold 0) and the same row and column order,
so its U = D L^H and the signs of diag(U) are the pivots' (diagonal scaling keeps the signs).
"""
from __future__ import annotations

import functools
import os

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


@functools.lru_cache(maxsize=None)
def have_pardiso() -> bool:
    """True when pypardiso and MKL's runtime load (the runtime's path is remembered, so later
    solvers skip pypardiso's slow search for it)."""
    # MKL's OpenMP threads spin 200 ms after every parallel region by default, holding the
    # cores that the dense algebra and sparse products between two PARDISO solves need
    # (the block iteration is faster with 0); a user's setting wins
    os.environ.setdefault("KMP_BLOCKTIME", "0")
    try:
        import pypardiso
        solver = pypardiso.PyPardisoSolver()
        os.environ.setdefault("PYPARDISO_MKL_RT", solver.libmkl._name)
    except Exception:  # ImportError, or MKL's runtime missing
        return False
    return True


class SuperLUFactor:
    """SuperLU with the fill-reducing column order of the first matrix kept for later ones."""

    name = "superlu"

    def __init__(self):
        self.perm = None
        self.lu = None

    def factor(self, A, upper: bool = False):
        if upper:
            raise ValueError("SuperLU needs the full matrix, not its upper triangle")
        A = sp.csc_matrix(A)
        self.dtype = A.dtype
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

    @property
    def memory_bytes(self) -> int:
        """Bytes the factor holds: the entries of L and U with their row indices, and the orderings."""
        lu = self.lu
        return int(self.factor_nnz * (self.dtype.itemsize + 4) + 16 * lu.shape[0])

    def inertia(self) -> tuple[int, int]:
        """(positive, negative) eigenvalues of the last Hermitian matrix factorised, from the
        signs of the diagonal of U. A row order other than the column order (a pivot taken
        off the diagonal, which the settings above only allow for a zero diagonal entry)
        breaks the congruence: RuntimeError then."""
        if not np.array_equal(self.lu.perm_r, self.lu.perm_c):
            raise RuntimeError("SuperLU pivoted off the diagonal: its factor gives no inertia")
        d = self.lu.U.diagonal().real
        return int(np.count_nonzero(d > 0)), int(np.count_nonzero(d < 0))


class PardisoFactor:
    """MKL PARDISO through pypardiso's ctypes binding, symmetric/Hermitian indefinite."""

    name = "pardiso"

    def __init__(self, precision: str = "double", inertia: bool = False):
        import pypardiso
        have_pardiso()
        if precision not in ("double", "single"):
            raise ValueError(f"precision must be 'double' or 'single', got {precision!r}")
        self.precision = precision
        self.want_inertia = inertia
        self._cls = pypardiso.PyPardisoSolver
        self.solver = None
        self.mtype = None
        self.U = None

    def factor(self, A, upper: bool = False):
        """Factorise the symmetric / Hermitian CSR matrix ``A`` (``upper=True``: A holds only its
        upper triangle, with sorted column indices)."""
        real = not np.iscomplexobj(A.data)
        mtype = -2 if real else -4
        U = A if upper else sp.triu(A, format="csr")
        U.sort_indices()
        same = (self.solver is not None and mtype == self.mtype and U.nnz == self.U.nnz
                and np.array_equal(U.indices, self.U.indices) and np.array_equal(U.indptr, self.U.indptr))
        if not same:
            if self.solver is not None:
                self.solver.free_memory(everything=True)
            self.solver = self._cls(mtype=mtype)
            self.mtype = mtype
            self._set_iparm()
            # 1-based CSR index arrays, kept for every later call (pypardiso rebuilds them per call)
            self.ia = (U.indptr + 1).astype(np.int32)
            self.ja = (U.indices + 1).astype(np.int32)
            self.U = U
            self.dtype = U.dtype if self.precision == "double" else \
                (np.complex64 if np.iscomplexobj(U.data) else np.float32)
            self.data = np.ascontiguousarray(U.data, dtype=self.dtype)
            self._call(np.zeros(U.shape[0], dtype=U.dtype), phase=11)   # ordering + symbolic, once
        self.U = U
        # single precision: PARDISO wants a, b and x in float32 / complex64 (MKL manual, iparm[27])
        self.dtype = U.dtype if self.precision == "double" else \
            (np.complex64 if np.iscomplexobj(U.data) else np.float32)
        self.data = np.ascontiguousarray(U.data, dtype=self.dtype)
        self._call(np.zeros(U.shape[0], dtype=U.dtype), phase=22)       # numerical factorisation
        return self

    def _set_iparm(self):
        """Explicit PARDISO settings (1-based iparm numbers as in MKL's manual)."""
        s = self.solver
        s.iparm[:] = 0
        s.set_iparm(1, 1)    # use these values, not the defaults
        s.set_iparm(2, 2)    # METIS nested-dissection ordering
        s.set_iparm(8, 0)    # iterative refinement only when pivots were perturbed (auto)
        s.set_iparm(10, 8)   # pivot perturbation 1e-8
        s.set_iparm(11, 1)   # symmetric scaling ...
        s.set_iparm(13, 1)   # ... and weighted matching: robust 1x1/2x2 pivots for indefinite A
        s.set_iparm(18, -1)  # report the number of nonzeros in the factor ...
        s.set_iparm(19, -1)  # ... and the MFLOP of the factorisation
        # Bunch-Kaufman pivoting; MKL reports no inertia for complex Hermitian matrices with it,
        # so there, when the inertia is wanted, 1x1 diagonal pivots (the factor then only
        # preconditions the block iteration, whose residuals are exact)
        s.set_iparm(21, 0 if (self.want_inertia and self.mtype == -4) else 1)
        s.set_iparm(28, 1 if self.precision == "single" else 0)   # factorisation in float32/complex64

    def _call(self, b, phase):
        import ctypes
        s = self.solver
        s.set_iparm(12, 0)      # CSR, not transposed
        b = np.asfortranarray(b, dtype=self.dtype)
        x = np.zeros_like(b)
        err = ctypes.c_int32(0)
        i32 = ctypes.POINTER(ctypes.c_int32)
        s._mkl_pardiso(s.pt.ctypes.data_as(ctypes.POINTER(s._pt_type[0])), ctypes.byref(ctypes.c_int32(1)),
                       ctypes.byref(ctypes.c_int32(1)), ctypes.byref(ctypes.c_int32(self.mtype)),
                       ctypes.byref(ctypes.c_int32(phase)), ctypes.byref(ctypes.c_int32(self.U.shape[0])),
                       self.data.ctypes.data_as(ctypes.c_void_p), self.ia.ctypes.data_as(i32),
                       self.ja.ctypes.data_as(i32), s.perm.ctypes.data_as(i32),
                       ctypes.byref(ctypes.c_int32(1 if b.ndim == 1 else b.shape[1])), s.iparm.ctypes.data_as(i32),
                       ctypes.byref(ctypes.c_int32(0)), b.ctypes.data_as(ctypes.c_void_p),
                       x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(err))
        if err.value != 0:
            raise RuntimeError(f"PARDISO error {err.value} in phase {phase}")
        return x

    def solve(self, b):
        return self._call(np.asarray(b), phase=33).astype(self.U.dtype, copy=False)

    def inertia(self) -> tuple[int, int]:
        """(positive, negative) eigenvalues of the last matrix factorised: PARDISO's iparm 22
        and 23 (exact for the matrix factorised; its single-precision factor or a dropped
        tail perturb that matrix, see :class:`hotham.electronic.solve.ShiftInvert`)."""
        if not self.want_inertia:
            raise RuntimeError("this PARDISO factor was not set up for the inertia (factorizer(inertia=True))")
        if self.solver.get_iparm(14):
            raise RuntimeError(f"PARDISO perturbed {self.solver.get_iparm(14)} pivots: its inertia is not exact")
        return int(self.solver.get_iparm(22)), int(self.solver.get_iparm(23))

    @property
    def factor_nnz(self) -> int:
        return int(self.solver.get_iparm(18)) if self.solver is not None else 0

    @property
    def memory_bytes(self) -> int:
        """PARDISO's own report of its peak memory, bytes: max(iparm 15, iparm 16 + iparm 17),
        in kB (the symbolic analysis' peak; its permanent memory plus the factor's)."""
        if self.solver is None:
            return 0
        g = self.solver.get_iparm
        return 1024 * max(int(g(15)), int(g(16)) + int(g(17)))

    @property
    def factor_mflop(self) -> int:
        """Floating-point operations of the numerical factorisation, MFLOP (PARDISO's count)."""
        return int(self.solver.get_iparm(19)) if self.solver is not None else 0

    def __del__(self):
        try:
            if self.solver is not None:
                self.solver.free_memory(everything=True)
        except Exception:
            pass


#: "auto" uses PARDISO (when installed) from this matrix size on; SuperLU's lower per-solve
#: overhead wins on smaller problems
PARDISO_MIN_SIZE = 8000


def factorizer(backend: str = "auto", size: int | None = None, precision: str = "double", inertia: bool = False):
    """A fresh factorisation object: ``"pardiso"``, ``"superlu"`` or ``"auto"`` (PARDISO if
    available and the matrix has at least :data:`PARDISO_MIN_SIZE` rows).

    ``precision="single"`` (PARDISO only) factorises in single precision: half the memory and
    about half the time of the factor and of every solve. Shift-invert then works with a
    slightly perturbed inverse; the Rayleigh quotients of :class:`ShiftInvert` keep the
    eigenvalues accurate to second order (checked against dense LAPACK in the tests).
    ``inertia``: the factor's ``inertia()`` is wanted (PARDISO then pivots complex Hermitian
    matrices 1x1, the only mode in which MKL reports it)."""
    if backend == "auto":
        big = size is None or size >= PARDISO_MIN_SIZE
        backend = "pardiso" if (big and have_pardiso()) else "superlu"
    if backend == "pardiso":
        return PardisoFactor(precision, inertia)
    if backend == "superlu":
        return SuperLUFactor()
    raise ValueError(f"unknown sparse backend {backend!r} (auto, pardiso, superlu)")
