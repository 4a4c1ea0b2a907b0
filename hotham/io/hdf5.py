"""hotham's own HDF5 format for :class:`~hotham.operator.BlockOperator`.

One operator is one HDF5 group::

    attrs:    format = "hotham-blocks", version = 1, spin, fermi_level (eV), source,
              basis (JSON: shells and labels per species), meta (JSON)
    numbers   int   [N]        atomic numbers
    positions float [N, 3]     Angstrom
    cell      float [3, 3]     Angstrom, rows = lattice vectors
    pbc       bool  [3]
    edge_i, edge_j int [E];  edge_R int [E, 3]
    H         flat blocks (see hotham.operator), absent if not known; eV
    S         flat overlap blocks, absent if not known

A dataset file holds many such groups under ``/structures/<name>``; a single-operator file
holds one group at the root. Files are written to a temporary name and renamed, so a crash
never leaves a half-written file under the final name.
"""
from __future__ import annotations

import json

import h5py
import numpy as np
from ase import Atoms

from ..basis import Basis
from ..errors import FormatError, UnsupportedVersionError
from ..files import atomic_path
from ..operator import BlockOperator

FORMAT = "hotham-blocks"
VERSION = 1


def write_group(g: h5py.Group, op: BlockOperator, compression: str | None = None, compact: bool = False) -> None:
    """Write one operator into an (empty) HDF5 group.

    compact: store H and S as float32, byte-shuffled and gzip-compressed (about 0.45x the size of
    float64; the rounding, ~1e-7 relative or ~1 ueV on a 10 eV block element, is far below the
    meV accuracy of a model). :func:`read_group` returns float64 either way."""
    g.attrs["format"] = FORMAT
    g.attrs["version"] = VERSION
    g.attrs["spin"] = op.spin
    g.attrs["fermi_level"] = float(op.fermi_level)
    g.attrs["source"] = str(op.source)
    g.attrs["basis"] = json.dumps(op.basis.to_dict())
    g.attrs["meta"] = json.dumps(op.meta)
    a = op.atoms
    g["numbers"] = a.numbers.astype(np.int64)
    g["positions"] = a.positions.astype(np.float64)
    g["cell"] = np.asarray(a.cell, dtype=np.float64)
    g["pbc"] = np.asarray(a.pbc, dtype=bool)
    g["edge_i"] = op.edge_i
    g["edge_j"] = op.edge_j
    g["edge_R"] = op.edge_R
    kw = {"compression": compression} if compression else {}
    if compact:
        kw = {"compression": "gzip", "compression_opts": 6, "shuffle": True}
    for name, value in (("H", op.H), ("S", op.S)):
        if value is not None:
            if compact:     # complex SOC blocks round to complex64
                value = value.astype(np.complex64 if np.iscomplexobj(value) else np.float32)
            g.create_dataset(name, data=value, **kw)


def read_group(g: h5py.Group, path=None) -> BlockOperator:
    """Read one operator from an HDF5 group written by :func:`write_group`."""
    path = path or g.file.filename
    fmt = g.attrs.get("format")
    if isinstance(fmt, bytes):
        fmt = fmt.decode()
    if fmt != FORMAT:
        raise FormatError(path, f"group {g.name!r} is not a hotham block operator (format attribute {fmt!r})")
    version = int(g.attrs.get("version", -1))
    if version != VERSION:
        raise UnsupportedVersionError(path, f"hotham-blocks version {version}; this hotham reads version {VERSION}")
    try:
        for name in ("H", "S"):
            if name in g and not np.all(np.isfinite(g[name][()])):
                raise FormatError(path, f"group {g.name!r}: {name} holds NaN or inf")
        atoms = Atoms(numbers=g["numbers"][()], positions=g["positions"][()], cell=g["cell"][()], pbc=g["pbc"][()])
        return BlockOperator(
            atoms=atoms,
            basis=Basis.from_dict(json.loads(g.attrs["basis"])),
            edge_i=g["edge_i"][()], edge_j=g["edge_j"][()], edge_R=g["edge_R"][()],
            H=_wide(g["H"][()]) if "H" in g else None,
            S=_wide(g["S"][()]) if "S" in g else None,
            spin=str(g.attrs["spin"]),
            fermi_level=float(g.attrs["fermi_level"]),
            source=str(g.attrs["source"]),
            meta=json.loads(g.attrs["meta"]),
        )
    except KeyError as exc:
        raise FormatError(path, f"group {g.name!r} lacks {exc}") from None


def _wide(a: np.ndarray) -> np.ndarray:
    """Blocks stored compactly (float32 / complex64) back to double precision."""
    if a.dtype == np.float32:
        return a.astype(np.float64)
    if a.dtype == np.complex64:
        return a.astype(np.complex128)
    return a


def save(path, op: BlockOperator, compression: str | None = None) -> None:
    """Write one operator to ``path`` (atomically)."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            write_group(f, op, compression)


def load(path) -> BlockOperator:
    """Read a single-operator hotham HDF5 file."""
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(path, f"not a readable HDF5 file ({exc})") from None
    with f:
        if "structures" in f and "format" not in f.attrs:
            names = list(f["structures"])
            if len(names) != 1:
                raise FormatError(path, f"a dataset of {len(names)} structures; use hotham.dataset.Dataset to read it")
            return read_group(f["structures"][names[0]], path)
        return read_group(f, path)


def is_hotham_file(path) -> bool:
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT or "structures" in f
    except OSError:
        return False
