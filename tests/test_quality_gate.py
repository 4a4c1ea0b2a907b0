"""The quality gate: a model whose validation block MAE is above QUALITY_GATE_MEV says so, once
per prediction, in the predicted operator's meta and in `hotham compare`; a good one does not."""
import warnings
from pathlib import Path

import pytest
import torch

from hotham import io, predict
from hotham.checkpoint import load_predictor
from hotham.cli import main
from hotham.dataset import build_dataset
from hotham.prediction import QUALITY_GATE_MEV, QualityWarning
from hotham.train import TrainConfig, train

from conftest import graphene_deeph  # noqa: E402

DATA = Path(__file__).parent / "data"
TINY = dict(lmax=4, channels=4, layers=1, hidden=16, n_radial=8)
BILAYER = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"


@pytest.fixture(scope="module")
def under_trained(tmp_path_factory):
    """A checkpoint after 1 epoch: far above the gate."""
    tmp = tmp_path_factory.mktemp("gate")
    build_dataset([graphene_deeph(tmp)], tmp / "set.h5", split=(0.5, 0.5, 0.0), seed=0, progress=False)
    train(tmp / "set.h5", tmp / "m.pt", model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    return tmp / "m.pt"


def _with_metrics(ckpt, path, val_mae=None, history=None):
    """A copy of a checkpoint with its recorded validation metrics rewritten (None: removed)."""
    d = torch.load(ckpt, weights_only=False)
    if val_mae is None:
        d.pop("metrics")
    else:
        d["metrics"]["val"]["all"]["mae"] = val_mae
    if history is not None:
        d["history"] = history
    torch.save(d, path)
    return path


def test_under_trained_model_warns_once_and_records_its_mae(under_trained):
    mae = load_predictor(under_trained).val_block_mae_meV
    recorded = torch.load(under_trained, weights_only=False)["metrics"]["val"]["all"]["mae"]
    assert mae == recorded and mae > QUALITY_GATE_MEV
    with pytest.warns(QualityWarning) as rec:
        p = predict(under_trained, io.read(BILAYER), fermi_method=None)
    gate = [r for r in rec if issubclass(r.category, QualityWarning)]
    assert len(gate) == 1
    text = str(gate[0].message)
    assert f"validation block MAE {mae:.3g} meV" in text and f"quality gate of {QUALITY_GATE_MEV:g} meV" in text
    assert "eV band errors" in text and "Train longer" in text and "more data" in text
    assert str(under_trained) in text
    assert p.meta["model_val_block_mae_meV"] == mae


def test_good_metrics_pass_the_gate(under_trained, tmp_path):
    good = _with_metrics(under_trained, tmp_path / "good.pt", val_mae=0.8)
    assert load_predictor(good).val_block_mae_meV == 0.8
    with warnings.catch_warnings():
        warnings.simplefilter("error", QualityWarning)
        p = predict(good, io.read(BILAYER), fermi_method=None)
    assert p.meta["model_val_block_mae_meV"] == 0.8


def test_mae_from_the_history_without_final_metrics(under_trained, tmp_path):
    """A checkpoint written during training has a history but no final metrics: its best epoch counts."""
    hist = [{"epoch": 1, "val_mae_meV": 9.0}, {"epoch": 2, "val_mae_meV": 1.5}, {"epoch": 3, "val_mae_meV": 3.0}]
    assert load_predictor(_with_metrics(under_trained, tmp_path / "h.pt", history=hist)).val_block_mae_meV == 1.5
    bare = _with_metrics(under_trained, tmp_path / "bare.pt", history=[])
    assert load_predictor(bare).val_block_mae_meV is None
    with warnings.catch_warnings():
        warnings.simplefilter("error", QualityWarning)      # unknown quality: nothing to hold against the gate
        p = predict(bare, io.read(BILAYER), fermi_method=None)
    assert "model_val_block_mae_meV" not in p.meta


def test_compare_warns_for_a_model_that_fails_the_gate(under_trained, tmp_path, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)
        io.write(tmp_path / "bad.h5", predict(under_trained, BILAYER))
        io.write(tmp_path / "good.h5", predict(_with_metrics(under_trained, tmp_path / "g.pt", val_mae=0.5), BILAYER))
    assert main(["compare", str(tmp_path / "bad.h5"), str(BILAYER), "-o", str(tmp_path / "c1"),
                 "--npoints", "20"]) == 0
    err = capsys.readouterr().err
    # once for the gate (the under-trained model's bands also carry ghost states: a second warning)
    assert err.count("above the quality gate") == 1 and "ghost state" in err
    assert "above the quality gate of 2 meV" in err and "bad.h5" in err and "Train longer" in err
    assert main(["compare", str(tmp_path / "good.h5"), str(BILAYER), "-o", str(tmp_path / "c2"),
                 "--npoints", "20"]) == 0
    assert "quality gate" not in capsys.readouterr().err
