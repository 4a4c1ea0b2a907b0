"""Perturbed (super)cells for training sets: random thermal-like displacements and strain.

* ``gaussian_perturbations``: every Cartesian coordinate displaced by N(0, displacement^2) (Angstrom),
  the plain fallback; with ``numpy.random.default_rng(seed)`` and the draws made structure by
  structure (3 numbers per atom in atom order, then the strain) it reproduces the reference
  graphene_mono_2x2 set.
* ``phonopy_perturbations``: phonopy's random displacements, at a fixed distance in random
  directions, or, given force constants, sampled from the harmonic canonical ensemble at a
  temperature T (phonopy's quantum occupations; classical limit <u u^T> = kT Phi^+).

Optional random strain: a symmetric matrix eps with entries ~ N(0, strain^2), in-plane only
for slabs (vacuum along c), applied to the cell and the positions: x' = (1 + eps) x.
"""
from __future__ import annotations

import numpy as np
from ase import Atoms

from hotham.cell import slab_axis
from hotham.errors import StructureError

from .layers import check_not_overlapping


def is_slab(atoms: Atoms) -> bool:
    """True for a layer or stack of layers along z: :func:`hotham.cell.slab_axis` is the third
    cell vector (the generators build layers in the xy plane)."""
    return slab_axis(atoms) == 2


def wrap_in_plane(atoms: Atoms) -> Atoms:
    """Wrap fractional coordinates into [0, 1) along the periodic in-plane axes (and along c
    for bulk), in place; a slab's out-of-plane coordinate is left alone."""
    axes = [0, 1] if is_slab(atoms) else [k for k in range(3) if atoms.pbc[k]]
    f = np.linalg.solve(atoms.cell[:].T, atoms.positions.T).T
    f[:, axes] -= np.floor(f[:, axes])
    atoms.positions = f @ atoms.cell[:]
    return atoms


def random_strain(rng: np.random.Generator, strain: float, slab: bool) -> np.ndarray:
    """Symmetric strain [3, 3] with entries ~ N(0, strain^2); in-plane block only for slabs."""
    e = rng.normal(0.0, strain, (3, 3))
    e = (e + e.T) / 2
    if slab:
        e[2, :] = 0.0
        e[:, 2] = 0.0
    return e


def apply_strain(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Copy deformed by x' = (1 + eps) x (cell and positions), in place on the copy."""
    out = atoms.copy()
    F = np.eye(3) + eps
    out.set_cell(np.asarray(atoms.cell[:]) @ F.T, scale_atoms=False)
    out.positions = atoms.positions @ F.T
    return out


def gaussian_perturbations(atoms: Atoms, n: int, *, displacement: float = 0.05, strain: float = 0.0, seed: int = 0,
                           wrap: bool = True) -> list[Atoms]:
    """``n`` copies of ``atoms`` with Gaussian displacements (``displacement``: their standard
    deviation in Angstrom per Cartesian coordinate) and optional random strain; displacements in
    ``arrays["displacements"]``."""
    from hotham import checks
    n = checks.positive_int(n, "n")
    displacement = checks.non_negative(displacement, "displacement")
    strain = checks.non_negative(strain, "strain")
    rng = np.random.default_rng(seed)
    slab = is_slab(atoms)
    out = []
    for k in range(int(n)):
        u = rng.normal(0.0, displacement, (len(atoms), 3))
        s = atoms.copy()
        s.positions = s.positions + u
        if strain > 0:
            s = apply_strain(s, random_strain(rng, strain, slab))
        if wrap:
            wrap_in_plane(s)
        s.set_array("displacements", u)
        s.info.update({"index": k, "seed": seed, "displacement": displacement, "strain_sigma": strain})
        check_not_overlapping(s, f"perturbed structure {k} (displacement {displacement:g} A, strain {strain:g})")
        out.append(s)
    return out


def load_force_constants(path, n_atoms: int) -> np.ndarray:
    """Force constants [N, N, 3, 3] (eV/A^2) from phonopy's FORCE_CONSTANTS or
    force_constants.hdf5 file."""
    from phonopy.file_IO import parse_FORCE_CONSTANTS, read_force_constants_hdf5
    p = str(path)
    fc = read_force_constants_hdf5(p) if p.endswith((".hdf5", ".h5")) else parse_FORCE_CONSTANTS(p)
    fc = np.asarray(fc)
    if fc.shape[0] != n_atoms or fc.shape[1] != n_atoms:
        raise StructureError(f"{p}: force constants for {fc.shape[:2]} atoms, the supercell has {n_atoms}")
    return fc


def phonopy_perturbations(atoms: Atoms, n: int, *, supercell=(1, 1, 1), distance: float = 0.03,
                          temperature: float | None = None, force_constants=None, strain: float = 0.0,
                          seed: int = 0, wrap: bool = True) -> list[Atoms]:
    """``n`` supercells of ``atoms`` with phonopy's random displacements.

    Without ``temperature``: every atom displaced by ``distance`` (Angstrom) in a random
    direction (phonopy.generate_displacements(number_of_snapshots=n)). With ``temperature``
    (K): displacements sampled from the harmonic phonons of ``force_constants`` (array
    [N_sc, N_sc, 3, 3] in eV/A^2 for the supercell, or a phonopy FORCE_CONSTANTS /
    force_constants.hdf5 path). ``supercell``: 3 integers or a 3x3 matrix."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    from hotham import checks
    n = checks.positive_int(n, "n")
    distance = checks.positive(distance, "distance")
    strain = checks.non_negative(strain, "strain")
    if temperature is not None:
        temperature = checks.non_negative(temperature, "temperature")
    if np.ndim(supercell) == 1:
        supercell = [checks.positive_int(x, "supercell") for x in supercell]

    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=np.asarray(atoms.cell[:]),
                        scaled_positions=atoms.get_scaled_positions(wrap=False))
    sc = np.diag(supercell) if np.ndim(supercell) == 1 else np.asarray(supercell)
    ph = Phonopy(unit, supercell_matrix=sc, primitive_matrix="P")
    if temperature is not None:
        if force_constants is None:
            raise StructureError("displacements at a temperature need force constants")
        fc = force_constants
        if not isinstance(fc, np.ndarray):
            fc = load_force_constants(fc, len(ph.supercell))
        if fc.shape[:2] != (len(ph.supercell), len(ph.supercell)):
            raise StructureError(f"force constants for {fc.shape[:2]} atoms, the supercell has {len(ph.supercell)}")
        ph.force_constants = fc
        ph.generate_displacements(number_of_snapshots=int(n), random_seed=int(seed), temperature=float(temperature))
    else:
        ph.generate_displacements(distance=float(distance), number_of_snapshots=int(n), random_seed=int(seed))
    disps = np.asarray(ph.displacements)  # [n, N_sc, 3], Angstrom
    base = ph.supercell
    rng = np.random.default_rng(seed)
    out = []
    for k in range(disps.shape[0]):
        s = Atoms(symbols=base.symbols, cell=base.cell, positions=base.positions + disps[k], pbc=atoms.pbc)
        if strain > 0:
            s = apply_strain(s, random_strain(rng, strain, is_slab(atoms)))
        if wrap:
            wrap_in_plane(s)
        s.set_array("displacements", disps[k])
        s.info.update({"index": k, "seed": seed, "temperature": temperature,
                       "distance": None if temperature is not None else distance, "strain_sigma": strain})
        check_not_overlapping(s, f"perturbed structure {k} (strain {strain:g})")
        out.append(s)
    return out
