"""``hotham bands | bands-merge | dos | states | compare``: electronic structure from block files.

Each command parses its arguments and calls one function of :mod:`hotham.electronic.result_files`,
which reads the blocks with :func:`hotham.io.read` (hotham HDF5, an OpenMX run folder or
.scfout(.gz), a DeepH folder) and writes a plot (PNG or PDF, by ``--format``) and the numbers
(plain text for numpy.loadtxt, or HDF5) beside ``--output`` (a path prefix).
"""
from __future__ import annotations

from .options import (FINITE, NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, POSITIVE_INT, add_deprecated_flag,
                      add_force_option, add_mesh_option, add_window_option, typed)

#: fewest k-points of a path (a band structure needs a line, not its two ends)
NPOINTS = typed(int, ge=2)


def _common(p, output_help):
    p.add_argument("input", help="block file: hotham .h5, OpenMX run folder / .scfout(.gz), DeepH folder")
    _outputs(p, output_help)
    p.add_argument("--fermi", type=FINITE, help="Fermi level to use, eV (default: the file's)")


def _outputs(p, output_help):
    p.add_argument("-o", "--output", help=output_help)
    p.add_argument("--format", choices=("png", "pdf"), default="png", help="plot format (default png)")
    p.add_argument("--data", choices=("txt", "h5"), default="txt", help="numbers as text (numpy.loadtxt) or HDF5")
    add_window_option(p, (-5.0, 5.0), "energy window around E_F for the plot, eV (default -5 5)")
    add_force_option(p)


def _canonical(p):
    from ..electronic.ghosts import CANONICAL_THRESHOLD
    p.add_argument("--canonical", type=float, nargs="?", const=CANONICAL_THRESHOLD, metavar="THRESHOLD",
                   help="dense solve by canonical orthogonalisation: drop the eigenvectors of S(k) below THRESHOLD "
                        f"(default {CANONICAL_THRESHOLD:g}), so no ghost state can appear (costs DFT graphene bands "
                        "up to ~50 meV; see docs/robustness.md)")


def cmd_bands(args) -> int:
    options = dict(path=args.path, npoints=args.npoints, n=args.n, around=args.around, channel=args.channel,
                   fermi=args.fermi, band_edges=args.band_edges, processes=args.processes, memory_gb=args.memory_gb,
                   canonical=args.canonical)
    if args.slurm:
        from ..electronic.kchunks import write_slurm_bands
        script = write_slurm_bands(args.input, args.slurm, args.chunks, args.output, options=options,
                                   window=tuple(args.window), format=args.format, data=args.data,
                                   cpus_per_task=args.cpus_per_task, time_limit=args.time_limit,
                                   partition=args.partition, memory=args.mem, force=args.force)
        print(f"wrote {script} ({args.chunks} array tasks and a merge job); submit with: bash {script}")
        return 0
    from ..electronic.result_files import write_bands
    print(write_bands(args.input, args.output, window=tuple(args.window), format=args.format, data=args.data,
                      progress=not args.quiet, kchunk=args.kchunk, force=args.force, **options))
    return 0


def cmd_bands_merge(args) -> int:
    from ..electronic.result_files import merge_bands
    print(merge_bands(args.parts, args.output, window=tuple(args.window), format=args.format, data=args.data,
                      force=args.force))
    return 0


def cmd_dos(args) -> int:
    from ..electronic.result_files import write_dos
    mesh = args.mesh[0] if len(args.mesh) == 1 else args.mesh
    print(write_dos(args.input, args.output, mesh=mesh, width=args.width, kind=args.smearing, project=args.project,
                    electrons=args.electrons, fermi=args.fermi, temperature=args.temperature,
                    window=tuple(args.window), format=args.format, data=args.data, force=args.force))
    return 0


def cmd_states(args) -> int:
    from ..electronic.result_files import write_states
    print(write_states(args.input, args.output, kpts=args.k, bands=args.bands, n=args.n, around=args.around,
                       channel=args.channel, fermi=args.fermi, format=args.format, force=args.force,
                       canonical=args.canonical))
    return 0


