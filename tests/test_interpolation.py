"""The reduced-basis window model (hotham.electronic.interpolation) and its Wilson loops
(hotham.electronic.berry) against dense solves at every k: bands, bounds, adaptive sampling,
E_F, DOS, Mulliken weights, Berry phases and Chern numbers."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from ase import Atoms

from hotham.basis import Basis
from hotham.electronic import Assembler, band_path, find_fermi_level, solve, tile
from hotham.electronic.berry import link_matrices, loops_from_links, orbital_positions
from hotham.electronic.dos import broaden
from hotham.electronic.interpolation import TOUCH_TOL, count_below, fourier_components, window_model
from hotham.errors import HothamError
from hotham.operator import BlockOperator

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mos2_3x3(mos2):
    op = tile(mos2, (3, 3, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1))
    return op


def random_k(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.random((n, 2)), np.zeros(n)]


def dense_window(op, k, model):
    """The exact tracked bands [nk, m] of ``model`` from every band at k (dense LAPACK)."""
    e = solve(op, k).energies
    first = model.bands_below() - model.n_below
    return e[:, first:first + model.n_below + model.n_above]


def test_fourier_components_sum_to_the_bloch_matrices(mos2):
    op = tile(mos2, (2, 2, 1))
    R, H, S = fourier_components(op)
    asm = Assembler(op)
    k = np.array([0.31, 0.12, 0.0])
    ph = np.exp(2j * np.pi * (R @ k))
    assert abs(sum(p * h for p, h in zip(ph, H)) - asm.H(k)).max() < 1e-12
    assert abs(sum(p * s for p, s in zip(ph, S)) - asm.S(k)).max() < 1e-12


@pytest.mark.parametrize("backend", ["superlu", "pardiso"])
def test_overlap_floor_by_shift_invert_equals_the_dense_one(graphene, monkeypatch, backend):
    """The smallest eigenvalue of S(Gamma) of a large cell (the bounds' s_min) by shift-invert at 0
    through hotham's factorisation equals the dense one."""
    from hotham.electronic import dense, factor
    from hotham.electronic.interpolation import overlap_floor
    if backend == "pardiso" and not factor.have_pardiso():
        pytest.skip("pypardiso (MKL) not installed: the optional extra")
    op = tile(graphene, (3, 3, 1))
    want = overlap_floor(op, [[0, 0, 0]])                        # dense
    monkeypatch.setattr(dense, "DENSE_MAX", 10)
    monkeypatch.setattr(factor, "PARDISO_MIN_SIZE", 0 if backend == "pardiso" else 10**9)
    # a single-precision factor, then the Rayleigh quotient with the exact S: second order in
    # the vector's error (1.3e-8 relative here), never below the true floor
    got = overlap_floor(op, [[0, 0, 0]])
    assert got == pytest.approx(want, rel=1e-6) and got >= want * (1 - 1e-12)


def test_gamma_alone_is_caught_then_refined_to_the_dense_bands(mos2_2x2):
    """Gamma alone is too sparse a sampling of 2 x 2 MoS2: the bounds say so and hold; refined on
    the candidates, every tracked band at every k equals the dense one."""
    op = mos2_2x2
    model = window_model(op, [[0, 0, 0]], n_below=4, n_above=4, guard=3)
    k = random_k(8, seed=5)
    exact = dense_window(op, k, model)
    b = model.bands(k)
    err = np.abs(b.energies - exact)
    assert err.max() > 1e-3 and np.all(err <= b.bound + 1e-9)
    model.refine(k, tol=1e-4, per_round=4)
    b = model.bands(k)
    err = np.abs(b.energies - exact)
    assert np.all(err <= b.bound + 1e-12) and err.max() < 1e-8


def test_refine_on_measured_error_stops_and_never_solves_a_time_reversed_k(mos2_2x2):
    """``on="solve"``: ranked by bound, stopped by the error the exact solves measure at the worst
    k (the model's energies there before they join the basis, against the dense ones); no round
    solves at the -k of a sample (time reversal gives it), and the model is then good elsewhere."""
    from hotham.electronic.interpolation import _zone_distance
    op = mos2_2x2
    model = window_model(op, n_below=4, n_above=4, guard=3)           # Gamma, K, M: too few
    cand = model.mesh(6)
    b0 = model.bands(cand)
    log = []
    model.refine(cand, tol=1e-6, on="solve", per_round=3, max_samples=30, log=log)
    assert len(model.samples) < 30 and log[-1][2] < 1e-6 and all(c >= log[-1][2] for _, _, c in log[:-1])
    # the first round measured the model's error of the Gamma-only model at the k it took
    first = np.flatnonzero(_zone_distance(cand, model.samples[3:6]).min(axis=1) < 1e-9)
    assert 1e-4 < log[0][2] < 1.0
    np.testing.assert_allclose(log[0][2], np.abs(b0.energies[first] - dense_window(op, cand[first], model)).max(),
                               rtol=1e-6)
    d = _zone_distance(model.samples, model.samples)
    assert np.all(d[~np.eye(len(d), dtype=bool)] > 1e-6)       # no sample equals another or its -k
    k = random_k(6, seed=11)
    b = model.bands(k)
    err = np.abs(b.energies - dense_window(op, k, model))
    assert np.all(err <= b.bound + 1e-12) and err.max() < 1e-5
    with pytest.raises(HothamError, match="refine on"):
        model.refine(cand, on="residual")


@pytest.mark.slow
def test_sparse_sampling_is_caught_then_refined_to_the_dense_bands(mos2_3x3):
    """Three samples are too few away from them: the bounds say so (and hold); refining on the
    candidates brings every tracked band at every k to the dense value."""
    op = mos2_3x3
    model = window_model(op, n_below=4, n_above=4, guard=3)
    k = random_k(12)
    exact = dense_window(op, k, model)
    b = model.bands(k)
    err = np.abs(b.energies - exact)
    assert err.max() > 1e-3                                  # a too-sparse sampling is off ...
    assert np.all(err <= b.bound + 1e-9)                     # ... and the bound holds and says so
    assert b.bound.max() > 1e-2
    # at the sample k the model is exact
    np.testing.assert_allclose(model.bands(model.samples).energies, dense_window(op, model.samples, model), atol=1e-9)
    log = []
    model.refine(k, tol=1e-3, log=log, per_round=4)
    assert log[-1][1] < 1e-3 and len(model.samples) < 20
    b = model.bands(k)
    err = np.abs(b.energies - exact)
    assert np.all(err <= b.bound + 1e-12) and np.all(err <= b.estimate + 1e-12)
    assert err.max() < 1e-6                                  # second order in the residual
    # a path of other k: the model, not only the candidates, converged
    kp = np.linspace([0, 0, 0], [0.5, 0.3, 0], 7)
    bp = model.bands(kp)
    err = np.abs(bp.energies - dense_window(op, kp, model))
    assert np.all(err <= bp.bound + 1e-12) and err.max() < 1e-4


@pytest.fixture(scope="module")
def mos2_2x2(mos2):
    op = tile(mos2, (2, 2, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1))
    return op


@pytest.fixture(scope="module")
def mos2_model(mos2_2x2):
    """The window model of 2 x 2 MoS2, refined on the 6 x 6 mesh."""
    model = window_model(mos2_2x2, n_below=4, n_above=4, guard=3)
    return model.refine(model.mesh(6), tol=1e-5, per_round=3)


def test_fermi_level_dos_and_weights_equal_the_dense_ones(mos2_2x2, mos2_model):
    op, model = mos2_2x2, mos2_model
    k = model.mesh(6)
    exact = dense_window(op, k, model)
    # the count below the window from one inertia at Gamma equals the dense one
    dense_count = int(np.sum(solve(op, [[0, 0, 0]]).energies < model.count_energy))
    assert model.bands_below() == count_below(op, model.count_energy) == dense_count
    ef = model.fermi_level(6)
    assert abs(ef - find_fermi_level(op, (6, 6, 1), method="dense")) < 1e-6
    d = model.dos(6, width=0.02)
    ref = 2 * broaden(d.energies, exact, np.full(exact.size, 1 / len(k)), 0.02)
    np.testing.assert_allclose(d.total, ref, atol=1e-6 * ref.max())
    assert "6x6x1 mesh" in d.label and "gaussian 20 meV" in d.label
    # Mulliken weights of the tracked states (projected DOS, weight maps) equal the dense ones
    kk = random_k(3, seed=3)
    b = model.bands(kk, vectors=True)
    eig = solve(op, kk, vectors=True)
    first = model.bands_below() - model.n_below
    from hotham.electronic.states import atom_weights, orbital_weights
    w_ref = atom_weights(op, orbital_weights(op, kk, eig.vectors[:, :, first + 3:first + 5]))
    w = atom_weights(op, model.orbital_weights(kk, b.coefficients[:, :, 3:5]))
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-8)
    # the valence top and the conduction bottom are non-degenerate at random k
    np.testing.assert_allclose(w, w_ref, atol=1e-6)
    pd = model.dos(6, width=0.02, project="species")
    np.testing.assert_allclose(sum(pd.projected.values()), pd.total, atol=1e-8)


