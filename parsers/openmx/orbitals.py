"""OpenMX's orbital order and its conversion to hotham's internal real spherical harmonics.

OpenMX orders the m components of a shell as p: (x, y, z), d: (3z^2-r^2, x^2-y^2, xy, xz, yz),
f: (m = 0, +1, -1, +2, -2, +3, -3). Internally a shell is m = -l..l of the real SH of
:mod:`hotham.so3` (p: (y, z, x); d: (xy, yz, 3z^2-r^2, xz, x^2-y^2)). The conversion is a pure
permutation, ``internal[m] = openmx[PERM[l][m]]``, with no sign changes: the rotated OpenMX
runs in tests/data/openmx fix it (a wrong permutation or sign fails by eV; see
tests/test_openmx_convention.py).

This module is the only place that knows OpenMX's order; readers of OpenMX-ordered data
(``.scfout``, DeepH folders) call :func:`to_internal`, writers call :func:`to_openmx`.
"""
from __future__ import annotations

import numpy as np

#: internal[m_index] = openmx[PERM[l][m_index]], m_index = m + l
PERM = {
    0: [0],
    1: [1, 2, 0],
    2: [2, 4, 0, 3, 1],
    # OpenMX f: (0, +1, -1, +2, -2, +3, -3) -> internal (-3, -2, -1, 0, +1, +2, +3).
    # Not checked against rotated data (no f shells in the reference runs).
    3: [6, 4, 2, 0, 1, 3, 5],
}


def atom_permutation(shells) -> np.ndarray:
    """Index array p of an atom's orbitals with internal = openmx[p], for shell l's in order."""
    out, k = [], 0
    for l in shells:
        if l not in PERM:
            from ...errors import BasisError
            raise BasisError(f"OpenMX orbital order for l = {l} is not known to hotham")
        out.extend(k + np.asarray(PERM[l]))
        k += 2 * l + 1
    return np.asarray(out, dtype=np.int64)


def _element_permutation(op, inverse: bool, spin_factor: int) -> np.ndarray:
    """Flat-array index q with converted = original[q] for all blocks of ``op``."""
    symbols = op.atoms.get_chemical_symbols()
    perms = {s: atom_permutation(op.basis.shells[s]) for s in set(symbols)}
    if inverse:
        perms = {s: np.argsort(p) for s, p in perms.items()}
    # global orbital permutation over the home cell (spin-less); spinor index s*n + orbital
    glob = np.concatenate([op.orbital_offsets[a] + perms[s] for a, s in enumerate(symbols)])
    if spin_factor == 2:
        glob = np.concatenate([glob, glob + op.n_orbitals])
    edge, row, col = op.element_layout(spin_factor)
    # element (row, col) of the converted block is element (glob[row], glob[col]) of the
    # original; find its flat position: same edge, local indices shifted accordingly.
    sf = spin_factor
    n = op.block_shapes
    nj = sf * n[edge, 1]
    norb = op.n_orbitals
    src_r, src_c = glob[row], glob[col]
    # local (spinor) index inside the block: spin * n_i + (orbital - atom offset)
    lr = (src_r // norb) * n[edge, 0] + (src_r % norb) - op.orbital_offsets[op.edge_i[edge]]
    lc = (src_c // norb) * n[edge, 1] + (src_c % norb) - op.orbital_offsets[op.edge_j[edge]]
    start = sf * sf * op.offsets[edge]
    return start + lr * nj + lc


def to_internal(op):
    """Copy of an operator whose blocks are in OpenMX order, with blocks in internal order."""
    return _convert(op, inverse=False)


def to_openmx(op):
    """Copy of an operator in internal order, with blocks permuted to OpenMX's order."""
    return _convert(op, inverse=True)


def _convert(op, inverse: bool):
    out = op.copy()
    if op.S is not None:
        out.S = op.S[_element_permutation(op, inverse, 1)]
    if op.H is not None:
        out.H = op.H[..., _element_permutation(op, inverse, op.spin_factor)]
    return out
