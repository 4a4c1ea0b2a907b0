"""SLURM batch scripts: the ``#SBATCH`` header of a job (or job array) and the atomic write of a
script. Used by the OpenMX runner (one array task per run folder,
:func:`hotham.workflows.runner.slurm_array_script`) and by band structures in k-chunks (one
array task per chunk, then a merge job, :func:`hotham.electronic.kchunks.write_slurm_bands`).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["sbatch_header", "array_range", "write_script"]


def array_range(tasks: int, max_parallel: int | None = None) -> str:
    """``--array`` value for ``tasks`` tasks numbered from 0, at most ``max_parallel`` at a time."""
    return f"0-{int(tasks) - 1}" + (f"%{int(max_parallel)}" if max_parallel else "")


def sbatch_header(job_name: str, *, array: str | None = None, ntasks: int = 1, cpus_per_task: int = 1,
                  time_limit: str = "12:00:00", partition: str | None = None, memory: str | None = None,
                  extra_sbatch=()) -> list[str]:
    """The first lines of a batch script: ``#!/bin/bash`` and its ``#SBATCH`` options (job name,
    ``array`` range, tasks, CPUs per task, time limit, log file ``<job>-%A_%a.log`` for arrays or
    ``<job>-%j.log``, partition, ``memory`` per node such as "64G", and the lines of
    ``extra_sbatch`` as given)."""
    log = f"{job_name}-%A_%a.log" if array else f"{job_name}-%j.log"
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}"]
    if array:
        lines.append(f"#SBATCH --array={array}")
    lines += [f"#SBATCH --ntasks={ntasks}", f"#SBATCH --cpus-per-task={cpus_per_task}",
              f"#SBATCH --time={time_limit}", f"#SBATCH --output={log}"]
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if memory:
        lines.append(f"#SBATCH --mem={memory}")
    lines += [f"#SBATCH {x}" for x in extra_sbatch]
    return lines


def write_script(path, lines) -> Path:
    """Write the script's ``lines`` to ``path`` atomically, executable; returns the path."""
    from .files import atomic_path
    path = Path(path)
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o755)
    return path
