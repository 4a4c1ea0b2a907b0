"""``hotham model info``: configuration and parameter count of the Hot-Ham network."""
from __future__ import annotations

import sys

from .options import add_basis_option, add_model_options, later, model_kwargs, parse_basis


def _info(args) -> int:
    from ..model_info import model_info
    from ..nn.model import HotHamConfig
    info = model_info(parse_basis(args.basis), **model_kwargs(args, HotHamConfig))
    print(info.to_json() if args.json else info.text())
    for w in info.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _model_options(parser) -> None:
    from ..nn.model import HotHamConfig
    add_model_options(parser, HotHamConfig, title="model")


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="inspect the Hot-Ham network")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    info = sub.add_parser("info", help="print the model configuration and its parameter count")
    add_basis_option(info, "OpenMX basis label per element, e.g. Mo=Mo7.0-s3p2d2 S=s2p2d1 (the PAO part may be "
                           "left out; default C=s2p2d1)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    later(info, _model_options)
    info.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
