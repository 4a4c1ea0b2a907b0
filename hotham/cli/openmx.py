"""``hotham openmx write|run|collect|check``: OpenMX inputs, runs, the dataset built from them,
and a check of one run (parse, Hermiticity, bands against its own ``.Band``)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import HothamError


def _basis(specs):
    """--basis C=C6.0-s2p2d1,C_PBE19[,4] ... -> {"C": ("C6.0-s2p2d1", "C_PBE19", 4.0)}"""
    out = {}
    for s in specs or []:
        el, _, rest = s.partition("=")
        parts = rest.split(",")
        if len(parts) < 2:
            raise HothamError(f"--basis {s!r}: expected EL=PAO,VPS[,VALENCE]")
        out[el] = (parts[0], parts[1], *(float(x) for x in parts[2:3]))
    return out


def _write(args):
    from ..workflows.layers import as_slab
    from ..workflows.openmx_input import write_openmx_input
    from .structure import _read
    out = Path(args.output)
    for spec in args.structures:
        atoms = as_slab(_read(spec))
        name = args.name or Path(spec).stem
        if len(args.structures) > 1 and args.name:
            name = f"{args.name}_{len(list(out.glob('*'))):03d}"
        path = out / name / f"{name}.dat"
        write_openmx_input(path, atoms, system_name=name, basis=_basis(args.basis), openmx_data=args.data_path,
                           kgrid=args.kgrid, kdensity=args.kdensity, spin=args.spin, soc=args.soc, band=args.band)
        print(path)


def _folders(paths):
    """Run folders: each argument is a folder holding a .dat, or a parent of such folders."""
    out = []
    for p in map(Path, paths):
        if any(p.glob("*.dat")):
            out.append(p)
        else:
            out += sorted(q.parent for q in p.glob("*/*.dat"))
    if not out:
        raise HothamError(f"no OpenMX run folders (folders holding a .dat) under {', '.join(map(str, paths))}")
    return out


def _run(args):
    from ..workflows import runner
    folders = _folders(args.folders)
    if args.slurm:
        path = runner.slurm_array_script(folders, args.slurm, args.openmx_cmd, ntasks=args.ntasks, time_limit=args.time,
                                         partition=args.partition, max_parallel=args.parallel)
        print(f"wrote {path} ({len(folders)} array tasks); submit with: sbatch {path}")
        return 0
    results = runner.run_many(folders, args.openmx_cmd, parallel=args.parallel, resume=not args.no_resume,
                              timeout=args.timeout)
    bad = 0
    for r in results:
        wall = f"{r.wall_time_s:.1f} s" if r.wall_time_s is not None else "-"
        print(f"{r.status:14s} {r.folder}  scf={r.scf_steps}  wall={wall}  {r.message}")
        bad += r.status in ("failed", "not_converged")
    return 1 if bad else 0


def _collect(args):
    folders = _folders(args.folders)
    ok = []
    for f in folders:
        rec = f / "run.json"
        st = json.loads(rec.read_text()).get("status") if rec.is_file() else None
        if st in ("converged", None) and any(f.glob("*.scfout*")):
            ok.append(f)
        else:
            print(f"skipping {f} (status {st})")
    if not ok:
        raise HothamError("no converged OpenMX runs to collect")
    from ..dataset import build_dataset
    report = build_dataset([str(f) for f in ok], args.output, progress=False)
    print(report.summary())
    print(f"collected {report.n_structures} run(s) into {args.output}")


def _check(args):
    from .. import io
    from ..parsers.openmx import find_run_files, read_openmx
    from ..parsers.openmx.band import band_deviation
    op = read_openmx(args.run, symmetrize=args.symmetrize)
    meta = op.meta
    print(op)
    print(f"SpinP_switch {meta.get('spinp_switch')}, OpenMX {meta.get('openmx_version', '?')}, "
          f"scf steps: {meta.get('scf_steps')}, converged: {meta.get('scf_converged')}")
    print(f"Hermitian pairing: H {op.hermiticity_error('H'):.2e} eV, S {op.hermiticity_error('S'):.2e}")
    band = Path(args.band) if args.band else find_run_files(args.run).get("band")
    if band is not None:
        r = band_deviation(op, band)
        ok = r["max_abs_eV"] < 1e-4 and r["min_eig_S"] > 0
        print(f"bands vs {band.name}: max |dE| {r['max_abs_eV']:.2e} eV ({r['nband']} bands x {r['nk']} k x "
              f"{r['nspin']} spin), within 5 eV of E_F {r['window_max_abs_eV']:.2e} eV, min eig S(k) "
              f"{r['min_eig_S']:.2e}  [{'ok' if ok else 'MISMATCH'}]")
    if args.output:
        io.write(args.output, op)
        print(f"wrote {args.output}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("openmx", help="write OpenMX inputs, run OpenMX, collect runs into a dataset")
    sub = p.add_subparsers(dest="openmx_command", metavar="ACTION", required=True)

    q = sub.add_parser("write", help="one run folder OUT/NAME/NAME.dat per structure")
    q.add_argument("structures", nargs="+", help="structure files (any ase format) or layer names")
    q.add_argument("-o", "--output", default=".", help="parent folder of the run folders")
    q.add_argument("--name", default=None)
    q.add_argument("--kgrid", type=int, nargs=3, default=None)
    q.add_argument("--kdensity", type=float, default=4.0, help="k points per 1/A (2 pi included) when no --kgrid")
    q.add_argument("--spin", choices=["off", "on", "nc"], default="off")
    q.add_argument("--soc", action="store_true", help="spin-orbit coupling (non-collinear)")
    q.add_argument("--band", action="store_true", help="band structure on ase's standard path")
    q.add_argument("--basis", nargs="*", default=None, metavar="EL=PAO,VPS[,VALENCE]")
    q.add_argument("--data-path", default=None, help="DATA.PATH (default $HOTHAM_OPENMX_DATA or ../DFT_DATA19)")
    q.set_defaults(func=_write)

    q = sub.add_parser("run", help="run OpenMX in folders (parallel, resumable) or write a SLURM array script")
    q.add_argument("folders", nargs="+")
    q.add_argument("--command", dest="openmx_cmd", default=None, help="OpenMX command (default $HOTHAM_OPENMX), e.g. 'mpirun -np 4 openmx'")
    q.add_argument("--parallel", type=int, default=1, help="runs at a time (SLURM: max array tasks at a time)")
    q.add_argument("--no-resume", action="store_true", help="rerun folders that already converged")
    q.add_argument("--timeout", type=float, default=None, help="seconds per run")
    q.add_argument("--slurm", default=None, metavar="SCRIPT", help="write a SLURM job-array script instead of running")
    q.add_argument("--ntasks", type=int, default=4)
    q.add_argument("--time", default="12:00:00")
    q.add_argument("--partition", default=None)
    q.set_defaults(func=_run)

    q = sub.add_parser("collect", help="build a hotham dataset from converged runs")
    q.add_argument("folders", nargs="+")
    q.add_argument("-o", "--output", required=True)
    q.set_defaults(func=_collect)

    q = sub.add_parser("check", help="parse one run and check it: Hermiticity, bands against its .Band file")
    q.add_argument("run", help="run folder or .scfout(.gz)")
    q.add_argument("--band", default=None, help=".Band file (default: the one beside the run)")
    q.add_argument("-o", "--output", default=None, help="also convert to a hotham HDF5 file")
    q.add_argument("--symmetrize", action="store_true", help="average every block with its Hermitian partner")
    q.set_defaults(func=_check)
