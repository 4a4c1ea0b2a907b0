"""Outputs are never replaced without --force (nor an input at all), comparisons of different
structures are refused, and silent surprises (duplicates, hopping-less cutoffs, unconverged runs,
a resume state given as a model, ...) say what they are. The thread count: test_threads.py."""
from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hotham import io
from hotham.cli import main
from hotham.dataset import Dataset, build_dataset
from hotham.errors import HothamError, OutputError
from hotham.files import check_outputs
from hotham.train import TrainConfig, last_state_path, train

from conftest import DATA

TINY = dict(lmax=4, channels=4, layers=1, hidden=8, n_radial=4)
GRAPHENE = DATA / "openmx" / "graphene_prim"
BILAYER = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"


@pytest.fixture(scope="module")
def model(dataset, tmp_path_factory):
    """A one-epoch model of the graphene data set (test_train's ``dataset``)."""
    out = tmp_path_factory.mktemp("model") / "m.pt"
    train(dataset, out, model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    return out


# ------------------------------------------------------------------------------ the overwrite rule
def test_check_outputs_rules(tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    a.write_text("data")
    assert check_outputs([b]) == [b]                                    # a new file: fine
    with pytest.raises(OutputError, match="exists: refusing to overwrite.*--force"):
        check_outputs([a])
    assert check_outputs([a], force=True) == [a]
    with pytest.raises(OutputError, match="also an input"):             # --force does not allow it
        check_outputs([a], force=True, inputs=[tmp_path / "." / "a.h5"])
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs([tmp_path], force=True)


def test_predict_refuses_its_inputs_and_existing_outputs(model, tmp_path, capsys):
    dft = tmp_path / "dft.h5"
    io.write(dft, io.read(BILAYER))
    before = dft.read_bytes()
    for target in (dft, model):            # the DFT reference, the checkpoint: never replaced, --force or not
        assert main(["predict", str(model), str(dft), "-o", str(target), "--force"]) == 2
        assert "also an input" in capsys.readouterr().err
    assert dft.read_bytes() == before and torch.load(model, weights_only=False)["format"] == "hotham-model"
    other = tmp_path / "other.txt"
    other.write_text("not HDF5, and precious")
    assert main(["predict", str(model), str(dft), "-o", str(other)]) == 2
    assert "exists: refusing to overwrite" in capsys.readouterr().err and other.read_text() == "not HDF5, and precious"
    assert main(["predict", str(model), str(dft), "-o", str(other), "--force", "--quiet"]) == 0
    assert io.read(other).n_edges == io.read(dft).n_edges


def test_predict_into_a_read_only_folder_fails_before_predicting(model, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    real_access = os.access
    # root may write anywhere: the test tells the check what an ordinary user would see
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == folder else real_access(p, mode, **kw))

    def never(*a, **k):
        raise AssertionError("the prediction ran before the output was checked")
    monkeypatch.setattr("hotham.prediction.predict", never)
    try:
        assert main(["predict", str(model), str(BILAYER), "-o", str(folder / "p.h5")]) == 2
    finally:
        folder.chmod(0o755)
    assert "cannot write into" in capsys.readouterr().err


def test_electronic_commands_refuse_existing_outputs(tmp_path, capsys):
    pre = tmp_path / "g"
    assert main(["bands", str(GRAPHENE), "-o", str(pre), "--npoints", "6", "--quiet"]) == 0
    stamp = (pre.with_suffix(".png").read_bytes(), pre.with_suffix(".txt").read_text())
    assert main(["bands", str(GRAPHENE), "-o", str(pre), "--npoints", "7", "--quiet"]) == 2
    assert "g.png exists: refusing" in capsys.readouterr().err
    assert (pre.with_suffix(".png").read_bytes(), pre.with_suffix(".txt").read_text()) == stamp
    assert main(["bands", str(GRAPHENE), "-o", str(pre), "--npoints", "7", "--quiet", "--force"]) == 0
    assert pre.with_suffix(".txt").read_text() != stamp[1]
    # numbers as HDF5 onto the input file itself
    h5 = tmp_path / "x.h5"
    io.write(h5, io.read(GRAPHENE))
    assert main(["dos", str(h5), "-o", str(tmp_path / "x"), "--data", "h5", "--mesh", "2", "--force"]) == 2
    assert "also an input" in capsys.readouterr().err


def test_dataset_and_structure_outputs_need_force(tmp_path, capsys):
    out = tmp_path / "set.h5"
    out.write_text("an older set")
    assert main(["dataset", "build", str(BILAYER), "-o", str(out), "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err and out.read_text() == "an older set"
    assert main(["dataset", "build", str(BILAYER), "-o", str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err
    xyz = tmp_path / "tw.extxyz"
    assert main(["structure", "twist", "graphene", "-m", "1", "-n", "2", "-o", str(xyz)]) == 0
    assert main(["structure", "twist", "graphene", "-m", "2", "-n", "3", "-o", str(xyz)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["openmx", "write", str(xyz), "-o", str(tmp_path / "runs")]) == 0
    assert main(["openmx", "write", str(xyz), "-o", str(tmp_path / "runs")]) == 2
    assert "tw.dat exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------ data sets
def test_dataset_build_takes_a_structure_once(tmp_path):
    copy = tmp_path / "copy" / "000"
    shutil.copytree(BILAYER, copy)
    report = build_dataset([BILAYER, BILAYER, copy.parent, DATA / "deeph" / "graphene_mono_2x2"],
                           tmp_path / "set.h5", split=(0.5, 0.5, 0.0), progress=False)
    assert len(report.names) == 2 and len(report.duplicates) == 2
    assert {first for _, first in report.duplicates} == {str(BILAYER.absolute())}
    assert "WARNING: 2 structure(s) given twice" in report.summary()
    ds = Dataset(tmp_path / "set.h5")
    assert sorted(ds.split("train") + ds.split("val")) == sorted(report.names)


def test_cutoff_without_hopping_is_refused(tmp_path):
    with pytest.raises(HothamError, match=r"cutoff 1 A leaves no hopping.*shortest bond is 1\.3"):
        build_dataset([BILAYER], tmp_path / "set.h5", cutoff=1.0, progress=False)
    assert not (tmp_path / "set.h5").exists()


def test_collect_skips_runs_whose_out_says_not_converged(tmp_path, capsys):
    for name, max_iter in (("good", "150"), ("bad", "19")):       # the run took 19 SCF steps
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        shutil.copy(GRAPHENE / "graphene_prim.dat", run / "graphene_prim.dat")
        shutil.copy(GRAPHENE / "graphene_prim.scfout.gz", run / "graphene_prim.scfout.gz")
        text = gzip.open(GRAPHENE / "graphene_prim.out.gz", "rt").read()
        (run / "graphene_prim.out").write_text(text.replace("scf.maxIter                 150",
                                                            f"scf.maxIter                 {max_iter}"))
    assert main(["openmx", "collect", str(tmp_path / "runs"), "-o", str(tmp_path / "set.h5")]) == 0
    text = capsys.readouterr().out
    assert "skipping" in text and "bad" in text and "not_converged" in text
    assert Dataset(tmp_path / "set.h5").sources == [str(tmp_path / "runs" / "good")]


# ------------------------------------------------------------------------------ comparisons
def test_compare_refuses_another_structure(tmp_path, capsys):
    ref = io.read(GRAPHENE)
    moved = ref.copy() if hasattr(ref, "copy") else io.read(GRAPHENE)
    moved.atoms.positions[1] += [0.9, 0.0, 0.0]
    io.write(tmp_path / "moved.h5", moved)
    assert main(["compare", str(tmp_path / "moved.h5"), str(GRAPHENE), "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "not the same structure" in err and "positions differ: atom 1 (C) is 0.900 A" in err
    assert not list(tmp_path.glob("c.*"))
    assert main(["compare", str(DATA / "openmx" / "mos2_prim"), str(GRAPHENE), "-o", str(tmp_path / "d")]) == 2
    assert "species differ" in capsys.readouterr().err
    assert main(["compare", str(DATA / "openmx" / "mos2_prim_soc"), str(DATA / "openmx" / "mos2_prim"),
                 "-o", str(tmp_path / "e")]) == 2
    assert "spin-orbit coupling" in capsys.readouterr().err


# ------------------------------------------------------------------------------ messages
def test_resume_state_given_to_predict_says_what_it_is(model, dataset, tmp_path, capsys):
    out = tmp_path / "m.pt"
    train(dataset, out, model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    assert main(["predict", str(last_state_path(out)), str(BILAYER), "-o", str(tmp_path / "p.h5")]) == 2
    err = capsys.readouterr().err
    assert "training state" in err and "--resume" in err and f"{out}" in err
    # a resume with another architecture names the field
    with pytest.raises(HothamError, match=r"channels 4 \(now 6\)"):
        train(dataset, out, model={**TINY, "channels": 6}, config=TrainConfig(epochs=2), log=lambda s: None,
              resume=True)


def test_config_written_only_by_a_run_that_trained(dataset, tmp_path):
    out = tmp_path / "m.pt"
    config = Path(f"{out}.config.yaml")
    # epochs 0 and lr inf are refused by TrainConfig itself (issue 30: argument checks); a finite
    # learning rate so large that the validation loss diverges stops the run
    for bad in ({"epochs": 0}, {"epochs": 1, "lr": float("inf")}, {"epochs": 1, "lr": 1e30}):
        with pytest.raises((HothamError, ValueError)):
            train(dataset, out, model=TINY, config=TrainConfig(**bad), log=lambda s: None, force=True)
        assert not config.exists() and not out.exists()
    train(dataset, out, model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    assert "epochs: 1" in config.read_text()
    train(dataset, out, model=TINY, config=TrainConfig(epochs=2), log=lambda s: None, resume=True)
    assert "epochs: 2" in config.read_text()


def test_empty_validation_split_gives_no_validation_mae(tmp_path):
    from hotham.checkpoint import load_predictor
    from hotham.prediction import QualityWarning, predict
    ds = tmp_path / "set.h5"
    build_dataset([BILAYER], ds, split=(1.0, 0.0, 0.0), progress=False)
    said = []
    result = train(ds, tmp_path / "m.pt", model=TINY, config=TrainConfig(epochs=1), log=said.append)
    assert any("validation split is empty" in s for s in said) and result["validated_on"] == "train"
    pred = load_predictor(tmp_path / "m.pt")
    assert pred.val_block_mae_meV is None           # not the training MAE
    with pytest.warns(QualityWarning, match="empty validation split"):
        predict(pred, io.read(BILAYER), fermi_method=None)


def test_soc_data_and_foreign_basis_labels_are_named(model):
    from hotham.basis import Basis
    from hotham.prediction import BasisWarning, predict
    from hotham.soc import join_spinor
    op = io.read(BILAYER)
    soc = op.with_blocks(H=join_spinor(op, op.H, np.zeros((3, op.nnz))), S=op.S, spin="soc")
    with pytest.warns(BasisWarning, match="drops spin-orbit coupling"):
        predict(model, soc, fermi_method=None)
    # DFT data labelled C7.0 against a C6.0 model: its S cannot carry the model's H
    op.basis = Basis(op.basis.shells, {"C": "C7.0-s2p2d1"})
    with pytest.raises(HothamError, match="C: C7.0-s2p2d1 here, C6.0-s2p2d1 in the model"):
        predict(model, op, fermi_method=None)


def test_dat_with_another_basis_warns(model, tmp_path, monkeypatch):
    """A bare OpenMX input labelled C7.0 given to a C6.0 model: predicted in the model's basis, said."""
    from hotham.prediction import BasisWarning, predict
    text = (DATA / "openmx_inputs" / "graphene_prim.dat").read_text()
    (tmp_path / "g.dat").write_text(text.replace("C6.0-s2p2d1      C_PBE19", "C7.0-s2p2d1      C_PBE19"))

    def stop(*a, **k):                     # the overlap would need the PAO files: stop before it
        raise KeyboardInterrupt
    monkeypatch.setattr("hotham.prediction._bare_structure", stop)
    with pytest.warns(BasisWarning, match="C: C7.0-s2p2d1 here, C6.0-s2p2d1 in the model"), \
            pytest.raises(KeyboardInterrupt):
        predict(model, tmp_path / "g.dat")


def test_xyz_without_cell_warns_that_it_is_a_cluster(tmp_path):
    f = tmp_path / "mol.xyz"
    f.write_text("2\n\nC 0 0 0\nC 1.42 0 0\n")
    with pytest.warns(UserWarning, match="no cell.*cluster"):
        io.read_structure(f)


# ------------------------------------------------------------------------------ examples
def test_examples_write_into_the_current_folder(tmp_path, monkeypatch):
    root = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(root / "examples"))
    monkeypatch.chdir(tmp_path)
    import transfer
    args = transfer.arguments("doc", "mos2_bilayer.pt", "twisted_mos2", argv=["--quick", "--threads", "1"])
    assert args.out.resolve() == tmp_path / "twisted_mos2"
    args = transfer.arguments("doc", "mos2_bilayer.pt", "twisted_mos2", argv=["--update-pictures", "--threads", "1"])
    assert args.out == root / "examples" / "pictures" / "twisted_mos2"


def test_collinear_against_spinless_needs_a_channel():
    """A spin-polarised operator against a spin-less one: refused without a channel, naming the
    option; with one, compared."""
    from hotham.electronic.compare import check_comparable
    from hotham.io import read
    col = read(DATA / "openmx" / "graphene_prim_spin")
    plain = read(DATA / "openmx" / "graphene_prim")
    if col.spin != "collinear":
        raise AssertionError(f"expected a collinear run, got {col.spin}")
    with pytest.raises(HothamError, match="--channel 0 for spin up"):
        check_comparable(col, plain)
    check_comparable(col, plain, channel=0)
