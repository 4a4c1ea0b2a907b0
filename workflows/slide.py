"""Slid multilayers: rigid in-plane shifts of chosen layers and interlayer distances, the
training sets for twisted systems (a large-angle moire is locally a slid bilayer).

Random draws use ``numpy.random.default_rng(seed)`` in structure order; for each structure:
the in-plane lattice constant a ~ U[lo, hi] (only when a range is given), the slide
(u, v) ~ U[0, 1)^2 of every moving layer, then the interlayer distance(s) d ~ U[lo, hi] of every
gap, then the Gaussian displacements (3 numbers per atom, atom order). This is the order of the
reference data sets (bilayer_graphene_slid_*, graphene_hbn_slid_1x1, mos2_bilayer_slid_1x1), which
these functions reproduce from the reference layers (:func:`.layers.reference_layer`).
"""
from __future__ import annotations

import itertools

import numpy as np
from ase import Atoms

from hotham.errors import StructureError

from .layers import (DEFAULT_INTERLAYER, DEFAULT_VACUUM, check_not_overlapping, find_layers, stack_layers,
                     stacking_shift)
from .perturb import wrap_in_plane


def bilayer(layer: Atoms, *, top: Atoms | None = None, stacking="AB", interlayer: float = DEFAULT_INTERLAYER,
            supercell=(1, 1), vacuum: float = DEFAULT_VACUUM, cell_height: float | None = None) -> Atoms:
    """Untwisted bilayer of a 2D layer (tags 0 bottom, 1 top; the top layer, ``layer`` itself or
    ``top`` on the same in-plane cell, shifted by ``stacking`` and wrapped into the primitive
    cell), repeated ``supercell`` in-plane (ase's repeat order: the primitive bilayer's atoms,
    cell after cell, as in the reference sets)."""
    from hotham import checks
    supercell = [checks.positive_int(x, "supercell") for x in np.ravel(supercell)]
    top = layer.copy() if top is None else top.copy()
    top.positions += stacking_shift(layer, stacking)
    cell2 = np.asarray(layer.cell[:2])[:, :2]  # wrap the shifted layer into its own cell
    f = np.linalg.solve(cell2.T, top.positions[:, :2].T).T
    top.positions[:, :2] = (f - np.floor(f + 1e-12)) @ cell2
    atoms = stack_layers([layer, top], interlayer, vacuum=vacuum, cell_height=cell_height)
    return atoms.repeat((int(supercell[0]), int(supercell[1]), 1))


def set_layers(atoms: Atoms, shifts: dict, gaps=None, *, tags=None) -> Atoms:
    """Copy of a multilayer with layer k shifted rigidly by ``shifts[k]`` (Cartesian [3],
    in-plane) and, if ``gaps`` is given (one per adjacent pair, Angstrom), the layers moved
    vertically so that the gap between the top atom of layer k and the bottom atom of layer
    k+1 is gaps[k]; the stack is then re-centred at z = c/2. Layers: ``tags`` or atoms.get_tags()
    (or found from bonds if every tag is 0)."""
    out = atoms.copy()
    tags = np.asarray(tags if tags is not None else out.get_tags())
    if tags.max(initial=0) == 0:
        tags = find_layers(out)
    out.set_tags(tags)
    nl = int(tags.max()) + 1
    for k, s in shifts.items():
        s = np.asarray(s, float)
        if abs(s[2] if s.size > 2 else 0.0) > 0:
            raise StructureError("layer shifts are in-plane (z = 0)")
        out.positions[tags == k, :2] += s[:2]
    if gaps is not None:
        g = np.broadcast_to(np.asarray(gaps, float), (nl - 1,))
        z = out.positions[:, 2]
        base = z[tags == 0].max()
        for k in range(1, nl):
            m = tags == k
            dz = base + g[k - 1] - z[m].min()
            z[m] += dz
            base = z[m].max()
        c = out.cell[2, 2]
        z += c / 2 - (z.max() + z.min()) / 2
        out.positions[:, 2] = z
    return out


