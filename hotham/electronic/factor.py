"""Sparse LDL^T / LU factorisations of H(k) - shift S(k) for shift-invert.

Two backends behind one call, :func:`factorizer`:

* ``"pardiso"`` (used when the optional ``pypardiso`` wheel, i.e. Intel MKL, is installed):
  supernodal LDL^T with METIS ordering, real symmetric indefinite (MKL mtype -2) at real
  k-points and complex Hermitian indefinite (mtype -4) elsewhere; only the upper triangle is
  passed. When the inertia is wanted at a complex k, the Hermitian matrix is factorised as its
  real symmetric embedding of twice the size instead (MKL's complex inertia is wrong, see
  :meth:`PardisoFactor._analyse`). The symbolic analysis (ordering) is done once and reused
  for every later matrix of the same pattern (all k), only the numerical factorisation is
  repeated.
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
    # (the Davidson iteration is faster with 0); a user's setting wins
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

    def release(self) -> None:
        """Free the numerical factor (its ordering is kept for the next matrix)."""
        self.lu = None

    @staticmethod
    def data_dtype(complex_: bool):
        """dtype of the values SuperLU factorises: always double precision."""
        return np.complex128 if complex_ else np.float64

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


def _real_embedding(U: sp.csr_matrix) -> sp.csr_matrix:
    """Upper triangle of [[R, -I], [I, R]] (real symmetric, 2n x 2n) from the upper triangle
    ``U`` of a Hermitian A = R + iI: R's upper triangle twice on the diagonal, and the whole
    antisymmetric -I = Im(U)^T - Im(U) in the upper right."""
    R, I = sp.csr_matrix(U.real), sp.csr_matrix(U.imag)
    K = sp.bmat([[R, I.T - I], [None, R]], format="csr")
    K.sort_indices()
    return K


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
        self.n = 0                  # rows of the matrix given (half of those factorised for a real embedding)
        self.out_dtype = None       # dtype of the matrix given: that of the solutions
        self.data = None            # the values factorised, in the factor's precision
        self.embedded = False

    def factor(self, A, upper: bool = False):
        """Factorise the symmetric / Hermitian CSR matrix ``A`` (``upper=True``: A holds only its
        upper triangle, with sorted column indices)."""
        K = self._analyse(A, upper)
        self._call(np.zeros(K.shape[0], dtype=self.dtype), phase=22)    # numerical factorisation
        return self

    def analyse(self, A, upper: bool = False) -> dict:
        """The symbolic analysis (METIS ordering) of ``A`` alone, no numerical factorisation:
        what factorising it would cost, as PARDISO predicts it: ``factor_nnz`` (entries of L),
        ``factor_mflop`` (MFLOP of the factorisation) and ``memory_gb`` (PARDISO's peak,
        :attr:`memory_bytes`, in GB)."""
        self._analyse(A, upper)
        return dict(factor_nnz=self.factor_nnz, factor_mflop=self.factor_mflop, memory_gb=self.memory_bytes / 2**30)

    def _analyse(self, A, upper: bool):
        """Keep the upper triangle of ``A`` (sorted), and that of the matrix PARDISO factorises
        (A, or its real embedding for a complex A whose inertia is wanted) in the factor's
        precision (PARDISO wants a, b and x in float32 / complex64 for a single-precision
        factor, MKL manual iparm[27]); order and analyse it unless done for its pattern.
        Returns the matrix factorised (upper triangle)."""
        U = A if upper else sp.triu(A, format="csr")
        U.sort_indices()
        complex_ = np.iscomplexobj(U.data)
        self.n, self.out_dtype = U.shape[0], np.result_type(U.dtype, np.float64)
        # MKL's complex Hermitian LDL^H (mtype -4) reports a wrong inertia, with every pivoting
        # and matching setting (MKL 2026.2: 977 negative pivots where 637 bands lie below the
        # shift, 150-atom MoS2 at K). A Hermitian A = R + iI (R symmetric, I antisymmetric) has
        # the real symmetric embedding [[R, -I], [I, R]] of twice the size, whose eigenvalues
        # are those of A, each twice: its real LDL^T gives the inertia, and its solves those
        # of A (x = xr + i xi), at twice the flops of the complex factor.
        self.embedded = complex_ and self.want_inertia
        K = _real_embedding(U) if self.embedded else U
        mtype = -4 if complex_ and not self.embedded else -2
        # the pattern is compared with PARDISO's own 1-based copy of it (no reference to A is
        # kept: at 10^5 orbitals its values are gigabytes beside the factor's own copy)
        same = (self.solver is not None and mtype == self.mtype and K.nnz == len(self.ja)
                and np.array_equal(K.indptr + 1, self.ia) and np.array_equal(K.indices + 1, self.ja))
        self.dtype = self.data_dtype(np.iscomplexobj(K.data))     # K is real for an embedding
        self.data = np.ascontiguousarray(K.data, dtype=self.dtype)
        if not same:
            if self.solver is not None:
                self.solver.free_memory(everything=True)
            self.solver = self._cls(mtype=mtype)
            self.mtype = mtype
            self._set_iparm()
            # 1-based CSR index arrays, kept for every later call (pypardiso rebuilds them per call)
            self.ia = (K.indptr + 1).astype(np.int32)
            self.ja = (K.indices + 1).astype(np.int32)
            self._call(np.zeros(K.shape[0], dtype=self.dtype), phase=11)   # ordering + symbolic, once
        return K

    def data_dtype(self, complex_: bool):
        """dtype of the values PARDISO factorises for a real or complex matrix (float32 /
        complex64 for a single-precision factor): a caller that builds the matrix in it saves
        a copy. (A complex matrix whose inertia is wanted is given complex and factorised as
        its real embedding, in the real dtype of the same precision.)"""
        if complex_:
            return np.complex128 if self.precision == "double" else np.complex64
        return np.float64 if self.precision == "double" else np.float32

    def release(self) -> None:
        """Free the numerical factor (PARDISO phase 0); the ordering and symbolic analysis stay
        for the next matrix of the same pattern. For a caller that alternates between a real and
        a complex factor and must not hold both (10^5 orbitals: gigabytes each)."""
        if self.solver is not None and self.data is not None:
            self._call(np.zeros(len(self.ia) - 1, dtype=self.dtype), phase=0)
        self.data = None

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
        s.set_iparm(19, -1)  # ... and the MFLOP of the factorisation (both after the analysis)
        s.set_iparm(21, 1)   # Bunch-Kaufman pivoting
        s.set_iparm(28, 1 if self.precision == "single" else 0)   # factorisation in float32/complex64

    def _call(self, b, phase):
        import ctypes
        s = self.solver
        s.set_iparm(12, 0)      # CSR, not transposed
        if self.data is None and phase > 0:
            raise RuntimeError("this PARDISO factor was released: factorise a matrix first")
        b = np.asfortranarray(b, dtype=self.dtype)
        x = np.zeros_like(b)
        err = ctypes.c_int32(0)
        i32 = ctypes.POINTER(ctypes.c_int32)
        s._mkl_pardiso(s.pt.ctypes.data_as(ctypes.POINTER(s._pt_type[0])), ctypes.byref(ctypes.c_int32(1)),
                       ctypes.byref(ctypes.c_int32(1)), ctypes.byref(ctypes.c_int32(self.mtype)),
                       ctypes.byref(ctypes.c_int32(phase)), ctypes.byref(ctypes.c_int32(len(self.ia) - 1)),
                       self.data.ctypes.data_as(ctypes.c_void_p), self.ia.ctypes.data_as(i32),
                       self.ja.ctypes.data_as(i32), s.perm.ctypes.data_as(i32),
                       ctypes.byref(ctypes.c_int32(1 if b.ndim == 1 else b.shape[1])), s.iparm.ctypes.data_as(i32),
                       ctypes.byref(ctypes.c_int32(0)), b.ctypes.data_as(ctypes.c_void_p),
                       x.ctypes.data_as(ctypes.c_void_p), ctypes.byref(err))
        if err.value != 0:
            raise RuntimeError(f"PARDISO error {err.value} in phase {phase}")
        return x

    def solve(self, b):
        """x with A x = b (b [n] or [n, m]) from the last factor."""
        b = np.asarray(b)
        if not self.embedded:
            return self._call(b, phase=33).astype(self.out_dtype, copy=False)
        n = self.n
        x = self._call(np.concatenate([b.real, b.imag]), phase=33)
        return (x[:n] + 1j * x[n:]).astype(self.out_dtype, copy=False)

    def inertia(self) -> tuple[int, int]:
        """(positive, negative) eigenvalues of the last matrix factorised: PARDISO's iparm 22
        and 23 (halved for a real embedding); exact for the matrix factorised (its
        single-precision factor or a dropped tail perturb that matrix, see
        :class:`hotham.electronic.solve.ShiftInvert`)."""
        if not self.want_inertia:
            raise RuntimeError("this PARDISO factor was not set up for the inertia (factorizer(inertia=True))")
        if self.solver.get_iparm(14):
            raise RuntimeError(f"PARDISO perturbed {self.solver.get_iparm(14)} pivots: its inertia is not exact")
        pos, neg = int(self.solver.get_iparm(22)), int(self.solver.get_iparm(23))
        if self.embedded:
            if pos % 2 or neg % 2:
                raise RuntimeError(f"the real embedding of a Hermitian matrix gave an odd inertia ({pos}, {neg})")
            pos, neg = pos // 2, neg // 2
        return pos, neg

    @property
    def factor_nnz(self) -> int:
        """Entries of L (PARDISO's iparm 18, a 32-bit integer: read modulo 2^32, so counts up to
        4.3e9 are right; the 1.05 deg bilayer's complex factor has 3.1e9)."""
        return int(self.solver.get_iparm(18)) % 2**32 if self.solver is not None else 0

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
        """Floating-point operations of the numerical factorisation, MFLOP (PARDISO's count,
        iparm 19, read modulo 2^32 like :attr:`factor_nnz`)."""
        return int(self.solver.get_iparm(19)) % 2**32 if self.solver is not None else 0

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
    ``inertia``: the factor's ``inertia()`` is wanted (PARDISO then factorises a complex
    Hermitian matrix as its real symmetric embedding of twice the size, see
    :meth:`PardisoFactor._analyse`)."""
    if backend == "auto":
        big = size is None or size >= PARDISO_MIN_SIZE
        backend = "pardiso" if (big and have_pardiso()) else "superlu"
    if backend == "pardiso":
        return PardisoFactor(precision, inertia)
    if backend == "superlu":
        return SuperLUFactor()
    raise ValueError(f"unknown sparse backend {backend!r} (auto, pardiso, superlu)")
