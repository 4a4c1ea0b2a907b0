"""k-points in parallel worker processes under a memory budget, and band runs in k-chunks (a
SLURM array) joined by a merge: the same numbers as one serial run."""
from __future__ import annotations

import io
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest

import hotham.io as hio
from conftest import random_operator
from hotham.cli import build_parser, main
from hotham.electronic import band_path, solve, tile
from hotham.electronic.kchunks import merge_parts
from hotham.electronic.kparallel import KPointError, chunk_bounds, plan_processes
from hotham.errors import HothamError
from hotham.progress import Progress

DATA = Path(__file__).parent / "data" / "openmx"


@pytest.fixture(scope="module")
def mos2_2x2():
    """A 2x2 MoS2 cell (12 atoms, 180 orbitals): an insulator with a Fermi level in its gap."""
    return tile(hio.read(DATA / "mos2_prim"), (2, 2, 1))


def _log():
    stream = io.StringIO()
    return Progress("bands", stream=stream), stream


def test_chunks_are_contiguous_and_cover_the_list():
    assert chunk_bounds(7, 3) == [(0, 3), (3, 5), (5, 7)]
    assert chunk_bounds(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]
    with pytest.raises(HothamError, match="cannot split 2 k-points into 3"):
        chunk_bounds(2, 3)


