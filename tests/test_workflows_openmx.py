"""OpenMX input writer (round trip, reference inputs), runner (stand-in OpenMX), CLI."""
from __future__ import annotations

import gzip
import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from hotham.cli import main
from hotham.errors import BasisError
from hotham.parsers.openmx.dat import input_structure, parse_openmx_input, read_openmx_input, species_basis_labels
from hotham.parsers.openmx.out import read_out
from ase.units import Hartree
from hotham.workflows import runner, twisted_bilayer
from hotham.workflows.openmx_input import kgrid_from_density, openmx_input_text, write_openmx_input

INPUTS = Path(__file__).parent / "data" / "openmx_inputs"
REFS = ["graphene_prim.dat", "hbn_prim.dat", "mos2_prim_soc.dat", "tbg_21.79.dat"]


def _same_input(a, b):
    """Differences between two parsed inputs (numbers compared to 1e-9)."""
    def eq(x, y):
        if x == y:
            return True
        try:
            return abs(float(x) - float(y)) < 1e-9
        except ValueError:
            return False
    bad = []
    for k in set(a.keywords) | set(b.keywords):
        x, y = a.keywords.get(k), b.keywords.get(k)
        if x is None or y is None or len(x) != len(y) or not all(map(eq, x, y)):
            bad.append((k, x, y))
    for k in set(a.blocks) | set(b.blocks):
        x, y = a.blocks.get(k), b.blocks.get(k)
        if x is None or y is None or len(x) != len(y) or any(len(r) != len(s) or not all(map(eq, r, s)) for r, s in zip(x, y)):
            bad.append((k, "block"))
    return bad


@pytest.mark.parametrize("name", REFS)
def test_writer_reproduces_reference_inputs(name):
    ref = read_openmx_input(INPUTS / name)
    atoms, _ = input_structure(ref)
    band = [(int(r[0]), [float(x) for x in r[1:4]], [float(x) for x in r[4:7]], r[7], r[8])
            for r in ref.blocks.get("band.kpath", [])]
    txt = openmx_input_text(atoms, system_name=ref.get("System.Name"), openmx_data=ref.get("DATA.PATH"),
                            kgrid=[int(x) for x in ref.keywords["scf.kgrid"]],
                            spin={"off": "none", "on": "collinear", "nc": "soc"}[ref.get("scf.SpinPolarization").lower()],
                            band=band or False)
    assert _same_input(ref, parse_openmx_input(txt)) == []


def test_writer_defaults_kgrid_and_band_path():
    """Without explicit settings: k density 4/A and ase's 2D path give graphene_prim's input."""
    ref = read_openmx_input(INPUTS / "graphene_prim.dat")
    atoms, _ = input_structure(ref)
    assert kgrid_from_density(atoms, 4.0) == (12, 12, 1)
    txt = openmx_input_text(atoms, system_name="graphene_prim", openmx_data="../DFT_DATA19", band=True)
    assert _same_input(ref, parse_openmx_input(txt)) == []


def test_round_trip_twisted_bilayer(tmp_path):
    from ase.build import graphene
    a = twisted_bilayer(graphene(a=2.46), 1, 2)
    p = write_openmx_input(tmp_path / "tbg.dat", a, kgrid=(6, 6, 1), basis={"C": ("C7.0-s3p2d2", "C_PBE19")})
    inp = read_openmx_input(p)
    b, labels = input_structure(inp)
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-11)
    np.testing.assert_allclose(b.cell[:], a.cell[:], atol=1e-11)
    assert b.get_chemical_symbols() == a.get_chemical_symbols() and set(labels) == {"C"}
    assert species_basis_labels(inp) == {"C": "C7.0-s3p2d2"}
    assert inp.get("HS.fileout") == "on" and inp.get("System.Name") == "tbg"
    with pytest.raises(BasisError, match="Xe"):
        from ase import Atoms
        openmx_input_text(Atoms("Xe", cell=np.eye(3) * 5, pbc=True))


