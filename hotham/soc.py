"""Spin-orbit coupling: spinor blocks split into a spin-less and a SOC part, and back.

A ``spin="soc"`` block (spin-major, (2 n_i, 2 n_j), eV) is written with the Pauli matrices as

    H = sigma_0 (x) A + sum_a sigma_a (x) B_a,        a = x, y, z

    A = (H_uu + H_dd) / 2,   B_z = (H_uu - H_dd) / 2,   B_x = (H_ud + H_du) / 2,   B_y = i (H_ud - H_du) / 2

(spin-major: the spin index is the outer one, ``np.kron(sigma, A)``). Time reversal
Theta = i sigma_y K maps A -> A* and B_a -> -B_a*, so the H of a non-magnetic structure has a real
spin-less part A and a purely imaginary SOC part B_a = i M_a with M_a real. Under a rotation Q the
three M_a transform as a pseudovector (spin does not change sign under inversion) times the
orbital factors: M_a is an l1 (x) l2 (x) 1e tensor. Hermiticity of the whole spinor operator is
A_ji(-R) = A_ij(R)^T and M_a,ji(-R) = -M_a,ij(R)^T.

HamGNN's SOC term (1/2) xi L.sigma is the special case M_a = (xi / 2) K_a with L_a = i K_a the
orbital angular momentum in the internal real-harmonic basis (:func:`angular_momentum`); how much
of the DFT's M it captures is measured by :func:`soc_split_report`.

Flat layouts: A and M live in the spin-less flat layout of the operator ([nnz] and [3, nnz]);
:func:`spinor_index` maps every spin-less element to its four places in the spinor layout.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import HothamError
from .operator import BlockOperator

__all__ = ["angular_momentum", "spinor_index", "split_spinor", "join_spinor", "real_parts", "xi_fits",
           "soc_split_report",
           "PAULI"]

#: sigma_0, sigma_x, sigma_y, sigma_z
PAULI = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=np.complex128)


@lru_cache(maxsize=None)
def angular_momentum(l: int) -> np.ndarray:
    """Matrices <Y_lm'| L_a |Y_lm> (hbar = 1) of the internal real spherical harmonics (m' row,
    m column), a = x, y, z: complex128 [3, 2l+1, 2l+1], purely imaginary and antisymmetric
    (cached: do not modify).

    From the rotations of :func:`hotham.so3.wigner_D`: a function rotated by angle t about axis
    a is exp(-i t L_a) applied to it, and the internal harmonics rotate by D_l, so
    L_a = i log(D_l(R_a(t))) / t (exact for t < pi)."""
    from scipy.linalg import logm
    from scipy.spatial.transform import Rotation

    from .so3 import wigner_D
    t = 0.5
    out = np.empty((3, 2 * l + 1, 2 * l + 1), dtype=np.complex128)
    for a in range(3):
        axis = np.zeros(3)
        axis[a] = t
        G = np.real(logm(wigner_D(l, Rotation.from_rotvec(axis).as_matrix()))) / t   # real antisymmetric
        G = 0.5 * (G - G.T)
        G[np.abs(G) < 1e-13] = 0.0
        out[a] = 1j * G
    out.setflags(write=False)
    return out


def spinor_index(op: BlockOperator) -> np.ndarray:
    """Positions in the flat spinor layout (``op.H`` of a soc operator) of every spin-less
    element: int64 [4, nnz], rows (up-up, up-down, down-up, down-down)."""
    out = np.empty((4, op.nnz), dtype=np.int64)
    for e, (ni, nj), where in op.element_chunks(1):
        a, b = np.divmod(np.arange(ni * nj), nj)
        base = 4 * op.offsets[e][:, None]
        for k, (s, t) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            # spin-major (2 ni, 2 nj) block: row s ni + a, column t nj + b
            out[k, where] = (base + (s * ni + a) * 2 * nj + t * nj + b).ravel()
    return out


def split_spinor(op: BlockOperator) -> tuple[np.ndarray, np.ndarray]:
    """(A complex128 [nnz], B complex128 [3, nnz]) of a soc operator's H, in its spin-less flat
    layout (definitions in the module docstring; eV)."""
    if op.spin != "soc" or op.H is None:
        raise HothamError(f"split_spinor needs the H of a soc operator ({op.source or 'operator'} is spin {op.spin})")
    uu, ud, du, dd = op.H[spinor_index(op)]
    return 0.5 * (uu + dd), np.stack([0.5 * (ud + du), 0.5j * (ud - du), 0.5 * (uu - dd)])


def join_spinor(op: BlockOperator, A, M) -> np.ndarray:
    """Flat spinor H (complex128 [4 nnz], eV) of ``sigma_0 (x) A + i sum_a sigma_a (x) M_a`` for a
    real spin-less part A [nnz] and real SOC part M [3, nnz] in ``op``'s spin-less layout."""
    A, (Mx, My, Mz) = np.asarray(A, dtype=np.float64), np.asarray(M, dtype=np.float64)
    H = np.empty(4 * op.nnz, dtype=np.complex128)
    uu, ud, du, dd = spinor_index(op)
    H[uu], H[dd] = A + 1j * Mz, A - 1j * Mz
    H[ud], H[du] = My + 1j * Mx, -My + 1j * Mx
    return H


