"""The examples run, shrunk by their --quick flag (the full runs are what they make and record)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_train_demo_model_quick():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_demo_model.py"), "--quick", "--threads", "1"],
                         capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 3 and record["val_block_mae_meV"] > 0 and record["tbg_band_mae_meV_within_2eV"] > 0
    assert "--quick" in record["command"]


def test_train_model_quick_soc():
    """The SOC recipe (spin "soc" in hotham.recipes.SOURCES), 3 epochs on the SOC cells in tests/data: its
    record holds the MAE of the real and imaginary parts and the SOC splitting at K, model and DFT."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_model.py"), str(ROOT / "examples" / "mos2_soc.yaml"),
                          "--quick", "--threads", "1"], capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 3 and record["held_out_real_mae_meV"] > 0 and record["held_out_imag_mae_meV"] > 0
    assert all(v["dft_meV"] > 100 for v in record["soc_splitting_K_meV"].values())   # MoS2: ~155 meV at K


def test_twisted_mos2_soc_quick():
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "twisted_mos2_soc.py"), "--quick"],
                         capture_output=True, text=True, check=True).stdout
    assert "SOC splitting of the top valence band at K" in out and "bands ->" in out


def test_train_model_quick_mixed_chemistries():
    """One model for graphene, graphene/hBN and MoS2 (13- and 19-orbital atoms), 3 epochs on the cells in
    tests/data/deeph, each set split on its own; its record holds the held-out MAE per species pair
    and per set."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "train_model.py"), str(ROOT / "examples" / "mixed.yaml"),
                          "--quick", "--threads", "1"], capture_output=True, text=True, check=True).stdout
    record = json.loads(out[out.index("{"):])
    assert record["epochs"] == 3 and record["val_block_mae_meV"] > 0
    assert {"C-C", "B-N", "C-B", "Mo-S", "S-S"} <= set(record["val_species_pair_mae_meV"])
    assert set(record["val_set_mae_meV"]) == {"bilayer_graphene_slid_1x1", "graphene_hbn_slid_1x1",
                                               "mos2_bilayer_slid_1x1"}
    assert record["command"].startswith("python examples/train_model.py examples/mixed.yaml")


def test_transfer_case_of_a_large_cell_draws_a_window_model_that_equals_the_dense_bands(tmp_path, monkeypatch):
    """Above DENSE_MAX the transfer examples draw their bands and DOS from a window model (lines on
    a dense path, the DOS on a mesh): made to take that path on the 28-atom graphene/hBN cell, its
    gaps equal the dense ones."""
    sys.path.insert(0, str(ROOT / "examples"))
    from transfer import arguments, folded_k, transfer_case
    from hotham.electronic import dense
    from hotham.workflows.hetero import heterostructure
    from hotham.workflows.layers import build_or_read
    graphene = build_or_read("graphene:a=2.482", reference=True)
    atoms, _ = heterostructure(graphene, build_or_read("hbn:a=2.482", reference=True), twist_range=(21.7, 21.9),
                               max_strain=1e-9, max_atoms=100, interlayer=3.33)
    args = arguments("x", "graphene_hbn.pt", "x", argv=["--out", str(tmp_path), "--threads", "1", "--quick"])
    kw = dict(title="t", n_states=8, npoints=150, mesh=(6, 6, 1), k_gap=folded_k(atoms, graphene), dos_mesh=6,
              max_samples=6)
    want = transfer_case(args, "dense", atoms, **kw)
    monkeypatch.setattr(dense, "DENSE_MAX", 10)
    got = transfer_case(args, "window", atoms, **kw)
    assert got["bands"].startswith("window model") and want["bands"] == "all bands (dense)"
    assert got["gap_at_k_meV"] == pytest.approx(want["gap_at_k_meV"], abs=0.01)
    assert got["gap_meV"] == pytest.approx(want["gap_meV"], abs=0.01)
    assert "mesh" in got["dos"] and (tmp_path / "window.png").stat().st_size > 10_000


@pytest.mark.parametrize("script, first", [("twisted_mos2.py", "bilayer_21.79"), ("graphene_hbn.py", "twisted_21.79")])
def test_transfer_example_quick(script, first, tmp_path):
    """The transfer examples, shrunk: the smallest cell on a few k-points with the shipped model (S from the
    PAO data it carries, or from OpenMX's files where tests/conftest.py points at them)."""
    out = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--quick", "--threads", "1", "--out",
                          str(tmp_path)], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    record = json.loads((tmp_path / script.replace(".py", ".json")).read_text())
    case = record["cases"][0]
    assert case["name"] == first and first in out and (tmp_path / f"{first}.png").stat().st_size > 10_000
    assert case["seconds"] > 0 and case["peak_memory_GB"] > 0 and "gap_meV" in case


