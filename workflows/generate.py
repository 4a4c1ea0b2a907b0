"""Training structures from a layer name or a structure file, and writing them out: the jobs of
``hotham structure perturb|slide|twist|hetero``.

``structure`` arguments are what :func:`.layers.build_or_read` takes: a file (any ase format,
OpenMX .dat) or a built-in layer name (graphene, hbn, MoS2, ... optionally ``NAME:a=LATTICE``).
The generators behind them are :mod:`.perturb`, :mod:`.slide`, :mod:`.twist` and :mod:`.hetero`.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from ase import Atoms

from .layers import DEFAULT_INTERLAYER, as_slab, build_or_read


def generate_perturbed(structure, n: int = 10, *, method: str = "gaussian", supercell=(1, 1, 1),
                       displacement: float = 0.05, distance: float = 0.03, temperature: float | None = None,
                       force_constants=None, strain: float = 0.0, seed: int = 0) -> list[Atoms]:
    """``n`` randomly displaced (and strained) copies of a (super)cell of ``structure``.

    method "gaussian": :func:`.perturb.gaussian_perturbations` of the supercell, ``displacement``
    the standard deviation (Angstrom) per coordinate; "phonopy":
    :func:`.perturb.phonopy_perturbations` at ``distance`` (Angstrom), or sampled at
    ``temperature`` (K) from ``force_constants``. ``strain``: standard deviation of the random
    strain entries."""
    from hotham import checks
    from hotham.errors import InputError

    from .perturb import gaussian_perturbations, phonopy_perturbations
    sc = [checks.positive_int(x, "supercell") for x in np.ravel(supercell)]
    if len(sc) != 3:
        raise InputError(f"supercell is three repetitions (n1, n2, n3), got {len(sc)}")
    atoms = build_or_read(structure)
    if method == "gaussian":
        atoms = atoms.repeat(sc) if sc != [1, 1, 1] else atoms
        return gaussian_perturbations(atoms, n, displacement=displacement, strain=strain, seed=seed)
    return phonopy_perturbations(atoms, n, supercell=sc, distance=distance, temperature=temperature,
                                 force_constants=force_constants, strain=strain, seed=seed)


def generate_slid(structure, n: int = 10, *, top=None, grid=None, distance=(3.25, 3.45), between: str = "gap",
                  lattice=None, stacking: str = "AB", supercell=(1, 1), cell_height: float | None = None,
                  displacement: float = 0.0, seed: int = 0, inverted: bool = False) -> list[Atoms]:
    """Bilayers of the layer ``structure`` (bottom) and ``top`` (default: the same layer) with the
    top layer slid rigidly (:func:`.slide.slid_structures`): ``n`` random slides, or a regular
    ``grid`` (NU, NV). Built-in names are the reference data's layers
    (:func:`.layers.reference_layer`: graphene, hbn, MoS2), so the reference sets come back from
    their seeds (README, "Structures and OpenMX runs").

    distance: interlayer distance(s), Angstrom: (LO, HI) drawn uniformly per structure, one
    value, or in grid mode the values combined with every grid point; ``between`` says what it
    measures ("gap" between the facing atom planes, or "centres" of the layers: Mo-Mo for MoS2).
    The untwisted bilayer is built at their mean with ``stacking``, repeated ``supercell``
    in-plane; slides are fractions of the primitive cell. ``lattice``: (LO, HI), a common in-plane
    lattice constant drawn first for each structure (both layers keep their fractional
    coordinates); without it both layers must have the same in-plane cell. ``displacement``:
    standard deviation (Angstrom) of Gaussian displacements added after sliding. ``inverted``:
    the top layer is rotated by 180 degrees about z before stacking (for MoS2 the 2H orientation,
    Mo over S in AA stacking, instead of the parallel 3R-like one)."""
    from hotham.errors import StructureError

    from .slide import bilayer, slid_structures
    layer = build_or_read(structure, reference=True)
    upper = None
    if top is not None:
        upper = build_or_read(top, reference=True)
        cell, ucell = np.asarray(layer.cell[:2, :2]), np.asarray(upper.cell[:2, :2])
        if lattice is None and np.abs(cell - ucell).max() > 1e-6:
            raise StructureError(f"{top} and {structure} have different in-plane cells: give a common lattice "
                                 "constant range (lattice / --lattice LO HI), or build a lattice-matched "
                                 "heterostructure (hotham structure hetero)")
        frac = np.linalg.solve(ucell.T, upper.positions[:, :2].T).T     # onto the bottom layer's cell
        upper.positions[:, :2] = frac @ cell
        upper.cell[:2] = layer.cell[:2]
    if inverted:                     # r -> (-x, -y, z); bilayer() wraps it back into the cell
        upper = (layer if upper is None else upper).copy()
        upper.positions[:, :2] *= -1.0
    distance = [float(d) for d in np.atleast_1d(distance)]
    gap = float(np.mean(distance))
    if between == "centres":         # the facing halves of the two layers are not gap
        zl, zu = layer.positions[:, 2], (layer if upper is None else upper).positions[:, 2]
        gap -= zl.max() - zl.mean() + zu.mean() - zu.min()
    base = bilayer(layer, top=upper, stacking=stacking, interlayer=gap, supercell=supercell, cell_height=cell_height)
    if grid:
        return slid_structures(base, grid=grid, distance=distance, between=between, displacement=displacement,
                               lattice=None if lattice is None else tuple(lattice), seed=seed,
                               slide_cell=layer.cell[:2])
    return slid_structures(base, n=n, distance=distance[0] if len(distance) == 1 else tuple(distance),
                           between=between, lattice=None if lattice is None else tuple(lattice),
                           displacement=displacement, seed=seed, slide_cell=layer.cell[:2])


def generate_twisted(structure, m: int = 1, n: int = 2, *, layers: str = "01", stacking: str | None = None,
                     interlayer: float = DEFAULT_INTERLAYER) -> Atoms:
    """The (m, n) commensurate twisted multilayer of the layer ``structure``
    (:func:`.twist.twisted_multilayer`). ``layers``: one rotation flag per layer, bottom first
    ("01" bilayer, "010" trilayer, "0011" double bilayer); ``stacking``: comma-separated stacking
    per layer (AA, AB, BA; default AA for all)."""
    from hotham.errors import InputError

    from .twist import twisted_multilayer
    if len(layers) < 2 or set(layers) - {"0", "1"}:
        raise InputError(f"layers is one rotation flag (0 or 1) per layer, at least two, e.g. 01 or 010; "
                         f"got {layers!r}")
    rotated = [c == "1" for c in layers]
    st = [x.strip() for x in stacking.split(",")] if stacking else ["AA"] * len(rotated)
    if len(st) == 1:
        st = st * len(rotated)
    if len(st) != len(rotated):
        raise InputError(f"stacking {stacking!r} names {len(st)} layers, layers {layers!r} has {len(rotated)}: "
                         "give one stacking (AA, AB, BA) for all layers or one per layer, comma-separated")
    return twisted_multilayer(build_or_read(structure), m, n, rotated=rotated, stacking=st, interlayer=interlayer)


def twist_angles(structure, max_atoms: int, *, layers: str = "01") -> list[dict]:
    """Commensurate twist angles of ``len(layers)`` layers of ``structure`` up to ``max_atoms``
    atoms (:func:`.twist.commensurate_angles`)."""
    from .twist import commensurate_angles
    return commensurate_angles(max_atoms, atoms_per_cell=len(build_or_read(structure)), n_layers=len(layers))


def generate_hetero(bottom, top, **options):
    """The heterobilayer of ``top`` on ``bottom`` (layer names or files): (ase.Atoms, HeteroMatch)
    of :func:`.hetero.heterostructure`, which takes ``options`` (twist_range, max_strain, ...)."""
    from .hetero import heterostructure
    return heterostructure(build_or_read(bottom), build_or_read(top), **options)


def write_structures(structures, out, *, kdensity: float = 4.0, kgrid=None, openmx_data=None,
                     force: bool = True) -> list[str]:
    """Write structures by the extension of ``out`` (any format ase writes; ``.dat``: an OpenMX
    input with the k grid ``kgrid`` (N1, N2, N3) or one of ``kdensity``, and DATA.PATH ``openmx_data``, see
    :func:`.openmx_input.openmx_input_text`), and a manifest of each one's ``info`` (slides,
    distances, twist, strain, seeds). Returns the paths written.

    ``out`` is a folder when it ends with a path separator, is an existing folder, or has no
    extension (but for one structure to a name ase knows, such as POSCAR): the structures (one or
    several) go to ``out/NNN/openmx.dat`` (manifest ``out/manifest.json``). Otherwise it is a
    file: one structure goes to ``out``, several to ``out`` with a 3-digit index before the
    extension (manifest ``<stem>_manifest.json``). ``force``: replace existing files (False
    refuses them, and the manifest, before anything is written). InputError, before anything is
    written, for no structures or an extension ase does not write."""
    import ase.io

    from hotham.errors import InputError
    from hotham.files import check_outputs

    from .openmx_input import write_openmx_input
    if not len(structures):
        raise InputError("no structures to write")
    folder = str(out).endswith(("/", os.sep)) or Path(out).is_dir()
    out = Path(out)
    if not folder and not out.suffix:       # a folder, but for one structure to a name ase knows (POSCAR)
        folder = len(structures) > 1 or _writable_format(out) is None
    if not folder and out.suffix != ".dat" and _writable_format(out) is None:
        raise InputError(f"{out}: ase writes no format of extension {out.suffix!r}; give .xyz, .extxyz, .cif, "
                         ".vasp, .dat (OpenMX input), ... or a folder")
    if folder:
        planned = [out / f"{k:03d}" / "openmx.dat" for k in range(len(structures))]
    elif len(structures) == 1:
        planned = [out]
    else:
        planned = [out.with_name(f"{out.stem}_{k:03d}{out.suffix}") for k in range(len(structures))]
    manifest = out / "manifest.json" if folder else out.with_name(out.stem + "_manifest.json")
    check_outputs(planned + [manifest], force=force)
    paths = []
    for p, a in zip(planned, structures):
        p.parent.mkdir(parents=True, exist_ok=True)
        a = as_slab(a)
        if p.suffix == ".dat":
            write_openmx_input(p, a, kdensity=kdensity, kgrid=kgrid, openmx_data=openmx_data)
        else:
            b = a.copy()
            b.info = {}
            for key in list(b.arrays):
                if key not in ("numbers", "positions"):
                    del b.arrays[key]
            ase.io.write(p, b)
        paths.append(str(p))
    manifest.parent.mkdir(parents=True, exist_ok=True)
    info = [{"file": p, **{k: _plain(v) for k, v in a.info.items()}} for p, a in zip(paths, structures)]
    manifest.write_text(json.dumps(info, indent=1))
    return paths


def _writable_format(path: Path):
    """The ase format written to ``path`` (guessed from its name), or None if ase writes none."""
    from ase.io.formats import filetype, ioformats
    try:
        fmt = ioformats.get(filetype(path, read=False))
    except Exception:
        return None
    return fmt if fmt is not None and fmt.can_write else None


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v
