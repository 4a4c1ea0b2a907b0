"""``hotham overlap STRUCTURE --basis C=C6.0-s2p2d1 -o s.h5``: OpenMX's neighbour list and the
overlap S of any structure from the PAO files alone (no DFT run)."""
from __future__ import annotations

from ..errors import BasisError


def _labels(specs) -> dict[str, str]:
    """--basis C=C6.0-s2p2d1 Mo=Mo7.0-s3p2d2 (or comma-separated) -> {"C": "C6.0-s2p2d1", ...}"""
    out = {}
    for spec in specs or []:
        for item in spec.split(","):
            el, sep, lab = item.partition("=")
            if not sep or not el or not lab:
                raise BasisError(f"--basis {item!r}: expected ELEMENT=LABEL, e.g. C=C6.0-s2p2d1")
            out[el.strip()] = lab.strip()
    return out


def _run(args):
    from ..io import read_structure, write
    from ..overlap import overlap_operator
    atoms = read_structure(args.structure)
    labels = {**atoms.info.get("basis_labels", {}), **_labels(args.basis)}
    op = overlap_operator(atoms, labels, openmx_data=args.openmx_data)
    write(args.output, op)
    print(f"{args.output}: {op.n_atoms} atoms, {op.n_edges} blocks, {op.n_orbitals} orbitals, "
          f"S with {op.nnz} elements ({', '.join(f'{s}={l}' for s, l in op.basis.labels.items())})")
    return 0


def register(sub):
    p = sub.add_parser("overlap", help="overlap matrix S of a structure from OpenMX's PAO files",
                       description="Build OpenMX's neighbour list (|d| < rc_i + rc_j) and the two-centre "
                                   "overlap S of a structure from the PAO files; H is left empty for a model.")
    p.add_argument("structure", help="OpenMX .dat (basis labels read from it) or any file ase reads")
    p.add_argument("--basis", nargs="+", metavar="EL=LABEL",
                   help="OpenMX basis label per element, e.g. C=C6.0-s2p2d1 Mo=Mo7.0-s3p2d2")
    p.add_argument("--openmx-data", default=None,
                   help="OpenMX DFT_DATA19 folder with PAO/ (default: $HOTHAM_OPENMX_DATA)")
    p.add_argument("-o", "--output", required=True, help="hotham HDF5 file to write")
    p.set_defaults(func=_run)
