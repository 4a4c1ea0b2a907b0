"""Wavefunctions: eigenvectors at chosen k and bands, Mulliken weights, where a state lives.

Mulliken weight of state c on orbital mu: w_mu = Re(conj(c_mu) (S(k) c)_mu); the weights of a
state sum to 1 (c is S-normalised). Atom and shell weights sum the orbitals of each atom /
each (atom, shell). For soc the two spin components of an orbital are added, and the spin
texture of a state is <sigma_a> = <c| S(k) (x) sigma_a |c> / <c| S(k) (x) 1 |c> (a = x, y, z;
spin-major c = (c_up, c_down): <sigma_x> + i <sigma_y> = 2 c_up^dagger S c_down, <sigma_z> =
c_up^dagger S c_up - c_down^dagger S c_down), between -1 and 1.
Eigenvectors are in the lattice gauge of :mod:`hotham.electronic.hk`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HothamError
from ..operator import BlockOperator
from .hk import Assembler, as_kpoints
from .ghosts import warn_ghosts
from .solve import solve


def _with_overlap(op: BlockOperator, kpts, vectors: np.ndarray):
    """(c [size, nb], S(k) c) of ``vectors`` [nk, size, nb] at every fractional k-point."""
    k = as_kpoints(kpts)
    asm = Assembler(op)
    for q in range(len(k)):
        yield vectors[q], asm.S(k[q]) @ vectors[q]


def spin_texture(op: BlockOperator, kpts, vectors: np.ndarray) -> np.ndarray:
    """<sigma_x>, <sigma_y>, <sigma_z> of spinor ``vectors`` [nk, 2 n_orbitals, nb] (soc) at
    fractional ``kpts``: float [nk, nb, 3] (module docstring; -1..1)."""
    if op.spin != "soc":
        raise HothamError(f"a spin texture needs spinor states (spin soc; this operator is spin {op.spin})")
    n, out = op.n_orbitals, []
    for c, Sc in _with_overlap(op, kpts, vectors):
        updown = np.sum(np.conj(c[:n]) * Sc[n:], axis=0)                    # c_up^dagger S c_down [nb]
        up, down = (np.real(np.sum(np.conj(c[s]) * Sc[s], axis=0)) for s in (slice(0, n), slice(n, None)))
        out.append(np.stack([2 * updown.real, 2 * updown.imag, up - down], axis=-1) / (up + down)[:, None])
    return np.stack(out)


def orbital_weights(op: BlockOperator, kpts, vectors: np.ndarray, channel: int = 0) -> np.ndarray:
    """Mulliken weights [nk, nb, n_orbitals] (spin-less orbitals) of S-normalised ``vectors``
    [nk, size, nb] at fractional ``kpts``."""
    out = []
    for c, Sc in _with_overlap(op, kpts, vectors):
        w = np.real(np.conj(c) * Sc)                      # [size, nb]
        if op.spin == "soc":
            n = op.n_orbitals
            w = w[:n] + w[n:]
        out.append(w.T)
    return np.stack(out)


def _group(op: BlockOperator, w: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Sum the last axis (orbitals) of w into groups ``labels`` [n_orbitals] (0..G-1)."""
    G = int(labels.max()) + 1
    M = np.zeros((op.n_orbitals, G))
    M[np.arange(op.n_orbitals), labels] = 1.0
    return w @ M


def orbital_atom(op: BlockOperator) -> np.ndarray:
    """Atom of every spin-less orbital, int [n_orbitals]."""
    return np.repeat(np.arange(op.n_atoms), op.orbital_counts)


def orbital_l(op: BlockOperator) -> np.ndarray:
    """Angular momentum of every spin-less orbital, int [n_orbitals]."""
    return np.concatenate([op.basis.orbital_l(s) for s in op.atoms.get_chemical_symbols()])


def shell_labels(op: BlockOperator):
    """(shell index of every orbital [n_orbitals], names like "3:Mo:d1" per shell)."""
    idx, names, base = [], [], 0
    for a, sym in enumerate(op.atoms.get_chemical_symbols()):
        for s, (l, m) in enumerate(op.basis.shell_list(sym)):
            idx.append(np.full(2 * l + 1, base))
            names.append(f"{a}:{sym}:{'spdfgh'[l]}{m + 1}")
            base += 1
    return np.concatenate(idx), names


def atom_weights(op, w):
    """Mulliken weights per atom [..., N] from orbital weights [..., n_orbitals]."""
    return _group(op, w, orbital_atom(op))


