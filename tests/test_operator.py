import numpy as np
import pytest

from hotham import io
from hotham.errors import BasisError, HothamError, StructureError
from hotham.so3 import rotate_operator, random_rotation, wigner_D, spherical_harmonics
from conftest import random_operator


@pytest.mark.parametrize("spin", ["none", "collinear", "soc"])
def test_hermitian_pairing_and_roundtrip(tmp_path, spin):
    op = random_operator(spin=spin, seed=3)
    rep = op.check(h_tol=0, s_tol=0)
    assert rep["H_hermiticity"] == 0.0
    # partner of partner is identity; reverse of reverse is identity
    p = op.partner_index(op.spin_factor)
    assert np.array_equal(p[p], np.arange(len(p)))
    assert np.array_equal(op.reverse_edges[op.reverse_edges], np.arange(op.n_edges))
    io.write(tmp_path / "op.h5", op)
    back = io.read(tmp_path / "op.h5")
    assert back.spin == spin
    assert np.array_equal(back.H, op.H) and np.array_equal(back.S, op.S)
    assert np.array_equal(back.edge_R, op.edge_R)
    assert back.basis.shells == op.basis.shells


def test_block_views_and_lookup():
    op = random_operator(seed=1)
    e = op.find_edge(0, 1, (1, 0, 0))
    r = op.find_edge(1, 0, (-1, 0, 0))
    assert np.allclose(op.h_block(e), op.h_block(r).T)
    assert op.h_block(e).shape == (13, 13)
    with pytest.raises(KeyError):
        op.find_edge(0, 1, (5, 0, 0))
    # vectorised lookup; R outside the stored range or atoms out of range are absent, not aliased
    idx = op.edge_index([0, 1, 0, 0, 7], [1, 0, 1, 1, 0], [(1, 0, 0), (-1, 0, 0), (0, 3, 0), (-2, 1, 0), (0, 0, 0)])
    assert idx.tolist() == [e, r, -1, -1, -1]


def test_non_hermitian_detected():
    op = random_operator(seed=2)
    op.H[5] += 1.0
    with pytest.raises(StructureError, match="not Hermitian"):
        op.check()


def test_missing_partner_and_species():
    op = random_operator(seed=2)
    keep = np.arange(op.n_edges) != op.find_edge(0, 1, (1, 0, 0))
    from hotham.operator import BlockOperator
    cut = BlockOperator(op.atoms, op.basis, op.edge_i[keep], op.edge_j[keep], op.edge_R[keep])
    with pytest.raises(StructureError, match="no Hermitian partner"):
        cut.reverse_edges
    from hotham.basis import Basis
    with pytest.raises(BasisError, match="'C' has no basis"):
        BlockOperator(op.atoms, Basis({"B": (0,)}), op.edge_i, op.edge_j, op.edge_R)


def test_wigner_D_is_representation():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(7, 3))
    for improper in (False, True):
        Q = random_rotation(rng, improper=improper)
        for l in range(4):
            D = wigner_D(l, Q)
            lhs = spherical_harmonics(l, r @ Q.T).numpy()
            rhs = spherical_harmonics(l, r).numpy() @ D.T
            assert np.abs(lhs - rhs).max() < 1e-12
            assert np.abs(D @ D.T - np.eye(2 * l + 1)).max() < 1e-12


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_rotation_composes(spin):
    op = random_operator(spin=spin, seed=4)
    rng = np.random.default_rng(1)
    Q1, Q2 = random_rotation(rng), random_rotation(rng)
    a = rotate_operator(rotate_operator(op, Q1), Q2)
    b = rotate_operator(op, Q2 @ Q1)
    assert np.abs(a.H - b.H).max() < 1e-10
    assert np.abs(a.atoms.positions - b.atoms.positions).max() < 1e-12
    assert a.hermiticity_error() < 1e-12


def _element_maps_by_loop(op, sf):
    """Reference (edge, row, col, partner) of every flat element, one block at a time."""
    total = sf * sf * op.nnz
    edge, row, col, partner = (np.full(total, -1) for _ in range(4))
    first, norb, rev = op.orbital_offsets, op.n_orbitals, op.reverse_edges
    for e in range(op.n_edges):
        n_i, n_j = op.block_shapes[e]
        ni, nj = sf * n_i, sf * n_j
        for a in range(ni):
            for b in range(nj):
                f = sf * sf * op.offsets[e] + a * nj + b
                edge[f] = e
                row[f] = (a // n_i) * norb + first[op.edge_i[e]] + a % n_i
                col[f] = (b // n_j) * norb + first[op.edge_j[e]] + b % n_j
                partner[f] = sf * sf * op.offsets[rev[e]] + b * ni + a
    return edge, row, col, partner


@pytest.mark.parametrize("source", ["random", "random_soc", "mos2_prim"])
def test_element_maps_in_chunks(monkeypatch, source):
    """element_layout and partner_index, computed shape group by shape group in chunks of
    edges (bounded memory on 10^8-element operators), equal the block-by-block definition,
    also when a chunk holds a single block and for mixed block shapes (Mo 19 x S 13 orbitals)."""
    from hotham.operator import BlockOperator
    from conftest import DATA
    if source == "mos2_prim":
        op = io.read(DATA / "openmx" / "mos2_prim")
        keep = op.edge_lengths() < 4.0      # a few hundred blocks keep the reference loop quick
        op = BlockOperator(op.atoms, op.basis, op.edge_i[keep], op.edge_j[keep], op.edge_R[keep])
    else:
        op = random_operator(spin="soc" if source.endswith("soc") else "none", seed=4, rmax=0)
    assert len(np.unique(op.block_shapes, axis=0)) == (4 if source == "mos2_prim" else 1)
    for chunk in (1, 1000, 1 << 22):
        monkeypatch.setattr(BlockOperator, "LAYOUT_CHUNK", chunk)
        for sf in (1, 2):
            fresh = op.with_blocks()
            got = fresh.element_layout(sf) + (fresh.partner_index(sf),)
            ref = _element_maps_by_loop(op, sf)
            assert all(np.array_equal(g, r) for g, r in zip(got, ref)), (chunk, sf)


def test_with_blocks_keeps_what_is_not_given():
    op = random_operator(seed=2)
    S2 = op.S * 2
    new = op.with_blocks(S=S2)
    assert new.H is op.H and new.S is S2                  # H kept (it was silently dropped before)
    assert op.with_blocks(H=None).H is None               # None removes
    assert op.with_blocks().S is op.S
    with pytest.raises(HothamError, match="give the new H"):
        op.with_blocks(spin="collinear")
