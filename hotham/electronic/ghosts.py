"""Ghost states: eigenstates of a predicted H that live in the near-null space of S.

OpenMX's PAO bases are nearly linearly dependent: S(k) of bilayer graphene has eigenvalues down
to 6e-4 (s2p2d1 on every atom). Along those directions the generalised eigenproblem
H c = e S c divides by almost nothing: in DFT the states there lie 27 eV and more above E_F,
but an error of 1 meV in H projected on them moves such a state by ~0.5 eV, so a model's small
coherent error can pull one down through the valence bands (the bilayer-graphene model under
0.7 % strain: a state at -4 eV at Gamma; at 1 %, -66 eV).

The measure, per eigenvector c normalised so that c^H S c = 1 (every solver of
:mod:`hotham.electronic.solve` returns them so), is the **S quotient**

    q = c^H S c / c^H c = 1 / |c|^2,

a weighted harmonic mean of S's eigenvalues s_i with the state's weights on S's eigenvectors:
q = 1 / sum_i (w_i / s_i). It needs no decomposition of S (the sparse solvers get it for free)
and is small as soon as a state has weight on the near-null space. Measured (dense, 20-30
k-points on each cell's band path): every state below E_F + 10 eV of every DFT cell of
``tests/data`` and ``data/`` and of AB bilayer graphene at -3, 0, +3 % biaxial strain,
uniaxial strain and 0.05 A noise has q >= 0.23 (MoS2: >= 0.42); states with q < 0.05 lie 27 eV or
more above E_F; the ghost states of the bilayer-graphene model under strain have q = 0.002-0.004.
A state is flagged as a ghost when q < :data:`GHOST_QUOTIENT` and it lies below
E_F + :data:`GHOST_ABOVE_EF` (the physical near-null states of DFT are far above; a ghost is
one that came down among the bands people look at).

Canonical orthogonalisation (:func:`canonical_eigh`, ``solve(..., canonical=threshold)``) solves
in the span of S's eigenvectors with eigenvalues at or above a threshold instead: the ghost
cannot appear there, at the price of the physical bands' weight on the dropped directions: it
is a stopgap, not a cure (a model that is right needs none). Measured, bands within E_F +- 5 eV
on 40 k-points of the band path against the plain solve, DFT cells: threshold 1e-3 changes them
by at most 0.7 meV but keeps the ghosts (whose directions have S eigenvalues ~2e-3); 3e-3 by
31-48 meV on graphene (AB bilayer at 0, -3, +3 %, twisted 21.79 deg), 0.7 meV on hBN, 0 on
MoS2; 5e-3 by 96-112 meV on graphene; 1e-2 by 160-250 meV (MoS2: 9 meV). On the shipped
bilayer-graphene model, 3e-3 removes every flagged state at 0.7 % strain and the -66 eV state at
1 % (10 flagged states stay 3-8 eV above its E_F); 5e-3 removes all. :data:`CANONICAL_THRESHOLD`
is 3e-3.
"""
from __future__ import annotations

import warnings

import numpy as np

__all__ = ["GHOST_QUOTIENT", "GHOST_ABOVE_EF", "CANONICAL_THRESHOLD", "GhostStateWarning", "s_quotient",
           "ghost_mask", "ghost_message", "warn_ghosts", "canonical_eigh"]

#: a state whose S quotient is below this lies (partly) in the near-null space of S (physical
#: states of DFT near E_F: >= 0.23; ghosts: 0.002-0.004)
GHOST_QUOTIENT = 0.05

#: ... and is a ghost when it lies below E_F plus this (eV); DFT's near-null states lie 27 eV and
#: more above E_F
GHOST_ABOVE_EF = 15.0

#: default threshold of canonical orthogonalisation: S eigenvalues below it are dropped
CANONICAL_THRESHOLD = 3e-3


class GhostStateWarning(UserWarning):
    """A solve found states in the near-null space of S among the bands (see :mod:`hotham.electronic.ghosts`)."""


def s_quotient(vectors: np.ndarray) -> np.ndarray:
    """S quotient c^H S c / c^H c of S-normalised eigenvectors ``vectors`` [..., n, nb]: [..., nb]
    (inf for an all-zero column: a direction canonical orthogonalisation dropped)."""
    norm2 = np.sum(np.abs(vectors) ** 2, axis=-2)
    with np.errstate(divide="ignore"):
        return np.where(norm2 > 0, 1.0 / np.where(norm2 > 0, norm2, 1.0), np.inf)


