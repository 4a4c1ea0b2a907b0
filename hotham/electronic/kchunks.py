"""Band structures in k-chunks, for cells that outgrow one machine: a SLURM job array computes
one contiguous chunk of the path's k-points per task, and a merge job joins them.

* ``hotham bands IN --kchunk I/N`` (:func:`~hotham.electronic.result_files.write_bands` with
  ``kchunk``) writes chunk I of N (the chunks of :func:`~hotham.electronic.kparallel.chunk_bounds`)
  to ``<prefix>.part<I>of<N>.h5`` (:func:`write_part`): its energies, the k indices it holds, the
  whole path, a hash of the whole k list and the settings of the run;
* ``hotham bands-merge PART... -o PREFIX`` (:func:`merge_parts`) checks that the parts belong
  to one run (the same k list and settings) and cover every chunk exactly once, and writes what
  ``hotham bands`` writes for the whole path;
* ``hotham bands IN --slurm SCRIPT --chunks N`` (:func:`write_slurm_bands`) writes a script
  that, run with ``bash SCRIPT``, submits the array job (one task per chunk) and the merge job
  after it (``sbatch --dependency=afterok:<array job>``: only when every task succeeded).
"""
from __future__ import annotations

import hashlib
import json
import re
import shlex
from pathlib import Path

import numpy as np

from ..errors import HothamError
from ..files import atomic_path, source_name
from .bands import BandStructure, KPath

__all__ = ["parse_kchunk", "part_name", "part_stem", "kpoints_hash", "write_part", "merge_parts", "write_slurm_bands"]

_KIND = "hotham bands part"


def parse_kchunk(spec) -> tuple[int, int]:
    """``"I/N"`` (or a pair) -> (I, N), 0 <= I < N: chunk I of N."""
    if isinstance(spec, str):
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not m:
            raise HothamError(f"--kchunk {spec!r}: expected I/N, chunk I (from 0) of N, e.g. 0/4")
        spec = (int(m.group(1)), int(m.group(2)))
    i, n = (int(x) for x in spec)
    if n < 1 or not 0 <= i < n:
        raise HothamError(f"--kchunk {i}/{n}: the chunk index runs from 0 to N-1 = {n - 1}")
    return i, n


def part_name(prefix, i: int, n: int) -> Path:
    """The file of chunk ``i`` of ``n``: ``<prefix>.part<i>of<n>.h5``."""
    return Path(f"{prefix}.part{i}of{n}.h5")


def part_stem(fname) -> str:
    """The prefix of a part file's name (``<prefix>.part<i>of<n>.h5`` -> ``<prefix>``)."""
    return re.sub(r"\.part\d+of\d+\.h5$", "", str(fname))


def kpoints_hash(kpts) -> str:
    """SHA-256 of the k list [nk, 3] (float64 bytes): parts of different paths never merge."""
    return hashlib.sha256(np.ascontiguousarray(kpts, dtype="<f8").tobytes()).hexdigest()


def write_part(fname, path: KPath, chunk: tuple[int, int], start: int, energies, fermi_level: float,
               channel=None, partial: bool = False, settings: dict | None = None) -> Path:
    """Write chunk ``chunk`` = (i, n) of a band run: ``energies`` [stop - start, nb] eV of the
    k-points ``path.kpts[start:stop]``, with the whole ``path``, its hash, the Fermi level (eV)
    and the run's ``settings`` (a JSON-able dict; parts merge only when theirs are equal)."""
    import h5py
    energies = np.asarray(energies)
    with atomic_path(fname) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["kind"] = _KIND
        f.attrs["chunk"], f.attrs["chunks"] = int(chunk[0]), int(chunk[1])
        f.attrs["start"], f.attrs["stop"] = int(start), int(start + len(energies))
        f.attrs["kpoints_sha256"] = kpoints_hash(path.kpts)
        f.attrs["settings"] = json.dumps(settings or {}, sort_keys=True)
        f.attrs["fermi_level"] = float(fermi_level)
        f.attrs["partial"] = bool(partial)
        f.attrs["units"] = "eV, k fractional, x 1/Angstrom"
        f.attrs.create("labels", list(path.labels), dtype=h5py.string_dtype("utf-8"))
        f["kpts"], f["x"], f["special_x"] = path.kpts, path.x, path.special_x
        f["energies"] = energies
        if channel is not None:
            f["channel"] = channel
    return Path(fname)


