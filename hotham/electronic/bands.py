"""Band structures on high-symmetry paths.

The path is chosen automatically from the cell with ase's ``Cell.bandpath`` (Setyawan-Curtarolo
special points, returned in the basis of the cell as given); slabs (a non-periodic direction, or
a cell vector across a vacuum gap) get the 2D in-plane path (e.g. G-M-K-G for hexagonal
layers). A user path is a string of special-point letters ("GMKG", "," breaks a path) or a list
of fractional k-points joined by straight segments.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import checks
from ..cell import periodic_axes, slab_axis
from ..errors import HothamError
from ..operator import BlockOperator
from .ghosts import warn_ghosts
from .solve import solve

@dataclass
class KPath:
    """k-points along a path: ``kpts`` [nk, 3] fractional, ``x`` [nk] cumulative length (1/Angstrom,
    2 pi included), ``special_x`` and ``labels`` of the special points."""
    kpts: np.ndarray
    x: np.ndarray
    special_x: np.ndarray
    labels: list = field(default_factory=list)


def path_length(atoms, kpts) -> np.ndarray:
    """Cumulative length [nk] (1/Angstrom, 2 pi included) of straight steps between successive
    fractional ``kpts`` [nk, 3] in the reciprocal cell of ``atoms``."""
    rec = 2 * np.pi * np.asarray(atoms.cell.reciprocal())
    d = np.linalg.norm(np.diff(kpts @ rec, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(d)])


def band_path(atoms, path=None, npoints: int = 200, labels=None) -> KPath:
    """A band path for ``atoms``.

    ``path`` None: automatic (2D in-plane path for slabs); a string of special points ("GMKG");
    or an array [m, 3] of fractional corner points joined by straight lines (``labels`` names
    them). ``npoints`` (>= 2) is the total number of k-points (about; corners always included: a
    segment that gets none between its ends is drawn as a straight line, at its true length).
    """
    npoints = checks.number(npoints, "npoints", integer=True, ge=2)
    if path is None or isinstance(path, str):
        if not periodic_axes(atoms):
            raise HothamError(f"{atoms.get_chemical_formula()} has vacuum along every cell vector: a molecule has "
                              "no band structure (its states are those at Gamma: hotham states, or bands at k = 0)")
        pbc = [True, True, True]
        ax = slab_axis(atoms)
        if ax is not None:
            pbc[ax] = False
        try:
            bp = atoms.cell.bandpath(path, npoints=npoints, pbc=pbc)
        except Exception as exc:  # ase raises plain ValueError/KeyError for unknown points
            raise HothamError(f"cannot build the band path {path!r} for this cell: {exc}") from None
        x, X, lab = _linear_axis(atoms, bp)
        lab = [("Γ" if s == "G" else s) for s in lab]
        return KPath(np.asarray(bp.kpts, dtype=float), np.asarray(x), np.asarray(X), lab)
    corners = np.asarray(path, dtype=float).reshape(-1, 3)
    if len(corners) < 2:
        raise HothamError("a band path needs at least two corner points")
    rec = 2 * np.pi * np.asarray(atoms.cell.reciprocal())
    seg = np.linalg.norm(np.diff(corners @ rec, axis=0), axis=1)
    per = np.maximum(2, np.round(npoints * seg / max(seg.sum(), 1e-12)).astype(int))
    pts = [np.linspace(corners[s], corners[s + 1], per[s], endpoint=(s == len(seg) - 1))
           for s in range(len(seg))]
    kpts = np.concatenate(pts)
    x = path_length(atoms, kpts)
    special_x = np.concatenate([[0.0], np.cumsum(seg)])
    lab = list(labels) if labels is not None else [str(tuple(np.round(c, 3))) for c in corners]
    return KPath(kpts, x, special_x, lab)


def _linear_axis(atoms, bp) -> tuple[np.ndarray, np.ndarray, list]:
    """(x [nk], special_x, labels) of an ase BandPath: the path length along its k-points, zero
    across the breaks (",") of the path string. ase's own axis treats two special points with no
    k-point between them as a break, which puts a segment's two ends at one x when ``npoints`` is
    small (G-M-K-G on 4 to 10 points)."""
    from ase.dft.kpoints import parse_path_string
    kpts = np.asarray(bp.kpts, dtype=float)
    rec = 2 * np.pi * np.asarray(atoms.cell.reciprocal())
    step = np.linalg.norm(np.diff(kpts @ rec, axis=0), axis=1)
    index, labels, at = [], [], 0
    for p, part in enumerate(parse_path_string(bp.path)):
        for q, name in enumerate(part):
            near = np.flatnonzero(np.abs(kpts[at:] - np.asarray(bp.special_points[name])).max(axis=1) < 1e-6)
            if not len(near):
                raise HothamError(f"special point {name} is not on ase's path {bp.path}")
            at += int(near[0])
            if p and not q:
                step[at - 1] = 0.0            # the jump between two parts of the path
            index.append(at)
            labels.append(name)
    x = np.concatenate([[0.0], np.cumsum(step)])
    return x, x[index], labels


@dataclass
class BandStructure:
    """Bands along a path: ``energies`` [nk, nb] eV (absolute, not shifted), ``fermi_level`` eV.

    ``partial`` marks a slice of the spectrum (the n states nearest an energy): its columns are
    not the same bands at every k, so plots draw points instead of joining them by index."""
    path: KPath
    energies: np.ndarray
    fermi_level: float
    channel: np.ndarray | None = None
    partial: bool = False
    #: canonical orthogonalisation: S eigenvectors dropped per k, int [nk] (their bands NaN); else None
    dropped: np.ndarray | None = None

    def save_txt(self, fname) -> None:
        """Plain text a user can ``np.loadtxt``: columns k1 k2 k3 x E_1 .. E_nb (eV), header
        with the Fermi level and special points."""
        from ..files import atomic_path
        head = (f"hotham bands; fermi_level_eV {self.fermi_level:.10f}\n"
                f"special_x {' '.join(f'{v:.8f}' for v in self.path.special_x)}\n"
                f"labels {' '.join(self.path.labels)}\n"
                "columns: k1 k2 k3 (fractional) x (1/Angstrom) then energies (eV, absolute)")
        with atomic_path(fname) as tmp:
            np.savetxt(tmp, np.column_stack([self.path.kpts, self.path.x, self.energies]), header=head,
                       fmt="%.10f")

    def save_hdf5(self, fname) -> None:
        import h5py
        from ..files import atomic_path
        with atomic_path(fname) as tmp, h5py.File(tmp, "w") as f:
            f["kpts"] = self.path.kpts
            f["x"] = self.path.x
            f["energies"] = self.energies
            f["special_x"] = self.path.special_x
            # UTF-8 strings: the labels hold Γ
            f.attrs.create("labels", self.path.labels, dtype=h5py.string_dtype("utf-8"))
            f.attrs["fermi_level"] = self.fermi_level
            f.attrs["units"] = "eV, k fractional, x 1/Angstrom"
            if self.channel is not None:
                f["channel"] = self.channel


def band_structure(op: BlockOperator, path=None, *, npoints: int = 200, n: int | None = None,
                   around: float | None = None, channel: int | None = None, labels=None,
                   **solver_kw) -> BandStructure:
    """Bands of ``op`` on a path (see :func:`band_path`); all bands, or the ``n`` nearest
    ``around`` (eV, default the Fermi level; sparse solver for large cells), or with
    ``n_below`` / ``n_above`` (keywords of :func:`~hotham.electronic.solve.solve`) the states
    just below and above E_F. ``canonical`` (a keyword of solve): canonical orthogonalisation.
    Warns (:class:`~hotham.electronic.ghosts.GhostStateWarning`) when a band is a ghost state."""
    kp = path if isinstance(path, KPath) else band_path(op.atoms, path, npoints, labels)
    solver_kw.setdefault("ghosts", True)
    eig = solve(op, kp.kpts, n=n, around=around, channel=channel, **solver_kw)
    warn_ghosts(eig, op.fermi_level, op.source or "")
    partial = n is not None or solver_kw.get("n_below") is not None or solver_kw.get("n_above") is not None
    return BandStructure(kp, eig.energies, float(op.fermi_level), eig.channel, partial=partial, dropped=eig.dropped)
