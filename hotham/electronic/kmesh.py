"""k-point meshes: the Gamma-centred Monkhorst-Pack mesh of a cell, the automatic mesh that
shrinks as the cell grows, and one k-point per star of a mesh (time reversal and, with spglib,
the structure's rotations). Used by the Fermi level, the DOS and the band comparison."""
from __future__ import annotations

import numpy as np

from .. import checks
from ..cell import slab_axis

__all__ = ["mesh_shape", "missing_special_points", "warn_missing_special_points", "monkhorst_pack", "automatic_mesh", "irreducible_kpoints", "irreducible_mesh",
           "AUTO_MESH_ATOM_K", "SYMPREC"]

#: atoms x k-points of the automatic mesh (Gamma alone for large supercells)
AUTO_MESH_ATOM_K = 400
#: Angstrom: positions within it count as symmetric (spglib's default) for the mesh's stars
SYMPREC = 1e-5


def mesh_shape(atoms, mesh) -> tuple[int, int, int]:
    """``(n1, n2, n3)`` of a mesh: a scalar ``mesh`` n (or [n]) is n x n x n, or n x n x 1 for slabs.
    InputError for counts that are not integers >= 1 (1.5 is refused, not truncated)."""
    mesh = checks.mesh(mesh)
    if len(mesh) == 1:
        ax = slab_axis(atoms)
        mesh = [mesh[0]] * 3
        if ax is not None:
            mesh[ax] = 1
    return tuple(mesh)


def missing_special_points(atoms, mesh) -> dict[str, np.ndarray]:
    """The special k-points of the cell (ase's, of the in-plane path for slabs; those at
    fractions with denominators dividing 12) that the Gamma-centred ``mesh`` misses: name ->
    fractional k [3]. Graphene's K (1/3, 1/3) is on n x n only for n a multiple of 3."""
    size = np.asarray(mesh_shape(atoms, mesh))
    pbc = [True, True, True]
    ax = slab_axis(atoms)
    if ax is not None:
        pbc[ax] = False
    try:
        points = atoms.cell.bandpath(npoints=0, pbc=pbc).special_points
    except Exception:       # no periodic axis, a degenerate cell: no path, nothing to miss
        return {}
    out = {}
    for name, k in points.items():
        k = np.asarray(k, float)
        simple = np.allclose(k * 12, np.round(k * 12), atol=1e-6)
        if simple and not np.allclose(k * size, np.round(k * size), atol=1e-6):
            out[name] = k
    return out


def warn_missing_special_points(atoms, mesh) -> None:
    """Warn (UserWarning) when ``mesh`` misses special points of the cell: the bands there (a
    Dirac point, band edges) are not sampled, and a Fermi level counted on it may be off
    (graphene on 4 x 4: 0.3 eV, in a gap the mesh makes). :func:`automatic_mesh` is not warned
    about: it holds K, and is Gamma alone for large cells, whose zone is small."""
    import math
    import warnings
    size = mesh_shape(atoms, mesh)
    if size == automatic_mesh(atoms):      # hotham's own choice (K on it; Gamma alone for big cells)
        return
    missing = missing_special_points(atoms, mesh)
    if not missing:
        return
    need = 1
    for k in missing.values():
        for x in k:
            need = math.lcm(need, int(round(12 / math.gcd(int(round(abs(x) * 12)), 12))))
    names = ", ".join(f"{'Γ' if n == 'G' else n} ({', '.join(f'{x:.4g}' for x in k)})" for n, k in missing.items())
    warnings.warn(f"the {'x'.join(map(str, size))} k-mesh misses the special point(s) {names} of this cell: "
                  "band edges or crossings there are not sampled and the Fermi level may be off (a semimetal's "
                  f"E_F in a gap of the mesh's making); counts along the periodic axes that are multiples of {need} hold them",
                  stacklevel=3)


def monkhorst_pack(atoms, mesh) -> np.ndarray:
    """Fractional Gamma-centred mesh [n1 n2 n3, 3] of :func:`mesh_shape`: ase's Monkhorst-Pack
    grid, moved by half a step along every even n so that Gamma (and, for n a multiple of 3,
    graphene's K) is on it. Gamma of an n1 x n2 x n3 supercell folds exactly this mesh of the cell."""
    from ase.dft.kpoints import monkhorst_pack as mp
    size = np.asarray(mesh_shape(atoms, mesh))
    k = mp(size) + np.where(size % 2 == 0, 0.5 / size, 0.0)
    return k - np.floor(k + 0.5)    # in [-1/2, 1/2)