@pytest.mark.parametrize("reps", [(2, 2, 1), pytest.param((3, 3, 1), marks=pytest.mark.slow)])
def test_graphene_semimetal_fermi_level_at_the_dirac_point(graphene, reps):
    """A semimetal at neutrality: the count energy at the Dirac point, where two states touch at
    K; the states there are split half below, half above, and E_F is that of the dense mesh."""
    op = tile(graphene, reps)
    op.fermi_level = find_fermi_level(op, (6, 6, 1))
    model = window_model(op, n_below=3, n_above=3, guard=3)
    model.refine(model.mesh(6), tol=1e-5, per_round=4)
    k = model.mesh(6)
    np.testing.assert_allclose(model.bands(k).energies, dense_window(op, k, model), atol=1e-8)
    assert abs(model.fermi_level(6) - find_fermi_level(op, (6, 6, 1), method="dense")) < 1e-6


def test_band_indices_carried_from_gamma_when_the_count_energy_cuts_bands(graphene):
    """A first guess of E_F 0.7 eV below the Dirac point cuts the bands, so the count below it
    differs between k; the index of the Ritz values, carried from the one inertia at Gamma by
    continuity, equals the dense one at every k; the tracked bands are the same bands at every k,
    E_F from them equals the dense E_F, and the model recentred there tracks the bands around E_F
    without a new solve."""
    op = tile(graphene, (2, 2, 1))
    ef = find_fermi_level(op, (6, 6, 1), method="dense")
    op.fermi_level = ef
    c = ef - 0.7
    model = window_model(op, n_below=3, n_above=3, guard=3, count_energy=c)
    model.refine(model.mesh(6), tol=1e-6, per_round=4)
    k = np.concatenate([random_k(6, seed=1), [[0.5, 0.5, 0.0], [-0.3, 0.7, 0.0]]])
    e = solve(op, k).energies
    assert len(set(np.sum(e < c, axis=1).tolist())) > 1            # the count below c changes with k
    offsets = model.band_offsets(k)
    ritz = model.ritz(k)[0]
    inner = slice(model.guard, ritz.shape[1] - model.guard)
    np.testing.assert_allclose(ritz[:, inner], np.take_along_axis(e, offsets[:, None] + np.arange(ritz.shape[1]), 1)[:, inner],
                               atol=1e-8)
    np.testing.assert_allclose(model.bands(k).energies, dense_window(op, k, model), atol=1e-8)
    # a band path is walked through its own k (a mesh, above, along b1 then b2): the same indices
    from hotham.electronic.interpolation import _axis_lines, _subdivide
    path = band_path(op.atoms, [[0, 0, 0], [1 / 3, 1 / 3, 0], [0.5, 0, 0], [0, 0, 0]], npoints=60).kpts
    assert len(_subdivide(np.vstack([np.zeros((1, 3)), path]), 1 / 24)[0]) < sum(len(x[0]) for x in _axis_lines(path, 1 / 24))
    ep = solve(op, path).energies
    # the walk reuses the Ritz values bands() has at the path's k: about one evaluation per k
    evaluated, plain_ritz = [], model.ritz
    model.ritz = lambda kk: evaluated.append(len(kk)) or plain_ritz(kk)
    model.bands(path)
    del model.ritz
    assert sum(evaluated) <= len(path) + 2
    np.testing.assert_allclose(model.ritz(path)[0][:, inner],
                               np.take_along_axis(ep, model.band_offsets(path)[:, None] + np.arange(ritz.shape[1]), 1)[:, inner],
                               atol=1e-8)
    assert abs(model.fermi_level(6) - ef) < 1e-6
    solves = model.solves
    model.recentre(ef)
    # the count at Gamma below a new energy comes from the Gamma sample's exact states, no inertia
    assert model._count == count_below(op, ef - TOUCH_TOL)
    eg = model.sample_energies[0] + TOUCH_TOL                          # Gamma: the first sample
    for x in 0.5 * (eg[1:] + eg[:-1]):
        assert model._count_moved(x) == count_below(op, x - TOUCH_TOL)
    assert model._count_moved(eg[-1] + 1.0) is None                    # outside the sampled window: count again
    assert model.solves == solves and abs(model.fermi_level(6) - ef) < 1e-6
    np.testing.assert_allclose(model.bands(k).energies, dense_window(op, k, model), atol=1e-8)
    with pytest.raises(HothamError, match="outside the sampled window"):
        model.recentre(ef + 50.0)


