"""OpenMX text output (``.out``, optionally gzipped): input echo, chemical potential, final
structure, SCF history and total energy.

Units: energies are converted from Hartree to eV with ``ase.units.Hartree``; lengths stay as
the input gives them (the final structure is fractional).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from ase.units import Hartree

from ...errors import FormatError
from ._io import read_text
from .dat import OpenMXInput, input_structure, parse_openmx_input, species_basis_labels

_STARS = re.compile(r"^\s*\*{20,}\s*$")
_VERSION = re.compile(r"performed by OpenMX Ver\.\s*(\S+)")
_CHEMP = re.compile(r"Chemical Potential \(Hartree\)\s*=\s*(\S+)", re.IGNORECASE)
_SCF = re.compile(r"^\s*SCF=\s*(\d+)\s+NormRD=\s*(\S+)\s+Uele=\s*(\S+)")
_UTOT = re.compile(r"^\s*Utot\.\s+(\S+)")


@dataclass
class OpenMXOutput:
    """What hotham takes from an OpenMX ``.out`` file.

    ``chemical_potential`` eV; ``total_energy`` (Utot) eV; ``scf_history`` float [n, 3]:
    (step, NormRD, Uele [Hartree]); ``fractional`` [N, 3] final fractional coordinates and
    ``final_species`` their species labels (empty if the run stopped before writing them);
    ``finished``: the timing section at the end is there (OpenMX ran to its end).
    """

    path: str | None
    version: str | None
    input_text: str
    input: OpenMXInput
    chemical_potential: float = float("nan")
    total_energy: float = float("nan")
    scf_history: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    fractional: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    final_species: list = field(default_factory=list)
    finished: bool = False

    @property
    def species_basis(self) -> dict[str, str]:
        """``{species label: basis label}`` from the input echo."""
        return species_basis_labels(self.input)

    @property
    def scf_steps(self) -> int:
        return len(self.scf_history)

    @property
    def last_normrd(self) -> float | None:
        """NormRD of the last SCF step (None before the first)."""
        return float(self.scf_history[-1, 1]) if len(self.scf_history) else None

    @property
    def converged(self) -> bool:
        """OpenMX stops before ``scf.maxIter`` (default 40) only when the SCF criterion is met."""
        max_iter = int(float(self.input.get("scf.maxIter", 40)))
        return self.finished and 0 < self.scf_steps < max_iter

    def final_atoms(self):
        """ase.Atoms of the final structure (input cell, final fractional coordinates), Angstrom."""
        atoms, _ = input_structure(self.input)
        if len(self.fractional) == len(atoms):
            atoms.set_scaled_positions(self.fractional)
        return atoms


def read_out(path) -> OpenMXOutput:
    """Parse an OpenMX ``.out`` (or ``.out.gz``) file."""
    text, name = read_text(path)
    lines = text.splitlines()
    m = _VERSION.search(text)
    version = m.group(1) if m else None
    # the input echo is the first text between two runs of asterisk lines
    i = 0
    while i < len(lines) and not _STARS.match(lines[i]):
        i += 1
    while i < len(lines) and _STARS.match(lines[i]):
        i += 1
    while i < len(lines) and not _STARS.match(lines[i]):  # header (version, date)
        i += 1
    while i < len(lines) and _STARS.match(lines[i]):
        i += 1
    j = i
    while j < len(lines) and not _STARS.match(lines[j]):
        j += 1
    echo = "\n".join(lines[i:j])
    if i >= len(lines) or "definition.of.atomic.species" not in echo.lower():
        raise FormatError(name, "not an OpenMX .out file: no input echo with <Definition.of.Atomic.Species")
    inp = parse_openmx_input(echo, name)
    out = OpenMXOutput(path=name, version=version, input_text=echo, input=inp,
                       finished="Elapsed.Time" in text or "Computational Time" in text)

    chemp = _CHEMP.findall(text)
    if chemp:
        out.chemical_potential = float(chemp[-1]) * Hartree
    hist, utot = [], None
    for line in lines[j:]:
        s = _SCF.match(line)
        if s:
            hist.append((float(s.group(1)), float(s.group(2)), float(s.group(3))))
            continue
        u = _UTOT.match(line)
        if u:
            utot = float(u.group(1))
    if hist:
        out.scf_history = np.array(hist)
    if utot is not None:
        out.total_energy = utot * Hartree
    out.final_species, out.fractional = _final_structure(lines, name)
    return out


def _final_structure(lines, name):
    for k, line in enumerate(lines):
        if "Fractional coordinates of the final structure" in line:
            break
    else:
        return [], np.zeros((0, 3))
    species, xyz = [], []
    for line in lines[k + 1:]:
        if _STARS.match(line) or not line.strip():
            if xyz:
                break
            continue
        tok = line.split()
        try:
            xyz.append([float(t) for t in tok[2:5]])
            species.append(tok[1])
        except (ValueError, IndexError):
            raise FormatError(name, f"unreadable final-structure line: {line.strip()!r}") from None
    return species, np.array(xyz).reshape(-1, 3)