def test_magic_angle_example_small(tmp_path):
    """The magic-angle example end to end on the smallest twist (21.79 deg, 28 atoms): E_F of the
    window model (band indices from Gamma, no count at a complex k), before and after refinement,
    equals the dense E_F on its mesh, the model's path agrees with direct solves within its
    bounds, and the pictures are written."""
    from hotham.electronic import find_fermi_level
    sys.path.insert(0, str(ROOT / "examples"))
    from magic_angle_tbg import run
    s, pred = run(1, 2, tmp_path, nk=40, threads=1, log=lambda *a: None, return_operator=True, dos_mesh=6,
                  wilson_mesh=6, max_samples=6)
    assert s["atoms"] == 28 and s["kpoints"] >= 40
    dense = find_fermi_level(pred, (6, 6, 1), method="dense")
    assert abs(s["fermi_level_eV"] - dense) < 1e-6 and abs(s["model"]["fermi_level_first_eV"] - dense) < 1e-5
    assert s["model"]["bounds_hold"] and s["model"]["direct_check_max_meV"] < 0.1
    # the direct checks are made off the samples (at a sample or its -k the model is exact by construction)
    from hotham.electronic.interpolation import _zone_distance
    assert len(s["model"]["check_k"]) == 2
    assert _zone_distance(np.array(s["model"]["check_k"]), np.array(s["model"]["sample_k"])).min() > 1e-3
    assert 0 < s["aa_weight_share"] <= 1 and s["flat_band_width_meV"] > 0
    for name in ("bands", "dos", "weights"):
        assert (tmp_path / f"magic_angle_{name}.png").stat().st_size > 1000
    assert json.loads((tmp_path / "magic_angle.json").read_text())["orbitals"] == pred.n_orbitals


def test_magic_angle_demo_step_solves_the_path_directly(tmp_path):
    """make demo's moire step (``--demo``): sparse solves at a few k of the path, no window model;
    the states it draws are the dense solver's 4 below and 4 above E_F."""
    import numpy as np

    from hotham.electronic import band_path, eigenvalues
    sys.path.insert(0, str(ROOT / "examples"))
    from magic_angle_tbg import run
    s, pred = run(1, 2, tmp_path, nk=5, threads=1, log=lambda *a: None, return_operator=True, direct=True)
    kp = band_path(pred.atoms, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]], npoints=5)
    assert s["kpoints"] == len(kp.kpts) >= 5 and "model" not in s
    assert (tmp_path / "magic_angle_bands.png").stat().st_size > 1000
    e = eigenvalues(pred, kp.kpts)                                          # dense, all bands
    nb = (e < pred.fermi_level).sum(axis=1)
    window = np.stack([e[q, nb[q] - 4:nb[q] + 4] for q in range(len(e))])
    np.testing.assert_allclose(np.array(s["energies_eV"]), window, atol=1e-8)


def test_dft_set_recipes_write_their_inputs(tmp_path):
    """examples/dft_sets.py --quick: the recipes write OpenMX inputs (2 structures per random step)
    with the settings of the reference runs, on a machine without OpenMX: a per-structure step
    (uniaxial), the 2H orientation (mos2_test) and spin-orbit inputs (mos2_soc_test); every set is listed."""
    import os

    from hotham.parsers.openmx.dat import read_openmx_input
    env = {k: v for k, v in os.environ.items() if k not in ("HOTHAM_OPENMX_DATA", "HOTHAM_OPENMX")}
    script = str(ROOT / "examples" / "dft_sets.py")
    listed = subprocess.run([sys.executable, script, "--list"], capture_output=True, text=True, check=True).stdout
    assert len(listed.splitlines()) == 13
    expected = {"bilayer_graphene_uniaxial": 2, "mos2_test": 5, "mos2_soc_test": 2, "graphene_hbn_test": 5}
    subprocess.run([sys.executable, script, *expected, "--quick", "--out", str(tmp_path)],
                   capture_output=True, text=True, check=True, env=env)
    for name, n in expected.items():
        inputs = sorted((tmp_path / name).glob("*/*.dat"))
        assert len(inputs) == n, name
        for path in inputs:
            keys = read_openmx_input(path)
            assert float(keys.get("scf.energycutoff")) == 150.0
            assert (keys.get("scf.spinorbit.coupling") == "on") == ("soc" in name)
    # 2H: the top layer's Mo sits over the bottom layer's S (fractional in-plane positions)
    from hotham.io import read_structure
    a = read_structure(tmp_path / "mos2_test" / "mos2_test_2h_p0" / "mos2_test_2h_p0.dat")
    f = a.get_scaled_positions()[:, :2]
    assert np.allclose(f[3], f[1], atol=1e-9) and np.allclose(f[4], f[0], atol=1e-9)
    # a held-out cell's lattice constant through --grid (it was once dropped)
    g = read_structure(tmp_path / "graphene_hbn_test" / "gr_hbn_test_m3" / "gr_hbn_test_m3.dat")
    assert np.linalg.norm(g.cell[0]) == pytest.approx(2.4056, abs=1e-9)
