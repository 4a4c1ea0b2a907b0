"""Geometry shared by the 2D structure generators: hexagonal layer bases, stacking shifts,
stacking layers along z, finding the layers of a structure, distance checks.

Conventions: Angstrom; cell rows are lattice vectors; a *layer* is an ase.Atoms whose first
two cell vectors lie in the xy plane (its third vector, if any, is ignored and replaced);
stacked structures carry ``tags`` = layer index (0 = bottom) and are centred at z = c/2 with
their out-of-plane vector c = (0, 0, c).
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from hotham.errors import StructureError

#: Vacuum between periodic images of a slab (Angstrom), as in the reference OpenMX data.
DEFAULT_VACUUM = 15.0
#: Out-of-plane gap between adjacent layers (Angstrom): top atom of the lower layer to bottom
#: atom of the upper one (graphene interlayer distance).
DEFAULT_INTERLAYER = 3.35


def rotation_z(deg: float) -> np.ndarray:
    """Active rotation about z by ``deg`` degrees (counter-clockwise seen from +z), [3, 3]."""
    t = np.radians(deg)
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def in_plane_cell(layer: Atoms) -> np.ndarray:
    """The two in-plane lattice vectors of a layer, [2, 3] (z components zero)."""
    cell = np.asarray(layer.cell[:2], dtype=float)
    if np.abs(cell[:, 2]).max() > 1e-8:
        raise StructureError("layer's first two cell vectors must lie in the xy plane")
    if abs(np.cross(cell[0], cell[1])[2]) < 1e-8:
        raise StructureError("layer's in-plane cell vectors are parallel or zero")
    return cell


def hexagonal_basis(layer: Atoms, tol: float = 1e-6) -> np.ndarray:
    """The 60-degree primitive vectors (b1, b2 = R60 b1), [2, 3], of a hexagonal layer.

    b1 is the layer's first cell vector; raises StructureError if the lattice is not
    hexagonal (|a1| = |a2| and a 60 or 120 degree angle)."""
    cell = in_plane_cell(layer)
    b1 = cell[0]
    b2 = rotation_z(60.0) @ b1
    frac = np.linalg.solve(cell[:, :2].T, b2[:2])
    if np.abs(frac - np.round(frac)).max() > tol or abs(np.linalg.norm(cell[0]) - np.linalg.norm(cell[1])) > tol * np.linalg.norm(b1):
        raise StructureError("layer lattice is not hexagonal (need |a1| = |a2| at 60 or 120 degrees)")
    return np.array([b1, b2])


def is_hexagonal(layer: Atoms) -> bool:
    try:
        hexagonal_basis(layer)
        return True
    except StructureError:
        return False


def stacking_shift(layer: Atoms, stacking) -> np.ndarray:
    """In-plane Cartesian shift [3] of a layer for a stacking name or an explicit shift.

    ``"AA"``: none. ``"AB"``: (a1 + 2 a2) / 3 with (a1, a2 = R120 a1) the 120-degree basis
    (= (2 b2 - b1) / 3 in the 60-degree one, one bond length along the armchair direction
    for graphene): with graphene at fractional (1/3, 2/3), (2/3, 1/3) this puts the
    upper layer's atoms at (2/3, 1/3) (over a lower atom) and (0, 0) (over a hexagon centre),
    the reference data's AB bilayer. ``"BA"``: twice that. A pair (u, v) is a fractional
    shift along the layer's own cell vectors; a triple is a Cartesian shift (Angstrom)."""
    if stacking is None:
        return np.zeros(3)
    if isinstance(stacking, str):
        key = stacking.upper()
        if key == "AA":
            return np.zeros(3)
        if key in ("AB", "BA"):
            b1, b2 = hexagonal_basis(layer)
            a1, a2 = b1, b2 - b1  # 120-degree basis
            s = (a1 + 2 * a2) / 3.0
            return s if key == "AB" else 2 * s
        raise StructureError(f"unknown stacking {stacking!r} (AA, AB, BA, or a shift)")
    try:
        v = np.asarray(stacking, dtype=float).ravel()
    except (TypeError, ValueError):
        raise StructureError(f"unknown stacking {stacking!r} (AA, AB, BA, or a shift)") from None
    if v.size == 2:
        return v @ in_plane_cell(layer)
    if v.size == 3:
        return np.array([v[0], v[1], 0.0])
    raise StructureError(f"stacking shift must be a name, (u, v) or (x, y, z); got {stacking!r}")


