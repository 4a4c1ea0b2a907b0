"""The Fermi level of an operator: the one place that turns an electron count into a chemical
potential (:func:`find_fermi_level`).

"Fermi level" (E_F, eV) is the chemical potential of the Fermi-Dirac occupation at the electronic
temperature (:mod:`hotham.electronic.fermi_dirac`), found from the number of valence electrons of
the cell (:mod:`hotham.electronic.occupation`) on a Gamma-centred Monkhorst-Pack mesh
(:mod:`hotham.electronic.kmesh`, one k-point per star). Up to ``DENSE_FERMI_MAX`` spin-orbitals
from all bands (dense); above it by counting bands with the inertia of sparse factorisations
(:mod:`hotham.electronic.fermi_count`).

This module also gathers the names of those modules a caller needs with it (``fermi_level``,
``count_fermi_level``, ``monkhorst_pack``, ``automatic_mesh``, ``irreducible_mesh``,
``electron_count``, ...).
"""
from __future__ import annotations

from .. import checks
from ..errors import HothamError
from ..operator import BlockOperator
from .fermi_count import COUNT_SLICE, COUNT_SLICE_MAX, SLICE_KT, count_fermi_level, count_root  # noqa: F401
from .fermi_dirac import GAP_KT, K_B, fermi_level  # noqa: F401
from .kmesh import (AUTO_MESH_ATOM_K, SYMPREC, automatic_mesh, irreducible_kpoints, irreducible_mesh,  # noqa: F401
                    mesh_shape, missing_special_points, monkhorst_pack, warn_missing_special_points)
from .occupation import electron_count, occupancy
from .solve import eigenvalues

__all__ = ["K_B", "mesh_shape", "missing_special_points", "warn_missing_special_points", "monkhorst_pack", "automatic_mesh", "electron_count", "occupancy", "fermi_level",
           "find_fermi_level", "count_fermi_level", "irreducible_kpoints", "irreducible_mesh", "DENSE_FERMI_MAX",
           "GAP_KT", "SLICE_KT"]

#: spin-orbitals above which find_fermi_level does not diagonalise densely
DENSE_FERMI_MAX = 12000


def find_fermi_level(op: BlockOperator, mesh=None, *, n_electrons: float | None = None,
                     temperature: float = 300.0, max_orbitals: int = DENSE_FERMI_MAX, method: str = "auto",
                     guess: float | None = None, backend: str = "auto", symmetry: bool = True,
                     info: dict | None = None, progress=False) -> float:
    """Fermi level (eV) of an operator from its electron count on a Gamma-centred ``mesh``.

    ``mesh``: (n1, n2, n3), a scalar n (n x n x 1 for slabs), or None for
    :func:`automatic_mesh`; a mesh given that misses special points of the cell (graphene's K
    on 4 x 4) is warned about (:func:`warn_missing_special_points`). ``n_electrons`` (> 0)
    defaults to :func:`electron_count`. ``method``:
    "dense" (all bands at every mesh point), "count" (:func:`count_fermi_level`: inertia of
    sparse factorisations and the eigenvalues near E_F, any size; ``guess`` the first shift,
    ``backend`` the factorisation), or "auto": dense up to ``max_orbitals`` spin-orbitals,
    counting above. One k-point per star of the mesh (:func:`irreducible_mesh`): k and -k (time
    reversal), and for a spin-less operator with ``symmetry`` the rotations of the structure's
    space group. ``info``: a dict filled with how."""
    n_orb = op.n_orbitals * op.spin_factor
    n_el = electron_count(op) if n_electrons is None else checks.positive(n_electrons, "n_electrons")
    checks.non_negative(temperature, "temperature")
    if mesh is None:
        mesh = automatic_mesh(op.atoms)
    else:
        mesh = mesh_shape(op.atoms, mesh)
        warn_missing_special_points(op.atoms, mesh)
    k, w = irreducible_mesh(op.atoms, mesh, symmetry=symmetry and op.spin == "none")
    if method == "auto":
        method = "dense" if n_orb <= max_orbitals else "count"
    if method == "count":
        return count_fermi_level(op, k, n_el, weights=w, temperature=temperature, guess=guess, backend=backend,
                                 info=info, progress=progress)
    if method != "dense":
        raise HothamError(f"unknown Fermi-level method {method!r} (auto, dense, count)")
    if info is not None:
        info.update(method="dense")
    return fermi_level(eigenvalues(op, k), n_el, weights=w, occ=occupancy(op), temperature=temperature)
