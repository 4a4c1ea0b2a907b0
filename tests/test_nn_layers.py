"""Radial bases, float32/float64 handling, gradients and the ``hotham model info`` command."""
import json
import math

import numpy as np
import pytest
import torch

from hotham import so3
from hotham.cli import main
from hotham.nn import HotHam, HotHamConfig
from hotham.nn.layers import EquivariantLayerNorm, Gate, scatter_mean
from hotham.nn.radial import RadialBasis, cosine_cutoff

from conftest import model_prediction


def test_chebyshev_basis_matches_numpy_and_cutoff():
    r = torch.linspace(0.0, 7.0, 50, dtype=torch.float64)
    rb = RadialBasis(5, r_cut=6.0, kind="chebyshev")(r)
    x = 2 * r.numpy() / 6.0 - 1
    fc = np.where(r.numpy() < 6.0, 0.5 * (np.cos(np.pi * r.numpy() / 6.0) + 1), 0.0)
    for k in range(5):
        want = np.polynomial.chebyshev.chebval(np.clip(x, -1, 1), np.eye(5)[k]) * fc
        np.testing.assert_allclose(rb[:, k].numpy(), want, atol=1e-13)
    for kind in ("bessel", "gaussian"):
        b = RadialBasis(4, 6.0, kind)(r)
        assert torch.all(b[r >= 6.0] == 0) and torch.isfinite(b).all()
    # the cutoff goes smoothly to zero: value and slope vanish at r_cut
    h = 1e-4
    assert cosine_cutoff(torch.tensor(6.0 - h, dtype=torch.float64), 6.0) < 1e-7
    with pytest.raises(ValueError, match="unknown radial basis"):
        RadialBasis(4, 6.0, "spline")


def test_gate_and_layer_norm_equivariant_with_parity():
    torch.manual_seed(0)
    C, L = 3, 3
    x = torch.randn(5, C, (L + 1) ** 2, dtype=torch.float64)
    Q = so3.random_rotation(np.random.default_rng(0), improper=True)
    D = torch.block_diag(*[torch.tensor(so3.wigner_D(l, Q)) for l in range(L + 1)])
    gate, norm = Gate(C, L).double(), EquivariantLayerNorm(C, L).double()
    with torch.no_grad():
        norm.scale.add_(torch.randn_like(norm.scale))
        norm.bias.add_(torch.randn_like(norm.bias))
    for f in (gate, norm):
        np.testing.assert_allclose(f(x @ D.T).detach(), f(x).detach() @ D.T, atol=1e-13)
    # odd features: pseudo-scalars flip sign under inversion, tanh keeps that
    odd = Gate(C, L).double()
    s = x[..., 0]
    y = odd(x, scalars=s, odd=True)
    np.testing.assert_allclose(odd(-x, scalars=s, odd=True).detach(), -y.detach(), atol=1e-15)


def test_scatter_mean():
    src = torch.arange(6.0).reshape(3, 2)
    out = scatter_mean(src, torch.tensor([0, 2, 0]), 4)
    np.testing.assert_allclose(out.numpy(), [[2, 3], [0, 0], [2, 3], [0, 0]])


def _graphene():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from test_nn_model import graphene_op
    return graphene_op()


def test_float32_model_then_double_stays_exact_and_trains():
    op = _graphene()
    torch.manual_seed(0)
    model = HotHam(HotHamConfig.from_basis(op.basis, lmax=4, channels=4, layers=1, n_radial=6, hidden=8))
    assert next(model.parameters()).dtype == torch.float32
    h32 = model_prediction(model, op).H
    model = model.double()
    h64 = model_prediction(model, op).H
    assert np.abs(h32 - h64).max() < 1e-4 * np.abs(h64).max()
    Q = so3.random_rotation(np.random.default_rng(1), improper=True)
    want = so3.rotate_operator(model_prediction(model, op), Q).H
    err = np.abs(model_prediction(model, so3.rotate_operator(op, Q)).H - want).max()
    assert err < 1e-9 * np.abs(h64).max()
    # gradients reach every parameter and a few Adam steps lower an MAE + RMSE loss
    target = torch.as_tensor(np.random.default_rng(0).normal(size=op.nnz))
    target = 0.5 * (target + target[torch.as_tensor(op.partner_index(1))])
    batch = model.graph([op])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        d = model(batch) - target
        loss = d.abs().mean() + d.pow(2).mean().sqrt()
        loss.backward()
        losses.append(loss.item())
        opt.step()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    assert losses[-1] < losses[0]


def test_cli_model_info(capsys):
    assert main(["model", "info", "--json", "--lmax", "4", "--channels", "8",
                 "--basis", "Mo=Mo7.0-s3p2d2", "--basis", "S=s2p2d1"]) == 0
    out = json.loads(capsys.readouterr().out)
    cfg = HotHamConfig(**out["config"])
    assert cfg.species == {"Mo": (0, 0, 0, 1, 1, 2, 2), "S": (0, 0, 1, 1, 2)}
    assert out["parameters"] == HotHam(cfg).n_parameters
    assert main(["model", "info"]) == 0
    text = capsys.readouterr().out
    n = int(text.split("parameters:")[1].split()[0].replace(",", ""))
    assert n == HotHam(HotHamConfig()).n_parameters < 2_000_000
    assert main(["model", "info", "--basis", "C"]) == 2