def supercell_matrix(target: np.ndarray, cell: np.ndarray, tol: float = 1e-5, what: str = "layer") -> np.ndarray:
    """Integer 2x2 matrix P with P @ cell = target (in-plane rows, [2, 3] each); raises
    StructureError if the target is not a supercell of ``cell`` (incommensurate)."""
    P = np.linalg.solve(cell[:, :2].T, target[:, :2].T).T
    Pi = np.round(P)
    if np.abs(P - Pi).max() > tol:
        raise StructureError(f"{what} is not commensurate with the supercell (P = {P.round(6).tolist()})")
    if abs(np.linalg.det(Pi)) < 0.5:
        raise StructureError(f"{what}: singular supercell matrix")
    return Pi.astype(int)


def layer_supercell(layer: Atoms, target: np.ndarray, *, angle: float = 0.0, shift=None,
                    strain: np.ndarray | None = None, what: str = "layer") -> Atoms:
    """The atoms of ``layer`` in the in-plane supercell ``target`` [2, 3].

    The layer is first shifted by ``shift`` (Cartesian [3]), then rotated by ``angle``
    degrees about the z axis through the origin, then deformed by the 2x2 in-plane matrix
    ``strain`` (x' = F x). Fractional positions are wrapped into [0, 1). Vectorised: builds
    the det(P) lattice translations at once."""
    cell = in_plane_cell(layer).copy()
    pos = layer.positions.copy()
    if shift is not None:
        pos = pos + np.asarray(shift, float)
    Q = rotation_z(angle)
    if strain is not None:
        F = np.eye(3)
        F[:2, :2] = strain
        Q = F @ Q
    cell = cell @ Q.T
    pos = pos @ Q.T
    P = supercell_matrix(target, cell, what=what)
    n_cells = int(round(abs(np.linalg.det(P))))
    # All lattice points i*a1 + j*a2 inside the supercell: the fractional coordinates of
    # (i, j) in the supercell basis are (i, j) @ inv(P); scan the bounding box of P's corners.
    corners = np.array([[0, 0], P[0], P[1], P[0] + P[1]])
    lo, hi = corners.min(0), corners.max(0)
    ii, jj = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    ij = np.stack([ii.ravel(), jj.ravel()], 1).astype(float)
    f = ij @ np.linalg.inv(P)
    eps = 1e-9
    keep = np.all((f >= -eps) & (f < 1 - eps), axis=1)
    ij = ij[keep]
    if len(ij) != n_cells:
        raise StructureError(f"{what}: found {len(ij)} lattice points in the supercell, expected {n_cells}")
    T = ij @ cell[:, :2]
    xy = (T[:, None, :] + pos[None, :, :2]).reshape(-1, 2)
    z = np.tile(pos[:, 2], n_cells)
    # wrap into the supercell
    fr = np.linalg.solve(target[:, :2].T, xy.T).T
    fr -= np.floor(fr + 1e-10)
    xy = fr @ target[:, :2]
    numbers = np.tile(layer.numbers, n_cells)
    out = Atoms(numbers=numbers, positions=np.column_stack([xy, z]),
                cell=np.vstack([target, [0.0, 0.0, 1.0]]), pbc=(True, True, False))
    return out


