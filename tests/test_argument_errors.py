"""Bad numbers and names on every command: a clear error (exit 2) naming the argument, never a
traceback or a silent wrong answer (issue 30); and the library functions behind them refuse the
same values with hotham's error types."""
import numpy as np
import pytest
from ase.build import graphene

from hotham.checks import increasing, mesh, number
from hotham.cli import main
from hotham.errors import BasisError, InputError, StructureError

from conftest import DATA

GRAPHENE = str(DATA / "openmx" / "graphene_prim")


def fails(capsys, argv, *words):
    """Run ``hotham ARGV``: exit 2, no traceback, every one of ``words`` in the message."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:           # argparse's own errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


@pytest.fixture(scope="module")
def graphene_op():
    from hotham.io import read
    return read(GRAPHENE)


# ------------------------------------------------------------------ the rules themselves
def test_checks():
    assert number(3, "n", integer=True, ge=1) == 3 and number(2.0, "n", integer=True, ge=1) == 2
    for bad, why in ((0, ">= 1"), (1.5, "an integer"), (float("nan"), "a finite number"), (True, "an integer")):
        with pytest.raises(InputError, match=f"n must be {why}"):
            number(bad, "n", integer=True, ge=1)
    with pytest.raises(InputError, match="finite"):
        number(float("inf"), "lr", gt=0)
    with pytest.raises(InputError, match=r"ema_decay must be in \(0, 1\), got 1.5"):
        number(1.5, "ema_decay", gt=0, lt=1)
    assert increasing((1, 2), "window") == (1.0, 2.0)
    with pytest.raises(InputError, match="LO must be below HI"):
        increasing((5, -5), "window")
    with pytest.raises(InputError, match="pair"):
        increasing((1, 2, 3), "window")
    assert mesh(4) == (4,) and mesh((2, 2, 1)) == (2, 2, 1)
    for bad in ((1.5, 1, 1), 0, (2, 2)):
        with pytest.raises(InputError, match="mesh"):
            mesh(bad)


# ------------------------------------------------------------------ dos, bands, states, compare
@pytest.mark.parametrize("argv, words", [
    (["--width", "0"], ["--width", "> 0"]), (["--width", "-0.1"], ["--width"]), (["--width", "nan"], ["finite"]),
    (["--electrons", "0"], ["--electrons", "> 0"]), (["--mesh", "0"], ["--mesh", ">= 1"]),
    (["--mesh", "1.5"], ["--mesh", "integer"]), (["--mesh", "2", "2"], ["--mesh", "n1 n2 n3"]),
    (["--temperature", "-300"], ["--temperature", ">= 0"]), (["--window", "5", "-5"], ["--window", "LO"]),
    (["--fermi", "nan"], ["--fermi", "finite"])])
def test_dos_numbers(capsys, tmp_path, argv, words):
    fails(capsys, ["dos", GRAPHENE, "-o", tmp_path / "d", *argv], *words)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, words", [
    (["--npoints", "0"], [">= 2"]), (["--npoints", "1"], [">= 2"]),
    (["--window", "5", "-5"], ["LO must be below HI"]), (["--fermi", "nan"], ["finite"]),
    (["--n", "0"], ["--n"]), (["--processes", "0"], ["--processes"])])
def test_bands_numbers(capsys, tmp_path, argv, words):
    fails(capsys, ["bands", GRAPHENE, "-o", tmp_path / "b", *argv], *words)
    assert not list(tmp_path.iterdir())


def test_states_and_compare_numbers(capsys, tmp_path):
    fails(capsys, ["states", GRAPHENE, "-o", tmp_path / "s", "--n", "2", "--k", "nan", "0", "0"], "--k", "finite")
    fails(capsys, ["compare", GRAPHENE, GRAPHENE, "-o", tmp_path / "c", "--mesh", "0"], "--mesh")
    fails(capsys, ["compare", GRAPHENE, GRAPHENE, "-o", tmp_path / "c", "--npoints", "1"], "--npoints")
    fails(capsys, ["evaluate", "model.pt", "set.h5", "--mesh", "0"], "--mesh")
    fails(capsys, ["evaluate", "model.pt", "set.h5", "--window", "2", "-2"], "--window")
    assert not list(tmp_path.iterdir())


def test_library_electronic_inputs(graphene_op, tmp_path):
    from hotham.electronic import find_fermi_level
    from hotham.electronic.bands import band_path
    from hotham.electronic.dos import dos
    from hotham.electronic.result_files import write_comparison, write_states
    with pytest.raises(InputError, match="mesh must be an integer"):
        find_fermi_level(graphene_op, mesh=(1.5, 1, 1))       # was truncated to 1: -1.01 eV
    with pytest.raises(InputError, match="n_electrons must be > 0"):
        find_fermi_level(graphene_op, 6, n_electrons=0)     # was scipy's "f(a) and f(b) must have different signs"
    with pytest.raises(InputError, match="temperature"):
        find_fermi_level(graphene_op, 6, temperature=-300)
    with pytest.raises(InputError, match="width must be > 0"):
        dos(graphene_op, 6, width=0)
    with pytest.raises(InputError, match="npoints must be >= 2"):
        band_path(graphene_op.atoms, "GMKG", npoints=1)
    with pytest.raises(InputError, match="finite"):
        write_states(GRAPHENE, tmp_path / "s", kpts=[[np.nan, 0, 0]], n=2)
    with pytest.raises(InputError, match="mesh"):                  # not swallowed by the stored-E_F fallback
        write_comparison(GRAPHENE, GRAPHENE, tmp_path / "c", mesh=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("npoints", [4, 5, 9, 200])
def test_few_path_points_keep_every_segment(graphene_op, npoints):
    """--npoints 5 put G and M at one x (ase's axis takes two corners in a row for a break): the
    M-K or G-M segment vanished from the plot. Every segment keeps its length now."""
    from hotham.electronic.bands import band_path
    kp = band_path(graphene_op.atoms, "GMKG", npoints=npoints)
    assert kp.labels == ["Γ", "M", "K", "Γ"] and np.all(np.diff(kp.special_x) > 0.5)
    assert np.allclose(kp.special_x, band_path(graphene_op.atoms, "GMKG", npoints=300).special_x)


def test_mesh_without_k_is_warned_about(graphene_op):
    """dos --mesh 4 on graphene put E_F 0.3 eV off without a word: the 4 x 4 mesh lacks K."""
    from hotham.electronic.dos import dos
    from hotham.electronic.fermi import find_fermi_level, missing_special_points
    assert list(missing_special_points(graphene_op.atoms, 4)) == ["K"]
    assert missing_special_points(graphene_op.atoms, 6) == {} and missing_special_points(graphene_op.atoms, 12) == {}
    with pytest.warns(UserWarning, match=r"4x4x1 k-mesh misses the special point\(s\) K .*multiples of 3"):
        dos(graphene_op, 4)
    with pytest.warns(UserWarning, match="misses"):
        find_fermi_level(graphene_op, (4, 4, 1))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        find_fermi_level(graphene_op, 6)
        find_fermi_level(graphene_op)                                   # the automatic mesh holds K


# ------------------------------------------------------------------ train, predict, demo
@pytest.mark.parametrize("argv, words", [
    (["--lr", "nan"], ["--lr", "finite"]), (["--lr", "-0.01"], ["--lr", "greater than 0"]), (["--lr", "0"], ["--lr"]),
    (["--lr", "inf"], ["--lr", "finite"]), (["--lr", "1e300"], ["--lr", "less than or equal to 1"]), (["--batch-size", "0"], ["--batch-size"]),
    (["--ema-decay", "1.5"], ["--ema-decay", "less than 1"]), (["--device", "tpu"], ["--device", "unknown device"]),
    (["--workers", "-1"], ["--workers"]), (["--cache-gb", "-1"], ["--cache-gb"]), (["--epochs", "0"], ["--epochs"]),
    (["--r-cut", "0"], ["--r-cut"]), (["--lmax", "0"], ["--lmax"])])
def test_train_numbers(capsys, tmp_path, argv, words):
    fails(capsys, ["train", tmp_path / "set.h5", "-o", tmp_path / "m.pt", *argv], *words)
    assert not list(tmp_path.iterdir())


def test_devices(capsys, tmp_path):
    import torch
    from pydantic import ValidationError

    from hotham.checkpoint import resolve_device
    from hotham.train import TrainConfig
    missing = "cuda:99" if torch.cuda.is_available() else "cuda"
    with pytest.raises(InputError, match="CUDA"):
        resolve_device(missing)
    with pytest.raises(InputError, match="unknown device"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"
    # a device this machine lacks is an error before any work, not a traceback from torch
    fails(capsys, ["train", tmp_path / "set.h5", "-o", tmp_path / "m.pt", "--device", missing], "CUDA")
    fails(capsys, ["predict", "m.pt", "x.xyz", "-o", tmp_path / "p.h5", "--device", "tpu"], "--device")
    with pytest.raises(ValidationError):
        TrainConfig(ema_decay=1.5)
    with pytest.raises(ValidationError):
        TrainConfig(lr=float("nan"))


# ------------------------------------------------------------------ structure generators
def test_slide_one_structure_into_a_folder(capsys, tmp_path):
    """-n 1 -o runs/ was ase's "Could not guess file type"; now runs/000 as for -n 2."""
    for out in (f"{tmp_path / 'runs'}/", tmp_path / "plain"):
        assert main(["structure", "slide", "graphene", "-n", "1", "-o", str(out)]) == 0
        assert (tmp_path / str(out).rstrip("/").split("/")[-1] / "000" / "openmx.dat").is_file()
    (tmp_path / "there").mkdir()
    assert main(["structure", "slide", "graphene", "-n", "2", "-o", str(tmp_path / "there")]) == 0
    assert (tmp_path / "there" / "001" / "openmx.dat").is_file() and (tmp_path / "there" / "manifest.json").is_file()


@pytest.mark.parametrize("argv, words", [
    (["slide", "graphene", "-n", "0"], ["-n", ">= 1"]),
    (["slide", "graphene", "--distance", "3.45", "3.25"], ["distance", "LO"]),
    (["slide", "graphene", "--distance", "1", "2", "3"], ["distance", "3 values", "grid"]),
    (["slide", "graphene", "--distance", "0"], ["--distance", "> 0"]),
    (["slide", "graphene", "--distance", "0.3"], ["overlapping", "apart"]),
    (["slide", "graphene", "--displacement", "-0.1"], ["--displacement"]),
    (["slide", "graphene", "--lattice", "2.5", "2.4"], ["--lattice", "LO must be at most HI"]),
    (["twist", "graphene", "--stacking", "XY"], ["stacking", "XY"]),
    (["twist", "graphene", "--stacking", "AA,AB,AB"], ["stacking", "3 layers"]),
    (["twist", "graphene", "-m", "2", "-n", "2"], ["(2, 2)", "no twist"]),
    (["twist", "graphene", "-m", "-1", "-n", "2"], ["-m", ">= 0"]),
    (["twist", "graphene", "--layers", "0x1"], ["layers", "0x1"]),
    (["hetero", "graphene", "hbn", "--max-strain", "-0.01"], ["--max-strain"]),
    (["hetero", "graphene", "hbn:a=abc"], ["hbn:a=abc", "a=abc"]),
    (["hetero", "graphene", "hbn", "--twist", "10", "5"], ["--twist", "LO"]),
    (["perturb", "graphene", "--supercell", "0", "1", "1"], ["--supercell", ">= 1"]),
    (["perturb", "graphene", "--strain", "0.9"], ["overlapping", "strain 0.9"]),
    (["perturb", "graphene", "--strain", "-0.1"], ["--strain"])])
def test_structure_numbers(capsys, tmp_path, argv, words):
    fails(capsys, ["structure", *argv, "-o", tmp_path / "out.xyz"], *words)
    assert not list(tmp_path.iterdir())


def test_unknown_output_format(capsys, tmp_path):
    fails(capsys, ["structure", "twist", "graphene", "-o", tmp_path / "tw.foo"], "tw.foo", "'.foo'")
    assert not list(tmp_path.iterdir())


def test_library_generators():
    from hotham.workflows.layers import as_slab, build_or_read
    from hotham.workflows.perturb import gaussian_perturbations
    from hotham.workflows.slide import bilayer, slid_structures
    from hotham.workflows.twist import twisted_bilayer
    layer = as_slab(graphene(a=2.46))
    with pytest.raises(InputError, match="no twist"):
        twisted_bilayer(layer, 3, 3)
    with pytest.raises(InputError, match="m must be >= 0"):
        twisted_bilayer(layer, -1, 2)
    base = bilayer(build_or_read("graphene", reference=True))
    with pytest.raises(InputError, match="n must be >= 1"):
        slid_structures(base, n=0)
    with pytest.raises(InputError, match="distance must be > 0"):
        slid_structures(base, n=2, distance=0)
    with pytest.raises(StructureError, match="overlapping"):       # twist checks distances; slide now too
        slid_structures(base, n=2, distance=0.2)
    assert len(slid_structures(base, n=2, distance=(3.25, 3.45))) == 2
    with pytest.raises(StructureError, match="0.665 A apart"):        # was written at 0.67 A
        gaussian_perturbations(layer, 1, strain=0.9)
    with pytest.raises(InputError, match="strain must be >= 0"):
        gaussian_perturbations(layer, 1, strain=-0.1)
    with pytest.raises(StructureError, match="a=abc"):
        build_or_read("hbn:a=abc")


# ------------------------------------------------------------------ openmx write
def fake_openmx_data(root):
    (root / "PAO").mkdir(parents=True)
    (root / "VPS").mkdir()
    (root / "PAO" / "C6.0.pao").write_text("stand-in\n")
    (root / "VPS" / "C_PBE19.vps").write_text("valence.electron   4.0\n")
    return root


def test_openmx_write_checks_species(capsys, tmp_path):
    data = fake_openmx_data(tmp_path / "DFT_DATA19")
    out = tmp_path / "runs"
    common = ["openmx", "write", "graphene", "-o", out, "--kgrid", "2", "2", "1", "--openmx-data", data]
    fails(capsys, [*common, "--valence", "C=-4"], "valence of C must be > 0")
    fails(capsys, [*common, "--basis", "C=C6.0-s2q2"], "C6.0-s2q2")
    fails(capsys, [*common, "--basis", "C=C5.0-s2p2"], "C5.0.pao", "C6.0")
    fails(capsys, [*common, "--vps", "C=C_XX19"], "C_XX19.vps")
    fails(capsys, [*common, "--valence", "C=5"], "valence of C 5 differs from 4")
    assert not out.exists()
    assert main([str(a) for a in common] + ["--valence", "C=4"]) == 0                       # agreeing with the VPS file is fine
    with pytest.raises(InputError, match="valence of C must be > 0"):
        from hotham.workflows.openmx_input import openmx_input_text
        openmx_input_text(as_slab_graphene(), basis={"C": ("C6.0-s2p2d1", "C_PBE19", -4)}, kgrid=(1, 1, 1))


def as_slab_graphene():
    from hotham.workflows.layers import as_slab
    return as_slab(graphene(a=2.46))


def test_dataset_build_into_a_folder(capsys, tmp_path):
    """-o EXISTING_DIRECTORY was os.replace's IsADirectoryError after reading every structure (now
    refused first by hotham.files.check_outputs); a negative split ratio is refused by argparse."""
    (tmp_path / "sets").mkdir()
    fails(capsys, ["dataset", "build", DATA / "deeph" / "graphene_mono_2x2", "-o", tmp_path / "sets", "--no-progress"],
          "is a folder")
    fails(capsys, ["dataset", "build", DATA / "deeph" / "graphene_mono_2x2", "-o", tmp_path / "s.h5",
                   "--split", "0.8", "-0.1", "0.3"], "--split")
    assert list(tmp_path.iterdir()) == [tmp_path / "sets"] and not list((tmp_path / "sets").iterdir())


def test_ranges_may_be_one_value():
    """--twist 0 0 (an untwisted heterobilayer) and --lattice A A are ranges of one value; a
    --window must have width."""
    from hotham.cli import build_parser
    p = build_parser()
    assert p.parse_args(["structure", "hetero", "graphene", "hbn", "--twist", "0", "0", "-o", "x.xyz"]).twist_range \
        == (0.0, 0.0)
    assert p.parse_args(["structure", "slide", "graphene", "--lattice", "2.5", "2.5", "-o", "x/"]).lattice == (2.5, 2.5)
    with pytest.raises(SystemExit):
        p.parse_args(["dos", "x.h5", "--window", "1", "1"])


def test_a_60_degree_turn_is_an_inverted_bilayer_not_an_error():
    """(m, n) = (0, 1) turns the upper layer by 60 degrees: for MoS2 the inverted (2H-like) bilayer,
    built with a warning that it is no moire cell (m = n, no turn at all, stays an error)."""
    from ase.build import mx2

    from hotham.workflows import twisted_bilayer
    with pytest.warns(UserWarning, match="untwisted bilayer"):
        a = twisted_bilayer(mx2("MoS2", a=3.16), 0, 1, interlayer=3.1)
    assert len(a) == 6
