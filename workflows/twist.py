"""Commensurate twisted multilayers of hexagonal 2D layers (graphene, hBN, MoS2, any hexagonal
ase.Atoms layer).

Convention (that of the reference tbg_21.79 run): with the 60-degree primitive vectors
b1 = a(1, 0), b2 = R60 b1 of the layer, the moire supercell of indices (m, n) is
t1 = m b1 + n b2, t2 = R120 t1. The rotated layers are turned about the z axis through a
common atom (the layer's atom ``origin``, placed at x = y = 0) by the angle that carries
n b1 + m b2 onto t1, so both lattices are periodic in the same supercell:

    cos(theta) = (m^2 + 4 m n + n^2) / (2 (m^2 + m n + n^2)),

positive (counter-clockwise) for n > m. Each layer holds m^2 + m n + n^2 primitive cells.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from ase import Atoms

from hotham.errors import StructureError

from .layers import (DEFAULT_INTERLAYER, DEFAULT_VACUUM, check_distances, hexagonal_basis, layer_orientation,
                     layer_supercell, pristine_min_distance, rotation_z, stack_layers, stacking_shift)


def twist_angle(m: int, n: int) -> float:
    """Rotation (degrees) of the twisted layers for indices (m, n); positive for n > m."""
    num = m * m + 4 * m * n + n * n
    den = 2 * (m * m + m * n + n * n)
    if den == 0:
        raise StructureError("(m, n) = (0, 0) is no supercell")
    return math.copysign(math.degrees(math.acos(min(1.0, num / den))), n - m)


def cells_per_layer(m: int, n: int) -> int:
    """Primitive cells per layer in the (m, n) supercell: m^2 + m n + n^2."""
    return m * m + m * n + n * n


def moire_cell(layer: Atoms, m: int, n: int) -> np.ndarray:
    """In-plane supercell [2, 3] (rows t1 = m b1 + n b2, t2 = R120 t1), Angstrom."""
    b1, b2 = hexagonal_basis(layer)
    t1 = m * b1 + n * b2
    return np.array([t1, rotation_z(120.0) @ t1])


def commensurate_angles(max_atoms: int, atoms_per_cell: int = 2, n_layers: int = 2,
                        min_angle: float = 0.0) -> list[dict]:
    """Commensurate twist angles whose supercell holds at most ``max_atoms`` atoms.

    ``atoms_per_cell``: atoms in the primitive layer (2 for graphene and hBN, 3 for MoS2).
    Returns dicts ``{"m", "n", "angle" (deg, > 0), "n_atoms"}`` sorted by decreasing angle,
    one per angle (the smallest (m, n) cell; pairs with gcd > 1 or 3 | n - m repeat a smaller
    cell of the same angle)."""
    per = atoms_per_cell * n_layers
    best: dict[float, dict] = {}
    m = 0
    while per * cells_per_layer(m, m + 1) <= max_atoms:
        n = m + 1
        while per * cells_per_layer(m, n) <= max_atoms:
            if math.gcd(m, n) == 1:
                ang = abs(twist_angle(m, n))
                key = round(ang, 9)
                N = per * cells_per_layer(m, n)
                if ang >= min_angle and 0 < ang < 60 - 1e-9 and (key not in best or best[key]["n_atoms"] > N):
                    best[key] = {"m": m, "n": n, "angle": ang, "n_atoms": N}
            n += 1
        m += 1
    return sorted(best.values(), key=lambda d: -d["angle"])


def per_layer(stacking, nl: int) -> list:
    """One stacking per layer: a name, None or one numeric shift applies to all layers."""
    if stacking is None or isinstance(stacking, str):
        return [stacking] * nl
    s = list(stacking)
    if len(s) == nl and all(x is None or isinstance(x, str) or np.ndim(x) == 1 for x in s):
        return s
    return [stacking] * nl


def _centred(layer: Atoms, origin: int) -> Atoms:
    lay = layer.copy()
    lay.positions[:, :2] -= lay.positions[origin, :2]
    return lay


def twisted_multilayer(layers, m: int, n: int, *, rotated, stacking="AA", interlayer=DEFAULT_INTERLAYER,
                       vacuum: float = DEFAULT_VACUUM, origin: int = 0, check: bool = True) -> Atoms:
    """A stack of hexagonal layers in the (m, n) moire supercell, some rotated by the twist.

    layers: one ase.Atoms layer (used for every layer) or a list, bottom first; all share one
        hexagonal lattice (same b1, b2). ``rotated``: one bool per layer (True: turned by
        ``twist_angle(m, n)``). ``stacking``: per layer (or one for all) a shift applied before
        the rotation: "AA", "AB", "BA", (u, v) fractional or (x, y, z) Angstrom (see
        layers.stacking_shift). ``interlayer``: gap(s) in Angstrom between adjacent layers.
    Returns ase.Atoms (tags = layer index, centred at c/2, c = thickness + vacuum) with
    ``info``: m, n, twist_angle, n_atoms, measured_twist (from the atoms), min_intra, min_inter.
    With ``check``, raises StructureError if the atom count is wrong, two atoms of a layer are
    closer than in the pristine layer, or the measured angle differs from the construction."""
    from hotham import checks
    from hotham.errors import InputError
    m, n = checks.number(m, "m", integer=True, ge=0), checks.number(n, "n", integer=True, ge=0)
    rotated = list(rotated)
    nl = len(rotated)
    layers = list(layers) if isinstance(layers, (list, tuple)) else [layers] * nl
    if len(layers) != nl:
        raise StructureError(f"{len(layers)} layers but {nl} rotation flags")
    stackings = per_layer(stacking, nl)
    theta = twist_angle(m, n)
    if any(rotated) and not all(rotated) and abs((theta + 30.0) % 60.0 - 30.0) < 1e-6:
        if abs((theta + 180.0) % 360.0 - 180.0) < 1e-6:     # m = n: the layers are not turned at all
            raise InputError(f"(m, n) = ({m}, {n}) turns the layers by {theta:g} degrees: no twist; choose m != n, "
                             "e.g. (1, 2) for 21.79 or (2, 3) for 13.17 degrees (hotham structure twist --list N "
                             "lists them)")
        # 60 degrees maps a hexagonal lattice onto itself: an untwisted bilayer in another stacking
        # (graphene: a sublattice swap; MoS2 and hBN: the inverted, 2H-like orientation)
        warnings.warn(f"(m, n) = ({m}, {n}) turns the layers by {theta:g} degrees: an untwisted bilayer with the "
                      "upper layer inverted (2H-like for MoS2 and hBN), not a moire cell", UserWarning, stacklevel=2)
    target = moire_cell(layers[0], m, n)
    b0 = hexagonal_basis(layers[0])
    built = []
    for k, (lay, rot, st) in enumerate(zip(layers, rotated, stackings)):
        if np.abs(hexagonal_basis(lay) - b0).max() > 1e-6:
            raise StructureError(f"layer {k} has another lattice than layer 0 (use workflows.hetero for mismatched layers)")
        lay = _centred(lay, origin)
        built.append(layer_supercell(lay, target, angle=theta if rot else 0.0,
                                     shift=stacking_shift(lay, st), what=f"layer {k}"))
    atoms = stack_layers(built, interlayer, vacuum=vacuum)
    cells = cells_per_layer(m, n)
    atoms.info.update({"m": m, "n": n, "twist_angle": abs(theta), "n_atoms": len(atoms),
                       "rotated_layers": [k for k, r in enumerate(rotated) if r]})
    if check:
        expected = sum(len(l) for l in layers) * cells
        if len(atoms) != expected:
            raise StructureError(f"twisted stack has {len(atoms)} atoms, expected {expected}")
        md = check_distances(atoms, {k: pristine_min_distance(l) for k, l in enumerate(layers)},
                             cutoff=float(np.max(interlayer)) + 0.5)
        atoms.info["min_intra"] = min(md["intra"].values())
        atoms.info["min_inter"] = md["inter"]
        if any(rotated) and not all(rotated):
            tags = atoms.get_tags()
            k0 = rotated.index(False)
            k1 = rotated.index(True)
            meas = (layer_orientation(atoms, tags == k1) - layer_orientation(atoms, tags == k0)) % 60.0
            atoms.info["measured_twist"] = meas
            if abs((meas - theta + 30.0) % 60.0 - 30.0) > 1e-3:
                raise StructureError(f"measured twist {meas:.4f} deg differs from the construction {theta:.4f} deg")
    return atoms


def twisted_bilayer(layer: Atoms, m: int, n: int, *, interlayer: float = DEFAULT_INTERLAYER,
                    stacking: str = "AA", vacuum: float = DEFAULT_VACUUM, check: bool = True) -> Atoms:
    """Commensurate twisted bilayer of indices (m, n) from a primitive hexagonal layer
    (``ase.build.graphene()``, ``ase.build.mx2("MoS2")``, ...): the upper layer is shifted by
    ``stacking`` ("AA": atom on atom) and then rotated by ``twist_angle(m, n)`` about the z axis
    through the common atom 0. (1, 2) of graphene gives the 28-atom 21.79-degree cell;
    (31, 32) the 11908-atom magic-angle cell (1.05 degrees). See ``twisted_multilayer``."""
    return twisted_multilayer(layer, m, n, rotated=[False, True], stacking=["AA", stacking],
                              interlayer=interlayer, vacuum=vacuum, check=check)


def twisted_trilayer(layer: Atoms, m: int, n: int, *, rotated_layer: int = 1, stacking=("AA", "AA", "AA"),
                     interlayer=DEFAULT_INTERLAYER, vacuum: float = DEFAULT_VACUUM, check: bool = True) -> Atoms:
    """Trilayer with layer ``rotated_layer`` (0 bottom, 1 middle, 2 top) rotated by the twist
    (middle: the alternating-twist trilayer)."""
    if rotated_layer not in (0, 1, 2):
        raise StructureError("rotated_layer must be 0, 1 or 2")
    return twisted_multilayer(layer, m, n, rotated=[k == rotated_layer for k in range(3)], stacking=list(stacking),
                              interlayer=interlayer, vacuum=vacuum, check=check)


def twisted_double_bilayer(layer: Atoms, m: int, n: int, *, stacking=("AA", "AB", "AA", "AB"),
                           interlayer=DEFAULT_INTERLAYER, vacuum: float = DEFAULT_VACUUM, check: bool = True) -> Atoms:
    """Twisted double bilayer: two Bernal (AB) bilayers, the upper pair rotated by the twist."""
    return twisted_multilayer(layer, m, n, rotated=[False, False, True, True], stacking=list(stacking),
                              interlayer=interlayer, vacuum=vacuum, check=check)
