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
