"""`hotham demo` end to end on the shipped data: with the shipped model (the real `make demo`),
and retrained for one epoch (the quality gate must then say the picture is no result)."""
import json
from pathlib import Path

import pytest

from hotham.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"
SHIPPED = DATA / "models" / "bilayer_graphene.pt"


def test_demo_with_the_shipped_model(tmp_path, capsys):
    """What `make demo` shows: the shipped model on the held-out twisted bilayer, within the
    issue's targets (block MAE < 1 meV, band MAE within +-2 eV of E_F < 5 meV, each side at its
    own Fermi level), and the same numbers as the record made with the model."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(DATA)]) == 0
    text = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    assert s["dft_vs_openmx_band_max_eV"] < 1e-4          # the DFT side reproduces OpenMX's own bands
    assert s["tbg_block_mae_meV"] < 1.0 and s["tbg_band_mae_meV_within_2eV"] < 5.0
    assert s["passes_quality_gate"] is True and "passes the quality gate" in text
    record = json.loads(SHIPPED.with_suffix(".json").read_text())
    for key in ("tbg_block_mae_meV", "tbg_band_mae_meV_within_2eV", "val_block_mae_meV"):
        assert s[key] == pytest.approx(record[key], rel=1e-4), key
    assert (out / "tbg_bands.png").stat().st_size > 10000


def test_demo_retrained_for_one_epoch_fails_the_gate(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data", str(DATA), "--train", "--epochs", "1", "--channels", "4",
                 "--layers", "1"]) == 0
    text = capsys.readouterr().out
    s = json.loads((out / "summary.json").read_text())
    # tbg_21.79 info.json: -3.6599614 eV, on OpenMX's 6x6 grid (Monkhorst-Pack, off Gamma); hotham's 6x6
    # mesh is Gamma-centred (-3.6570 eV)
    assert abs(s["fermi_level_dft_eV"] - (-3.65996)) < 5e-3
    assert s["epochs"] == 1 and s["tbg_block_mae_meV"] > 0 and (out / "model.pt").exists()
    assert "model vs DFT bands" in text
    # one epoch is far from good enough: the quality gate says so instead of presenting the picture
    assert s["passes_quality_gate"] is False and s["quality_gate_meV"] == 2.0 and s["val_block_mae_meV"] > 2.0
    assert "NOT GOOD ENOUGH FOR BANDS" in text and "not a result" in text and "NOT good enough" in text
    assert "passes the quality gate" not in text


def test_demo_without_a_shipped_model_says_how_to_get_one(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "examples/train_demo_model.py" in capsys.readouterr().err