def species_weights(op, w):
    """(weights per species [..., n_species], species names)."""
    sym = np.array(op.atoms.get_chemical_symbols())
    names = list(dict.fromkeys(sym))
    lab = np.array([names.index(s) for s in sym])[orbital_atom(op)]
    return _group(op, w, lab), names


def l_weights(op, w):
    """(weights per (species, l) [..., G], names like "Mo-d")."""
    sym = np.array(op.atoms.get_chemical_symbols())[orbital_atom(op)]
    ls = orbital_l(op)
    keys = [f"{s}-{'spdfgh'[l]}" for s, l in zip(sym, ls)]
    names = list(dict.fromkeys(keys))
    lab = np.array([names.index(k) for k in keys])
    return _group(op, w, lab), names


@dataclass
class States:
    """Eigenpairs at chosen k and bands: ``energies`` [nk, nb] eV, ``vectors`` [nk, size, nb],
    ``weights`` (Mulliken per orbital) [nk, nb, n_orbitals], ``bands`` the band indices (all-band
    numbering, 0-based) or None when the states are the n nearest a target energy; ``spin``
    the spin texture <sigma_x, sigma_y, sigma_z> [nk, nb, 3] of soc states (None otherwise)."""
    op: BlockOperator
    kpts: np.ndarray
    energies: np.ndarray
    vectors: np.ndarray
    weights: np.ndarray
    bands: np.ndarray | None = None
    spin: np.ndarray | None = None

    @property
    def atom_weights(self) -> np.ndarray:
        """[nk, nb, N]."""
        return atom_weights(self.op, self.weights)

    @property
    def shell_weights(self):
        """([nk, nb, n_shells], shell names)."""
        idx, names = shell_labels(self.op)
        return _group(self.op, self.weights, idx), names

    def save_hdf5(self, fname) -> None:
        """Eigenvectors, energies and weights to HDF5 (atomic write). Datasets: kpts [nk, 3],
        energies [nk, nb] (eV), vectors [nk, size, nb] complex (lattice gauge, S-normalised),
        orbital_weights, atom_weights, spin_texture [nk, nb, 3] (soc); attrs fermi_level, source."""
        import h5py
        from ..files import atomic_path
        with atomic_path(fname) as tmp, h5py.File(tmp, "w") as f:
            f["kpts"] = self.kpts
            f["energies"] = self.energies
            f["vectors"] = self.vectors
            f["orbital_weights"] = self.weights
            f["atom_weights"] = self.atom_weights
            sw, names = self.shell_weights
            f["shell_weights"] = sw
            f.attrs["shell_names"] = np.array(names, dtype="S")
            if self.bands is not None:
                f["bands"] = self.bands
            if self.spin is not None:
                f["spin_texture"] = self.spin
            f["positions"] = self.op.atoms.positions
            f["cell"] = np.asarray(self.op.atoms.cell)
            f["numbers"] = self.op.atoms.numbers
            f.attrs["fermi_level"] = float(self.op.fermi_level)
            f.attrs["source"] = str(self.op.source)
            f.attrs["gauge"] = "lattice: c_(i a)(k) multiplies exp(2 pi i k.R) phi_(i a)(r - t_i - R)"


def states(op: BlockOperator, kpts, bands=None, *, n: int | None = None, around: float | None = None,
           channel: int = 0, **solver_kw) -> States:
    """Eigenvectors and Mulliken weights at fractional ``kpts``.

    ``bands``: indices into the ascending list of all bands (dense solve); or ``n`` states nearest
    ``around`` (eV, default E_F; sparse for large cells). Collinear: one channel (``channel``).
    Spin-orbit operators also get the spin texture of every state (:func:`spin_texture`).
    Warns (:class:`~hotham.electronic.ghosts.GhostStateWarning`) when a solved state is a ghost.
    """
    if op.spin != "collinear":
        channel = None if channel in (None, 0) else channel
    if bands is not None and n is not None:
        raise HothamError("give either bands or n, not both")
    eig = solve(op, kpts, n=n, around=around, channel=channel, vectors=True, **solver_kw)
    warn_ghosts(eig, op.fermi_level, op.source or "")
    e, c = eig.energies, eig.vectors
    b = None
    if bands is not None:
        b = np.atleast_1d(np.asarray(bands, dtype=int))
        if b.min() < -e.shape[1] or b.max() >= e.shape[1]:
            raise HothamError(f"band index out of range: the problem has {e.shape[1]} bands")
        b = b % e.shape[1]
        e, c = e[:, b], c[:, :, b]
    w = orbital_weights(op, eig.kpts, c, channel or 0)
    return States(op, eig.kpts, e, c, w, b, spin_texture(op, eig.kpts, c) if op.spin == "soc" else None)
