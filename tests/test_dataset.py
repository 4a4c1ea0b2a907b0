"""Training-set builder and reader on real DeepH data (tests/data/deeph) and written operators."""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import h5py
import numpy as np
import pytest
from ase import Atoms

import hotham.io as hio
from hotham.basis import Basis
from hotham.cli import main
from hotham.dataset import Dataset, build_dataset, split_names
from hotham.errors import BasisError, FormatError, HothamError
from hotham.parsers.deeph import write_deeph
from conftest import DATA, graphene_deeph, random_operator

DEEPH = DATA / "deeph"
MONO = DEEPH / "graphene_mono_2x2" / "000"
BILAYER = DEEPH / "bilayer_graphene_slid_1x1" / "000"



@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Data set from the two real DeepH folders plus a broken copy (element.dat missing)."""
    tmp = tmp_path_factory.mktemp("ds")
    broken = tmp / "broken" / "b000"
    shutil.copytree(BILAYER, broken)
    (broken / "element.dat").chmod(0o644)
    (broken / "element.dat").unlink()
    out = tmp / "set.h5"
    report = build_dataset([graphene_deeph(tmp), tmp / "broken"], out, seed=3, progress=False)
    return out, report, broken


def test_build_reports_and_skips_broken(built):
    out, report, broken = built
    assert report.names == ["deeph__bilayer_graphene_slid_1x1__000", "deeph__graphene_mono_2x2__000"]
    assert len(report.skipped) == 1
    path, reason = report.skipped[0]
    assert path == str(broken) and "element.dat" in reason and "missing" in reason
    assert report.species == ["C"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask     # not mkstemp's 0600
    ds = Dataset(out)
    assert len(ds) == 2 and ds.names == report.names
    assert ds.skipped == [(str(broken), reason)]
    assert ds.basis.shells == {"C": (0, 0, 1, 1, 2)} and ds.basis.labels == {"C": "C6.0-s2p2d1"}
    # a data set is not a single operator: hotham.io.read says where to go
    with pytest.raises(FormatError, match="Dataset"):
        hio.read(out)


def test_read_back_equals_sources(built):
    out, report, _ = built
    with Dataset(out) as ds:
        for k, name in enumerate(ds.names):
            src = hio.read(ds.source(name))
            for op in (ds[name], ds[k]):
                for attr in ("H", "S", "edge_i", "edge_j", "edge_R"):
                    np.testing.assert_array_equal(getattr(op, attr), getattr(src, attr))
                np.testing.assert_array_equal(op.atoms.positions, src.atoms.positions)
                np.testing.assert_array_equal(np.asarray(op.atoms.cell), np.asarray(src.atoms.cell))
                assert op.fermi_level == src.fermi_level and op.basis.shells == src.basis.shells
        assert sum(ds[n].n_edges for n in ds.names) == report.n_edges
        with pytest.raises(KeyError):
            ds["nope"]


def test_stats_match_numpy(built):
    out, _, _ = built
    ds = Dataset(out)
    ops = [hio.read(ds.source(n)) for n in ds.names]
    H = np.concatenate([op.H for op in ops])
    S = np.concatenate([op.S for op in ops])
    st = ds.stats["C-C"]
    assert st["H"]["blocks"] == st["S"]["blocks"] == sum(op.n_edges for op in ops)
    assert st["H"]["elements"] == H.size
    np.testing.assert_allclose([st["H"]["mean"], st["H"]["std"], st["H"]["max_abs"]],
                               [H.mean(), H.std(), np.abs(H).max()], rtol=1e-12)
    np.testing.assert_allclose([st["S"]["mean"], st["S"]["std"], st["S"]["max_abs"]],
                               [S.mean(), S.std(), np.abs(S).max()], rtol=1e-12)
    # longest edge, from positions, cell and R directly
    longest = max(np.linalg.norm(op.atoms.positions[op.edge_j] + op.edge_R @ op.atoms.cell[:]
                                 - op.atoms.positions[op.edge_i], axis=1).max() for op in ops)
    assert ds.max_edge_length == pytest.approx(longest, rel=1e-12)
    assert ds.max_edge_length_pairs["C-C"] == pytest.approx(longest, rel=1e-12)
    assert np.isnan(ds.cutoff)


def test_split_reproducible_disjoint_complete(built):
    names = [f"s{k:03d}" for k in range(50)]
    a = split_names(names, (0.8, 0.1, 0.1), seed=7)
    assert a == split_names(list(reversed(names)), (0.8, 0.1, 0.1), seed=7)   # order of sources irrelevant
    assert a != split_names(names, (0.8, 0.1, 0.1), seed=8)
    assert [len(a[k]) for k in ("train", "val", "test")] == [40, 5, 5]
    together = a["train"] + a["val"] + a["test"]
    assert sorted(together) == names and len(set(together)) == 50
    # cut points are the rounded cumulative fractions: 50 * (0.5, 0.75) -> 25, 38 (round half to even)
    assert [len(v) for v in split_names(names, (2, 1, 1), seed=0).values()] == [25, 13, 12]
    out, report, _ = built
    ds = Dataset(out)
    want = split_names(ds.names, (0.8, 0.1, 0.1), seed=3)
    assert {k: ds.split(k) for k in ("train", "val", "test")} == want == report.split


def test_split_by_source_holds_out_each_set(tmp_path):
    """Two sets of two cells each, half held out: split together, one set may land wholly in
    training; split by source, each gives one cell to each part, as it would alone."""
    sets = [DEEPH / "graphene_hbn_slid_1x1", DEEPH / "mos2_bilayer_slid_1x1"]
    out = tmp_path / "mixed.h5"
    assert main(["dataset", "build", *map(str, sets), "-o", str(out), "--split", "0.5", "0.5", "0",
                 "--seed", "1", "--split-by-source", "--no-progress"]) == 0
    with Dataset(out) as ds:
        split = {k: ds.split(k) for k in ("train", "val")}
    for s in sets:
        alone = split_names([f"{s.name}__{c.name}" for c in s.iterdir()], (0.5, 0.5, 0), seed=1)
        for k in ("train", "val"):
            assert [n for n in split[k] if n.startswith(s.name)] == alone[k]
            assert len(alone[k]) == 1
    with h5py.File(out) as f:
        assert f.attrs["split_by_source"]


def test_cutoff_keeps_pairs_and_onsite(tmp_path):
    out = tmp_path / "cut.h5"
    report = build_dataset([MONO], out, cutoff=3.0, progress=False)
    src = hio.read(MONO)
    op = Dataset(out)[0]
    d_src = src.edge_lengths()
    assert op.n_edges == int((d_src <= 3.0).sum()) < src.n_edges
    assert op.edge_lengths().max() <= 3.0 and report.max_edge_length <= 3.0
    op.check(h_tol=1e-6, s_tol=1e-8)           # on-site blocks and Hermitian partners all still there
    for e in range(0, op.n_edges, 17):
        f = src.find_edge(op.edge_i[e], op.edge_j[e], op.edge_R[e])
        np.testing.assert_array_equal(op.h_block(e), src.h_block(f))
    assert Dataset(out).cutoff == 3.0


def _hbn(basis=None, seed=2):
    a = 2.5
    atoms = Atoms("BN", scaled_positions=[(1 / 3, 2 / 3, 0.5), (2 / 3, 1 / 3, 0.5)],
                  cell=[[a, 0, 0], [-a / 2, a * np.sqrt(3) / 2, 0], [0, 0, 15.0]], pbc=True)
    return random_operator(atoms=atoms, basis=basis or Basis({"B": (0, 0, 1, 1, 2), "N": (0, 1, 2)}), seed=seed)


def test_mixed_chemistry(tmp_path):
    write_deeph(tmp_path / "src" / "hbn", _hbn())
    out = tmp_path / "mixed.h5"
    report = build_dataset([tmp_path / "src", MONO], out, progress=False)
    assert report.species == ["B", "C", "N"] and not report.skipped
    ds = Dataset(out)
    assert ds.basis.shells == {"B": (0, 0, 1, 1, 2), "C": (0, 0, 1, 1, 2), "N": (0, 1, 2)}
    assert set(ds.stats) == {"B-B", "B-N", "N-B", "N-N", "C-C"}
    hbn = hio.read(tmp_path / "src" / "hbn")
    bn = (hbn.edge_i == 0) & (hbn.edge_j == 1)
    x = np.concatenate([hbn.h_block(e).ravel() for e in np.flatnonzero(bn)])
    st = ds.stats["B-N"]["H"]
    assert st["blocks"] == bn.sum() and st["elements"] == x.size == bn.sum() * 13 * 9
    np.testing.assert_allclose([st["mean"], st["std"], st["max_abs"]], [x.mean(), x.std(), np.abs(x).max()], rtol=1e-12)
    np.testing.assert_array_equal(ds["src__hbn"].H, hbn.H)


def test_conflicting_basis_fails_and_leaves_no_file(tmp_path):
    atoms = hio.read(MONO).atoms[:2]
    write_deeph(tmp_path / "odd", random_operator(atoms=atoms, basis=Basis({"C": (0, 1)})))
    out = tmp_path / "bad.h5"
    with pytest.raises(BasisError, match=r"element C.*odd") as exc:
        build_dataset([MONO, tmp_path / "odd"], out, progress=False)
    assert str(MONO) in str(exc.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd"]      # no set, no temp file


def test_non_hermitian_and_empty_sources_skipped(tmp_path):
    op = _hbn()
    H = op.H.copy()
    H[op.offsets[op.find_edge(0, 1)]] += 0.01                           # break one element of a pair
    write_deeph(tmp_path / "src" / "bad", op.with_blocks(H=H))
    write_deeph(tmp_path / "src" / "good", op)
    (tmp_path / "empty").mkdir()
    report = build_dataset([tmp_path / "src", tmp_path / "empty"], tmp_path / "s.h5", progress=False)
    assert report.names == ["src__good"]
    reasons = dict(report.skipped)
    assert "not Hermitian" in reasons[str(tmp_path / "src" / "bad")]
    assert "holds no" in reasons[str(tmp_path / "empty")]


def test_dataset_rejects_foreign_file(tmp_path):
    hio.write(tmp_path / "one.h5", random_operator())
    with pytest.raises(FormatError, match="not a hotham data set"):
        Dataset(tmp_path / "one.h5")
    with h5py.File(tmp_path / "x.h5", "w"):
        pass
    with pytest.raises(FormatError):
        Dataset(tmp_path / "x.h5")


def test_cli_build_and_info(tmp_path, capsys):
    out = tmp_path / "cli.h5"
    rc = main(["dataset", "build", str(graphene_deeph(tmp_path)), str(tmp_path / "nothing"), "-o", str(out),
               "--split", "0.5", "0.5", "0", "--seed", "1", "--cutoff", "5", "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0 and "structures: 2" in text and "skipped 1" in text and "no such file" in text
    ds = Dataset(out)
    assert [len(ds.split(k)) for k in ("train", "val", "test")] == [1, 1, 0] and ds.cutoff == 5.0
    assert main(["dataset", "info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 structures" in text and "C-C" in text
    assert main(["dataset", "info", str(tmp_path / "nothing.h5")]) == 2


OPENMX = DATA / "openmx"


def test_openmx_runs_and_deeph_folders_together(tmp_path):
    out = tmp_path / "mx.h5"
    report = build_dataset([OPENMX / "graphene_prim", OPENMX / "hbn_prim", MONO], out, progress=False)
    assert report.names == ["000", "graphene_prim", "hbn_prim"] and not report.skipped
    ds = Dataset(out)
    assert ds.species == ["B", "C", "N"]
    assert ds.basis.labels == {"B": "B7.0-s2p2d1", "C": "C6.0-s2p2d1", "N": "N6.0-s2p2d1"}
    for name in ds.names:
        src = hio.read(ds.source(name))
        np.testing.assert_array_equal(ds[name].H, src.H)
        np.testing.assert_array_equal(ds[name].S, src.S)
        np.testing.assert_array_equal(ds[name].edge_R, src.edge_R)


def test_spin_orbit_set_and_spin_filter(tmp_path):
    out = tmp_path / "soc.h5"
    report = build_dataset([OPENMX], out, spin="soc", progress=False)
    assert report.names == ["openmx__mos2_prim_soc"]
    reasons = dict(report.skipped)
    assert "spin 'none', the data set takes 'soc'" in reasons[str(OPENMX / "mos2_prim")]
    assert "spin 'collinear'" in reasons[str(OPENMX / "graphene_prim_spin")]
    ds = Dataset(out)
    assert ds.spin == "soc"
    op = hio.read(OPENMX / "mos2_prim_soc")
    np.testing.assert_array_equal(ds[0].H, op.H)
    # spin-orbit statistics pool real and imaginary parts of the (2 n_i, 2 n_j) blocks
    sym = np.array(op.atoms.get_chemical_symbols())
    ms = (sym[op.edge_i] == "Mo") & (sym[op.edge_j] == "S")
    h = np.concatenate([op.h_block(e).ravel() for e in np.flatnonzero(ms)])
    x = np.concatenate([h.real, h.imag])
    st = ds.stats["Mo-S"]["H"]
    np.testing.assert_allclose([st["mean"], st["std"], st["max_abs"]], [x.mean(), x.std(), np.abs(x).max()],
                               rtol=1e-12)


def test_nothing_readable_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "none.h5"
    assert main(["dataset", "build", str(tmp_path / "empty"), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no structure could be read" in err and "holds no" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert main(["dataset"]) == 1


def _many_sources(tmp_path, n=12):
    """n copies of the shipped slid bilayers (folders of their own whose files are symbolic links:
    a linked folder would be recognised as the same source and read once): a build that takes a
    while, reading every copy before it drops the identical ones."""
    src = tmp_path / "src"
    src.mkdir()
    shipped = sorted((Path(__file__).parents[1] / "data" / "bilayer_graphene_slid_1x1").iterdir())
    for k in range(n):
        copy = src / f"{k:03d}"
        copy.mkdir()
        for f in shipped[k % len(shipped)].iterdir():
            (copy / f.name).symlink_to(f)
    return src


def test_strict_build_fails_and_summary_warns(tmp_path):
    src = _many_sources(tmp_path, 3)
    (src / "broken").mkdir()
    (src / "broken" / "hamiltonians.h5").write_bytes(b"not hdf5")
    rep = build_dataset([src], tmp_path / "set.h5", progress=False)
    assert rep.summary().startswith("WARNING: 1 of 4 structures could not be used")
    with pytest.raises(HothamError, match="(?s)--strict: 1 of 4 structures.*broken"):
        build_dataset([src], tmp_path / "strict.h5", progress=False, strict=True)
    assert not (tmp_path / "strict.h5").exists() and not list(tmp_path.glob(".tmp-*"))


def test_ctrl_c_stops_the_build_and_leaves_nothing(tmp_path):
    """SIGINT in the middle of a build: exit 130, no output and no temporary file."""
    import signal
    import subprocess
    import sys
    import time
    src = _many_sources(tmp_path, 200)
    out = tmp_path / "set.h5"
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from hotham.cli import main; sys.exit(main())",
                             "dataset", "build", str(src), "-o", str(out), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    while not list(tmp_path.glob(".tmp-*set.h5")) and time.time() - t0 < 60:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err.decode()
    assert b"interrupted" in err
    assert not out.exists() and not list(tmp_path.glob(".tmp-*"))


def test_temporaries_of_killed_writers_are_removed(tmp_path):
    """A SIGKILLed writer leaves .tmp-<pid>-...; the next write to the same path removes it."""
    import subprocess
    import sys
    from hotham.files import atomic_path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".tmp-{dead.pid}-abc-set.h5"
    stale.write_bytes(b"half")
    other = tmp_path / f".tmp-{dead.pid}-abc-other.h5"      # another destination: left alone
    other.write_bytes(b"half")
    with atomic_path(tmp_path / "set.h5") as tmp:
        Path(tmp).write_text("whole")
    assert not stale.exists() and other.exists() and (tmp_path / "set.h5").read_text() == "whole"


def test_held_out_structures_stay_out_of_data_sets(tmp_path):
    """`hotham dataset build data/` must not train on the demo's twisted bilayer."""
    shipped = Path(__file__).parents[1] / "data"
    assert (shipped / "tbg_21.79" / "HELD_OUT").is_file()
    rep = build_dataset([shipped], tmp_path / "set.h5", progress=False)
    assert rep.n_structures == 12 and not any("tbg" in n for n in rep.names)
    assert rep.held_out == [str((shipped / "tbg_21.79").absolute())] and "held out" in rep.summary()
    rep = build_dataset([shipped / "tbg_21.79"], tmp_path / "tbg.h5", progress=False)   # named itself: taken
    assert rep.n_structures == 1


