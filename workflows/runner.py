"""Run OpenMX on prepared folders: several in parallel, resumable, with convergence and wall
time recorded; or emit a SLURM job-array script for a cluster.

A run folder holds one ``<name>.dat``. The command comes from the ``command`` argument or the
environment variable ``HOTHAM_OPENMX`` (e.g. ``"mpirun -np 4 openmx"``); the input file name
is appended and the command runs inside the folder, stdout going to ``<name>.std``. The
outcome is written to ``run.json`` (status converged / not_converged / failed, SCF steps, last
NormRD, chemical potential, wall time, exit code). A folder whose run.json says converged and
whose .scfout exists is skipped on the next call (resume).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase.units import Hartree

from hotham.errors import FormatError, HothamError
from hotham.parsers.openmx.out import read_out

class OpenMXNotFound(HothamError):
    """No OpenMX command configured."""


@dataclass
class RunResult:
    folder: str
    name: str
    status: str              # converged | not_converged | failed | skipped
    returncode: int | None = None
    wall_time_s: float | None = None
    scf_steps: int | None = None
    last_NormRD: float | None = None
    chemical_potential_hartree: float | None = None
    message: str = ""


#: where the input file's name goes in an OpenMX command (appended when the command lacks it)
INPUT = "{input}"


def openmx_command(command=None, input_name: str | None = None) -> list[str]:
    """The OpenMX command as a list: ``command`` or env HOTHAM_OPENMX, with ``{input}`` replaced
    by ``input_name`` (appended when the command has no ``{input}``), so OpenMX's own options
    can follow the input: ``mpirun -np 4 openmx {input} -nt 2`` (4 MPI processes x 2 threads)."""
    cmd = command or os.environ.get("HOTHAM_OPENMX")
    if not cmd:
        raise OpenMXNotFound("no OpenMX command: set HOTHAM_OPENMX (e.g. 'mpirun -np 4 openmx {input} -nt 2') "
                             "or pass --command")
    parts = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if input_name is None:
        return parts
    if not any(INPUT in p for p in parts):
        return parts + [input_name]
    return [p.replace(INPUT, input_name) for p in parts]


def link_openmx_data(folder: Path, dat: Path) -> None:
    """Make a relative DATA.PATH of ``dat`` resolve: when it names a missing ``DFT_DATA19`` and
    ``$HOTHAM_OPENMX_DATA`` is set, link it there (run folders written anywhere then run here)."""
    from hotham.parsers.openmx.dat import read_openmx_input
    path = read_openmx_input(dat).get("DATA.PATH")
    env = os.environ.get("HOTHAM_OPENMX_DATA")
    if not path or os.path.isabs(path) or not env:
        return
    where = (folder / path)
    if not where.exists() and not where.is_symlink() and where.name == "DFT_DATA19":
        where.parent.mkdir(parents=True, exist_ok=True)
        try:
            where.symlink_to(Path(env).resolve(), target_is_directory=True)
        except FileExistsError:     # a run of the same folder started in parallel made it first
            if not where.is_symlink():
                raise


def find_input(folder) -> Path:
    """The single ``.dat`` input of a run folder."""
    folder = Path(folder)
    dats = sorted(folder.glob("*.dat"))
    if len(dats) != 1:
        raise FormatError(folder, f"expected one OpenMX .dat input in the folder, found {len(dats)}")
    return dats[0]


def is_done(folder) -> bool:
    """True when run.json says converged and the .scfout is there."""
    folder = Path(folder)
    rec = folder / "run.json"
    if not rec.is_file():
        return False
    try:
        st = json.loads(rec.read_text())
    except (OSError, ValueError):
        return False
    return st.get("status") == "converged" and (folder / f"{st.get('name', '')}.scfout").is_file()


def find_run_folders(paths) -> list[Path]:
    """Run folders: each path is a folder holding a .dat, or a parent of such folders."""
    out = []
    for p in map(Path, paths):
        if any(p.glob("*.dat")):
            out.append(p)
        else:
            out += sorted(q.parent for q in p.glob("*/*.dat"))
    if not out:
        raise HothamError(f"no OpenMX run folders (folders holding a .dat) under {', '.join(map(str, paths))}")
    return out


def _out_status(folder: Path) -> str | None:
    """"not_converged" when the folder's OpenMX ``.out`` says that the SCF finished without
    converging (a run made outside hotham, without run.json), else None."""
    for out in sorted(folder.glob("*.out")):
        try:
            facts = read_out(out)
        except FormatError:
            continue
        if facts.finished and not facts.converged:
            return "not_converged"
    return None


def collect_runs(paths, out_path, *, compact: bool = False, force: bool = True):
    """Build a hotham data set (:func:`hotham.dataset.build_dataset`) at ``out_path`` from the
    converged runs among the run folders under ``paths``: those whose run.json says converged
    (or that have none, and whose OpenMX ``.out``, if any, does not say that the SCF failed to
    converge) and that hold a .scfout. ``force``: replace an existing ``out_path`` (False
    refuses it before anything is read). Returns (DatasetReport, [(folder, status) of the
    folders left out]). ``compact``: compressed float32 blocks (``build_dataset``)."""
    from hotham.files import check_outputs
    check_outputs([out_path], force=force, inputs=paths)
    ok, left_out = [], []
    for f in find_run_folders(paths):
        rec = f / "run.json"
        st = json.loads(rec.read_text()).get("status") if rec.is_file() else _out_status(f)
        if st in ("converged", None) and any(f.glob("*.scfout*")):
            ok.append(f)
        else:
            left_out.append((f, st))
    if not ok:
        raise HothamError("no converged OpenMX runs to collect"
                          + "".join(f"; {f}: status {st}" for f, st in left_out))
    from hotham.dataset import build_dataset
    return build_dataset([str(f) for f in ok], out_path, progress=False, compact=compact, force=True), left_out


def _record(folder: Path, res: RunResult) -> None:
    from hotham.files import atomic_path
    with atomic_path(folder / "run.json") as tmp:
        Path(tmp).write_text(json.dumps(asdict(res), indent=1))


def run_one(folder, command=None, *, timeout: float | None = None, resume: bool = True) -> RunResult:
    """Run OpenMX in ``folder`` (see module doc); never raises for a failed run."""
    folder = Path(folder)
    dat = find_input(folder)
    name = dat.stem
    if resume and is_done(folder):
        st = json.loads((folder / "run.json").read_text())
        st["status"] = "skipped"
        st["message"] = "already converged"
        return RunResult(**{k: st.get(k) for k in RunResult.__dataclass_fields__})
    link_openmx_data(folder, dat)
    cmd = openmx_command(command, dat.name)
    t0 = time.perf_counter()
    try:
        with open(folder / f"{name}.std", "w") as std:
            proc = subprocess.run(cmd, cwd=folder, stdout=std, stderr=subprocess.STDOUT, timeout=timeout)
        rc, msg = proc.returncode, ""
    except subprocess.TimeoutExpired:
        rc, msg = None, f"timed out after {timeout} s"
    except OSError as exc:
        rc, msg = None, f"cannot start {cmd[0]!r}: {exc}"
    wall = time.perf_counter() - t0
    res = _classify(folder, name, rc, wall, msg)
    _record(folder, res)
    return res


def run_many(folders, command=None, *, parallel: int = 1, resume: bool = True,
             timeout: float | None = None) -> list[RunResult]:
    """Run every folder, ``parallel`` at a time (each run's own MPI processes come from the
    command). Results in the order of ``folders``."""
    folders = [Path(f) for f in folders]
    openmx_command(command)  # fail early when nothing is configured
    with ThreadPoolExecutor(max_workers=max(1, int(parallel))) as pool:
        return list(pool.map(lambda f: run_one(f, command, timeout=timeout, resume=resume), folders))


def slurm_array_script(folders, path, command=None, *, job_name: str = "hotham-openmx", time_limit: str = "12:00:00",
                       ntasks: int = 4, cpus_per_task: int = 1, partition: str | None = None,
                       max_parallel: int | None = None, extra_sbatch=()) -> Path:
    """Write a SLURM job-array script running one folder per array task (list of folders in
    ``<path>.folders``); finished folders (run.json converged) are skipped by the script."""
    from hotham.files import atomic_path
    from hotham.slurm import array_range, sbatch_header, write_script
    folders = [Path(f).resolve() for f in folders]
    if not folders:
        raise HothamError("no run folders for the job array")
    path = Path(path)
    listing = path.with_name(path.name + ".folders")
    cmd = command or os.environ.get("HOTHAM_OPENMX") or "srun openmx"
    lines = sbatch_header(job_name, array=array_range(len(folders), max_parallel), ntasks=ntasks,
                          cpus_per_task=cpus_per_task, time_limit=time_limit, partition=partition,
                          extra_sbatch=extra_sbatch)
    lines += ["set -uo pipefail", f"export OMP_NUM_THREADS={cpus_per_task}",
              f'folder=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" {shlex.quote(str(listing))})',
              'cd "$folder"',
              'if [ -f run.json ] && grep -q \'"status": "converged"\' run.json; then echo "done: $folder"; exit 0; fi',
              'dat=$(ls *.dat | head -n 1); name=${dat%.dat}',
              # a relative DATA.PATH (../DFT_DATA19) is linked to $HOTHAM_OPENMX_DATA when missing
              'python -c "import sys; from pathlib import Path; from hotham.workflows.runner import link_openmx_data; '
              'link_openmx_data(Path.cwd(), Path(sys.argv[1]))" "$dat"',
              f'start=$(date +%s); {_shell_command(cmd)} > "$name.std" 2>&1; rc=$?',
              # convergence and run.json are recorded by hotham (same logic as run_one)
              'python -c "import sys; from hotham.workflows.runner import record_finished; '
              'record_finished(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))" "$folder" "$rc" "$(( $(date +%s) - start ))"']
    with atomic_path(listing) as tmp:
        Path(tmp).write_text("".join(f"{f}\n" for f in folders))
    return write_script(path, lines)


def _shell_command(cmd: str) -> str:
    """The SLURM script's command line: ``{input}`` becomes the input file (appended if absent)."""
    return cmd.replace(INPUT, '"$dat"') if INPUT in cmd else f'{cmd} "$dat"'


