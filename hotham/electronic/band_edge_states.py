"""Band-edge states: the states just below E_F and from it up at one k, from one shift-invert
factorisation at E_F (:func:`band_edge_states`), whose slice takes states from each side of the
shift separately (``solve(op, kpts, n_below=..., n_above=...)``, ``hotham bands --band-edges``).
"""
from __future__ import annotations

import numpy as np

from .hk import is_real_kpoint
from .shift_invert import ShiftInvert, SolverError

__all__ = ["band_edge_states", "band_edge_slice", "BAND_EDGE_GUARD"]

#: guard states on each side of a band-edge slice: its farthest state is not certified (a
#: degenerate partner may lie just outside), and one more keeps the wanted ones from being the
#: slowest to converge
BAND_EDGE_GUARD = 2


def band_edge_slice(n_below: int, n_above: int) -> tuple[int, int]:
    """(states, of them below the shift) of the slice :func:`band_edge_states` solves for."""
    below = n_below + BAND_EDGE_GUARD if n_below else 0
    above = n_above + BAND_EDGE_GUARD if n_above else 0
    return below + above, below


def band_edge_states(si: ShiftInvert, k, fermi: float, n_below: int, n_above: int, vectors: bool = False,
                     X0: np.ndarray | None = None, log: list | None = None, quotients: list | None = None):
    """The ``n_below`` eigenpairs just below ``fermi`` (eV) and the ``n_above`` from it up, at
    fractional k: (e [n_below + n_above] ascending, c [size, n] or None, the vectors of the
    slice: a warm start for the next k). ``log``: a list that receives a dict for the slice
    (see :attr:`hotham.electronic.solve.Eigen.slices`); ``quotients``: a list that receives the
    states' S quotients [n] (:func:`hotham.electronic.ghosts.s_quotient`).

    One shift, at E_F (``X0``: starting vectors, e.g. the previous k's), one factorisation: its
    slice holds the states nearest the shift on each side separately (n_below and n_above with
    :data:`BAND_EDGE_GUARD` more each), so both band edges of an insulator come from the same factor however
    unevenly E_F splits the gap, and no other eigenvalue lies between the wanted ones (the
    farthest guard of each side is not used: its partner may lie just outside)."""
    m, below = band_edge_slice(n_below, n_above)
    if X0 is not None and np.iscomplexobj(X0) and is_real_kpoint(si.op, k) and si.op.spin != "soc":
        X0 = X0.real                             # a complex start at a real k: its real part
    s = float(fermi)
    for attempt in range(3):
        try:
            e, c = si.move(s).solve(k, m, vectors, X0=X0, below=below)
            break
        except SolverError:                      # the shift hit an eigenvalue (a degenerate E_F)
            s += 1e-4 * (attempt + 1)
    else:
        raise SolverError(f"no shift near {fermi:.4f} eV works at k = {k}")
    if log is not None:
        log.append(dict(shift=s, states=m, t_factor=si.info["t_factor"], t_iterate=si.info["t_iterate"],
                        iterations=si.info.get("iterations"), factor_mflop=si.info.get("factor_mflop")))
    # the slice's sides are split at the shift; the states are split at E_F (the shift may
    # have moved off an eigenvalue by 0.1 meV)
    under, over = np.flatnonzero(e < fermi), np.flatnonzero(e >= fermi)
    if len(under) < n_below or len(over) < n_above:
        raise SolverError(f"the slice at {s:.4f} eV holds {len(under)} states below and {len(over)} above "
                          f"E_F = {fermi:.4f} eV at k = {k}, not {n_below} and {n_above}: fewer bands there?")
    pick = np.concatenate([under[len(under) - n_below:], over[:n_above]])     # e ascending
    if quotients is not None:
        quotients.append(si.last_quotient[pick])
    return e[pick], (c[:, pick] if vectors else None), si.last_vectors

