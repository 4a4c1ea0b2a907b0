"""DOS, Fermi level, Mulliken weights, band/block comparison, plots and the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from matplotlib.figure import Figure

import hotham.io as hio
from hotham.cli import main
from hotham.electronic import (band_path, band_structure, block_mae, compare_bands, dos, eigenvalues,
                               electron_count, fermi_level, monkhorst_pack, slab_axis, solve, states)
from hotham.electronic.dos import broaden
from hotham.electronic.plot import plot_atom_weights, plot_bands, save_figure
from hotham.errors import FormatError, HothamError

DATA = Path(__file__).parent / "data" / "openmx"


def test_auto_path_is_in_plane_for_slabs(graphene):
    assert slab_axis(graphene.atoms) == 2
    kp = band_path(graphene.atoms, npoints=60)
    assert kp.labels == ["Γ", "M", "K", "Γ"]
    assert np.allclose(kp.kpts[:, 2], 0.0)
    # the corners are OpenMX's own G, M, K (reciprocal-lattice units, 120-degree cell)
    _, _, info = hio.read_openmx_band(DATA / "graphene_prim" / "graphene_prim.Band")
    corner_idx = [int(np.argmin(np.abs(kp.x - sx))) for sx in kp.special_x]
    np.testing.assert_allclose(kp.kpts[corner_idx], [[0, 0, 0], [0.5, 0, 0], [1 / 3, 1 / 3, 0], [0, 0, 0]], atol=1e-9)
    # graphene's Dirac point: the two bands at E_F touch at K
    bs = band_structure(graphene, [[1 / 3, 1 / 3, 0], [0.5, 0, 0]], npoints=3)
    e = np.sort(np.abs(bs.energies[0] - graphene.fermi_level))[:2]
    assert e.max() < 0.02


def test_fermi_level_from_electron_count(graphene, mos2):
    # graphene: 8 valence electrons; semimetal, so E_F is pinned to the Dirac point like OpenMX's
    assert electron_count(graphene) == 8.0
    d = dos(graphene, 12, width=0.05)
    assert abs(d.fermi_level - graphene.fermi_level) < 0.01
    # MoS2 (26 electrons): E_F inside the gap, between the band edges of a mesh incl. K
    e = eigenvalues(mos2, monkhorst_pack(mos2.atoms, 9))
    ef = fermi_level(e, electron_count(mos2), occ=2.0)
    vbm, cbm = np.sort(e.ravel())[12 * len(e) - 1], np.sort(e.ravel())[13 * len(e)]
    assert vbm < ef < cbm and cbm - vbm > 1.5
    with pytest.raises(HothamError, match="do not fit"):
        fermi_level(e, 1000.0)


def test_dos_integrates_to_state_count_and_projections_sum(mos2):
    d = dos(mos2, 6, width=0.1, project="l")
    de = d.energies[1] - d.energies[0]
    # every band holds 2 electrons (spin-degenerate): integral = 2 * n_orbitals
    assert abs(d.total.sum() * de - 2 * mos2.n_orbitals) < 1e-3 * mos2.n_orbitals
    proj = np.sum(list(d.projected.values()), axis=0)
    assert np.abs(proj - d.total).max() < 1e-8 * d.total.max()
    assert set(d.projected) == {"Mo-s", "Mo-p", "Mo-d", "S-s", "S-p", "S-d"}
    # the valence band top of MoS2 is Mo-d dominated (physics sanity)
    top = (d.energies > d.fermi_level - 1.2) & (d.energies < d.fermi_level - 0.8)
    assert d.projected["Mo-d"][top].sum() > d.projected["S-p"][top].sum()


def test_broadening_is_normalised():
    grid = np.linspace(-20, 20, 40001)
    for kind, tol in (("gaussian", 1e-9), ("lorentzian", 2e-2)):
        g = broaden(grid, np.array([0.3]), np.ones(1), 0.1, kind)
        assert abs(g.sum() * (grid[1] - grid[0]) - 1) < tol
    # against the direct sum of kernels at off-grid levels (FFT convolution of binned levels)
    rng = np.random.default_rng(0)
    lev, w = rng.uniform(-3, 3, 50), rng.uniform(0, 1, 50)
    grid = np.linspace(-5, 5, 2001)
    d = grid[:, None] - lev[None, :]
    direct = {"gaussian": np.exp(-0.5 * (d / 0.1) ** 2) / (0.1 * np.sqrt(2 * np.pi)) @ w,
              "lorentzian": (0.1 / np.pi) / (d * d + 0.01) @ w}
    for kind, ref in direct.items():
        assert np.abs(broaden(grid, lev, w, 0.1, kind) - ref).max() < 2e-3 * ref.max(), kind


def test_mulliken_weights(mos2):
    st = states(mos2, [[1 / 3, 1 / 3, 0], [0, 0, 0]], bands=[12, 13])
    assert np.allclose(st.weights.sum(-1), 1.0, atol=1e-10)
    aw = st.atom_weights
    # the two S atoms are mirror images: equal weights
    assert np.allclose(aw[..., 1], aw[..., 2], atol=1e-6)
    # band edges at K live mostly on Mo (d_{x2-y2}, d_{xy} / d_{z2})
    assert np.all(aw[0, :, 0] > 0.6)
    sw, names = st.shell_weights
    assert names[0] == "0:Mo:s1" and np.allclose(sw.sum(-1), 1.0)


def test_states_hdf5_and_plot(tmp_path, graphene):
    st = states(graphene, [[0.1, 0.0, 0.0]], n=2, around=graphene.fermi_level)
    st.save_hdf5(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5") as f:
        c = f["vectors"][0]
        assert f["energies"].shape == (1, 2) and c.shape == (26, 2)
        np.testing.assert_allclose(f["atom_weights"][...].sum(-1), 1.0, atol=1e-10)
    fig = Figure(figsize=(5.5, 5), layout="tight")
    assert plot_atom_weights(fig.subplots(), st, k=0, band=1) is fig.axes[0]
    save_figure(fig, tmp_path / "s.png")
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_compare_bands_and_blocks(graphene):
    kp = band_path(graphene.atoms, npoints=40)
    ref = eigenvalues(graphene, kp.kpts)
    # a rigid shift is removed by Fermi alignment; a perturbation of 10 meV shows as 10 meV MAE
    c = compare_bands(ref + 0.5, ref, model_fermi=graphene.fermi_level + 0.5, ref_fermi=graphene.fermi_level)
    assert c.mae_meV < 1e-9
    c = compare_bands(ref + 0.01, ref, model_fermi=graphene.fermi_level, ref_fermi=graphene.fermi_level,
                      window=(-3, 3))
    assert abs(c.mae_meV - 10.0) < 1e-6 and c.n_values == int((np.abs(ref - graphene.fermi_level) <= 3).sum())
    c = compare_bands(ref + 0.01, ref, model_fermi=graphene.fermi_level, ref_fermi=graphene.fermi_level,
                      align="fit")
    assert c.mae_meV < 1e-9 and abs(c.shift + 0.01) < 1e-12
    # block MAE: perturb one block by a known amount
    other = graphene.copy()
    e = other.find_edge(0, 1, (0, 0, 0))
    other.H[other.offsets[e]:other.offsets[e + 1]] += 0.002
    r = block_mae(other, graphene)
    n_el = graphene.nnz
    assert abs(r["mae"] - 2.0 * 169 / n_el) < 1e-9 and abs(r["max"] - 2.0) < 1e-9
    assert r["n_blocks"] == graphene.n_edges and r["only_a"] == 0


def test_cli_bands_dos_states_compare(tmp_path, graphene):
    run = str(DATA / "graphene_prim")
    assert main(["bands", run, "--path", "openmx", "-o", str(tmp_path / "b")]) == 0
    arr = np.loadtxt(tmp_path / "b.txt")
    k, ev, _ = hio.read_openmx_band(DATA / "graphene_prim" / "graphene_prim.Band")
    np.testing.assert_allclose(arr[:, :3], k, atol=1e-12)
    assert np.abs(arr[:, 4:] - ev[0]).max() < 1e-4          # the numbers behind the plot
    assert (tmp_path / "b.png").stat().st_size > 1000

    assert main(["dos", run, "--mesh", "6", "--project", "species", "--width", "0.1", "-o", str(tmp_path / "d"),
                 "--format", "pdf"]) == 0
    d = np.loadtxt(tmp_path / "d.txt")
    assert d.shape[1] == 3 and np.allclose(d[:, 1], d[:, 2], rtol=1e-8, atol=1e-12)   # one species: C = total
    assert (tmp_path / "d.pdf").read_bytes()[:4] == b"%PDF"

    assert main(["states", run, "--k", "0.5", "0", "0", "--bands", "3", "4", "-o", str(tmp_path / "s")]) == 0
    with h5py.File(tmp_path / "s.h5") as f:
        e_all = eigenvalues(graphene, [[0.5, 0, 0]])[0]
        np.testing.assert_allclose(f["energies"][0], e_all[[3, 4]], atol=1e-10)

    # compare: the model is the operator written to hotham HDF5 with a 5 meV on-site shift
    model = graphene.copy()
    for e in model.onsite_edges():
        blk = model.H[model.offsets[e]:model.offsets[e + 1]].reshape(13, 13)
        blk += 0.005 * model.s_block(e)
    hio.write(tmp_path / "model.h5", model)
    assert main(["compare", str(tmp_path / "model.h5"), run, "--path", "openmx", "--align", "none",
                 "-o", str(tmp_path / "c")]) == 0
    out = json.loads((tmp_path / "c.json").read_text())
    assert out["H_blocks"]["n_blocks"] == graphene.n_edges
    # on-site 5 meV * S_onsite shifts each on-site element; bands move by ~5 meV near E_F
    assert 2.0 < out["bands"]["mae_meV"] < 8.0
    assert (tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("run", ["hbn_prim", "bilayer_graphene_ab_prim"])
def test_compare_uses_one_fermi_level_definition(tmp_path, run):
    """DFT blocks against themselves give 0 band MAE: the model side (carrying, as a prediction
    does, its E_F from the electron count) and the reference (OpenMX's ChemP in the file) are both
    put at the electron-count Fermi level of one mesh. Against OpenMX's stored ChemP the gapped
    hBN would be off by eV (mid-gap vs the valence-band top) and the bilayer by meV."""
    from hotham.electronic import automatic_mesh, find_fermi_level
    folder = DATA / run
    dft = hio.read(folder)
    model = dft.copy()
    model.fermi_level = find_fermi_level(dft, automatic_mesh(dft.atoms))
    assert abs(model.fermi_level - dft.fermi_level) > 1e-3          # the two definitions differ
    hio.write(tmp_path / "model.h5", model)
    # hBN's E_F is the middle of its 4.6 eV gap: the window must reach past 2.3 eV to hold bands
    assert main(["compare", str(tmp_path / "model.h5"), str(folder), "--npoints", "30", "--window", "-3", "3",
                 "-o", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["bands"]["mae_meV"] == 0.0 and a["bands"]["n_values"] > 0
    assert a["fermi_level"]["model_eV"] == a["fermi_level"]["reference_eV"] == model.fermi_level
    assert "electron count" in a["fermi_level"]["method"]
    # on OpenMX's own k-points and bands (parsed blocks reproduce them to 1e-4 eV), and on a given mesh
    assert main(["compare", str(tmp_path / "model.h5"), str(folder), "--path", "openmx", "--mesh", "6",
                 "--window", "-3", "3", "-o", str(tmp_path / "b")]) == 0      # hBN: mid-gap E_F, 4.6 eV gap
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["bands"]["mae_meV"] < 0.1
    assert b["fermi_level"]["model_eV"] == b["fermi_level"]["reference_eV"]
    assert "6x6x1 mesh" in b["fermi_level"]["method"]
    # --fermi still overrides the model's Fermi level: a 50 meV offset is a 50 meV band MAE
    assert main(["compare", str(tmp_path / "model.h5"), str(folder), "--npoints", "30", "--fermi",
                 str(model.fermi_level + 0.05), "--window", "-3", "3", "-o", str(tmp_path / "c")]) == 0
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["bands"]["mae_meV"] == pytest.approx(50.0, abs=1e-6)


def test_cli_errors_are_clean(tmp_path, capsys):
    rc = main(["bands", str(tmp_path / "missing.h5")])
    assert rc == 2 and "no such file" in capsys.readouterr().err
    rc = main(["states", str(DATA / "graphene_prim")])
    assert rc == 2 and "--bands" in capsys.readouterr().err


def test_partial_spectrum_is_drawn_as_points(graphene):
    """The n states nearest E_F are a different subset at each k: joining them by index would
    draw false band crossings, so such band structures are plotted as points."""
    full = band_structure(graphene, npoints=30)
    part = band_structure(graphene, npoints=30, n=4)
    assert not full.partial and part.partial and part.energies.shape == (30, 4)
    # every partial energy is one of the full spectrum's at the same k
    assert np.abs(part.energies[:, :, None] - full.energies[:, None, :]).min(axis=2).max() < 1e-8
    ax = plot_bands(Figure().subplots(), part)
    assert all(line.get_linestyle() == "None" for line in ax.lines if line.get_marker() == "o")
    assert sum(line.get_marker() == "o" for line in ax.lines) == 4
    ax = plot_bands(Figure().subplots(), full)
    assert all(line.get_marker() in ("None", "", None) for line in ax.lines)


def test_reports_write_hdf5_without_pyplot(tmp_path):
    """The functions behind the commands write the numbers as HDF5 too, and draw their figures
    without pyplot (headless, no backend chosen)."""
    import subprocess
    import sys
    run = str(DATA / "graphene_prim")
    code = f"""
import sys
from hotham.electronic.result_files import write_bands, write_comparison, write_dos
write_bands({run!r}, {str(tmp_path / "b")!r}, npoints=20, data="h5")
write_dos({run!r}, {str(tmp_path / "d")!r}, mesh=4, project="species", data="h5", format="pdf")
print(write_comparison({run!r}, {run!r}, {str(tmp_path / "c")!r}, path="openmx", data="h5"))
assert "matplotlib.pyplot" not in sys.modules
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "band MAE" in res.stdout and "compare ->" in res.stdout
    with h5py.File(tmp_path / "b.h5") as f:
        # bands come from eigh (vectors for the ghost check), eigenvalues() from eigvalsh: equal to rounding
        np.testing.assert_allclose(f["energies"][...], eigenvalues(hio.read(run), f["kpts"][...]), rtol=0, atol=1e-9)
        assert list(f.attrs["labels"]) == ["Γ", "M", "K", "Γ"]
    with h5py.File(tmp_path / "d.h5") as f:
        np.testing.assert_allclose(f["projected/C"][...], f["total"][...], rtol=1e-8, atol=1e-12)
        assert f["levels"].shape == (16, 26) and np.isfinite(f.attrs["fermi_level"])
    with h5py.File(tmp_path / "c.h5") as f:
        assert f["model"].shape == f["reference"].shape == (60, 26)
        assert json.loads(f.attrs["summary"])["H_blocks"]["mae"] == 0.0
    for name in ("b.png", "d.pdf", "c.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_clear_errors_for_missing_blocks_and_molecules(tmp_path, graphene):
    """An operator without H (a DeepH folder lacking hamiltonians.h5) and a molecule in a box
    get errors that say what is wrong, through the library and the CLI (exit 2, nothing written)."""
    from ase import Atoms
    from hotham.cli import main
    no_h = graphene.with_blocks(H=None)
    with pytest.raises(HothamError, match=r"no Hamiltonian \(H\) blocks to diagonalise"):
        eigenvalues(no_h, [[0, 0, 0]])
    src = tmp_path / "deeph"
    hio.write(src, graphene, format="deeph")
    (src / "hamiltonians.h5").unlink()
    assert main(["bands", str(src), "-o", str(tmp_path / "b")]) == 2
    assert not list(tmp_path.glob("b*"))
    dimer = Atoms("C2", positions=[[0, 0, 0], [1.3, 0, 0]], cell=[15, 15, 15], pbc=True)
    dimer.center()
    with pytest.raises(HothamError, match="C2 has vacuum along every cell vector: a molecule"):
        band_path(dimer)
    assert band_path(graphene.atoms).labels[0] == "Γ"        # a slab keeps its in-plane path


def test_nan_blocks_in_a_hotham_file_are_refused(tmp_path, graphene):
    H = graphene.H.copy()
    H[7] = np.nan
    hio.write(tmp_path / "bad.h5", graphene.with_blocks(H=H))
    with pytest.raises(FormatError, match="bad.h5.*H holds NaN or inf"):
        hio.read(tmp_path / "bad.h5")
    from hotham.cli import main
    assert main(["states", str(tmp_path / "bad.h5"), "--n", "2", "-o", str(tmp_path / "s")]) == 2
    assert not list(tmp_path.glob("s*"))


def test_sparse_bands_report_progress_per_kpoint(tmp_path, graphene, capsys, monkeypatch):
    """`hotham bands --n` on a large cell shows a bar over the k-points (with its rate and ETA);
    --quiet silences it."""
    from hotham.cli import main
    from hotham.electronic import tile
    big = tile(graphene, (3, 3, 1))
    hio.write(tmp_path / "big.h5", big)
    args = ["bands", str(tmp_path / "big.h5"), "--n", "4", "--npoints", "6", "-o", str(tmp_path / "b")]
    # force the sparse (per k-point) solver on a small cell
    monkeypatch.setitem(solve.__kwdefaults__, "dense_max", 10)
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "bands: k-points" in err and "6/6" in err
    assert main(args + ["--quiet", "--force"]) == 0
    assert "bands: k-points" not in capsys.readouterr().err


def test_cli_partial_bands_are_points(tmp_path, monkeypatch):
    """`hotham bands --n 4` draws points, not lines joining the i-th nearest state at each k."""
    import hotham.electronic.result_files as result_files
    from hotham.cli import main
    drawn = []
    real = result_files.plot_bands
    monkeypatch.setattr(result_files, "plot_bands", lambda ax, bands, **kw: drawn.append(real(ax, bands, **kw)))
    assert main(["bands", str(DATA / "graphene_prim"), "--n", "4", "--npoints", "20", "-o", str(tmp_path / "b")]) == 0
    ax = drawn[0]
    assert sum(line.get_marker() == "o" for line in ax.lines) == 4
    assert all(line.get_linestyle() == "None" for line in ax.lines if line.get_marker() == "o")


def test_band_comparison_figure_draws_the_error_of_each_band_in_the_window():
    """The picture of a comparison: the bands above (reference solid, model dashed), the error of
    every band inside the window below (meV, model minus reference), k shared, axes labelled."""
    from hotham.electronic import band_comparison_figure, compare_bands, plot_band_errors
    x = np.linspace(0, 1, 5)
    ref = np.stack([x - 3.5, x - 0.5, 0.2 + 0 * x, 5.0 + x], axis=1)        # eV; bands 1 and 2 in the window
    mod = ref + np.array([0.1, 0.002, -0.001, 0.3])
    cmp = compare_bands(mod, ref, model_fermi=0.0, ref_fermi=0.0, window=(-2.0, 2.0), x=x,
                        special_x=np.array([0.0, 1.0]), labels=["G", "K"])
    fig = band_comparison_figure(cmp, labels=("model", "DFT"))
    top, bottom = fig.axes
    assert [l.get_linestyle() for l in top.lines[:4]] == ["-"] * 4 and top.lines[4].get_linestyle() == "--"
    errors = [l for l in bottom.lines if len(l.get_xdata()) == len(x)]
    assert sorted(np.nanmax(l.get_ydata()) for l in errors) == pytest.approx([-1.0, 2.0])    # meV
    assert "meV" in bottom.get_ylabel() and "eV" in top.get_ylabel() and "1/Å" in bottom.get_xlabel()
    assert "MAE" in bottom.get_title()
    from matplotlib.figure import Figure
    ax = Figure().subplots()
    assert plot_band_errors(ax, cmp) is ax