def _classify(folder: Path, name: str, rc, wall: float, msg: str = "") -> RunResult:
    res = RunResult(folder=str(folder), name=name, status="failed", returncode=rc, wall_time_s=round(wall, 3), message=msg)
    out = folder / f"{name}.out"
    try:
        facts = read_out(out) if out.is_file() else None
    except FormatError as exc:   # a run killed before the input echo was written
        facts, res.message = None, res.message or f"{exc} (see {name}.std)"
    if facts is not None:
        res.scf_steps, res.last_NormRD = facts.scf_steps, facts.last_normrd
        if np.isfinite(facts.chemical_potential):
            res.chemical_potential_hartree = facts.chemical_potential / Hartree
        if rc == 0 and facts.converged and (folder / f"{name}.scfout").is_file():
            res.status = "converged"
        elif rc == 0 and facts.finished:
            res.status = "not_converged"
            res.message = res.message or f"SCF did not converge in {facts.scf_steps} steps"
        else:
            res.message = res.message or f"OpenMX exited with {rc} before finishing (see {name}.std)"
    else:
        res.message = res.message or f"OpenMX exited with {rc} and wrote no {name}.out (see {name}.std)"
    return res


def record_finished(folder, returncode: int, wall_time_s: float) -> RunResult:
    """Write run.json for a run made outside hotham (e.g. by the SLURM script)."""
    folder = Path(folder)
    res = _classify(folder, find_input(folder).stem, int(returncode), float(wall_time_s))
    _record(folder, res)
    return res
