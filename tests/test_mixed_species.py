"""Several chemistries in one model and one batch: B, C, N, S (13 orbitals) and Mo (19 orbitals)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from ase.build import mx2

import hotham
from hotham.prediction import QualityWarning
from hotham.checkpoint import load_predictor
from hotham.dataset import Dataset, build_dataset
from hotham.errors import BasisError
from hotham.train import TrainConfig, train

DEEPH = Path(__file__).parent / "data" / "deeph"
SETS = ["bilayer_graphene_slid_1x1/000", "graphene_hbn_slid_1x1/000", "mos2_bilayer_slid_1x1/000"]


@pytest.fixture(scope="module")
def mixed_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mixed")
    build_dataset([DEEPH / s for s in SETS], tmp / "set.h5", split=(1.0, 0.0, 0.0), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(tmp / "set.h5", tmp / "model.pt", model={"lmax": 4, "channels": 4, "layers": 1},
              config=TrainConfig(epochs=1, batch_size=3, device="cpu"), force=True, progress=False, log=lambda s: None)
    return load_predictor(tmp / "model.pt", device="cpu"), tmp / "set.h5"


def test_one_batch_of_three_chemistries_trains_and_predicts_blocks(mixed_model):
    predictor, dataset = mixed_model
    assert predictor.info["history"][0]["train_mae_meV"] > 0          # one step over all three structures
    assert sorted(predictor.model.shells) == ["B", "C", "Mo", "N", "S"]
    n_orb = {"B": 13, "C": 13, "N": 13, "S": 13, "Mo": 19}
    # per-species on-site baselines: the mean diagonal of each species' equal-l shell pairs
    for s, n in n_orb.items():
        blk = predictor.baseline.block(s, predictor.basis.shells[s])
        assert blk.shape == (n, n) and np.count_nonzero(np.diag(blk)) == n
    with Dataset(dataset) as ds:
        for name in ds.names:
            op = ds[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", QualityWarning)      # a one-epoch model
                pred = hotham.predict(predictor, op, fermi_method=None)
            assert pred.H.shape == op.H.shape and np.isfinite(pred.H).all()
            sym = op.atoms.get_chemical_symbols()
            for e in range(0, op.n_edges, 7):
                i, j = op.edge_i[e], op.edge_j[e]
                assert pred.h_block(e).shape == (n_orb[sym[i]], n_orb[sym[j]])
            onsite = op.onsite_edges()[0]
            # on-site block = network output + that species' baseline: near DFT's diagonal (eV), not zero
            assert np.abs(np.diag(pred.h_block(onsite)) - np.diag(op.h_block(onsite))).max() < 5.0


def test_unknown_element_is_a_clear_error(mixed_model):
    predictor, _ = mixed_model
    ws2 = mx2("WS2", a=3.18, vacuum=7.5)
    with pytest.raises(BasisError, match="knows only B, C, Mo, N, S; the structure also has W"):
        hotham.predict(predictor, ws2)


def test_model_without_an_element_names_it(tmp_path):
    """DFT data with an element the model never saw (hBN for a graphene model): BasisError naming it."""
    build_dataset([DEEPH / SETS[0]], tmp_path / "set.h5", split=(1.0, 0.0, 0.0), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(tmp_path / "set.h5", tmp_path / "c.pt", model={"lmax": 2, "channels": 4, "layers": 1},
              config=TrainConfig(epochs=1, device="cpu"), force=True, progress=False, log=lambda s: None)
        with pytest.raises(BasisError, match="species B of .*graphene_hbn_slid_1x1.* is unknown to the model"):
            hotham.predict(tmp_path / "c.pt", DEEPH / SETS[1])
