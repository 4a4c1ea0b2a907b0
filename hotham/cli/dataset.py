"""``hotham dataset build|info``: training sets of DFT blocks in one HDF5 file."""
from __future__ import annotations

from .options import (NON_NEGATIVE, NON_NEGATIVE_INT, POSITIVE, add_compact_option, add_force_option, defaults_from,
                      later)


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
    b.add_argument("--split", nargs=3, type=NON_NEGATIVE, metavar=("TRAIN", "VAL", "TEST"),
                   help="split ratios (default %(default)s)")
    b.add_argument("--seed", type=NON_NEGATIVE_INT, help="seed of the random split (default %(default)s)")
    b.add_argument("--split-by-source", action="store_true",
                   help="split each SOURCE on its own and merge the parts (each set held out in proportion)")
    b.add_argument("--cutoff", type=POSITIVE, metavar="R",
                   help="drop blocks between atoms further apart than R Angstrom (default: keep all)")
    b.add_argument("--spin", choices=("none", "collinear", "soc"),
                   help="take only structures of this spin treatment (default: that of the first one read)")
    b.add_argument("--strict", action="store_true", help="fail, writing nothing, if any structure cannot be used")
    add_compact_option(b)
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_force_option(b)
    later(b, _build_defaults)
    b.set_defaults(func=_build)
    i = sub.add_parser("info", help="describe a training set", description="Print a training set's contents.")
    i.add_argument("path", metavar="SET.h5")
    i.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])


def _build_defaults(parser) -> None:
    from ..dataset import build_dataset
    defaults_from(parser, build_dataset)


def _build(args) -> int:
    from ..dataset import build_dataset
    report = build_dataset(args.sources, args.output, split=tuple(args.split), seed=args.seed,
                           cutoff=args.cutoff, spin=args.spin, progress=not args.no_progress,
                           strict=args.strict, split_by_source=args.split_by_source,
                           compact=args.compact, force=args.force)
    print(report.summary())
    return 0


def _info(args) -> int:
    from ..dataset import Dataset
    with Dataset(args.path) as ds:
        print(ds.summary())
    return 0