def stack_layers(layers: list[Atoms], gaps=DEFAULT_INTERLAYER, *, vacuum: float = DEFAULT_VACUUM,
                 cell_height: float | None = None) -> Atoms:
    """Stack layers (same in-plane cell, first = bottom) along z.

    ``gaps``: one number or one per adjacent pair (Angstrom, top atom of the lower layer to
    bottom atom of the upper). The out-of-plane vector is c = (0, 0, cell_height), by default
    stack thickness + ``vacuum``; the stack is centred at z = c/2. Tags = layer index."""
    if not layers:
        raise StructureError("no layers to stack")
    g = np.broadcast_to(np.asarray(gaps, float), (max(len(layers) - 1, 0),))
    cell2 = np.asarray(layers[0].cell[:2])
    zs, blocks = 0.0, []
    for k, lay in enumerate(layers):
        if np.abs(np.asarray(lay.cell[:2]) - cell2).max() > 1e-6:
            raise StructureError(f"layer {k} has a different in-plane cell from layer 0")
        p = lay.positions.copy()
        if k > 0:
            zs += g[k - 1]
        p[:, 2] += zs - p[:, 2].min()
        zs = p[:, 2].max()
        blocks.append(p)
    pos = np.vstack(blocks)
    thick = pos[:, 2].max() - pos[:, 2].min()
    c = thick + vacuum if cell_height is None else float(cell_height)
    if c <= thick:
        raise StructureError(f"cell height {c:.3f} A does not hold the stack ({thick:.3f} A thick)")
    pos[:, 2] += c / 2 - (pos[:, 2].max() + pos[:, 2].min()) / 2
    atoms = Atoms(numbers=np.concatenate([l.numbers for l in layers]), positions=pos,
                  cell=np.vstack([cell2, [0.0, 0.0, c]]), pbc=True)
    atoms.set_tags(np.concatenate([np.full(len(l), k) for k, l in enumerate(layers)]))
    return atoms


def neighbor_pairs(atoms: Atoms, cutoff: float):
    """All pairs (i, j, d) with distance d < cutoff (Angstrom), both directions, periodic
    images included. Uses vesin when installed, else ase.neighborlist (both vectorised)."""
    if np.all(atoms.pbc):
        try:
            from vesin import NeighborList
        except ImportError:
            pass
        else:
            nl = NeighborList(cutoff=float(cutoff), full_list=True)
            i, j, d = nl.compute(points=atoms.positions, box=np.asarray(atoms.cell[:]),
                                 periodic=True, quantities="ijd")
            return np.asarray(i), np.asarray(j), np.asarray(d)
    from ase.neighborlist import neighbor_list
    return neighbor_list("ijd", atoms, cutoff)


def min_distances(atoms: Atoms, cutoff: float = 4.0) -> dict:
    """Shortest distances (Angstrom): ``{"intra": {tag: d}, "inter": d}`` over pairs within
    the same layer (tag) and between different layers; inf if none within ``cutoff``."""
    cutoff = float(cutoff)
    i, j, d = neighbor_pairs(atoms, cutoff)
    tags = atoms.get_tags()
    same = tags[i] == tags[j]
    intra = {}
    for t in np.unique(tags):
        m = same & (tags[i] == t)
        intra[int(t)] = float(d[m].min()) if m.any() else np.inf
    inter = float(d[~same].min()) if (~same).any() else np.inf
    return {"intra": intra, "inter": inter}


def check_distances(atoms: Atoms, pristine: dict[int, float], *, rtol: float = 1e-3,
                    min_inter: float = 1.0, cutoff: float = 4.0) -> dict:
    """Raise StructureError if two atoms of a layer are closer than that layer's pristine
    shortest distance (times 1 - rtol) or atoms of different layers closer than ``min_inter``;
    returns the measured minima (see ``min_distances``)."""
    cutoff = max(max(pristine.values()) * 1.2, min_inter * 1.2, cutoff)
    md = min_distances(atoms, cutoff)
    for t, d in md["intra"].items():
        if d < pristine[t] * (1 - rtol):
            raise StructureError(f"layer {t}: atoms {d:.4f} A apart, closer than the pristine {pristine[t]:.4f} A")
    if md["inter"] < min_inter:
        raise StructureError(f"atoms of different layers only {md['inter']:.4f} A apart")
    return md


