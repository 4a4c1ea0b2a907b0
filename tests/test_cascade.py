"""Cascaded models (hotham.cascade): the Slater-Koster H0 (equivariant, exactly Hermitian, fits
a two-centre operator exactly), second-stage training on a network or on H0, one checkpoint
holding both stages, old single-stage checkpoints, the CLI flag and the YAML key."""
import numpy as np
import pytest
import torch

from hotham import predict
from hotham.cascade import SlaterKosterH0, StageOffset, residual_scale
from hotham.checkpoint import CHECKPOINT_VERSION, load_predictor
from hotham.cli import main
from hotham.dataset import Dataset
from hotham.errors import FormatError
from hotham.so3 import random_rotation, rotate_operator
from hotham.train import TrainConfig, train

from conftest import TINY, mos2_op, random_operator


def _random_h0(op, seed=0):
    """An H0 fitted to a random operator, then given random two-centre coefficients."""
    h0 = SlaterKosterH0.fit([random_operator(op.atoms, op.basis, seed=seed)])
    rng = np.random.default_rng(seed)
    h0.hopping = {k: rng.normal(size=len(v)).tolist() for k, v in h0.hopping.items()}
    return h0


def test_slater_koster_h0_is_equivariant_and_hermitian():
    op = mos2_op()
    h0 = _random_h0(op)
    H = h0.predict_parts(op)
    guess = op.with_blocks(H=H, spin="none")
    assert guess.hermiticity_error() == 0.0
    assert np.abs(H).max() > 1e-2
    rng = np.random.default_rng(1)
    for improper in (False, True):
        Q = random_rotation(rng, improper=improper)
        got = h0.predict_parts(rotate_operator(op, Q))
        want = rotate_operator(guess, Q).H
        assert np.abs(got - want).max() < 1e-9 * np.abs(want).max()


def test_slater_koster_fit_recovers_a_two_centre_operator():
    """Blocks made of two-centre integrals (with the H0's own radial form) are fitted exactly;
    the fitted H0 is then the same operator, also after a round trip through its dict."""
    op = mos2_op()
    truth = _random_h0(op, seed=2)
    truth.r_cut = 12.0
    # rattled copies: enough distinct lengths per integral for the radial fit
    ops = []
    for k in range(6):
        o = op.copy()
        o.atoms.positions += np.random.default_rng(k).normal(scale=0.1, size=o.atoms.positions.shape)
        ops.append(o.with_blocks(H=truth.predict_parts(o), S=None, spin="none"))
    fit = SlaterKosterH0.fit(ops, n_radial=truth.n_radial, ridge=0.0, r_cut=12.0)
    for o in ops:
        np.testing.assert_allclose(fit.predict_parts(o) - fit.baseline.flat(o), o.H - fit.baseline.flat(o),
                                   rtol=0, atol=1e-8 * np.abs(o.H).max())
    again = SlaterKosterH0.from_dict(fit.to_dict())
    np.testing.assert_array_equal(again.predict_parts(ops[0]), fit.predict_parts(ops[0]))


@pytest.fixture(scope="module")
def stage1(trained):
    return trained[0]


def test_second_stage_on_a_network_sums_both_and_loads_from_one_file(dataset, stage1, tmp_path):
    out = tmp_path / "cascade.pt"
    res = train(dataset, out, model={**TINY, "layer": "attention", "heads": 2}, stage1=stage1,
                config=TrainConfig(epochs=3, lr=5e-3), log=lambda s: None)
    first = load_predictor(stage1)
    both = load_predictor(out)
    assert both.stage1 is not None and both.model.config.layer == "attention"
    # its output scale is the RMS of the residual it learns (the first stage's training error)
    with Dataset(dataset) as ds:
        train_ops = [ds[n] for n in ds.split("train")]
    assert both.model.config.output_scale == residual_scale(first, train_ops) < 1.0
    ckpt = torch.load(out, weights_only=False)
    assert ckpt["version"] == 2 and ckpt["stage1"]["model"]["config"] == first.model.checkpoint()["config"]
    with Dataset(dataset) as ds:
        op = ds[ds.split("val")[0]]
    net = both.model(both.model.graph([op], partner=False)).detach().double().numpy()
    np.testing.assert_allclose(both.predict_parts(op), first.predict_parts(op) + net, rtol=0, atol=1e-12)
    p = predict(both, op, fermi_method=None)
    assert p.hermiticity_error() == 0.0
    # the second stage is trained on what the first leaves: its val MAE is the cascade's
    from hotham.metrics import block_errors
    assert block_errors(p, op)["all"]["mae"] == pytest.approx(res["val"]["all"]["mae"], rel=1e-4)
    # the residual the second stage learns: DFT minus the first stage's prediction
    np.testing.assert_allclose(StageOffset(both.baseline, first).flat(op), first.predict_parts(op), atol=0)


def test_single_stage_checkpoints_still_load_and_older_readers_refuse_a_cascade(stage1, tmp_path):
    ckpt = torch.load(stage1, weights_only=False)
    assert ckpt["version"] == CHECKPOINT_VERSION == 1 and "stage1" not in ckpt
    assert load_predictor(stage1).stage1 is None
    ckpt["version"] = 3
    torch.save(ckpt, tmp_path / "future.pt")
    with pytest.raises(FormatError, match="version 3"):
        load_predictor(tmp_path / "future.pt")


def test_cli_stage2_of_slater_koster_and_yaml_key(dataset, stage1, tmp_path, capsys):
    out = tmp_path / "h0cascade.pt"
    assert main(["train", str(dataset), "-o", str(out), "--stage2-of", "slater-koster", "--epochs", "2",
                 "--lmax", "4", "--channels", "4", "--layers", "1", "--layer", "attention", "--heads", "2",
                 "--quiet"]) == 0
    pred = load_predictor(out)
    assert isinstance(pred.stage1, SlaterKosterH0)
    with Dataset(dataset) as ds:
        op = ds[ds.split("val")[0]]
    h0 = pred.stage1.predict_parts(op)
    # the H0 alone is already a guess at the DFT blocks: better than the on-site baseline alone
    base = pred.stage1.baseline.flat(op)
    assert np.abs(h0 - op.H).mean() < np.abs(base - op.H).mean()
    run = tmp_path / "run.yaml"
    run.write_text(f"data: {dataset}\noutput: y.pt\nstage1: {stage1}\nmodel: {{lmax: 4, channels: 4, layers: 1}}\n"
                   f"train: {{epochs: 1}}\n")
    assert main(["train", str(run), "--quiet"]) == 0
    assert load_predictor(tmp_path / "y.pt").stage1 is not None
    assert "stage1: " in (tmp_path / "y.pt.config.yaml").read_text()


def test_zero_readout_predicts_zero():
    from hotham.nn import HotHam, HotHamConfig
    op = mos2_op()
    net = HotHam(HotHamConfig.from_basis(op.basis, lmax=2, channels=2, layers=1, layer="attention", heads=1))
    net.zero_readout()
    y = net(net.graph([op]))
    assert torch.count_nonzero(y) == 0
    y.sum().backward()
    assert net.hopping.weights[next(iter(net.hopping.weights))].grad.abs().max() > 0
