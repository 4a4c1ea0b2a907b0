"""Reading and writing block operators: ``read(path)`` and ``write(path, op, format=...)``.

Formats behind one door, as in ASE:

* an OpenMX run folder, or its ``.scfout`` (optionally ``.scfout.gz``) with the ``.out`` beside it;
* a folder in the legacy DeepH-pack layout (``hamiltonians.h5``, ``overlaps.h5``, ``*.dat``, ``info.json``);
* a hotham HDF5 file (:mod:`hotham.io.hdf5`).

Bare structures (no blocks) are read by :func:`read_structure`: ase's own reader, with OpenMX
input files (``.dat``) added to ase as the I/O format ``openmx-dat``.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import FormatError
from ..operator import BlockOperator
from . import hdf5

__all__ = ["read", "write", "read_structure", "read_openmx_band", "detect_format"]


def detect_format(path) -> str:
    """'openmx', 'deeph' or 'hotham' for a path; FormatError if none fits."""
    p = Path(path)
    if not p.exists():
        raise FormatError(p, "no such file or folder")
    if p.is_dir():
        if (p / "hamiltonians.h5").exists() or (p / "overlaps.h5").exists():
            return "deeph"
        if any(p.glob("*.scfout")) or any(p.glob("*.scfout.gz")):
            return "openmx"
        raise FormatError(p, "folder holds neither an OpenMX run (*.scfout) nor DeepH data (hamiltonians.h5)")
    name = p.name.lower()
    if name.endswith(".scfout") or name.endswith(".scfout.gz"):
        return "openmx"
    if hdf5.is_hotham_file(p):
        return "hotham"
    raise FormatError(p, "unknown file type: expected an OpenMX .scfout, a DeepH folder or a hotham HDF5 file")


def read(path, format: str | None = None, **kwargs) -> BlockOperator:
    """Read a :class:`BlockOperator` (eV, Angstrom, internal orbital convention) from ``path``."""
    fmt = format or detect_format(path)
    if fmt == "hotham":
        return hdf5.load(path)
    if fmt == "openmx":
        from ..parsers.openmx import read_openmx
        return read_openmx(path, **kwargs)
    if fmt == "deeph":
        from ..parsers.deeph import read_deeph
        return read_deeph(path, **kwargs)
    raise ValueError(f"unknown format {fmt!r} (known: openmx, deeph, hotham)")


def write(path, op: BlockOperator, format: str = "hotham", **kwargs) -> None:
    """Write ``op`` to ``path`` as a hotham HDF5 file or a DeepH folder (atomically)."""
    if format == "hotham":
        return hdf5.save(path, op, **kwargs)
    if format == "deeph":
        from ..parsers.deeph import write_deeph
        return write_deeph(path, op, **kwargs)
    raise ValueError(f"cannot write format {format!r} (known: hotham, deeph)")


def read_openmx_band(path):
    """OpenMX ``.Band`` file -> ``(kpts [nk, 3] fractional, eigenvalues [nspin, nk, nband] eV, info)``.

    See :func:`hotham.parsers.openmx.band.read_band` for details."""
    from ..parsers.openmx.band import read_band
    return read_band(path)


def read_structure(path):
    """ase.Atoms (Angstrom) of a structure file: anything ``ase.io.read`` reads (POSCAR, .xyz,
    .cif, extxyz, ...) and OpenMX inputs (``.dat``, whose basis labels come along in
    ``atoms.info["basis_labels"]``). FormatError naming the file when it cannot be read; a
    UserWarning when it has no cell (a plain ``.xyz``: the structure is a cluster)."""
    import ase.io
    from ase.io.formats import define_external_io_format, ioformats
    p = Path(path)
    if not p.is_file():
        raise FormatError(p, "no such file")
    if "openmx-dat" not in ioformats:      # hotham used without being installed (no entry point)
        from importlib.metadata import EntryPoint
        define_external_io_format(EntryPoint("openmx-dat", "hotham.parsers.openmx.dat:ASE_FORMAT", "ase.ioformats"))
    try:
        atoms = ase.io.read(p)
    except FormatError:
        raise
    except Exception as exc:  # ase raises many types for unknown or broken formats
        raise FormatError(p, f"cannot read a structure ({exc.__class__.__name__}: {exc})") from None
    if not atoms.pbc.any():
        import warnings
        warnings.warn(f"{p} has no cell (a plain .xyz): it is taken as a cluster, a finite molecule without "
                      "periodic images; for a crystal or a slab give a file with its cell (extended XYZ with "
                      "Lattice=\"...\", .cif, POSCAR, OpenMX .dat)", UserWarning, stacklevel=2)
    return atoms