def test_tracked_bands_near_a_dirac_point_do_not_jump(graphene):
    """A count energy 3 meV below the Dirac point (a model's E_F is as close): near K one state of
    the cone lies within TOUCH_TOL of it and the other not, where a split at the count energy
    jumps by a band (6.5 eV off at some k). The tracked bands stay the same bands, the dense ones
    of the same indices, on a fine path through K."""
    op = tile(graphene, (2, 2, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1), method="dense")
    model = window_model(op, n_below=2, n_above=2, guard=3, count_energy=op.fermi_level - 0.003)
    model.refine(model.mesh(6), tol=1e-6, per_round=4)
    K = np.array([1 / 3, 1 / 3, 0.0])
    k = K + np.linspace(-0.001, 0.001, 21)[:, None] * np.array([1.0, 0.3, 0.0])
    np.testing.assert_allclose(model.bands(k).energies, dense_window(op, k, model), atol=1e-6)


# ---------------------------------------------------------------------- Berry phases, Chern numbers
def haldane(t1=-1.0, t2=0.15, phi=np.pi / 2, mass=0.0) -> BlockOperator:
    """Haldane's model (Phys. Rev. Lett. 61, 2015 (1988)) in a spin-orbit operator: one s orbital per
    honeycomb site whose spin-up part holds the model (nearest-neighbour hopping t1, second
    neighbours t2 exp(+-i phi), sublattice mass +-mass), with a small nearest-neighbour overlap;
    spin down is pushed to +20 eV, and a second s shell to -20 eV (states below the group)."""
    a = 2.46
    atoms = Atoms("C2", cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15]],
                  scaled_positions=[[1 / 3, 2 / 3, 0.5], [2 / 3, 1 / 3, 0.5]], pbc=True)
    basis = Basis({"C": (0, 0)})
    Rs = list(itertools.product(range(-2, 3), range(-2, 3), [0]))
    ei, ej, eR = map(np.array, zip(*[(i, j, R) for i in range(2) for j in range(2) for R in Rs]))
    op = BlockOperator(atoms, basis, ei, ej, eR, spin="soc")
    pos, cell = atoms.positions, np.asarray(atoms.cell)
    d = pos[ej] + eR @ cell - pos[ei]
    dist = np.linalg.norm(d, axis=1)
    bonds = (pos[1] + np.array(R) @ cell - pos[0] for R in Rs)
    nn_vec = {0: [v for v in bonds if abs(np.linalg.norm(v) - a / np.sqrt(3)) < 1e-6]}
    nn_vec[1] = [-v for v in nn_vec[0]]
    H = np.zeros((op.n_edges, 2, 2, 2, 2), complex)      # [edge, spin, shell, spin, shell]
    S = np.zeros((op.n_edges, 2, 2))
    for e in range(op.n_edges):
        i = ei[e]
        if dist[e] < 1e-6:
            H[e, 0, 0, 0, 0] = mass * (1 if i == 0 else -1)
            H[e, 1, 0, 1, 0] = 20.0
            H[e, 0, 1, 0, 1] = H[e, 1, 1, 1, 1] = -20.0
            S[e] = np.eye(2)
        elif abs(dist[e] - a / np.sqrt(3)) < 1e-6:
            H[e, 0, 0, 0, 0] = t1
            S[e, 0, 0] = 0.05
        elif abs(dist[e] - a) < 1e-6:
            # the chirality of the two bonds from i to j through their common neighbour
            first = [v for v in nn_vec[i] if any(np.linalg.norm(d[e] - v - w) < 1e-6 for w in nn_vec[1 - i])][0]
            nu = np.sign(np.cross(first, d[e] - first)[2])
            H[e, 0, 0, 0, 0] = t2 * np.exp(1j * nu * phi)
    # spin-major blocks [2 n_i, 2 n_j] flattened, as hotham stores spin-orbit H
    op = op.with_blocks(H=H.reshape(op.n_edges, 4, 4).reshape(-1), S=S.reshape(-1), spin="soc")
    op.fermi_level = 0.0
    op.meta["valence_electrons"] = 6.0                   # the -20 eV shell (4 states) and the lower band
    return op


