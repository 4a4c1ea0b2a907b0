"""`hotham demo` end to end on the shipped data, with a tiny model (the real demo trains longer)."""
import json
from pathlib import Path

from hotham.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


def test_demo_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(DATA), "--epochs", "1", "--channels", "4",
                 "--layers", "1"]) == 0
    text = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    # the DFT side reproduces OpenMX's own bands (DeepH's Hartree constant limits this to ~1e-5 eV)
    assert s["dft_vs_openmx_band_max_eV"] < 1e-4
    assert abs(s["fermi_level_dft_eV"] - (-3.65996)) < 1e-3     # tbg_21.79 info.json: -3.6599614 eV
    assert s["epochs"] == 1 and s["tbg_block_mae_meV"] > 0
    assert (out / "tbg_bands.png").stat().st_size > 10000 and (out / "model.pt").exists()
    assert "model vs DFT bands" in text
    # one epoch is far from good enough: the quality gate says so instead of presenting the picture
    assert s["passes_quality_gate"] is False and s["quality_gate_meV"] == 2.0 and s["val_block_mae_meV"] > 2.0
    assert "NOT GOOD ENOUGH FOR BANDS" in text and "not a result" in text and "NOT good enough" in text
    assert "passes the quality gate" not in text
