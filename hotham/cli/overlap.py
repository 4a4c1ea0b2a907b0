"""``hotham overlap STRUCTURE --basis C=C6.0-s2p2d1 -o s.h5``: OpenMX's neighbour list and the
overlap S of any structure from the PAO files alone (no DFT run)."""
from __future__ import annotations

from .options import add_basis_option, add_force_option, add_openmx_data_option, parse_basis


def _run(args):
    from ..files import check_outputs
    from ..io import write
    from ..overlap import structure_file_overlap
    check_outputs([args.output], force=args.force, inputs=[args.structure])
    op = structure_file_overlap(args.structure, parse_basis(args.basis), openmx_data=args.openmx_data)
    write(args.output, op)
    print(f"{args.output}: {op.n_atoms} atoms, {op.n_edges} blocks, {op.n_orbitals} orbitals, "
          f"S with {op.nnz} elements ({', '.join(f'{s}={l}' for s, l in op.basis.labels.items())})")
    return 0


def register(sub):
    p = sub.add_parser("overlap", help="overlap matrix S of a structure from OpenMX's PAO files",
                       description="Build OpenMX's neighbour list (|d| < rc_i + rc_j) and the two-centre "
                                   "overlap S of a structure from the PAO files; H is left empty for a model.")
    p.add_argument("structure", help="OpenMX .dat (basis labels read from it) or any file ase reads")
    add_basis_option(p, "OpenMX basis label per element, e.g. C=C6.0-s2p2d1 Mo=Mo7.0-s3p2d2 (overrides the .dat's)")
    add_openmx_data_option(p)
    p.add_argument("-o", "--output", required=True, help="hotham HDF5 file to write")
    add_force_option(p)
    p.set_defaults(func=_run)
