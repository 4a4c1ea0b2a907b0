"""OpenMX: .scfout (binary H, S), .out, input .dat and .Band files.

>>> from hotham.parsers.openmx import read_openmx, read_band
>>> op = read_openmx("runs/mos2_prim")          # folder, or the .scfout(.gz) itself
>>> kpts, eigs, info = read_band("runs/mos2_prim/mos2_prim.Band")

Units: eV and Angstrom (converted with ase.units.Hartree / ase.units.Bohr, see
:mod:`.scfout`); orbitals in hotham's internal real-SH order (:mod:`.orbitals`).
"""
from __future__ import annotations

import os
from pathlib import Path

from ...errors import FormatError
from .band import read_band
from .out import OpenMXOutput, read_out
from .scfout import ScfoutData, parse_scfout, read_scfout, scfout_to_operator

__all__ = ["read_openmx", "read_scfout", "read_band", "read_out", "parse_scfout", "scfout_to_operator",
           "find_run_files", "check_openmx_run", "ScfoutData", "OpenMXOutput"]


def _strip(name: str) -> str:
    for suf in (".scfout.gz", ".scfout"):
        if name.endswith(suf):
            return name[: -len(suf)]
    return name


def find_run_files(path) -> dict[str, Path | None]:
    """The files of one OpenMX run: ``{"scfout", "out", "dat", "band"}`` (None where absent).

    ``path`` is a run folder (holding exactly one ``*.scfout`` or ``*.scfout.gz``) or the
    ``.scfout(.gz)`` file; the others are looked up beside it with the same stem
    (``.out`` / ``.out.gz``, ``.dat``, ``.Band`` / ``.Band.gz``).
    """
    p = Path(path)
    if p.is_dir():
        cands = sorted(set(p.glob("*.scfout")) | set(p.glob("*.scfout.gz")))
        if not cands:
            raise FormatError(p, "no *.scfout or *.scfout.gz in this folder (set HS.fileout on in OpenMX)")
        stems = {_strip(c.name) for c in cands}
        if len(stems) > 1:
            raise FormatError(p, f"several OpenMX runs in one folder ({', '.join(sorted(stems))}); "
                                 f"pass the .scfout file to read")
        scfout = [c for c in cands if c.name.endswith(".scfout")] or cands
        scfout = scfout[0]
    elif p.exists():
        scfout = p
    else:
        raise FormatError(p, "no such file or folder")
    stem = _strip(scfout.name)
    folder = scfout.parent

    def first(*names):
        for n in names:
            if (folder / n).exists():
                return folder / n
        return None

    return {"scfout": scfout, "out": first(stem + ".out", stem + ".out.gz"), "dat": first(stem + ".dat"),
            "band": first(stem + ".Band", stem + ".Band.gz")}


def read_openmx(path, *, symmetrize: bool = False, check: bool = True, h_tol: float = 1e-7,
                s_tol: float = 1e-8):
    """Read an OpenMX run into a :class:`~hotham.operator.BlockOperator`.

    ``path``: the run folder or its ``.scfout`` / ``.scfout.gz``. The ``.out`` beside it is
    optional: when present, its OpenMX version, SCF convergence and total energy go into
    ``op.meta``, and its input echo (or the ``.dat``) stands in if the input embedded in the
    .scfout is unreadable. Blocks are not symmetrised unless ``symmetrize=True``; with
    ``check=True`` Hermitian pairing is validated to ``h_tol`` eV and ``s_tol``.
    """
    files = find_run_files(path)
    raw = parse_scfout(files["scfout"])
    out = read_out(files["out"]) if files["out"] is not None else None
    input_text = None
    try:
        from .scfout import species_from_input
        species_from_input(raw.input_text, raw.path, raw.atomnum)
    except FormatError:
        if out is not None:
            input_text = out.input_text
        elif files["dat"] is not None:
            input_text = Path(files["dat"]).read_text(errors="replace")
        else:
            raise
    op = scfout_to_operator(raw, input_text=input_text, symmetrize=symmetrize, check=check,
                            h_tol=h_tol, s_tol=s_tol, source=os.fspath(path))
    if out is not None:
        op.meta.update({
            "openmx_version": out.version or op.meta["openmx_version"],
            "scf_steps": out.scf_steps, "scf_converged": bool(out.converged),
            "total_energy_eV": out.total_energy,
            "out_chemical_potential_eV": out.chemical_potential,
        })
    return op


def check_openmx_run(path, *, band=None, symmetrize: bool = False, output=None, log=print) -> dict:
    """Read one OpenMX run and check it, reporting through ``log`` line by line: the operator,
    its SCF record, the Hermitian pairing of H and S, and its bands against a ``.Band`` file
    (``band``, default the one beside the run; see :func:`.band.band_deviation`). ``output``:
    also write the operator there (hotham HDF5). Returns ``{"operator", "band" (path or None),
    "deviation" (dict or None), "ok" (bands agree to 1e-4 eV and S(k) > 0; None without a
    .Band file)}``."""
    from .band import band_deviation
    op = read_openmx(path, symmetrize=symmetrize)
    meta = op.meta
    log(str(op))
    log(f"SpinP_switch {meta.get('spinp_switch')}, OpenMX {meta.get('openmx_version', '?')}, "
        f"scf steps: {meta.get('scf_steps')}, converged: {meta.get('scf_converged')}")
    log(f"Hermitian pairing: H {op.hermiticity_error('H'):.2e} eV, S {op.hermiticity_error('S'):.2e}")
    band = Path(band) if band else find_run_files(path).get("band")
    r = ok = None
    if band is not None:
        r = band_deviation(op, band)
        ok = r["max_abs_eV"] < 1e-4 and r["min_eig_S"] > 0
        log(f"bands vs {band.name}: max |dE| {r['max_abs_eV']:.2e} eV ({r['nband']} bands x {r['nk']} k x "
            f"{r['nspin']} spin), within 5 eV of E_F {r['window_max_abs_eV']:.2e} eV, min eig S(k) "
            f"{r['min_eig_S']:.2e}  [{'ok' if ok else 'MISMATCH'}]")
    if output:
        from ...io import write
        write(output, op)
        log(f"wrote {output}")
    return {"operator": op, "band": band, "deviation": r, "ok": ok}