def ghost_mask(energies: np.ndarray, quotient: np.ndarray, fermi: float) -> np.ndarray:
    """Ghost states, bool like ``energies`` [nk, nb] (eV): S quotient below :data:`GHOST_QUOTIENT`
    and energy below ``fermi`` + :data:`GHOST_ABOVE_EF`. Without a Fermi level (NaN) none: DFT's own
    near-null states, 27 eV and more above E_F, could not be told from ghosts."""
    e = np.asarray(energies, dtype=float)
    if not np.isfinite(fermi):
        return np.zeros(e.shape, dtype=bool)
    return (np.asarray(quotient) < GHOST_QUOTIENT) & (e < fermi + GHOST_ABOVE_EF)


def ghost_message(kpts, energies, quotient, fermi: float, source: str = "") -> str | None:
    """Text of a :class:`GhostStateWarning` for the states of ``energies`` [nk, nb] (eV) at
    fractional ``kpts`` [nk, 3] with S quotients ``quotient`` [nk, nb], or None when no state is a ghost."""
    mask = ghost_mask(energies, quotient, fermi)
    if not mask.any():
        return None
    kpts = np.asarray(kpts, dtype=float).reshape(-1, 3)
    rows = np.flatnonzero(mask.any(axis=1))
    lines = []
    for q in rows[:5]:
        e = np.sort(np.asarray(energies)[q][mask[q]])
        rel = "" if not np.isfinite(fermi) else f" (E - E_F {', '.join(f'{x - fermi:+.2f}' for x in e[:4])} eV)"
        lines.append(f"k = ({kpts[q, 0]:.4f}, {kpts[q, 1]:.4f}, {kpts[q, 2]:.4f}): {len(e)} state(s) at "
                     f"{', '.join(f'{x:.3f}' for x in e[:4])}{' ...' if len(e) > 4 else ''} eV{rel}")
    if len(rows) > 5:
        lines.append(f"... and at {len(rows) - 5} more k-point(s)")
    where = f"{source}: " if source else ""
    return (f"{where}{int(mask.sum())} ghost state(s) at {len(rows)} of {len(mask)} k-point(s): states in the "
            f"near-null space of S (S quotient c^H S c / c^H c below {GHOST_QUOTIENT:g}) among the bands, "
            f"where DFT has none; these bands are an artefact of the predicted H (a structure off the "
            f"model's training domain?):\n  " + "\n  ".join(lines))


def warn_ghosts(eig, fermi: float, source: str = "", stacklevel: int = 3) -> int:
    """Warn (:class:`GhostStateWarning`) when the solve ``eig`` (:class:`~hotham.electronic.solve.Eigen`
    with ``s_quotient``) has ghost states relative to ``fermi`` (eV); returns how many."""
    if getattr(eig, "s_quotient", None) is None:
        return 0
    msg = ghost_message(eig.kpts, eig.energies, eig.s_quotient, fermi, source)
    if msg:
        warnings.warn(msg, GhostStateWarning, stacklevel=stacklevel)
        return int(ghost_mask(eig.energies, eig.s_quotient, fermi).sum())
    return 0


def canonical_eigh(Hk: np.ndarray, Sk: np.ndarray, threshold: float = CANONICAL_THRESHOLD,
                   vectors: bool = False):
    """H c = e S c by canonical orthogonalisation, batched over [nk, n, n]: the problem in the
    span of S's eigenvectors with eigenvalue >= ``threshold``, X = U_kept / sqrt(s_kept).

    Returns (e [nk, n] ascending with NaN in the last ``dropped[k]`` columns, c [nk, n, n]
    S-normalised with zero columns there, or None, dropped [nk] int)."""
    s, U = np.linalg.eigh(Sk)
    drop = s < threshold
    X = U / np.sqrt(np.where(drop, 1.0, s))[..., None, :]
    A = np.conj(np.swapaxes(X, -1, -2)) @ Hk @ X
    A = 0.5 * (A + np.conj(np.swapaxes(A, -1, -2)))
    # the dropped directions: decoupled and pushed far above every band, then cut off
    big = 1e3 * (1.0 + np.abs(A).max())
    keep = ~drop
    A = A * (keep[..., :, None] & keep[..., None, :])
    idx = np.arange(A.shape[-1])
    A[..., idx, idx] = np.where(drop, big, A[..., idx, idx].real)
    dropped = drop.sum(axis=-1)
    top = idx[None, :] >= (A.shape[-1] - dropped)[:, None]
    if not vectors:
        e = np.linalg.eigvalsh(A)
        return np.where(top, np.nan, e), None, dropped
    e, y = np.linalg.eigh(A)
    c = X @ y
    return np.where(top, np.nan, e), np.where(top[:, None, :], 0.0, c), dropped
