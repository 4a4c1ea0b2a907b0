"""Band counts from the inertia of sparse factorisations, and the Fermi level by counting
against dense diagonalisation and against folded primitive cells (tiling is exact)."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg as sla

from hotham.electronic import Assembler, ShiftInvert, eigenvalues, find_fermi_level, solve, tile
from hotham.electronic.factor import have_pardiso
from hotham.electronic.fermi import (K_B, SLICE_KT, count_root, electron_count, fermi_level,
                                    irreducible_kpoints, monkhorst_pack)
from hotham.electronic.shift_invert import SolverError

BACKENDS = ["superlu"] + (["pardiso"] if have_pardiso() else [])


pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [(0.0, 0.0, 0.0), (0.1, 0.23, 0.0)])
def test_inertia_counts_bands_below_the_shift(mos2, backend, k):
    # 720 orbitals: from this size on MKL's complex Hermitian inertia was wrong (213 bands below
    # instead of 208 at k = (0.1, 0.23, 0)), which the factor's real embedding fixes
    op = tile(mos2, (4, 4, 1))
    asm = Assembler(op)
    e = sla.eigh(asm.H(k).toarray(), asm.S(k).toarray(), eigvals_only=True)
    # the exact matrix in double precision: its inertia is exact (tests of inexact factors below)
    si = ShiftInvert(op, 0.0, asm, backend=backend, inertia=True, precision="double", drop_tol=0.0)
    # shifts in the valence band, in the gap and in the conduction band, each off an eigenvalue
    for shift in (mos2.fermi_level - 1.137, mos2.fermi_level + 0.011, mos2.fermi_level + 2.071):
        assert si.move(shift).count(k) == int(np.sum(e < shift))
    # the same count comes with the eigenvalues nearest the shift
    vals, _ = si.solve(k, 6)
    assert si.info["n_below"] == int(np.sum(e < si.shift))
    np.testing.assert_allclose(vals, np.sort(e[np.argsort(np.abs(e - si.shift))[:6]]), atol=1e-7)


def test_a_wider_slice_reuses_the_factor(mos2):
    """A second solve at the same k and shift (the counting method widening a slice) takes the
    last factor again and starts from the last slice's vectors; another shift or k factorises."""
    op = tile(mos2, (3, 3, 1))
    si = ShiftInvert(op, mos2.fermi_level + 0.011, inertia=True)
    few, _ = si.solve([0, 0, 0], 6)
    count = si.info["n_below"]
    more, _ = si.solve([0, 0, 0], 12)
    assert si.info["factorised"] is False and si.info["t_factor"] == 0 and si.info["n_below"] == count
    np.testing.assert_allclose(few, np.sort(more[np.argsort(np.abs(more - si.shift))[:6]]), atol=1e-8)
    si.solve([0.1, 0.2, 0], 6)
    assert si.info["factorised"] is True
    si.move(si.shift + 0.1).solve([0.1, 0.2, 0], 6)
    assert si.info["factorised"] is True


def test_slices_widen_without_factorising_again(graphene):
    """At 3000 K (kT = 0.26 eV) the slices must reach 16 kT = 4 eV beyond E_F, so the counting
    method widens the first slice at its shift: one factorisation for both, and the E_F of the
    dense spectrum."""
    big = tile(graphene, (4, 4, 1))
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", temperature=3000.0, info=info)
    # to the tails beyond SLICE_KT (e^-16 of a state each): E_F lies in a 4 eV (16 kT) gap at
    # Gamma, where the electron count changes by only 0.02 per eV, so a slice's tail of 1e-8
    # electrons moves it by ~1e-6 eV (measured 0.9e-6 eV with slices reaching 18.8 kT below E_F)
    assert ef == pytest.approx(find_fermi_level(big, (1, 1, 1), method="dense", temperature=3000.0), abs=3e-6)
    assert info["slices"].shape[1] > 16 and len(info["shifts"]) >= 2
    assert info["factorisations"] == 1


