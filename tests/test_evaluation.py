"""`hotham evaluate`: block errors over all elements, per structure, per species and orbital pair,
and bands against OpenMX's .Band files (each side at its own Fermi level, and after the best shift)."""
import json
from pathlib import Path

import numpy as np
import pytest

from hotham.cli import main
from hotham.dataset import Dataset, build_dataset
from hotham.electronic import automatic_mesh, find_fermi_level
from hotham.evaluation import evaluate_split
from hotham.train import TrainConfig, train

from conftest import graphene_deeph  # noqa: E402

DATA = Path(__file__).parent / "data"
OPENMX = ["graphene_prim", "bilayer_graphene_ab_prim"]     # run folders with a .Band file


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two DeepH structures (no .Band file) and two OpenMX runs (with one), all C6.0-s2p2d1."""
    path = tmp_path_factory.mktemp("ev") / "set.h5"
    build_dataset([graphene_deeph(path.parent)] + [DATA / "openmx" / n for n in OPENMX], path, split=(0.5, 0.5, 0.0), seed=0,
                  progress=False)
    return path


class DFTBlocks:
    """A "model" that predicts the DFT blocks themselves (hotham.predict takes any object with
    predict_blocks): every error must vanish, and the two Fermi levels agree."""
    target = "H"
    info: dict = {}

    def predict_blocks(self, op):
        return op.H.copy()


def test_dft_blocks_have_no_block_or_band_error(dataset):
    ev = evaluate_split(DFTBlocks(), dataset, "all", bands=True)
    assert ev["report"]["all"]["mae"] == 0.0 and ev["structure_mae"]["worst"] == 0.0
    assert sorted(ev["bands"]) == sorted(OPENMX) and len(ev["without_band_file"]) == 2
    for b in ev["bands"].values():
        assert b["fermi_level_model_eV"] == b["fermi_level_reference_eV"]
        # the parsed blocks reproduce OpenMX's .Band file to 1e-4 eV
        assert b["fermi"]["mae_meV"] < 0.1 and b["fit"]["mae_meV"] < 0.1 and b["fermi"]["n_values"] > 0


def test_cli_evaluate_reports_blocks_structures_and_bands(dataset, tmp_path, capsys):
    model = tmp_path / "m.pt"
    train(dataset, model, model=dict(lmax=4, channels=4, layers=1, hidden=16, n_radial=8),
          config=TrainConfig(epochs=2, lr=1e-2), log=lambda s: None)
    assert main(["evaluate", str(model), str(dataset), "--split", "all", "--json", str(tmp_path / "e.json")]) == 0
    text = capsys.readouterr().out
    for part in ("per species pair", "per orbital pair", "per structure: mean MAE", "each at its own E_F",
                 "after the best shift", "above the 2 meV quality gate"):
        assert part in text
    ev = json.loads((tmp_path / "e.json").read_text())
    per = ev["per_structure"]
    assert sorted(per) == sorted(Dataset(dataset).names)
    # the per-structure MAEs are the overall one, split up
    n = sum(e["n"] for e in per.values())
    assert ev["report"]["all"]["mae"] == pytest.approx(sum(e["mae"] * e["n"] for e in per.values()) / n, rel=1e-9)
    assert ev["structure_mae"]["mean"] == pytest.approx(np.mean([e["mae"] for e in per.values()]))
    assert ev["structure_mae"]["worst_name"] == max(per, key=lambda k: per[k]["mae"])
    ds = Dataset(dataset)
    for name in OPENMX:
        b = ev["bands"][name]
        dft = ds[name]
        assert b["mesh"] == list(automatic_mesh(dft.atoms))
        assert b["fermi_level_reference_eV"] == pytest.approx(find_fermi_level(dft, b["mesh"]), abs=1e-9)
        assert b["fit"]["mae_meV"] <= b["fermi"]["mae_meV"] + 1e-9    # the best shift is the median: least MAE
        assert b["window_eV"] == [-2.0, 2.0]
    # a given mesh and window, and block errors only
    assert main(["evaluate", str(model), str(dataset), "--split", "all", "--mesh", "6", "--window", "-1", "1",
                 "--json", str(tmp_path / "f.json")]) == 0
    capsys.readouterr()
    f = json.loads((tmp_path / "f.json").read_text())
    assert all(b["mesh"] == [6, 6, 1] and b["window_eV"] == [-1.0, 1.0] for b in f["bands"].values())
    assert main(["evaluate", str(model), str(dataset), "--split", "all", "--no-bands"]) == 0
    assert "bands against" not in capsys.readouterr().out