def below_group(op) -> int:
    """States of the -20 eV shell (below the Haldane bands), from Gamma."""
    return int(np.sum(solve(op, [[0, 0, 0]]).energies < -10))


def dense_wilson(op, bands_first, g, n1, n2):
    """Wilson loops from dense eigenvectors with the same links (the reference)."""
    i, j = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    k = np.stack([i / n1, j / n2, 0 * i], -1).reshape(-1, 3).astype(float)
    eig = solve(op, k, vectors=True)
    e = eig.energies
    x = eig.vectors[:, :, bands_first:bands_first + g]
    asm = Assembler(op)
    Sd = asm.dense(k, "S")
    Sx = (Sd @ x).reshape(n1, n2, *x.shape[1:])
    x = x.reshape(n1, n2, *x.shape[1:])
    tau = orbital_positions(op)
    M1 = link_matrices(x, np.roll(Sx, -1, axis=0), tau, (1 / n1, 0, 0))
    M2 = link_matrices(x, np.roll(Sx, -1, axis=1), tau, (0, 1 / n2, 0))
    gap = min((e[:, bands_first] - e[:, bands_first - 1]).min(), (e[:, bands_first + g] - e[:, bands_first + g - 1]).min())
    return loops_from_links(M1, M2, gap, np.arange(g), (n1, n2), 0.0)


