"""OpenMX input (``.dat``) writer, the inverse of hotham.parsers.openmx.dat's reader.

Defaults are the settings of the project's reference runs (OpenMX 3.9.9, DFT_DATA19), which
converge for semiconductors (MoS2, hBN) and semimetals (graphene, twisted bilayers): GGA-PBE,
300 K electronic temperature, 150 Ry cutoff, band solver, Rmm-Diisk mixing with a small initial
weight, 1e-8 Hartree criterion, ``HS.fileout on`` (the .scfout with H(R), S(R) that hotham
learns from). Lengths are written in Angstrom; the initial spin densities are half the valence
charge up, half down (plus half the atoms' initial magnetic moment, if set).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from ase import Atoms

from hotham import checks
from hotham.basis import parse_openmx_basis
from hotham.errors import BasisError, StructureError

#: Per element: (PAO basis, pseudopotential, valence electrons) of DFT_DATA19 (OpenMX 3.9's
#: recommended "standard" choices). Valences of the five elements of the reference data (B, C,
#: N, S, Mo) are those of their VPS files; a VPS file found under ``openmx_data`` always wins.
DEFAULT_SPECIES: dict[str, tuple[str, str, float]] = {
    "H": ("H6.0-s2p1", "H_PBE19", 1.0),
    "Li": ("Li8.0-s3p2", "Li_PBE19", 3.0),
    "B": ("B7.0-s2p2d1", "B_PBE19", 3.0),
    "C": ("C6.0-s2p2d1", "C_PBE19", 4.0),
    "N": ("N6.0-s2p2d1", "N_PBE19", 5.0),
    "O": ("O6.0-s2p2d1", "O_PBE19", 6.0),
    "F": ("F6.0-s2p2d1", "F_PBE19", 7.0),
    "Al": ("Al7.0-s2p2d1", "Al_PBE19", 3.0),
    "Si": ("Si7.0-s2p2d1", "Si_PBE19", 4.0),
    "P": ("P7.0-s2p2d1", "P_PBE19", 5.0),
    "S": ("S7.0-s2p2d1", "S_PBE19", 6.0),
    "Cl": ("Cl7.0-s2p2d1", "Cl_PBE19", 7.0),
    "Mo": ("Mo7.0-s3p2d2", "Mo_PBE19", 14.0),
}

#: SCF and output settings of the reference runs (keyword -> value text).
DEFAULT_SCF: dict[str, str] = {
    "scf.XcType": "GGA-PBE",
    "scf.ElectronicTemperature": "300.0",
    "scf.energycutoff": "150.0",
    "scf.maxIter": "150",
    "scf.EigenvalueSolver": "Band",
    "scf.Mixing.Type": "Rmm-Diisk",
    "scf.Init.Mixing.Weight": "0.05",
    "scf.Min.Mixing.Weight": "0.001",
    "scf.Max.Mixing.Weight": "0.30",
    "scf.Mixing.History": "30",
    "scf.Mixing.StartPulay": "10",
    "scf.Mixing.EveryPulay": "1",
    "scf.criterion": "1.0e-8",
}


#: DATA.PATH written into inputs by default: relative, so run folders move to a cluster unchanged;
#: the runner links ``DFT_DATA19`` beside the run folders to ``$HOTHAM_OPENMX_DATA`` when missing
RELATIVE_DATA_PATH = "../DFT_DATA19"


def default_openmx_data() -> str:
    """DATA.PATH written into inputs: :data:`RELATIVE_DATA_PATH` (a link in the parent of the run
    folder, as in the reference data; :func:`hotham.workflows.runner.run_one` makes it)."""
    return RELATIVE_DATA_PATH


def vps_valence(openmx_data, vps: str) -> float | None:
    """``valence.electron`` of ``<openmx_data>/VPS/<vps>.vps``, or None if the file is absent."""
    f = Path(openmx_data) / "VPS" / f"{vps}.vps"
    if not f.is_file():
        return None
    m = re.search(r"^\s*valence\.electron\s+([-+0-9.eE]+)", f.read_text(errors="replace"), re.M)
    return float(m.group(1)) if m else None


def species_overrides(basis: dict | None = None, vps: dict | None = None,
                      valence: dict | None = None) -> dict[str, tuple]:
    """The per-element overrides :func:`species_table` takes, (PAO, VPS[, valence]), from three
    maps: element -> basis label (``{"C": "C6.0-s2p2d1"}``), -> pseudopotential (``{"C":
    "C_PBE19"}``), -> valence electrons. What is not given comes from DEFAULT_SPECIES (the
    valence also from the VPS file, see :func:`species_table`)."""
    basis, vps, valence = basis or {}, vps or {}, valence or {}
    out = {}
    for sym in dict.fromkeys([*basis, *vps, *valence]):
        pao, pp = basis.get(sym), vps.get(sym)
        if (pao is None or pp is None) and sym not in DEFAULT_SPECIES:
            raise BasisError(f"no default OpenMX basis for {sym}: give both its basis label and its pseudopotential")
        pao = DEFAULT_SPECIES[sym][0] if pao is None else pao
        pp = DEFAULT_SPECIES[sym][1] if pp is None else pp
        parse_openmx_basis(pao)          # BasisError for a label like C6.0-s2q2
        if sym in valence:
            checks.positive(valence[sym], f"valence of {sym}")
        out[sym] = (pao, pp) + ((float(valence[sym]),) if sym in valence else ())
    return out


def species_table(symbols, basis: dict | None = None, openmx_data=None, *,
                  strict: bool = True) -> dict[str, tuple[str, str, float]]:
    """(basis, pseudopotential, valence) per element present; ``basis`` overrides per element
    with a tuple like ("C6.0-s2p2d1", "C_PBE19") or ("C7.0-s3p3d2", "C_PBE19", 4.0).

    With an ``openmx_data`` folder, its files are checked: a basis whose PAO file
    (``PAO/C6.0.pao`` for C6.0-s2p2d1) or a pseudopotential whose VPS file is not there (where the
    folder has PAO/ or VPS/) is a BasisError with ``strict`` (the folder OpenMX will read), else a
    warning (a stand-in for it); a valence given that differs from the VPS file's is a BasisError
    (OpenMX takes the valence from the VPS file)."""
    basis = basis or {}
    out = {}
    for sym in dict.fromkeys(symbols):
        entry = tuple(basis.get(sym, ())) or DEFAULT_SPECIES.get(sym)
        if not entry:
            raise BasisError(f"no default OpenMX basis for {sym}: pass e.g. basis={{'{sym}': ('{sym}7.0-s2p2d1', '{sym}_PBE19', valence)}}")
        if len(entry) < 2:
            raise BasisError(f"basis for {sym} needs (PAO, VPS[, valence]), got {entry!r}")
        pao, vps = entry[0], entry[1]
        parse_openmx_basis(pao)
        if len(entry) > 2:
            checks.positive(entry[2], f"valence of {sym}")
        if openmx_data:
            _check_data_files(openmx_data, sym, pao, vps, strict)
        val = vps_valence(openmx_data, vps) if openmx_data else None
        if val is not None and sym in basis and len(basis[sym]) > 2 and abs(float(basis[sym][2]) - val) > 1e-9:
            raise BasisError(f"valence of {sym} {float(basis[sym][2]):g} differs from {val:g} of "
                             f"{Path(openmx_data) / 'VPS' / (vps + '.vps')}: OpenMX takes the valence from the VPS file; "
                             "leave the valence out, or choose another pseudopotential (--vps)")
        if val is None:
            val = float(entry[2]) if len(entry) > 2 else (DEFAULT_SPECIES[sym][2] if sym in DEFAULT_SPECIES and DEFAULT_SPECIES[sym][1] == vps else None)
        if val is None:
            raise BasisError(f"valence of {sym} ({vps}) unknown: give it, or an OpenMX data folder holding VPS/{vps}.vps")
        out[sym] = (pao, vps, val)
    return out


def _check_data_files(openmx_data, sym: str, pao: str, vps: str, strict: bool = True) -> None:
    """BasisError (a warning without ``strict``) when ``openmx_data`` has a PAO (VPS) folder
    without the file that the basis label ``pao`` (pseudopotential ``vps``) names."""
    import warnings
    root = Path(openmx_data)
    for kind, name, option in (("PAO", pao.split("-")[0] + ".pao", "--basis"), ("VPS", vps + ".vps", "--vps")):
        folder = root / kind
        if folder.is_dir() and not (folder / name).is_file():
            have = sorted(f.stem for f in folder.glob(f"{sym}[0-9_]*.{kind.lower()}"))
            why = (f"{sym}: no {kind} file {folder / name} ({option}); {kind} files of {sym} there: "
                   f"{', '.join(have) or 'none'}")
            if strict:
                raise BasisError(why)
            warnings.warn(why + "; OpenMX needs it in the DATA.PATH of the inputs", stacklevel=4)


def kgrid_from_density(atoms: Atoms, density: float = 4.0) -> tuple[int, int, int]:
    """Monkhorst-Pack grid with at least ``density`` points per reciprocal Angstrom (ase's
    convention: n_i = ceil(|b_i| density), |b_i| including 2 pi); 1 along a slab's vacuum."""
    from .perturb import is_slab
    density = checks.positive(density, "kdensity")
    rec = 2 * np.pi * np.linalg.norm(np.linalg.inv(np.asarray(atoms.cell[:])).T, axis=1)
    k = [max(1, math.ceil(r * density - 1e-9)) for r in rec]
    if is_slab(atoms):
        k[2] = 1
    return tuple(int(x) for x in k)


