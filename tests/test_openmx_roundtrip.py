"""OpenMX -> BlockOperator -> hotham HDF5 -> BlockOperator keeps every array bit for bit."""
from pathlib import Path

import numpy as np
import pytest

import hotham.io
from hotham.parsers.openmx import find_run_files, read_openmx

OPENMX = Path(__file__).parent / "data" / "openmx"


@pytest.mark.parametrize("run", ["graphene_prim", "graphene_prim_spin", "mos2_prim_soc"])
def test_hdf5_roundtrip(tmp_path, run):
    op = hotham.io.read(OPENMX / run)  # dispatches to read_openmx for a run folder
    assert op.spin == {"graphene_prim": "none", "graphene_prim_spin": "collinear", "mos2_prim_soc": "soc"}[run]
    path = tmp_path / f"{run}.h5"
    hotham.io.write(path, op)
    back = hotham.io.read(path)
    for name in ("edge_i", "edge_j", "edge_R", "H", "S"):
        a, b = getattr(op, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert np.array_equal(op.atoms.positions, back.atoms.positions)
    assert np.array_equal(np.asarray(op.atoms.cell), np.asarray(back.atoms.cell))
    assert op.atoms.get_chemical_symbols() == back.atoms.get_chemical_symbols()
    assert op.basis.shells == back.basis.shells and op.basis.labels == back.basis.labels
    assert op.spin == back.spin and op.fermi_level == back.fermi_level and op.meta == back.meta
    back.check()


def test_run_file_discovery(tmp_path):
    files = find_run_files(OPENMX / "mos2_prim")
    assert files["scfout"].name == "mos2_prim.scfout.gz" and files["out"].name == "mos2_prim.out.gz"
    assert files["band"].name == "mos2_prim.Band" and files["dat"].name == "mos2_prim.dat"
    assert find_run_files(files["scfout"]) == files
    op = read_openmx(files["scfout"])
    assert op.meta["scf_converged"] and op.source == str(files["scfout"])
