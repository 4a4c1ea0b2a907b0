"""Rotations of real spherical harmonics in hotham's internal convention.

Internal real spherical harmonics of degree l are e3nn's ``o3.spherical_harmonics(l, r[..., [1, 2, 0]])``:
for l = 1 the components (y, z, x), for l = 2 (xy, yz, 3z^2-r^2, xz, x^2-y^2), m = -l..l.
``wigner_D(l, Q)`` is the real matrix with Y_l(Q r) = D_l(Q) Y_l(r) for any orthogonal Q
(improper Q picks up the parity (-1)^l). An operator block between shells l1 and l2 then
transforms as H' = D_l1(Q) H D_l2(Q)^T under the rigid rotation r -> Q r.
"""
from __future__ import annotations

from contextlib import contextmanager
from functools import lru_cache

import numpy as np
import torch
from e3nn import o3


# (x, y, z) -> (y, z, x): the internal SH of a vector r are e3nn's of P r.
_PERM = [1, 2, 0]
_P = np.eye(3)[_PERM]


def spherical_harmonics(l: int, r, normalize: bool = True) -> torch.Tensor:
    """Internal real SH of degree l at vectors r [..., 3] -> [..., 2l+1] (e3nn 'integral' norm,
    i.e. orthonormal on the unit sphere)."""
    r = torch.as_tensor(r)
    return o3.spherical_harmonics(l, r[..., _PERM], normalize=normalize, normalization="integral")


def spherical_harmonics_all(lmax: int, r, normalize: bool = True) -> torch.Tensor:
    """Internal real SH of every degree l = 0..lmax at vectors r [..., 3] -> [..., (lmax+1)^2],
    flattened l-major (l = 0; l = 1, m = -1..1; ...), same dtype as r (numpy arrays are taken
    as they are: pass float64 for exact tables). Orthonormal on the unit sphere."""
    r = torch.as_tensor(r)
    return torch.cat([spherical_harmonics(l, r, normalize=normalize) for l in range(lmax + 1)], dim=-1)


@lru_cache(maxsize=None)
def real_gaunt(l1: int, l2: int, L: int) -> np.ndarray:
    """Real Gaunt coefficients G[m1, m2, M] = int Y_{l1 m1} Y_{l2 m2} Y_{L M} dOmega of the internal
    real SH (orthonormal, m = -l..l), shape (2l1+1, 2l2+1, 2L+1), float64 (cached: do not modify).

    Zero unless l1 + l2 + L is even and |l1 - l2| <= L <= l1 + l2 (parity and the triangle rule).
    Computed by quadrature that is exact for the integrand, a polynomial of degree l1 + l2 + L on
    the sphere: Gauss-Legendre in cos(theta) x uniform phi; entries below 1e-14 are set to 0."""
    n = (l1 + l2 + L) // 2 + 2
    x, w = np.polynomial.legendre.leggauss(n)
    nphi = l1 + l2 + L + 2
    phi = 2 * np.pi * np.arange(nphi) / nphi
    st = np.sqrt(1 - x ** 2)
    v = np.stack([np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.outer(x, np.ones(nphi))], -1).reshape(-1, 3)
    wt = np.outer(w, np.full(nphi, 2 * np.pi / nphi)).reshape(-1)
    Y = [spherical_harmonics(l, v).numpy().astype(np.float64) for l in (l1, l2, L)]
    G = np.einsum("p,pa,pb,pc->abc", wt, *Y)
    G[np.abs(G) < 1e-14] = 0.0
    return G


def wigner_D(l: int, Q) -> np.ndarray:
    """Real Wigner matrix D_l(Q), shape (2l+1, 2l+1), float64, for a 3x3 orthogonal Q."""
    Q = np.asarray(Q, dtype=np.float64)
    det = np.linalg.det(Q)
    if abs(abs(det) - 1) > 1e-6 or np.abs(Q @ Q.T - np.eye(3)).max() > 1e-6:
        raise ValueError("Q is not orthogonal")
    sign = 1.0 if det > 0 else -1.0
    R = sign * Q  # proper part
    return _wigner_D_proper(l, _P @ R @ _P.T) * (sign ** l)


