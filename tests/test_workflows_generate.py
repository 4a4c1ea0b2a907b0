"""Perturbed and slid structures (hotham.workflows.perturb / slide), checked against the
reference DeepH sets, which were drawn with numpy.random.default_rng(seed) in structure order."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from hotham.parsers.openmx.dat import input_structure, read_openmx_input
from hotham.workflows.perturb import gaussian_perturbations, phonopy_perturbations
from hotham.workflows.slide import bilayer, slid_structures

DATA = Path(__file__).parent / "data"
A = 2.46
CELL = [[A, 0, 0], [-A / 2, A * np.sqrt(3) / 2, 0], [0, 0, 0]]


def _graphene_ref_layer():
    # the reference data's graphene: C at fractional (1/3, 2/3), (2/3, 1/3)
    return Atoms("C2", positions=np.array([[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0]]) @ np.array(CELL), cell=CELL,
                 pbc=(True, True, False))


def _ref(path):
    return input_structure(read_openmx_input(path))[0]


def test_gaussian_reproduces_graphene_mono_2x2():
    ref = _ref(DATA / "deeph" / "graphene_mono_2x2" / "000" / "openmx.dat")
    base = _graphene_ref_layer()
    base.cell[2] = [0, 0, 15.0]
    base.positions[:, 2] = 7.5
    base = base.repeat((2, 2, 1))
    s = gaussian_perturbations(base, 2, displacement=0.05, seed=20251101)[0]
    np.testing.assert_allclose(s.cell[:], ref.cell[:], atol=1e-9)
    np.testing.assert_allclose(s.positions, ref.positions, atol=1e-9)


def test_slide_reproduces_bilayer_sets():
    layer = _graphene_ref_layer()
    ref = _ref(DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000" / "openmx.dat")
    base = bilayer(layer, stacking="AB", cell_height=18.40)
    s = slid_structures(base, n=1, distance=(3.25, 3.45), displacement=0.02, seed=20251102)[0]
    np.testing.assert_allclose(s.positions, ref.positions, atol=1e-9)
    ref = _ref(DATA / "openmx_inputs" / "bilayer_graphene_slid_2x2_000.dat")
    base = bilayer(layer, stacking="AB", cell_height=18.40, supercell=(2, 2))
    s = slid_structures(base, n=1, distance=(3.25, 3.45), displacement=0.04, seed=20251103, slide_cell=layer.cell[:2])[0]
    np.testing.assert_allclose(s.cell[:], ref.cell[:], atol=1e-9)
    np.testing.assert_allclose(s.positions, ref.positions, atol=1e-9)


def test_slide_grid_and_distances():
    base = bilayer(_graphene_ref_layer(), stacking="AB", interlayer=3.35)
    ss = slid_structures(base, grid=(3, 2), distance=[3.2, 3.5])
    assert len(ss) == 12
    tags = base.get_tags()
    for s in ss:
        gap = s.positions[tags == 1, 2].min() - s.positions[tags == 0, 2].max()
        assert gap == pytest.approx(s.info["d"][0])
        f = np.asarray(s.info["slide_frac"][0])
        shift = (s.positions[tags == 1] - base.positions[tags == 1])[:, :2]
        # the top layer moved rigidly by u a1 + v a2 modulo the cell
        d = np.linalg.solve(base.cell[:2, :2].T, (shift - f @ base.cell[:2, :2]).T).T
        np.testing.assert_allclose(d - np.round(d), 0, atol=1e-9)
        np.testing.assert_allclose(s.positions[tags == 0, :2], base.positions[tags == 0, :2], atol=1e-9)


def test_gaussian_strain_in_plane_only():
    base = _graphene_ref_layer()
    base.cell[2] = [0, 0, 15.0]
    base.positions[:, 2] = 7.5
    s = gaussian_perturbations(base, 3, displacement=0.0, strain=0.02, seed=1)
    for x in s:
        assert x.cell[2, 2] == 15.0 and np.allclose(x.cell[:2, 2], 0) and np.allclose(x.positions[:, 2], 7.5)
        assert not np.allclose(x.cell[:2], base.cell[:2])
        # same fractional coordinates: a homogeneous deformation
        np.testing.assert_allclose(x.get_scaled_positions(), base.get_scaled_positions(), atol=1e-12)


def test_phonopy_random_and_thermal():
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    s = phonopy_perturbations(cu, 3, supercell=(2, 2, 2), distance=0.03, seed=1)
    assert len(s) == 3 and len(s[0]) == 32
    np.testing.assert_allclose(np.linalg.norm(s[0].arrays["displacements"], axis=1), 0.03, rtol=1e-9)
    # force constants of EMT copper by finite differences (phonopy), then sample at high T:
    # classical equipartition gives <|u|^2> = kT tr(Phi^+), independent of the masses
    from ase.calculators.emt import EMT
    from ase.units import kB
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms
    unit = PhonopyAtoms(symbols=cu.get_chemical_symbols(), cell=cu.cell[:], scaled_positions=cu.get_scaled_positions())
    ph = Phonopy(unit, supercell_matrix=np.diag([2, 2, 2]), primitive_matrix="P")
    ph.generate_displacements(distance=0.01)
    forces = []
    for sc in ph.supercells_with_displacements:
        a = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        a.calc = EMT()
        forces.append(a.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    fc = ph.force_constants
    T, n = 3000.0, 200
    s = phonopy_perturbations(cu, n, supercell=(2, 2, 2), temperature=T, force_constants=fc, seed=3)
    u = np.array([x.arrays["displacements"] for x in s]).reshape(n, -1)
    N = fc.shape[0]
    Phi = fc.transpose(0, 2, 1, 3).reshape(3 * N, 3 * N)
    expected = kB * T * np.trace(np.linalg.pinv((Phi + Phi.T) / 2, rcond=1e-8))
    assert (u ** 2).sum(1).mean() == pytest.approx(expected, rel=0.05)
    with pytest.raises(Exception, match="force constants"):
        phonopy_perturbations(cu, 1, supercell=(2, 2, 2), temperature=300.0)


#: the commands that made the reference sets (../shared/data/README.md): set -> (arguments, structures checked)
REFERENCE_SETS = {
    "bilayer_graphene_slid_1x1": (["graphene", "-n", "14", "--distance", "3.25", "3.45", "--cell-height", "18.40",
                                   "--seed", "20251102"], [0, 13]),
    "graphene_hbn_slid_1x1": (["graphene", "--top", "hbn", "--stacking", "AA", "--lattice", "2.46", "2.504",
                               "-n", "16", "--distance", "3.20", "3.45", "--cell-height", "18.60",
                               "--seed", "20251201"], [0, 7, 15]),
    "mos2_bilayer_slid_1x1": (["MoS2", "--stacking", "AA", "--distance", "6.0", "6.6", "--between", "centres",
                               "-n", "16", "--cell-height", "24.90", "--seed", "20251202"], [0, 7, 15]),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_SETS))
def test_cli_slide_regenerates_reference_sets(name, tmp_path):
    """`hotham structure slide` with a set's seed writes its OpenMX inputs: species, cell, positions, k grid."""
    from hotham.cli import main
    args, checked = REFERENCE_SETS[name]
    assert main(["structure", "slide", *args, "--displacement", "0.02", "--kgrid", "9", "9", "1",
                 "-o", str(tmp_path / "runs")]) == 0
    for k in checked:
        ref_path = DATA / "deeph" / name / "000" / "openmx.dat" if k == 0 else DATA / "openmx_inputs" / f"{name}_{k:03d}.dat"
        ref_inp, inp = read_openmx_input(ref_path), read_openmx_input(tmp_path / "runs" / f"{k:03d}" / "openmx.dat")
        ref, s = input_structure(ref_inp)[0], input_structure(inp)[0]
        assert s.get_chemical_symbols() == ref.get_chemical_symbols()
        np.testing.assert_allclose(s.cell[:], ref.cell[:], atol=1e-9)
        np.testing.assert_allclose(s.positions, ref.positions, atol=1e-9)     # the .dat files carry 12 decimals
        assert inp.keywords["scf.kgrid"] == ref_inp.keywords["scf.kgrid"] == ["9", "9", "1"]


