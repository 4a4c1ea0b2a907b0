"""Bloch sums of real-space blocks: H(k) and S(k), sparse or dense, vectorised over blocks.

Gauge: the *lattice* gauge of design.md,

    X(k)_{(i a),(j b)} = sum_R exp(2 pi i k . R) X_ij(R)_{ab},

with k in fractional reciprocal-lattice units (k_cart = k @ reciprocal cell incl. 2 pi, so
k_cart . (R @ cell) = 2 pi k . R). This is what OpenMX diagonalises. Eigenvalues do not depend
on the gauge; eigenvectors differ from the atom-position gauge by the phases exp(i k . t_j).

Every stored block is added exactly once (both halves of a Hermitian pair are stored, so the
sum is Hermitian by itself when the blocks are). For ``spin="soc"`` matrices are 2N x 2N,
spin-major (all up orbitals, then all down), and S(k) is S (x) 1.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np
import scipy.sparse as sp

from ..operator import BlockOperator


def as_kpoints(kpts) -> np.ndarray:
    """Fractional k-points as float array [nk, 3] (a single k [3] becomes [1, 3])."""
    k = np.asarray(kpts, dtype=np.float64)
    return k.reshape(-1, 3)


def phase_factors(op: BlockOperator, kpts) -> np.ndarray:
    """exp(2 pi i k . R_e) for every k and edge, complex [nk, E]."""
    k = as_kpoints(kpts)
    return np.exp(2j * np.pi * (k @ op.edge_R.T))


class Assembler:
    """Cached sparsity pattern of H(k) and S(k) for one operator.

    The pattern (distinct (row, col) pairs over all R) and the slot of every block element in
    it are computed once; each k then costs two ``np.bincount`` over the block elements.

    Examples
    --------
    >>> asm = Assembler(op)
    >>> Hk, Sk = asm.H(k), asm.S(k)            # scipy.sparse.csr_matrix, complex
    >>> Hd = asm.dense([[0, 0, 0], [0.5, 0, 0]])  # [nk, n, n] ndarray
    """

    def __init__(self, op: BlockOperator):
        self.op = op

    @property
    def size(self) -> int:
        """Dimension of H(k): spin-less orbitals, times 2 for soc."""
        return self.op.n_orbitals * self.op.spin_factor

    def _pattern(self, sf: int):
        cache = self.__dict__.setdefault("_patterns", {})
        if sf not in cache:
            edge, row, col = self.op.element_layout(sf)
            n = self.op.n_orbitals * sf
            keys = row * n + col
            uniq, slot = np.unique(keys, return_inverse=True)
            r, c = np.divmod(uniq, n)
            indptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n))])
            cache[sf] = (edge, slot, c, indptr, uniq, n)
        return cache[sf]

    def _values(self, which: str, spin: int) -> tuple[np.ndarray, int]:
        op = self.op
        if which == "S":
            return op.S, 1
        if op.H is None:
            raise ValueError(f"operator has no H ({op.source or 'operator'})")
        if op.spin == "collinear":
            return op.H[spin], 1
        return op.H, op.spin_factor

    def _sum(self, X: np.ndarray, sf: int, k: np.ndarray) -> np.ndarray:
        edge, slot, _, _, uniq, _ = self._pattern(sf)
        theta = 2 * np.pi * (self.op.edge_R @ k)
        c, s = np.cos(theta)[edge], np.sin(theta)[edge]
        m = len(uniq)
        if np.iscomplexobj(X):
            re = np.bincount(slot, weights=X.real * c - X.imag * s, minlength=m)
            im = np.bincount(slot, weights=X.real * s + X.imag * c, minlength=m)
        else:
            re = np.bincount(slot, weights=X * c, minlength=m)
            im = np.bincount(slot, weights=X * s, minlength=m)
        return re + 1j * im

    def matrix(self, k, which: str = "H", spin: int = 0) -> sp.csr_matrix:
        """X(k) as a complex CSR matrix for one fractional k [3]. ``which`` is "H" or "S";
        ``spin`` picks the channel of collinear data (0 up, 1 down)."""
        k = np.asarray(k, dtype=np.float64).reshape(3)
        X, sf = self._values(which, spin)
        _, _, cols, indptr, _, n = self._pattern(sf)
        data = self._sum(X, sf, k)
        M = sp.csr_matrix((data, cols, indptr), shape=(n, n))
        if which == "S" and self.op.spin == "soc":
            M = sp.kron(sp.identity(2, format="csr"), M, format="csr")
        return M

    def H(self, k, spin: int = 0) -> sp.csr_matrix:
        """H(k), eV, complex CSR [n, n] (2N x 2N for soc)."""
        return self.matrix(k, "H", spin)

    def S(self, k) -> sp.csr_matrix:
        """S(k), complex CSR [n, n] (S (x) 1 for soc)."""
        return self.matrix(k, "S")

    def dense(self, kpts, which: str = "H", spin: int = 0) -> np.ndarray:
        """X(k) for a batch of k as dense complex [nk, n, n], vectorised over k and blocks.

        Memory nk * n^2 complex numbers: meant for small cells (bands of primitive cells).
        """
        k = as_kpoints(kpts)
        X, sf = self._values(which, spin)
        edge, slot, _, _, uniq, n = self._pattern(sf)
        # C[u, e] = sum of the elements of edge e landing in slot u  -> data = C @ phases
        C = sp.csr_matrix((X, (slot, edge)), shape=(len(uniq), self.op.n_edges))
        data = C @ np.exp(2j * np.pi * (self.op.edge_R @ k.T))  # [n_slots, nk]
        out = np.zeros((len(k), n * n), dtype=np.complex128)
        out[:, uniq] = data.T
        out = out.reshape(len(k), n, n)
        if which == "S" and self.op.spin == "soc":
            full = np.zeros((len(k), 2 * n, 2 * n), dtype=np.complex128)
            full[:, :n, :n] = out
            full[:, n:, n:] = out
            out = full
        return out


def hk_sk(op: BlockOperator, k, spin: int = 0):
    """``(H(k), S(k))`` as sparse CSR matrices for one fractional k (lattice gauge)."""
    asm = Assembler(op)
    return asm.H(k, spin), asm.S(k)
