"""Hot-Ham network, float64 with random weights: E(3) equivariance of every predicted block
(rotation + inversion, via hotham.so3.rotate_operator), translation and permutation invariance,
exact Hermiticity, mixed species in one batch, config round trip."""
import json
import warnings

import numpy as np
import pytest
import torch
from ase import Atoms

from hotham import so3
from hotham.basis import Basis
from hotham.nn import HotHam, HotHamConfig
from hotham.operator import BlockOperator

from conftest import edges_operator as _edges_op, graphene_op, model_prediction, mos2_op
from conftest import random_model as _model, rel_error as _rel

pytestmark = pytest.mark.usefixtures("float64")  # exactness checks run in float64




CASES = [("fourier", "gaunt", 2), ("fourier", "gaunt", 4), ("fourier", "gaunt", 6),
         ("grid", "gaunt", 2), ("grid", "gaunt", 4), ("grid", "gaunt", 6), ("fourier", "e3nn", 2)]


@pytest.mark.parametrize("method,conv,lmax", CASES)
@pytest.mark.parametrize("make_op", [graphene_op, mos2_op], ids=["graphene", "mos2"])
def test_rotation_inversion_equivariance(make_op, method, conv, lmax):
    op = make_op()
    model = _model(op, lmax, conv, method)
    pred = model_prediction(model, op)
    rng = np.random.default_rng(lmax)
    for improper in (False, True):
        Q = so3.random_rotation(rng, improper=improper)
        want = so3.rotate_operator(pred, Q)
        got = model_prediction(model, so3.rotate_operator(op, Q))
        assert _rel(got.H, want.H) < 1e-9, (improper, _rel(got.H, want.H))
    assert pred.hermiticity_error() == 0.0
    # every block is non-trivial (the readout reaches every orbital pair it can)
    assert np.abs(pred.H).max() > 1e-3


def test_equivariance_on_real_openmx_graph():
    """Bilayer graphene from OpenMX: the DFT's own 330 blocks, interlayer edges exactly along z
    (the pole of the edge frame)."""
    from pathlib import Path

    from hotham.io import read
    op = read(Path(__file__).parent / "data/openmx/bilayer_graphene_ab_prim/bilayer_graphene_ab_prim.scfout.gz")
    model = _model(op, 4, layers=2)
    pred = model_prediction(model, op)
    assert pred.hermiticity_error() == 0.0
    rng = np.random.default_rng(7)
    for improper in (False, True):
        Q = so3.random_rotation(rng, improper=improper)
        assert _rel(model_prediction(model, so3.rotate_operator(op, Q)).H, so3.rotate_operator(pred, Q).H) < 1e-9


def test_translation_and_permutation_invariance():
    op = mos2_op()
    model = _model(op, 4, layers=2)
    pred = model_prediction(model, op)
    # translation (no wrapping: edges keep their R)
    moved = op.copy()
    moved.atoms.positions += [1.3, -0.7, 2.1]
    assert _rel(model_prediction(model, moved).H, pred.H) < 1e-12
    # permutation of atoms (and of the edge order)
    perm = np.array([2, 0, 1])  # new atom k is old atom perm[k]
    inv = np.argsort(perm)
    order = np.random.default_rng(0).permutation(op.n_edges)
    atoms = op.atoms[perm]
    pop = BlockOperator(atoms, op.basis, inv[op.edge_i[order]], inv[op.edge_j[order]], op.edge_R[order])
    ppred = model_prediction(model, pop)
    for e_new, e_old in enumerate(order):
        np.testing.assert_allclose(ppred.h_block(e_new), pred.h_block(e_old), rtol=0, atol=1e-12 * np.abs(pred.H).max())


def test_batch_of_mixed_structures_equals_single_predictions():
    g, m = graphene_op(), mos2_op()
    basis = Basis({"C": (0, 0, 1, 1, 2), "Mo": (0, 0, 0, 1, 1, 2, 2), "S": (0, 0, 1, 1, 2)})
    g = BlockOperator(g.atoms, basis, g.edge_i, g.edge_j, g.edge_R)
    m = BlockOperator(m.atoms, basis, m.edge_i, m.edge_j, m.edge_R)
    torch.manual_seed(0)
    model = HotHam(HotHamConfig.from_basis(basis, lmax=4, channels=4, layers=1, n_radial=6, hidden=8)).double()
    ops = [m, g, m]
    with torch.no_grad():
        flat = model(model.graph(ops)).numpy()
    batch = np.split(flat, np.cumsum([op.nnz for op in ops])[:-1])
    for op, h in zip(ops, batch):
        single = model_prediction(model, op)
        assert _rel(h, single.H) < 1e-12
        assert op.with_blocks(H=h, spin="none").hermiticity_error() == 0.0


