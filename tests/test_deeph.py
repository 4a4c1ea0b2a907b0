"""DeepH-pack legacy folders: reading real converted OpenMX data, writing, round trips, errors."""
from __future__ import annotations

import json
import os
import shutil
import stat

import h5py
import numpy as np
import pytest
from ase import Atoms

import hotham.io as hio
from hotham.basis import Basis
from hotham.errors import BasisError, FormatError, HothamError
from hotham.parsers.deeph import read_deeph, write_deeph
from conftest import DATA, random_operator

MONO = DATA / "deeph" / "graphene_mono_2x2" / "000"
BILAYER = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"

# OpenMX -> internal permutation for C6.0-s2p2d1 (s, s, p, p, d), built here from OpenMX's order
# (p: x, y, z; d: 3z^2-r^2, x^2-y^2, xy, xz, yz; new[m] = old[p[m]], p = [1, 2, 0] for l = 1,
# [2, 4, 0, 3, 1] for l = 2), not from hotham's table.
_P = {0: [0], 1: [1, 2, 0], 2: [2, 4, 0, 3, 1]}
PERM_C = np.concatenate([k + np.array(_P[l]) for k, l in zip([0, 1, 2, 5, 8], [0, 0, 1, 1, 2])])


def _raw(folder, name, key):
    with h5py.File(folder / name, "r") as f:
        return f[key][()]


def _keys(folder, name):
    with h5py.File(folder / name, "r") as f:
        return set(f.keys())


@pytest.mark.parametrize("folder", [MONO, BILAYER])
def test_read_real_folder_matches_raw_files(folder):
    op = read_deeph(folder)
    n = len(np.loadtxt(folder / "element.dat"))
    assert op.n_atoms == n and op.spin == "none"
    np.testing.assert_array_equal(op.atoms.numbers, np.loadtxt(folder / "element.dat").astype(int))
    np.testing.assert_array_equal(op.atoms.positions, np.loadtxt(folder / "site_positions.dat").T)
    np.testing.assert_array_equal(np.asarray(op.atoms.cell), np.loadtxt(folder / "lat.dat").T)
    assert op.fermi_level == json.loads((folder / "info.json").read_text())["fermi_level"]
    assert op.n_edges == len(_keys(folder, "hamiltonians.h5"))
    assert op.basis.shells == {"C": (0, 0, 1, 1, 2)}
    assert op.basis.labels == {"C": "C6.0-s2p2d1"}          # from openmx.dat beside the data
    assert op.meta["valence_electrons"] == {"C": 4.0}        # 2.00 up + 2.00 down in openmx.dat

    # one on-site and one off-site block, compared with the raw (OpenMX-ordered) h5 values
    offsite = sorted(k for k in _keys(folder, "hamiltonians.h5") if not k.startswith("[0, 0, 0"))[0]
    for key in ("[0, 0, 0, 1, 1]", offsite):
        Rx, Ry, Rz, i, j = json.loads(key)
        e = op.find_edge(i - 1, j - 1, (Rx, Ry, Rz))
        np.testing.assert_array_equal(op.h_block(e), _raw(folder, "hamiltonians.h5", key)[np.ix_(PERM_C, PERM_C)])
        np.testing.assert_array_equal(op.s_block(e), _raw(folder, "overlaps.h5", key)[np.ix_(PERM_C, PERM_C)])
    # internal order puts p_x last in each p shell: the raw p_x self-overlap lands at index 4
    assert op.s_block(op.find_edge(0, 0))[4, 4] == _raw(folder, "overlaps.h5", "[0, 0, 0, 1, 1]")[2, 2]


def test_real_data_hermitian_pairing():
    op = read_deeph(MONO)
    # OpenMX pairs H_ji(-R) = H_ij(R)^T only to its grid noise (~1e-8 eV): a wrong pairing of
    # keys or a transposed read would give errors of eV
    report = op.check(h_tol=1e-6, s_tol=1e-8)
    assert report["H_hermiticity"] < 1e-6 and report["S_hermiticity"] < 1e-8
    assert (op.onsite_edges() >= 0).all()


