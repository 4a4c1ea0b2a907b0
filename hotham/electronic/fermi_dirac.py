"""The Fermi-Dirac occupation of given band energies: the chemical potential that holds a number
of electrons (:func:`fermi_level`), or the middle of a wide gap.

"Fermi level" (E_F, eV) is, throughout hotham, the chemical potential mu of the Fermi-Dirac
occupation at the electronic temperature (300 K, OpenMX's default):

    sum_k w_k sum_n occ f((e_nk - mu) / kT) = N_electrons,

occ = 2 for a spin-less operator, 1 for spin-orbit spinors or each collinear channel.

Insulators: in a gap wider than ``GAP_KT`` kT (0.52 eV at 300 K) E_F is the middle of the gap
(between the highest occupied and the lowest empty band over the mesh). There the root of the
equation above is set by occupations below e^-10, which no slice of eigenvalues resolves and
double precision stops resolving for gaps over ~60 kT; the middle of the gap is its zero-smearing
limit.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq

from .. import checks
from ..errors import HothamError
from .gap import band_edges

__all__ = ["K_B", "GAP_KT", "fermi_level"]

K_B = 8.617333262e-5  # eV / K

#: a gap wider than this many kT puts E_F in its middle
GAP_KT = 20.0


def fermi_level(energies: np.ndarray, n_electrons: float, *, weights=None, occ: float = 2.0,
                temperature: float = 300.0, n_below=None) -> float:
    """Chemical potential (eV) with sum_k w_k sum_n occ f((e_nk - mu)/kT) = n_electrons, or the
    middle of a gap wider than ``GAP_KT`` kT (module docstring).

    ``energies`` [nk, nb] (all spin channels concatenated along nb), ``weights`` [nk] summing
    to 1 (default uniform). Fermi-Dirac at ``temperature`` (K). ``n_below`` [nk]: the energies
    are a slice of the spectrum with that many bands below it at each k (full: the counting
    method, :func:`hotham.electronic.fermi_count.count_fermi_level`)."""
    n_electrons = checks.positive(n_electrons, "n_electrons")
    temperature = checks.non_negative(temperature, "temperature")
    e = np.asarray(energies, dtype=float)
    w = np.full(len(e), 1.0 / len(e)) if weights is None else np.asarray(weights, float)
    nb = np.zeros(len(e)) if n_below is None else np.asarray(n_below, float)
    below = occ * float(np.sum(w * nb))
    if n_electrons > occ * float(np.sum(w * np.isfinite(e).sum(axis=1))) + below or n_electrons < below:
        raise HothamError(f"{n_electrons} electrons do not fit into {e.shape[1]} bands")
    kT = max(K_B * temperature, 1e-6)
    edges = band_edges(e, n_electrons, occ, n_below)
    if edges is not None and edges[1] - edges[0] > GAP_KT * kT:
        return 0.5 * (edges[0] + edges[1])

    def count(mu):
        x = np.clip((e - mu) / kT, -200, 200)
        return float(occ * np.sum(w[:, None] / (1.0 + np.exp(x)))) + below - n_electrons

    finite = e[np.isfinite(e)]
    lo, hi = finite.min() - 1.0, finite.max() + 1.0
    return float(brentq(count, lo, hi, xtol=1e-10))
