"""Berry phases and Chern numbers of an isolated group of bands, from Wilson loops.

The group's states at the points of a k mesh, k_ij = (i / n1, j / n2, k3), come from a
:class:`hotham.electronic.interpolation.WindowModel` (any k at small dense cost). Between
neighbouring points k and k' = k + delta the link matrix of the group's periodic parts u is

    M(k, k')_mn = <u_mk | u_nk'> ~ sum_{mu nu} conj(c_mu,m(k)) exp(-2 pi i delta.tau_mu) S(k')_mu,nu c_nu,n(k'),

with c the lattice-gauge coefficients of :mod:`hotham.electronic.hk` (periodic in k:
c(k + G) = c(k)) and tau_mu the fractional position of orbital mu's atom: the tight-binding
convention of PythTB and Wannier90 (positions at the atoms), in which exp(-2 pi i delta.tau)
turns the lattice gauge into the periodic one. Every product of links around a closed loop is
independent of the phases (and, for a degenerate group, the mixing) of the states at each k.

* Wilson loop along b2 at each k1: W(k1) = M(k_0, k_1) M(k_1, k_2) ... M(k_{n2-1}, k_0 + b2);
  its eigenphases phi are the hybrid Wannier centres -phi / (2 pi) (fractional along a2), their
  sum mod 2 pi the Berry phase of the group on that loop.
* Chern number (Fukui, Hatsugai and Suzuki, J. Phys. Soc. Jpn. 74, 1674 (2005)): the principal
  arguments of the link determinants around every plaquette of the mesh add up to 2 pi C, an
  integer for any mesh on which the group stays separated from the other bands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HothamError

__all__ = ["WilsonLoops", "wilson_loops", "orbital_positions", "link_matrices"]


@dataclass
class WilsonLoops:
    """Wilson loops of a band group along b2 on an ``mesh`` (n1, n2) at ``k3``.

    k1 : [n1] fractional; phases : [n1, g] eigenphases of W(k1) (radians, (-pi, pi], ascending);
    berry_phase : [n1] the group's Berry phase on each loop (sum of the phases, mod 2 pi);
    curvature : [n1, n2] Berry flux through each plaquette (radians); chern : the Chern number
    (int); chern_sum : the flux sum / 2 pi before rounding (an integer to round-off on an
    adequate mesh); gap : smallest energy gap (eV) between the group and the other bands on the
    mesh; bands : the tracked-band indices of the group.
    """
    k1: np.ndarray
    phases: np.ndarray
    berry_phase: np.ndarray
    curvature: np.ndarray
    chern: int
    chern_sum: float
    gap: float
    bands: np.ndarray
    mesh: tuple
    k3: float = 0.0


def orbital_positions(op) -> np.ndarray:
    """Fractional position [size, 3] of every orbital's atom (spinor: both spins), unwrapped:
    the positions the lattice gauge's Bloch sums use."""
    from .states import orbital_atom
    tau = op.atoms.cell.scaled_positions(op.atoms.positions)[orbital_atom(op)]
    return np.concatenate([tau, tau]) if op.spin == "soc" else tau


def link_matrices(x, Sx_next, tau, delta) -> np.ndarray:
    """Link matrices M [..., g, g] = (exp(2 pi i delta.tau) x)^H (S(k') x') of states x [..., size, g]
    at k and S(k') x' [..., size, g] at k' = k + delta (fractional [3]): the dense form of the
    links, for references and small cells."""
    ph = np.exp(-2j * np.pi * (tau @ np.asarray(delta, float)))
    return np.einsum("...nm,n,...nl->...ml", x.conj(), ph, Sx_next)


def _unit_det(M):
    d = np.linalg.det(M)
    return d / np.maximum(np.abs(d), 1e-300)


