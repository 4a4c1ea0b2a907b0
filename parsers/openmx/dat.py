"""OpenMX input files (``.dat``): keywords and ``<Block ... Block>`` sections.

OpenMX inputs are ``keyword value...`` lines (keywords case-insensitive, ``#`` starts a
comment) and blocks opened by ``<Name`` and closed by ``Name>``. The same text is echoed into
the ``.out`` file and appended to the ``.scfout``, so this reader serves all three.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ...errors import FormatError


@dataclass
class OpenMXInput:
    """Parsed OpenMX input: ``keywords`` (lower-case name -> list of string tokens) and
    ``blocks`` (lower-case name -> list of rows, each a list of tokens)."""

    keywords: dict[str, list[str]] = field(default_factory=dict)
    blocks: dict[str, list[list[str]]] = field(default_factory=dict)
    path: str | None = None

    def get(self, key: str, default=None):
        """First token of a keyword (string), or ``default``."""
        v = self.keywords.get(key.lower())
        return v[0] if v else default

    def get_floats(self, key: str, default=None):
        v = self.keywords.get(key.lower())
        return [float(x) for x in v] if v else default

    def block(self, name: str) -> list[list[str]]:
        try:
            return self.blocks[name.lower()]
        except KeyError:
            raise FormatError(self.path, f"OpenMX input has no <{name}> block") from None


def parse_openmx_input(text: str, path: str | os.PathLike | None = None) -> OpenMXInput:
    """Parse the text of an OpenMX input file."""
    out = OpenMXInput(path=None if path is None else os.fspath(path))
    current: str | None = None
    rows: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if current is not None:
            if line.lower() == current + ">":
                out.blocks[current] = rows
                current, rows = None, []
            else:
                rows.append(line.split())
            continue
        if line.startswith("<"):
            current = line[1:].split()[0].lower()
            rows = []
            continue
        tokens = line.split()
        out.keywords[tokens[0].lower()] = tokens[1:]
    if current is not None:
        raise FormatError(path, f"OpenMX input block <{current}> is never closed")
    return out


def read_openmx_input(path) -> OpenMXInput:
    """Read and parse an OpenMX ``.dat`` file."""
    try:
        with open(path, "r", errors="replace") as fh:
            text = fh.read()
    except OSError as exc:
        raise FormatError(path, f"cannot read OpenMX input ({exc})") from None
    return parse_openmx_input(text, path)


def species_basis_labels(inp: OpenMXInput) -> dict[str, str]:
    """``{species name: basis label}`` from ``<Definition.of.Atomic.Species``."""
    return {row[0]: row[1] for row in inp.block("Definition.of.Atomic.Species")}


def species_pseudopotentials(inp: OpenMXInput) -> dict[str, str]:
    return {row[0]: row[2] for row in inp.block("Definition.of.Atomic.Species") if len(row) > 2}


def _unit_factor(unit: str | None, path) -> float:
    from ase.units import Bohr
    u = (unit or "Ang").lower()
    if u in ("ang", "angstrom"):
        return 1.0
    if u in ("au", "bohr"):
        return Bohr
    raise FormatError(path, f"unknown length unit {unit!r}")


def input_structure(inp: OpenMXInput):
    """``(atoms, species_labels)`` of an OpenMX input: ase.Atoms (Angstrom; chemical symbol
    from the species label's leading letters) and the OpenMX species label of every atom."""
    from ase import Atoms

    cell_rows = inp.block("Atoms.UnitVectors")
    cell = np.array([[float(x) for x in r[:3]] for r in cell_rows]) * _unit_factor(inp.get("Atoms.UnitVectors.Unit"), inp.path)
    rows = inp.block("Atoms.SpeciesAndCoordinates")
    labels = [r[1] for r in rows]
    xyz = np.array([[float(x) for x in r[2:5]] for r in rows])
    unit = (inp.get("Atoms.SpeciesAndCoordinates.Unit") or "Ang").lower()
    if unit == "frac":
        positions = xyz @ cell
    else:
        positions = xyz * _unit_factor(unit, inp.path)
    symbols = [species_symbol(l) for l in labels]
    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    return atoms, labels


def species_symbol(label: str) -> str:
    """Chemical symbol of an OpenMX species label ('Mo', 'C1', 'Mo_top' -> 'Mo', 'C', 'Mo')."""
    from ase.data import chemical_symbols
    letters = ""
    for ch in label:
        if ch.isalpha():
            letters += ch
        else:
            break
    for cand in (letters[:2], letters[:1]):
        cand = cand[:1].upper() + cand[1:].lower()
        if cand in chemical_symbols[1:]:
            return cand
    raise FormatError(None, f"cannot tell the element of OpenMX species {label!r}")


def element_basis_labels(inp: OpenMXInput) -> dict[str, str]:
    """``{element: basis label}`` of an input (species labels such as C1, C2 merged); a
    BasisError when one element carries two bases (hotham needs one basis per element)."""
    from ...errors import BasisError
    labels: dict[str, str] = {}
    for s, lab in species_basis_labels(inp).items():
        el = species_symbol(s)
        if labels.get(el, lab) != lab:
            raise BasisError(f"{inp.path}: element {el} has two bases ({labels[el]}, {lab}); hotham needs one per element")
        labels[el] = lab
    return labels


def read_openmx_dat(fileobj, index=None):
    """ase I/O reader of the format ``openmx-dat`` (an OpenMX input file).

    Returns ase.Atoms (Angstrom) with ``atoms.info["basis_labels"]`` = ``{element: OpenMX basis
    label}`` from ``<Definition.of.Atomic.Species``. Registered with ase through the
    ``ase.ioformats`` entry point and by :mod:`hotham.io`, so ``ase.io.read("run.dat")`` and
    :func:`hotham.io.read_structure` both read OpenMX inputs."""
    text = fileobj.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    inp = parse_openmx_input(text, getattr(fileobj, "name", None))
    atoms, _ = input_structure(inp)
    atoms.info["basis_labels"] = element_basis_labels(inp)
    return atoms


def _ase_format():
    from ase.utils.plugins import ExternalIOFormat
    # an OpenMX input names its species block; ase tells it from other .dat files by that
    return ExternalIOFormat(desc="OpenMX input file", code="1F", module="hotham.parsers.openmx.dat",
                            magic_regex=rb"(?i).*^[ \t]*<Definition\.of\.Atomic\.Species")


#: the ase I/O format ``openmx-dat`` (see :func:`read_openmx_dat`)
ASE_FORMAT = _ase_format()
