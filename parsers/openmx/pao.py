"""OpenMX pseudo-atomic orbital files (``DFT_DATA19/PAO/<name>.pao``).

A ``.pao`` file (written by OpenMX's ADPACK) is a free-text file with ``keyword value`` lines
and ``<block ... block>`` sections. What hotham needs from it:

* ``radial.cutoff.pao``: the cutoff radius r_c of every radial function (Bohr); OpenMX's
  neighbour criterion is |t_j + R - t_i| < r_c(i) + r_c(j).
* ``PAO.Lmax`` and ``PAO.Mul``: the orbitals present, l = 0..Lmax with Mul radial functions each.
* the blocks ``<pseudo.atomic.orbitals.L=l ... pseudo.atomic.orbitals.L=l>``: one row per
  radial grid point, columns ``x = log(r)``, ``r`` (Bohr), then ``R_{l,0}(r) ... R_{l,Mul-1}(r)``:
  the radial parts themselves (R(r) ~ r^l near 0, zero beyond r_c), normalised as
  int r^2 R(r)^2 dr = 1 (units Bohr^-3/2).

The ``<Contraction.coefficients..>`` blocks at the top of the DFT_DATA19 files only document
how the stored orbitals were optimised: the stored radial functions *are* the contracted
orbitals, and OpenMX takes the first n of each l for a basis label such as ``C6.0-s2p2d1``
(s: Mul 0, 1; p: Mul 0, 1; d: Mul 0). hotham's overlap from these functions reproduces the
overlap in OpenMX's .scfout files (see :mod:`hotham.overlap`), which confirms both points.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import BasisError, FormatError, HothamError
from ._io import read_text

__all__ = ["PAO", "OpenMXDataNotFound", "read_pao", "parse_pao", "find_openmx_data", "pao_file", "pao_name",
           "basis_paos", "DATA_ENV"]

#: environment variable naming an OpenMX ``DFT_DATA19`` folder (with ``PAO/`` inside)
DATA_ENV = "HOTHAM_OPENMX_DATA"


class OpenMXDataNotFound(HothamError, FileNotFoundError):
    """No OpenMX ``DFT_DATA19`` folder where hotham looked (the message lists the places)."""


@dataclass(frozen=True)
class PAO:
    """The radial functions of one ``.pao`` file.

    Attributes
    ----------
    name : str
        File stem, e.g. ``"C6.0"``.
    cutoff : float
        Cutoff radius r_c of the orbitals, Bohr.
    r : float array [nr]
        Radial grid, Bohr (logarithmic: x = log r is uniform).
    radial : float array [Lmax + 1, Mul, nr]
        R_{l,mul}(r), Bohr^-3/2, with int r^2 R^2 dr = 1.
    path : str or None
        Where it was read (a file, or a model checkpoint for the data a model carries).
    valence : float or None
        ``valence.electron`` of the file: the valence electrons of the neutral pseudo-atom.
    """

    name: str
    cutoff: float
    r: np.ndarray
    radial: np.ndarray
    path: str | None = None
    valence: float | None = None

    @property
    def lmax(self) -> int:
        return self.radial.shape[0] - 1

    @property
    def mul(self) -> int:
        return self.radial.shape[1]

    def function(self, l: int, mul: int) -> np.ndarray:
        """R_{l,mul} on ``self.r`` (Bohr^-3/2); BasisError if the file does not hold it."""
        if l > self.lmax or mul >= self.mul:
            raise BasisError(f"{self.path or self.name}: no radial function l={l}, mul={mul} "
                             f"(the file holds l <= {self.lmax}, {self.mul} per l)")
        return self.radial[l, mul]

    def for_shells(self, shells) -> "PAO":
        """The part a basis uses: ``shells`` [(l, mul), ...] (:meth:`hotham.basis.Basis.shell_list`)
        -> the radial functions l <= max l, mul <= max mul, unchanged (BasisError if the file
        lacks one)."""
        for l, mul in shells:
            self.function(l, mul)
        lmax = max(l for l, _ in shells)
        nmul = max(m for _, m in shells) + 1
        return PAO(self.name, self.cutoff, self.r, np.ascontiguousarray(self.radial[: lmax + 1, :nmul]),
                   self.path, self.valence)

    def to_dict(self) -> dict:
        """Plain data (numbers and float64 arrays) for a model checkpoint; :meth:`from_dict` reads it."""
        return {"name": self.name, "cutoff_bohr": float(self.cutoff), "valence": self.valence,
                "r_bohr": np.asarray(self.r, dtype=np.float64), "radial": np.asarray(self.radial, dtype=np.float64)}

    @classmethod
    def from_dict(cls, d, where=None) -> "PAO":
        """The PAO of :meth:`to_dict`'s data; FormatError naming ``where`` if it is malformed."""
        try:
            r = np.asarray(d["r_bohr"], dtype=np.float64)
            radial = np.asarray(d["radial"], dtype=np.float64)
            pao = cls(str(d["name"]), float(d["cutoff_bohr"]), r, radial, where,
                      None if d.get("valence") is None else float(d["valence"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(where, f"malformed embedded PAO data ({exc.__class__.__name__}: {exc})") from None
        if r.ndim != 1 or radial.ndim != 3 or radial.shape[2] != len(r) or not np.all(np.isfinite(radial)):
            raise FormatError(where, f"embedded PAO {pao.name}: radial functions of shape {radial.shape} "
                                     f"on a grid of {r.shape} points")
        return pao


_BLOCK = re.compile(r"^<pseudo\.atomic\.orbitals\.L=(\d+)\s*$(.*?)^pseudo\.atomic\.orbitals\.L=\1>",
                    re.MULTILINE | re.DOTALL)


def _keyword(text: str, key: str, path) -> str:
    m = re.search(rf"^\s*{re.escape(key)}\s+(\S+)", text, re.MULTILINE)
    if not m:
        raise FormatError(path, f"not an OpenMX .pao file: keyword {key!r} is missing")
    return m.group(1)


def parse_pao(text: str, path=None, name: str | None = None) -> PAO:
    """Parse the text of a ``.pao`` file (see the module docstring for the layout)."""
    where = None if path is None else os.fspath(path)
    try:
        lmax = int(_keyword(text, "PAO.Lmax", where))
        mul = int(_keyword(text, "PAO.Mul", where))
        cutoff = float(_keyword(text, "radial.cutoff.pao", where))
    except ValueError as exc:
        raise FormatError(where, f"bad PAO.Lmax / PAO.Mul / radial.cutoff.pao value ({exc})") from None
    blocks = {int(m.group(1)): m.group(2) for m in _BLOCK.finditer(text)}
    r = None
    radial = []
    for l in range(lmax + 1):
        if l not in blocks:
            raise FormatError(where, f"block <pseudo.atomic.orbitals.L={l} is missing or unterminated "
                                     f"(PAO.Lmax = {lmax}; truncated file?)")
        try:
            rows = np.array([[float(v) for v in line.split()] for line in blocks[l].strip().splitlines()])
        except ValueError:
            raise FormatError(where, f"non-numeric or ragged rows in <pseudo.atomic.orbitals.L={l}") from None
        if rows.ndim != 2 or rows.shape[1] != mul + 2 or len(rows) < 10:
            raise FormatError(where, f"<pseudo.atomic.orbitals.L={l}: expected rows of 2 + PAO.Mul = {mul + 2} "
                                     f"columns, got shape {rows.shape}")
        if not np.all(np.isfinite(rows)):
            raise FormatError(where, f"<pseudo.atomic.orbitals.L={l} contains NaN or inf")
        if r is None:
            r = rows[:, 1]
            if np.any(np.diff(r) <= 0) or r[0] <= 0:
                raise FormatError(where, "the radial grid (column 2) is not positive and increasing")
            if not np.allclose(np.log(r), rows[:, 0], rtol=0, atol=1e-9):
                raise FormatError(where, "column 1 is not log(r) of column 2")
        elif len(rows) != len(r) or not np.array_equal(rows[:, 1], r):
            raise FormatError(where, f"<pseudo.atomic.orbitals.L={l} uses a different radial grid")
        radial.append(rows[:, 2:].T)
    if cutoff <= 0 or cutoff > r[-1]:
        raise FormatError(where, f"radial.cutoff.pao = {cutoff} Bohr lies outside the grid (0, {r[-1]:.3f}]")
    nm = name or (Path(where).name[:-4] if where and where.endswith(".pao") else "pao")
    m = re.search(r"^\s*valence\.electron\s+(\S+)", text, re.MULTILINE)
    try:
        valence = float(m.group(1)) if m else None
    except ValueError:
        raise FormatError(where, f"bad valence.electron value {m.group(1)!r}") from None
    return PAO(nm, cutoff, r, np.ascontiguousarray(radial), where, valence)


def read_pao(path) -> PAO:
    """Read a ``.pao`` file (plain or ``.gz``)."""
    text, where = read_text(path)
    name = Path(os.fspath(path)).name
    for suf in (".gz", ".pao"):
        name = name[: -len(suf)] if name.endswith(suf) else name
    return parse_pao(text, where or path, name)


def pao_name(label: str) -> str:
    """PAO file stem of an OpenMX basis label: ``"C6.0-s2p2d1"`` -> ``"C6.0"``."""
    return label.strip().split("-", 1)[0]


def find_openmx_data(openmx_data=None) -> Path:
    """The OpenMX ``DFT_DATA19`` folder (it holds ``PAO/``).

    ``openmx_data`` if given, else the environment variable ``HOTHAM_OPENMX_DATA``; nothing else
    is guessed. Raises :class:`OpenMXDataNotFound` (a FileNotFoundError) saying what is missing.
    """
    if openmx_data is not None:
        how, p = "given as argument", Path(openmx_data)
    elif os.environ.get(DATA_ENV):
        how, p = f"from ${DATA_ENV}", Path(os.environ[DATA_ENV])
    else:
        raise OpenMXDataNotFound(
            "the PAO files of OpenMX are needed (the overlap S of a bare structure is computed from them): "
            f"set {DATA_ENV} to OpenMX's DFT_DATA19 folder, or pass it (--openmx-data / openmx_data=)")
    if not (p / "PAO").is_dir():
        raise OpenMXDataNotFound(f"{p} ({how}) is not an OpenMX DFT_DATA19 folder: no {p / 'PAO'} folder")
    return p


def pao_file(label: str, openmx_data=None) -> Path:
    """Path of the ``.pao`` file of a basis label (``"C6.0-s2p2d1"`` -> ``.../PAO/C6.0.pao``)."""
    root = find_openmx_data(openmx_data)
    p = root / "PAO" / f"{pao_name(label)}.pao"
    if not p.exists():
        raise BasisError(f"basis {label!r}: no PAO file {p}")
    return p


def basis_paos(labels, openmx_data=None) -> dict[str, PAO]:
    """Species -> the PAO data of its basis label, read from ``openmx_data`` (else
    ``$HOTHAM_OPENMX_DATA``) and cut to the shells the label uses (``C6.0-s2p2d1``: s and p
    with two radial functions each, d with one): what a model checkpoint carries
    (:func:`hotham.checkpoint.embed_basis`) so that S needs no OpenMX files."""
    from ...basis import Basis
    basis = Basis.from_openmx(labels)
    return {sym: read_pao(pao_file(lab, openmx_data)).for_shells(basis.shell_list(sym))
            for sym, lab in basis.labels.items()}
