"""Overlap matrix S of any structure from OpenMX's pseudo-atomic orbitals (two-centre integrals).

S is pure geometry: with phi_{a}(r) = R_{l,mul}(r) Y_lm(r^) (real spherical harmonics in
hotham's internal convention, radial parts from OpenMX's ``.pao`` files),

    S_ij(R)_{ab} = int phi_ia(r - t_i) phi_jb(r - t_j - R) dr = int phi_ia(r) phi_jb(r - d) dr,
    d = t_j + R @ cell - t_i.

Through the Fourier transform phi~(k) = 4 pi (-i)^l Y_lm(k^) R~_l(k), R~_l(k) = int r^2 j_l(kr) R(r) dr,
Parseval and the plane-wave expansion of exp(-i k.d), this becomes the standard sum

    S_{l1 m1, l2 m2}(d) = 8 sum_{L, M} (-1)^{(l1 - l2 - L)/2} G(l1 m1, l2 m2, L M) Y_LM(d^) I_L(|d|),
    I_L(d) = int_0^inf k^2 R~_1(k) R~_2(k) j_L(k d) dk,

with L = |l1 - l2| .. l1 + l2 in steps of 2 and G the real Gaunt coefficients (integral of three
internal real SH over the sphere). At d = 0 only L = 0 survives (j_L(0) = 0 for L > 0).

Numerics: the radial functions are splined onto a uniform r grid and Bessel-transformed once
(Simpson); I_L(d) is tabulated once per shell pair on a uniform grid of |d| up to r_c(i) + r_c(j)
and interpolated with cubic splines, so the cost per edge is a spline evaluation plus a few small
contractions, vectorised over all edges of a species pair (timed by benchmarks/overlap.py,
figures in benchmarks/RESULTS.md). The default grids are converged to 6e-8; a brute-force 3D
quadrature agrees to 3.5e-7. OpenMX's own S (same method, 900-point transforms up to k = 60/Bohr)
differs by at most 4e-6 (C), 1e-5 (B, N) and 3.7e-5 (Mo, S): OpenMX's numerics, not a convention
(a sign or order error shows up as 0.1-1). Measured on all 59 OpenMX reference structures.

Kinetic energy: T_ij = <phi_i| -nabla^2/2 |phi_j> is the same sum with k^2/2 (Hartree Bohr^2) in
the k integrand, I_L(d) = int k^2 (k^2/2) R~_1 R~_2 j_L(kd) dk (``OverlapCalculator(kinetic=True)``,
eV). It is what carries H along S's near-null directions (:mod:`hotham.kinetic`).

Neighbour list: OpenMX keeps the block (i, j, R) when |d| < r_c(i) + r_c(j) with r_c the PAO
cutoff radius (``C6.0`` -> 6.0 Bohr); :func:`structure_operator` reproduces OpenMX's edge sets
exactly. Lengths are Angstrom at the interface (Bohr inside the radial tables).
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree
from scipy.interpolate import CubicSpline
from scipy.special import spherical_jn

from .basis import Basis, parse_openmx_basis
from .errors import BasisError, StructureError
from .operator import BlockOperator
from .so3 import real_gaunt, spherical_harmonics_all

__all__ = ["structure_operator", "overlap_operator", "overlap_skeleton", "OverlapCalculator", "label_cutoff", "MIN_DISTANCE",
           "calculator"]

#: atoms closer than this (Angstrom) are rejected as overlapping
MIN_DISTANCE = 0.5     # no bond is shorter (H2: 0.74 A)

#: edges handled per vectorised step (bounds the temporary memory to ~ CHUNK * n_i * n_j * 8 bytes * few)
CHUNK_EDGES = 20000


# ---------------------------------------------------------------------------- radial part
@lru_cache(maxsize=8)
def _bessel_matrix(L: int, kmax: float, nk: int, dmax: float, nd: int) -> np.ndarray:
    """j_L(k d) on the (d, k) grids, [nd, nk] (cached: shared by all species pairs)."""
    k = np.linspace(0.0, kmax, nk)
    d = np.linspace(0.0, dmax, nd)
    return spherical_jn(L, np.outer(d, k))


@dataclass
class _PairTable:
    """Radial integrals I_L(d) of every (shell of A, shell of B, L) of one species pair."""

    shells_a: list            # [(l, mul)] of species A, storage order
    shells_b: list
    combos: dict              # (sa, sb) -> list of (L, column)
    spline: CubicSpline       # d (Bohr) -> [ncol]
    dmax: float               # Bohr


class OverlapCalculator:
    """Two-centre overlaps of OpenMX PAO bases.

    Parameters
    ----------
    basis_labels : mapping
        Species symbol -> OpenMX basis label, e.g. ``{"Mo": "Mo7.0-s3p2d2", "S": "S7.0-s2p2d1"}``.
    openmx_data : path, optional
        OpenMX ``DFT_DATA19`` folder (default: :func:`hotham.parsers.openmx.pao.find_openmx_data`).
    paos : mapping, optional
        Species -> :class:`~hotham.parsers.openmx.pao.PAO` to use instead of the files (the data a
        model carries, :attr:`hotham.checkpoint.Predictor.paos`); ``openmx_data`` is then not read.
    kmax : float
        Upper limit of the k integrals, 1/Bohr (the PAO transforms fall below ~1e-5 by k = 30).
    nk, nr : int
        Points (odd) of the uniform k and r grids of the Bessel transforms (Simpson).
    dd : float
        Spacing (Bohr) of the |d| grid on which I_L(d) is tabulated for the cubic splines.
    kinetic : bool
        Kinetic-energy integrals <phi_a| -nabla^2/2 |phi_b> (eV) instead of overlaps: the k
        integrand gains k^2/2.

    The defaults agree with a 4x finer, longer set of grids (kmax 60, nk 8001, nr 4001,
    dd 0.005) to 6e-8 on every block of MoS2 (Mo7.0-s3p2d2, S7.0-s2p2d1).
    """

    def __init__(self, basis_labels: Mapping[str, str], openmx_data=None, *, paos=None, kmax: float = 30.0,
                 nk: int = 1501, nr: int = 1201, dd: float = 0.02, kinetic: bool = False):
        from .parsers.openmx.pao import basis_paos, pao_name
        self.kinetic = bool(kinetic)
        self.labels = dict(basis_labels)
        self.basis = Basis.from_openmx(self.labels)
        self.kmax, self.nk, self.nr, self.dd = float(kmax), int(nk), int(nr), float(dd)
        self.k = np.linspace(0.0, self.kmax, self.nk)
        self._transforms = {}
        if paos is None:
            self.paos = basis_paos(self.labels, openmx_data)
        else:
            self.paos = {}
            for sym, lab in self.labels.items():
                pao = paos.get(sym)
                if pao is None or pao.name != pao_name(lab):
                    raise BasisError(f"species {sym}: basis {lab!r} needs the radial functions of {pao_name(lab)}, "
                                     f"given {pao.name if pao else 'none'}")
                self.paos[sym] = pao.for_shells(self.basis.shell_list(sym))   # BasisError if one is missing
        self._tables: dict = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ radii
    def cutoff(self, symbol: str) -> float:
        """PAO cutoff radius of a species, Angstrom."""
        return self._pao(symbol).cutoff * Bohr

    def radii(self) -> dict[str, float]:
        """Species -> cutoff radius (Angstrom)."""
        return {s: self.cutoff(s) for s in self.labels}

    def _pao(self, symbol):
        try:
            return self.paos[symbol]
        except KeyError:
            raise BasisError(f"species {symbol!r} has no basis (known: {', '.join(self.paos)})") from None

    # ------------------------------------------------------------------ radial tables
    def transform(self, symbol: str, l: int, mul: int) -> np.ndarray:
        """R~(k) = int r^2 j_l(k r) R_{l,mul}(r) dr on ``self.k`` (Bohr^3/2)."""
        key = (symbol, l)
        if key not in self._transforms:
            pao = self._pao(symbol)
            muls = sorted({m for ll, m in self.basis.shell_list(symbol) if ll == l})
            r = np.linspace(0.0, pao.cutoff, self.nr)
            # natural cubic spline through the file's points (log grid); inside the first point
            # (~1e-4 Bohr) R is continued as constant (l = 0) or ~ r^l: negligible either way
            f = CubicSpline(pao.r, pao.radial[l, : max(muls) + 1], axis=1)(np.clip(r, pao.r[0], None))
            if l > 0:
                f = np.where(r < pao.r[0], f * (r / pao.r[0]) ** l, f)
            jl = spherical_jn(l, np.outer(self.k, r))            # [nk, nr], shared by the multiplicities
            w = _simpson_weights(self.nr, r[1] - r[0]) * r ** 2
            self._transforms[key] = (jl * w) @ f.T                  # [nk, mul]
        return self._transforms[key][:, mul]

    def table(self, a: str, b: str) -> _PairTable:
        """The tabulated I_L(d) of species pair (a, b), built on first use."""
        key = (a, b)
        with self._lock:
            if key in self._tables:
                return self._tables[key]
            sa, sb = self.basis.shell_list(a), self.basis.shell_list(b)
            dmax = self._pao(a).cutoff + self._pao(b).cutoff
            nd = int(np.ceil(dmax / self.dd)) + 1
            dmax = (nd - 1) * self.dd
            combos, cols, Ls = {}, [], []
            for ia, (l1, m1) in enumerate(sa):
                for ib, (l2, m2) in enumerate(sb):
                    lst = []
                    for L in range(abs(l1 - l2), l1 + l2 + 1, 2):
                        lst.append((L, len(cols)))
                        cols.append(self.k ** 2 * self.transform(a, l1, m1) * self.transform(b, l2, m2))
                        Ls.append(L)
                    combos[(ia, ib)] = lst
            F = np.array(cols)                              # [ncol, nk]
            if self.kinetic:                                # -nabla^2/2 -> k^2/2 Hartree Bohr^2, in eV
                F = F * (0.5 * Hartree * self.k ** 2)
            Ls = np.array(Ls)
            I = np.empty((nd, len(cols)))
            w = _simpson_weights(self.nk, self.k[1] - self.k[0])
            for L in np.unique(Ls):
                sel = np.flatnonzero(Ls == L)
                I[:, sel] = _bessel_matrix(int(L), self.kmax, self.nk, dmax, nd) @ (F[sel] * w).T
            d = np.linspace(0.0, dmax, nd)
            tab = _PairTable(sa, sb, combos, CubicSpline(d, I, axis=0), dmax)
            self._tables[key] = tab
            return tab

    # ------------------------------------------------------------------ blocks
    def blocks(self, a: str, b: str, vectors) -> np.ndarray:
        """Overlap blocks between an atom of species a at 0 and one of species b at each vector.

        ``vectors``: [E, 3] Angstrom (d = t_j + R @ cell - t_i). Returns [E, n_orb(a), n_orb(b)] in
        the internal orbital order. Pairs beyond r_c(a) + r_c(b) get exact zeros.
        """
        v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3) / Bohr
        tab = self.table(a, b)
        na, nb = self.basis.n_orb(a), self.basis.n_orb(b)
        out = np.zeros((len(v), na, nb))
        if not len(v):
            return out
        d = np.linalg.norm(v, axis=1)
        inside = d < tab.dmax
        u = np.where(d[:, None] > 1e-12, v / np.where(d > 1e-12, d, 1.0)[:, None], [0.0, 0.0, 1.0])
        lmax = max(l for l, _ in tab.shells_a + tab.shells_b)
        # Y[L] [E, 2L+1]: internal real SH of the edge directions, one contiguous array per L
        Yall = spherical_harmonics_all(2 * lmax, u, normalize=False).numpy()
        Y = [np.ascontiguousarray(Yall[:, L * L:(L + 1) ** 2]) for L in range(2 * lmax + 1)]
        I = tab.spline(np.minimum(d, tab.dmax))
        I[~inside] = 0.0
        off_a = np.concatenate([[0], np.cumsum([2 * l + 1 for l, _ in tab.shells_a])])
        off_b = np.concatenate([[0], np.cumsum([2 * l + 1 for l, _ in tab.shells_b])])
        # angular factors 8 (-1)^((l1-l2-L)/2) sum_M G Y_LM, one per (l1, l2, L), shared by the multiplicities
        ang = {}
        for (ia, ib), lst in tab.combos.items():
            l1, l2 = tab.shells_a[ia][0], tab.shells_b[ib][0]
            blk = 0.0
            for L, col in lst:
                if (l1, l2, L) not in ang:
                    G = real_gaunt(l1, l2, L)
                    sign = -1.0 if ((l1 - l2 - L) // 2) % 2 else 1.0
                    ang[(l1, l2, L)] = 8.0 * sign * np.einsum("abm,em->eab", G, Y[L])
                blk = blk + I[:, col, None, None] * ang[(l1, l2, L)]
            out[:, off_a[ia]:off_a[ia + 1], off_b[ib]:off_b[ib + 1]] = blk
        return out

    def fill(self, op: BlockOperator) -> np.ndarray:
        """Flat S (or T, eV, when ``kinetic``; float64 [op.nnz]) for the edges of ``op`` (its basis
        must be this one's)."""
        symbols = np.array(op.atoms.get_chemical_symbols())
        for s in set(symbols):
            if op.basis.shells.get(s) != self.basis.shells.get(s):
                raise BasisError(f"species {s}: the operator's basis {op.basis.shells.get(s)} differs from "
                                 f"the PAO basis {self.basis.shells.get(s)} ({self.labels.get(s)})")
        S = np.empty(op.nnz)
        vec = op.edge_vectors()
        si, sj = symbols[op.edge_i], symbols[op.edge_j]
        for a in sorted(set(symbols)):
            for b in sorted(set(symbols)):
                edges = np.flatnonzero((si == a) & (sj == b))
                size = self.basis.n_orb(a) * self.basis.n_orb(b)
                for c in range(0, len(edges), CHUNK_EDGES):
                    e = edges[c:c + CHUNK_EDGES]
                    blk = self.blocks(a, b, vec[e]).reshape(-1)
                    if e[-1] - e[0] + 1 == len(e):      # consecutive edges: one contiguous slice
                        S[op.offsets[e[0]]:op.offsets[e[-1] + 1]] = blk
                    else:
                        S[(op.offsets[e][:, None] + np.arange(size)[None]).reshape(-1)] = blk
        return S


def _simpson_weights(n: int, h: float) -> np.ndarray:
    """Composite Simpson weights on n (odd) equally spaced points."""
    if n % 2 == 0:
        raise ValueError("Simpson's rule needs an odd number of points")
    w = np.ones(n)
    w[1:-1:2] = 4.0
    w[2:-1:2] = 2.0
    return w * h / 3.0


# ---------------------------------------------------------------------------- neighbour list
_CUTOFF = re.compile(r"([0-9]+(?:\.[0-9]*)?)")


def label_cutoff(label: str) -> float:
    """Cutoff radius (Angstrom) named by an OpenMX basis label: ``"C6.0-s2p2d1"`` -> 6.0 Bohr."""
    pao = label.strip().split("-", 1)[0]
    m = _CUTOFF.search(pao)
    if not m:
        raise BasisError(f"basis label {label!r} names no cutoff radius (expected e.g. 'C6.0-s2p2d1')")
    return float(m.group(1)) * Bohr


def _radii_for(atoms: Atoms, basis: Basis, radii) -> np.ndarray:
    symbols = atoms.get_chemical_symbols()
    table = {}
    for s in set(symbols):
        if radii is not None and s in radii:
            table[s] = float(radii[s])
        elif s in basis.labels:
            table[s] = label_cutoff(basis.labels[s])
        else:
            basis.n_orb(s)   # BasisError for species without basis
            raise BasisError(f"species {s!r}: no cutoff radius (pass radii= or an OpenMX basis label)")
    return np.array([table[s] for s in symbols])


def structure_operator(atoms: Atoms, basis: Basis, radii: Mapping[str, float] | None = None) -> BlockOperator:
    """A :class:`BlockOperator` with OpenMX's edges of ``atoms`` and no blocks (H = S = None).

    Edges: every (i, j, R) with |t_j + R @ cell - t_i| < r_c(i) + r_c(j) (both directions, the
    on-site blocks included), images only along periodic directions. ``radii``: species ->
    cutoff radius r_c in Angstrom; by default read from the OpenMX labels of ``basis``
    (``C6.0-...`` -> 6.0 Bohr). Edges are sorted by (i, j, R). Atoms closer than ``MIN_DISTANCE`` (0.5 Angstrom) raise
    :class:`StructureError`.
    """
    from ase.neighborlist import primitive_neighbor_list
    if len(atoms) == 0:
        raise StructureError("structure has no atoms")
    rc = _radii_for(atoms, basis, radii)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell)
    if np.any(pbc) and abs(np.linalg.det(cell)) < 1e-9 and np.linalg.matrix_rank(cell[pbc]) < pbc.sum():
        raise StructureError("periodic directions need non-degenerate cell vectors")
    pos = atoms.positions
    if not np.all(np.isfinite(pos)):
        raise StructureError("atomic positions contain NaN or inf")
    # ase's neighbour list (cell binning, linear in N): pairs with d < rc_i + rc_j
    i, j, S, dist = primitive_neighbor_list("ijSd", pbc, cell, pos, rc, self_interaction=False,
                                            use_scaled_positions=False)
    close = dist < MIN_DISTANCE
    if np.any(close):
        k = int(np.flatnonzero(close)[0])
        raise StructureError(f"atoms {i[k]} ({atoms[i[k]].symbol}) and {j[k]} ({atoms[j[k]].symbol}, "
                             f"image R={tuple(int(x) for x in S[k])}) are {dist[k]:.4f} A apart "
                             f"(< {MIN_DISTANCE} A): overlapping atoms; {int(close.sum()) // 2 or 1} such pairs")
    n = len(atoms)
    ei = np.concatenate([np.arange(n), i])
    ej = np.concatenate([np.arange(n), j])
    eR = np.concatenate([np.zeros((n, 3), dtype=np.int64), S.astype(np.int64)])
    order = np.lexsort((eR[:, 2], eR[:, 1], eR[:, 0], ej, ei))
    return BlockOperator(atoms.copy(), basis, ei[order], ej[order], eR[order], source="structure",
                         meta={"basis_labels": dict(basis.labels)})


