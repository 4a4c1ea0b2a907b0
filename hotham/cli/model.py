"""``hotham model info``: configuration and parameter count of the Hot-Ham network."""
from __future__ import annotations

import json
import sys

from ..errors import HothamError


def _parse_basis(items):
    """["C=C6.0-s2p2d1", "Mo=s3p2d2"] -> {symbol: shells}."""
    from ..basis import parse_openmx_basis
    out = {}
    for item in items or []:
        sym, sep, label = item.partition("=")
        if not sep or not sym:
            raise HothamError(f"--basis expects SYMBOL=LABEL (e.g. C=C6.0-s2p2d1), got {item!r}")
        if "-" not in label:
            label = f"{sym}-{label}"
        out[sym] = parse_openmx_basis(label)
    return out


def _info(args) -> int:
    from pydantic import ValidationError

    from ..nn.model import HotHam, HotHamConfig
    kw = {k: getattr(args, k) for k in ("lmax", "channels", "layers", "conv", "gaunt_method", "radial_basis",
                                         "n_radial", "r_cut", "hidden") if getattr(args, k) is not None}
    species = _parse_basis(args.basis)
    if species:
        kw["species"] = species
    try:
        cfg = HotHamConfig(**kw)
    except ValidationError as exc:
        raise HothamError(f"invalid model configuration: {exc}") from None
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = HotHam(cfg)
    n = model.n_parameters
    if args.json:
        print(json.dumps({"config": json.loads(cfg.model_dump_json()), "parameters": n}, indent=2))
    else:
        print("Hot-Ham model configuration:")
        print(cfg.to_json())
        print(f"parameters: {n:,}")
        for part in ("embedding", "layers", "last", "onsite", "hopping"):
            print(f"  {part:10s} {sum(p.numel() for p in getattr(model, part).parameters()):>10,}")
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="inspect the Hot-Ham network")
    sub = p.add_subparsers(dest="model_command", metavar="ACTION")
    info = sub.add_parser("info", help="print the model configuration and its parameter count")
    info.add_argument("--basis", action="append", metavar="SYMBOL=LABEL",
                      help="species basis, e.g. --basis Mo=Mo7.0-s3p2d2 --basis S=s2p2d1 (default C=s2p2d1)")
    info.add_argument("--lmax", type=int, help="L of the hidden irreps (default 4)")
    info.add_argument("--channels", type=int, help="channels per irrep (default 32)")
    info.add_argument("--layers", type=int, help="Gaunt/e3nn layers before the SO(2) layer (default 3)")
    info.add_argument("--conv", choices=["gaunt", "e3nn"], help="tensor product of the message layers")
    info.add_argument("--gaunt-method", choices=["fourier", "grid"], help="Gaunt product form")
    info.add_argument("--radial-basis", choices=["chebyshev", "bessel", "gaussian"])
    info.add_argument("--n-radial", type=int, help="radial basis size (default 16)")
    info.add_argument("--r-cut", type=float, help="radial cutoff, Angstrom (default 12)")
    info.add_argument("--hidden", type=int, help="MLP width (default 64)")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(func=_info)
    p.set_defaults(func=lambda args: (p.print_help(), 1)[1])