def _read_part(fname) -> dict:
    import h5py
    fname = Path(fname)
    if not fname.is_file():
        raise HothamError(f"{fname}: no such part file")
    try:
        with h5py.File(fname, "r") as f:
            if f.attrs.get("kind") != _KIND:
                raise HothamError(f"{fname}: not a part of a band run (written by hotham bands --kchunk)")
            part = {k: f.attrs[k] for k in ("chunk", "chunks", "start", "stop", "kpoints_sha256", "settings",
                                             "fermi_level", "partial")}
            part.update(kpts=f["kpts"][()], x=f["x"][()], special_x=f["special_x"][()],
                        labels=[s.decode() if isinstance(s, bytes) else str(s) for s in f.attrs["labels"]],
                        energies=f["energies"][()], channel=f["channel"][()] if "channel" in f else None)
    except OSError as exc:
        raise HothamError(f"{fname}: cannot read the part file ({exc})") from None
    if kpoints_hash(part["kpts"]) != part["kpoints_sha256"]:
        raise HothamError(f"{fname}: its k-points do not match its recorded hash (a damaged file)")
    if len(part["energies"]) != part["stop"] - part["start"]:
        raise HothamError(f"{fname}: holds {len(part['energies'])} k-points, its range "
                          f"{part['start']}..{part['stop'] - 1} says {part['stop'] - part['start']}")
    part["file"] = fname
    return part


def merge_parts(files) -> BandStructure:
    """The band structure of the whole path from the part files of one run (:func:`write_part`).

    Fails naming the files when a part belongs to another k list or other settings, when a
    chunk is given twice, or when chunks are missing (naming the files expected for them)."""
    from .kparallel import chunk_bounds
    files = list(files)
    if not files:
        raise HothamError("no part files to merge")
    parts = [_read_part(f) for f in files]
    first = parts[0]
    n = int(first["chunks"])
    for p in parts[1:]:
        if p["kpoints_sha256"] != first["kpoints_sha256"]:
            raise HothamError(f"{p['file']} holds a part of another k list than {first['file']} "
                              f"({len(p['kpts'])} k-points vs {len(first['kpts'])}; k-point hashes differ)")
        if p["settings"] != first["settings"]:
            raise HothamError(f"{p['file']} was computed with other settings than {first['file']}: "
                              f"{p['settings']} vs {first['settings']}")
        if int(p["chunks"]) != n:
            raise HothamError(f"{p['file']} is a chunk of {int(p['chunks'])}, {first['file']} of {n}")
    by_chunk = {}
    for p in parts:
        c = int(p["chunk"])
        if c in by_chunk:
            raise HothamError(f"chunk {c} of {n} given twice: {by_chunk[c]['file']} and {p['file']}")
        by_chunk[c] = p
    missing = sorted(set(range(n)) - set(by_chunk))
    if missing:
        expected = ", ".join(str(part_name(part_stem(first["file"]), c, n)) for c in missing)
        raise HothamError(f"missing chunk(s) {', '.join(map(str, missing))} of {n}: expected {expected}")
    bounds = chunk_bounds(len(first["kpts"]), n)
    for c, p in by_chunk.items():
        if (int(p["start"]), int(p["stop"])) != bounds[c]:
            raise HothamError(f"{p['file']}: chunk {c} of {n} should hold k-points {bounds[c][0]}..{bounds[c][1] - 1}, "
                              f"it holds {int(p['start'])}..{int(p['stop']) - 1}")
        if abs(float(p["fermi_level"]) - float(first["fermi_level"])) > 1e-8:
            raise HothamError(f"{p['file']}: Fermi level {float(p['fermi_level']):.6f} eV, {first['file']} has "
                              f"{float(first['fermi_level']):.6f} eV")
    ordered = [by_chunk[c] for c in range(n)]
    widths = {p["energies"].shape[1] for p in ordered}
    if len(widths) > 1:
        raise HothamError(f"the parts hold different numbers of bands: {sorted(widths)}")
    path = KPath(first["kpts"], first["x"], first["special_x"], first["labels"])
    return BandStructure(path, np.concatenate([p["energies"] for p in ordered]), float(first["fermi_level"]),
                         first["channel"], partial=bool(first["partial"]))