# ---------------------------------------------------------------------------- one call
_CALCULATORS: dict = {}


def calculator(labels: Mapping[str, str], openmx_data=None, paos=None, *, kinetic: bool = False) -> OverlapCalculator:
    """The cached calculator of a basis: PAO files from ``openmx_data`` or ``$HOTHAM_OPENMX_DATA``
    when either is given, else the PAO data ``paos`` (species -> PAO, what a model carries).
    ``kinetic``: the kinetic-energy integrals instead of the overlaps."""
    from .parsers.openmx.pao import DATA_ENV, OpenMXDataNotFound, find_openmx_data
    if openmx_data is None and not os.environ.get(DATA_ENV) and paos is not None:
        missing = sorted(set(labels) - set(paos))
        if missing:
            raise OpenMXDataNotFound(
                f"the model carries no PAO data for {', '.join(missing)}: set {DATA_ENV} to OpenMX's DFT_DATA19 "
                "folder or pass it (--openmx-data / openmx_data=)")
        digest = hashlib.sha1()
        for s in sorted(labels):
            p = paos[s]
            digest.update(f"{s}:{p.name}:{p.cutoff!r}".encode())
            digest.update(np.ascontiguousarray(p.r).tobytes())
            digest.update(np.ascontiguousarray(p.radial).tobytes())
        key = (tuple(sorted(labels.items())), "embedded:" + digest.hexdigest(), kinetic)
        if key not in _CALCULATORS:
            _CALCULATORS[key] = OverlapCalculator(labels, paos=paos, kinetic=kinetic)
        return _CALCULATORS[key]
    try:
        root = find_openmx_data(openmx_data)
    except OpenMXDataNotFound as exc:
        if openmx_data is not None or os.environ.get(DATA_ENV):
            raise
        raise OpenMXDataNotFound(f"{exc}; a model checkpoint can carry them instead: "
                                 "hotham model embed-basis model.pt --openmx-data DFT_DATA19") from None
    key = (tuple(sorted(labels.items())), str(root), kinetic)
    if key not in _CALCULATORS:
        _CALCULATORS[key] = OverlapCalculator(labels, root, kinetic=kinetic)
    return _CALCULATORS[key]