# ---------------------------------------------------------------- runner with a stand-in OpenMX
FAKE = textwrap.dedent('''
    import gzip, pathlib, sys
    dat = pathlib.Path(sys.argv[1]); name = dat.stem
    text = dat.read_text()
    if "FAIL" in text:
        print("MPI_ABORT was invoked"); sys.exit(3)
    out = gzip.open(sys.argv[0].replace("fake_openmx.py", "ref.out.gz"), "rt").read()
    if "NOCONV" in text:   # an SCF that runs into scf.maxIter 150
        hist = "".join(f"   SCF= {k:3d}  NormRD=  0.1  Uele= -3.0\\n" for k in range(1, 151))
        out = out.split("   SCF=   1")[0] + hist + "  Chemical potential (Hartree)      -0.1\\n  Elapsed.Time.        1.0\\n"
    pathlib.Path(name + ".out").write_text(out)
    pathlib.Path(name + ".scfout").write_bytes(b"\\0" * 16)
    pathlib.Path("calls.txt").open("a").write("run\\n")
    print("The calculation was normally finished.")
''')


@pytest.fixture
def fake_openmx(tmp_path):
    (tmp_path / "fake_openmx.py").write_text(FAKE)
    (tmp_path / "ref.out.gz").write_bytes((INPUTS / "graphene_prim.out.gz").read_bytes())
    return f"{sys.executable} {tmp_path / 'fake_openmx.py'}"


def _folders(tmp_path, names):
    from ase.build import graphene
    from hotham.workflows.layers import as_slab
    out = []
    for n in names:
        f = tmp_path / "runs" / n
        write_openmx_input(f / f"{n}.dat", as_slab(graphene(a=2.46)), kgrid=(3, 3, 1), openmx_data="../DFT_DATA19")
        out.append(f)
    return out


def test_parse_real_out(tmp_path):
    f = tmp_path / "graphene_prim.out"
    f.write_text(gzip.open(INPUTS / "graphene_prim.out.gz", "rt").read())
    facts = read_out(f)
    # figures of the reference run (meta.json: 19 SCF steps, ChemP -0.138670464313 Ha, NormRD 1.002e-9)
    assert facts.finished and facts.converged and facts.scf_steps == 19
    assert facts.last_normrd == pytest.approx(1.002e-09)
    assert facts.chemical_potential / Hartree == pytest.approx(-0.138670464313, rel=1e-12)


def test_runner_parallel_resume_and_failures(tmp_path, fake_openmx, monkeypatch):
    folders = _folders(tmp_path, ["ok1", "ok2", "bad", "noconv"])
    for name, tag in (("bad", "FAIL"), ("noconv", "NOCONV")):
        dat = tmp_path / "runs" / name / f"{name}.dat"
        dat.write_text(dat.read_text() + f"# {tag}\n")
    res = {r.name: r for r in runner.run_many(folders, fake_openmx, parallel=2)}
    assert res["ok1"].status == res["ok2"].status == "converged" and res["ok1"].scf_steps == 19
    assert res["ok1"].wall_time_s > 0 and res["ok1"].chemical_potential_hartree == pytest.approx(-0.138670464313, rel=1e-12)
    assert res["bad"].status == "failed" and res["bad"].returncode == 3 and "wrote no bad.out" in res["bad"].message
    assert res["noconv"].status == "not_converged" and res["noconv"].scf_steps == 150
    rec = json.loads((tmp_path / "runs" / "ok1" / "run.json").read_text())
    assert rec["status"] == "converged"
    # resume: finished runs are skipped, the others rerun
    res2 = {r.name: r for r in runner.run_many(folders, fake_openmx, parallel=2)}
    assert res2["ok1"].status == "skipped" and res2["bad"].status == "failed"
    assert (tmp_path / "runs" / "ok1" / "calls.txt").read_text().count("run") == 1
    assert (tmp_path / "runs" / "noconv" / "calls.txt").read_text().count("run") == 2
    # no command configured: a clear error
    monkeypatch.delenv("HOTHAM_OPENMX", raising=False)
    with pytest.raises(runner.OpenMXNotFound, match="HOTHAM_OPENMX"):
        runner.run_many(folders, None)
    monkeypatch.setenv("HOTHAM_OPENMX", fake_openmx)
    assert runner.run_one(folders[0], None, resume=False).status == "converged"


def test_slurm_script(tmp_path):
    folders = _folders(tmp_path, ["a", "b", "c"])
    p = runner.slurm_array_script(folders, tmp_path / "job.sh", "mpirun -np 4 openmx", partition="cpu", max_parallel=2)
    text = p.read_text()
    assert "#SBATCH --array=0-2%2" in text and "#SBATCH --partition=cpu" in text and "mpirun -np 4 openmx" in text
    assert (tmp_path / "job.sh.folders").read_text().split() == [str(f.resolve()) for f in folders]
    runner.record_finished(folders[0], 1, 2.0)
    assert json.loads((folders[0] / "run.json").read_text())["status"] == "failed"


