"""``hotham openmx``: reads a real run, reports the band check, converts to HDF5."""
from pathlib import Path

import numpy as np

import hotham.io
from hotham.cli import main
from hotham.parsers.openmx import read_openmx
from hotham.parsers.openmx.band import band_deviation

OPENMX = Path(__file__).parent / "data" / "openmx"


def test_band_deviation_helper():
    op = read_openmx(OPENMX / "mos2_prim_soc")
    r = band_deviation(op, OPENMX / "mos2_prim_soc" / "mos2_prim_soc.Band")
    assert r["nband"] == 90 and r["max_abs_eV"] < 1e-4 and r["min_eig_S"] > 0
    bad = op.copy()
    bad.H = bad.H * 1.001
    assert band_deviation(bad, OPENMX / "mos2_prim_soc" / "mos2_prim_soc.Band")["max_abs_eV"] > 1e-3


def test_cli(tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert main(["openmx", str(OPENMX / "graphene_prim_spin"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[ok]" in text and "SpinP_switch 1" in text and "converged: True" in text
    assert np.array_equal(hotham.io.read(out).H, read_openmx(OPENMX / "graphene_prim_spin").H)
    # a band file of another system: reported as an error (wrong band count), exit code 2
    assert main(["openmx", str(OPENMX / "graphene_prim"), "--band",
                 str(OPENMX / "mos2_prim" / "mos2_prim.Band")]) == 2
    assert "45 bands per spin block, the operator 26" in capsys.readouterr().err
