"""The central type of hotham: a structure with its real-space operator blocks.

Vocabulary (one word per concept, everywhere in hotham)
--------------------------------------------------------
block
    The matrix <phi_i(r - t_i)| H |phi_j(r - t_j - R)> of shape (n_orb(i), n_orb(j)) between atom i
    of the home cell and atom j in the cell translated by the integer lattice vector R. Cell
    vectors are the *rows* of ``atoms.cell``, so the image of j sits at ``positions[j] + R @ cell``.
edge
    The label (i, j, R) of a block: ``edge_i``, ``edge_j``, ``edge_R``, edge index e. Edges
    include the on-site ones. Both directions of every pair are edges.
on-site / hopping
    An on-site edge (block) has i == j and R == 0; every other edge is a hopping edge (block).
    The network (:mod:`hotham.nn`) passes messages along hopping edges only and reads on-site
    blocks out of its node features; its "edges" are always the hopping edges.
element
    One matrix element of a block; ``nnz`` counts them (the length of the flat ``S``).
spin
    ``"none"`` (spin-less, each band holds 2 electrons), ``"collinear"`` (separate up and down
    H) or ``"soc"`` (complex spinor blocks with spin-orbit coupling).
Fermi level
    ``fermi_level`` (eV): the chemical potential of the Fermi-Dirac occupation at the electronic
    temperature. From DFT files it is OpenMX's ChemP; for predictions it comes from the electron
    count (:func:`hotham.electronic.find_fermi_level`). "Chemical potential" is only used when
    quoting OpenMX's own output.
shift
    The energy (eV) of the shift-invert solver, H - shift * S.
width
    The smearing width (eV) of a DOS.
displacement
    The standard deviation (Angstrom) of random atomic displacements in the structure generators.
openmx_data
    OpenMX's ``DFT_DATA19`` folder with its PAO and VPS files (``--openmx-data``; default
    ``$HOTHAM_OPENMX_DATA``).

Layout
------
Both halves of every Hermitian pair are stored, H_ji(-R) = H_ij(R)^dagger, and code that sums
blocks (H(k) assembly) must add each stored block exactly once.

Blocks are stored flat, one after another in edge order, each row-major with shape
``(n_orb(i), n_orb(j))`` (no padding to the largest basis); ``offsets[e]`` is where block e
starts. Spin comes in three flavours:

===========  ==========================  ====================================================
``spin``     ``H``                       block of edge e
===========  ==========================  ====================================================
none         float64 ``[nnz]``           ``H[off[e]:off[e+1]].reshape(n_i, n_j)``
collinear    float64 ``[2, nnz]``        ``H[s, off[e]:off[e+1]]``, s = 0 up, 1 down
soc          complex128 ``[4 nnz]``      ``H[4 off[e]:4 off[e+1]].reshape(2 n_i, 2 n_j)``,
                                         spin-major: rows (up orbitals, down orbitals)
===========  ==========================  ====================================================

``S`` is always the spin-less float64 ``[nnz]`` overlap (for ``soc`` the spinor overlap is
S (x) 1). Energies are eV, lengths Angstrom.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from ase import Atoms

from .basis import Basis
from .errors import HothamError, StructureError

SPIN_MODES = ("none", "collinear", "soc")

#: default of :meth:`BlockOperator.with_blocks`: keep the operator's own matrix
KEEP = object()


def _spin_factor(spin: str) -> int:
    return 2 if spin == "soc" else 1


@dataclass(eq=False)
class BlockOperator:
    """A structure (``ase.Atoms``, Angstrom) with its real-space H (eV) and S blocks.

    Parameters
    ----------
    atoms : ase.Atoms
        Species, positions, cell (rows = lattice vectors) and pbc.
    basis : Basis
        Orbital shells per species (see :mod:`hotham.basis`).
    edge_i, edge_j : int array [E]
        Home-cell atom indices of each block.
    edge_R : int array [E, 3]
        Lattice translation of atom j's image.
    H : array or None
        Hamiltonian blocks, flat (layout in the module docstring). ``None`` for a structure
        whose blocks are still to be predicted.
    S : float array [nnz] or None
        Overlap blocks, flat, same layout as spin-less H.
    spin : {"none", "collinear", "soc"}
    fermi_level : float
        Fermi level, eV (OpenMX's ChemP for DFT data; NaN if unknown).
    source : str
        Where the data came from (a path, "model:...", ...).
    meta : dict
        Free-form JSON-serialisable provenance: OpenMX basis labels, valence electrons, ...
    """

    atoms: Atoms
    basis: Basis
    edge_i: np.ndarray
    edge_j: np.ndarray
    edge_R: np.ndarray
    H: np.ndarray | None = None
    S: np.ndarray | None = None
    spin: str = "none"
    fermi_level: float = float("nan")
    source: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.spin not in SPIN_MODES:
            raise HothamError(f"spin must be one of {SPIN_MODES}, got {self.spin!r}")
        self.edge_i = np.ascontiguousarray(self.edge_i, dtype=np.int64)
        self.edge_j = np.ascontiguousarray(self.edge_j, dtype=np.int64)
        self.edge_R = np.ascontiguousarray(np.reshape(self.edge_R, (-1, 3)), dtype=np.int64)
        if not (len(self.edge_i) == len(self.edge_j) == len(self.edge_R)):
            raise StructureError("edge_i, edge_j and edge_R must have the same length")
        n = len(self.atoms)
        if len(self.edge_i) and (min(self.edge_i.min(), self.edge_j.min()) < 0
                                 or max(self.edge_i.max(), self.edge_j.max()) >= n):
            raise StructureError(f"edge atom index out of range for {n} atoms")
        # fail early on species without basis
        self.basis.counts(self.atoms.get_chemical_symbols())
        if self.H is not None:
            dtype = np.complex128 if self.spin == "soc" else np.float64
            self.H = np.ascontiguousarray(self.H, dtype=dtype)
            want = self.h_shape
            if self.H.shape != want:
                raise StructureError(f"H has shape {self.H.shape}, the edges and basis need {want}")
        if self.S is not None:
            self.S = np.ascontiguousarray(self.S, dtype=np.float64)
            if self.S.shape != (self.nnz,):
                raise StructureError(f"S has shape {self.S.shape}, the edges and basis need {(self.nnz,)}")

    # ------------------------------------------------------------------ sizes and offsets
    @property
    def n_atoms(self) -> int:
        return len(self.atoms)

    @property
    def n_edges(self) -> int:
        return len(self.edge_i)

    @cached_property
    def orbital_counts(self) -> np.ndarray:
        """Spin-less orbitals per atom, int [N]."""
        return self.basis.counts(self.atoms.get_chemical_symbols())

    @cached_property
    def orbital_offsets(self) -> np.ndarray:
        """First orbital of each atom in the spin-less orbital list, int [N + 1]."""
        return np.concatenate([[0], np.cumsum(self.orbital_counts)]).astype(np.int64)

    @property
    def n_orbitals(self) -> int:
        """Spin-less orbitals in the home cell (the size of S(k))."""
        return int(self.orbital_offsets[-1])

    @property
    def spin_factor(self) -> int:
        """2 for spinor (soc) blocks, else 1."""
        return _spin_factor(self.spin)

    @cached_property
    def block_shapes(self) -> np.ndarray:
        """Spin-less (n_orb(i), n_orb(j)) of every edge, int [E, 2]."""
        n = self.orbital_counts
        return np.stack([n[self.edge_i], n[self.edge_j]], axis=1)

    @cached_property
    def offsets(self) -> np.ndarray:
        """Start of each spin-less block in the flat arrays, int [E + 1]."""
        sizes = self.block_shapes[:, 0] * self.block_shapes[:, 1]
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    @property
    def nnz(self) -> int:
        """Number of spin-less block elements (length of S)."""
        return int(self.offsets[-1])

    @property
    def h_shape(self) -> tuple[int, ...]:
        if self.spin == "collinear":
            return (2, self.nnz)
        return (self.spin_factor ** 2 * self.nnz,)

    # ------------------------------------------------------------------ blocks
    def h_block(self, e: int, channel: int = 0) -> np.ndarray:
        """View of the H block of edge e: (n_i, n_j), or (2 n_i, 2 n_j) for soc; ``channel``
        0 (up) or 1 (down) for collinear spin."""
        ni, nj = self.block_shapes[e]
        if self.spin == "soc":
            return self.H[4 * self.offsets[e]:4 * self.offsets[e + 1]].reshape(2 * ni, 2 * nj)
        h = self.H[channel] if self.spin == "collinear" else self.H
        return h[self.offsets[e]:self.offsets[e + 1]].reshape(ni, nj)

    def s_block(self, e: int) -> np.ndarray:
        """View of the S block of edge e, (n_i, n_j)."""
        ni, nj = self.block_shapes[e]
        return self.S[self.offsets[e]:self.offsets[e + 1]].reshape(ni, nj)

    def edge_index(self, i, j, R) -> np.ndarray:
        """Index of every block (i[k], j[k], R[k]) in this operator, -1 where absent; int [K].

        Vectorised lookup for matching the blocks of two operators of one structure."""
        i, j = np.atleast_1d(np.asarray(i, dtype=np.int64)), np.atleast_1d(np.asarray(j, dtype=np.int64))
        R = np.asarray(R, dtype=np.int64).reshape(-1, 3)
        out = np.full(len(i), -1, dtype=np.int64)
        if not self.n_edges:
            return out
        inside = ((i >= 0) & (i < self.n_atoms) & (j >= 0) & (j < self.n_atoms)
                  & np.all(np.abs(R) <= self._rmax, axis=1))
        keys = self._edge_keys(np.where(inside, i, 0), np.where(inside, j, 0), np.where(inside[:, None], R, 0))
        sk, order = self._sorted_keys
        pos = np.clip(np.searchsorted(sk, keys), 0, self.n_edges - 1)
        hit = inside & (sk[pos] == keys)
        out[hit] = order[pos[hit]]
        return out

    def find_edge(self, i: int, j: int, R=(0, 0, 0)) -> int:
        """Index of block (i, j, R); KeyError if absent."""
        e = int(self.edge_index([i], [j], [R])[0])
        if e < 0:
            raise KeyError(f"no block (i={i}, j={j}, R={tuple(int(x) for x in R)})")
        return e

    # ------------------------------------------------------------------ geometry
    def edge_vectors(self) -> np.ndarray:
        """r_j + R @ cell - r_i for every edge, Angstrom, [E, 3]."""
        pos = self.atoms.positions
        return pos[self.edge_j] + self.edge_R @ np.asarray(self.atoms.cell) - pos[self.edge_i]

    def edge_lengths(self) -> np.ndarray:
        return np.linalg.norm(self.edge_vectors(), axis=1)

    # ------------------------------------------------------------------ element layout
    @cached_property
    def _rmax(self) -> int:
        return int(np.abs(self.edge_R).max()) if self.n_edges else 0

    def _edge_keys(self, i, j, R) -> np.ndarray:
        """One int64 per (i, j, R), for vectorised lookups."""
        w = 2 * self._rmax + 1  # callers pass |R| <= _rmax only, so keys are unique
        n = self.n_atoms
        k = i.astype(np.int64) * n + j
        for c in range(3):
            k = k * w + (R[:, c] + w // 2)
        return k

    @cached_property
    def _sorted_keys(self):
        keys = self._edge_keys(self.edge_i, self.edge_j, self.edge_R)
        order = np.argsort(keys, kind="stable")
        if self.n_edges and np.any(np.diff(keys[order]) == 0):
            raise StructureError("duplicate blocks: the same (i, j, R) appears more than once")
        return keys[order], order

    @cached_property
    def reverse_edges(self) -> np.ndarray:
        """For every edge (i, j, R), the index of its Hermitian partner (j, i, -R), int [E].

        Raises StructureError naming a block whose partner is missing.
        """
        sk, order = self._sorted_keys
        want = self._edge_keys(self.edge_j, self.edge_i, -self.edge_R)
        pos = np.clip(np.searchsorted(sk, want), 0, max(self.n_edges - 1, 0))
        ok = sk[pos] == want if self.n_edges else np.zeros(0, bool)
        if not np.all(ok):
            e = int(np.flatnonzero(~ok)[0])
            raise StructureError(
                f"block (i={self.edge_i[e]}, j={self.edge_j[e]}, R={tuple(self.edge_R[e].tolist())}) has no "
                f"Hermitian partner (j, i, -R); {int((~ok).sum())} blocks lack one")
        return order[pos]

    #: block elements handled per vectorised step of the element maps (bounds their temporaries)
    LAYOUT_CHUNK = 1 << 22

    def element_chunks(self, spin_factor: int = 1):
        """The flat block elements, block shape by block shape, in chunks of edges of at most
        ~LAYOUT_CHUNK elements: yields (edges [m], spinor block shape (ni, nj), where), ``where``
        the chunk's positions in the flat arrays (edge by edge, each block row-major): a slice
        when its blocks are consecutive, else int [m ni nj].

        A per-element map is then an [m, 1] + [1, ni nj] broadcast written to ``X[where]``, so
        its temporaries stay ~LAYOUT_CHUNK elements whatever the size of the operator (10^8
        elements for a 10^4-atom twisted bilayer)."""
        shapes = self.block_shapes
        if not self.n_edges:
            return
        key = shapes[:, 0] * (int(shapes.max()) + 1) + shapes[:, 1]
        order = np.argsort(key, kind="stable")
        bounds = np.flatnonzero(np.diff(key[order])) + 1
        sf2 = spin_factor * spin_factor
        for group in np.split(order, bounds):
            ni, nj = (spin_factor * int(x) for x in shapes[group[0]])
            step = max(1, self.LAYOUT_CHUNK // (ni * nj))
            for c in range(0, len(group), step):
                e = group[c:c + step]
                if e[-1] - e[0] == len(e) - 1:           # consecutive edges: one contiguous run
                    where = slice(sf2 * self.offsets[e[0]], sf2 * self.offsets[e[-1] + 1])
                else:
                    where = (sf2 * self.offsets[e][:, None] + np.arange(ni * nj)).ravel()
                yield e, (ni, nj), where

    def element_layout(self, spin_factor: int = 1):
        """Global position of every flat block element.

        Returns ``(edge, row, col)``, int arrays of length ``spin_factor**2 * nnz``: the edge
        each element belongs to and its row/column in the home-cell orbital list (spinor index
        spin-major: row = s * n_orbitals + orbital for spin_factor 2). Computed on every call
        (3 x 8 bytes per element): callers that only need the Hermitian partners use
        :meth:`partner_index`.
        """
        sf = spin_factor
        total = sf * sf * self.nnz
        edge, row, col = (np.empty(total, np.int64) for _ in range(3))
        norb, first = self.n_orbitals, self.orbital_offsets
        for e, (ni, nj), where in self.element_chunks(sf):
            a, b = np.divmod(np.arange(ni * nj), nj)          # spinor row, column inside the block
            # spinor index -> spin * n_orbitals + orbital (spin-major)
            ra, cb = (a // (ni // sf)) * norb + a % (ni // sf), (b // (nj // sf)) * norb + b % (nj // sf)
            edge[where] = np.repeat(e, ni * nj)
            row[where] = (first[self.edge_i[e]][:, None] + ra).ravel()
            col[where] = (first[self.edge_j[e]][:, None] + cb).ravel()
        return edge, row, col

    def partner_index(self, spin_factor: int = 1) -> np.ndarray:
        """Flat index of the Hermitian partner of every element: X[p] is (X_ji(-R)^T)[a, b].

        int64 [spin_factor**2 * nnz], cached (it is used by every symmetrisation and by the
        network's Hermitian output)."""
        cache = self.__dict__.setdefault("_partner_cache", {})
        if spin_factor in cache:
            return cache[spin_factor]
        sf = spin_factor
        out = np.empty(sf * sf * self.nnz, np.int64)
        for e, (ni, nj), where in self.element_chunks(sf):
            # element (a, b) of block e is element (b, a) of the partner block (nj x ni)
            a, b = np.divmod(np.arange(ni * nj), nj)
            out[where] = (sf * sf * self.offsets[self.reverse_edges[e]][:, None] + (b * ni + a)).ravel()
        cache[sf] = out
        return out

    # ------------------------------------------------------------------ physics checks
    def hermiticity_error(self, which: str = "H") -> float:
        """max |X_ij(R) - X_ji(-R)^dagger| over all elements (eV for H)."""
        X = self.H if which == "H" else self.S
        if X is None:
            raise HothamError(f"operator has no {which}")
        p = self.partner_index(self.spin_factor if which == "H" else 1)
        if X.size == 0:
            return 0.0
        return float(np.max(np.abs(X - X[..., p].conj())))

    def symmetrized(self) -> "BlockOperator":
        """Copy with X <- (X_ij(R) + X_ji(-R)^dagger) / 2 for H and S: exactly Hermitian."""
        out = self.copy()
        if self.H is not None:
            p = self.partner_index(self.spin_factor)
            out.H = 0.5 * (self.H + self.H[..., p].conj())
        if self.S is not None:
            p = self.partner_index(1)
            out.S = 0.5 * (self.S + self.S[p])
        return out

    def check(self, h_tol: float = 1e-7, s_tol: float = 1e-8) -> dict:
        """Validate shapes, finiteness and Hermitian pairing.

        Tolerances are absolute (eV for H); OpenMX's own blocks pair to ~1e-8 eV.
        Returns the measured errors; raises StructureError on violation.
        """
        report = {}
        for name, X, tol in (("H", self.H, h_tol), ("S", self.S, s_tol)):
            if X is None:
                continue
            if not np.all(np.isfinite(X)):
                raise StructureError(f"{name} contains NaN or inf ({self.source or 'operator'})")
            err = self.hermiticity_error(name)
            report[f"{name}_hermiticity"] = err
            if err > tol:
                raise StructureError(
                    f"{name} is not Hermitian: max |{name}_ij(R) - {name}_ji(-R)^dagger| = {err:.3e} > {tol:.1e}"
                    f" ({self.source or 'operator'})")
        onsite = (self.edge_i == self.edge_j) & np.all(self.edge_R == 0, axis=1)
        if onsite.sum() != self.n_atoms:
            raise StructureError(f"expected one on-site block per atom, found {int(onsite.sum())} "
                                 f"for {self.n_atoms} atoms ({self.source or 'operator'})")
        return report

    # ------------------------------------------------------------------ construction helpers
    def copy(self) -> "BlockOperator":
        out = copy.copy(self)
        out.__dict__ = {k: v for k, v in self.__dict__.items()}
        out.atoms = self.atoms.copy()
        out.meta = copy.deepcopy(self.meta)
        for name in ("H", "S"):
            X = getattr(self, name)
            setattr(out, name, None if X is None else X.copy())
        return out

    def with_blocks(self, H=KEEP, S=KEEP, *, spin=None, source=None) -> "BlockOperator":
        """Same structure and edges, new blocks (e.g. a model's prediction).

        A matrix not given is kept (shared, not copied); ``None`` removes it. A new ``spin``
        needs a new H: an H of another spin layout cannot be kept."""
        if H is KEEP:
            if spin is not None and spin != self.spin and self.H is not None:
                raise HothamError(f"with_blocks(spin={spin!r}) keeps H of spin {self.spin!r}: give the new H")
            H = self.H
        return BlockOperator(self.atoms.copy(), self.basis, self.edge_i, self.edge_j, self.edge_R,
                             H=H, S=self.S if S is KEEP else S, spin=spin or self.spin,
                             fermi_level=self.fermi_level, source=source or self.source,
                             meta=copy.deepcopy(self.meta))

    def onsite_edges(self) -> np.ndarray:
        """Edge index of the on-site block of every atom, int [N]."""
        onsite = np.flatnonzero((self.edge_i == self.edge_j) & np.all(self.edge_R == 0, axis=1))
        out = np.full(self.n_atoms, -1, dtype=np.int64)
        out[self.edge_i[onsite]] = onsite
        return out

    def __repr__(self) -> str:
        f = self.atoms.get_chemical_formula()
        return (f"BlockOperator({f}, {self.n_atoms} atoms, {self.n_edges} blocks, "
                f"{self.n_orbitals} orbitals, spin={self.spin}, {self.basis}, "
                f"E_F={self.fermi_level:.4f} eV, source={self.source!r})")
