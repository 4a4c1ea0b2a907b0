"""The Fermi level: the one place that turns an electron count into a chemical potential.

"Fermi level" (E_F, eV) is used throughout hotham for the chemical potential mu of the
Fermi-Dirac occupation at the electronic temperature (300 K, OpenMX's default), found from the
number of valence electrons of the cell on a Gamma-centred Monkhorst-Pack mesh:

    sum_k w_k sum_n occ f((e_nk - mu) / kT) = N_electrons,

occ = 2 for a spin-less operator, 1 for spin-orbit spinors or each collinear channel. In a gap
the root sits where the count is reached (mid-gap at low T for a symmetric gap).
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from ..cell import slab_axis
from ..errors import HothamError
from ..operator import BlockOperator

__all__ = ["K_B", "mesh_shape", "monkhorst_pack", "automatic_mesh", "electron_count", "occupancy", "fermi_level",
           "find_fermi_level", "DENSE_FERMI_MAX"]

K_B = 8.617333262e-5  # eV / K

#: spin-orbitals above which find_fermi_level does not diagonalise densely
DENSE_FERMI_MAX = 12000

#: atoms x k-points of the automatic mesh (Gamma alone for large supercells)
AUTO_MESH_ATOM_K = 400


def mesh_shape(atoms, mesh) -> tuple[int, int, int]:
    """``(n1, n2, n3)`` of a mesh: a scalar ``mesh`` n (or [n]) is n x n x n, or n x n x 1 for slabs."""
    if np.size(mesh) == 1:
        ax = slab_axis(atoms)
        mesh = [int(np.ravel(mesh)[0])] * 3
        if ax is not None:
            mesh[ax] = 1
    if np.size(mesh) != 3:
        raise HothamError(f"a k-mesh is n or n1 n2 n3, not {mesh}")
    return tuple(int(n) for n in np.ravel(mesh))


def monkhorst_pack(atoms, mesh) -> np.ndarray:
    """Fractional MP mesh [n1 n2 n3, 3] (Gamma-centred for odd n, as ase) of :func:`mesh_shape`."""
    from ase.dft.kpoints import monkhorst_pack as mp
    return mp(mesh_shape(atoms, mesh))


def automatic_mesh(atoms) -> tuple[int, int, int]:
    """A mesh that shrinks as the cell grows: about ``AUTO_MESH_ATOM_K`` atoms x k-points in all
    (n x n along the periodic vectors, 1 across a slab's vacuum, Gamma alone for large cells,
    whose Brillouin zone is small)."""
    n = max(1, int(round(np.sqrt(AUTO_MESH_ATOM_K / len(atoms)))))
    mesh = [n if p else 1 for p in atoms.pbc]
    ax = slab_axis(atoms)
    if ax is not None:
        mesh[ax] = 1
    return tuple(mesh)


def electron_count(op: BlockOperator) -> float:
    """Valence electrons of the cell from ``op.meta["valence_electrons"]`` (a total, or a dict per
    element from the OpenMX input). HothamError if absent."""
    v = op.meta.get("valence_electrons")
    if v is None:
        raise HothamError(f"the number of electrons is unknown ({op.source or 'operator'} has no "
                          "valence_electrons in its metadata): give it explicitly")
    if isinstance(v, dict):
        try:
            return float(sum(v[s] for s in op.atoms.get_chemical_symbols()))
        except KeyError as exc:
            raise HothamError(f"no valence electron count for species {exc}") from None
    return float(v)


def occupancy(op: BlockOperator) -> float:
    """Electrons per band: 2 for spin 'none', 1 for soc or a collinear channel."""
    return 2.0 if op.spin == "none" else 1.0


def fermi_level(energies: np.ndarray, n_electrons: float, *, weights=None, occ: float = 2.0,
                temperature: float = 300.0) -> float:
    """Chemical potential (eV) with sum_k w_k sum_n occ f((e_nk - mu)/kT) = n_electrons.

    ``energies`` [nk, nb] (all spin channels concatenated along nb), ``weights`` [nk] summing
    to 1 (default uniform). Fermi-Dirac at ``temperature`` (K)."""
    e = np.asarray(energies, dtype=float)
    w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights, float)
    if n_electrons > occ * e.shape[1] or n_electrons < 0:
        raise HothamError(f"{n_electrons} electrons do not fit into {e.shape[1]} bands")
    kT = max(K_B * temperature, 1e-6)

    def count(mu):
        x = np.clip((e - mu) / kT, -200, 200)
        return float(occ * np.sum(w[:, None] / (1.0 + np.exp(x)))) - n_electrons

    lo, hi = e.min() - 1.0, e.max() + 1.0
    return float(brentq(count, lo, hi, xtol=1e-10))


def find_fermi_level(op: BlockOperator, mesh=None, *, n_electrons: float | None = None,
                     temperature: float = 300.0, max_orbitals: int = DENSE_FERMI_MAX) -> float:
    """Fermi level (eV) of an operator from its electron count on a Gamma-centred ``mesh``.

    ``mesh``: (n1, n2, n3), a scalar n (n x n x 1 for slabs), or None for
    :func:`automatic_mesh`. ``n_electrons`` defaults to :func:`electron_count`. All bands at
    every mesh point are diagonalised densely, so operators of more than ``max_orbitals``
    spin-orbitals raise HothamError (give the band tools an energy ``around`` instead)."""
    from .solve import eigenvalues
    n_orb = op.n_orbitals * op.spin_factor
    if n_orb > max_orbitals:
        raise HothamError(f"{op.n_orbitals} orbitals > {max_orbitals} (pass --around)")
    n_el = electron_count(op) if n_electrons is None else float(n_electrons)
    mesh = automatic_mesh(op.atoms) if mesh is None else mesh
    return fermi_level(eigenvalues(op, monkhorst_pack(op.atoms, mesh)), n_el, occ=occupancy(op),
                       temperature=temperature)