def real_parts(op: BlockOperator) -> np.ndarray:
    """The time-reversal-even real parts of a soc operator's H: float64 [4, nnz], rows A, M_x,
    M_y, M_z (A = Re A, M_a = Im B_a; eV), in its spin-less flat layout. The training target of
    a SOC model: each real and imaginary part of a spinor element is +- one of them (twice each),
    so errors averaged over these rows are those over the real and imaginary parts of the
    spinor blocks (up to the parts time reversal forbids, ~1e-11 of H in OpenMX's data)."""
    A, B = split_spinor(op)
    return np.concatenate([A.real[None], B.imag])


def xi_fits(op: BlockOperator, M: np.ndarray):
    """HamGNN's (1/2) xi L.sigma fitted to the SOC part M [3, nnz] of ``op``, block by block.

    Yields ``(edges [m], shell a, shell b, l, where [m, n_a, n_b], c [m])`` for every group of
    blocks of one species pair and every pair of shells (a of the row atom, b of the column
    atom) of equal l >= 1: ``where`` the flat positions of the (a, b) sub-blocks, and ``c``
    (= xi / 2, eV) minimises sum_a |M_a - c K_a|^2 over each, K_a = -i L_a
    (:func:`angular_momentum`)."""
    symbols = op.atoms.get_chemical_symbols()
    for e, (ni, nj), _ in op.element_chunks(1):
        si, sj = symbols[op.edge_i[e[0]]], symbols[op.edge_j[e[0]]]
        starts_j = np.concatenate([[0], np.cumsum([2 * l + 1 for l in op.basis.shells[sj]])])
        start_i = 0
        for a, l in enumerate(op.basis.shells[si]):
            for b, lb in enumerate(op.basis.shells[sj]):
                if lb != l or l == 0:
                    continue
                m = np.arange(2 * l + 1)
                where = (op.offsets[e][:, None, None] + (start_i + m)[:, None] * nj + starts_j[b] + m)
                K = angular_momentum(l).imag
                c = np.einsum("aemn,amn->e", M[:, where], K) / np.sum(K * K)
                yield e, a, b, l, where, c
            start_i += 2 * l + 1


def soc_split_report(ops) -> dict:
    """How the DFT spinor blocks of soc operators split (eV, norms over all elements).

    Returns ``{"A_norm", "M_norm"}`` (Frobenius norms of the spin-less part A and of the SOC part
    M = Im B), ``"tr_odd"`` (norm of Im A and Re B_a, the parts time reversal forbids, over the
    norm of the whole H) and, for on-site and hopping blocks separately, ``"xi_fit"`` {kind:
    {"M_norm", "residual"}}: the norm of M left after the best (1/2) xi L.sigma per block and
    shell pair of equal l >= 1 (:func:`xi_fits`, HamGNN's form; pairs of unequal l, and s
    shells, are left whole), as a fraction of the norm of M on those blocks, plus
    ``"onsite_xi_eV"`` {species: {shell pair "d1-d1": mean xi over atoms}}.
    """
    sums = {"A": 0.0, "M": 0.0, "odd": 0.0, "H": 0.0}
    fit = {k: {"M": 0.0, "res": 0.0} for k in ("onsite", "hopping")}
    xis: dict = {}
    for op in ops:
        A, B = split_spinor(op)
        M = B.imag
        sums["A"] += float(np.sum(A.real ** 2))
        sums["M"] += float(np.sum(M ** 2))
        sums["odd"] += float(np.sum(A.imag ** 2) + np.sum(B.real ** 2))
        sums["H"] += float(np.sum(np.abs(op.H) ** 2))
        onsite = (op.edge_i == op.edge_j) & np.all(op.edge_R == 0, axis=1)
        residual = M.copy()
        symbols = op.atoms.get_chemical_symbols()
        for e, a, b, l, where, c in xi_fits(op, M):
            residual[:, where] -= c[None, :, None, None] * angular_momentum(l).imag[:, None]
            on = onsite[e]
            if on.any():
                sym = symbols[op.edge_i[e[0]]]
                shells = op.basis.shells[sym]
                name = f"{'spdfgh'[l]}{shells[:a].count(l) + 1}-{'spdfgh'[l]}{shells[:b].count(l) + 1}"
                xis.setdefault((sym, name), []).extend((2 * c[on]).tolist())
        per_element = np.repeat(onsite, op.block_shapes[:, 0] * op.block_shapes[:, 1])
        for kind, sel in (("onsite", per_element), ("hopping", ~per_element)):
            fit[kind]["M"] += float(np.sum(M[:, sel] ** 2))
            fit[kind]["res"] += float(np.sum(residual[:, sel] ** 2))
    onsite_xi: dict = {}
    for (s, name), v in sorted(xis.items()):
        onsite_xi.setdefault(s, {})[name] = float(np.mean(v))
    return {"A_norm": sums["A"] ** 0.5, "M_norm": sums["M"] ** 0.5,
            "tr_odd": (sums["odd"] / sums["H"]) ** 0.5 if sums["H"] else 0.0,
            "xi_fit": {k: {"M_norm": v["M"] ** 0.5, "residual": (v["res"] / v["M"]) ** 0.5 if v["M"] else 0.0}
                       for k, v in fit.items()},
            "onsite_xi_eV": onsite_xi}
