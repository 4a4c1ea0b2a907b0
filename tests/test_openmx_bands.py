"""Physics checks on real OpenMX 3.9.9 runs (tests/data/openmx, copied from ../shared/data):
the parsed H(R), S(R) reproduce OpenMX's own band structure, are Hermitian pairs, S(k) is
positive definite; the .out and .Band readers agree with the .scfout."""
import json
from pathlib import Path

import numpy as np
import pytest
from ase.units import Hartree

from hotham.electronic.compare import band_file_deviation, openmx_bands
from hotham.electronic.hk import Assembler
from hotham.parsers.openmx import parse_scfout, read_band, read_openmx, read_out, read_scfout

OPENMX = Path(__file__).parent / "data" / "openmx"
BAND_RUNS = ["graphene_prim", "hbn_prim", "mos2_prim", "bilayer_graphene_ab_prim", "mos2_prim_soc",
             "graphene_prim_spin", "mos2_prim_rotated", "graphene_prim_rotated"]
SPIN = {"mos2_prim_soc": "soc", "graphene_prim_spin": "collinear"}


@pytest.fixture(scope="module")
def ops():
    return {run: read_openmx(OPENMX / run) for run in BAND_RUNS}


def band_deviation(op, band):
    """max |bands of op - OpenMX's .Band eigenvalues| over all bands, k and spin (eV); ``band`` is
    the .Band file or read_band's (kpts, eigenvalues, info)."""
    return band_file_deviation(op, band)["max_abs_eV"]


@pytest.mark.parametrize("run", BAND_RUNS)
def test_bands_reproduce_openmx(ops, run):
    op = ops[run]
    assert op.spin == SPIN.get(run, "none")
    kpts, eig, info = read_band(OPENMX / run / f"{run}.Band")
    assert eig.shape == (2 if op.spin == "collinear" else 1, 60, op.n_orbitals * op.spin_factor)
    dev = band_deviation(op, OPENMX / run / f"{run}.Band")
    # measured: 2.1e-8 .. 4.8e-7 eV (all bands; the largest in bands 75-210 eV above E_F)
    assert dev < 1e-4, f"{run}: max band deviation {dev:.3e} eV"
    # same chemical potential in .Band and .scfout
    assert abs(info["chemp"] - op.fermi_level) < 1e-9


def test_collinear_channels_are_separate():
    """graphene_prim_spin converged to zero moment (Hks up == down exactly), so the band test
    alone cannot see a swapped or duplicated channel. Patch the file: Hks[1] <- Hks[0] + d OLP,
    which shifts every spin-down eigenvalue by exactly d; the up channel must not move."""
    import gzip
    run = "graphene_prim_spin"
    data = bytearray(gzip.decompress((OPENMX / run / f"{run}.scfout.gz").read_bytes()))
    raw = parse_scfout(bytes(data))
    assert raw.spinp_switch == 1 and np.array_equal(raw.Hks[0], raw.Hks[1])
    nnz, off, d = raw.OLP.size, raw.extra["matrix_offset"], 0.01  # Hartree
    data[off + 8 * nnz:off + 16 * nnz] = (raw.Hks[0] + d * raw.OLP).astype("<f8").tobytes()
    op = read_scfout(bytes(data))
    kpts, eig, info = read_band(OPENMX / run / f"{run}.Band")
    shifted = eig + np.array([0.0, d * Hartree])[:, None, None]
    assert band_deviation(op, (kpts, shifted, info)) < 1e-6
    assert band_deviation(op, (kpts, eig, info)) > 0.2


def test_band_check_can_fail(ops):
    """The band comparison detects a wrong Hamiltonian: dropping the R != 0 blocks beyond
    nearest cells, or a 1 meV shift of one on-site element, shows up."""
    op = ops["graphene_prim"]
    band = OPENMX / "graphene_prim" / "graphene_prim.Band"
    bad = op.copy()
    bad.h_block(op.onsite_edges()[0])[0, 0] += 1e-3
    assert band_deviation(bad, band) > 1e-4
    far = np.flatnonzero(np.abs(op.edge_R).max(axis=1) > 1)          # beyond the nearest cells
    assert len(far) > 0
    dropped = op.copy()
    for e in far:
        dropped.h_block(e)[...] = 0.0
    assert band_deviation(dropped, band) > 1e-4


@pytest.mark.parametrize("run", BAND_RUNS)
def test_hermitian_pairs_and_positive_overlap(ops, run):
    op = ops[run]
    # OpenMX's grid integration pairs blocks to 4.7e-10 Hartree (H) and 1.5e-10 (S)
    assert op.hermiticity_error("H") <= 1e-9 * Hartree
    assert op.hermiticity_error("S") <= 1e-9
    kpts, _, _ = read_band(OPENMX / run / f"{run}.Band")
    asm = Assembler(op)
    for M, tol in ((asm.dense(kpts, "S"), 1e-9), (asm.dense(kpts, "H"), 1e-9 * Hartree)):
        assert np.abs(M - np.conj(np.swapaxes(M, 1, 2))).max() < tol
    smin = np.linalg.eigvalsh(asm.dense(kpts, "S")).min()
    assert smin > 1e-4  # measured 5.9e-4 (hBN) .. 8.3e-3 (MoS2)


def test_symmetrize_option(ops):
    op = ops["mos2_prim"]
    sym = read_openmx(OPENMX / "mos2_prim", symmetrize=True)
    assert sym.hermiticity_error("H") == 0.0 and sym.hermiticity_error("S") == 0.0
    assert 0 < np.abs(sym.H - op.H).max() < 1e-8  # not done silently by default


