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


def _near_null_error(op, delta):
    """``op``'s H plus ``delta`` (eV) along S(Gamma)'s smallest eigenvector, on the on-site (R = 0)
    blocks: the coherent error that makes a ghost state."""
    from conftest import shift_along
    from hotham.electronic.hk import Assembler
    s, U = np.linalg.eigh(Assembler(op).dense(np.zeros((1, 3)), "S")[0])
    return shift_along(op, U[:, 0].real, delta).H


def test_ghost_terms_see_an_error_along_the_near_null_space_of_s():
    """An error of 30 meV along S's smallest eigenvector barely moves the bands near E_F (the
    window loss: not at all) but is the whole signal of the projection loss and large in the
    spectrum loss;
    both are zero at the reference."""
    op = hio.read(DATA / "openmx" / "graphene_prim")
    loss = BandLoss(op)
    k = np.array([[0.0, 0.0, 0.0], [0.1, 0.05, 0.0]])
    ref = torch.as_tensor(op.H)
    assert loss.spectrum(ref, k).item() < 1e-9 and loss.projection(ref, k).item() < 1e-12
    bad = torch.as_tensor(_near_null_error(op, -0.03))
    window, spectrum, projection = loss(bad, k).item(), loss.spectrum(bad, k).item(), loss.projection(bad, k).item()
    assert window < 0.01 < spectrum and projection > 0.1
    # a constant shift of 30 meV (H + c S) moves every state, near-null ones included, by 30 meV only
    assert loss.projection(torch.as_tensor(op.H + 0.03 * op.S), k).item() <= 0.03 + 1e-9


def test_ghost_terms_have_gradients(float64):
    op = random_operator(seed=3)
    op.fermi_level = 0.0
    loss = BandLoss(op)
    k = np.array([[0.1, 0.2, 0.0]])
    pred = op.with_blocks(H=op.H + 0.01 * np.random.default_rng(2).normal(size=op.nnz)).symmetrized().H
    for term in (lambda H: loss.spectrum(H, k), lambda H: loss.projection(H, k, threshold=10.0)):
        H = torch.tensor(pred, requires_grad=True)
        term(H).backward()
        assert torch.isfinite(H.grad).all() and H.grad.abs().max() > 0


def test_band_loss_relative_to_the_fermi_level_ignores_a_constant_shift():
    op = hio.read(DATA / "openmx" / "graphene_prim")
    loss = BandLoss(op)
    k = random_kpoints(op.atoms, 4, torch.Generator().manual_seed(0))
    # H + c S shifts every eigenvalue by c
    shifted = torch.as_tensor(op.H + 0.2 * op.S)
    assert abs(loss(shifted, k).item() - 0.2) < 1e-9
    assert loss(shifted, k, align="fermi").item() < 1e-9