def automatic_mesh(atoms) -> tuple[int, int, int]:
    """A mesh that shrinks as the cell grows: about ``AUTO_MESH_ATOM_K`` atoms x k-points in all
    (n x n along the periodic vectors, 1 across a slab's vacuum, Gamma alone for large cells,
    whose Brillouin zone is small). Along two vectors of a hexagonal lattice (equal lengths at
    60 or 120 degrees) n > 1 is rounded up to a multiple of 3, so that K is on the mesh:
    graphene's Dirac point and MoS2's band edges lie there, and a mesh without K puts a
    semimetal's E_F in a gap of the mesh's own making."""
    n = max(1, int(round(np.sqrt(AUTO_MESH_ATOM_K / len(atoms)))))
    mesh = [n if p else 1 for p in atoms.pbc]
    ax = slab_axis(atoms)
    if ax is not None:
        mesh[ax] = 1
    cell = np.asarray(atoms.cell)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        a, b = np.linalg.norm(cell[i]), np.linalg.norm(cell[j])
        if mesh[i] > 1 and mesh[j] > 1 and abs(a - b) < 1e-3 * a and \
                abs(abs(cell[i] @ cell[j]) / (a * b) - 0.5) < 1e-3:
            mesh[i] = mesh[j] = 3 * -(-max(mesh[i], mesh[j]) // 3)
    return tuple(mesh)


def irreducible_kpoints(kpts) -> tuple[np.ndarray, np.ndarray]:
    """(k-points [m, 3], weights [m] summing to 1) of ``kpts`` [nk, 3] with each pair k, -k
    (equal bands by time reversal, Kramers for spinors) kept once at twice the weight."""
    k = np.asarray(kpts, dtype=float).reshape(-1, 3)
    key = lambda q: np.round(np.mod(q, 1.0) * 1e6).astype(np.int64) % 1000000   # noqa: E731
    a, b = key(k), key(-k)
    index = {tuple(r): i for i, r in enumerate(a)}
    partner = np.array([index.get(tuple(r), i) for i, r in enumerate(b)])
    keep = partner >= np.arange(len(k))
    w = np.where(partner[keep] == np.flatnonzero(keep), 1.0, 2.0)
    return k[keep], w / w.sum()


def irreducible_mesh(atoms, mesh, *, symmetry: bool = True, symprec: float = SYMPREC) -> tuple[np.ndarray, np.ndarray]:
    """(k-points [m, 3] fractional, weights [m] summing to 1) of the Gamma-centred ``mesh``
    (:func:`monkhorst_pack`), one k-point per star: k and -k (time reversal), and with
    ``symmetry`` every k related to it by a rotation of the structure's space group (spglib,
    positions to ``symprec`` Angstrom). The bands of a spin-less operator are the same on a star,
    for the DFT blocks of a symmetric cell and for the prediction of an equivariant model alike
    (a twisted bilayer, P321: 3 stars on 3 x 3 instead of 5; graphene: 19 on 12 x 12 instead
    of 74). Not for spin-polarised or spin-orbit operators, whose symmetry is also that
    of their magnetic moments, which the structure does not show (:func:`hotham.electronic.fermi.find_fermi_level`
    uses time reversal alone for them)."""
    size = mesh_shape(atoms, mesh)
    found = _star_map(atoms, size, symprec) if symmetry and np.prod(size) > 1 else None
    if found is None:
        return irreducible_kpoints(monkhorst_pack(atoms, size))
    mapping, grid = found
    stars, members = np.unique(mapping, return_counts=True)
    k = grid[stars] / np.asarray(size, float)
    return k - np.floor(k + 0.5), members / members.sum()


def _star_map(atoms, size, symprec: float):
    """spglib's (star of every point [n], grid addresses [n, 3]) of the Gamma-centred mesh
    ``size`` under the structure's rotations and time reversal; None without symmetry found."""
    import warnings

    import spglib
    cell = (np.asarray(atoms.cell), atoms.get_scaled_positions(), atoms.numbers)
    with warnings.catch_warnings():
        # spglib 2.7-2.9 warns about its own error handling at every call (None on failure)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sym = spglib.get_symmetry(cell, symprec=symprec)
        except getattr(spglib, "SpglibError", RuntimeError):
            return None
        if sym is None:
            return None
        return spglib.get_stabilized_reciprocal_mesh(size, sym["rotations"], is_shift=[0, 0, 0],
                                                     is_time_reversal=True)
