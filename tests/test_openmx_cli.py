"""``hotham openmx``: reads a real run, reports the band check, converts to HDF5."""
from pathlib import Path

import numpy as np

import hotham.io
from hotham.cli import main
from hotham.parsers.openmx import read_openmx
from hotham.electronic.compare import band_file_deviation

OPENMX = Path(__file__).parent / "data" / "openmx"


def test_band_file_deviation():
    op = read_openmx(OPENMX / "mos2_prim_soc")
    r = band_file_deviation(op, OPENMX / "mos2_prim_soc" / "mos2_prim_soc.Band")
    assert r["nband"] == 90 and r["max_abs_eV"] < 1e-4 and r["min_eig_S"] > 0
    bad = op.copy()
    bad.H = bad.H * 1.001
    assert band_file_deviation(bad, OPENMX / "mos2_prim_soc" / "mos2_prim_soc.Band")["max_abs_eV"] > 1e-3


def test_cli(tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert main(["openmx", "check", str(OPENMX / "graphene_prim_spin"), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "[ok]" in text and "SpinP_switch 1" in text and "converged: True" in text
    assert np.array_equal(hotham.io.read(out).H, read_openmx(OPENMX / "graphene_prim_spin").H)
    # a band file of another system: reported as an error (wrong band count), exit code 2
    assert main(["openmx", "check", str(OPENMX / "graphene_prim"), "--band",
                 str(OPENMX / "mos2_prim" / "mos2_prim.Band")]) == 2
    assert "45 bands per spin block, the operator 26" in capsys.readouterr().err


def test_collect_skips_failed_runs(tmp_path, capsys):
    import json
    import shutil
    from hotham.dataset import Dataset
    for run, status in (("graphene_prim", "converged"), ("hbn_prim", "failed"), ("mos2_prim", None)):
        shutil.copytree(OPENMX / run, tmp_path / "runs" / run)
        if status:
            (tmp_path / "runs" / run / "run.json").write_text(json.dumps({"status": status}))
    out = tmp_path / "set.h5"
    assert main(["openmx", "collect", str(tmp_path / "runs"), "-o", str(out)]) == 0
    assert "skipping" in capsys.readouterr().out
    ds = Dataset(out)
    assert len(ds) == 2 and sorted(ds.species) == ["C", "Mo", "S"]
    op = ds[[n for n in ds.names if "graphene" in n][0]]
    assert np.array_equal(op.H, read_openmx(OPENMX / "graphene_prim").H)