@pytest.mark.parametrize("folder", [MONO, BILAYER])
def test_round_trip_real_is_exact(folder, tmp_path):
    op = read_deeph(folder)
    out = tmp_path / "copy"
    write_deeph(out, op)
    back = read_deeph(out)
    np.testing.assert_array_equal(back.H, op.H)
    np.testing.assert_array_equal(back.S, op.S)
    for name in ("edge_i", "edge_j", "edge_R"):
        np.testing.assert_array_equal(getattr(back, name), getattr(op, name))
    np.testing.assert_array_equal(back.atoms.positions, op.atoms.positions)
    np.testing.assert_array_equal(np.asarray(back.atoms.cell), np.asarray(op.atoms.cell))
    np.testing.assert_array_equal(back.atoms.numbers, op.atoms.numbers)
    assert back.fermi_level == op.fermi_level and back.basis.shells == op.basis.shells
    # the written folder is the original layout: same keys, same raw blocks, same text files
    for name in ("hamiltonians.h5", "overlaps.h5"):
        assert _keys(out, name) == _keys(folder, name)
        key = sorted(_keys(folder, name))[7]
        np.testing.assert_array_equal(_raw(out, name, key), _raw(folder, name, key))
        with h5py.File(out / name) as f:
            assert f[key].dtype == np.float64 and f[key].compression is None
    for name in ("element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat"):
        np.testing.assert_array_equal(np.loadtxt(out / name), np.loadtxt(folder / name))
    np.testing.assert_allclose(np.loadtxt(out / "rlat.dat"), np.loadtxt(folder / "rlat.dat"), rtol=1e-14, atol=1e-15)
    R_set = lambda p: set(map(tuple, np.loadtxt(p / "R_list.dat").astype(int)))
    assert R_set(out) == R_set(folder)
    info_out, info_in = (json.loads((p / "info.json").read_text()) for p in (out, folder))
    assert info_out == info_in
    assert "\t" in (out / "lat.dat").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temp folder left
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask       # not mkdtemp's 0700


def _hbn_operator(spin="none", seed=1):
    a = 2.5
    atoms = Atoms("BN", scaled_positions=[(1 / 3, 2 / 3, 0.5), (2 / 3, 1 / 3, 0.5)],
                  cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]], pbc=True)
    basis = Basis({"B": (0, 0, 1, 1, 2), "N": (0, 1, 2)})
    op = random_operator(atoms=atoms, basis=basis, seed=seed, spin=spin)
    op.fermi_level = -4.25
    return op


@pytest.mark.parametrize("spin", ["none", "soc"])
def test_round_trip_random_two_species(spin, tmp_path):
    op = _hbn_operator(spin)
    hio.write(tmp_path / "hbn", op, format="deeph")
    assert hio.detect_format(tmp_path / "hbn") == "deeph"
    back = hio.read(tmp_path / "hbn")
    assert back.spin == spin and back.basis.shells == op.basis.shells
    np.testing.assert_array_equal(back.H, op.H)
    np.testing.assert_array_equal(back.S, op.S)
    # edges come back in canonical (i, j, R) order: compare block by block
    for e in range(op.n_edges):
        f = back.find_edge(op.edge_i[e], op.edge_j[e], op.edge_R[e])
        np.testing.assert_array_equal(back.h_block(f), op.h_block(e))
    info = json.loads((tmp_path / "hbn" / "info.json").read_text())
    assert info["isspinful"] == (spin == "soc") and info["nsites"] == 2
    with h5py.File(tmp_path / "hbn" / "hamiltonians.h5") as f:
        b = f["[0, 0, 0, 1, 2]"]
        assert b.shape == ((26, 18) if spin == "soc" else (13, 9))
        assert b.dtype == (np.complex128 if spin == "soc" else np.float64)
        # the file is in OpenMX order: B's first p shell is (x, y, z) = internal (y, z, x)[2, 0, 1]
        e = op.find_edge(0, 1)
        np.testing.assert_array_equal(b[()][2:5, 0], op.h_block(e)[[4, 2, 3], 0])