def test_compact_set_reads_back_in_double_precision_within_float32_rounding(tmp_path):
    """--compact stores float32 blocks, gzip-compressed: smaller on disk, float64 in memory, equal
    to the full-precision set to float32 rounding (relative 2^-24 of each element)."""
    full, small = tmp_path / "full.h5", tmp_path / "small.h5"
    build_dataset([BILAYER], full, progress=False)
    assert main(["dataset", "build", str(BILAYER), "-o", str(small), "--compact", "--no-progress"]) == 0
    assert small.stat().st_size < 0.6 * full.stat().st_size
    with Dataset(full) as a, Dataset(small) as b:
        for name in a.names:
            x, y = a[name], b[name]
            assert y.H.dtype == np.float64 and y.S.dtype == np.float64
            np.testing.assert_allclose(y.H, x.H, rtol=2.0 ** -23, atol=0)
            np.testing.assert_allclose(y.S, x.S, rtol=2.0 ** -23, atol=0)
            assert not np.array_equal(y.H, x.H)          # it really is rounded


def test_data_sets_merge_as_sources(tmp_path):
    """A data set given to build_dataset contributes its structures (read back unchanged); the
    same structure twice (a set and its run folder) is taken once; --split-by-source splits each
    set on its own."""
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    build_dataset([MONO], a, progress=False)
    build_dataset([BILAYER], b, progress=False, compact=True)
    merged = tmp_path / "all.h5"
    report = build_dataset([a, b], merged, progress=False, split_by_source=True, split=(1, 0, 0))
    assert sorted(report.names) == ["a__" + Dataset(a).names[0], "b__" + Dataset(b).names[0]]
    with Dataset(merged) as ds, Dataset(b) as src:
        got, want = ds["b__" + src.names[0]], src[src.names[0]]
        np.testing.assert_array_equal(got.H, want.H)
        np.testing.assert_array_equal(got.edge_R, want.edge_R)
        assert sorted(ds.split("train")) == sorted(report.names)
    again = build_dataset([b, BILAYER], tmp_path / "twice.h5", progress=False)     # the same cell twice
    assert len(again.names) == 1 and len(again.duplicates) == 1
    assert main(["dataset", "build", str(a), str(b), "-o", str(tmp_path / "cli.h5")]) == 0
