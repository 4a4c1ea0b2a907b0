"""Block-error breakdowns: known perturbations land in the right species / orbital pair."""
import numpy as np
import pytest

from hotham.metrics import block_errors, format_report
from hotham.operator import BlockOperator
from conftest import random_operator


def test_breakdown_by_orbital_and_species():
    ref = random_operator(seed=7)
    pred = ref.copy()
    e = pred.find_edge(0, 1, (0, 0, 0))
    blk = pred.h_block(e)
    blk[0, 12] += 0.004          # s (first shell) - d (orbital 12 is the d shell): 4 meV
    rep = block_errors(pred, ref)
    assert rep["all"]["max"] == pytest.approx(4.0)
    assert rep["all"]["mae"] == pytest.approx(4.0 / ref.nnz)
    assert rep["orbital"]["s-d"]["max"] == pytest.approx(4.0)
    assert rep["orbital"]["d-s"]["max"] == 0.0 and rep["orbital"]["p-p"]["max"] == 0.0
    assert rep["species"]["C-C"]["n"] == ref.nnz
    assert "s-d" in format_report(rep)


def test_unmatched_blocks_are_counted_not_compared():
    ref = random_operator(seed=8)
    keep = np.ones(ref.n_edges, bool)
    drop = [ref.find_edge(0, 1, (1, 0, 0)), ref.find_edge(1, 0, (-1, 0, 0))]
    keep[drop] = False
    sub = BlockOperator(ref.atoms, ref.basis, ref.edge_i[keep], ref.edge_j[keep], ref.edge_R[keep])
    idx = np.concatenate([np.arange(ref.offsets[e], ref.offsets[e + 1]) for e in np.flatnonzero(keep)])
    sub = sub.with_blocks(H=ref.H[idx], S=ref.S[idx])
    rep = block_errors(sub, ref)
    assert rep["all"]["max"] == 0.0 and rep["only_pred"] == 0 and rep["only_ref"] == 2
    assert rep["blocks"] == ref.n_edges - 2
    s = block_errors(sub, ref, "S")
    assert s["units"] == "1" and s["all"]["max"] == 0.0
