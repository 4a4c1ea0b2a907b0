"""The examples run, shrunk by their --quick flag (the full runs are what they make and record)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_demo_model_quick():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_demo_model.py"), "--quick", "--threads", "1"],
                         capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 3 and record["val_block_mae_meV"] > 0 and record["tbg_band_mae_meV_within_2eV"] > 0
    assert "--quick" in record["command"]


def test_train_soc_model_quick():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_soc_model.py"), "--quick"],
                         capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 2 and record["held_out_real_mae_meV"] > 0 and record["held_out_imag_mae_meV"] > 0
    assert all(v["dft_meV"] > 100 for v in record["soc_splitting_K_meV"].values())   # MoS2: ~155 meV at K


def test_twisted_mos2_soc_quick():
    from conftest import need_openmx_data
    need_openmx_data()
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "twisted_mos2_soc.py"), "--quick"],
                         capture_output=True, text=True, check=True).stdout
    assert "SOC splitting of the top valence band at K" in out and "bands ->" in out
