"""Twisted multilayers and heterostructures (hotham.workflows.twist / hetero)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from ase.build import graphene, mx2

from hotham.parsers.openmx.dat import input_structure, read_openmx_input
from hotham.workflows import twisted_bilayer
from hotham.workflows.hetero import heterostructure, hexagonal_matches
from hotham.workflows.layers import as_slab, layer_orientation, neighbor_pairs, pristine_min_distance
from hotham.workflows.twist import commensurate_angles, twist_angle, twisted_double_bilayer, twisted_trilayer

INPUTS = Path(__file__).parent / "data" / "openmx_inputs"
G = graphene(a=2.46)


def _angle_formula(m, n):
    return math.degrees(math.acos((m * m + 4 * m * n + n * n) / (2 * (m * m + m * n + n * n))))


@pytest.mark.parametrize("m,n,natoms,deg", [(1, 2, 28, 21.79), (2, 3, 76, 13.17), (31, 32, 11908, 1.05)])
def test_tbg_counts_angles_distances(m, n, natoms, deg):
    a = twisted_bilayer(G, m, n)
    assert len(a) == natoms == 4 * (m * m + m * n + n * n)
    assert a.info["twist_angle"] == pytest.approx(_angle_formula(m, n), abs=1e-12)
    assert round(a.info["twist_angle"], 2) == deg
    # measured from the atoms (bond directions of each layer), independent of the construction
    tags = a.get_tags()
    meas = (layer_orientation(a, tags == 1) - layer_orientation(a, tags == 0)) % 60
    assert meas == pytest.approx(_angle_formula(m, n), abs=1e-6)
    # no two atoms of a layer closer than the pristine C-C bond (a / sqrt 3)
    i, j, d = neighbor_pairs(a, 1.6)
    same = tags[i] == tags[j]
    assert d[same].min() >= 2.46 / math.sqrt(3) * (1 - 1e-9)
    # every atom has exactly 3 in-layer neighbours at the bond length
    assert np.all(np.bincount(i[same], minlength=len(a)) == 3)


def test_tbg_matches_reference_run():
    """Our (1, 2) cell against the shipped tbg_21.79 OpenMX input (real run)."""
    ref, _ = input_structure(read_openmx_input(INPUTS / "tbg_21.79.dat"))
    a = twisted_bilayer(G, 1, 2)
    assert len(a) == len(ref)
    area = lambda x: abs(np.linalg.det(x.cell[:2, :2]))  # noqa: E731
    assert area(a) == pytest.approx(area(ref), rel=1e-12)
    # same set of interatomic distances up to 6 A
    _, _, d1 = neighbor_pairs(a, 6.0)
    _, _, d2 = neighbor_pairs(ref, 6.0)
    np.testing.assert_allclose(np.sort(d1), np.sort(d2), atol=1e-8)
    # and in fact the same atoms: every position matches one of the reference modulo the cell
    df = a.get_scaled_positions()[:, None] - ref.get_scaled_positions()[None]
    df -= np.round(df)
    dist = np.linalg.norm(df @ ref.cell[:], axis=2)
    assert dist.min(1).max() < 1e-8 and dist.min(0).max() < 1e-8


def test_commensurate_angles_listing():
    lst = commensurate_angles(200)
    by = {(d["m"], d["n"]): d for d in lst}
    assert by[(1, 2)]["n_atoms"] == 28 and by[(2, 3)]["n_atoms"] == 76
    for d in lst:
        assert d["n_atoms"] <= 200
        assert d["angle"] == pytest.approx(abs(twist_angle(d["m"], d["n"])))
    assert [d["angle"] for d in lst] == sorted((d["angle"] for d in lst), reverse=True)


def test_twisted_mos2_trilayer_double_bilayer():
    mos2 = mx2("MoS2", a=3.16)
    a = twisted_bilayer(mos2, 2, 3)
    assert len(a) == 2 * 3 * 19
    assert a.info["measured_twist"] == pytest.approx(_angle_formula(2, 3), abs=1e-6)
    assert a.info["min_intra"] >= pristine_min_distance(mos2) * (1 - 1e-9)
    tags = a.get_tags()
    gap = a.positions[tags == 1, 2].min() - a.positions[tags == 0, 2].max()
    assert gap == pytest.approx(3.35, abs=1e-9) and a.info["min_inter"] >= gap - 1e-9  # S-S planes
    t = twisted_trilayer(G, 1, 2, rotated_layer=1)
    assert len(t) == 42 and sorted(set(t.get_tags())) == [0, 1, 2]
    db = twisted_double_bilayer(G, 1, 2)
    assert len(db) == 56 and db.info["rotated_layers"] == [2, 3]
    z = [db.positions[db.get_tags() == k, 2].mean() for k in range(4)]
    np.testing.assert_allclose(np.diff(z), 3.35, atol=1e-9)


def test_graphene_hbn_heterostructure():
    hbn = graphene("BN", a=2.504)  # 1.8 % larger than graphene
    tol = 0.005
    a, m = heterostructure(G, hbn, twist_range=(0, 5), max_strain=tol, max_atoms=3000)
    assert m.max_strain <= tol and 0 <= abs(m.twist) <= 5
    assert len(a) == m.n_atoms == a.info["n_atoms"]
    tags = a.get_tags()
    # strain measured on the built hBN layer: its B-N bond against the pristine one
    i, j, d = neighbor_pairs(a, 1.6)
    bn = d[(tags[i] == 1) & (tags[j] == 1)]
    assert bn.min() / (2.504 / math.sqrt(3)) - 1 == pytest.approx(m.strain_top[0], abs=1e-9)
    assert d[(tags[i] == 0) & (tags[j] == 0)].min() == pytest.approx(2.46 / math.sqrt(3), abs=1e-9)
    # twist measured from the atoms against the pristine layers' own orientations
    og = layer_orientation(as_slab(G), np.ones(2, bool))
    ob = layer_orientation(as_slab(hbn), np.ones(2, bool))
    meas = ((layer_orientation(a, tags == 1) - ob) - (layer_orientation(a, tags == 0) - og) + 30) % 60 - 30
    assert meas == pytest.approx(m.twist, abs=1e-6)
    # tighter tolerance needs a larger cell; every match respects the tolerance
    ms = hexagonal_matches(G, hbn, max_strain=0.002, max_atoms=2000, twist_range=(0, 5))
    assert ms and all(x.max_strain <= 0.002 for x in ms) and ms[0].n_atoms >= m.n_atoms


def test_strain_on_bottom_and_mos2_ws2():
    a, m = heterostructure(mx2("MoS2", a=3.16), mx2("WS2", a=3.153), max_strain=0.005, max_atoms=300,
                           strain_on="bottom", twist_range=(0, 1))
    assert len(a) == 6 and m.strain_top[0] == 0 and m.strain_bottom[0] == pytest.approx(3.153 / 3.16 - 1)
    assert np.linalg.norm(a.cell[0]) == pytest.approx(3.153)


def test_zsl_rectangular_lattices():
    from ase import Atoms
    r1 = Atoms("Si2", positions=[(0, 0, 0), (1.5, 1.9, 0)], cell=[[3.0, 0, 0], [0, 3.8, 0], [0, 0, 0]])
    r2 = Atoms("Ge2", positions=[(0, 0, 0), (1.6, 2.0, 0)], cell=[[3.2, 0, 0], [0, 4.1, 0], [0, 0, 0]])
    a, m = heterostructure(r1, r2, max_strain=0.02, max_area=120, twist_range=(0, 180))
    assert m.method == "zsl" and m.max_strain <= 0.02 and len(a) == m.n_atoms
    # the strained top cell equals the bottom supercell exactly
    top_cell = m.top_F @ np.linalg.solve(m.top_F, m.target[:, :2].T)
    np.testing.assert_allclose(top_cell.T, m.target[:, :2], atol=1e-9)
    assert m.n_atoms == 2 * m.bottom_cells + 2 * m.top_cells