def band_path(atoms: Atoms, npoints: int = 20) -> list[tuple[int, np.ndarray, np.ndarray, str, str]]:
    """Band path segments (n, k_start, k_end, label, label) in reciprocal-lattice units: ase's
    standard path for the cell (2D path for slabs: G-M-K-G for hexagonal layers)."""
    from .perturb import is_slab
    pbc = [True, True, not is_slab(atoms)]
    bp = atoms.cell.bandpath(npoints=0, pbc=pbc)
    segs = []
    for piece in bp.path.split(","):
        labels = re.findall(r"[A-Z][a-z0-9]*", piece)
        for a, b in zip(labels[:-1], labels[1:]):
            segs.append((npoints, bp.special_points[a], bp.special_points[b], "G" if a == "G" else a, b))
    return segs


def _fmt(x: float) -> str:
    return f"{x:18.12f}"


def openmx_input_text(atoms: Atoms, *, system_name: str = "openmx", basis: dict | None = None,
                      openmx_data: str | None = None, kgrid=None, kdensity: float = 4.0, spin: str = "none",
                      band: bool | list = False, band_npoints: int = 20,
                      scf: dict | None = None, extra: dict | None = None, header: str | None = None,
                      valence_lookup_path=None) -> str:
    """Text of an OpenMX input for ``atoms`` (Angstrom, cell rows = lattice vectors).

    spin: "none", "collinear" or "soc" (non-collinear spinors with spin-orbit coupling), the
    spin treatments of :class:`hotham.BlockOperator`. band: False,
    True (ase's standard path for the cell) or a list of (n, k1, k2, label1, label2). scf:
    overrides of DEFAULT_SCF; extra: more keywords (name -> value text), written last.
    openmx_data: OpenMX's DFT_DATA19 folder, written as DATA.PATH (default
    :func:`default_openmx_data`, a relative path); the valences are read from the VPS files of an
    absolute ``openmx_data``, else of ``$HOTHAM_OPENMX_DATA`` when set, else from DEFAULT_SPECIES.
    The PAO and VPS files named are looked for there too (:func:`species_table`: an error when
    missing from ``openmx_data``, a warning when missing from the stand-in)."""
    if len(atoms) == 0:
        raise StructureError("no atoms to write")
    if np.linalg.matrix_rank(np.asarray(atoms.cell[:])) < 3:
        raise StructureError("OpenMX needs three cell vectors (add vacuum to slabs, e.g. layers.as_slab)")
    openmx_data = default_openmx_data() if openmx_data is None else str(openmx_data)
    # hotham's spin treatments and OpenMX's scf.SpinPolarization (+ scf.SpinOrbit.Coupling)
    openmx_spin = {"none": "off", "collinear": "on", "soc": "NC"}
    if spin not in openmx_spin:
        raise StructureError(f"spin must be none, collinear or soc, not {spin!r}")
    lookup = valence_lookup_path
    if lookup is None:
        lookup = openmx_data if os.path.isabs(openmx_data) else os.environ.get("HOTHAM_OPENMX_DATA")
    # the files are those OpenMX reads when the folder is DATA.PATH itself, else a stand-in's
    table = species_table(atoms.get_chemical_symbols(), basis, lookup,
                          strict=os.path.abspath(str(lookup or "")) == os.path.abspath(openmx_data))
    k = tuple(checks.positive_int(x, "kgrid") for x in kgrid) if kgrid is not None else kgrid_from_density(atoms, kdensity)
    magmom = atoms.get_initial_magnetic_moments()
    L = []
    L += ["#", f"# {system_name}", f"# {header or 'written by hotham.workflows.openmx_input'}", "#"]
    kw = lambda key, val: L.append(f"{key:<27s} {val}")  # noqa: E731
    kw("System.CurrrentDirectory", "./")  # OpenMX's own spelling
    kw("System.Name", system_name)
    kw("DATA.PATH", openmx_data)
    kw("level.of.stdout", "1")
    kw("level.of.fileout", "0")
    kw("HS.fileout", "on")
    L.append("")
    kw("Species.Number", str(len(table)))
    L.append("<Definition.of.Atomic.Species")
    for sym, (pao, vps, _) in table.items():
        L.append(f"  {sym:<3s} {pao:<16s} {vps}")
    L.append("Definition.of.Atomic.Species>")
    L.append("")
    kw("Atoms.Number", str(len(atoms)))
    L.append("Atoms.SpeciesAndCoordinates.Unit   Ang")
    L.append("<Atoms.SpeciesAndCoordinates")
    for i, (sym, p) in enumerate(zip(atoms.get_chemical_symbols(), atoms.positions)):
        val = table[sym][2]
        up, dn = (val + magmom[i]) / 2, (val - magmom[i]) / 2
        row = f"  {i + 1:4d}  {sym:<3s}{_fmt(p[0])}{_fmt(p[1])}{_fmt(p[2])}  {up:5.2f} {dn:5.2f}"
        if spin == "soc":
            row += "   0.0 0.0   0.0 0.0   0  off"
        L.append(row)
    L.append("Atoms.SpeciesAndCoordinates>")
    kw("Atoms.UnitVectors.Unit", "Ang")
    L.append("<Atoms.UnitVectors")
    for v in np.asarray(atoms.cell[:]):
        L.append(f"  {_fmt(v[0])}{_fmt(v[1])}{_fmt(v[2])}")
    L.append("Atoms.UnitVectors>")
    L.append("")
    settings = dict(DEFAULT_SCF)
    settings.update(scf or {})
    kw("scf.XcType", settings.pop("scf.XcType"))
    kw("scf.SpinPolarization", openmx_spin[spin])
    if spin == "soc":
        kw("scf.SpinOrbit.Coupling", "on")
    first = ["scf.ElectronicTemperature", "scf.energycutoff", "scf.maxIter", "scf.EigenvalueSolver"]
    for key in first:
        kw(key, settings.pop(key))
    kw("scf.Kgrid", " ".join(str(int(x)) for x in k))
    for key, val in settings.items():
        kw(key, val)
    L.append("")
    kw("MD.Type", "Nomd")
    if band:
        segs = band_path(atoms, band_npoints) if band is True else list(band)
        L.append("")
        kw("Band.dispersion", "on")
        kw("Band.Nkpath", str(len(segs)))
        L.append("<Band.kpath")
        for n, k1, k2, l1, l2 in segs:
            f = lambda v: " ".join(f"{x:.12f}" for x in v)  # noqa: E731
            L.append(f"   {int(n)}  {f(k1)}   {f(k2)}   {l1} {l2}")
        L.append("Band.kpath>")
    for key, val in (extra or {}).items():
        kw(key, val)
    return "\n".join(L) + "\n"


