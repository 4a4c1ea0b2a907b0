"""Checking the OpenMX reader on one run (``hotham openmx check``): what it parsed, the SCF
record, the Hermitian pairing of H and S, and whether the parsed blocks reproduce OpenMX's own
bands (its ``.Band`` file). A check of the reader, not of a model."""
from __future__ import annotations

from pathlib import Path

from .electronic.compare import band_file_deviation
from .io import write
from .parsers.openmx import find_run_files, read_openmx

__all__ = ["check_openmx_run"]


def check_openmx_run(path, *, band=None, symmetrize: bool = False, output=None, log=print) -> dict:
    """Read one OpenMX run and check it, reporting through ``log`` line by line: the operator,
    its SCF record, the Hermitian pairing of H and S, and its bands against a ``.Band`` file
    (``band``, default the one beside the run; see :func:`hotham.electronic.compare.band_file_deviation`). ``output``:
    also write the operator there (hotham HDF5). Returns ``{"operator", "band" (path or None),
    "deviation" (dict or None), "ok" (bands agree to 1e-4 eV and S(k) > 0; None without a
    .Band file)}``."""
    op = read_openmx(path, symmetrize=symmetrize)
    meta = op.meta
    log(str(op))
    log(f"SpinP_switch {meta.get('spinp_switch')}, OpenMX {meta.get('openmx_version', '?')}, "
        f"scf steps: {meta.get('scf_steps')}, converged: {meta.get('scf_converged')}")
    log(f"Hermitian pairing: H {op.hermiticity_error('H'):.2e} eV, S {op.hermiticity_error('S'):.2e}")
    band = Path(band) if band else find_run_files(path).get("band")
    r = ok = None
    if band is not None:
        r = band_file_deviation(op, band)
        ok = r["max_abs_eV"] < 1e-4 and r["min_eig_S"] > 0
        log(f"bands vs {band.name}: max |dE| {r['max_abs_eV']:.2e} eV ({r['nband']} bands x {r['nk']} k x "
            f"{r['nspin']} spin), within 5 eV of E_F {r['window_max_abs_eV']:.2e} eV, min eig S(k) "
            f"{r['min_eig_S']:.2e}  [{'ok' if ok else 'MISMATCH'}]")
    if output:
        write(output, op)
        log(f"wrote {output}")
    return {"operator": op, "band": band, "deviation": r, "ok": ok}