#: atoms closer than this fraction of the sum of their covalent radii are refused by the
#: generators (:func:`check_not_overlapping`): C-C 0.91 A (the bond is 1.42 A), Mo-S 1.55 A
#: (2.41 A); a slid bilayer at gap 0 (0.14 A) or graphene strained by 90 % (0.67 A) is no
#: training structure, and OpenMX would run it all the same
MIN_DISTANCE_FRACTION = 0.6


def check_not_overlapping(atoms: Atoms, what: str = "structure", fraction: float = MIN_DISTANCE_FRACTION) -> float:
    """The shortest interatomic distance (Angstrom, periodic images included; inf if none within
    reach); StructureError naming the pair when two atoms are closer than ``fraction`` times the
    sum of their covalent radii (ase.data.covalent_radii)."""
    from ase.data import covalent_radii
    radii = covalent_radii[atoms.numbers]
    if len(atoms) == 0:
        return np.inf
    reach = fraction * 2 * float(radii.max())
    i, j, d = neighbor_pairs(atoms, reach)
    if len(d) == 0:
        return np.inf
    limit = fraction * (radii[i] + radii[j])
    bad = d < limit
    if bad.any():
        k = int(np.argmin(np.where(bad, d / limit, np.inf)))
        sym = atoms.get_chemical_symbols()
        raise StructureError(f"{what}: atoms {i[k]} ({sym[i[k]]}) and {j[k]} ({sym[j[k]]}) are {d[k]:.3f} A apart, "
                             f"less than {fraction:g} x their covalent radii ({limit[k]:.3f} A): overlapping atoms "
                             "(check the distances, strain or displacements asked for)")
    return float(d.min())


def pristine_min_distance(layer: Atoms) -> float:
    """Shortest interatomic distance of a periodic layer (Angstrom)."""
    a = Atoms(numbers=layer.numbers, positions=layer.positions,
              cell=np.vstack([in_plane_cell(layer), [0, 0, 50.0]]), pbc=True)
    L = np.linalg.norm(a.cell[:2], axis=1).max()
    i, j, d = neighbor_pairs(a, 1.01 * L)
    return float(d.min())


def layer_orientation(atoms: Atoms, mask: np.ndarray, period: float = 60.0) -> float:
    """In-plane orientation (degrees, in [0, period)) of the atoms selected by ``mask``,
    measured from their shortest same-species vectors (for graphene the C-C bonds, for MoS2
    the Mo-Mo lattice vectors); hexagonal layers are defined modulo 60 degrees."""
    sub = atoms[np.flatnonzero(mask)]
    sym0 = sub.numbers[0]
    sub = sub[sub.numbers == sym0]
    from ase.neighborlist import neighbor_list
    _, _, d = neighbor_pairs(sub, 6.0)
    Dv = neighbor_list("D", sub, float(d.min()) * 1.05)
    ang = np.degrees(np.arctan2(Dv[:, 1], Dv[:, 0]))
    # circular mean of angle * (360/period)
    z = np.exp(1j * np.radians(ang) * 360.0 / period).mean()
    return float(np.degrees(np.angle(z)) * period / 360.0) % period


def find_layers(atoms: Atoms, mult: float = 1.25) -> np.ndarray:
    """Layer index [N] of every atom: connected components of the bond graph (bond: distance
    below ``mult`` times the sum of ase's natural cutoffs), numbered by mean height (0 = bottom)."""
    from ase.neighborlist import natural_cutoffs, neighbor_list
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    i, j = neighbor_list("ij", atoms, natural_cutoffs(atoms, mult=mult))
    n = len(atoms)
    g = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    means = np.array([atoms.positions[lab == k, 2].mean() for k in range(lab.max() + 1)])
    order = np.argsort(np.argsort(means))
    return order[lab]


def as_slab(atoms: Atoms, vacuum: float = DEFAULT_VACUUM) -> Atoms:
    """A copy with a real out-of-plane vector: a layer with a zero or absent third cell vector
    (ase.build.graphene) gets c = thickness + vacuum, centred at c/2; others are returned as is."""
    a = atoms.copy()
    if np.linalg.norm(a.cell[2]) < 1e-8:
        z = a.positions[:, 2]
        c = z.max() - z.min() + vacuum
        a.cell[2] = [0, 0, c]
        a.positions[:, 2] += c / 2 - (z.max() + z.min()) / 2
    a.pbc = True
    return a