def test_slide_between_centres_and_drawn_lattice():
    """--between centres measures the layers' mean heights (Mo-Mo); a drawn lattice scales both layers."""
    from hotham.workflows.generate import generate_slid
    ss = generate_slid("MoS2", n=3, distance=(6.0, 6.6), between="centres", stacking="AA", seed=4)
    for s in ss:
        z = s.positions[:, 2]
        assert z[3] - z[0] == pytest.approx(s.info["d"][0], abs=1e-12)      # Mo of the top layer minus Mo of the bottom
    gh = generate_slid("graphene", top="hbn", stacking="AA", lattice=(2.40, 2.60), n=4, seed=5)
    for s in gh:
        assert 2.40 <= s.info["a"] <= 2.60 and np.linalg.norm(s.cell[0]) == pytest.approx(s.info["a"], abs=1e-12)
        assert s.get_chemical_symbols() == ["C", "C", "B", "N"]
    with pytest.raises(Exception, match="different in-plane cells"):
        generate_slid("graphene", top="hbn", n=1)
    # a grid takes one lattice constant (LO = HI; it was once dropped without a word), not a range
    (g,) = generate_slid("graphene", top="hbn", stacking="AB", grid=(1, 1), lattice=(2.55, 2.55), distance=3.35)
    assert np.linalg.norm(g.cell[0]) == pytest.approx(2.55, abs=1e-12)
    with pytest.raises(Exception, match="one lattice constant"):
        generate_slid("graphene", top="hbn", grid=(1, 1), lattice=(2.40, 2.60))
    # the drawn constant is the primitive cell's, also for a supercell (it once scaled the 2x2 cell's
    # |a1| to a, halving every bond: overlapping atoms)
    (s2,) = generate_slid("graphene", top="hbn", stacking="AA", supercell=(2, 2), lattice=(2.48, 2.48), n=1,
                          distance=3.4, seed=1)
    assert np.linalg.norm(s2.cell[0]) == pytest.approx(2 * 2.48, abs=1e-12) and s2.info["a"] == 2.48
    assert 1.4 < np.sort(s2.get_all_distances(mic=True)[0])[1] < 1.45       # the C-C bond of a = 2.48


def test_slide_inverted_top_layer_is_the_2h_orientation():
    """--inverted rotates the top layer by 180 deg about z: with AA stacking the top Mo sits over
    the bottom S and the top S over the bottom Mo (2H), where the default puts Mo over Mo (3R-like)."""
    from hotham.workflows.generate import generate_slid
    frac = {}
    for inverted in (False, True):
        s = generate_slid("MoS2", grid=(1, 1), distance=6.15, between="centres", stacking="AA", inverted=inverted)[0]
        f = s.get_scaled_positions()[:, :2]
        frac[inverted] = (f[0], f[1], f[3], f[4])          # bottom Mo, bottom S, top Mo, top S
        z = s.positions[:, 2]
        assert z[3] - z[0] == pytest.approx(6.15, abs=1e-12)
    mo, s_, top_mo, top_s = frac[False]
    np.testing.assert_allclose(top_mo, mo, atol=1e-12)
    mo, s_, top_mo, top_s = frac[True]
    np.testing.assert_allclose(top_mo, s_, atol=1e-12)
    np.testing.assert_allclose(top_s, mo, atol=1e-12)
