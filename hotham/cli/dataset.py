"""``hotham dataset build|info``: training sets of DFT blocks in one HDF5 file."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("dataset", help="build or inspect a training set (HDF5)",
                              description="Build a training set from OpenMX runs / DeepH folders, or describe one.")
    sub = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    b = sub.add_parser("build", help="read DFT structures into one HDF5 training set",
                       description="Read every OpenMX run folder (*.scfout) and DeepH-pack folder under SOURCES "
                                   "(searched recursively) and write one HDF5 training set. Unreadable structures "
                                   "are skipped and listed.")
    b.add_argument("sources", nargs="+", metavar="SOURCE", help="structure folders or folders of them")
    b.add_argument("-o", "--output", required=True, metavar="SET.h5", help="the HDF5 file to write")
    b.add_argument("--split", nargs=3, type=float, default=(0.8, 0.1, 0.1), metavar=("TRAIN", "VAL", "TEST"),
                   help="split ratios (default 0.8 0.1 0.1)")
    b.add_argument("--seed", type=int, default=0, help="seed of the random split (default 0)")
    b.add_argument("--cutoff", type=float, default=None, metavar="R",
                   help="drop blocks between atoms further apart than R Angstrom (default: keep all)")
    b.add_argument("--spin", choices=("none", "collinear", "soc"), default=None,
                   help="take only structures of this spin treatment (default: that of the first one read)")
    b.add_argument("--strict", action="store_true", help="fail, writing nothing, if any structure cannot be used")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.set_defaults(func=_build)
    i = sub.add_parser("info", help="describe a training set", description="Print a training set's contents.")
    i.add_argument("path", metavar="SET.h5")
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _build(args) -> int:
    from ..dataset import build_dataset
    report = build_dataset(args.sources, args.output, split=tuple(args.split), seed=args.seed,
                           cutoff=args.cutoff, spin=args.spin, progress=not args.no_progress,
                           strict=args.strict)
    print(report.summary())
    return 0


def _info(args) -> int:
    from ..dataset import Dataset
    with Dataset(args.path) as ds:
        print(ds.summary())
    return 0
