"""``hotham model info``: configuration and parameter count of the Hot-Ham network;
``hotham model embed-basis``: put the PAO data of a checkpoint's basis into it."""
from __future__ import annotations

import sys

from .options import add_basis_option, add_model_options, add_openmx_data_option, later, model_kwargs, parse_basis


def _info(args) -> int:
    from ..nn.info import model_info
    from ..nn.model import HotHamConfig
    info = model_info(parse_basis(args.basis), **model_kwargs(args, HotHamConfig))
    print(info.to_json() if args.json else info.text())
    for w in info.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


def _embed(args) -> int:
    from ..checkpoint import embed_basis
    r = embed_basis(args.checkpoint, args.openmx_data, args.output)
    print(f"{r['output']}: PAO data of {', '.join(r['species'])} embedded "
          f"({r['bytes_before'] / 1e3:.0f} kB -> {r['bytes_after'] / 1e3:.0f} kB)")
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
    emb = sub.add_parser("embed-basis", help="put the PAO radial functions of a model's basis into its checkpoint, "
                                             "so it predicts bare structures without OpenMX's files")
    emb.add_argument("checkpoint", help="the model checkpoint (.pt), rewritten atomically")
    emb.add_argument("-o", "--output", help="write the result here instead of over the checkpoint")
    add_openmx_data_option(emb)
    emb.set_defaults(func=_embed)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
