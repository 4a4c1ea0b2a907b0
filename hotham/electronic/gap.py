"""Band gaps read off band energies: the indirect (fundamental) gap, the direct gap and where they are.

Two ways to tell occupied from empty bands:

* ``n_occupied``: all bands were computed (dense), ascending; bands ``0 .. n_occupied - 1`` are the
  valence bands (for a spin-degenerate insulator n_occupied = electrons / 2,
  :func:`occupied_bands`);
* ``fermi``: a slice of the spectrum (the n states nearest an energy, sparse solver): states
  below ``fermi`` (eV) are valence, above it conduction. ``fermi`` must lie in the gap.

:func:`band_edges` (the gap rule of :func:`hotham.electronic.fermi_level`) reads the same two
bands from the electron count, also from slices that start at a known band index per k-point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HothamError
from ..operator import BlockOperator
from .occupation import electron_count, occupancy

__all__ = ["BandGap", "band_gap", "occupied_bands", "band_edges", "valence_splitting"]


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


def _filled_bands(n_electrons: float, occ: float) -> int | None:
    """Bands that ``n_electrons`` fill at ``occ`` electrons per band, or None when that is not a
    whole number (at least 1)."""
    N = n_electrons / occ
    return int(round(N)) if abs(N - round(N)) <= 1e-6 and round(N) >= 1 else None


def _gap_bands(energies, n_occupied: int, n_below=None):
    """(valence [nk], conduction [nk]): bands ``n_occupied`` - 1 and ``n_occupied`` at every k of
    ``energies`` [nk, nb] (eV; sorted per k, +inf pads a shorter slice), each row a slice
    starting at band ``n_below`` [nk] (default 0); None when some slice misses either band."""
    e = np.sort(np.asarray(energies, dtype=float), axis=1)
    nb = np.zeros(len(e), np.int64) if n_below is None else np.asarray(n_below, np.int64)
    i = n_occupied - nb                                  # slice index of band n_occupied at every k
    if np.any(i < 1) or np.any(i >= e.shape[1]):
        return None
    rows = np.arange(len(e))
    val, con = e[rows, i - 1], e[rows, i]
    if not (np.all(np.isfinite(val)) and np.all(np.isfinite(con))):
        return None
    return val, con


def band_edges(energies: np.ndarray, n_electrons: float, occ: float = 2.0, n_below=None):
    """(highest occupied, lowest empty) band energy over all k (eV) when the electrons fill a
    whole number N of bands at every k, else None; also None when a slice ``energies`` [nk, nb]
    starting at band ``n_below`` [nk] (default 0) misses band N - 1 or N at some k."""
    N = _filled_bands(n_electrons, occ)
    vc = None if N is None else _gap_bands(energies, N, n_below)
    return None if vc is None else (float(vc[0].max()), float(vc[1].min()))


def occupied_bands(op: BlockOperator) -> int:
    """Bands filled by the valence electrons of a spin-degenerate operator (electrons / 2);
    HothamError when that count is odd (no gap to read off)."""
    n_el, occ = electron_count(op), occupancy(op)
    N = _filled_bands(n_el, occ)
    if N is None:
        raise HothamError(f"{op.source or 'operator'}: {n_el / occ:g} electrons per band slot: not an insulator's count")
    return N


def band_gap(energies, *, n_occupied: int | None = None, fermi: float | None = None) -> BandGap:
    """The gaps of band energies [nk, nb] (eV), valence and conduction told apart by ``n_occupied``
    (all bands, ascending) or by ``fermi`` (eV, a slice of states); see the module docstring."""
    E = np.asarray(energies, dtype=float)
    if E.ndim != 2:
        raise HothamError(f"band energies must be [nk, nbands], got shape {E.shape}")
    if (n_occupied is None) == (fermi is None):
        raise HothamError("give exactly one of n_occupied (all bands) and fermi (a slice of states)")
    if n_occupied is not None:
        vc = _gap_bands(E, n_occupied)
        if vc is None:
            raise HothamError(f"{n_occupied} occupied bands among {E.shape[1]}: no gap")
        val, con = vc
    else:
        below, above = np.where(E < fermi, E, -np.inf), np.where(E > fermi, E, np.inf)
        val, con = below.max(1), above.min(1)
        if not (np.isfinite(val).all() and np.isfinite(con).all()):
            raise HothamError(f"the states at some k-points lie all on one side of {fermi:.4f} eV: widen the slice (more states)")
    kv, kc = int(np.argmax(val)), int(np.argmin(con))
    kd = int(np.argmin(con - val))
    return BandGap(float(val[kv]), float(con[kc]), float(con[kc] - val[kv]), kv, kc, float(con[kd] - val[kd]), kd)


#: spinor levels closer than this (eV) are one (Kramers-)degenerate level
DEGENERATE_EV = 1e-4


def valence_splitting(op: BlockOperator, kpoint=(1 / 3, 1 / 3, 0)) -> float:
    """Spin-orbit splitting (eV) of the top valence band at ``kpoint`` (fractional; default K of
    a hexagonal cell): the highest occupied spinor level minus the next distinct level below it,
    the valence band count from the electron count (one electron per spinor band). Without
    inversion (a monolayer) the two are single spinor bands; in a centrosymmetric cell (the 2H
    bilayer) every level is a Kramers pair and the splitting is that of the top two pairs."""
    from .solve import eigenvalues
    if op.spin != "soc":
        raise HothamError(f"{op.source or 'operator'}: a spin-orbit splitting needs spinor H (spin soc, not {op.spin})")
    n = int(round(electron_count(op)))
    e = np.asarray(eigenvalues(op, [kpoint])).reshape(-1)[:n]
    below = e[e < e[-1] - DEGENERATE_EV]
    if not below.size:
        raise HothamError(f"{op.source or 'operator'}: every occupied level at k = {tuple(kpoint)} is one degenerate level")
    return float(e[-1] - below[-1])
