"""The k-space (band-energy) loss: exact eigenvalues, and a gradient that matches finite differences."""
from __future__ import annotations

import numpy as np
import torch

import hotham.io as hio
from conftest import DATA, random_operator
from hotham.band_loss import BandLoss, random_kpoints
from hotham.electronic import eigenvalues


def test_eigenvalues_equal_the_electronic_layer():
    op = hio.read(DATA / "openmx" / "graphene_prim")
    loss = BandLoss(op)
    k = random_kpoints(op.atoms, 4, torch.Generator().manual_seed(0))
    assert np.all(k[:, 2] == 0.0)                       # no k across the slab's vacuum
    eps = loss.eigenvalues(torch.as_tensor(op.H), k).numpy()
    assert np.abs(eps - eigenvalues(op, k)).max() < 1e-9
    assert loss(torch.as_tensor(op.H), k).item() < 1e-9    # reference against itself


def test_gradient_matches_finite_differences(float64):
    op = random_operator(seed=3)
    op.fermi_level = 0.0
    rng = np.random.default_rng(1)
    H_ref = op.H.copy()
    # a prediction near the reference, kept exactly Hermitian by symmetrising the perturbation
    pred = op.with_blocks(H=H_ref + 0.01 * rng.normal(size=op.nnz)).symmetrized().H
    loss = BandLoss(op, window=(-50.0, 50.0))
    k = np.array([[0.1, 0.2, 0.0], [0.37, -0.11, 0.0]])
    H = torch.tensor(pred, requires_grad=True)
    value = loss(H, k)
    value.backward()
    g = H.grad.numpy()
    d = rng.normal(size=op.nnz)
    d = op.with_blocks(H=d).symmetrized().H                # a Hermitian direction
    h = 1e-6
    fd = (loss(torch.tensor(pred + h * d), k) - loss(torch.tensor(pred - h * d), k)).item() / (2 * h)
    assert abs(fd - float(g @ d)) < 1e-6 * max(1.0, abs(fd))
    assert abs(fd) > 1e-3                                   # the check is not vacuous


def test_degenerate_eigenvalues_give_finite_gradients(float64):
    """Graphene at K: the Dirac cone is doubly degenerate; the gradient stays finite."""
    op = hio.read(DATA / "openmx" / "graphene_prim")
    loss = BandLoss(op)
    H = torch.tensor(op.H + 1e-3, requires_grad=True)
    loss(H, [[1 / 3, 1 / 3, 0.0]]).backward()
    assert torch.isfinite(H.grad).all() and H.grad.abs().max() > 0