@contextmanager
def float64_default():
    """torch's default dtype float64 inside the block, restored after. e3nn builds its so(3)
    generators, Wigner 3j symbols and grids in the default dtype: tables meant to be exact
    (float32 models cast them per call) are built under this."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def _wigner_D_proper(l: int, R: np.ndarray) -> np.ndarray:
    with float64_default():
        return o3.Irrep(l, 1).D_from_matrix(torch.as_tensor(R, dtype=torch.float64)).numpy()


def shells_rotation(shells, Q) -> np.ndarray:
    """Block-diagonal rotation of an atom's orbitals (shell l's in order), (n_orb, n_orb)."""
    Ds = [wigner_D(l, Q) for l in shells]
    n = sum(len(d) for d in Ds)
    out = np.zeros((n, n))
    k = 0
    for d in Ds:
        out[k:k + len(d), k:k + len(d)] = d
        k += len(d)
    return out


def su2_from_rotation(Q) -> np.ndarray:
    """Spin-1/2 matrix U(Q) (2x2, complex; sign fixed by the quaternion with w >= 0) for the
    proper part of Q. Spinor blocks transform as (U (x) D) H (U (x) D)^dagger, spin-major."""
    Q = np.asarray(Q, dtype=np.float64)
    R = Q * np.sign(np.linalg.det(Q))
    from scipy.spatial.transform import Rotation
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    # U = exp(-i theta n.sigma / 2) = w - i (x sx + y sy + z sz)
    return np.array([[w - 1j * z, -1j * x - y], [-1j * x + y, w + 1j * z]])


def rotate_operator(op, Q):
    """The operator of the rigidly rotated structure r -> Q r (cell and positions rotated).

    Blocks become D_i(Q) H_ij(R) D_j(Q)^T (spin-less), with the SU(2) factor for soc. Edge
    indices and integer R are unchanged.
    """
    Q = np.asarray(Q, dtype=np.float64)
    atoms = op.atoms.copy()
    atoms.set_cell(np.asarray(op.atoms.cell) @ Q.T, scale_atoms=False)
    atoms.positions = op.atoms.positions @ Q.T
    symbols = op.atoms.get_chemical_symbols()
    rot = {s: shells_rotation(op.basis.shells[s], Q) for s in set(symbols)}
    U = su2_from_rotation(Q) if op.spin == "soc" else None
    out_H = None if op.H is None else np.empty_like(op.H)
    out_S = None if op.S is None else np.empty_like(op.S)
    species = np.array(symbols)
    si, sj = species[op.edge_i], species[op.edge_j]
    # one batched einsum per species pair: all blocks of a pair share their shapes
    for a in set(symbols):
        for b in set(symbols):
            edges = np.flatnonzero((si == a) & (sj == b))
            if not len(edges):
                continue
            Da, Db = rot[a], rot[b]
            ni, nj = len(Da), len(Db)
            idx = op.offsets[edges][:, None] + np.arange(ni * nj)[None]
            if op.S is not None:
                out_S[idx] = np.einsum("ab,ebc,dc->ead", Da, op.S[idx].reshape(-1, ni, nj), Db).reshape(len(edges), -1)
            if op.H is None:
                continue
            if op.spin == "soc":
                Ua, Ub = np.kron(U, Da), np.kron(U, Db)
                hidx = 4 * op.offsets[edges][:, None] + np.arange(4 * ni * nj)[None]
                blk = op.H[hidx].reshape(-1, 2 * ni, 2 * nj)
                out_H[hidx] = np.einsum("ab,ebc,dc->ead", Ua, blk, Ub.conj()).reshape(len(edges), -1)
            else:
                h = op.H[..., idx].reshape(op.H.shape[:-1] + (len(edges), ni, nj))
                r = np.einsum("ab,...ebc,dc->...ead", Da, h, Db)
                out_H[..., idx] = r.reshape(op.H.shape[:-1] + (len(edges), ni * nj))
    new = op.with_blocks(H=out_H, S=out_S)
    new.atoms = atoms
    return new


def random_rotation(rng: np.random.Generator | None = None, improper: bool = False) -> np.ndarray:
    """A uniformly random rotation matrix (times -1 if improper)."""
    from scipy.spatial.transform import Rotation
    rng = rng or np.random.default_rng()
    Q = Rotation.random(random_state=rng).as_matrix()
    return -Q if improper else Q
