"""Density of states on a Monkhorst-Pack mesh (Fermi level from :mod:`hotham.electronic.fermi`).

DOS(E) = sum_k w_k sum_n g(E - e_nk) per spin-less cell, states / eV, with g a normalised
Gaussian (``width`` = standard deviation, eV) or Lorentzian (``width`` = half width at half maximum, eV).
Spin-degenerate operators (spin "none") count 2 electrons per band; soc and each collinear
channel count 1. Projected DOS use Mulliken weights (sum over projections = total DOS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import checks
from ..errors import HothamError
from ..operator import BlockOperator
from .fermi_dirac import fermi_level
from .ghosts import warn_ghosts
from .kmesh import monkhorst_pack, warn_missing_special_points
from .occupation import electron_count, occupancy
from .solve import Eigen, solve
from .states import atom_weights, l_weights, orbital_weights, species_weights

def broaden(e_grid: np.ndarray, levels: np.ndarray, weights: np.ndarray, width: float,
            kind: str = "gaussian") -> np.ndarray:
    """sum_i weights[i, ...] g(E - levels[i]) on a uniform ``e_grid`` -> [nE, ...].

    Levels are spread onto the grid by linear interpolation (exact for the first moments) and
    convolved with the sampled kernel by FFT: O(levels + nE log nE) instead of levels x nE.
    """
    from scipy.signal import fftconvolve
    width = checks.positive(width, "width")
    if kind not in ("gaussian", "lorentzian"):
        raise HothamError(f"unknown smearing {kind!r} (gaussian, lorentzian)")
    e_grid = np.asarray(e_grid, dtype=float)
    levels = np.ravel(levels)
    W = np.reshape(weights, (len(levels), -1))
    nE = len(e_grid)
    de = (e_grid[-1] - e_grid[0]) / max(nE - 1, 1)
    if nE < 2 or not np.allclose(np.diff(e_grid), de, rtol=1e-6, atol=1e-12):
        raise HothamError("the DOS energy grid must be uniform")
    # kernel on the grid: +-10 widths for a Gaussian, the whole grid span for a Lorentzian
    half = int(np.ceil((10 * width if kind == "gaussian" else (e_grid[-1] - e_grid[0])) / de))
    x = np.arange(-half, half + 1) * de
    if kind == "gaussian":
        g = np.exp(-0.5 * (x / width) ** 2) / (width * np.sqrt(2 * np.pi))
    else:
        g = (width / np.pi) / (x * x + width * width)
    # linear-interpolation binning onto an extended grid (levels outside still contribute tails)
    t = (levels - e_grid[0]) / de + half
    n_ext = nE + 2 * half
    i0 = np.floor(t).astype(np.int64)
    f = t - i0
    ok = (i0 >= 0) & (i0 + 1 < n_ext)
    out = np.zeros((nE, W.shape[1]))
    for c in range(W.shape[1]):
        h = np.bincount(i0[ok], weights=W[ok, c] * (1 - f[ok]), minlength=n_ext + 1)[:n_ext]
        h += np.bincount(i0[ok] + 1, weights=W[ok, c] * f[ok], minlength=n_ext + 1)[:n_ext]
        conv = fftconvolve(h, g, mode="same")
        out[:, c] = conv[half:half + nE]
    return out.reshape((nE,) + np.shape(weights)[1:])


@dataclass
class DOS:
    """``energies`` [nE] eV, ``total`` [nE] states/eV/cell (both spins), ``projected`` {name: [nE]},
    ``fermi_level`` eV, and the eigenvalues on the mesh ``levels`` [nk, nb]."""
    energies: np.ndarray
    total: np.ndarray
    fermi_level: float
    projected: dict = field(default_factory=dict)
    levels: np.ndarray | None = None

    def save_txt(self, fname) -> None:
        """Columns E (eV), total, then each projection; loadable with np.loadtxt."""
        from ..files import atomic_path
        names = list(self.projected)
        cols = [self.energies, self.total] + [self.projected[n] for n in names]
        head = (f"hotham dos; fermi_level_eV {self.fermi_level:.10f}\n"
                f"columns: E_eV total {' '.join(names)} (states/eV/cell)")
        with atomic_path(fname) as tmp:
            np.savetxt(tmp, np.column_stack(cols), header=head, fmt="%.8e")

    def save_hdf5(self, fname) -> None:
        """HDF5 (atomic write): ``energies`` [nE] eV, ``total`` [nE] and ``projected/<name>`` [nE]
        states/eV/cell, ``levels`` [nk, nb] eV; attribute ``fermi_level`` eV."""
        import h5py
        from ..files import atomic_path
        with atomic_path(fname) as tmp, h5py.File(tmp, "w") as f:
            f["energies"], f["total"], f["levels"] = self.energies, self.total, self.levels
            for k, v in self.projected.items():
                f[f"projected/{k}"] = v
            f.attrs["fermi_level"] = self.fermi_level


def dos(op: BlockOperator, mesh=12, *, width: float = 0.05, kind: str = "gaussian",
        project: str | None = None, energies=None, n_electrons: float | None = None,
        fermi: float | None = None, temperature: float = 300.0, de: float | None = None,
        n: int | None = None, around: float | None = None) -> DOS:
    """Total (and projected) DOS on a Monkhorst-Pack ``mesh``.

    ``n``: only the ``n`` states nearest ``around`` (eV, default the Fermi level) at each
    k-point (the sparse solver of large cells): the DOS is then complete only over the energies
    those states cover at every k-point, and the Fermi level is ``fermi``, else ``around``, else
    ``op.fermi_level`` (no electron count over a window).

    ``project``: None, "species", "l" (per species and angular momentum) or "atom".
    Fermi level: ``fermi`` if given, else from ``n_electrons`` (default from the operator's
    valence electrons) on the same mesh (warned about when it misses special points of the cell:
    :func:`~hotham.electronic.fermi.warn_missing_special_points`), else ``op.fermi_level``.
    ``width`` > 0 eV, ``n_electrons`` > 0, ``temperature`` >= 0 K.
    ``energies``: the grid (eV), default spacing ``de`` (width / 4) spanning the bands +- 5 widths.
    Warns (:class:`~hotham.electronic.ghosts.GhostStateWarning`) when a state on the mesh is a ghost.
    """
    width = checks.positive(width, "width")
    if n_electrons is not None:
        n_electrons = checks.positive(n_electrons, "n_electrons")
    if fermi is not None:
        fermi = checks.number(fermi, "fermi")
    k = monkhorst_pack(op.atoms, mesh)
    if fermi is None and n is None:         # E_F counted on this mesh
        warn_missing_special_points(op.atoms, mesh)
    need_vec = project is not None
    chans = [0, 1] if op.spin == "collinear" else [None]
    levels, wts, quotients = [], [], []
    if n is not None and fermi is None:
        fermi = float(op.fermi_level if around is None else around)
    for s in chans:
        eig = solve(op, k, channel=s, vectors=need_vec, n=n, around=around, ghosts=True)
        levels.append(eig.energies)
        quotients.append(eig.s_quotient)
        if need_vec:
            wts.append(orbital_weights(op, k, eig.vectors, s or 0))
    E = np.concatenate(levels, axis=1)                   # [nk, nb_total]
    occ = occupancy(op)
    if fermi is None:
        try:
            ne = electron_count(op) if n_electrons is None else float(n_electrons)
            fermi = fermi_level(E, ne, occ=occ, temperature=temperature)
        except HothamError:
            if n_electrons is not None or not np.isfinite(op.fermi_level):
                raise
            fermi = float(op.fermi_level)
    # ghost states (in S's near-null space, among the bands) on the mesh
    warn_ghosts(Eigen(E, None, k, s_quotient=np.concatenate(quotients, axis=1)), fermi, op.source or "")
    if energies is None:
        de = width / 4 if de is None else float(de)
        lo, hi = E.min() - 5 * width, E.max() + 5 * width
        grid = np.linspace(lo, hi, min(int(np.ceil((hi - lo) / de)) + 1, 200_001))
    else:
        grid = np.asarray(energies, dtype=float)
    nk = len(k)
    total = occ * broaden(grid, E, np.full(E.size, 1.0 / nk), width, kind)
    proj = {}
    if need_vec:
        w = np.concatenate(wts, axis=1)                  # [nk, nb_total, n_orb]
        if project == "species":
            g, names = species_weights(op, w)
        elif project == "l":
            g, names = l_weights(op, w)
        elif project == "atom":
            g = atom_weights(op, w)
            names = [f"{i}:{s}" for i, s in enumerate(op.atoms.get_chemical_symbols())]
        else:
            raise HothamError(f"unknown projection {project!r} (species, l, atom)")
        pd = occ * broaden(grid, E, g.reshape(E.size, -1) / nk, width, kind)
        proj = {n: pd[:, i] for i, n in enumerate(names)}
    return DOS(grid, total, float(fermi), proj, E)