def test_cli_structure_and_openmx(tmp_path, fake_openmx, capsys):
    out = tmp_path / "tbg.dat"
    assert main(["structure", "twist", "graphene", "-m", "1", "-n", "2", "-o", str(out)]) == 0
    assert len(input_structure(read_openmx_input(out))[0]) == 28
    assert main(["structure", "slide", "graphene", "-n", "3", "--seed", "1", "-o", str(tmp_path / "sl.extxyz")]) == 0
    assert len(list(tmp_path.glob("sl_*.extxyz"))) == 3
    assert main(["structure", "hetero", "graphene", "hbn:a=2.504", "--twist", "0", "5", "--max-strain", "0.005",
                 "--max-atoms", "3000", "-o", str(tmp_path / "gh.xyz")]) == 0
    assert "residual strain" in capsys.readouterr().out
    assert main(["structure", "perturb", "graphene", "-n", "2", "--supercell", "2", "2", "1",
                 "-o", str(tmp_path / "pert")]) == 0
    assert len(list((tmp_path / "pert").glob("*/openmx.dat"))) == 2
    assert main(["openmx", "write", str(out), "-o", str(tmp_path / "runs"), "--kgrid", "2", "2", "1"]) == 0
    assert main(["openmx", "run", str(tmp_path / "runs"), "--command", fake_openmx]) == 0
    assert json.loads((tmp_path / "runs" / "tbg" / "run.json").read_text())["status"] == "converged"


def test_cli_slurm_script_carries_mpi_and_openmp(tmp_path):
    """--ntasks MPI processes x --cpus-per-task OpenMP threads (exported as OMP_NUM_THREADS)."""
    folders = _folders(tmp_path, ["a", "b"])
    assert main(["openmx", "run", *map(str, folders), "--slurm", str(tmp_path / "job.sh"), "--command", "srun openmx",
                 "--ntasks", "8", "--cpus-per-task", "4"]) == 0
    text = (tmp_path / "job.sh").read_text()
    assert "#SBATCH --ntasks=8" in text and "#SBATCH --cpus-per-task=4" in text and "export OMP_NUM_THREADS=4" in text


def test_command_placeholder_for_openmx_options(tmp_path, fake_openmx):
    """'{input}' places the input file so that OpenMX's own options (-nt threads) can follow it."""
    assert runner.openmx_command("mpirun -np 4 openmx {input} -nt 2", "a.dat") == \
        ["mpirun", "-np", "4", "openmx", "a.dat", "-nt", "2"]
    assert runner.openmx_command("mpirun -np 4 openmx", "a.dat")[-1] == "a.dat"
    (folder,) = _folders(tmp_path, ["ok"])
    res = runner.run_one(folder, fake_openmx + " {input} -nt 2")      # the stand-in ignores -nt
    assert res.status == "converged"
    job = runner.slurm_array_script([folder], tmp_path / "job.sh", "srun openmx {input} -nt 4")
    assert 'srun openmx "$dat" -nt 4 > "$name.std"' in job.read_text()


def test_inputs_carry_a_relative_data_path_the_runner_links(tmp_path, fake_openmx, monkeypatch):
    """With HOTHAM_OPENMX_DATA set, inputs still say DATA.PATH ../DFT_DATA19 (run folders move to a
    cluster unchanged; the valences come from the variable's VPS files), and the runner links
    DFT_DATA19 beside the run folders when it is missing."""
    data = tmp_path / "openmx_data"
    (data / "VPS").mkdir(parents=True)
    (data / "VPS" / "C_PBE19.vps").write_text("valence.electron   4.0\n")
    monkeypatch.setenv("HOTHAM_OPENMX_DATA", str(data))
    from ase.build import graphene
    from hotham.workflows.layers import as_slab
    dat = write_openmx_input(tmp_path / "runs" / "g" / "g.dat", as_slab(graphene(a=2.46)), kgrid=(3, 3, 1))
    assert read_openmx_input(dat).get("DATA.PATH") == "../DFT_DATA19" and str(tmp_path) not in dat.read_text()
    assert runner.run_one(dat.parent, fake_openmx).status == "converged"
    link = tmp_path / "runs" / "DFT_DATA19"
    assert link.is_symlink() and link.resolve() == data.resolve()
