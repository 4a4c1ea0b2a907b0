"""``hotham overlap STRUCTURE --basis C=C6.0-s2p2d1 -o s.h5``: OpenMX's neighbour list and the
overlap S of any structure from the PAO files alone (no DFT run)."""
from __future__ import annotations

from pathlib import Path

from ..errors import BasisError, HothamError


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


def read_structure(path):
    """``(atoms, labels)`` of a structure file: an OpenMX ``.dat`` (its basis labels come along)
    or anything ``ase.io.read`` reads (POSCAR, .xyz, .cif, ...; labels empty)."""
    p = Path(path)
    if not p.exists():
        raise HothamError(f"{p}: no such file")
    if p.suffix == ".dat":
        from ..parsers.openmx.dat import input_structure, read_openmx_input, species_basis_labels, species_symbol
        inp = read_openmx_input(p)
        atoms, _ = input_structure(inp)
        labels = {}
        for s, lab in species_basis_labels(inp).items():
            el = species_symbol(s)
            if labels.get(el, lab) != lab:
                raise BasisError(f"{p}: element {el} has two bases ({labels[el]}, {lab}); hotham needs one per element")
            labels[el] = lab
        return atoms, labels
    import ase.io
    try:
        return ase.io.read(p), {}
    except Exception as exc:  # ase raises many types for unreadable files
        raise HothamError(f"{p}: ase cannot read this structure ({exc})") from None


def _run(args):
    from ..io import write
    from ..overlap import overlap_operator
    atoms, labels = read_structure(args.structure)
    labels.update(_labels(args.basis))
    op = overlap_operator(atoms, labels, data_dir=args.data_dir)
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
    p.add_argument("--data-dir", default=None,
                   help="OpenMX DFT_DATA19 folder (default: $HOTHAM_OPENMX_DATA, then ../shared beside the checkout)")
    p.add_argument("-o", "--output", required=True, help="hotham HDF5 file to write")
    p.set_defaults(func=_run)
