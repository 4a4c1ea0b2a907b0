"""Self-contained models: a checkpoint carries the PAO radial functions of its basis
(hotham.checkpoint.embed_basis), so the overlap S of a bare structure needs no OpenMX files.

The tests marked with the ``openmx_data`` fixture compare with OpenMX's PAO files and skip
without them; the others run on a bare clone, with ``$HOTHAM_OPENMX_DATA`` unset."""
from pathlib import Path

import numpy as np
import pytest
import torch

import hotham
from hotham import io
from hotham.checkpoint import embed_basis, load_predictor
from hotham.cli import main
from hotham.errors import FormatError
from hotham.overlap import overlap_operator
from hotham.parsers.openmx import pao as pao_mod

MODELS = Path(__file__).resolve().parents[1] / "data" / "models"
TBG = Path(__file__).resolve().parents[1] / "data" / "tbg_21.79"


@pytest.fixture
def no_openmx_data(monkeypatch):
    """A machine without OpenMX: $HOTHAM_OPENMX_DATA unset (tests/conftest.py may have set it)."""
    monkeypatch.delenv(pao_mod.DATA_ENV, raising=False)


def _without_pao(src, dst) -> Path:
    ckpt = torch.load(src, weights_only=False)
    ckpt.pop("pao")
    torch.save(ckpt, dst)
    return Path(dst)


@pytest.mark.parametrize("name", ["bilayer_graphene", "graphene_hbn", "mixed", "mos2_bilayer", "mos2_soc"])
def test_every_shipped_model_carries_its_basis(name):
    p = load_predictor(MODELS / f"{name}.pt", device="cpu")
    assert set(p.paos) == set(p.basis.labels) == set(p.basis.shells)
    for sym, pao in p.paos.items():
        assert pao.name == pao_mod.pao_name(p.basis.labels[sym])
        assert pao.valence == p.info["valence_electrons"][sym]
        assert 0 < pao.cutoff <= pao.r[-1]
        for l, mul in p.basis.shell_list(sym):        # every shell of the basis, and no more
            assert np.abs(pao.function(l, mul)).max() > 0
        assert pao.radial.shape[0] == max(p.basis.shells[sym]) + 1


def test_embedded_overlap_equals_the_files(openmx_data, tmp_path, monkeypatch):
    """S from the data a re-embedded checkpoint carries is S from OpenMX's files, bit for bit
    (MoS2: Mo s3p2d2, S s2p2d1, a slid bilayer with its DFT edges)."""
    ckpt = embed_basis(_without_pao(MODELS / "mos2_bilayer.pt", tmp_path / "m.pt"), openmx_data)
    assert ckpt["species"] == ["Mo", "S"] and ckpt["bytes_after"] > ckpt["bytes_before"]
    p = load_predictor(tmp_path / "m.pt", device="cpu")
    atoms = io.read(Path(__file__).parent / "data" / "deeph" / "mos2_bilayer_slid_1x1" / "000").atoms
    from_files = overlap_operator(atoms, p.basis.labels, openmx_data=openmx_data)
    monkeypatch.delenv(pao_mod.DATA_ENV, raising=False)
    embedded = overlap_operator(atoms, p.basis.labels, paos=p.paos)
    assert np.array_equal(embedded.edge_R, from_files.edge_R) and np.array_equal(embedded.S, from_files.S)
    # the files, when named, override what the model carries
    monkeypatch.setenv(pao_mod.DATA_ENV, str(openmx_data))
    assert np.array_equal(overlap_operator(atoms, p.basis.labels, paos=p.paos).S, from_files.S)


def test_shipped_model_predicts_a_bare_structure_without_openmx(no_openmx_data, tmp_path):
    """The main job on a machine without OpenMX: a structure file alone, S from the data the
    shipped model carries; it equals OpenMX's own S of the same cell to OpenMX's integration
    error, on OpenMX's edges."""
    from ase.io import write as ase_write
    dft = io.read(TBG)
    ase_write(tmp_path / "tbg.extxyz", dft.atoms, format="extxyz")
    assert main(["predict", str(MODELS / "bilayer_graphene.pt"), str(tmp_path / "tbg.extxyz"), "-o",
                 str(tmp_path / "p.h5"), "--quiet"]) == 0
    pred = io.read(tmp_path / "p.h5")
    assert pred.n_edges == dft.n_edges and np.isfinite(pred.fermi_level)
    e = np.array([pred.find_edge(i, j, R) for i, j, R in zip(dft.edge_i, dft.edge_j, dft.edge_R)])
    assert np.abs(pred.S[np.concatenate([np.arange(pred.offsets[k], pred.offsets[k + 1]) for k in e])]
                  - dft.S).max() < 1e-5


def test_a_model_without_pao_data_says_how_to_add_it(no_openmx_data, tmp_path):
    path = _without_pao(MODELS / "bilayer_graphene.pt", tmp_path / "old.pt")
    atoms = io.read(TBG).atoms
    with pytest.raises(pao_mod.OpenMXDataNotFound, match="embed-basis"):
        hotham.predict(path, atoms, fermi_method=None)
    before = path.read_bytes()
    assert main(["model", "embed-basis", str(path)]) == 2          # no files to read: nothing written
    assert path.read_bytes() == before and not list(tmp_path.glob(".tmp*"))


def test_cli_embed_basis(openmx_data, tmp_path, capsys):
    path = _without_pao(MODELS / "graphene_hbn.pt", tmp_path / "gh.pt")
    assert main(["model", "embed-basis", str(path), "--openmx-data", str(openmx_data), "-o",
                 str(tmp_path / "out.pt")]) == 0
    assert "B, C, N embedded" in capsys.readouterr().out
    assert load_predictor(path, device="cpu").paos is None                  # -o leaves the input alone
    carried = load_predictor(tmp_path / "out.pt", device="cpu").paos
    shipped = load_predictor(MODELS / "graphene_hbn.pt", device="cpu").paos
    for s in "BCN":
        assert np.array_equal(carried[s].radial, shipped[s].radial) and carried[s].cutoff == shipped[s].cutoff


def test_malformed_embedded_data_names_the_checkpoint(tmp_path):
    ckpt = torch.load(MODELS / "bilayer_graphene.pt", weights_only=False)
    ckpt["pao"]["C"]["radial"] = ckpt["pao"]["C"]["radial"][:, :, :10]
    torch.save(ckpt, tmp_path / "bad.pt")
    with pytest.raises(FormatError, match=r"bad\.pt.*C6\.0"):
        load_predictor(tmp_path / "bad.pt", device="cpu").paos


def test_fine_tuning_carries_the_pao_data_of_the_model_it_starts_from(dataset, no_openmx_data, tmp_path):
    """Without OpenMX's files a fine-tuned model takes the PAO data of the model it starts from
    (init), so it still predicts bare structures; a model trained from scratch there has none."""
    from hotham.train import TrainConfig, train
    quiet = lambda line: None                                           # noqa: E731
    train(dataset, tmp_path / "ft.pt", init=MODELS / "bilayer_graphene.pt", config=TrainConfig(epochs=1), log=quiet)
    carried = torch.load(tmp_path / "ft.pt", weights_only=False)["pao"]
    shipped = torch.load(MODELS / "bilayer_graphene.pt", weights_only=False)["pao"]
    assert sorted(carried) == ["C"] and torch.equal(carried["C"]["radial"], shipped["C"]["radial"])
    train(dataset, tmp_path / "new.pt", model={"lmax": 1, "channels": 2, "layers": 1}, config=TrainConfig(epochs=1),
          log=quiet)
    assert "pao" not in torch.load(tmp_path / "new.pt", weights_only=False)