#: The layers of the reference OpenMX data (the geometry its README records): name ->
#: (a in Angstrom, [(symbol, u, v, z in Angstrom)]) in the 120-degree cell a1 = a(1, 0, 0),
#: a2 = a(-1/2, sqrt3/2, 0). ase's built-in layers put an atom at the origin instead (graphene:
#: C at (0, 0) and (2/3, 1/3); MoS2: S planes +-1.595), so their slid sets are shifted copies.
REFERENCE_LAYERS = {
    "graphene": (2.46, [("C", 1 / 3, 2 / 3, 0.0), ("C", 2 / 3, 1 / 3, 0.0)]),
    "hbn": (2.50, [("B", 1 / 3, 2 / 3, 0.0), ("N", 2 / 3, 1 / 3, 0.0)]),
    "mos2": (3.16, [("Mo", 1 / 3, 2 / 3, 0.0), ("S", 2 / 3, 1 / 3, 1.565), ("S", 2 / 3, 1 / 3, -1.565)]),
}


def reference_layer(name: str, a: float | None = None) -> Atoms:
    """The reference data's layer ``name`` (graphene, hbn or MoS2; :data:`REFERENCE_LAYERS`) with
    lattice constant ``a`` (Angstrom; default the reference's), no out-of-plane vector."""
    a0, sites = REFERENCE_LAYERS[name.lower()]
    a = a0 if a is None else float(a)
    cell = np.array([[a, 0.0, 0.0], [-a / 2, a * np.sqrt(3) / 2, 0.0], [0.0, 0.0, 0.0]])
    frac = np.array([[u, v] for _, u, v, _ in sites])
    pos = np.column_stack([frac @ cell[:2, :2], [z for *_, z in sites]])
    return Atoms([sym for sym, *_ in sites], positions=pos, cell=cell, pbc=(True, True, False))


def build_or_read(spec, *, reference: bool = False) -> Atoms:
    """A structure from a file (any format :func:`hotham.io.read_structure` reads, OpenMX .dat
    included) or a built-in layer: ``graphene``, ``hbn`` or an ase.build.mx2 formula (MoS2, WS2,
    MoSe2, ...), optionally ``NAME:a=LATTICE``; as a slab (:func:`as_slab`). With ``reference``,
    graphene, hbn and MoS2 are the reference data's layers (:func:`reference_layer`)."""
    from pathlib import Path

    from ase.build import graphene, mx2
    if isinstance(spec, Atoms):
        return as_slab(spec)
    p = Path(spec)
    if p.is_file():
        from hotham.io import read_structure
        return as_slab(read_structure(p))
    name, _, opt = str(spec).partition(":")
    kw = {}
    for item in (x for x in opt.split(",") if x):
        key, sep, value = (t.strip() for t in item.partition("="))
        try:
            kw[key] = float(value) if sep and key else None
        except ValueError:
            kw[key] = None
        if kw[key] is None or not np.isfinite(kw[key]) or kw[key] <= 0:
            raise StructureError(f"{spec!r}: {item!r} is not KEY=LENGTH with a length > 0 in Angstrom "
                                 f"(e.g. {name}:a=2.5)")
    low = name.lower()
    if low in ("graphene", "hbn") and set(kw) - {"a"}:
        raise StructureError(f"{spec!r}: {name} takes only a=LATTICE (Angstrom), not {', '.join(sorted(set(kw) - {'a'}))}")
    if reference and low in REFERENCE_LAYERS:
        return as_slab(reference_layer(low, kw.get("a")))
    if low == "graphene":
        return as_slab(graphene(a=kw.get("a", 2.46)))
    if low == "hbn":
        return as_slab(graphene("BN", a=kw.get("a", 2.50)))
    try:
        layer = mx2(name, **kw)
    except Exception:
        raise StructureError(f"{spec!r} is neither a file nor a known layer (graphene, hbn, MoS2, WS2, ...)") from None
    return as_slab(layer)