def test_two_processes_equal_the_serial_run(mos2_2x2):
    k = band_path(mos2_2x2.atoms, "GMKG", 10).kpts
    kw = dict(n=8, method="sparse", backend="superlu")        # the shift-invert path of big cells
    serial = solve(mos2_2x2, k, **kw)
    log, stream = _log()
    par = solve(mos2_2x2, k, processes=2, memory_gb=50.0, progress=log, **kw)
    assert "in 2 processes" in stream.getvalue() and par.processes == 2
    np.testing.assert_allclose(par.energies, serial.energies, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(par.kpts, serial.kpts)


def test_band_edges_in_processes_keep_warm_starts_inside_chunks(mos2_2x2):
    # the edge states start each k from the previous k's vectors: a chunk's first k starts cold,
    # so both runs agree to the solver's accuracy (residuals 1e-4 eV: eigenvalues to ~1e-8 eV)
    k = band_path(mos2_2x2.atoms, "GMKG", 9).kpts
    kw = dict(n_below=3, n_above=3, method="sparse", backend="superlu")
    serial = solve(mos2_2x2, k, **kw)
    log, stream = _log()
    par = solve(mos2_2x2, k, processes=2, memory_gb=50.0, progress=log, **kw)
    assert "in 2 processes" in stream.getvalue() and par.processes == 2
    dense = solve(mos2_2x2, k, n_below=3, n_above=3, method="dense").energies
    np.testing.assert_allclose(serial.energies, dense, atol=1e-7)
    np.testing.assert_allclose(par.energies, dense, atol=1e-7)
    # every k's windows come back, in the order of k, each starting at E_F
    for run in (serial, par):
        assert len(run.slices) == len(k) and all(w[0]["shift"] == mos2_2x2.fermi_level for w in run.slices)


def test_a_small_memory_budget_means_fewer_processes(mos2_2x2):
    k = band_path(mos2_2x2.atoms, "GMKG", 12).kpts
    kw = dict(n=8, method="sparse", backend="superlu")
    roomy = plan_processes(mos2_2x2, k, 4, memory_gb=100.0, **kw)
    assert roomy["processes"] == 4
    # a budget for two processes of the estimated size, then for less than one
    two = plan_processes(mos2_2x2, k, 4, memory_gb=2.5 * roomy["per_process_gb"], **kw)
    assert two["processes"] == 2
    assert plan_processes(mos2_2x2, k, 4, memory_gb=0.5 * roomy["per_process_gb"], **kw)["processes"] == 1
    # the working set was measured: the factor of H - shift S at the first k
    assert roomy["working_set_gb"] > 0
    # never more processes than k-points
    assert plan_processes(mos2_2x2, k[:3], 8, memory_gb=100.0, **kw)["processes"] == 3


def test_a_worker_error_names_the_k_point():
    op = random_operator(seed=0)      # S(k) of this operator is indefinite near k = (0.35, 0, 0) only
    k = np.array([[t, 0.0, 0.0] for t in np.linspace(0.0, 0.35, 8)])
    with pytest.raises(KPointError) as exc:
        solve(op, k, processes=2, memory_gb=50.0)
    err = exc.value
    assert err.index == 7 and err.chunk == (4, 8)
    np.testing.assert_allclose(err.kpoint, k[7])
    assert "k-point 7 of 8" in str(err) and "not positive definite" in str(err)


def test_chunks_merged_equal_the_whole_run(mos2_2x2, tmp_path):
    src = tmp_path / "mos2.h5"
    hio.write(src, mos2_2x2)
    common = ["--path", "GMKG", "--npoints", "11", "--n", "6", "--quiet"]
    assert main(["--threads", "1", "bands", str(src), "-o", str(tmp_path / "whole"), *common]) == 0
    for i in range(3):
        assert main(["--threads", "1", "bands", str(src), "-o", str(tmp_path / "run"), *common,
                     "--kchunk", f"{i}/3"]) == 0
    parts = [tmp_path / f"run.part{i}of3.h5" for i in range(3)]
    with h5py.File(parts[1]) as f:
        assert (f.attrs["start"], f.attrs["stop"]) == chunk_bounds(len(f["kpts"]), 3)[1]
    # given in any order
    assert main(["bands-merge", *map(str, parts[::-1]), "-o", str(tmp_path / "merged")]) == 0
    whole = np.loadtxt(tmp_path / "whole.txt")
    merged = np.loadtxt(tmp_path / "merged.txt")
    assert merged.shape == whole.shape
    np.testing.assert_allclose(merged, whole, rtol=0, atol=1e-10)
    assert (tmp_path / "merged.png").stat().st_size > 0
    assert (tmp_path / "whole.txt").read_text().splitlines()[:3] == (tmp_path / "merged.txt").read_text().splitlines()[:3]

    # a missing chunk, a chunk twice, parts of another k list
    with pytest.raises(HothamError, match=r"missing chunk\(s\) 1 of 3: expected .*run\.part1of3\.h5"):
        merge_parts([parts[0], parts[2]])
    with pytest.raises(HothamError, match="chunk 2 of 3 given twice"):
        merge_parts([parts[0], parts[1], parts[2], parts[2]])
    assert main(["--threads", "1", "bands", str(src), "-o", str(tmp_path / "other"), "--path", "GKMG",
                 "--npoints", "11", "--n", "6", "--quiet", "--kchunk", "1/3"]) == 0
    with pytest.raises(HothamError, match="another k list"):
        merge_parts([parts[0], tmp_path / "other.part1of3.h5", parts[2]])
    assert main(["bands-merge", str(parts[0]), str(parts[2]), "-o", str(tmp_path / "bad")]) == 2


def test_slurm_script_runs_chunks_then_the_merge(tmp_path):
    src = tmp_path / "big cell.h5"          # a space: the paths must be quoted
    src.write_bytes(b"")                     # the script is written without reading the input
    script = tmp_path / "bands.sh"
    assert main(["bands", str(src), "-o", str(tmp_path / "tbg"), "--n", "8", "--path", "GKMG", "--processes", "2",
                 "--slurm", str(script), "--chunks", "5", "--cpus-per-task", "8", "--partition", "cpu",
                 "--mem", "64G"]) == 0
    text = script.read_text()
    assert "#SBATCH --array=0-4" in text and "#SBATCH --cpus-per-task=8" in text
    assert "#SBATCH --partition=cpu" in text and "#SBATCH --mem=64G" in text
    assert "sbatch --dependency=afterok:$ARRAY_JOB" in text
    task = next(line for line in text.splitlines() if "--kchunk" in line)
    merge = next(line for line in text.splitlines() if line.startswith("hotham") and "bands-merge" in line)
    # the task's command line parses to the options given, chunk I of 5 from the array index
    argv = shlex.split(task.replace("${SLURM_ARRAY_TASK_ID}", "3").replace("${SLURM_CPUS_PER_TASK:-1}", "8"))
    args = build_parser().parse_args(argv[1:])
    assert (args.threads, args.command, args.input, args.kchunk) == (8, "bands", str(src.resolve()), "3/5")
    assert (args.n, args.path, args.processes, args.output) == (8, "GKMG", 2, str((tmp_path / "tbg").resolve()))
    margs = build_parser().parse_args(shlex.split(merge.replace("${SLURM_CPUS_PER_TASK:-1}", "1"))[1:])
    assert margs.parts == [str((tmp_path / f"tbg.part{i}of5.h5").resolve()) for i in range(5)]
    # the merge job comes after the array job in the script
    assert text.index("END_OF_ARRAY\n)") < text.index("afterok")
