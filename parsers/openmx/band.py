"""OpenMX ``.Band`` files (Band_DFT_kpath.c): eigenvalues along a k-path.

Layout::

    n  SpinP_switch  ChemP                  n bands per spin block, ChemP in Hartree
    rtv[1][1..3] rtv[2][1..3] rtv[3][1..3]  reciprocal vectors, 1/Bohr (2 pi included)
    nkpath
    nkpath x "n_perk  k1 k2 k3  k1' k2' k3'  label label'"   (reciprocal-lattice units)
    per segment, per point (both ends included), per spin block:
        "n  k1 k2 k3"  then n eigenvalues (Hartree, absolute, ascending)

The non-collinear run writes SpinP_switch 0 and 2x the orbitals per block. Energies are
converted with ``ase.units.Hartree``, reciprocal vectors with ``ase.units.Bohr``.
"""
from __future__ import annotations

import numpy as np
from ase.units import Bohr, Hartree

from ...errors import FormatError
from ._io import read_text


def read_band(path):
    """Read a ``.Band`` file (optionally gzipped).

    Returns ``(kpts, eigenvalues, info)``: ``kpts`` float [nk, 3] fractional (reciprocal-lattice
    units) as written per point; ``eigenvalues`` float [nspin, nk, nband] in eV, absolute (not
    shifted by the chemical potential); ``info`` dict with ``chemp`` (eV), ``chemp_hartree``,
    ``spinp_switch``, ``segments`` (list of ``(n_points, k_start, k_end, label_start,
    label_end)``), ``labels`` (the path's corner labels in order), ``label_index`` (k index of
    each corner), ``rtv`` [3, 3] reciprocal vectors in 1/Angstrom (rows, 2 pi included) and
    ``x`` [nk] the distance along the path in 1/Angstrom.
    """
    text, name = read_text(path)
    lines = text.splitlines()
    try:
        return _parse(lines, name)
    except FormatError:
        raise
    except (ValueError, IndexError) as exc:
        raise FormatError(name, f"not a readable OpenMX .Band file ({exc})") from None


def _parse(lines, name):
    if len(lines) < 3:
        raise FormatError(name, f"truncated .Band file ({len(lines)} lines)")
    head = lines[0].split()
    nband, spinp, chemp = int(head[0]), int(head[1]), float(head[2])
    if nband < 1 or spinp not in (0, 1):
        raise FormatError(name, f"bad .Band header {lines[0].strip()!r}")
    nspin = spinp + 1
    rtv = np.array([float(x) for x in lines[1].split()[:9]]).reshape(3, 3) / Bohr
    nkpath = int(lines[2].split()[0])
    if nkpath < 1 or len(lines) < 3 + nkpath:
        raise FormatError(name, f"bad number of path segments {nkpath}")
    segments = []
    for line in lines[3:3 + nkpath]:
        tok = line.split()
        k0 = np.array([float(x) for x in tok[1:4]])
        k1 = np.array([float(x) for x in tok[4:7]])
        lab = (tok[7:9] + ["", ""])[:2]
        segments.append((int(tok[0]), k0, k1, lab[0], lab[1]))
    npts = sum(s[0] for s in segments)
    tokens = " ".join(lines[3 + nkpath:]).split()
    rec = 4 + nband
    if len(tokens) != npts * nspin * rec:
        raise FormatError(name, f".Band file holds {len(tokens)} numbers after the header, expected "
                                f"{npts * nspin * rec} ({npts} k-points x {nspin} spin blocks x (4 + {nband}))")
    table = np.array(tokens, dtype=np.float64).reshape(npts, nspin, rec)
    if np.any(table[:, :, 0] != nband):
        raise FormatError(name, "a k-point record does not announce the header's band count")
    kpts = table[:, 0, 1:4].copy()
    eig = np.transpose(table[:, :, 4:], (1, 0, 2)) * Hartree
    labels, label_index, start = [], [], 0
    for n, _, _, l0, l1 in segments:
        if not labels or labels[-1] != l0 or label_index[-1] != start - 1:
            labels.append(l0)
            label_index.append(start)
        labels.append(l1)
        label_index.append(start + n - 1)
        start += n
    dk = np.linalg.norm(np.diff(kpts, axis=0) @ rtv, axis=1)
    # the joint between two segments is written twice: no distance between the copies
    x = np.concatenate([[0.0], np.cumsum(dk)])
    info = {"chemp": chemp * Hartree, "chemp_hartree": chemp, "spinp_switch": spinp, "nband": nband,
            "segments": segments, "labels": labels, "label_index": label_index, "rtv": rtv, "x": x}
    return kpts, eig, info

