"""Cell geometry shared by the structure generators and the electronic layer: which cell vector,
if any, spans a vacuum gap (a slab: a layer or a stack of layers)."""
from __future__ import annotations

import numpy as np

__all__ = ["SLAB_VACUUM", "SAME_STRUCTURE_TOL", "slab_axis", "periodic_axes", "structure_difference"]

#: vacuum (Angstrom) along a cell vector above which a cell counts as a slab
SLAB_VACUUM = 5.0

#: Angstrom: cell vectors and atoms further apart than this make two structures different
SAME_STRUCTURE_TOL = 0.01


def slab_axis(atoms, vacuum: float = SLAB_VACUUM) -> int | None:
    """Index of the non-periodic cell vector of a slab, else None.

    A slab has pbc False along exactly one vector, or a cell vector perpendicular to the other
    two across which the atoms leave a gap of more than ``vacuum`` Angstrom (periodic images
    included, so a layer that straddles the cell boundary is still found). The k-mesh and band
    path then stay in the plane of the other two vectors."""
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.sum() == 2:
        return int(np.flatnonzero(~pbc)[0])
    cell = np.asarray(atoms.cell)
    frac = atoms.get_scaled_positions(wrap=True)
    for ax in (2, 0, 1):
        others = [a for a in range(3) if a != ax]
        c = cell[ax]
        if any(abs(np.dot(c, cell[o])) > 1e-6 * np.linalg.norm(c) * np.linalg.norm(cell[o]) for o in others):
            continue
        f = np.sort(frac[:, ax])
        gaps = np.diff(np.concatenate([f, [f[0] + 1.0]]))
        if gaps.max() * np.linalg.norm(c) > vacuum:
            return ax
    return None


def periodic_axes(atoms, vacuum: float = SLAB_VACUUM) -> list[int]:
    """The cell vectors along which the structure is really periodic: pbc True and no vacuum gap
    of more than ``vacuum`` Angstrom across them (3 for a crystal, 2 for a slab, 0 for a
    molecule in a box)."""
    frac = atoms.get_scaled_positions(wrap=True)
    cell = np.asarray(atoms.cell)
    out = []
    for ax in range(3):
        if not atoms.pbc[ax]:
            continue
        f = np.sort(frac[:, ax])
        gaps = np.diff(np.concatenate([f, [f[0] + 1.0]]))
        # the gap measured along the cell vector's normal to the other two (its "height")
        others = np.cross(cell[(ax + 1) % 3], cell[(ax + 2) % 3])
        height = abs(np.dot(cell[ax], others)) / max(np.linalg.norm(others), 1e-300)
        if gaps.max() * height <= vacuum:
            out.append(ax)
    return out


def chemistry(atoms) -> str:
    """The elements of a structure, sorted and joined by '-' ("C", "B-C-N", "Mo-S"): the key of
    what a model records per chemistry (its training cells' Fermi level)."""
    return "-".join(sorted(set(atoms.get_chemical_symbols())))


def structure_difference(a, b, tol: float = SAME_STRUCTURE_TOL, names=("first", "second")) -> str | None:
    """How two structures (ase.Atoms) differ, or None when they are one structure: the same
    species in the same order, cell vectors within ``tol`` Angstrom and every atom within ``tol``
    of its place (across periodic boundaries). ``names`` name the two in the text, which says
    what differs first: the species, the cell or the positions (the atom furthest off)."""
    na, nb = names
    if len(a) != len(b) or (a.numbers != b.numbers).any():
        fa, fb = a.get_chemical_formula(), b.get_chemical_formula()
        if fa != fb:
            return f"the species differ: {na} {fa} ({len(a)} atoms), {nb} {fb} ({len(b)} atoms)"
        k = int(np.flatnonzero(a.numbers != b.numbers)[0])
        return (f"the atoms are in another order: atom {k} is {a.get_chemical_symbols()[k]} in {na}, "
                f"{b.get_chemical_symbols()[k]} in {nb}")
    ca, cb = np.asarray(a.cell), np.asarray(b.cell)
    dc = np.linalg.norm(ca - cb, axis=1)
    if dc.max() > tol:
        v = int(dc.argmax())
        return (f"the cells differ: cell vector {v} is {np.round(ca[v], 4).tolist()} A in {na}, "
                f"{np.round(cb[v], 4).tolist()} A in {nb} ({dc[v]:.3f} A apart)")
    if (np.abs(np.linalg.det(ca)) > 1e-9):
        # displacement in fractional coordinates, wrapped across the periodic boundaries
        d = np.linalg.solve(ca.T, (a.positions - b.positions).T).T
        pbc = np.asarray(a.pbc, bool)
        d[:, pbc] -= np.round(d[:, pbc])
        d = np.linalg.norm(d @ ca, axis=1)
    else:
        d = np.linalg.norm(a.positions - b.positions, axis=1)
    if d.max() > tol:
        k = int(d.argmax())
        return (f"the positions differ: atom {k} ({a.get_chemical_symbols()[k]}) is {d[k]:.3f} A from its place in "
                f"{nb} ({int((d > tol).sum())} of {len(a)} atoms further than {tol:g} A)")
    return None