def slid_structures(atoms: Atoms, *, n: int | None = None, grid=None, moving=None, distance=None,
                    between: str = "gap", lattice=None, displacement: float = 0.0, seed: int = 0, slide_cell=None,
                    wrap: bool = True) -> list[Atoms]:
    """Structures of ``atoms`` (a multilayer, tags = layers) with layers slid rigidly.

    n: number of random structures (slides uniform over ``slide_cell``), or grid=(nu, nv): the
        regular grid u = i/nu, v = j/nv over the cell (every moving layer slid alike).
    moving: layers to slide (default: every layer but the bottom one).
    distance: None (keep), a number, (lo, hi) drawn uniformly per gap, or in grid mode a list
        of values combined with every grid point.
    between: what ``distance`` measures: "gap" (top atom of the lower layer to bottom atom of the
        upper one) or "centres" (between the layers' mean heights: Mo-Mo for MoS2).
    lattice: (lo, hi): an in-plane lattice constant a ~ U[lo, hi] (Angstrom) drawn first for each
        random structure; the whole structure (cell, positions, ``slide_cell``) is scaled in-plane
        by a / |slide_cell[0]| (the primitive cell's constant, also for a supercell), fractional
        coordinates kept.
    displacement: standard deviation (Angstrom, per Cartesian coordinate) of Gaussian
        displacements added after sliding.
    slide_cell: [2, 3] in-plane vectors the slide fractions refer to (default: atoms' cell;
        pass the primitive cell for supercells).
    Each structure's ``info`` holds slide_frac, slide_cart, d (the distances as ``between``
    measures them), a (with ``lattice``) and the displacements. InputError for a count below 1, a
    distance or lattice constant not > 0, LO above HI, a negative displacement; StructureError
    when a structure has overlapping atoms (:func:`.layers.check_not_overlapping`)."""
    from hotham import checks
    from hotham.errors import InputError
    if n is not None:
        n = checks.positive_int(n, "n")
    if grid is not None:
        grid = tuple(checks.positive_int(g, "grid") for g in np.ravel(grid))
        if len(grid) != 2:
            raise InputError(f"grid is (nu, nv), got {len(grid)} numbers")
    if distance is not None:
        values = [checks.positive(d, "distance") for d in np.atleast_1d(distance)]
        if grid is None and len(values) > 2:
            raise InputError(f"distance is one value or a (LO, HI) range for random slides, got {len(values)} "
                             "values (a list of distances goes with a grid)")
        if grid is None and len(values) == 2:
            checks.increasing(values, "distance", strict=False)
    if lattice is not None:
        lattice = checks.increasing(lattice, "lattice", strict=False, gt=0)
    displacement = checks.non_negative(displacement, "displacement")
    tags = atoms.get_tags()
    if tags.max(initial=0) == 0:
        tags = find_layers(atoms)
    nl = int(tags.max()) + 1
    if nl < 2:
        raise StructureError("slid structures need at least two layers (tags or bonded layers)")
    moving = list(range(1, nl)) if moving is None else list(moving)
    cell2 = np.asarray(atoms.cell[:2] if slide_cell is None else slide_cell, float)
    if between not in ("gap", "centres"):
        raise StructureError(f"between must be 'gap' or 'centres', not {between!r}")
    z = atoms.positions[:, 2]
    # centre distance d -> gap: d minus the upper half of the lower layer and the lower half of the upper one
    half = np.array([[z[tags == k].max() - z[tags == k].mean(), z[tags == k].mean() - z[tags == k].min()]
                     for k in range(nl)])
    to_gap = half[:-1, 0] + half[1:, 1] if between == "centres" else np.zeros(nl - 1)
    if lattice is not None and grid is not None and lattice[0] != lattice[1]:
        raise StructureError("a drawn lattice constant needs random slides (n), not a grid (a grid takes one "
                             "lattice constant: LO = HI)")
    rng = np.random.default_rng(seed)
    plan = []
    if grid is not None:
        nu, nv = grid
        ds = [None] if distance is None else (list(np.atleast_1d(distance)))
        a = None if lattice is None else float(lattice[0])
        for (i, j), d in itertools.product(itertools.product(range(nu), range(nv)), ds):
            noise = rng.normal(0.0, displacement, (len(atoms), 3)) if displacement > 0 else None
            plan.append(([(i / nu, j / nv)] * len(moving), None if d is None else [float(d)] * (nl - 1), noise, a))
    elif n is not None:
        for _ in range(int(n)):
            a = float(rng.uniform(*lattice)) if lattice is not None else None
            uv = [tuple(rng.random(2)) for _ in moving]
            if distance is None:
                d = None
            elif np.ndim(distance) == 0:
                d = [float(distance)] * (nl - 1)
            else:
                lo, hi = distance
                d = [float(rng.uniform(lo, hi)) for _ in range(nl - 1)]
            noise = rng.normal(0.0, displacement, (len(atoms), 3)) if displacement > 0 else None
            plan.append((uv, d, noise, a))
    else:
        raise StructureError("give n (random slides) or grid=(nu, nv)")
    a0 = float(np.linalg.norm(cell2[0]))       # the lattice constant of the slide (primitive) cell
    out = []
    for item in plan:
        uv, d = item[0], item[1]
        noise, a = item[2], item[3]
        base, slide2 = atoms, cell2
        if a is not None:       # homogeneous in-plane scaling: fractional coordinates kept
            base = atoms.copy()
            base.cell[:2] *= a / a0
            base.positions[:, :2] *= a / a0
            slide2 = cell2 * (a / a0)
        shifts = {k: np.append(np.asarray(f) @ slide2[:, :2], 0.0) for k, f in zip(moving, uv)}
        gaps = None if d is None else np.asarray(d) - to_gap
        s = set_layers(base, shifts, gaps, tags=tags)
        if noise is not None:
            s.positions += noise
        if wrap:
            wrap_in_plane(s)
        s.info.update({"slide_frac": [list(map(float, f)) for f in uv],
                       "slide_cart": [shifts[k].tolist() for k in moving], "moving_layers": moving,
                       "d": d, "between": between, "displacement": displacement, "seed": seed,
                       **({"a": a} if a is not None else {})})
        s.set_array("displacements", noise if noise is not None else np.zeros((len(atoms), 3)))
        check_not_overlapping(s, f"slid structure {len(out)} (distance {d}, slide {s.info['slide_frac']})")
        out.append(s)
    return out
