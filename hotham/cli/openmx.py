"""``hotham openmx write|run|collect|check``: OpenMX inputs, runs, the dataset built from them,
and a check of one run (parse, Hermiticity, bands against its own ``.Band``)."""
from __future__ import annotations

from .options import (OPENMX_DATA_INPUT_HELP, POSITIVE, POSITIVE_INT, add_basis_option, add_compact_option,
                      add_force_option, add_openmx_data_option, defaults_from, element_map, later, parse_basis)


def _write(args):
    from ..workflows.openmx_input import write_run_folders
    paths = write_run_folders(args.structures, args.output, name=args.name, basis=parse_basis(args.basis),
                              vps=element_map(args.vps, "--vps", "EL=NAME", "C=C_PBE19"),
                              valence=element_map(args.valence, "--valence", "EL=N", "C=4", float),
                              openmx_data=args.openmx_data, kgrid=args.kgrid, kdensity=args.kdensity,
                              spin=args.spin, band=args.band, force=args.force)
    for path in paths:
        print(path)


def _input_defaults(parser) -> None:
    from ..workflows.openmx_input import openmx_input_text
    defaults_from(parser, openmx_input_text)


def _run_defaults(parser) -> None:
    from ..workflows import runner
    defaults_from(parser, runner.run_many)
    defaults_from(parser, runner.slurm_array_script)


def _run(args):
    from ..workflows import runner
    folders = runner.find_run_folders(args.folders)
    if args.slurm:
        from ..files import check_outputs
        check_outputs([args.slurm, f"{args.slurm}.folders"], force=args.force)
        path = runner.slurm_array_script(folders, args.slurm, args.openmx_cmd, ntasks=args.ntasks,
                                         cpus_per_task=args.cpus_per_task, time_limit=args.time_limit,
                                         partition=args.partition, max_parallel=args.parallel)
        print(f"wrote {path} ({len(folders)} array tasks); submit with: sbatch {path}")
        return 0
    results = runner.run_many(folders, args.openmx_cmd, parallel=args.parallel, resume=not args.no_resume,
                              timeout=args.timeout)
    for r in results:
        wall = f"{r.wall_time_s:.1f} s" if r.wall_time_s is not None else "-"
        print(f"{r.status:14s} {r.folder}  scf={r.scf_steps}  wall={wall}  {r.message}")
    return 1 if any(r.status in ("failed", "not_converged") for r in results) else 0


def _collect(args):
    from ..workflows.runner import collect_runs
    report, left_out = collect_runs(args.folders, args.output, compact=args.compact, force=args.force)
    for folder, status in left_out:
        print(f"skipping {folder} (status {status})")
    print(report.summary())
    print(f"collected {report.n_structures} run(s) into {args.output}")


def _check(args):
    from ..openmx_check import check_openmx_run
    if args.output:
        from ..files import check_outputs
        check_outputs([args.output], force=args.force, inputs=[args.run])
    check_openmx_run(args.run, band=args.band, symmetrize=args.symmetrize, output=args.output)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("openmx", help="write OpenMX inputs, run OpenMX, collect runs into a dataset")
    sub = p.add_subparsers(dest="openmx_command", metavar="ACTION", required=True)

    q = sub.add_parser("write", help="one run folder OUT/NAME/NAME.dat per structure",
                       description="Write one OpenMX input per structure. Species not given by --basis/--vps/"
                                   "--valence take DFT_DATA19's standard basis and pseudopotential "
                                   "(hotham.workflows.openmx_input.DEFAULT_SPECIES); valences are read from the "
                                   "VPS files when the DFT_DATA19 folder is an absolute path.")
    q.add_argument("structures", nargs="+", help="structure files (any ase format) or layer names")
    q.add_argument("-o", "--output", default=".", help="parent folder of the run folders")
    q.add_argument("--name", default=None, help="run name (NAME_NNN for several structures; default: file stem)")
    q.add_argument("--kgrid", type=POSITIVE_INT, nargs=3, metavar=("K1", "K2", "K3"), help="Monkhorst-Pack grid")
    q.add_argument("--kdensity", type=POSITIVE,
                   help="k points per 1/A (2 pi included) when no --kgrid (default %(default)s)")
    q.add_argument("--spin", choices=["none", "collinear", "soc"],
                   help="spin treatment: none, collinear, or soc (non-collinear with spin-orbit coupling; "
                        "default %(default)s)")
    q.add_argument("--band", action="store_true", help="band structure on ase's standard path")
    add_basis_option(q, "OpenMX basis label per element, e.g. C=C6.0-s2p2d1 Mo=Mo7.0-s3p2d2 (pseudopotentials: --vps)")
    q.add_argument("--vps", nargs="+", action="extend", metavar="EL=NAME",
                   help="pseudopotential per element, e.g. C=C_PBE19")
    q.add_argument("--valence", nargs="+", action="extend", metavar="EL=N",
                   help="valence electrons per element (when no VPS file is at hand), e.g. C=4")
    add_openmx_data_option(q, OPENMX_DATA_INPUT_HELP)
    add_force_option(q)
    later(q, _input_defaults)
    q.set_defaults(func=_write)

    q = sub.add_parser("run", help="run OpenMX in folders (parallel, resumable) or write a SLURM array script")
    q.add_argument("folders", nargs="+", help="run folders, or folders of them")
    q.add_argument("--command", dest="openmx_cmd", default=None,
                   help="OpenMX command (default $HOTHAM_OPENMX), e.g. 'mpirun -np 4 openmx'")
    q.add_argument("--parallel", type=POSITIVE_INT,
                   help="runs at a time (SLURM: max array tasks at a time) (default %(default)s)")
    q.add_argument("--no-resume", action="store_true", help="rerun folders that already converged")
    q.add_argument("--timeout", type=POSITIVE, help="seconds per run")
    q.add_argument("--slurm", default=None, metavar="SCRIPT", help="write a SLURM job-array script instead of running")
    q.add_argument("--ntasks", type=POSITIVE_INT, help="SLURM tasks (MPI processes) per run (default %(default)s)")
    q.add_argument("--cpus-per-task", type=POSITIVE_INT,
                   help="SLURM CPUs (OpenMP threads, exported as OMP_NUM_THREADS) per task (default %(default)s)")
    q.add_argument("--time", dest="time_limit", metavar="HH:MM:SS", help="SLURM time limit per run (default %(default)s)")
    q.add_argument("--partition", help="SLURM partition")
    add_force_option(q)
    later(q, _run_defaults)
    q.set_defaults(func=_run)

    q = sub.add_parser("collect", help="build a hotham dataset from converged runs")
    q.add_argument("folders", nargs="+", help="run folders, or folders of them")
    q.add_argument("-o", "--output", required=True)
    add_compact_option(q)
    add_force_option(q)
    q.set_defaults(func=_collect)

    q = sub.add_parser("check", help="parse one run and check it: Hermiticity, bands against its .Band file")
    q.add_argument("run", help="run folder or .scfout(.gz)")
    q.add_argument("--band", default=None, help=".Band file (default: the one beside the run)")
    q.add_argument("-o", "--output", default=None, help="also convert to a hotham HDF5 file")
    q.add_argument("--symmetrize", action="store_true", help="average every block with its Hermitian partner")
    add_force_option(q)
    q.set_defaults(func=_check)
