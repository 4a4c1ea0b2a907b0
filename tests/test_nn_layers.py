"""Radial bases, declared irreps, float32/float64 handling, gradients and the ``hotham model info`` command."""
import json

import numpy as np
import pytest
import torch

from hotham import so3
from hotham.cli import main
from hotham.nn import HotHam, HotHamConfig
from hotham.nn.layers import EquivariantLayerNorm, EquivariantLinear, Gate, from_e3nn, scatter_mean, to_e3nn
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
    odd = Gate(C, L, odd=True).double()
    assert str(odd.irreps_in) == "3x0o+3x1e+3x2o+3x3e" and str(gate.irreps_in) == "3x0e+3x1o+3x2e+3x3o"
    s = x[..., 0]
    y = odd(x, scalars=s)
    np.testing.assert_allclose(odd(-x, scalars=s).detach(), -y.detach(), atol=1e-15)
    with pytest.raises(ValueError, match="odd features need even scalars"):
        odd(x)


@pytest.mark.parametrize("odd", [False, True])
def test_modules_transform_as_their_declared_irreps(odd):
    """f(D_in x) = D_out f(x) with D from the declared e3nn Irreps (in e3nn's layout and axes:
    internal r = e3nn's P r, P the cyclic permutation) for an improper rotation. Even modules add
    a bias to 0e and apply SiLU to it, which only commutes with D if 0e is truly invariant; odd
    ones are odd functions of their input (no bias, tanh), as 0o + 1e + ... requires."""
    C, L = 3, 3
    torch.manual_seed(1)
    Q = so3.random_rotation(np.random.default_rng(2), improper=True)
    P = np.eye(3)[[1, 2, 0]]
    R = torch.as_tensor(P @ Q @ P.T)
    x = torch.randn(6, C, (L + 1) ** 2, dtype=torch.float64)
    scalars = torch.randn(6, C, dtype=torch.float64)              # invariant gate inputs
    mods = [EquivariantLinear(C, 2, L, odd=odd), Gate(C, L, odd=odd), EquivariantLayerNorm(C, L, odd=odd)]
    for f in mods:
        f.double()
        with torch.no_grad():
            for p in f.parameters():
                p.add_(0.3 * torch.randn_like(p))
        run = (lambda y: f(y, scalars=scalars)) if isinstance(f, Gate) and odd else f
        c_out = f.irreps_out[0].mul
        D_in, D_out = f.irreps_in.D_from_matrix(R), f.irreps_out.D_from_matrix(R)
        lhs = to_e3nn(run(from_e3nn(to_e3nn(x, L) @ D_in.T, C, L)), L)
        rhs = to_e3nn(run(x), L) @ D_out.T
        assert rhs.shape[-1] == c_out * (L + 1) ** 2
        assert (lhs - rhs).abs().max() < 1e-12 * rhs.abs().max(), type(f).__name__


def test_model_declares_block_irreps():
    """Every block's declared irreps have the block's size; hidden features are C x (0e+1o+...)."""
    model = HotHam(HotHamConfig(species={"C": (0, 0, 1, 1, 2), "H": (0, 1)}, lmax=4, channels=4, layers=1))
    n_orb = {"C": 13, "H": 4}
    assert set(model.irreps_out) == {(a, b) for a in "CH" for b in "CH"}
    for (a, b), irreps in model.irreps_out.items():
        assert irreps.dim == n_orb[a] * n_orb[b]
    assert str(model.irreps_out[("H", "H")]) == "2x0e+2x1o+1x1e+1x2e"
    assert str(model.irreps_in) == "1x1o" and str(model.irreps_hidden) == "4x0e+4x1o+4x2e+4x3o+4x4e"
    assert model.last.irreps_odd_out == model.hopping.irreps_odd_in
    assert model.embedding.irreps_edge_out == model.layers[0].irreps_edge_in == model.last.irreps_edge_in


def test_scatter_mean():
    src = torch.arange(6.0).reshape(3, 2)
    out = scatter_mean(src, torch.tensor([0, 2, 0]), 4)
    np.testing.assert_allclose(out.numpy(), [[2, 3], [0, 0], [2, 3], [0, 0]])


def _graphene():
    from conftest import graphene_op
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