#: options of ``hotham bands`` a task of the array repeats: keyword of write_bands -> flag
_FLAGS = {"path": "--path", "npoints": "--npoints", "n": "--n", "around": "--around", "band_edges": "--band-edges",
          "channel": "--channel", "fermi": "--fermi", "processes": "--processes", "memory_gb": "--memory-gb",
          "canonical": "--canonical"}


def write_slurm_bands(source, script, chunks: int, prefix=None, *, options: dict | None = None,
                      window=(-5.0, 5.0), format: str = "png", data: str = "txt", job_name: str = "hotham-bands",
                      time_limit: str = "12:00:00", cpus_per_task: int = 1, partition: str | None = None,
                      memory: str | None = None, max_parallel: int | None = None, hotham: str = "hotham",
                      force: bool = True) -> Path:
    """Write ``script``: run with ``bash script`` on a SLURM login node it submits an array job
    of ``chunks`` tasks, task I running ``hotham bands SOURCE --kchunk I/chunks`` (with
    ``options``: the keywords of :func:`~hotham.electronic.result_files.write_bands` path, npoints, n,
    around, band_edges, channel, fermi, processes, memory_gb, canonical), and a merge job, ``hotham bands-merge``
    of the ``chunks`` part files into ``prefix`` (plot ``format``, numbers ``data``, ``window``),
    which starts only when every task succeeded (``--dependency=afterok``). ``cpus_per_task``:
    threads per task; ``time_limit``, ``partition``, ``memory`` (per task, e.g. "64G"),
    ``max_parallel`` (tasks at a time), ``job_name``: SLURM's; ``hotham``: the command.
    The script's jobs replace their own earlier outputs (``--force``: a resubmitted script
    redoes them); the script itself is refused when it exists, unless ``force``.
    Returns the script's path."""
    from ..files import check_outputs
    from ..slurm import array_range, sbatch_header, write_script
    check_outputs([script], force=force, inputs=[source])
    chunks = int(chunks)
    if chunks < 1:
        raise HothamError(f"--chunks must be >= 1, got {chunks}")
    source = Path(source).resolve()
    prefix = Path(prefix) if prefix else Path(source_name(source) + "_bands")
    prefix = prefix.resolve()
    flags = []
    for key, value in (options or {}).items():
        if key not in _FLAGS:
            raise HothamError(f"option {key!r} cannot be passed to the array tasks (known: {', '.join(_FLAGS)})")
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        flags += [_FLAGS[key], *map(str, values)]
    q = shlex.quote
    threads = "${SLURM_CPUS_PER_TASK:-1}"
    task = (f"{hotham} --threads {threads} bands {q(str(source))} "
            + " ".join(q(x) for x in flags) + (" " if flags else "")
            + f"--kchunk ${{SLURM_ARRAY_TASK_ID}}/{chunks} -o {q(str(prefix))} --quiet --force")
    parts = " ".join(q(str(part_name(prefix, i, chunks))) for i in range(chunks))
    merge = (f"{hotham} --threads {threads} bands-merge {parts} -o {q(str(prefix))} --format {format} "
             f"--data {data} --window {window[0]} {window[1]} --force")
    array_job = sbatch_header(job_name, array=array_range(chunks, max_parallel), cpus_per_task=cpus_per_task,
                              time_limit=time_limit, partition=partition, memory=memory)
    merge_job = sbatch_header(f"{job_name}-merge", cpus_per_task=1, time_limit="01:00:00", partition=partition)
    lines = ["#!/bin/bash",
             f"# hotham bands of {source.name} in {chunks} k-chunks: an array job (one chunk per task), then",
             "# the merge of the parts once every task succeeded. Submit with: bash <this script>",
             "set -euo pipefail",
             f"cd {q(str(Path.cwd()))}",
             "ARRAY_JOB=$(sbatch --parsable <<'END_OF_ARRAY'",
             *array_job, "set -euo pipefail", f"export OMP_NUM_THREADS={threads}", task, "END_OF_ARRAY",
             ")",
             "ARRAY_JOB=${ARRAY_JOB%%;*}      # --parsable prints id[;cluster]",
             "sbatch --dependency=afterok:$ARRAY_JOB <<'END_OF_MERGE'",
             *merge_job, "set -euo pipefail", merge, "END_OF_MERGE",
             f'echo "submitted array job $ARRAY_JOB ({chunks} tasks) and its merge into {prefix}"']
    return write_script(script, lines)
