"""The equivariant attention layer (HotHamConfig.layer = "attention"), float64 with random
weights: E(3) equivariance of every predicted block, permutation invariance, exact Hermiticity,
the segment softmax, chunked inference, per-layer kinds and the config's checks."""
import numpy as np
import pytest
import torch

from hotham import so3
from hotham.nn import HotHam, HotHamConfig
from hotham.nn.conv import AttentionLayer, segment_softmax
from hotham.operator import BlockOperator

from conftest import graphene_op, model_prediction, mos2_op
from conftest import random_model as _conv_model, rel_error as _rel

pytestmark = pytest.mark.usefixtures("float64")


def _model(op, layer="attention", layers=2):
    return _conv_model(op, 4, layers=layers, layer=layer, heads=2)


@pytest.mark.parametrize("layer", ["attention", ["attention", "conv"]], ids=["attention", "mixed"])
@pytest.mark.parametrize("make_op", [graphene_op, mos2_op], ids=["graphene", "mos2"])
def test_attention_rotation_inversion_equivariance_and_hermiticity(make_op, layer):
    op = make_op()
    model = _model(op, layer)
    assert any(isinstance(m, AttentionLayer) for m in model.layers)
    pred = model_prediction(model, op)
    assert pred.hermiticity_error() == 0.0
    assert np.abs(pred.H).max() > 1e-3
    rng = np.random.default_rng(3)
    for improper in (False, True, True):
        Q = so3.random_rotation(rng, improper=improper)
        got = model_prediction(model, so3.rotate_operator(op, Q))
        assert _rel(got.H, so3.rotate_operator(pred, Q).H) < 1e-9, improper
    # pure inversion through the origin
    assert _rel(model_prediction(model, so3.rotate_operator(op, -np.eye(3))).H,
                so3.rotate_operator(pred, -np.eye(3)).H) < 1e-9


def test_attention_permutation_invariance():
    op = mos2_op()
    model = _model(op)
    pred = model_prediction(model, op)
    perm = np.array([2, 0, 1])
    inv = np.argsort(perm)
    order = np.random.default_rng(0).permutation(op.n_edges)
    pop = BlockOperator(op.atoms[perm], op.basis, inv[op.edge_i[order]], inv[op.edge_j[order]], op.edge_R[order])
    ppred = model_prediction(model, pop)
    for e_new, e_old in enumerate(order):
        np.testing.assert_allclose(ppred.h_block(e_new), pred.h_block(e_old), rtol=0, atol=1e-12 * np.abs(pred.H).max())


def test_segment_softmax_sums_to_one_per_node_and_is_stable():
    index = torch.tensor([0, 2, 0, 2, 2, 3])
    logits = torch.tensor([[1.0, 1000.0], [2.0, -5.0], [3.0, 999.0], [0.0, 0.0], [-1.0, 1.0], [7.0, 7.0]],
                          dtype=torch.float64)
    a = segment_softmax(logits, index, 5)
    assert torch.isfinite(a).all()
    sums = torch.zeros(5, 2, dtype=torch.float64).index_add_(0, index, a)
    torch.testing.assert_close(sums[[0, 2, 3]], torch.ones(3, 2, dtype=torch.float64), rtol=0, atol=1e-15)
    want = torch.softmax(logits[[1, 3, 4], 0], 0)
    torch.testing.assert_close(a[[1, 3, 4], 0], want, rtol=0, atol=1e-15)


def test_attention_chunked_inference_and_gradients():
    op = graphene_op()
    model = _model(op)
    g = model.graph([op])
    with torch.no_grad():
        one = model(g, edge_chunk=10 ** 9)
        assert torch.allclose(model(g, edge_chunk=5), one, rtol=0, atol=1e-12)
    y = model(g)
    y.square().sum().backward()
    att = model.layers[0]
    assert att.query.weight.grad is not None and att.query.weight.grad.abs().max() > 0


def test_layer_config_checks_and_old_configs():
    assert HotHamConfig(layers=2).layer_kinds == ["conv", "conv"]
    assert HotHamConfig(layers=2, layer="attention").layer_kinds == ["attention", "attention"]
    with pytest.raises(ValueError, match="layer lists 1 kinds for 2 layers"):
        HotHamConfig(layers=2, layer=["attention"])
    with pytest.raises(ValueError, match="must divide channels"):
        HotHamConfig(channels=6, heads=4, layer="attention")
    # a checkpoint written before the field existed loads as conv layers
    old = {k: v for k, v in HotHamConfig(layers=1, channels=4).model_dump().items() if k not in ("layer", "heads")}
    assert HotHam(HotHamConfig(**old)).layers[0].__class__.__name__ == "ConvLayer"