def loops_from_links(M1, M2, gap, bands, mesh, k3) -> WilsonLoops:
    """:class:`WilsonLoops` from the link matrices along b1 (``M1`` [n1, n2, g, g], M(k_ij, k_i+1,j))
    and b2 (``M2``, M(k_ij, k_i,j+1)), both cyclic."""
    n1, n2, g = M2.shape[0], M2.shape[1], M2.shape[2]
    W = np.broadcast_to(np.eye(g, dtype=complex), (n1, g, g)).copy()
    for j in range(n2):                          # a product in order along each loop
        W = W @ M2[:, j]
    phases = np.sort(np.angle(np.linalg.eigvals(W)), axis=1)
    berry = np.angle(np.exp(1j * phases.sum(axis=1)))
    U1, U2 = _unit_det(M1), _unit_det(M2)
    F = np.angle(U1 * np.roll(U2, -1, axis=0) * np.conj(np.roll(U1, -1, axis=1)) * np.conj(U2))
    total = float(F.sum() / (2 * np.pi))
    return WilsonLoops(np.arange(n1) / n1, phases, berry, F, int(np.rint(total)), total, float(gap),
                       np.asarray(bands), (n1, n2), float(k3))


def wilson_loops(model, bands, mesh=(24, 24), k3: float = 0.0, min_gap: float | None = None) -> WilsonLoops:
    """Wilson loops and the Chern number of the tracked bands ``bands`` (indices into the model's
    tracked set, e.g. ``range(n_below - 2, n_below + 2)``) of a
    :class:`~hotham.electronic.interpolation.WindowModel`, on the ``mesh`` (n1, n2) of the
    plane k3 (fractional).

    The group must be isolated: the smallest gap (eV) to the model's states just below and above
    it on the mesh must exceed ``min_gap`` (default ten times the largest error bound of the
    group there), else :class:`HothamError` (its Berry phases are not defined)."""
    sel = np.atleast_1d(np.asarray(bands, int))
    m = model.n_below + model.n_above
    if sel.min() < 0 or sel.max() >= m or np.any(np.diff(sel) != 1):
        raise HothamError(f"a band group is a contiguous range of the {m} tracked bands, not {sel.tolist()}")
    n1, n2 = (int(v) for v in np.broadcast_to(mesh, (2,)))
    i, j = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    k = np.stack([i / n1, j / n2, np.full(i.shape, float(k3))], -1).reshape(-1, 3)
    b = model.bands(k, vectors=True)
    # the gap to the Ritz values next to the group (the guards keep them inside the window)
    lo_i = b.first + sel[0] - 1
    hi_i = b.first + sel[-1] + 1
    if lo_i.min() < 0 or hi_i.max() >= b.ritz.shape[1]:
        raise HothamError("the band group touches the edge of the model's window: widen it (guard)")
    rows = np.arange(len(k))
    gap = min(float((b.ritz[rows, b.first + sel[0]] - b.ritz[rows, lo_i]).min()),
              float((b.ritz[rows, hi_i] - b.ritz[rows, b.first + sel[-1]]).min()))
    need = 10 * float(b.bound[:, sel].max()) if min_gap is None else float(min_gap)
    if gap <= need:
        raise HothamError(f"the bands {sel.tolist()} are not isolated on the {n1}x{n2} mesh: the smallest gap to "
                          f"the other bands is {1e3 * gap:.3f} meV (needs > {1e3 * need:.3f} meV)")
    y = b.coefficients[:, :, sel].reshape(n1, n2, -1, len(sel))
    L1, L2 = model.position_overlaps((1 / n1, 0, 0)), model.position_overlaps((0, 1 / n2, 0))
    kk = k.reshape(n1, n2, 3)

    def links(L, y_next, k_next):
        ph = np.exp(2j * np.pi * (k_next.reshape(-1, 3) @ model.R.T))            # [nk, nR]
        Lk = (ph @ L.reshape(len(L), -1)).reshape(n1, n2, *L.shape[1:])
        return np.conj(np.swapaxes(y, 2, 3)) @ Lk @ y_next

    # neighbours on the torus: k + b1 / n1 and k + b2 / n2 (the lattice gauge is periodic in k,
    # so the last point's neighbour is the first; the position phases of the links carry the rest)
    M1 = links(L1, np.roll(y, -1, axis=0), np.roll(kk, -1, axis=0))
    M2 = links(L2, np.roll(y, -1, axis=1), np.roll(kk, -1, axis=1))
    return loops_from_links(M1, M2, gap, sel, (n1, n2), k3)