@pytest.mark.parametrize("phi, chern", [(np.pi / 2, -1), (-np.pi / 2, 1), (0.0, 0)])
def test_chern_number_of_haldane_model_equals_the_dense_wilson_loops(phi, chern):
    op = tile(haldane(phi=phi, mass=1.0 if phi == 0 else 0.0), (2, 2, 1))
    model = window_model(op, n_below=4, n_above=4, guard=2, count_energy=0.0)
    model.refine(model.mesh(4), tol=1e-8)
    w = model.wilson_loops(range(0, 4), mesh=(12, 12))
    ref = dense_wilson(op, below_group(op), 4, 12, 12)
    assert abs(ref.chern) == abs(chern) and w.chern == ref.chern
    assert abs(w.chern_sum - w.chern) < 1e-8
    np.testing.assert_allclose(w.curvature, ref.curvature, atol=1e-7)
    np.testing.assert_allclose(np.exp(1j * w.phases), np.exp(1j * ref.phases), atol=1e-7)
    np.testing.assert_allclose(np.exp(1j * w.berry_phase), np.exp(1j * ref.berry_phase), atol=1e-7)
    assert w.chern == chern                                   # its sign follows phi's


def test_wilson_loops_of_a_tiled_cell_from_few_samples_equal_the_dense_ones():
    """A 3 x 3 Haldane supercell from samples: the 9 folded lower bands together carry the
    primitive band's Chern number, and the Wilson-loop phases equal the dense ones."""
    op = tile(haldane(), (3, 3, 1))
    model = window_model(op, n_below=9, n_above=9, guard=2, count_energy=0.0)
    model.refine(model.mesh(3), tol=1e-6)
    w = model.wilson_loops(range(0, 9), mesh=(6, 6))
    ref = dense_wilson(op, below_group(op), 9, 6, 6)
    assert abs(w.chern) == 1 and w.chern == ref.chern
    np.testing.assert_allclose(w.curvature, ref.curvature, atol=1e-6)
    np.testing.assert_allclose(np.exp(1j * w.berry_phase), np.exp(1j * ref.berry_phase), atol=1e-6)


def test_a_group_that_is_not_isolated_is_refused(graphene):
    op = tile(graphene, (2, 2, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1))
    model = window_model(op, n_below=2, n_above=2, guard=2)
    with pytest.raises(HothamError, match="not isolated"):
        model.wilson_loops([1, 2], mesh=(6, 6))      # the Dirac bands touch at K