def test_write_replaces_existing_deeph_folder_and_refuses_others(tmp_path):
    op = _hbn_operator()
    target = tmp_path / "out"
    write_deeph(target, op)
    op2 = _hbn_operator(seed=5)
    write_deeph(target, op2)
    np.testing.assert_array_equal(read_deeph(target).H, op2.H)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(HothamError, match="refusing"):
        write_deeph(other, op)
    assert (other / "keep.txt").read_text() == "mine"
    # collinear spin has no DeepH form: nothing (not even a temp folder) is left behind
    with pytest.raises(HothamError, match="collinear"):
        write_deeph(tmp_path / "coll", _hbn_operator().with_blocks(H=np.stack([op.H, op.H]), spin="collinear"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "out"]


# ---------------------------------------------------------------------------------- errors
@pytest.fixture
def folder_copy(tmp_path):
    dst = tmp_path / "s"
    shutil.copytree(BILAYER, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.mark.parametrize("name", ["element.dat", "lat.dat", "site_positions.dat", "orbital_types.dat", "info.json"])
def test_missing_file(folder_copy, name):
    (folder_copy / name).unlink()
    with pytest.raises(FormatError, match=name) as exc:
        read_deeph(folder_copy)
    assert "missing" in str(exc.value)


def test_truncated_h5(folder_copy):
    p = folder_copy / "hamiltonians.h5"
    p.write_bytes(p.read_bytes()[:20000])
    with pytest.raises(FormatError, match="hamiltonians.h5"):
        read_deeph(folder_copy)


def test_truncated_text_file(folder_copy):
    p = folder_copy / "site_positions.dat"
    p.write_text("\n".join(p.read_text().splitlines()[:2]) + "\n")
    with pytest.raises(FormatError, match="site_positions.dat.*3 x 4"):
        read_deeph(folder_copy)


def test_bad_key_and_bad_atom(folder_copy):
    with h5py.File(folder_copy / "overlaps.h5", "a") as f:
        f["[0, 0, 0, 1]"] = np.zeros((13, 13))
    with pytest.raises(FormatError, match=r"overlaps.h5.*bad block key"):
        read_deeph(folder_copy)
    with h5py.File(folder_copy / "overlaps.h5", "a") as f:
        del f["[0, 0, 0, 1]"]
        f["[0, 0, 0, 1, 9]"] = np.zeros((13, 13))
    with pytest.raises(FormatError, match="outside 1..4"):
        read_deeph(folder_copy)


def test_block_shape_disagrees_with_orbital_types(folder_copy):
    (folder_copy / "orbital_types.dat").write_text("0\t0\t1\t1\n" * 4)
    (folder_copy / "openmx.dat").unlink()
    with pytest.raises(FormatError, match=r"hamiltonians.h5.*shape \(13, 13\).*needs \(8, 8\)"):
        read_deeph(folder_copy)


def test_inconsistent_basis_per_element(folder_copy):
    (folder_copy / "orbital_types.dat").write_text("0\t0\t1\t1\t2\n" * 3 + "0\t0\t1\t1\n")
    with pytest.raises(BasisError, match="atom 4"):
        read_deeph(folder_copy)


def test_keys_differ_between_h_and_s(folder_copy):
    with h5py.File(folder_copy / "overlaps.h5", "a") as f:
        del f["[0, 0, 0, 1, 1]"]
    with pytest.raises(FormatError, match="overlaps.h5.*lacks 1 block.*hamiltonians.h5 holds"):
        read_deeph(folder_copy)


def test_key_missing_from_hamiltonians_names_hamiltonians(folder_copy):
    with h5py.File(folder_copy / "hamiltonians.h5", "a") as f:
        del f["[0, 0, 0, 1, 1]"]
    with pytest.raises(FormatError, match=r"hamiltonians.h5.*lacks 1 block.*\[0, 0, 0, 1, 1\]"):
        read_deeph(folder_copy)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_blocks_is_refused(folder_copy, bad):
    with h5py.File(folder_copy / "hamiltonians.h5", "a") as f:
        key = sorted(f.keys())[3]
        blk = f[key][()]
        blk[0, 1] = bad
        f[key][...] = blk
    with pytest.raises(FormatError, match=rf"hamiltonians.h5.*block '\{key[:-1]}\]' holds NaN or inf"):
        read_deeph(folder_copy)


def test_round_trip_real_spin_orbit(tmp_path):
    """Real OpenMX spin-orbit blocks (complex, spin-major) survive write_deeph -> read_deeph."""
    op = hio.read(DATA / "openmx" / "mos2_prim_soc")
    assert op.spin == "soc"
    write_deeph(tmp_path / "soc", op)
    back = read_deeph(tmp_path / "soc")
    assert back.spin == "soc" and back.basis.shells == op.basis.shells
    assert back.fermi_level == op.fermi_level
    for e in range(op.n_edges):
        f = back.find_edge(op.edge_i[e], op.edge_j[e], op.edge_R[e])
        np.testing.assert_array_equal(back.h_block(f), op.h_block(e))
        np.testing.assert_array_equal(back.s_block(f), op.s_block(e))
    with h5py.File(tmp_path / "soc" / "hamiltonians.h5") as f:
        b = f["[0, 0, 0, 1, 2]"]                      # Mo (19 orbitals) - S (13), spinor blocks
        assert b.shape == (38, 26) and b.dtype == np.complex128
    with h5py.File(tmp_path / "soc" / "overlaps.h5") as f:
        assert f["[0, 0, 0, 1, 2]"].shape == (19, 13) and f["[0, 0, 0, 1, 2]"].dtype == np.float64
