"""Band gaps read off band energies: the indirect (fundamental) gap, the direct gap and where they are.

Two ways to tell occupied from empty bands:

* ``n_occupied``: all bands were computed (dense), ascending; bands ``0 .. n_occupied - 1`` are the
  valence bands (for a spin-degenerate insulator n_occupied = electrons / 2,
  :func:`occupied_bands`);
* ``fermi``: a window of the spectrum (the n states nearest an energy, sparse solver): states
  below ``fermi`` (eV) are valence, above it conduction. ``fermi`` must lie in the gap.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HothamError
from ..operator import BlockOperator

__all__ = ["BandGap", "band_gap", "occupied_bands"]


@dataclass
class BandGap:
    """Band edges (eV, absolute): ``vbm``, ``cbm``, ``gap`` = cbm - vbm (indirect when
    ``k_vbm`` != ``k_cbm``, indices into the k-points given); ``direct_gap`` the smallest
    conduction - valence difference at one k-point, ``k_direct`` its index."""
    vbm: float
    cbm: float
    gap: float
    k_vbm: int
    k_cbm: int
    direct_gap: float
    k_direct: int

    @property
    def indirect(self) -> bool:
        return self.k_vbm != self.k_cbm

    def summary(self, kpts=None) -> str:
        where = (lambda i: f" at k = {np.round(kpts[i], 4).tolist()}") if kpts is not None else (lambda i: "")
        return (f"gap {1000 * self.gap:.1f} meV ({'indirect' if self.indirect else 'direct'}; VBM {self.vbm:.4f} eV"
                f"{where(self.k_vbm)}, CBM {self.cbm:.4f} eV{where(self.k_cbm)}), direct gap "
                f"{1000 * self.direct_gap:.1f} meV{where(self.k_direct)}")


def occupied_bands(op: BlockOperator) -> int:
    """Bands filled by the valence electrons of a spin-degenerate operator (electrons / 2);
    HothamError when that count is odd (no gap to read off)."""
    from .fermi import electron_count, occupancy
    ne = electron_count(op) / occupancy(op)
    if abs(ne - round(ne)) > 1e-6:
        raise HothamError(f"{op.source or 'operator'}: {ne:g} electrons per band slot: not an insulator's count")
    return int(round(ne))


def band_gap(energies, *, n_occupied: int | None = None, fermi: float | None = None) -> BandGap:
    """The gaps of band energies [nk, nb] (eV), valence and conduction told apart by ``n_occupied``
    (all bands, ascending) or by ``fermi`` (eV, a window of states); see the module docstring."""
    E = np.asarray(energies, dtype=float)
    if E.ndim != 2:
        raise HothamError(f"band energies must be [nk, nbands], got shape {E.shape}")
    if (n_occupied is None) == (fermi is None):
        raise HothamError("give exactly one of n_occupied (all bands) and fermi (a window of states)")
    if n_occupied is not None:
        if not 0 < n_occupied < E.shape[1]:
            raise HothamError(f"{n_occupied} occupied bands among {E.shape[1]}: no gap")
        val, con = E[:, n_occupied - 1], E[:, n_occupied]
    else:
        below, above = np.where(E < fermi, E, -np.inf), np.where(E > fermi, E, np.inf)
        val, con = below.max(1), above.min(1)
        if not (np.isfinite(val).all() and np.isfinite(con).all()):
            raise HothamError(f"the states at some k-points lie all on one side of {fermi:.4f} eV: widen the window")
    kv, kc = int(np.argmax(val)), int(np.argmin(con))
    kd = int(np.argmin(con - val))
    return BandGap(float(val[kv]), float(con[kc]), float(con[kc] - val[kv]), kv, kc, float(con[kd] - val[kd]), kd)
