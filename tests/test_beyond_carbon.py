"""Physics of the shipped graphene/hBN and MoS2 models on held-out DFT cells (test split of their
recipes, examples/train_model.py): the gaps the model gives match those of OpenMX's blocks.

Each cell is predicted on its DFT blocks (H from the model, S from DFT), and both sides are
diagonalised on the same k-points, every band; the valence bands are the lowest electrons / 2.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import hotham
import hotham.electronic as el
import hotham.io
from hotham.errors import HothamError
from hotham.prediction import DomainWarning, QualityWarning

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "data" / "models"
DEEPH = Path(__file__).parent / "data" / "deeph"
#: meV: how far a model's gap may lie from DFT's (10 meV for the models before issue 25). The MoS2
#: bilayer model, retrained for strained 2H and parallel bilayers (issue 25), puts this slid
#: bilayer's indirect gap 29 meV above DFT's; the model before it was within 10 meV here but 999
#: meV off in band MAE at -3 % strain (benchmarks/RESULTS.md, robustness)
MOS2_GAP_TOLERANCE_MEV = 35.0
#: meV, the graphene/hBN model: fine-tuned with strained cells (issue 25), it puts this slid cell's
#: gap at K 15.6 meV above DFT's (0.253 against 0.237 eV); the model before it was within 10 meV
#: here but had ghost states at -3 and +3 % strain (band MAE 575 and 2275 meV, RESULTS robustness)
GRAPHENE_HBN_GAP_TOLERANCE_MEV = 20.0


def _model_and_dft(model: str, cell: str):
    dft = hotham.io.read(DEEPH / cell)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainWarning)          # the held-out cell lies in the training domain
        warnings.simplefilter("ignore", QualityWarning)        # the gaps below are the check here
        pred = hotham.predict(MODELS / model, dft, fermi_method=None)
    return pred, dft


def test_mos2_bilayer_indirect_gap_matches_dft():
    """Held-out slid MoS2 bilayer (mos2_bilayer_slid_1x1/001): indirect gap from the VBM at Gamma to a
    conduction valley at K (DFT) or between Gamma and K (the two valleys lie within tens of meV)."""
    pred, dft = _model_and_dft("mos2_bilayer.pt", "mos2_bilayer_slid_1x1/001")
    kp = el.band_path(dft.atoms, "GMKG", 120)
    n_occ = el.occupied_bands(dft)
    gaps = [el.band_gap(el.eigenvalues(op, kp.kpts), n_occupied=n_occ) for op in (dft, pred)]
    for g in gaps:
        assert g.indirect and np.allclose(kp.kpts[g.k_vbm], 0)
    assert np.allclose(kp.kpts[gaps[0].k_cbm], [1 / 3, 1 / 3, 0])
    assert 1.0 < gaps[0].gap < 1.7                                   # PBE, bilayer: below the monolayer's 1.78 eV
    assert abs(gaps[1].gap - gaps[0].gap) * 1000 < MOS2_GAP_TOLERANCE_MEV


def test_graphene_hbn_gap_at_k_matches_dft():
    """Held-out slid graphene/hBN cell (graphene_hbn_slid_1x1/001): hBN breaks graphene's sublattice
    symmetry and opens a gap at K; the model's equals DFT's."""
    pred, dft = _model_and_dft("graphene_hbn.pt", "graphene_hbn_slid_1x1/001")
    K = [[1 / 3, 1 / 3, 0.0]]
    n_occ = el.occupied_bands(dft)
    gap_dft, gap_model = (el.band_gap(el.eigenvalues(op, K), n_occupied=n_occ).gap for op in (dft, pred))
    assert 0.01 < gap_dft < 0.5                                      # tens to hundreds of meV, not zero
    assert abs(gap_model - gap_dft) * 1000 < GRAPHENE_HBN_GAP_TOLERANCE_MEV


@pytest.mark.parametrize("model, cell", [("mos2_bilayer.pt", "mos2_bilayer_slid_1x1/001"),
                                         ("graphene_hbn.pt", "graphene_hbn_slid_1x1/001")])
def test_predict_counts_the_fermi_level_above_the_threshold(model, cell, monkeypatch):
    """hotham.predict finds E_F at any size: above DENSE_FERMI_MAX (lowered here below the cell's
    orbitals) by counting bands by inertia, the same E_F as all bands on the same automatic mesh
    (MoS2: the middle of the gap; graphene/hBN: Fermi-Dirac, the gap at K below GAP_KT kT)."""
    import hotham.electronic.fermi as fermi
    dft = hotham.io.read(DEEPH / cell)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QualityWarning)
        dense = hotham.predict(MODELS / model, dft, fermi_method="dense")
        monkeypatch.setattr(fermi, "DENSE_FERMI_MAX", dft.n_orbitals - 1)
        counted = hotham.predict(MODELS / model, dft)
    assert "dense" in dense.meta["fermi_level_method"]
    assert "counting" in counted.meta["fermi_level_method"], counted.meta["fermi_level_method"]
    assert counted.fermi_level == pytest.approx(dense.fermi_level, abs=1e-6)
    with pytest.raises(HothamError, match="fermi_method"):
        hotham.predict(MODELS / model, dft, fermi_method="bisect")


def test_band_gap_reads_edges_from_a_window_or_the_electron_count():
    E = np.array([[-1.0, -0.2, 0.5, 1.0], [-0.9, -0.1, 0.3, 1.1]])   # VBM at k 1, CBM at k 1
    g = el.band_gap(E, n_occupied=2)
    assert g.gap == pytest.approx(0.4) and not g.indirect and g.direct_gap == pytest.approx(0.4)
    E[1, 2] = 0.6                                                   # CBM moves to k 0: indirect
    g = el.band_gap(E, fermi=0.0)
    assert g.gap == pytest.approx(0.6) and g.indirect and (g.k_vbm, g.k_cbm) == (1, 0)
    assert g.direct_gap == pytest.approx(0.7)
    with pytest.raises(HothamError, match="one side"):
        el.band_gap(E, fermi=2.0)


def test_dos_of_the_states_nearest_an_energy_equals_the_full_dos_there():
    """dos(n=..., around=...) (large cells: the sparse solver's window) is the full DOS wherever the window's
    states cover every k-point."""
    op = hotham.io.read(DEEPH / "graphene_hbn_slid_1x1" / "001")
    ef = el.find_fermi_level(op, (6, 6, 1))
    grid = np.linspace(ef - 0.4, ef + 0.4, 81)
    full = el.dos(op, (6, 6, 1), width=0.05, energies=grid, fermi=ef)
    part = el.dos(op, (6, 6, 1), width=0.05, energies=grid, n=8, around=ef)
    window = part.levels
    assert part.fermi_level == ef and window.shape[1] == 8
    inside = (grid > window.min(1).max() + 0.3) & (grid < window.max(1).min() - 0.3)     # 6 widths from the edges
    assert inside.sum() > 10
    np.testing.assert_allclose(part.total[inside], full.total[inside], rtol=1e-6, atol=1e-9)
