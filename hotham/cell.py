"""Cell geometry shared by the structure generators and the electronic layer: which cell vector,
if any, spans a vacuum gap (a slab: a layer or a stack of layers)."""
from __future__ import annotations

import numpy as np

__all__ = ["SLAB_VACUUM", "slab_axis", "periodic_axes"]

#: vacuum (Angstrom) along a cell vector above which a cell counts as a slab
SLAB_VACUUM = 5.0


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