def test_pictures_of_a_window_model(mos2_2x2, mos2_model, tmp_path):
    """The three moire pictures draw from a model: bands as lines with direct solves over them,
    a DOS titled with its mesh, broadening and window, a weight map per layer."""
    from matplotlib.figure import Figure

    from hotham.electronic import band_path, save_figure
    from hotham.electronic.plot import moire_sites, plot_weight_map, plot_window_bands, plot_window_dos
    op, model = mos2_2x2, mos2_model
    path = band_path(op.atoms, "GMKG", npoints=60)
    b = model.bands(path.kpts)
    fig = Figure()
    ax1, ax2, ax3 = fig.subplots(1, 3)
    ref = dense_window(op, path.kpts[::20], model)
    plot_window_bands(ax1, path, b, reference=(path.x[::20], ref), unit="eV")
    assert len(ax1.lines) >= b.energies.shape[1]
    d = model.dos(3, width=0.05)
    plot_window_dos(ax2, d)
    assert "3x3x1 mesh" in ax2.get_title()
    w = model.group_weights([3, 4], mesh=2)
    assert abs(w.sum() - 1) < 1e-8
    z = op.atoms.positions[:, 2]
    plot_weight_map(ax3, op.atoms, w, z > z.mean())
    save_figure(fig, tmp_path / "window.png")
    assert (tmp_path / "window.png").stat().st_size > 10_000
    sites = moire_sites(op.atoms.cell)
    assert set(sites) == {"AA", "AB", "BA"} and np.allclose(sites["AA"], 0)


def test_projections_are_not_held_during_an_exact_solve(graphene, monkeypatch):
    """A new sample's exact solve runs without the model's projections (rebuilt after it: at 10^5
    orbitals they would sit beside the factor); a solve that fails leaves the model as it was."""
    import importlib
    solve_module = importlib.import_module("hotham.electronic.solve")   # the module (the package exports the function)
    from hotham.electronic.shift_invert import SolverError
    op = tile(graphene, (2, 2, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1), method="dense")
    model = window_model(op, n_below=2, n_above=2, guard=2)
    real, held = solve_module.solve, []

    def spy(*args, **kw):
        held.append(any(x is not None for x in (model._KB, model._SB, model._A, model._C, model.h)))
        return real(*args, **kw)
    monkeypatch.setattr(solve_module, "solve", spy)
    model.add([[0.25, 0.1, 0.0]])
    assert held and not any(held)
    before = model.bands(model.mesh(3)).energies

    def fail(*args, **kw):
        raise SolverError("the factorisation ran out of memory")
    monkeypatch.setattr(solve_module, "solve", fail)
    with pytest.raises(SolverError, match="out of memory"):
        model.add([[0.1, 0.2, 0.0]])
    np.testing.assert_allclose(model.bands(model.mesh(3)).energies, before, atol=1e-12)


def test_bands_of_the_same_k_again_are_not_recomputed(graphene, monkeypatch):
    """The model keeps its last bands: the same k again (E_F on a mesh, then its DOS; the Wilson
    loops of several groups) costs no Ritz step and gives the same numbers; a new sample drops them."""
    op = tile(graphene, (2, 2, 1))
    op.fermi_level = find_fermi_level(op, (6, 6, 1), method="dense")
    model = window_model(op, n_below=2, n_above=2, guard=2)
    k = model.mesh(4)
    first = model.bands(k, vectors=True)
    calls = []
    ritz = model.ritz
    monkeypatch.setattr(model, "ritz", lambda *a: calls.append(1) or ritz(*a))
    again = model.bands(k)
    assert not calls and again.coefficients is None
    np.testing.assert_array_equal(again.energies, first.energies)
    np.testing.assert_array_equal(again.bound, first.bound)
    again.energies[:] = 0.0                                            # a caller's copy: the kept one is intact
    kept = model.bands(k, vectors=True)
    np.testing.assert_array_equal(kept.energies, first.energies)
    np.testing.assert_array_equal(kept.coefficients, first.coefficients)
    assert not calls
    model.add([[0.25, 0.1, 0.0]])
    calls.clear()
    model.bands(k)
    assert calls