def test_a_shift_on_a_known_eigenvalue_moves_before_factorising(graphene):
    """Graphene 24 x 24 at Gamma holds K: E_F sits on the four Dirac states, so a slice asked
    at E_F must move off them. The eigenvalues already known tell where, before factorising:
    3 factorisations where finding the eigenvalue first took 4; E_F that of the folded mesh."""
    big = tile(graphene, (24, 24, 1))
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", guess=graphene.fermi_level, info=info)
    assert ef == pytest.approx(find_fermi_level(graphene, (24, 24, 1), symmetry=False), abs=1e-8)
    assert info["factorisations"] <= 3


def test_a_shift_near_one_band_edge_sees_both(mos2):
    """A first shift in the gap of an insulator but 0.1 eV above its valence edge (the gap is
    2.3 eV): the slice takes its states from both sides of the shift, so it holds the
    conduction edge too and one factorisation gives E_F, the middle of the gap (a slice of the
    nearest states, all valence, needed a second shift across the gap)."""
    big = tile(mos2, (4, 4, 1))
    e = np.sort(eigenvalues(mos2, monkhorst_pack(mos2.atoms, (4, 4, 1))).ravel())
    n = int(round(electron_count(big) / 2))
    vbm, cbm = e[n - 1], e[n]
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", guess=vbm + 0.1, info=info)
    assert ef == pytest.approx(0.5 * (vbm + cbm), abs=1e-8)
    assert info["factorisations"] == 1 and "gap_search" not in info


def test_tile_scales_a_total_electron_count(graphene, mos2):
    assert graphene.meta["valence_electrons"] == 8.0
    assert electron_count(tile(graphene, (3, 3, 1))) == 72.0
    op = tile(mos2, (2, 1, 1))
    op.meta["valence_electrons"] = {"Mo": 14.0, "S": 6.0}     # per element: scales with the atoms
    assert electron_count(tile(op, (2, 1, 1))) == 4 * 26.0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("system", ["graphene", "mos2"])
@pytest.mark.parametrize("n", [3, 4])
def test_counting_equals_folded_primitive_and_dense(system, backend, n, request):
    # SuperLU: the exact matrix; PARDISO: its default single-precision, thinned factor, whose band
    # counts hold with every shift kept INERTIA_MARGIN away from the eigenvalues
    prim = request.getfixturevalue(system)
    big = tile(prim, (n, n, 1))
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", backend=backend, info=info)
    # Gamma of the n x n supercell holds the primitive bands of the Gamma-centred n x n mesh (for
    # n = 3 K included; for even n too, which ase's Monkhorst-Pack grid would have shifted off Gamma),
    # the whole mesh: OpenMX's blocks are symmetric to ~1e-7 eV, so one k-point per star moves a
    # mid-gap E_F by 3e-8 eV here
    assert ef == pytest.approx(find_fermi_level(prim, (n, n, 1), symmetry=False), abs=1e-8)
    assert ef == pytest.approx(find_fermi_level(big, (1, 1, 1), method="dense"), abs=1e-8)
    assert info["method"] == "count" and info["factorisations"] <= 4
    if system == "mos2" or n % 3:           # a gap on this mesh (graphene's K lies on it for n = 3)
        vbm, cbm = info["band_edges"]           # E_F in the middle of the gap
        assert cbm - vbm > (1.0 if system == "mos2" else 0.1) and ef == pytest.approx(0.5 * (vbm + cbm))
    else:
        assert info["slice_kT"] >= SLICE_KT          # a semimetal: Fermi-Dirac inside complete slices


