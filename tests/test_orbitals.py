import numpy as np
import pytest

from hotham.parsers.openmx.orbitals import atom_permutation, to_internal, to_openmx
from conftest import random_operator


def test_atom_permutation_s2p2d1():
    p = atom_permutation((0, 0, 1, 1, 2))
    assert list(p) == [0, 1, 3, 4, 2, 6, 7, 5, 10, 12, 8, 11, 9]


@pytest.mark.parametrize("spin", ["none", "collinear", "soc"])
def test_roundtrip_and_block_action(spin):
    op = random_operator(spin=spin, seed=5)
    conv = to_internal(op)
    back = to_openmx(conv)
    assert np.array_equal(back.H, op.H) and np.array_equal(back.S, op.S)
    p = atom_permutation(op.basis.shells["C"])
    e = op.find_edge(0, 1, (1, 0, 0))
    assert np.array_equal(conv.s_block(e), op.s_block(e)[np.ix_(p, p)])
    if spin == "soc":
        q = np.concatenate([p, p + 13])
        assert np.array_equal(conv.h_block(e), op.h_block(e)[np.ix_(q, q)])
    else:
        assert np.array_equal(conv.h_block(e, channel=0), op.h_block(e, channel=0)[np.ix_(p, p)])
    assert conv.hermiticity_error() == 0.0
