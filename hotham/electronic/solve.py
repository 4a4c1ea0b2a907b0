"""The generalised eigenproblem H(k) c = e S(k) c, dense or sparse shift-invert.

* dense: LAPACK through numpy/scipy, all bands, batched over k (Cholesky of S(k), then the
  standard Hermitian problem L^-1 H L^-H). Used when the matrix size is at most ``dense_max``
  and all bands are wanted (or ``n`` is given but the problem is small).
* sparse: shift-invert around a target energy ``shift`` (eV), giving the ``n`` eigenpairs
  nearest it. H(k), S(k) and K = H(k) - shift S(k) are assembled in one pass (one shared index
  array) and K is factorised (MKL PARDISO LDL^T or SuperLU, :mod:`hotham.electronic.factor`);
  the fill-reducing ordering of the first k is reused at every later k (the sparsity pattern
  does not depend on k). At k-points with real phases (Gamma, 2k integer) the matrices are
  real symmetric and the factorisation is real. Two iterations on top of the factor:
  ``"block"`` (the default, :mod:`hotham.electronic.block`): a block Davidson iteration
  preconditioned by K^-1 with exact residuals, solving ~20 right-hand sides per call, which
  also lets PARDISO factorise in single precision (half the time and memory), and leave the
  negligible far tails of K out of the factor, without losing accuracy; ``"arpack"``:
  ``scipy.sparse.linalg.eigsh`` shift-invert, one right-hand side per call, followed by
  Rayleigh-Ritz with the exact H, S.

An overlap that is not positive definite raises :class:`OverlapError` with the k-point and
the smallest eigenvalue of S(k), not a LAPACK trace.

Collinear spin: ``channel=0`` / ``channel=1`` solve one channel; ``channel=None`` (the default) solves
both and concatenates them along the band axis, up bands first (each half ascending), so a
collinear operator with N orbitals gives 2N bands.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse.linalg as spla

from ..errors import HothamError
from ..operator import BlockOperator
from .block import TOL, TOL_VECTORS, BlockNoConvergence, block_shift_invert
from .factor import factorizer
from .ghosts import canonical_eigh, s_quotient
from .hk import Assembler, SlotSelection, as_kpoints, is_real_kpoint

#: the block solver's preconditioner (the factorised H - shift S) leaves out atom pairs whose
#: blocks of H - shift S are all below this (eV); see :meth:`Assembler.small_pair_mask`
DROP_TOL = 1e-4

#: a band count from a perturbed (thinned, or single-precision) factor is trusted when no
#: eigenvalue lies closer than this to the shift, eV (a hundred times the perturbation)
INERTIA_MARGIN = 0.01

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


class SolverError(HothamError):
    """The sparse eigensolver did not converge or was asked for too many states."""


@dataclass
class Eigen:
    """Eigenpairs at a set of k-points.

    energies : float [nk, nb], eV, ascending per k
    vectors : complex [nk, n, nb] or None (columns S-orthonormal: c^H S c = 1)
    kpts : float [nk, 3], fractional
    channel : collinear channel of every band (collinear ``channel=None``: [nb] with 0 then 1), or None
    processes : the worker processes that solved them (``solve(..., processes=P)`` starts at most P)
    windows : sparse ``n_below`` / ``n_above`` solves: for every k, the list of its shift-invert
        windows (collinear: both channels' in turn), each a dict with ``shift`` (eV), ``states``,
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
    windows: list | None = None
    s_quotient: np.ndarray | None = None
    dropped: np.ndarray | None = None


def _channels(op: BlockOperator, channel):
    if op.spin == "collinear":
        return [0, 1] if channel is None else [int(channel)]
    if channel not in (None, 0):
        raise HothamError(f"channel={channel!r} is only meaningful for collinear operators (this one is spin {op.spin})")
    return [0]


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


def _blas_threads_guard():
    """Keep OpenBLAS (numpy/scipy) single-threaded while MKL's threads run PARDISO: idle
    OpenBLAS threads spin-wait and, on few cores, slow the ARPACK/PARDISO loop down (see
    benchmarks/eigensolver.py). A no-op without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits={"openblas": 1})


class ShiftInvert:
    """Eigenpairs nearest a target energy ``shift`` (eV) at any k, by shift-invert.

    ``backend``: "auto" (MKL PARDISO when ``pypardiso`` is installed and the matrix is large,
    else SuperLU), "pardiso" or "superlu". ``eigensolver``: "block" (the default: block
    Davidson with exact residuals, :func:`hotham.electronic.block.block_shift_invert`) or
    "arpack" (implicitly restarted Lanczos on the exact inverse, one right-hand side per solve;
    slower, see benchmarks/eigensolver.py).
    ``precision``: "single" factorises in float32 (PARDISO only), "double", or "auto" = single
    for PARDISO with the block solver (its exact residuals converge to the exact eigenpairs
    whatever the factor's precision) unless ``inertia`` is wanted, else double. ARPACK with "single" (opt-in) runs on the
    float32 factor, then refines its eigenpairs by the block iteration started from them (exact
    residuals, corrections from the same factor) to the block solver's tolerance.
    ``drop_tol`` (eV, block solver only): the factorised preconditioner leaves out atom pairs
    whose blocks of H - shift S are all below it (:meth:`Assembler.small_pair_mask`); 0 keeps
    everything. ``tol``: residual tolerance of the block solver, eV (default
    :data:`hotham.electronic.block.TOL` for eigenvalues only,
    :data:`~hotham.electronic.block.TOL_VECTORS` with eigenvectors), or ARPACK's (0 = machine).
    The ordering of the first factorisation is reused at every later k (same sparsity pattern).
    ``inertia``: also count the bands below the shift at every k (Sylvester's law of inertia:
    the negative pivots of the factor of H(k) - shift S(k)), as ``info["n_below"]`` after
    :meth:`solve` or alone by :meth:`count`. The count is that of the matrix factorised: with
    ``drop_tol=0`` of H - shift S itself; a thinned factor (the default) perturbs H - shift S by
    ~1e-4 eV, which can only move an eigenvalue across the shift if it lies that close to it, so
    callers keep their shifts :data:`INERTIA_MARGIN` away from every eigenvalue (they see the
    eigenvalues nearest the shift). Counts are made in double precision ("auto"): a
    single-precision factor's inertia can be wrong far from every eigenvalue (MoS2 36 x 36 at
    mid-gap: 9 bands too many; 24 x 24 was right).
    Memory: H, S and H - shift S in CSR sharing one index array, and the factor (which dominates).
    A solve at the k and shift of the last factorisation (a wider window) reuses that factor and
    starts from the last window's vectors (``info["factorised"]`` False).
    """

    def __init__(self, op: BlockOperator, shift: float, assembler: Assembler | None = None,
                 channel: int = 0, tol: float | None = None, backend: str = "auto", precision: str = "auto",
                 eigensolver: str = "auto", drop_tol: float = DROP_TOL, inertia: bool = False):
        if not np.isfinite(shift):
            raise HothamError("shift-invert needs a finite target energy: give `around` "
                              "(the operator has no Fermi level)")
        self.op = op
        self.shift = float(shift)
        self.asm = assembler or Assembler(op)
        self.channel = channel
        self.tol = tol
        pardiso = factorizer(backend, self.asm.size).name == "pardiso"
        if eigensolver == "auto":
            eigensolver = "block"
        if eigensolver not in ("block", "arpack"):
            raise HothamError(f"unknown eigensolver {eigensolver!r} (auto, block, arpack)")
        self.eigensolver = eigensolver
        self.inertia = bool(inertia)
        if precision == "auto":
            # a count needs the double-precision factor: a float32 LDL^T's inertia was 9 bands off
            # for 36 x 36 MoS2 (58 320 orbitals) at mid-gap, 0.68 eV from every band (PARDISO's
            # pivoting is static, so its backward error has no bound); eigenvalues alone do not
            precision = "single" if (pardiso and eigensolver == "block" and not inertia) else "double"
        self.precision = precision
        # one factorisation object per arithmetic (real at Gamma-like k, complex elsewhere), so
        # that each keeps its symbolic analysis along a path that alternates between them
        self._factors = {kind: factorizer(backend, self.asm.size, precision, inertia=self.inertia)
                         for kind in (True, False)}
        self.factor = self._factors[False]
        self.drop_tol = float(drop_tol)
        self._sel = None
        self.info: dict = {}
        self.last_vectors = None
        #: S quotients (:func:`hotham.electronic.ghosts.s_quotient`) of the last solve's states [n]
        self.last_quotient = None
        # the last factorisation's (k, shift), arithmetic and sizes: another solve at the same k
        # and shift (a wider window) reuses the factor
        self._last = None

    @property
    def backend(self) -> str:
        return self.factor.name

    def move(self, shift: float) -> "ShiftInvert":
        """Target another energy (eV) with the same factorisation objects and the same selection
        of what is factorised, so PARDISO's symbolic analysis (and SuperLU's ordering) carry over.
        The atom pairs left out stay those of the first shift: far tails, whose blocks of
        H - shift S change by |shift difference| x their overlap (~1e-5), and the factor only
        preconditions the iteration."""
        self.shift = float(shift)
        return self

    def count(self, k) -> int:
        """Bands below the shift at fractional k (needs ``inertia=True``): one factorisation."""
        self.factorise(k)
        self.info["n_below"] = self._n_below()
        return self.info["n_below"]

    def factorise(self, k) -> dict:
        """Assemble and factorise H(k) - shift S(k) at fractional k, nothing more; returns
        :attr:`info` (times in s, sizes; ``factor_bytes``: the memory the factor holds)."""
        _, _, _, nnz, factored, t0, t1, t2 = self._factorise(np.asarray(k, dtype=np.float64).reshape(3))
        fac = self.factor
        self.info = dict(t_assemble=t1 - t0, t_factor=t2 - t1, nnz=nnz, factored_nnz=factored,
                         factor_nnz=getattr(fac, "factor_nnz", None), factor_mflop=getattr(fac, "factor_mflop", None),
                         factor_bytes=fac.memory_bytes)
        return self.info

    def _n_below(self) -> int:
        try:
            return self.factor.inertia()[1]
        except RuntimeError as exc:
            raise SolverError(f"no band count at shift {self.shift} eV: {exc}") from None

    def solve(self, k, n: int, vectors: bool = False, X0: np.ndarray | None = None, below: int | None = None):
        """The ``n`` eigenpairs nearest the shift at fractional k: (e [n] ascending, c [size, n] or None).

        ``X0``: starting vectors [size, <= n] for the block iteration (e.g. those of a nearby k).
        ``below``: of the n, the ``below`` nearest under the shift and the rest nearest from it
        up (block eigensolver), so that a window holds both sides of a shift in a gap."""
        k = np.asarray(k, dtype=np.float64).reshape(3)
        size = self.asm.size
        if n >= size - 1:
            raise SolverError(f"asked for {n} eigenpairs of a {size} x {size} problem: use the dense solver")
        if below is not None and self.eigensolver != "block":
            raise HothamError("a window with states on both sides of the shift (below=) needs the block eigensolver")
        again = self._holds_factor(k)
        if again and X0 is None and self.last_vectors is not None and self.last_vectors.shape[1] <= n:
            X0 = self.last_vectors                  # a wider window at the same k and shift: from the last one
        H, S, real, nnz, factored_nnz, t0, t1, t2 = self._factorise(k)
        dtype = np.float64 if real else np.complex128
        fac = self.factor
        with _blas_threads_guard():
            if self.eigensolver == "block":
                info = {}
                try:
                    e, c = block_shift_invert(H, S, self.shift, n, fac.solve, info=info,
                                              tol=self._block_tol(vectors), X0=X0, below=below)
                except BlockNoConvergence as exc:
                    raise SolverError(f"at k = {k}: {exc}") from None
                self.last_vectors = c               # a warm start for the next k (``X0``)
                self.last_quotient = s_quotient(c)
                c = c.astype(np.complex128) if vectors else None
            else:
                e, c, info = self._arpack(H, S, k, n, True, dtype, real)
                self.last_quotient = s_quotient(c)
                c = c if vectors else None
        # timings (s) and sizes of the last solve, for benchmarks
        self.info = dict(info, t_assemble=t1 - t0, t_factor=t2 - t1, t_iterate=time.perf_counter() - t2,
                         factorised=not again, nnz=nnz, factored_nnz=factored_nnz,
                         factor_nnz=getattr(fac, "factor_nnz", None), factor_mflop=getattr(fac, "factor_mflop", None))
        if self.inertia:
            self.info["n_below"] = self._n_below()
        return e, c

    def _holds_factor(self, k) -> bool:
        """Whether the last factorisation was at fractional ``k`` [3] and the present shift."""
        return self._last is not None and self._last[0] == (tuple(k), self.shift)

    def _factorise(self, k):
        """Assemble H(k), S(k) and factorise (the selected part of) H(k) - shift S(k): returns
        (H, S, real, nnz(K), factorised nnz, and the clock at the start, after the assembly and
        after the factorisation). At the k and shift of the last call, that factor again (no
        time spent)."""
        if self._holds_factor(k):
            # H(k) and S(k) again (seconds; keeping them between calls would hold their memory)
            _, real, nnz, factored_nnz = self._last
            self.factor = self._factors[real]
            t0 = time.perf_counter()
            H, S, _ = self.asm.pencil(k, None, self.channel, real=real)
            t1 = time.perf_counter()
            return H, S, real, nnz, factored_nnz, t0, t1, t1
        self._last = None
        H, S, A, real, nnz, t0 = self._assemble(k)
        t1 = time.perf_counter()
        try:
            self.factor.factor(A, upper=self.factor.name == "pardiso")
        except RuntimeError as exc:  # singular factor: shift is an eigenvalue
            raise SolverError(f"H - shift S is singular at k = {k} (shift = {self.shift} eV is an eigenvalue?): "
                              f"{exc}; move `around` slightly") from None
        factored_nnz = A.nnz
        del A
        self._last = ((tuple(k), self.shift), real, nnz, factored_nnz)
        return H, S, real, nnz, factored_nnz, t0, t1, time.perf_counter()

    def _assemble(self, k):
        """H(k), S(k), the matrix to factorise, whether it is real, nnz(K) and the start clock."""
        real = is_real_kpoint(self.op, k) and self.op.spin != "soc"
        self.factor = self._factors[real]
        t0 = time.perf_counter()
        soc = self.op.spin == "soc"
        if not soc:
            self.asm.pattern.element_slots()    # shared by both threads below: built once, first
        with ThreadPoolExecutor(1) as pool:
            # the k-independent selection of what is factorised (a pattern pass) runs beside
            # the assembly of the values at the first k
            sel = pool.submit(self._selection, self.asm.pattern) if not soc and self._sel is None else None
            H, S, A = self.asm.pencil(k, self.shift if soc else None, self.channel, real=real)
            if sel is not None:
                self._sel = sel.result()
        nnz = H.nnz if A is None else A.nnz
        return H, S, self._factor_matrix(H, S, A), real, nnz, t0

    def analyse(self, k) -> dict:
        """What the factorisation at fractional k would cost, without doing it (PARDISO only:
        its symbolic analysis): ``factor_nnz``, ``factor_mflop``, ``memory_gb`` (see
        :meth:`hotham.electronic.factor.PardisoFactor.analyse`), the matrix's ``nnz`` and
        ``t_assemble`` / ``t_analyse`` (s)."""
        H, S, A, real, nnz, t0 = self._assemble(np.asarray(k, dtype=np.float64).reshape(3))
        del H, S
        if not hasattr(self.factor, "analyse"):
            raise SolverError(f"the {self.factor.name} backend predicts no factorisation cost (install pypardiso)")
        t1 = time.perf_counter()
        out = self.factor.analyse(A, upper=True)
        return dict(out, nnz=nnz, factored_nnz=A.nnz, t_assemble=t1 - t0, t_analyse=time.perf_counter() - t1)

    def _selection(self, ref) -> SlotSelection:
        """Which stored entries of K (pattern ``ref``: a CSR matrix or the assembler's pattern)
        are factorised: the upper triangle for PARDISO; for the block solver without the atom
        pairs below ``drop_tol`` (the factor only preconditions an iteration with exact
        residuals). Built once, reused at every k."""
        keep = SlotSelection.upper(ref) if self.factor.name == "pardiso" else np.ones(ref.nnz, bool)
        if self.eigensolver == "block" and self.drop_tol > 0 and self.op.spin != "soc":
            drop = self.asm.small_pair_mask(self.shift, self.drop_tol, self.channel)
            if drop is not None:
                keep &= ~drop
        return SlotSelection(ref, keep)

    def _factor_matrix(self, H, S, A):
        """What is factorised (see :meth:`_selection`): built from H and S without forming all
        of K = H - shift S, or taken from ``A`` = K (spin-orbit)."""
        ref = H if A is None else A
        if self._sel is None:
            self._sel = self._selection(ref)
        if A is None:
            return self._sel.combination(H, S, -self.shift)
        return self._sel.matrix(A.data)

    def _block_tol(self, vectors: bool) -> float:
        """Residual tolerance of the block iteration, eV: the user's, else looser when only
        eigenvalues are wanted (their error is second order in the residual)."""
        if self.tol:
            return float(self.tol)
        return TOL_VECTORS if vectors else TOL

    def _arpack(self, H, S, k, n, vectors, dtype, real):
        size = self.asm.size
        fac = self.factor
        calls = [0]

        def matvec(b):
            calls[0] += 1
            return np.asarray(fac.solve(np.asarray(b, dtype=dtype).ravel())).ravel()

        OPinv = spla.LinearOperator((size, size), dtype=dtype, matvec=matvec)
        v0 = np.random.default_rng(0).standard_normal(size).astype(dtype)
        tol = self.tol or 0.0
        try:
            if real:
                e, c = spla.eigsh(H, k=n, M=S, sigma=self.shift, which="LM", OPinv=OPinv, v0=v0, tol=tol)
            else:
                e, c = spla.eigs(H, k=n, M=S, sigma=self.shift, which="LM", OPinv=OPinv, v0=v0, tol=tol)
        except spla.ArpackNoConvergence as exc:
            raise SolverError(f"shift-invert around {self.shift:.4f} eV did not converge at k = {k}: {exc}") from None
        info = {"inverse_columns": calls[0], "inverse_calls": calls[0], "arpack_calls": calls[0]}
        if self.precision == "single":
            # ARPACK converged on the single-precision inverse: its vectors carry residuals
            # ~1e-4 eV (eigenvalues ~1e-7 eV off). A few steps of the block iteration started
            # from them, with residuals H x - e S x computed in double and corrections from the
            # same single-precision factor (many right-hand sides per solve), drive every
            # residual below the tolerance, as for the block solver
            binfo = {}
            try:
                e, c = block_shift_invert(H, S, self.shift, n, lambda B: fac.solve(B), X0=c, info=binfo,
                                          tol=self._block_tol(True))
            except BlockNoConvergence as exc:
                raise SolverError(f"at k = {k}: refining ARPACK's single-precision eigenpairs: {exc}") from None
            info.update(inverse_columns=calls[0] + binfo["inverse_columns"],
                        inverse_calls=calls[0] + binfo["inverse_calls"], refine_iterations=binfo["iterations"],
                        residuals=binfo["residuals"])
            return e, (c.astype(np.complex128) if vectors else None), info
        # Rayleigh-Ritz in the converged subspace with the exact H and S: eigenvalue errors are
        # second order in the vectors' errors (ARPACK's mixing inside degenerate multiplets
        # does not shift them)
        h = c.conj().T @ (H @ c)
        m = c.conj().T @ (S @ c)
        e, y = sla.eigh(0.5 * (h + h.conj().T), 0.5 * (m + m.conj().T))
        if not vectors:
            return e, None, info
        return e, (c @ y).astype(np.complex128), info


#: guard states on each side of a band-edge window: its farthest state is not certified (a
#: degenerate partner may lie just outside), and one more keeps the wanted ones from being the
#: slowest to converge
EDGE_GUARD = 2


def edge_window(n_below: int, n_above: int) -> tuple[int, int]:
    """(states, of them below the shift) of the window :func:`edge_states` solves for."""
    below = n_below + EDGE_GUARD if n_below else 0
    above = n_above + EDGE_GUARD if n_above else 0
    return below + above, below


def edge_states(si: ShiftInvert, k, fermi: float, n_below: int, n_above: int, vectors: bool = False,
                X0: np.ndarray | None = None, log: list | None = None, quotients: list | None = None):
    """The ``n_below`` eigenpairs just below ``fermi`` (eV) and the ``n_above`` from it up, at
    fractional k: (e [n_below + n_above] ascending, c [size, n] or None, the vectors of the
    window: a warm start for the next k). ``log``: a list that receives a dict for the window
    (see :attr:`Eigen.windows`); ``quotients``: a list that receives the states' S quotients [n].

    One shift, at E_F (``X0``: starting vectors, e.g. the previous k's), one factorisation: its
    window holds the states nearest the shift on each side separately (n_below and n_above with
    :data:`EDGE_GUARD` more each), so both band edges of an insulator come from the same factor however
    unevenly E_F splits the gap, and no other eigenvalue lies between the wanted ones (the
    farthest guard of each side is not used: its partner may lie just outside)."""
    m, below = edge_window(n_below, n_above)
    if X0 is not None and np.iscomplexobj(X0) and is_real_kpoint(si.op, k) and si.op.spin != "soc":
        X0 = X0.real                             # a complex start at a real k: its real part
    s = float(fermi)
    for attempt in range(3):
        try:
            e, c = si.move(s).solve(k, m, vectors, X0=X0, below=below)
            break
        except SolverError:                      # the shift hit an eigenvalue (a degenerate E_F)
            s += 1e-4 * (attempt + 1)
    else:
        raise SolverError(f"no shift near {fermi:.4f} eV works at k = {k}")
    if log is not None:
        log.append(dict(shift=s, states=m, t_factor=si.info["t_factor"], t_iterate=si.info["t_iterate"],
                        iterations=si.info.get("iterations"), factor_mflop=si.info.get("factor_mflop")))
    # the window's sides are split at the shift; the states are split at E_F (the shift may
    # have moved off an eigenvalue by 0.1 meV)
    under, over = np.flatnonzero(e < fermi), np.flatnonzero(e >= fermi)
    if len(under) < n_below or len(over) < n_above:
        raise SolverError(f"the window at {s:.4f} eV holds {len(under)} states below and {len(over)} above "
                          f"E_F = {fermi:.4f} eV at k = {k}, not {n_below} and {n_above}: fewer bands there?")
    pick = np.concatenate([under[len(under) - n_below:], over[:n_above]])     # e ascending
    if quotients is not None:
        quotients.append(si.last_quotient[pick])
    return e[pick], (c[:, pick] if vectors else None), si.last_vectors


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
    factorisation, see :mod:`hotham.electronic.factor`; ``eigensolver`` "block" or "arpack" and
    ``precision``, see :class:`ShiftInvert`). Collinear operators: see the
    module docstring (``channel=None`` concatenates up and down). ``progress``: a bar over the
    k-points of the sparse solver, with its ETA, on stderr (a flag or a
    :class:`hotham.progress.Progress`). Returns :class:`Eigen`.

    ``n_below`` / ``n_above`` (instead of ``n``): the states just below E_F (``around``, default
    ``op.fermi_level``) and from it up, at every k: the band edges of an insulator, whatever
    the gap, or the states around E_F of a metal (:func:`edge_states`: one shift at E_F, whose
    window takes states from each side; along a path each k starts from the previous k's vectors).

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
        from .kparallel import solve_parallel
        return solve_parallel(op, kpts, processes=processes, memory_gb=memory_gb, progress=progress,
                              n=n, around=around, n_below=n_below, n_above=n_above, channel=channel,
                              vectors=vectors, dense_max=dense_max, method=method, backend=backend,
                              precision=precision, eigensolver=eigensolver, ghosts=ghosts, canonical=canonical)
    if n_below is not None or n_above is not None:
        if n is not None:
            raise HothamError("give n (states nearest `around`) or n_below / n_above (around E_F), not both")
        n_below, n_above = int(n_below or 0), int(n_above or 0)
        if n_below < 0 or n_above < 0 or n_below + n_above < 1:
            raise HothamError(f"n_below = {n_below}, n_above = {n_above}: at least one state, none negative")
        return _solve_edges(op, kpts, around, n_below, n_above, channel, vectors, dense_max, method,
                            dict(backend=backend, precision=precision, eigensolver=eigensolver), progress, ghosts)
    from ..progress import Progress
    progress = Progress.of(progress, "bands")
    for name, X in (("Hamiltonian (H)", op.H), ("overlap (S)", op.S)):
        if X is None:
            raise HothamError(f"{op.source or 'operator'}: no {name} blocks to diagonalise")
    k = as_kpoints(kpts)
    asm = Assembler(op)
    size = asm.size
    chans = _channels(op, channel)
    if n is not None:
        n = int(n)
        if n < 1 or n > size:
            raise HothamError(f"n = {n} states requested, the problem has {size}")
    if method == "auto":
        method = "dense" if (n is None or size <= dense_max) else "sparse"
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
            batch = max(1, int(2e8 // (16 * size * size * 4)))   # bound memory of the batch
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


def _solve_edges(op, kpts, around, n_below, n_above, channel, vectors, dense_max, method, solver_kw,
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
    if method == "auto":
        method = "dense" if asm.size <= dense_max else "sparse"
    chans = _channels(op, channel)
    nb = n_below + n_above
    E, C, Q, windows = [], [], [], None if method == "dense" else [[] for _ in k]
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
            e, c, X0 = edge_states(si, k[q], fermi, n_below, n_above, vectors, X0=X0, log=windows[q], quotients=qs)
            es.append(e)
            cs.append(c)
        E.append(np.stack(es))
        C.append(np.stack(cs) if vectors else None)
        Q.append(np.stack(qs))
    energies = np.concatenate(E, axis=1)
    vecs = np.concatenate(C, axis=2) if vectors else None
    quotient = np.concatenate(Q, axis=1) if all(q is not None for q in Q) else None
    spin_idx = np.repeat(chans, [nb] * len(chans)) if op.spin == "collinear" else None
    return Eigen(energies, vecs, k, spin_idx, windows=windows, s_quotient=quotient)


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