def test_slices_reaching_slice_kt_give_the_fermi_level(graphene):
    """The counting method takes E_F from slices of eigenvalues once the interval they certify
    reaches SLICE_KT kT beyond it on both sides (states below full, above empty). Graphene's
    bands on the 72 x 72 mesh (those of the 10^4-atom tile at Gamma): every run of consecutive
    bands whose neighbours outside lie that far from the E_F it gives, gives the E_F of all
    bands to 1e-7 eV. At 8 kT a slice from the Dirac point up (nothing within 8.7 kT below it)
    was 49 ueV off, as the 72 x 72 tile was."""
    e = np.sort(eigenvalues(graphene, monkhorst_pack(graphene.atoms, (72, 72, 1))).ravel())
    n_el = electron_count(graphene) * 72 * 72
    full = fermi_level(e[None], n_el)
    kT, i0, taken = K_B * 300, int(np.searchsorted(e, full)), 0
    for m in (16, 32, 64, 128):
        for nb in range(i0 - m, i0 + 1):
            mu = fermi_level(e[None, nb:nb + m], n_el, n_below=[nb])
            if min(mu - e[nb - 1], e[nb + m] - mu) >= SLICE_KT * kT:
                assert mu == pytest.approx(full, abs=1e-7), (m, nb - i0)
                taken += 1
    assert taken > 20


def test_meshes_are_gamma_centred(graphene):
    for n in (1, 2, 3, 4, 6):
        k = monkhorst_pack(graphene.atoms, (n, n, 1))
        assert len(k) == n * n and np.all(k >= -0.5) and np.all(k < 0.5)
        assert np.allclose(np.sort(np.mod(k[:, 0] * n, n)), np.repeat(np.arange(n), n))   # the points i / n
        assert (np.abs(k) < 1e-12).all(axis=1).any()