def cmd_compare(args) -> int:
    from ..electronic.result_files import write_comparison
    print(write_comparison(args.model, args.reference, args.output, path=args.path, npoints=args.npoints,
                           window=tuple(args.window), align=args.align, fermi=args.fermi, mesh=args.mesh,
                           channel=args.channel, labels=(args.model_label, args.reference_label),
                           format=args.format, data=args.data, force=args.force))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("bands", help="band structure on a high-symmetry path",
                              description="Bands on an automatic path (2D in-plane for slabs), a path of special "
                                          "points (--path GMKG), or the k-points of an OpenMX .Band file "
                                          "(--path openmx / --path FILE.Band).")
    _common(p, "output prefix (default <input>_bands)")
    p.add_argument("--path", help="special points ('GMKG'), 'openmx' or a .Band file (default: automatic)")
    p.add_argument("--npoints", type=NPOINTS, default=200, help="k-points on an automatic path (default 200)")
    p.add_argument("--n", type=POSITIVE_INT, help="only the n bands nearest --around (sparse solver for big cells)")
    p.add_argument("--around", type=FINITE, help="target energy for --n, eV (default E_F)")
    p.add_argument("--band-edges", type=NON_NEGATIVE_INT, nargs=2, metavar=("BELOW", "ABOVE"),
                   help="only the BELOW states just below E_F and ABOVE from it up: band edges of an insulator "
                        "(E_F by counting when the file has none)")
    add_deprecated_flag(p, "--edges", "--band-edges", "band_edges", type=NON_NEGATIVE_INT, nargs=2)
    p.add_argument("--channel", type=int, choices=(0, 1), help="collinear: one channel (default both)")
    p.add_argument("--quiet", action="store_true", help="no progress bar over the k-points")
    p.add_argument("--processes", type=POSITIVE_INT, default=1,
                   help="k-points in this many worker processes, fewer when the memory budget holds fewer "
                        "(the threads are shared among them; default 1)")
    p.add_argument("--memory-gb", type=POSITIVE, help="memory budget of the worker processes, GB (default: available)")
    _canonical(p)
    p.add_argument("--kchunk", metavar="I/N",
                   help="only chunk I (from 0) of N of the k-points, into <output>.partIofN.h5 (join: bands-merge)")
    c = p.add_argument_group("cluster", "a SLURM job array over k-chunks, then their merge")
    c.add_argument("--slurm", metavar="SCRIPT", help="write a script submitting the array and the merge (bash SCRIPT)")
    c.add_argument("--chunks", type=POSITIVE_INT, default=4, help="array tasks, one k-chunk each (default 4)")
    c.add_argument("--cpus-per-task", type=POSITIVE_INT, default=1, help="threads per task (default 1)")
    c.add_argument("--time", dest="time_limit", default="12:00:00", metavar="HH:MM:SS", help="time limit per task")
    c.add_argument("--partition", help="SLURM partition")
    c.add_argument("--mem", help="memory per task, SLURM's --mem (e.g. 64G)")
    p.set_defaults(func=cmd_bands)

    p = subparsers.add_parser("bands-merge", help="join the k-chunk parts of hotham bands --kchunk",
                              description="Join the part files of a band run in k-chunks (hotham bands --kchunk I/N) "
                                          "into the plot and numbers hotham bands writes for the whole path.")
    p.add_argument("parts", nargs="+", help="part files <prefix>.partIofN.h5, every chunk once")
    _outputs(p, "output prefix (default: the parts' <prefix>)")
    p.set_defaults(func=cmd_bands_merge)

    p = subparsers.add_parser("dos", help="density of states (total and projected)")
    _common(p, "output prefix (default <input>_dos)")
    add_mesh_option(p, "Monkhorst-Pack mesh: n (slab: n n 1) or n1 n2 n3", default=[12])
    p.add_argument("--width", type=POSITIVE, default=0.05,
                   help="smearing width, eV: Gaussian standard deviation or Lorentzian half width (default 0.05)")
    p.add_argument("--smearing", choices=("gaussian", "lorentzian"), default="gaussian")
    p.add_argument("--project", choices=("species", "l", "atom"), help="projected DOS (Mulliken)")
    p.add_argument("--electrons", type=POSITIVE, help="electron count for the Fermi level (default: valence from the file)")
    p.add_argument("--temperature", type=NON_NEGATIVE, default=300.0, help="Fermi-Dirac temperature for E_F, K")
    p.set_defaults(func=cmd_dos)

    p = subparsers.add_parser("states", help="eigenvectors, Mulliken weights and where a state lives")
    _common(p, "output prefix (default <input>_states)")
    p.add_argument("--k", type=FINITE, nargs=3, action="append", metavar=("K1", "K2", "K3"),
                   help="fractional k-point (repeatable; default Gamma)")
    p.add_argument("--bands", type=int, nargs="+", help="band indices (0-based, ascending energy; negative from top)")
    p.add_argument("--n", type=POSITIVE_INT, help="the n states nearest --around (default E_F)")
    p.add_argument("--around", type=FINITE, help="target energy for --n, eV")
    p.add_argument("--channel", type=int, choices=(0, 1), default=0, help="collinear channel (default 0)")
    _canonical(p)
    p.set_defaults(func=cmd_states)

    p = subparsers.add_parser("compare", help="model vs reference: band MAE in a window, overlay plot, block MAE",
                              description="Bands of the model against the reference on one k-path, and their "
                                          "blocks. Both Fermi levels come from one definition: each side's electron "
                                          "count on the same k-mesh (--mesh, default automatic for the reference's "
                                          "cell), not OpenMX's stored ChemP; --fermi overrides the model's.")
    p.add_argument("model", help="model blocks (hotham .h5, ...)")
    p.add_argument("reference", help="reference blocks (OpenMX run folder, hotham .h5, DeepH folder)")
    p.add_argument("-o", "--output", help="output prefix")
    p.add_argument("--format", choices=("png", "pdf"), default="png")
    p.add_argument("--data", choices=("txt", "h5"), default="txt")
    add_window_option(p, (-2.0, 2.0), "MAE window around the reference E_F, eV (default -2 2)")
    p.add_argument("--align", choices=("fermi", "fit", "none"), default="fermi",
                   help="fermi: each side at its own E_F (both from the electron count on the same mesh); fit: "
                        "the best constant shift (band-shape error); none")
    p.add_argument("--path", help="special points, or 'openmx' / a .Band file: reference bands from OpenMX itself")
    p.add_argument("--npoints", type=NPOINTS, default=150, help="k-points on the path (default 150)")
    p.add_argument("--fermi", type=FINITE,
                   help="model Fermi level, eV (default: from its electron count on the reference's mesh)")
    add_mesh_option(p, "k-mesh of both Fermi levels: n (slab: n n 1) or n1 n2 n3 (default: automatic)")
    p.add_argument("--channel", type=int, choices=(0, 1))
    p.add_argument("--model-label", default="model")
    p.add_argument("--reference-label", default="DFT")
    add_force_option(p)
    p.set_defaults(func=cmd_compare)
