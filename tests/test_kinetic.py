"""The kinetic first stage (hotham.kinetic): T of the PAOs against an independent radial
integral, its symmetry, the physics that motivates it (DFT's H along S's near-null directions is
T's), and a cascade trained on it that predicts bare structures from one checkpoint. The PAO
data come from a shipped model's checkpoint, so no OpenMX files are needed."""
from pathlib import Path

import numpy as np
import pytest
from ase.units import Hartree
from scipy.interpolate import CubicSpline

from hotham import predict
from hotham.cascade import residual_operator
from hotham.checkpoint import load_predictor
from hotham.electronic.hk import hk_sk
from hotham.io import read
from hotham.kinetic import KineticH0, kinetic_blocks
from hotham.overlap import OverlapCalculator
from hotham.train import TrainConfig, train

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
CARBON_MODEL = ROOT / "data" / "models" / "bilayer_graphene.pt"
BILAYER = ROOT / "tests" / "data" / "deeph" / "bilayer_graphene_slid_1x1"


@pytest.fixture(scope="module")
def carbon():
    """(labels, paos) of carbon, from the shipped model's checkpoint."""
    p = load_predictor(CARBON_MODEL, device="cpu")
    return dict(p.basis.labels), p.paos


@pytest.fixture(autouse=True)
def no_openmx_files(monkeypatch):
    monkeypatch.delenv("HOTHAM_OPENMX_DATA", raising=False)


def test_onsite_kinetic_energy_equals_the_radial_integral(carbon):
    """T_aa at d = 0 from the Bessel transforms equals (1/2) int (R'^2 + l(l+1) R^2/r^2) r^2 dr."""
    labels, paos = carbon
    calc = OverlapCalculator(labels, paos=paos, kinetic=True)
    T = calc.blocks("C", "C", np.zeros((1, 3)))[0]
    pao = calc.paos["C"]
    r = np.linspace(pao.r[0], pao.cutoff, 20001)
    off = 0
    for l, mul in calc.basis.shell_list("C"):
        f = CubicSpline(pao.r, pao.radial[l, mul])
        radial = 0.5 * np.trapezoid((f(r, 1) ** 2 + l * (l + 1) * f(r) ** 2 / r ** 2) * r ** 2, r) * Hartree
        assert abs(T[off, off] - radial) < 2e-3, (l, mul, T[off, off], radial)
        assert np.allclose(np.diag(T)[off:off + 2 * l + 1], T[off, off])      # spherical: m-independent
        off += 2 * l + 1
    assert 5 < np.diag(T).min() and np.diag(T).max() < 60            # eV: localised orbitals


def test_kinetic_blocks_are_symmetric_and_vanish_at_the_cutoff_sum(carbon):
    labels, paos = carbon
    calc = OverlapCalculator(labels, paos=paos, kinetic=True)
    rng = np.random.default_rng(0)
    d = rng.normal(size=(20, 3))
    d *= (rng.uniform(0.5, 6.0, 20) / np.linalg.norm(d, axis=1))[:, None]
    np.testing.assert_allclose(calc.blocks("C", "C", d), np.swapaxes(calc.blocks("C", "C", -d), 1, 2), atol=1e-10)
    rc = 2 * calc.cutoff("C")
    near = calc.blocks("C", "C", [[rc - 0.01, 0, 0]])
    assert np.abs(near).max() < 1e-3 and not np.any(calc.blocks("C", "C", [[rc + 0.01, 0, 0]]))


def test_dft_hamiltonian_along_near_null_overlap_is_kinetic(carbon):
    """The physics of the stage, on a real OpenMX bilayer: along S(Gamma)'s smallest eigenvectors
    u, u.H.u / u.S.u is > 100 eV and mostly T's; what is left, u.(H - T).u / u.S.u, is bounded by
    the potential (|.| < 40 eV)."""
    labels, paos = carbon
    op = read(BILAYER / "000")
    T = kinetic_blocks(op, labels, paos=paos)
    Hk, Sk = (m.toarray() for m in hk_sk(op, (0, 0, 0)))
    Tk = hk_sk(op.with_blocks(H=T), (0, 0, 0))[0].toarray()
    s, U = np.linalg.eigh(Sk)
    U = U[:, :4]
    h = np.einsum("ia,ij,ja->a", U.conj(), Hk, U).real / s[:4]
    t = np.einsum("ia,ij,ja->a", U.conj(), Tk, U).real / s[:4]
    assert s[3] < 5e-3
    assert np.all(h > 100) and np.all(t > 100)
    assert np.all(np.abs(h - t) < 40), (h, t)


def test_cascade_on_the_kinetic_stage(dataset, carbon, tmp_path):
    """A network trained on H - T: one checkpoint that carries the PAOs, predicts T + network +
    its on-site baseline, and predicts a bare structure without OpenMX's files."""
    labels, paos = carbon
    out = tmp_path / "kin.pt"
    train(dataset, out, model=TINY, stage1=KineticH0(labels, paos), config=TrainConfig(epochs=2, lr=5e-3),
          log=lambda s: None)
    p = load_predictor(out, device="cpu")
    assert isinstance(p.stage1, KineticH0) and p.paos is not None
    op = read(BILAYER / "000")
    T = kinetic_blocks(op, labels, paos=paos)
    np.testing.assert_allclose(p.stage1.predict_parts(op), T)
    got = p.predict_parts(op)
    assert np.abs(got - T).max() > 0                            # the network and baseline add to T
    # the second stage's baseline is fitted to H - T: its on-site mean
    resid = residual_operator(op, p.stage1)
    onsite = op.onsite_edges()
    assert np.abs(p.baseline.flat(op)).max() > 1.0 and np.abs(resid.H).max() > np.abs(op.H).max() * 0.5
    assert onsite.size
    pred = predict(out, op.atoms)                               # bare structure, carried PAO data
    assert pred.H.shape == op.H.shape and np.isfinite(pred.H).all()


def test_kinetic_stage_from_the_command_line_needs_pao_data(dataset, tmp_path, capsys):
    from hotham.cli import main
    rc = main(["train", str(dataset), "-o", str(tmp_path / "m.pt"), "--stage2-of", "kinetic", "--epochs", "1"])
    err = capsys.readouterr().err
    assert rc != 0 and "HOTHAM_OPENMX_DATA" in err
