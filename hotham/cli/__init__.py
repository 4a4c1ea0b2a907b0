"""The ``hotham`` console script.

Each module of this package that defines ``register(subparsers)`` contributes subcommands;
``register`` adds its parsers and sets ``func`` (called with the parsed args, returns an exit
code or None). Adding a command is adding a module here.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

from ..errors import HothamError
from .options import POSITIVE_INT, CommandParser


def build_parser() -> CommandParser:
    from .. import __version__
    parser = CommandParser(prog="hotham", description="Learned Kohn-Sham Hamiltonians from OpenMX data.")
    parser.add_argument("--version", action="version", version=f"hotham {__version__}")
    parser.add_argument("--threads", type=POSITIVE_INT, default=None, metavar="N",
                        help="threads for torch and BLAS (default: $OMP_NUM_THREADS, $SLURM_CPUS_PER_TASK, "
                             "else the idle cores)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        # warnings meant for the user (a model outside its domain, ...) read as the command's own
        print(f"hotham {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    try:
        from ..threads import set_threads
        set_threads(args.threads)
        rc = args.func(args)
    except HothamError as exc:
        print(f"hotham {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hotham {args.command}: interrupted; nothing half-written was left", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
