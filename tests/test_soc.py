"""Spin-orbit coupling: L matrices, the split of DFT spinor blocks, and the exact symmetries of
the SOC model (rotation by D^{1/2} (x) D^l, inversion, time reversal, Hermiticity)."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from hotham import io, so3
from hotham.baseline import OnsiteBaseline
from hotham.checkpoint import Predictor
from hotham.nn.model import HotHam, HotHamConfig
from hotham.electronic.gap import valence_splitting
from hotham.soc import angular_momentum, join_spinor, real_parts, soc_split_report, split_spinor

from conftest import DATA

SOC_DEEPH = DATA / "deeph" / "mos2_soc_1x1" / "002"
SOC_OPENMX = DATA / "openmx" / "mos2_prim_soc"

S3 = math.sqrt(3)
# <m'| L_a |m> (row m', column m) of the real harmonics, from L = -i r x grad on their polynomials:
# p = (y, z, x); d = (xy, yz, (3z^2 - r^2) / (2 sqrt3), xz, (x^2 - y^2) / 2) times one normalisation.
# e.g. L_z x = -i (x d_y - y d_x) x = i y, so <y|L_z|x> = i; L_x yz = -i (y^2 - z^2) = i sqrt3 d_z2 + i d_x2y2.
D_ANALYTIC = np.zeros((3, 5, 5), dtype=complex)
XY, YZ, Z2, XZ, X2Y2 = range(5)
for a, ket, bra, value in [
        (0, XY, XZ, 1j), (0, XZ, XY, -1j), (0, YZ, Z2, 1j * S3), (0, YZ, X2Y2, 1j), (0, Z2, YZ, -1j * S3),
        (0, X2Y2, YZ, -1j),
        (1, XY, YZ, -1j), (1, YZ, XY, 1j), (1, XZ, Z2, -1j * S3), (1, XZ, X2Y2, 1j), (1, Z2, XZ, 1j * S3),
        (1, X2Y2, XZ, -1j),
        (2, XZ, YZ, 1j), (2, YZ, XZ, -1j), (2, XY, X2Y2, -2j), (2, X2Y2, XY, 2j)]:
    D_ANALYTIC[a, bra, ket] = value


def test_angular_momentum_matches_the_analytic_p_and_d_matrices():
    Y, Z, X = range(3)
    p = np.zeros((3, 3, 3), dtype=complex)
    for a, ket, bra, value in [(0, Y, Z, 1j), (0, Z, Y, -1j), (1, Z, X, 1j), (1, X, Z, -1j),
                               (2, X, Y, 1j), (2, Y, X, -1j)]:
        p[a, bra, ket] = value
    assert np.abs(angular_momentum(1) - p).max() < 1e-12
    assert np.abs(angular_momentum(2) - D_ANALYTIC).max() < 1e-12
    for l in range(4):          # the algebra: [L_x, L_y] = i L_z and L^2 = l (l + 1)
        L = angular_momentum(l)
        assert np.abs(L[0] @ L[1] - L[1] @ L[0] - 1j * L[2]).max() < 1e-12
        assert np.abs(np.einsum("aij,ajk->ik", L, L) - l * (l + 1) * np.eye(2 * l + 1)).max() < 1e-12


def test_dft_spinor_blocks_split_into_a_real_spinless_and_an_imaginary_soc_part():
    for path in (SOC_DEEPH, SOC_OPENMX):
        op = io.read(path)
        A, B = split_spinor(op)
        # time reversal: Im A and Re B vanish up to OpenMX's numerical noise
        assert np.abs(A.imag).max() < 1e-8 and np.abs(B.real).max() < 1e-8
        assert np.abs(join_spinor(op, A.real, B.imag) - op.H).max() < 1e-8
        assert np.allclose(real_parts(op), np.concatenate([A.real[None], B.imag]))
        rep = soc_split_report([op])
        assert rep["tr_odd"] < 1e-9
        # HamGNN's xi L.sigma holds the on-site SOC, not the hopping one (the reason for the vector head)
        assert rep["xi_fit"]["onsite"]["residual"] < 0.01 < 0.5 < rep["xi_fit"]["hopping"]["residual"]
        assert rep["onsite_xi_eV"]["Mo"]["d1-d1"] > rep["onsite_xi_eV"]["S"]["p1-p1"] > 0


def test_valence_splitting_matches_openmx_band_file():
    op = io.read(SOC_OPENMX)
    kpts, eig, _ = io.read_openmx_band(next(SOC_OPENMX.glob("*.Band")))
    k = int(np.argmin(np.abs(kpts - [1 / 3, 1 / 3, 0]).sum(axis=1)))
    assert np.abs(kpts[k] - [1 / 3, 1 / 3, 0]).max() < 1e-6
    n = 26                                  # Mo 14 + 2 x S 6 valence electrons, one per spinor band
    assert valence_splitting(op) == pytest.approx(eig[0, k, n - 1] - eig[0, k, n - 2], abs=1e-6)


@pytest.fixture(scope="module")
def soc_case():
    """(DFT operator, SOC predictor with random float64 weights, its prediction) of mos2_prim_soc."""
    from hotham.so3 import float64_default
    op = io.read(SOC_OPENMX)
    torch.manual_seed(0)
    with float64_default(), warnings.catch_warnings():
        warnings.simplefilter("ignore")             # L = 3 drops the highest irreps of d-d blocks
        model = HotHam(HotHamConfig.from_basis(op.basis, lmax=3, channels=4, layers=1, spin="soc",
                                               r_cut=float(op.edge_lengths().max()) + 0.5)).double()
        for p in model.parameters():               # random weights, biases included
            torch.nn.init.normal_(p, std=0.3)
        baseline = OnsiteBaseline.fit([op])
        # the on-site xi L.sigma baseline is part of the prediction: shifted so that every shell
        # pair carries some (a broken L shows up whatever the fit gives)
        baseline.soc = {s: [(a, b, c + 0.05) for a, b, c in v] for s, v in baseline.soc.items()}
        assert sum(len(v) for v in baseline.soc.values()) >= 6
        predictor = Predictor(model, baseline, "H")
        yield op, predictor, _predicted(predictor, op)


def _predicted(predictor, op):
    return op.with_blocks(H=predictor.predict_blocks(op), spin="soc")


@pytest.mark.parametrize("improper", [False, True])
def test_soc_model_is_exactly_su2_equivariant(soc_case, float64, improper):
    """Predicting the rotated structure = rotating the prediction by D^{1/2}(Q) (x) D^l(Q);
    improper Q adds inversion (spin is a pseudovector: only the orbital parity enters)."""
    op, predictor, pred = soc_case
    assert np.abs(pred.H).max() > 0.1 and np.abs(split_spinor(pred)[1]).max() > 1e-3
    Q = so3.random_rotation(np.random.default_rng(int(improper)), improper=improper)
    a = _predicted(predictor, so3.rotate_operator(op, Q)).H
    b = so3.rotate_operator(pred, Q).H
    assert np.abs(a - b).max() / np.abs(b).max() < 1e-9


def test_soc_model_is_exactly_hermitian_and_time_reversal_invariant(soc_case):
    pred = soc_case[2]
    assert pred.hermiticity_error() == 0.0
    # Theta H Theta^-1 with Theta = i sigma_y K, block by block (spin-major)
    isy = np.array([[0.0, 1.0], [-1.0, 0.0]])
    flipped = np.empty_like(pred.H)
    for e in range(pred.n_edges):
        ni, nj = pred.block_shapes[e]
        Ti, Tj = np.kron(isy, np.eye(ni)), np.kron(isy, np.eye(nj))
        flipped[4 * pred.offsets[e]:4 * pred.offsets[e + 1]] = (Ti @ pred.h_block(e).conj() @ Tj.T).ravel()
    assert np.abs(flipped - pred.H).max() <= 1e-15 * np.abs(pred.H).max()
    # and the same operation does change an operator that breaks time reversal
    magnetic = pred.H.copy()
    magnetic[0] += 0.1j                              # an imaginary spin-less part
    assert np.abs(magnetic - flipped).max() > 0.05


def test_soc_model_trains_and_predicts_spinor_operators(tmp_path):
    from hotham import predict
    from hotham.dataset import build_dataset
    from hotham.train import TrainConfig, TrainingError, train
    build_dataset([SOC_DEEPH, SOC_OPENMX], tmp_path / "set.h5", split=(0.5, 0.5, 0.0), seed=0, spin="soc",
                  progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train(tmp_path / "set.h5", tmp_path / "m.pt", model={"lmax": 2, "channels": 4, "layers": 1},
                    config=TrainConfig(epochs=1, seed=0), log=lambda s: None)
        part = res["val"]["part"]
        assert part["real"]["mae"] > 0 and part["imag"]["mae"] > 0 and part["real"]["n"] == part["imag"]["n"]
        op = io.read(SOC_OPENMX)
        pred = predict(tmp_path / "m.pt", op, fermi_method=None)
    assert pred.spin == "soc" and pred.H.dtype == np.complex128 and pred.hermiticity_error() == 0.0
    A, B = split_spinor(pred)
    assert np.abs(A.imag).max() == 0.0 and np.abs(B.real).max() == 0.0
    # the on-site xi L.sigma baseline carries the DFT's on-site SOC: the Mo d SOC splitting is there
    # even after one epoch (a model without SOC has none)
    assert valence_splitting(pred) > 0.05
    with pytest.raises(TrainingError, match="band-energy loss"):
        train(tmp_path / "set.h5", tmp_path / "b.pt", model={"lmax": 2, "channels": 4, "layers": 1},
              config=TrainConfig(epochs=1, band_weight=0.1), log=lambda s: None)


def test_soc_weight_scales_the_spin_orbit_rows_of_the_loss(tmp_path):
    """soc_weight multiplies the errors of the rows M_x, M_y, M_z (not A) in the block loss, the
    one that is trained and validated; the reported MAE stays unweighted; spin-less data refuse it."""
    from hotham.dataset import build_dataset
    from hotham.train import TrainConfig, TrainingError, _loss, train
    target = torch.zeros(4, 6)
    target[1:] = 0.01                                                   # errors on the SOC rows only
    w = torch.tensor([1.0, 10.0, 10.0, 10.0])[:, None]
    assert _loss(torch.zeros(4, 6), target, w).item() == pytest.approx(10 * _loss(torch.zeros(4, 6), target).item())
    target[:] = 0.0
    target[0] = 0.01                                                    # errors on A only: unchanged
    assert _loss(torch.zeros(4, 6), target, w).item() == pytest.approx(_loss(torch.zeros(4, 6), target).item())
    build_dataset([SOC_DEEPH, SOC_OPENMX], tmp_path / "set.h5", split=(0.5, 0.5, 0.0), seed=0, spin="soc",
                  progress=False)
    tiny, runs = {"lmax": 2, "channels": 4, "layers": 1}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for weight in (1.0, 30.0):
            runs[weight] = train(tmp_path / "set.h5", tmp_path / f"m{weight:g}.pt", model=tiny,
                                 config=TrainConfig(epochs=1, seed=0, soc_weight=weight), log=lambda s: None)
    assert runs[30.0]["history"][0]["val_loss"] > runs[1.0]["history"][0]["val_loss"]
    assert torch.load(tmp_path / "m30.pt", weights_only=False)["train_config"]["soc_weight"] == 30.0
    build_dataset([DATA / "openmx" / "mos2_prim"], tmp_path / "plain.h5", split=(1.0, 0.0, 0.0), progress=False)
    with pytest.raises(TrainingError, match="soc_weight"):
        train(tmp_path / "plain.h5", tmp_path / "p.pt", model=tiny, config=TrainConfig(epochs=1, soc_weight=10.0),
              log=lambda s: None)


def test_soc_cascade_over_a_spinless_model(tmp_path):
    """A SOC second stage over a spin-less first stage (how the shipped mos2_soc.pt is made): the
    first stage gives the spin-less part A, the network the rest; a prediction on a spin-less
    operator (as a bare structure's skeleton is) equals the one on the DFT's spinor blocks (no A
    leaks into the SOC part), and a SOC first stage under a spin-less data set is refused."""
    from hotham import predict
    from hotham.checkpoint import load_predictor
    from hotham.dataset import build_dataset
    from hotham.errors import HothamError
    from hotham.train import TrainConfig, train
    tiny, quiet = {"lmax": 2, "channels": 4, "layers": 1}, (lambda s: None)
    build_dataset([DATA / "openmx" / "mos2_prim"], tmp_path / "plain.h5", split=(1.0, 0.0, 0.0), progress=False)
    build_dataset([SOC_DEEPH, SOC_OPENMX], tmp_path / "soc.h5", split=(0.5, 0.5, 0.0), seed=0, spin="soc",
                  progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(tmp_path / "plain.h5", tmp_path / "s1.pt", model=tiny, config=TrainConfig(epochs=2, seed=0), log=quiet)
        train(tmp_path / "soc.h5", tmp_path / "soc.pt", model=tiny, stage1=tmp_path / "s1.pt",
              config=TrainConfig(epochs=1, seed=0), log=quiet)
        both, first = load_predictor(tmp_path / "soc.pt"), load_predictor(tmp_path / "s1.pt")
        op = io.read(SOC_OPENMX)
        parts = both.predict_parts(op)                                   # [4, nnz]: A, M_x, M_y, M_z
        assert both.spin == "soc" and parts.shape == (4, op.nnz)
        alone = Predictor(both.model, both.baseline, "H", {}).predict_parts(op)
        np.testing.assert_allclose(parts[0], alone[0] + first.predict_parts(op), atol=1e-10)
        np.testing.assert_allclose(parts[1:], alone[1:], atol=1e-10)   # the first stage has no SOC part
        # the spin-less DFT run of the same cell: a spin-less operator under the SOC model, as the
        # skeleton of a bare structure is (its S from the run, so no PAO files are needed)
        pred = predict(tmp_path / "soc.pt", io.read(DATA / "openmx" / "mos2_prim"), fermi_method=None)
    A, B = split_spinor(pred)
    ref = op.with_blocks(H=join_spinor(op, parts[0], parts[1:]))
    from hotham.electronic.compare import block_mae
    same = block_mae(pred, ref)
    # the same blocks to float32 round-off (meV); the first stage's A added to M was tens of eV off
    assert same["n_blocks"] == op.n_edges and same["max"] < 1.0
    assert np.abs(B.imag).max() < 1.0 < np.abs(A.real).max()
    with pytest.raises(HothamError, match="first stage is a SOC model"):
        train(tmp_path / "plain.h5", tmp_path / "x.pt", model=tiny, stage1=tmp_path / "soc.pt",
              config=TrainConfig(epochs=1), log=quiet)


def test_spin_texture_of_mos2_at_k_is_out_of_plane_and_reversed_at_minus_k():
    """The spin-orbit split top valence bands of MoS2 at K are spin up and down along z (the
    mirror plane of the layer), and time reversal flips them at K' = -K."""
    from hotham.electronic import states
    op = io.read(SOC_OPENMX)
    K = [1 / 3, 1 / 3, 0]
    st = states(op, [K, [-x for x in K]], bands=[24, 25])      # the two top valence bands (26 electrons)
    s = st.spin                                                  # [k, band, (x, y, z)]
    assert s.shape == (2, 2, 3)
    assert np.abs(s[..., :2]).max() < 1e-3 and np.all(np.abs(s[..., 2]) > 0.9)
    assert s[0, 0, 2] * s[0, 1, 2] < 0                           # the split pair: opposite spins
    assert np.allclose(s[1], -s[0], atol=1e-6)                   # Kramers partners at -K
    assert states(io.read(DATA / "openmx" / "mos2_prim"), [K], bands=[12]).spin is None


def test_compare_a_soc_prediction_with_the_openmx_run(soc_case, tmp_path):
    from hotham.electronic.result_files import write_comparison
    op, _, pred = soc_case
    io.write(tmp_path / "pred.h5", pred)
    summary = write_comparison(tmp_path / "pred.h5", SOC_OPENMX, tmp_path / "cmp", npoints=8, mesh=(2, 2, 1))
    assert "imaginary" in summary
    import json
    out = json.loads((tmp_path / "cmp.json").read_text())
    blocks = out["H_blocks"]
    assert blocks["real_mae"] > 0 and blocks["imag_mae"] > 0 and blocks["mae"] > 0
    assert np.isfinite(out["bands"]["mae_meV"])
