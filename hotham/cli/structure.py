"""``hotham structure perturb|slide|twist|hetero``: write generated structures in any format
ase writes (by extension), or OpenMX inputs (``.dat``); see hotham.workflows.generate.

Several structures go to OUT with a 3-digit index inserted before the extension; when OUT is a
folder (no extension, a trailing /, or an existing folder) one or several go to OUT/NNN/openmx.dat.
A manifest.json beside them records each structure's parameters (slides, distances, twist,
strain, seeds).
"""
from __future__ import annotations

import importlib

from .options import (FINITE, NON_NEGATIVE, NON_NEGATIVE_INT, OPENMX_DATA_INPUT_HELP, POSITIVE, POSITIVE_INT,
                      Range, add_force_option, add_openmx_data_option, defaults_from, kwargs_for, later)

LAYER_HELP = "layer file or name (graphene, hbn, MoS2, ...; NAME:a=LATTICE)"


def _defaults(module: str, name: str):
    """Builder giving a parser the defaults of hotham.workflows.<module>.<name> and of
    write_structures (imported when the command is used)."""
    def build(parser):
        from ..workflows.generate import write_structures
        defaults_from(parser, write_structures)
        defaults_from(parser, getattr(importlib.import_module(f"hotham.workflows.{module}"), name))
    return build


def _write(structures, args) -> int:
    from ..workflows.generate import write_structures
    paths = write_structures(structures, args.output, kdensity=args.kdensity, kgrid=args.kgrid,
                             openmx_data=args.openmx_data, force=args.force)
    print(f"wrote {len(paths)} structure(s): {paths[0]}{' ...' if len(paths) > 1 else ''}")
    return 0


def _perturb(args):
    from ..workflows.generate import generate_perturbed
    return _write(generate_perturbed(args.input, **kwargs_for(generate_perturbed, args)), args)


def _slide(args):
    from ..workflows.generate import generate_slid
    return _write(generate_slid(args.input, **kwargs_for(generate_slid, args)), args)


def _twist(args):
    from ..workflows.generate import generate_twisted, twist_angles
    if args.list:
        for d in twist_angles(args.input, args.list, layers=args.layers):
            print(f"m={d['m']:3d} n={d['n']:3d}  angle={d['angle']:9.4f} deg  atoms={d['n_atoms']}")
        return 0
    a = generate_twisted(args.input, **kwargs_for(generate_twisted, args))
    print(f"(m, n) = ({args.m}, {args.n}): twist {a.info['twist_angle']:.4f} deg, {len(a)} atoms, "
          f"shortest in-layer distance {a.info['min_intra']:.4f} A")
    return _write([a], args)


def _hetero(args):
    from ..workflows.generate import generate_hetero
    from ..workflows.hetero import heterostructure
    a, m = generate_hetero(args.bottom, args.top, **kwargs_for(heterostructure, args, skip=["bottom", "top"]))
    print(f"twist {m.twist:.4f} deg, residual strain {100 * m.max_strain:.3f} % ({args.strain_on}), {m.n_atoms} atoms")
    return _write([a], args)