def write_openmx_input(path, atoms: Atoms, **kwargs) -> Path:
    """Write ``openmx_input_text(atoms, **kwargs)`` to ``path`` atomically; System.Name defaults
    to the file's stem. Returns the path."""
    from hotham.files import atomic_path
    path = Path(path)
    kwargs.setdefault("system_name", path.stem)
    text = openmx_input_text(atoms, **kwargs)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def write_run_folders(structures, out=".", *, name: str | None = None, basis: dict | None = None,
                      vps: dict | None = None, valence: dict | None = None, force: bool = True,
                      **kwargs) -> list[Path]:
    """One OpenMX run folder ``out/NAME/NAME.dat`` per structure (a file or a layer name, see
    :func:`.layers.build_or_read`); returns the inputs written.

    NAME is the file's stem, or ``name`` (``name_NNN`` for several structures, NNN the number of
    entries already in ``out``). ``basis`` / ``vps`` / ``valence``: element -> basis label /
    pseudopotential / valence electrons (:func:`species_overrides`); ``kwargs`` go to
    :func:`openmx_input_text` (openmx_data, kgrid, kdensity, spin, band, ...). ``force``:
    replace existing inputs (False refuses them before anything is written)."""
    from hotham.files import check_outputs

    from .layers import build_or_read
    out = Path(out)
    species = species_overrides(basis, vps, valence)
    runs, first = [], len(list(out.glob("*"))) if out.is_dir() else 0
    for k, spec in enumerate(structures):
        run = name or Path(spec).stem
        if len(structures) > 1 and name:
            run = f"{name}_{first + k:03d}"
        runs.append((spec, run, out / run / f"{run}.dat"))
    check_outputs([dat for _, _, dat in runs], force=force,
                  inputs=[spec for spec in structures if Path(spec).exists()])
    return [write_openmx_input(dat, build_or_read(spec), system_name=run, basis=species, **kwargs)
            for spec, run, dat in runs]
