"""``hotham structure perturb|slide|twist|hetero``: write generated structures in any format
ase writes (by extension), or OpenMX inputs (``.dat``, via hotham.workflows.openmx_input).

Several structures go to OUT with a 3-digit index inserted before the extension (or, when OUT
has no extension, to OUT/NNN/openmx.dat); a manifest.json beside them records each structure's
parameters (slides, distances, twist, strain, seeds).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import StructureError


def _read(spec: str):
    from ..workflows.layers import as_slab
    return as_slab(_read_raw(spec))


def _read_raw(spec: str):
    """A structure file (any ase format, or an OpenMX .dat) or a built-in layer name:
    graphene, hbn, or an ase.build.mx2 formula (MoS2, WS2, MoSe2, ...), optionally
    NAME:a=LATTICE."""
    from ase.build import graphene, mx2
    p = Path(spec)
    if p.is_file():
        from ..io import read_structure
        return read_structure(p)
    name, _, opt = spec.partition(":")
    kw = dict(x.split("=") for x in opt.split(",") if x)
    kw = {k: float(v) for k, v in kw.items()}
    low = name.lower()
    if low == "graphene":
        return graphene(a=kw.get("a", 2.46))
    if low == "hbn":
        return graphene("BN", a=kw.get("a", 2.50))
    try:
        return mx2(name, **kw)
    except Exception:
        raise StructureError(f"{spec!r} is neither a file nor a known layer (graphene, hbn, MoS2, WS2, ...)") from None


def _write(structures, out: str, args) -> list[str]:
    import ase.io
    from ..workflows.layers import as_slab
    from ..workflows.openmx_input import write_openmx_input
    out = Path(out)
    paths = []
    for k, a in enumerate(structures):
        if len(structures) == 1:
            p = out
        elif out.suffix:
            p = out.with_name(f"{out.stem}_{k:03d}{out.suffix}")
        else:
            p = out / f"{k:03d}" / "openmx.dat"
        p.parent.mkdir(parents=True, exist_ok=True)
        a = as_slab(a)
        if p.suffix == ".dat":
            write_openmx_input(p, a, kdensity=args.kdensity, openmx_data=args.data_path)
        else:
            b = a.copy()
            b.info = {}
            for key in list(b.arrays):
                if key not in ("numbers", "positions"):
                    del b.arrays[key]
            ase.io.write(p, b)
        paths.append(str(p))
    manifest = out.with_name(out.stem + "_manifest.json") if out.suffix else out / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    info = [{"file": p, **{k: _plain(v) for k, v in a.info.items()}} for p, a in zip(paths, structures)]
    manifest.write_text(json.dumps(info, indent=1))
    print(f"wrote {len(paths)} structure(s): {paths[0]}{' ...' if len(paths) > 1 else ''}")
    return paths


def _plain(v):
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v


def _perturb(args):
    from ..workflows.perturb import gaussian_perturbations, phonopy_perturbations
    atoms = _read(args.input)
    sc = [int(x) for x in args.supercell]
    if args.method == "gaussian":
        atoms = atoms.repeat(sc) if sc != [1, 1, 1] else atoms
        s = gaussian_perturbations(atoms, args.n, displacement=args.sigma, strain=args.strain, seed=args.seed)
    else:
        s = phonopy_perturbations(atoms, args.n, supercell=sc, distance=args.distance, temperature=args.temperature,
                                  force_constants=args.force_constants, strain=args.strain, seed=args.seed)
    _write(s, args.output, args)


def _slide(args):
    from ..workflows.slide import bilayer, slid_structures
    base = bilayer(_read(args.input), stacking=args.stacking, interlayer=float(np.mean(args.distance)),
                   supercell=args.supercell, cell_height=args.cell_height)
    prim = _read(args.input).cell[:2]
    dist = args.distance[0] if len(args.distance) == 1 else tuple(args.distance)
    if args.grid:
        s = slid_structures(base, grid=args.grid, distance=args.distance, displacement=args.sigma, seed=args.seed, slide_cell=prim)
    else:
        s = slid_structures(base, n=args.n, distance=dist, displacement=args.sigma, seed=args.seed, slide_cell=prim)
    _write(s, args.output, args)


def _twist(args):
    from ..workflows import twist as tw
    layer = _read(args.input)
    if args.list:
        for d in tw.commensurate_angles(args.list, atoms_per_cell=len(layer), n_layers=args.layers and len(args.layers) or 2):
            print(f"m={d['m']:3d} n={d['n']:3d}  angle={d['angle']:9.4f} deg  atoms={d['n_atoms']}")
        return 0
    rotated = [c == "1" for c in (args.layers or "01")]
    st = args.stacking.split(",") if args.stacking else ["AA"] * len(rotated)
    a = tw.twisted_multilayer(layer, args.m, args.n, rotated=rotated, stacking=st, interlayer=args.interlayer)
    print(f"(m, n) = ({args.m}, {args.n}): twist {a.info['twist_angle']:.4f} deg, {len(a)} atoms, "
          f"shortest in-layer distance {a.info['min_intra']:.4f} A")
    _write([a], args.output, args)


def _hetero(args):
    from ..workflows.hetero import heterostructure
    a, m = heterostructure(_read(args.bottom), _read(args.top), twist_range=tuple(args.twist), max_strain=args.max_strain,
                           max_atoms=args.max_atoms, strain_on=args.strain_on, interlayer=args.interlayer)
    print(f"twist {m.twist:.4f} deg, residual strain {100 * m.max_strain:.3f} % ({args.strain_on}), {m.n_atoms} atoms")
    _write([a], args.output, args)


def register(subparsers) -> None:
    p = subparsers.add_parser("structure", help="generate training structures (perturbed, slid, twisted, hetero)")
    sub = p.add_subparsers(dest="structure_command", metavar="KIND", required=True)

    def common(q):
        q.add_argument("-o", "--output", required=True, help="output file (any ase format; .dat = OpenMX input) or folder")
        q.add_argument("--kdensity", type=float, default=4.0, help="k points per 1/A for .dat outputs")
        q.add_argument("--data-path", default=None, help="DATA.PATH of .dat outputs (default $HOTHAM_OPENMX_DATA or ../DFT_DATA19)")

    q = sub.add_parser("perturb", help="random displacements (+ strain) of a (super)cell")
    q.add_argument("input")
    q.add_argument("-n", type=int, default=10)
    q.add_argument("--method", choices=["gaussian", "phonopy"], default="gaussian")
    q.add_argument("--sigma", type=float, default=0.05, help="Gaussian sigma per coordinate (A)")
    q.add_argument("--distance", type=float, default=0.03, help="phonopy random displacement distance (A)")
    q.add_argument("--temperature", type=float, default=None, help="phonopy: sample at T (K), needs --force-constants")
    q.add_argument("--force-constants", default=None, help="phonopy FORCE_CONSTANTS or force_constants.hdf5 of the supercell")
    q.add_argument("--supercell", type=int, nargs=3, default=[1, 1, 1])
    q.add_argument("--strain", type=float, default=0.0, help="sigma of the random strain entries")
    q.add_argument("--seed", type=int, default=0)
    common(q)
    q.set_defaults(func=_perturb)

    q = sub.add_parser("slide", help="bilayers with the top layer slid rigidly")
    q.add_argument("input", help="layer file or name (graphene, hbn, MoS2, ...)")
    q.add_argument("-n", type=int, default=10, help="number of random slides")
    q.add_argument("--grid", type=int, nargs=2, default=None, help="regular NU NV grid of slides instead")
    q.add_argument("--distance", type=float, nargs="+", default=[3.25, 3.45], help="LO HI range, one value, or grid values")
    q.add_argument("--stacking", default="AB")
    q.add_argument("--supercell", type=int, nargs=2, default=[1, 1])
    q.add_argument("--cell-height", type=float, default=None)
    q.add_argument("--sigma", type=float, default=0.0)
    q.add_argument("--seed", type=int, default=0)
    common(q)
    q.set_defaults(func=_slide)

    q = sub.add_parser("twist", help="commensurate twisted multilayers")
    q.add_argument("input", help="layer file or name (graphene, hbn, MoS2, ...)")
    q.add_argument("-m", type=int, default=1)
    q.add_argument("-n", type=int, default=2)
    q.add_argument("--layers", default=None, help="rotation flag per layer, bottom first: 01 bilayer, 010 trilayer, 0011 double bilayer")
    q.add_argument("--stacking", default=None, help="comma-separated stacking per layer (AA, AB, BA)")
    q.add_argument("--interlayer", type=float, default=3.35)
    q.add_argument("--list", type=int, default=0, metavar="MAX_ATOMS", help="only list commensurate angles up to this size")
    q.add_argument("-o", "--output", default="twisted.extxyz")
    q.add_argument("--kdensity", type=float, default=4.0)
    q.add_argument("--data-path", default=None)
    q.set_defaults(func=_twist)

    q = sub.add_parser("hetero", help="lattice-matched heterobilayer (top on bottom)")
    q.add_argument("bottom")
    q.add_argument("top")
    q.add_argument("--twist", type=float, nargs=2, default=[0.0, 30.0], metavar=("MIN", "MAX"))
    q.add_argument("--max-strain", type=float, default=0.01)
    q.add_argument("--max-atoms", type=int, default=2000)
    q.add_argument("--strain-on", choices=["top", "bottom", "both"], default="top")
    q.add_argument("--interlayer", type=float, default=3.35)
    common(q)
    q.set_defaults(func=_hetero)