def test_unknown_species_and_wrong_basis_raise():
    from hotham.errors import BasisError
    op = graphene_op()
    model = HotHam(HotHamConfig(species={"C": (0, 1)}, lmax=2, channels=2, layers=0)).double()
    with pytest.raises(BasisError, match="basis of C"):
        model_prediction(model, op)
    model = HotHam(HotHamConfig(species={"Mo": (0, 1)}, lmax=2, channels=2, layers=0)).double()
    with pytest.raises(BasisError, match="unknown to the model"):
        model_prediction(model, op)


def test_config_json_round_trip_and_checkpoint():
    cfg = HotHamConfig.from_basis(Basis({"Mo": (0, 0, 0, 1, 1, 2, 2), "S": (0, 0, 1, 1, 2)}))
    again = HotHamConfig(**json.loads(cfg.to_json()))
    assert again == cfg
    op = mos2_op()
    model = _model(op, 4, channels=2)
    clone = HotHam.from_checkpoint(model.checkpoint()).double()
    np.testing.assert_array_equal(model_prediction(clone, op).H, model_prediction(model, op).H)


def test_default_model_under_two_million_parameters():
    assert HotHam(HotHamConfig()).n_parameters < 2_000_000


def test_hopping_blocks_vanish_at_the_cutoff():
    """H_ij(R) -> 0 where the PAOs stop overlapping: the hopping readout carries a smooth envelope."""
    from ase import Atoms
    from hotham.basis import Basis
    from hotham.nn.radial import polynomial_envelope
    from hotham.operator import BlockOperator
    r = torch.linspace(0, 7, 701, dtype=torch.float64)
    env = polynomial_envelope(r, 6.5)
    assert env[0] == 1.0 and torch.all(env[r >= 6.5] == 0) and torch.all(torch.diff(env) <= 1e-15)
    torch.manual_seed(0)
    model = HotHam(HotHamConfig(species={"C": (0, 1, 2)}, lmax=4, channels=4, layers=1, r_cut=6.5)).double()
    norms = []
    for d in (2.0, 6.49):
        atoms = Atoms("C2", positions=[[0, 0, 0], [d, 0, 0]], cell=[20, 20, 20], pbc=False)
        op = BlockOperator(atoms, Basis({"C": (0, 1, 2)}), [0, 1, 0, 1], [0, 1, 1, 0], np.zeros((4, 3), int))
        pred = model_prediction(model, op)
        norms.append(np.abs(pred.h_block(op.find_edge(0, 1))).max())
    assert norms[0] > 1e-3 and norms[1] < 1e-6 * norms[0]


def test_chunked_inference_equals_one_shot():
    """Message passing over edge chunks (inference on large cells) gives the same blocks."""
    from hotham import io
    from pathlib import Path
    op = io.read(Path(__file__).parent / "data" / "openmx" / "bilayer_graphene_ab_prim")
    torch.manual_seed(1)
    model = HotHam(HotHamConfig.from_basis(op.basis, lmax=4, channels=4, layers=2, r_cut=6.5)).double()
    g = model.graph([op])
    with torch.no_grad():
        one = model(g, edge_chunk=10 ** 9)
        for chunk in (7, 100):
            assert torch.allclose(model(g, edge_chunk=chunk), one, rtol=0, atol=1e-12)


@pytest.mark.parametrize("conv", ["gaunt", "e3nn"])
def test_isolated_atom_has_no_hopping_edges(conv):
    """One atom alone in its cell: only the on-site block, no message to pass; forward and
    backward still work (an empty batch of products)."""
    atoms = Atoms("C", positions=[[0.0, 0.0, 0.0]], cell=[20.0, 20.0, 20.0], pbc=True)
    op = BlockOperator(atoms, Basis({"C": (0, 0, 1, 1, 2)}), np.array([0]), np.array([0]), np.zeros((1, 3), int))
    model = HotHam(HotHamConfig(channels=4, layers=1, tensor_product=conv))
    y = model(model.graph([op]))
    assert y.shape == (op.nnz,) and torch.isfinite(y).all()
    y.sum().backward()


