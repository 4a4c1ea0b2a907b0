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


def test_magic_angle_example_small(tmp_path, openmx_data):
    """The magic-angle example end to end on the smallest twist (21.79 deg, 28 atoms, 3 k-points):
    E_F by counting equals the dense E_F, 8 states straddle it, the pictures are written."""
    from hotham.electronic import find_fermi_level
    sys.path.insert(0, str(ROOT / "examples"))
    from magic_angle_tbg import run
    s, pred = run(1, 2, tmp_path, nk=3, threads=1, log=lambda *a: None, return_operator=True)
    assert s["atoms"] == 28 and s["kpoints"] >= 3 and s["fermi_info"]["factorisations"] >= 1
    dense = find_fermi_level(pred, s["mesh"], method="dense")
    assert abs(s["fermi_level_eV"] - dense) < 1e-6
    assert 0 < s["aa_weight_share"] <= 1 and s["flat_band_width_meV"] > 0
    for name in ("bands", "dos", "weights"):
        assert (tmp_path / f"magic_angle_{name}.png").stat().st_size > 1000
    assert json.loads((tmp_path / "magic_angle.json").read_text())["orbitals"] == pred.n_orbitals