def test_mesh_stars_of_the_space_group(graphene, mos2):
    """One k-point per star: graphene (P6/mmm) has 19 on 12 x 12 where time reversal alone leaves
    74; E_F is the same. A cell without symmetry keeps the pairs k, -k."""
    from hotham.electronic.kmesh import irreducible_mesh
    for op in (graphene, mos2):
        k, w = irreducible_mesh(op.atoms, (12, 12, 1))
        assert len(k) == 19 and w.sum() == pytest.approx(1.0) and np.all(np.abs(k) <= 0.5)
        pairs = irreducible_kpoints(monkhorst_pack(op.atoms, (12, 12, 1)))[0]
        assert len(pairs) == 74
        assert find_fermi_level(op, (12, 12, 1)) == pytest.approx(find_fermi_level(op, (12, 12, 1), symmetry=False),
                                                                   abs=1e-10)
    shaken = graphene.atoms.copy()
    shaken.positions[0] += [0.01, 0.02, 0.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # spglib's own deprecation notices stay inside
        k, w = irreducible_mesh(shaken, (6, 6, 1))
    k0, w0 = irreducible_kpoints(monkhorst_pack(shaken, (6, 6, 1)))
    assert len(k) == len(k0) == 20 and sorted(w) == pytest.approx(sorted(w0))


def test_counting_on_a_mesh_from_a_poor_guess(graphene):
    big = tile(graphene, (2, 2, 1))
    info = {}
    # above the threshold the counting method is used: the 3x3 mesh of the 2x2 cell (3 stars of P6/mmm)
    ef = find_fermi_level(big, (3, 3, 1), max_orbitals=10, guess=graphene.fermi_level - 15.0, info=info)
    assert info["method"] == "count" and info["rows"] == 3 and len(set(info["shifts"])) > 1
    assert ef == pytest.approx(find_fermi_level(big, (3, 3, 1), method="dense"), abs=1e-8)


def _counted(excess):
    """``excess`` recording the shifts it is called at."""
    calls = []

    def f(s):
        calls.append(s)
        return excess(s)
    return f, calls


def test_count_root_of_a_dirac_point_and_of_a_gap(graphene, mos2):
    """The count-only search that moves the first shift towards E_F (one factorisation per call):
    the bands below E of the primitive runs folded on a 72 x 72 (graphene, Dirac point: the count
    grows with the square of the distance) and a 58 x 58 mesh (MoS2, a 1.8 eV gap), from 8 and
    5 eV below E_F and 6 eV above. It stops within ``near`` bands of the filling, and in at most
    7 counts (doubling steps, then Brent's method, took more for graphene from below)."""
    for prim, n in ((graphene, 72), (mos2, 58)):
        e = np.sort(solve(prim, monkhorst_pack(prim.atoms, (n, n, 1))).energies.ravel())
        fill = electron_count(prim) / 2 * n * n
        ef = 0.5 * (e[int(fill) - 1] + e[int(fill)])
        for start in (ef - 8.0, ef - 5.0, ef + 6.0):
            f, calls = _counted(lambda s: np.searchsorted(e, s) - fill)
            shift = count_root(f, start, near=8)
            assert abs(np.searchsorted(e, shift) - fill) <= 8
            assert len(calls) <= 7, (prim, start, calls)


def test_count_root_on_a_level_of_many_bands_and_with_none():
    """A level holding more bands than ``near`` (a flat band) ends the search at the middle of a
    bracket narrower than xtol around it; a count that never reaches the filling raises."""
    f, calls = _counted(lambda s: 40 * np.sign(s - 0.3) if s != 0.3 else 0.0)
    assert count_root(f, -4.0, near=8, xtol=1e-3) == pytest.approx(0.3, abs=1e-3)
    assert len(calls) < 40
    with pytest.raises(SolverError, match="no Fermi level"):
        count_root(lambda s: -5.0, 0.0, near=1)


@pytest.mark.parametrize("cell, mesh", [("openmx/mos2_prim", (3, 3, 1)), ("deeph/mos2_bilayer_slid_1x1/001", (1, 1, 1)),
                                        ("deeph/graphene_hbn_slid_1x1/001", (3, 3, 1))])
def test_counting_from_the_on_site_estimate_finds_gaps_wider_than_a_slice(cell, mesh):
    """No first shift (the atomic on-site estimate, eV from E_F) on 4x4 tiles: at some k the gap is
    wider than the 16 eigenvalues nearest any one shift reach (MoS2 at Gamma, a slice entirely
    below or above it); the count still settles, bands N-1 and N searched per k-point, and gives
    the E_F of all bands."""
    import hotham.io
    big = tile(hotham.io.read(Path(__file__).parent / "data" / cell), (4, 4, 1))
    big.fermi_level = float("nan")
    info = {}
    ef = find_fermi_level(big, mesh, method="count", info=info)
    assert ef == pytest.approx(find_fermi_level(big, mesh, method="dense"), abs=1e-8)
    if "mos2" in cell:
        vbm, cbm = info["band_edges"]
        assert cbm - vbm > 1.0 and ef == pytest.approx(0.5 * (vbm + cbm))


def test_fermi_level_slice_and_gap_rules(mos2):
    e = eigenvalues(mos2, monkhorst_pack(mos2.atoms, 5))
    full = fermi_level(e, 26.0)
    # the same answer from slices of the spectrum with the bands below them counted
    cut = 5
    assert fermi_level(e[:, cut:], 26.0, n_below=np.full(len(e), cut)) == pytest.approx(full, abs=1e-12)
    vbm, cbm = e[:, 12].max(), e[:, 13].min()
    assert full == pytest.approx(0.5 * (vbm + cbm), abs=1e-12)
    k, w = irreducible_kpoints(monkhorst_pack(mos2.atoms, 5))
    assert len(k) == 13 and w.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("system", ["graphene", "mos2"])
def test_band_edges_sparse_equal_dense(system, request):
    prim = request.getfixturevalue(system)
    big = tile(prim, (3, 3, 1))
    big.fermi_level = find_fermi_level(big, (1, 1, 1))
    k = [[0, 0, 0], [0.1, 0.2, 0], [0.2, 0.2, 0]]       # real, then complex k (warm starts across them)
    sparse = eigenvalues(big, k, n_below=3, n_above=5, method="sparse")
    dense = eigenvalues(big, k, n_below=3, n_above=5, method="dense")
    np.testing.assert_allclose(sparse, dense, atol=1e-6)
    assert np.all(sparse[:, :3] < big.fermi_level) and np.all(sparse[:, 3:] >= big.fermi_level)
    full = eigenvalues(big, k)
    below = np.sum(full < big.fermi_level, axis=1)
    np.testing.assert_allclose(dense, [f[b - 3:b + 5] for f, b in zip(full, below)], atol=1e-10)


def test_band_edges_past_a_folded_cluster(mos2):
    # 9x9 MoS2 at Gamma, E_F mid-gap, folded states clustered at both edges (8 within 3 meV):
    # a slice of the states nearest E_F certified only the second conduction state, and took
    # three shifts (past the cluster and back into the gap); a slice that takes its states from
    # each side of E_F holds both edges at once, from one factorisation
    big = tile(mos2, (9, 9, 1))
    big.fermi_level = find_fermi_level(mos2, (9, 9, 1))
    sparse = solve(big, [[0, 0, 0]], n_below=4, n_above=4, method="sparse")
    dense = eigenvalues(big, [[0, 0, 0]], n_below=4, n_above=4, method="dense")
    np.testing.assert_allclose(sparse.energies, dense, atol=1e-6)
    (slices,) = sparse.slices
    assert len(slices) == 1 and slices[0]["shift"] == big.fermi_level
    assert slices[0]["t_factor"] > 0 and slices[0]["iterations"] >= 1


def test_cli_bands_band_edges(tmp_path, capsys):
    from pathlib import Path

    from hotham.cli import main
    run = Path(__file__).parent / "data" / "openmx" / "mos2_prim"
    assert main(["bands", str(run), "--band-edges", "2", "3", "--npoints", "12", "--quiet", "-o", str(tmp_path / "b")]) == 0
    data = np.loadtxt(tmp_path / "b.txt")
    assert data.shape == (len(data), 4 + 5)
    fermi = float(open(tmp_path / "b.txt").readline().split()[-1])
    assert np.all(data[:, 4:6] < fermi) and np.all(data[:, 6:] > fermi)       # the valence and conduction edges
    assert "deprecated" not in capsys.readouterr().err
    # the old flag, for one release: the same numbers, and a deprecation message
    assert main(["bands", str(run), "--edges", "2", "3", "--npoints", "12", "--quiet", "-o", str(tmp_path / "o")]) == 0
    assert "DeprecationWarning: --edges is deprecated" in capsys.readouterr().err
    assert np.array_equal(np.loadtxt(tmp_path / "o.txt"), data)


@pytest.mark.parametrize("run, reps", [("graphene_prim_spin", (3, 3, 1)), ("mos2_prim_soc", (2, 2, 1))])
def test_counting_collinear_and_soc(run, reps):
    from pathlib import Path

    import hotham.io as hio
    big = tile(hio.read(Path(__file__).parent / "data" / "openmx" / run), reps)
    assert find_fermi_level(big, (1, 1, 1), method="count") == pytest.approx(
        find_fermi_level(big, (1, 1, 1), method="dense"), abs=1e-8)


@pytest.mark.skipif(not have_pardiso(), reason="PARDISO's analysis (pip install pypardiso, in the test extra)")
@pytest.mark.parametrize("k", [(0.0, 0.0, 0.0), (0.1, 0.23, 0.0)])
def test_analysis_predicts_the_factorisation(mos2, k):
    """The symbolic analysis alone gives the factor's size and flop count (the benchmark's
    floor at moire scale, where the factorisation itself does not fit in memory)."""
    op = tile(mos2, (4, 4, 1))
    si = ShiftInvert(op, mos2.fermi_level + 0.011, backend="pardiso", inertia=True)
    a = si.analyse(k)
    si.count(k)
    assert a["factor_nnz"] == si.info["factor_nnz"] > 0
    assert a["factor_mflop"] == si.info["factor_mflop"] > 0
    assert 0 < a["memory_gb"] < 1


@pytest.mark.skipif(not have_pardiso(), reason="an inexact factor: PARDISO's single precision (pip install pypardiso)")
def test_counting_where_the_spectrum_is_denser_than_the_margin(graphene, monkeypatch):
    """At 10^4 atoms eigenvalues lie closer than INERTIA_MARGIN across whole slices (graphene
    72x72 failed so, from the on-site estimate at -11.6 eV); a margin of 3 eV does the same to a
    3x3 tile (its slices hold a gap of 4 eV, not of 6). Counts made while the shift moves are
    used as they are, those the answer rests on come from the exact factor, and E_F is the dense one."""
    import importlib
    monkeypatch.setattr(importlib.import_module("hotham.electronic.shift_invert"), "INERTIA_MARGIN", 3.0)
    big = tile(graphene, (3, 3, 1))
    big.fermi_level = float("nan")          # the on-site estimate, far from E_F
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", backend="pardiso", info=info)
    assert info["approximate"] >= 1 and info["exact"] >= 1
    assert ef == pytest.approx(find_fermi_level(big, (1, 1, 1), method="dense"), abs=1e-8)


@pytest.mark.skipif(not have_pardiso(), reason="PARDISO's precision setting")
def test_counts_use_a_double_precision_factor(mos2):
    """PARDISO pivots inside supernodes only, so a float32 factor's inertia can be wrong far from
    every eigenvalue: 36 x 36 MoS2 at mid-gap (0.68 eV from every band) counted 16 857 bands below
    where there are 16 848 (test_counts_at_mid_gap_of_a_large_insulator). Counting factors are
    double by default; those for eigenvalues alone stay single (exact residuals)."""
    big = tile(mos2, (3, 3, 1))
    assert ShiftInvert(big, -5.1, inertia=True, backend="pardiso").precision == "double"
    assert ShiftInvert(big, -5.1, backend="pardiso").precision == "single"


@pytest.mark.slow
def test_counts_at_mid_gap_of_a_large_insulator(mos2):
    """36 x 36 MoS2 (3888 atoms, 58 320 orbitals): at mid-gap the count is the 13 occupied bands
    of every formula unit (the default factor; a float32 one gave 9 more)."""
    big = tile(mos2, (36, 36, 1))
    assert ShiftInvert(big, -5.117, inertia=True).count([0, 0, 0]) == 13 * 36 * 36


@pytest.mark.slow
@pytest.mark.parametrize("system, n", [("graphene", 72), ("mos2", 58)])
def test_counting_at_ten_thousand_atoms_equals_folded_primitive(system, n, request):
    """Slow version of test_counting_equals_folded_primitive_and_dense at 10^4 atoms: graphene
    72x72 (10368 atoms, 134784 orbitals; Gamma of the tile holds K, so E_F sits on the Dirac
    point) and MoS2 58x58 (10092 atoms, 151380 orbitals; an insulator, E_F mid-gap). The tile's
    E_F from the inertia of its Gamma-point factorisations equals the primitive cell's on the
    folded n x n mesh, found dense, to 1e-6 eV (a band miscounted would move it by ~kT; slices
    reaching 8 kT instead of 16 left it 49 ueV off at 72 x 72). Times, memory and the measured
    differences: benchmarks/fermi_count.py (RESULTS.md, fermi-count*)."""
    prim = request.getfixturevalue(system)
    big = tile(prim, (n, n, 1))
    big.fermi_level = float("nan")          # no hint from the primitive run
    info = {}
    ef = find_fermi_level(big, (1, 1, 1), method="count", info=info)
    print(f"\n{system} {n}x{n}: {big.n_atoms} atoms, E_F {ef:.6f} eV, primitive "
          f"{find_fermi_level(prim, (n, n, 1), symmetry=False):.6f}"
          f" eV; {info['factorisations']} factorisations at shifts {[round(s, 3) for s in info['shifts']]}, "
          f"{info.get('approximate', 0)} approximate counts, {info.get('exact', 0)} exact refactorisations")
    assert info["method"] == "count"
    assert ef == pytest.approx(find_fermi_level(prim, (n, n, 1), symmetry=False), abs=1e-6)