def test_structure_and_metadata(ops):
    op = ops["mos2_prim"]
    meta = json.loads((OPENMX / "mos2_prim" / "meta.json").read_text())
    assert op.atoms.get_chemical_symbols() == ["Mo", "S", "S"]
    assert op.basis.shells == {"Mo": (0, 0, 0, 1, 1, 2, 2), "S": (0, 0, 1, 1, 2)}
    assert list(op.orbital_counts) == [19, 13, 13]
    assert op.meta["basis_labels"] == {"Mo": "Mo7.0-s3p2d2", "S": "S7.0-s2p2d1"}
    assert op.meta["valence_electrons"] == 26.0  # Mo 14 + 2 x S 6
    assert op.meta["spinp_switch"] == 0 and op.meta["openmx_version"] == "3.9.9"
    assert op.meta["scf_steps"] == meta["scf_steps"] and op.meta["scf_converged"]
    assert abs(op.fermi_level - meta["chemical_potential_hartree"] * Hartree) < 1e-9
    # geometry of the reference data: a = 3.16, c = 18.13, S 1.565 A above the Mo plane
    # (ase's Bohr differs from OpenMX's BohrR by 7e-8 relative)
    assert np.allclose(op.atoms.cell.lengths(), [3.16, 3.16, 18.13], atol=2e-6)
    assert abs(op.atoms.get_distance(0, 1, mic=True) - np.hypot(3.16 / np.sqrt(3), 1.565)) < 1e-5
    # every block is a directed edge within OpenMX's cutoff, the on-site blocks are i == j, R = 0
    assert len(op.onsite_edges()) == 3 and np.all(op.onsite_edges() >= 0)
    assert op.edge_lengths().max() < 2 * 7.0 * 0.5292 + 1e-6  # 2 x PAO cutoff 7.0 Bohr


@pytest.mark.parametrize("run", ["mos2_prim", "mos2_prim_soc", "bilayer_graphene_ab_prim"])
def test_out_reader_agrees_with_scfout(ops, run):
    op = ops[run]
    out = read_out(OPENMX / run / f"{run}.out.gz")
    assert out.version == "3.9.9"
    assert out.species_basis == op.meta["basis_labels"]
    assert abs(out.chemical_potential - op.fermi_level) < 1e-11 * Hartree  # .out prints 14 decimals
    assert out.converged and out.scf_steps == json.loads((OPENMX / run / "meta.json").read_text())["scf_steps"]
    assert out.scf_history[-1, 1] < 1e-7  # NormRD at convergence
    assert np.isfinite(out.total_energy) and out.total_energy < 0
    assert out.final_species == op.meta["species"]
    # final fractional coordinates = the .scfout positions (Bohr) in the .scfout cell, mod 1
    frac = np.linalg.solve(np.asarray(op.atoms.cell).T, op.atoms.positions.T).T
    d = out.fractional - frac
    assert np.abs(d - np.round(d)).max() < 1e-9
    atoms = out.final_atoms()
    assert atoms.get_chemical_symbols() == op.atoms.get_chemical_symbols()


def test_band_reader_layout():
    kpts, eig, info = read_band(OPENMX / "mos2_prim" / "mos2_prim.Band")
    assert kpts.shape == (60, 3) and eig.shape == (1, 60, 45)
    assert info["labels"] == ["G", "M", "K", "G"] and info["label_index"] == [0, 19, 39, 59]
    assert np.allclose(kpts[[0, 19, 20, 39, 59]], [[0, 0, 0], [.5, 0, 0], [.5, 0, 0], [1 / 3, 1 / 3, 0], [0, 0, 0]],
                       atol=1e-9)
    assert np.all(np.diff(eig, axis=-1) >= 0)  # ascending
    # reciprocal vectors: a_i . b_j = 2 pi delta_ij with the .scfout cell
    op = read_scfout(OPENMX / "mos2_prim" / "mos2_prim.scfout.gz")
    assert np.allclose(np.asarray(op.atoms.cell) @ info["rtv"].T, 2 * np.pi * np.eye(3), atol=1e-6)
    # MoS2 (PBE) direct gap at K in this run's .Band: 1.78 eV
    ne = 26  # valence electrons, 2 per band
    k = info["label_index"][2]
    assert abs(eig[0, k, ne // 2] - eig[0, k, ne // 2 - 1] - 1.78) < 0.01


def test_openmx_bands_path_and_energies(ops):
    """openmx_bands: the file's k-points as a KPath (special points at the corners, length from
    the cell), the spin channels side by side as eigenvalues() orders them, the chemical potential."""
    run = "graphene_prim_spin"
    op = ops[run]
    kp, e, chemp = openmx_bands(op.atoms, OPENMX / run / f"{run}.Band")
    kpts, eig, info = read_band(OPENMX / run / f"{run}.Band")
    assert e.shape == (60, 2 * op.n_orbitals) and np.array_equal(e, np.hstack([eig[0], eig[1]]))
    assert np.array_equal(kp.kpts, kpts) and chemp == info["chemp"]
    assert kp.labels == ["Γ", "M", "K", "Γ"] and np.array_equal(kp.special_x, kp.x[info["label_index"]])
    # the path length from the .scfout cell agrees with the one from the file's reciprocal vectors
    np.testing.assert_allclose(kp.x, info["x"], atol=1e-6)
