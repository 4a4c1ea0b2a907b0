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


def test_train_model_quick_mixed_chemistries():
    """One model for graphene, graphene/hBN and MoS2 (13- and 19-orbital atoms), 3 epochs on the cells in
    tests/data/deeph; its record holds the held-out MAE per species pair."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_model.py"), str(ROOT / "examples" / "mixed.yaml"),
                          "--quick", "--threads", "1"], capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 3 and record["val_block_mae_meV"] > 0
    assert {"C-C", "B-N", "C-B", "Mo-S", "S-S"} <= set(record["val_species_pair_mae_meV"])
    assert record["command"].startswith("python examples/train_model.py examples/mixed.yaml")