def register(subparsers) -> None:
    p = subparsers.add_parser("structure", help="generate training structures (perturbed, slid, twisted, hetero)")
    sub = p.add_subparsers(dest="structure_command", metavar="KIND", required=True)

    def output(q, required=True):
        q.add_argument("-o", "--output", required=required,
                       help="output file (any ase format; .dat = OpenMX input) or folder")
        q.add_argument("--kdensity", type=POSITIVE, help="k points per 1/A of .dat outputs (default %(default)s)")
        q.add_argument("--kgrid", type=POSITIVE_INT, nargs=3, metavar=("N1", "N2", "N3"),
                       help="k grid of .dat outputs instead of --kdensity")
        add_openmx_data_option(q, OPENMX_DATA_INPUT_HELP)
        add_force_option(q)

    q = sub.add_parser("perturb", help="random displacements (+ strain) of a (super)cell")
    q.add_argument("input", help="structure file or layer name")
    q.add_argument("-n", type=POSITIVE_INT, help="number of structures (default %(default)s)")
    q.add_argument("--method", choices=["gaussian", "phonopy"],
                   help="Gaussian displacements, or phonopy's random displacements (default %(default)s)")
    q.add_argument("--displacement", type=NON_NEGATIVE,
                   help="gaussian: standard deviation of the displacements per coordinate, A (default %(default)s)")
    q.add_argument("--distance", type=POSITIVE, help="phonopy: displacement distance, A (default %(default)s)")
    q.add_argument("--temperature", type=NON_NEGATIVE, help="phonopy: sample at T (K), needs --force-constants")
    q.add_argument("--force-constants", help="phonopy FORCE_CONSTANTS or force_constants.hdf5 of the supercell")
    q.add_argument("--supercell", type=POSITIVE_INT, nargs=3, help="repetitions of the cell (default %(default)s)")
    q.add_argument("--strain", type=NON_NEGATIVE, help="standard deviation of the random strain entries (default %(default)s)")
    q.add_argument("--seed", type=NON_NEGATIVE_INT, help="random seed (default %(default)s)")
    output(q)
    later(q, _defaults("generate", "generate_perturbed"))
    q.set_defaults(func=_perturb)

    q = sub.add_parser("slide", help="bilayers with the top layer slid rigidly")
    q.add_argument("input", help=LAYER_HELP + "; the bottom layer")
    q.add_argument("--top", help="top layer (default: the same as the bottom one)")
    q.add_argument("-n", type=POSITIVE_INT, help="number of random slides (default %(default)s)")
    q.add_argument("--grid", type=POSITIVE_INT, nargs=2, metavar=("NU", "NV"), help="regular NU NV grid of slides instead")
    q.add_argument("--distance", type=POSITIVE, nargs="+",
                   help="interlayer distance, A: LO HI range, one value, or grid values (default %(default)s)")
    q.add_argument("--between", choices=["gap", "centres"],
                   help="what --distance measures: the gap between facing atom planes, or the layers' centres "
                        "(Mo-Mo for MoS2) (default %(default)s)")
    q.add_argument("--lattice", type=POSITIVE, nargs=2, action=Range, metavar=("LO", "HI"),
                   help="draw a common in-plane lattice constant per structure, A (both layers scaled)")
    q.add_argument("--stacking", help="stacking before sliding: AA, AB or BA (default %(default)s)")
    q.add_argument("--inverted", action="store_true",
                   help="rotate the top layer by 180 deg about z (MoS2: the 2H orientation; default parallel)")
    q.add_argument("--supercell", type=POSITIVE_INT, nargs=2, help="in-plane repetitions of the bilayer (default %(default)s)")
    q.add_argument("--cell-height", type=POSITIVE, help="c length, A (default: layers + vacuum)")
    q.add_argument("--displacement", type=NON_NEGATIVE,
                   help="standard deviation of Gaussian displacements after sliding, A (default %(default)s)")
    q.add_argument("--seed", type=NON_NEGATIVE_INT, help="random seed (default %(default)s)")
    output(q)
    later(q, _defaults("generate", "generate_slid"))
    q.set_defaults(func=_slide)

    q = sub.add_parser("twist", help="commensurate twisted multilayers")
    q.add_argument("input", help=LAYER_HELP)
    q.add_argument("-m", type=NON_NEGATIVE_INT, help="moire supercell index m (default %(default)s)")
    q.add_argument("-n", type=NON_NEGATIVE_INT, help="moire supercell index n, not m (default %(default)s)")
    q.add_argument("--layers", help="rotation flag per layer, bottom first: 01 bilayer, 010 trilayer, 0011 double "
                                    "bilayer (default %(default)s)")
    q.add_argument("--stacking", help="comma-separated stacking per layer (AA, AB, BA; default AA)")
    q.add_argument("--interlayer", type=POSITIVE, help="interlayer distance, A (default %(default)s)")
    q.add_argument("--list", type=NON_NEGATIVE_INT, default=0, metavar="MAX_ATOMS",
                   help="only list commensurate angles up to this size")
    output(q, required=False)
    q.set_defaults(output="twisted.extxyz")
    later(q, _defaults("generate", "generate_twisted"))
    q.set_defaults(func=_twist)

    q = sub.add_parser("hetero", help="lattice-matched heterobilayer (top on bottom)")
    q.add_argument("bottom", help=LAYER_HELP)
    q.add_argument("top", help=LAYER_HELP)
    q.add_argument("--twist", dest="twist_range", type=FINITE, nargs=2, action=Range, metavar=("MIN", "MAX"),
                   help="twist range, degrees (default %(default)s)")
    q.add_argument("--max-strain", type=NON_NEGATIVE, help="largest residual strain (default %(default)s)")
    q.add_argument("--max-atoms", type=POSITIVE_INT, help="largest supercell (default %(default)s)")
    q.add_argument("--strain-on", choices=["top", "bottom", "both"],
                   help="layer(s) strained to match (default %(default)s)")
    q.add_argument("--interlayer", type=POSITIVE, help="interlayer distance, A (default %(default)s)")
    output(q)
    later(q, _defaults("hetero", "heterostructure"))
    q.set_defaults(func=_hetero)