def overlap_operator(atoms: Atoms, basis_labels: Mapping[str, str], openmx_data=None, *,
                     paos: Mapping | None = None) -> BlockOperator:
    """OpenMX's neighbour list and overlap S of any structure, from the PAO radial functions alone.

    ``basis_labels``: species -> OpenMX basis label (``{"C": "C6.0-s2p2d1"}``). The radial
    functions come from the PAO files of ``openmx_data`` (OpenMX's ``DFT_DATA19`` folder), else
    of ``$HOTHAM_OPENMX_DATA``, else from ``paos`` (species ->
    :class:`~hotham.parsers.openmx.pao.PAO`: the data a model carries,
    :attr:`hotham.checkpoint.Predictor.paos`); the files, when named, override it. Returns a
    :class:`BlockOperator` with ``S`` filled (internal orbital convention) and ``H = None``,
    ready for a model's prediction (``op.with_blocks(H=...)``). The radial tables of a basis are
    cached for the session.
    """
    op, calc = overlap_skeleton(atoms, basis_labels, openmx_data, paos=paos)
    op.S = calc.fill(op)
    return op


def overlap_skeleton(atoms: Atoms, basis_labels: Mapping[str, str], openmx_data=None, *,
                     paos: Mapping | None = None) -> tuple[BlockOperator, OverlapCalculator]:
    """:func:`overlap_operator` in two steps: (the operator with OpenMX's blocks and no S, the
    calculator whose ``fill(op)`` gives its S). :func:`hotham.predict` fills S after the network,
    so that the two are not in memory at once."""
    labels = dict(basis_labels)
    missing = sorted(set(atoms.get_chemical_symbols()) - set(labels))
    if missing:
        raise BasisError(f"no basis label for species {', '.join(missing)} (given: {', '.join(labels) or 'none'})")
    labels = {s: labels[s] for s in sorted(set(atoms.get_chemical_symbols()))}
    for lab in labels.values():
        parse_openmx_basis(lab)
    calc = calculator(labels, openmx_data, paos)
    op = structure_operator(atoms, calc.basis, calc.radii())
    op.source = "overlap:" + ",".join(labels.values())
    return op, calc


def structure_file_overlap(path, basis_labels: Mapping[str, str] | None = None, openmx_data=None) -> BlockOperator:
    """:func:`overlap_operator` of a structure file (any file :func:`hotham.io.read_structure`
    reads). The basis labels are those of an OpenMX ``.dat`` input, overridden or completed by
    ``basis_labels``."""
    from .io import read_structure
    atoms = read_structure(path)
    labels = {**atoms.info.get("basis_labels", {}), **(basis_labels or {})}
    return overlap_operator(atoms, labels, openmx_data=openmx_data)