def _envelope_model(op, width=1.0, radius=1.6):
    """A model whose hopping blocks switch off at r_i + r_j = 2 ``radius`` over ``width`` Angstrom."""
    torch.manual_seed(3)
    cfg = HotHamConfig.from_basis(op.basis, lmax=4, channels=4, layers=1, n_radial=6, hidden=8, r_cut=9.0,
                                  pao_radii={"C": radius}, pair_envelope=width)
    return HotHam(cfg).double()


def test_pair_envelope_blocks_vanish_at_the_pao_cutoff_sum_and_stay_equivariant():
    """Hopping blocks go smoothly to zero at r_i + r_j (here 3.2 A, over the last 1 A): zero at
    and beyond it, untouched below 2.2 A, and still exactly Hermitian and equivariant."""
    from hotham.nn.radial import pair_switch
    r = torch.linspace(0, 4, 4001, dtype=torch.float64)
    f = pair_switch(r, torch.full_like(r, 3.2), 1.0)
    assert torch.all(f[r <= 2.2] == 1) and torch.all(f[r >= 3.2] == 0) and torch.all(torch.diff(f) <= 1e-15)
    assert torch.diff(f).abs().max() < 2e-3                     # no jump: |f'| <= 15/8 per A
    op = graphene_op()
    model = _envelope_model(op)
    pred = model_prediction(model, op)
    assert pred.hermiticity_error() == 0.0
    d = op.edge_lengths()
    hop = d > 0.1
    norms = np.array([np.abs(pred.h_block(e)).max() for e in range(op.n_edges)])
    assert np.all(norms[hop & (d >= 3.2)] == 0) and np.all(norms[hop & (d < 2.2)] > 1e-4)
    assert np.any(norms[hop & (d > 2.2) & (d < 3.2)] > 0)
    rng = np.random.default_rng(5)
    for improper in (False, True):
        Q = so3.random_rotation(rng, improper=improper)
        got = model_prediction(model, so3.rotate_operator(op, Q))
        assert _rel(got.H, so3.rotate_operator(pred, Q).H) < 1e-9


def test_pair_envelope_on_for_new_models_off_for_older_checkpoints():
    op = graphene_op()
    op = BlockOperator(op.atoms, Basis({"C": (0, 0, 1, 1, 2)}, {"C": "C6.0-s2p2d1"}), op.edge_i, op.edge_j, op.edge_R)
    cfg = HotHamConfig.from_basis(op.basis)
    assert cfg.pair_envelope > 0 and cfg.pao_radii["C"] == pytest.approx(6.0 * 0.529177, rel=1e-4)
    model = _envelope_model(op)
    ckpt = model.checkpoint()
    del ckpt["config"]["pair_envelope"]                         # a checkpoint written before the field
    old = HotHam.from_checkpoint(ckpt).double()
    assert old.config.pair_envelope == 0.0
    e = int(np.flatnonzero(op.edge_lengths() > 3.2)[0])
    assert np.abs(model_prediction(old, op).h_block(e)).max() > 0 and np.abs(model_prediction(model, op).h_block(e)).max() == 0


@pytest.mark.parametrize("layer,spin", [("conv", "none"), ("attention", "none"), ("conv", "soc")])
def test_streamed_inference_without_partner_map_equals_one_shot(layer, spin):
    """The large-structure path (graph without the [nnz] partner map, edge frames and hopping
    readout chunk by chunk, float64 output made Hermitian pair by pair) gives the one-shot blocks
    of the training path, on a two-species structure (several block shapes and species pairs)."""
    op = mos2_op()
    model = _model(op, 4, layer=layer, layers=2, spin=spin)
    with torch.no_grad():
        one = model(model.graph([op]), edge_chunk=10 ** 9)
        for chunk in (13, 200):
            streamed = model(model.graph([op], partner=False), edge_chunk=chunk)
            assert streamed.dtype == torch.float64
            assert torch.allclose(streamed, one, rtol=0, atol=1e-12)
    # exactly Hermitian (antisymmetric SOC parts)
    p = torch.as_tensor(op.partner_index(1))
    spinless = streamed[0] if spin == "soc" else streamed
    assert torch.equal(spinless, spinless[p])
    if spin == "soc":
        assert torch.equal(streamed[1:], -streamed[1:, p])
