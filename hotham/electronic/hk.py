"""Bloch sums of real-space blocks: H(k) and S(k), sparse or dense, vectorised over blocks.

Gauge: the *lattice* gauge,

    X(k)_{(i a),(j b)} = sum_R exp(2 pi i k . R) X_ij(R)_{ab},

with k in fractional reciprocal-lattice units (k_cart = k @ reciprocal cell incl. 2 pi, so
k_cart . (R @ cell) = 2 pi k . R). This is what OpenMX diagonalises. Eigenvalues do not depend
on the gauge; eigenvectors differ from the atom-position gauge by the phases exp(i k . t_j).

Every stored block is added exactly once (both halves of a Hermitian pair are stored, so the
sum is Hermitian by itself when the blocks are). For ``spin="soc"`` matrices are 2N x 2N,
spin-major (all up orbitals, then all down), and S(k) is S (x) 1.

Memory: the sparsity pattern is built per *atom pair* (i, j) (all R of a pair land in the same
dense n_i x n_j patch), so the pattern costs O(pairs + orbitals) integers, and the values are
scattered edge-chunk by edge-chunk: a 10^4-atom cell needs little beyond the CSR matrix itself.
At k-points where every phase is real (Gamma and other time-reversal-invariant points, 2k
integer) ``real=True`` gives real symmetric float64 matrices (half the memory, and a real
factorisation in the shift-invert solver).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from ..operator import BlockOperator

#: block elements handled per vectorised step of the sparse assembly
CHUNK_ELEMENTS = 1 << 22
#: from this many block elements on, independent assembly passes run in two threads
PARALLEL_ELEMENTS = 1 << 24


def as_kpoints(kpts) -> np.ndarray:
    """Fractional k-points as float array [nk, 3] (a single k [3] becomes [1, 3])."""
    k = np.asarray(kpts, dtype=np.float64)
    return k.reshape(-1, 3)


def phase_factors(op: BlockOperator, kpts) -> np.ndarray:
    """exp(2 pi i k . R_e) for every k and edge, complex [nk, E]."""
    k = as_kpoints(kpts)
    return np.exp(2j * np.pi * (k @ op.edge_R.T))


def is_real_kpoint(op: BlockOperator, k, tol: float = 1e-12) -> bool:
    """True when every phase exp(2 pi i k.R) of the operator is +-1 (e.g. Gamma, M): H(k) and
    S(k) are then real symmetric."""
    x = 2.0 * (op.edge_R @ np.asarray(k, dtype=np.float64).reshape(3))
    return bool(np.all(np.abs(x - np.round(x)) < tol)) if len(x) else True


class _PairPattern:
    """CSR pattern of the spin-less N_orb x N_orb matrix: one dense patch per atom pair (i, j).

    Row r = orbital a of atom i holds, for every pair (i, j) in increasing j, the n_j columns of
    atom j. ``element_slots()`` gives the CSR data position of every block element.
    """

    def __init__(self, op: BlockOperator):
        N = op.n_atoms
        nor = op.orbital_counts
        key = op.edge_i * N + op.edge_j
        pairs, self.pair_of_edge = np.unique(key, return_inverse=True)
        pi, pj = np.divmod(pairs, N)
        # offset of pair p inside a row of atom i: cumulative n_j of earlier pairs of i
        width = nor[pj]
        csum = np.concatenate([[0], np.cumsum(width)])
        first = np.searchsorted(pi, np.arange(N))            # first pair of each atom (pairs sorted by i)
        self.pair_colstart = csum[:-1] - csum[first[pi]]
        row_len = np.bincount(pi, weights=width, minlength=N).astype(np.int64)
        n = op.n_orbitals
        atom_of_row = np.repeat(np.arange(N), nor)
        self.indptr = np.concatenate([[0], np.cumsum(row_len[atom_of_row])]).astype(np.int64)
        # columns: each row of atom i repeats the template of atom i (its pairs' column ranges)
        tmpl = np.repeat(op.orbital_offsets[pj] - csum[:-1], width) + np.arange(csum[-1])
        tstart = csum[first]
        nnz = int(self.indptr[-1])
        idx_dtype = np.int32 if max(nnz, n) < 2**31 - 1 else np.int64
        self.indices = np.empty(nnz, dtype=idx_dtype)
        rows = np.arange(n)
        step = max(1, CHUNK_ELEMENTS // max(1, int(row_len.max(initial=1))))
        for r0 in range(0, n, step):                          # chunked only to bound temporaries
            r = rows[r0:r0 + step]
            lens = row_len[atom_of_row[r]]
            start = self.indptr[r0]
            pos = np.arange(self.indptr[r[-1] + 1] - start) - np.repeat(self.indptr[r] - start, lens)
            self.indices[start:start + len(pos)] = tmpl[np.repeat(tstart[atom_of_row[r]], lens) + pos]
        self.n = n
        self.nnz = nnz
        self.shape = (n, n)
        # indptr in the index dtype of ``indices`` (scipy and torch want the two equal)
        self.csr_indptr = self.indptr.astype(idx_dtype, copy=False)
        self.op = op
        self._element_slots = None

    def element_slots(self) -> np.ndarray:
        """CSR data slot of every spin-less block element, in the operator's flat order (edge
        by edge, each block row-major): int [n_elements], cached.

        Built per block shape (one per species pair): the slot of element (a, b) of edge e is
        indptr[row of orbital a of atom i_e] + (column start of pair (i_e, j_e)) + b, a broadcast
        of an [edges, n_i] array against arange(n_j), chunk by chunk
        (:meth:`hotham.operator.BlockOperator.element_chunks`)."""
        if self._element_slots is None:
            op = self.op
            out = np.empty(int(op.offsets[-1]), dtype=self.indices.dtype)
            for e, (ni, nj), where in op.element_chunks(1):
                rows = op.orbital_offsets[op.edge_i[e]][:, None] + np.arange(ni)
                base = self.indptr[rows] + self.pair_colstart[self.pair_of_edge[e]][:, None]
                out[where] = (base[:, :, None] + np.arange(nj)).ravel()
            self._element_slots = out
        return self._element_slots


class _HalfPattern:
    """CSR pattern of the upper triangle (diagonal included) of the spin-less pattern ``pp``,
    and the slot there of every spin-less block element on or above the diagonal (-1 below):
    a Hermitian H(k) or S(k) is stored by it at half the memory (:class:`HermitianHalf`).

    Row r = orbital a of atom i keeps the columns >= r of its full row, which are its last ones
    (columns ascend along a row): ``lower[r]`` of them lie below the diagonal, the widths of the
    pairs (i, j < i) plus a, so every map here is per row, never per stored entry."""

    def __init__(self, pp: "_PairPattern"):
        op = self.op = pp.op
        N = op.n_atoms
        nor = op.orbital_counts
        pairs = np.unique(op.edge_i * N + op.edge_j)
        pi, pj = np.divmod(pairs, N)
        below = pj < pi
        lower_width = np.bincount(pi[below], weights=nor[pj[below]], minlength=N).astype(np.int64)
        has_diag = np.zeros(N, bool)
        has_diag[pi[pi == pj]] = True
        atom_of_row = np.repeat(np.arange(N), nor)
        a = np.arange(pp.n) - op.orbital_offsets[atom_of_row]
        self.lower = lower_width[atom_of_row] + np.where(has_diag[atom_of_row], a, 0)
        row_len = np.diff(pp.indptr) - self.lower
        self.indptr = np.concatenate([[0], np.cumsum(row_len)]).astype(np.int64)
        self.nnz = int(self.indptr[-1])
        self.full_nnz = int(pp.nnz)                     # stored entries of the full pattern
        idx_dtype = pp.indices.dtype
        self.indices = np.empty(self.nnz, dtype=idx_dtype)
        step = max(1, CHUNK_ELEMENTS // max(1, int(row_len.max(initial=1))))
        for r0 in range(0, pp.n, step):                      # chunked only to bound temporaries
            r = np.arange(r0, min(r0 + step, pp.n))
            lens = row_len[r]
            start = self.indptr[r0]
            # full slot of half slot t of row r: pp.indptr[r] + lower[r] + (t - indptr[r])
            pos = np.arange(start, self.indptr[r[-1] + 1]) + np.repeat(
                pp.indptr[r] + self.lower[r] - self.indptr[r], lens)
            self.indices[start:start + len(pos)] = pp.indices[pos]
        self.n = pp.n
        self.shape = pp.shape
        self.csr_indptr = self.indptr.astype(idx_dtype, copy=False)
        # what the element slots need of the full pattern (per row and per pair: not its indices)
        self.pair_colstart, self.pair_of_edge = pp.pair_colstart, pp.pair_of_edge
        self._element_slots = None
        self.bijection = None            # set by element_slots()

    def element_slots(self) -> np.ndarray:
        """Slot in the upper-triangle pattern of every spin-less block element, -1 for those
        below the diagonal (their Hermitian partners carry them): int [n_elements], cached."""
        if self._element_slots is None:
            op = self.op
            out = np.empty(int(op.offsets[-1]), dtype=self.indices.dtype)
            for e, (ni, nj), where in op.element_chunks(1):
                rows = op.orbital_offsets[op.edge_i[e]][:, None] + np.arange(ni)
                cols = op.orbital_offsets[op.edge_j[e]][:, None] + np.arange(nj)
                base = self.indptr[rows] + self.pair_colstart[self.pair_of_edge[e]][:, None] - self.lower[rows]
                slot = base[:, :, None] + np.arange(nj)
                slot[cols[:, None, :] < rows[:, :, None]] = -1
                out[where] = slot.ravel()
            self._element_slots = out
            # each upper slot receives one element (no pair repeats with different R): a scatter
            self.bijection = int(np.count_nonzero(out >= 0)) == self.nnz
        return self._element_slots


class HermitianHalf:
    """A Hermitian (real symmetric) sparse matrix A stored by its upper triangle U, diagonal
    included: A = U + U^H - diag(U). Half the memory of the full CSR matrix (at 10^5 orbitals
    H(k) and S(k) are 2.6 GB each in full); ``A @ B`` costs two sparse products, U B and
    (U^T B*)*, on the CSR arrays of U and their transposed (CSC) view, without copies.

    upper : CSR [n, n], the entries on and above the diagonal (sorted indices).
    """

    def __init__(self, upper: sp.csr_matrix):
        self.upper = upper
        self.shape = upper.shape
        self.dtype = upper.dtype
        self.diag = upper.diagonal().real.copy()          # [n], real (A is Hermitian)

    @property
    def nnz(self) -> int:
        """Stored entries of the full matrix A."""
        return 2 * self.upper.nnz - int(np.count_nonzero(self.diag))

    def transposed_product(self, B: np.ndarray) -> np.ndarray:
        """(U^H - diag U) @ B, [n] or [n, m]: the strictly lower part of A times B."""
        U = self.upper
        out = (U.T @ B.conj()).conj() if np.iscomplexobj(U.data) else U.T @ B
        out -= (self.diag[:, None] if out.ndim == 2 else self.diag) * B
        return out

    def __matmul__(self, B):
        out = self.upper @ B
        out += self.transposed_product(B)
        return out

    def full(self) -> sp.csr_matrix:
        """A as a full CSR matrix (small matrices: SuperLU, tests)."""
        U = self.upper
        return (U + U.conj().T - sp.diags(self.diag)).tocsr()


class Assembler:
    """Cached sparsity pattern of H(k) and S(k) for one operator.

    The pattern (one dense patch per atom pair, all R summed into it) and the CSR slot of every
    block element are computed once; each k then costs one scatter of the block elements.

    Examples
    --------
    >>> asm = Assembler(op)
    >>> Hk, Sk = asm.H(k), asm.S(k)            # scipy.sparse.csr_matrix, complex
    >>> A = asm.shifted([0, 0, 0], 1.5, real=True)   # H - 1.5 S at Gamma, float64 CSR
    >>> Hd = asm.dense([[0, 0, 0], [0.5, 0, 0]])  # [nk, n, n] ndarray
    """

    def __init__(self, op: BlockOperator):
        self.op = op
        self._pp = None
        self._hp = None

    @property
    def size(self) -> int:
        """Dimension of H(k): spin-less orbitals, times 2 for soc."""
        return self.op.n_orbitals * self.op.spin_factor

    @property
    def pattern(self) -> _PairPattern:
        if self._pp is None:
            self._pp = _PairPattern(self.op)
        return self._pp

    @property
    def half_pattern(self) -> _HalfPattern:
        """The upper triangle of :attr:`pattern` (:class:`HermitianHalf` storage), cached. The full
        pattern it is cut from is kept only if it was built before (its column indices are 0.65
        GB at 10^5 orbitals, and the shift-invert solver needs only the half)."""
        if self._hp is None:
            self._hp = _HalfPattern(self._pp if self._pp is not None else _PairPattern(self.op))
        return self._hp

    # ------------------------------------------------------------------ values
    def _values(self, which: str, channel: int):
        op = self.op
        if which == "S":
            if op.S is None:
                raise ValueError(f"operator has no S ({op.source or 'operator'})")
            return op.S
        if op.H is None:
            raise ValueError(f"operator has no H ({op.source or 'operator'})")
        if op.spin == "collinear":
            return op.H[channel]
        return op.H

    def _assemble(self, k, terms, real: bool, st=(0, 0)):
        """Spin-less-pattern CSR data of sum_c coef_c X_c(k) for one spinor sub-block ``st``.

        ``terms`` is a list of (which, channel, coefficient)."""
        return self._assemble_many(k, [terms], real, st)[0]

    def _assemble_many(self, k, term_sets, real: bool, st=(0, 0), half: bool = False):
        """CSR data arrays (one per entry of ``term_sets``) in a single pass over the blocks: the
        slot computation, which dominates, is shared. ``half``: of the upper-triangle pattern."""
        op = self.op
        k = np.asarray(k, dtype=np.float64).reshape(3)
        theta = 2 * np.pi * (op.edge_R @ k)
        if real:
            phase = np.round(np.cos(theta))
        else:
            phase = np.exp(1j * theta)
        s, t = st
        # (values in the spin-less element order, coefficient); S has no spin off-diagonal part
        val_sets = [[(self._component(w, sp_, st), c) for w, sp_, c in terms if not (w == "S" and s != t)]
                    for terms in term_sets]
        if len(val_sets) > 1 and op.offsets[-1] >= PARALLEL_ELEMENTS:
            # numpy releases the GIL in these passes: H and S are scattered side by side
            with ThreadPoolExecutor(len(val_sets)) as pool:
                return list(pool.map(lambda v: self._scatter(v, phase, real, half), val_sets))
        return [self._scatter(vals, phase, real, half) for vals in val_sets]

    def _component(self, which: str, channel: int, st=(0, 0)) -> np.ndarray:
        """Values of ``which`` in the spin-less flat element order (edge by edge, n_i x n_j
        row-major): the stored array itself, or for spin-orbit H the spinor sub-block ``st``
        gathered from the 2n_i x 2n_j blocks."""
        X = self._values(which, channel)
        op = self.op
        if not (which == "H" and op.spin == "soc"):
            return X
        s, t = st
        out = np.empty(int(op.offsets[-1]), dtype=X.dtype)
        sizes = np.diff(op.offsets)
        step = max(1, CHUNK_ELEMENTS // max(1, int(sizes.max(initial=1))))
        for e0 in range(0, op.n_edges, step):               # edge chunks bound the index temporaries
            e1 = min(e0 + step, op.n_edges)
            e = np.repeat(np.arange(e0, e1), sizes[e0:e1])
            ni, nj = op.block_shapes[e, 0], op.block_shapes[e, 1]
            a, b = np.divmod(np.arange(op.offsets[e0], op.offsets[e1]) - op.offsets[e], nj)
            out[op.offsets[e0]:op.offsets[e1]] = X[4 * op.offsets[e] + (s * ni + a) * (2 * nj) + t * nj + b]
        return out

    def _scatter(self, vals, phase, real: bool, half: bool = False) -> np.ndarray:
        """CSR data of sum_c coef_c X_c(k) (spin-less blocks) from the cached element slots:
        one pass over the elements. Where every slot receives exactly one element (no atom pair
        repeats with different R, as in any cell larger than twice the cutoff) it is a
        scatter; otherwise the R images of a pair are summed by bincount. ``half``: the data of
        the upper-triangle pattern (the elements below the diagonal are left out)."""
        pp = self.half_pattern if half else self.pattern
        slots = pp.element_slots()
        bijection = pp.bijection if half else len(slots) == pp.nnz
        dtype = np.float64 if real else np.complex128
        if not vals:                                         # e.g. the spin-flip part of S
            return np.zeros(pp.nnz, dtype=dtype)
        ones = real and np.all(phase == 1.0)                 # Gamma: every phase is 1
        if bijection:                                        # a bijection elements -> slots
            # edge chunk by edge chunk: no temporary of all elements (at 10^5 orbitals each
            # complex [nnz] array is 2.6 GB, and H and S are scattered side by side)
            data = np.empty(pp.nnz, dtype=dtype)
            offsets = self.op.offsets
            step = max(1, CHUNK_ELEMENTS // max(1, int(np.diff(offsets).max(initial=1))))
            for e0 in range(0, self.op.n_edges, step):
                e1 = min(e0 + step, self.op.n_edges)
                a, b = offsets[e0], offsets[e1]
                acc = sum(X[a:b] if c == 1.0 else c * X[a:b] for X, c in vals)
                if not ones:
                    acc = acc * np.repeat(phase[e0:e1], np.diff(offsets[e0:e1 + 1]))
                if real and np.iscomplexobj(acc):
                    acc = acc.real
                sl = slots[a:b]
                if half:
                    up = sl >= 0
                    sl, acc = sl[up], acc[up]
                data[sl] = acc
            return data
        acc = None
        for X, c in vals:
            x = X if c == 1.0 else c * X
            acc = x if acc is None else acc + x
        if not ones:
            acc = acc * np.repeat(phase, np.diff(self.op.offsets))
        if real and np.iscomplexobj(acc):
            acc = acc.real
        if half:
            up = slots >= 0
            slots, acc = slots[up], acc[up]
        if real:
            return np.bincount(slots, weights=acc, minlength=pp.nnz)
        acc = acc.astype(np.complex128, copy=False)
        return np.bincount(slots, weights=acc.real, minlength=pp.nnz) + \
            1j * np.bincount(slots, weights=acc.imag, minlength=pp.nnz)

    def _csr(self, datas, dtype):
        pp = self.pattern
        mats = [sp.csr_matrix((d, pp.indices, pp.indptr), shape=(pp.n, pp.n), dtype=dtype) for d in datas]
        if len(mats) == 1:
            return mats[0]
        return sp.bmat([[mats[0], mats[1]], [mats[2], mats[3]]], format="csr")

    def combination(self, k, terms, real: bool = False) -> sp.csr_matrix:
        """sum of coefficient * X(k) over ``terms`` [(which "H"/"S", spin channel, coefficient)]
        as one CSR matrix (size :attr:`size`)."""
        if real and self.op.spin == "soc":
            real = False  # spin-orbit H(k) is complex even at Gamma
        dtype = np.float64 if real else np.complex128
        if self.op.spin == "soc":
            blocks = [(0, 0), (0, 1), (1, 0), (1, 1)]
        else:
            blocks = [(0, 0)]
        datas = [self._assemble(k, terms, real, st) for st in blocks]
        return self._csr(datas, dtype)

    def matrix(self, k, which: str = "H", channel: int = 0, real: bool = False) -> sp.csr_matrix:
        """X(k) as a CSR matrix for one fractional k [3]. ``which`` is "H" or "S"; ``channel``
        picks the channel of collinear data (0 up, 1 down). Complex unless ``real`` (only valid
        where :func:`is_real_kpoint`)."""
        return self.combination(k, [(which, channel, 1.0)], real=real)

    def H(self, k, channel: int = 0, real: bool = False) -> sp.csr_matrix:
        """H(k), eV, CSR [n, n] (2N x 2N for soc)."""
        return self.matrix(k, "H", channel, real)

    def S(self, k, real: bool = False) -> sp.csr_matrix:
        """S(k), CSR [n, n] (S (x) 1 for soc)."""
        return self.matrix(k, "S", 0, real)

    def pencil(self, k, shift: float | None, channel: int = 0, real: bool = False):
        """(H(k), S(k), H(k) - shift S(k)) as CSR matrices from one pass over the blocks; without
        spin-orbit the three share one index array (memory: one pattern, three value arrays).
        ``shift=None`` skips the third (returned as None) for callers that build it themselves."""
        if self.op.spin == "soc":
            return self.H(k, channel), self.S(k), (None if shift is None else self.shifted(k, shift, channel))
        h, s_ = self._assemble_many(k, [[("H", channel, 1.0)], [("S", 0, 1.0)]], real)
        datas = [h, s_]
        if shift is not None:
            k_ = np.multiply(s_, -float(shift))             # K = H - shift S, one new array
            k_ += h
            datas.append(k_)
        pp = self.pattern
        mats = [sp.csr_matrix((d, pp.indices, pp.csr_indptr), shape=pp.shape, copy=False) for d in datas]
        return tuple(mats) if shift is not None else (mats[0], mats[1], None)

    def half_data(self, k, terms, real: bool = False) -> np.ndarray:
        """Data [nnz of :attr:`half_pattern`] of the upper triangle of sum_c coef_c X_c(k) over
        ``terms`` [(which "H"/"S", channel, coefficient)], spin-less operators: e.g. H - shift S
        straight from the blocks, without H(k) and S(k)."""
        return self._assemble_many(k, [terms], real, half=True)[0]

    def pencil_half(self, k, channel: int = 0, real: bool = False):
        """(H(k), S(k)) as :class:`HermitianHalf` matrices sharing the index arrays of
        :attr:`half_pattern`: half the memory of :meth:`pencil` (spin-less operators only).
        Scattered one after the other, so that only one value array is written at a time."""
        if self.op.spin == "soc":
            raise ValueError("pencil_half is for spin-less operators (spin-orbit H(k) has spinor blocks)")
        hp = self.half_pattern
        out = []
        for terms in ([("H", channel, 1.0)], [("S", 0, 1.0)]):
            d = self.half_data(k, terms, real)
            out.append(HermitianHalf(sp.csr_matrix((d, hp.indices, hp.csr_indptr), shape=hp.shape, copy=False)))
        return tuple(out)

    def small_pair_mask(self, shift: float, tol: float, channel: int = 0, half: bool = False) -> np.ndarray | None:
        """bool [nnz]: CSR slots of the spin-less pattern (``half``: of its upper triangle,
        :attr:`half_pattern`) that belong to atom pairs whose real-space blocks of H - shift S
        are all below ``tol`` (eV) in magnitude, over every R; None when no pair qualifies or
        ``tol`` <= 0.

        These are the far tails of the basis functions (e.g. 1e-5 eV at the 6.2 A edge of
        OpenMX's C6.0 orbitals). Dropping them changes H(k) - shift S(k) by at most
        ~(neighbours x tol), and thins the matrix enough to cut its factorisation by a quarter
        (the separators of nested dissection shrink with the interaction range), which is what
        :class:`hotham.electronic.solve.ShiftInvert` uses it for: as a preconditioner only,
        while the residuals of the eigenpairs use the exact H and S."""
        op = self.op
        if tol <= 0 or op.spin == "soc" or op.n_edges == 0:
            return None
        pp = self.half_pattern if half else self.pattern
        H, S = self._values("H", channel), self._values("S", 0)
        edge_max = np.empty(op.n_edges)
        step = max(1, CHUNK_ELEMENTS // int(np.diff(op.offsets).max()))
        for e0 in range(0, op.n_edges, step):               # cache-sized chunks of whole blocks
            e1 = min(e0 + step, op.n_edges)
            a, b = op.offsets[e0], op.offsets[e1]
            x = S[a:b] * -float(shift)
            x += H[a:b]
            np.abs(x, out=x)
            edge_max[e0:e1] = np.maximum.reduceat(x, op.offsets[e0:e1] - a)
        pair_max = np.zeros(int(pp.pair_of_edge.max()) + 1)
        np.maximum.at(pair_max, pp.pair_of_edge, edge_max)
        small = pair_max < tol
        if not small.any():
            return None
        slots = pp.element_slots()
        drop = np.zeros(pp.nnz, dtype=bool)
        per_element = np.repeat(small[pp.pair_of_edge], np.diff(op.offsets))
        if half:
            up = slots >= 0
            slots, per_element = slots[up], per_element[up]
        drop[slots] = per_element
        return drop

    def shifted(self, k, shift: float, channel: int = 0, real: bool = False) -> sp.csr_matrix:
        """H(k) - shift S(k) (eV) in one pass, without forming H and S separately."""
        return self.combination(k, [("H", channel, 1.0), ("S", 0, -float(shift))], real=real)

    # ------------------------------------------------------------------ dense, batched over k
    def _dense_map(self):
        """(C [nnz, E] summing each edge's elements into their CSR slots, dense position of each
        slot in the n x n matrix) for the spin-less pattern; C's values are set per matrix."""
        if getattr(self, "_dmap", None) is None:
            pp, op = self.pattern, self.op
            slot = pp.element_slots()
            edge = np.repeat(np.arange(op.n_edges), np.diff(op.offsets))
            rows = np.repeat(np.arange(pp.n), np.diff(pp.indptr))
            dense_pos = rows * pp.n + pp.indices           # slot -> position in the n x n matrix
            self._dmap = (slot, edge, dense_pos)
        return self._dmap

    def dense(self, kpts, which: str = "H", channel: int = 0) -> np.ndarray:
        """X(k) for a batch of k as dense complex [nk, n, n], vectorised over k and blocks.

        Memory nk * n^2 complex numbers: meant for small cells (bands of primitive cells).
        """
        k = as_kpoints(kpts)
        op = self.op
        pp = self.pattern
        slot, edge, dense_pos = self._dense_map()
        n = pp.n
        ph = np.exp(2j * np.pi * (op.edge_R @ k.T))          # [E, nk]

        def one(x):
            # C[u, e] = sum of the elements of edge e landing in slot u  -> data = C @ phases
            C = sp.csr_matrix((x, (slot, edge)), shape=(pp.nnz, op.n_edges))
            data = C @ ph                                    # [nnz, nk]
            out = np.zeros((len(k), n * n), dtype=np.complex128)
            out[:, dense_pos] = data.T
            return out.reshape(len(k), n, n)

        if which == "H" and op.spin == "soc":
            out = np.zeros((len(k), 2 * n, 2 * n), dtype=np.complex128)
            for s in (0, 1):
                for t in (0, 1):
                    out[:, s * n:(s + 1) * n, t * n:(t + 1) * n] = one(self._component("H", channel, (s, t)))
            return out
        out = one(self._component(which, channel))
        if which == "S" and op.spin == "soc":
            full = np.zeros((len(k), 2 * n, 2 * n), dtype=np.complex128)
            full[:, :n, :n] = out
            full[:, n:, n:] = out
            out = full
        return out


def hk_sk(op: BlockOperator, k, channel: int = 0):
    """``(H(k), S(k))`` as sparse CSR matrices for one fractional k (lattice gauge)."""
    asm = Assembler(op)
    return asm.H(k, channel), asm.S(k)


class SlotSelection:
    """A fixed subset of the stored entries of CSR matrices of one pattern (e.g. the upper
    triangle, without some atom pairs): its index arrays are built once, then every matrix of
    that pattern costs one gather of its values.

    A : the pattern: a CSR matrix, or anything with its ``indptr``, ``indices``, ``shape``, ``nnz``
        (e.g. :attr:`Assembler.pattern`).
    keep : bool [nnz] over the stored entries of ``A``.
    """

    def __init__(self, A: sp.csr_matrix, keep: np.ndarray):
        self.keep = keep
        self.shape = A.shape
        counts = np.add.reduceat(keep, A.indptr[:-1].astype(np.int64)) if A.nnz else np.zeros(A.shape[0], int)
        counts[np.diff(A.indptr) == 0] = 0              # reduceat repeats the value at empty rows
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(A.indices.dtype)
        self.indices = A.indices[keep]
        self.nnz = len(self.indices)

    @staticmethod
    def upper(A: sp.csr_matrix) -> np.ndarray:
        """bool [nnz]: stored entries of A on or above the diagonal."""
        rows = np.repeat(np.arange(A.shape[0], dtype=A.indices.dtype), np.diff(A.indptr))
        return A.indices >= rows

    def matrix(self, data: np.ndarray, dtype=None) -> sp.csr_matrix:
        """The selected entries of a matrix of the pattern, given its full data array [nnz], in
        ``dtype`` (default the data's; gathered chunk by chunk, no temporary of all entries)."""
        x = np.empty(self.nnz, dtype=data.dtype if dtype is None else dtype)
        at = 0
        for s in range(0, len(self.keep), CHUNK_ELEMENTS):
            y = data[s:s + CHUNK_ELEMENTS][self.keep[s:s + CHUNK_ELEMENTS]]
            x[at:at + len(y)] = y
            at += len(y)
        return sp.csr_matrix((x, self.indices, self.indptr), shape=self.shape, copy=False)
