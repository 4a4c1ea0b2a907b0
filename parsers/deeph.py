"""DeepH-pack's legacy data layout (one folder per structure), read and written.

The layout is the one DeepH-pack's ``preprocess/openmx_get_data.jl`` writes (checked against
converted folders such as ``data/bilayer_graphene_slid_1x1`` and ``tests/data/deeph``)::

    hamiltonians.h5     one dataset per block, key "[Rx, Ry, Rz, i, j]" (i, j 1-based atoms,
                        R the lattice translation of j); shape (n_orb(i), n_orb(j)); eV;
                        OpenMX's orbital order; spinful: complex (2 n_i, 2 n_j), spin-major
    overlaps.h5         the same keys, overlaps (spin-less, float64)
    element.dat         atomic number per atom
    lat.dat             3 x 3, lattice vectors as COLUMNS, Angstrom
    rlat.dat            3 x 3, reciprocal vectors 2 pi inv(lat)^T as COLUMNS, 1/Angstrom
    site_positions.dat  3 x N, Cartesian positions as COLUMNS, Angstrom
    orbital_types.dat   one row per atom: l of each shell (OpenMX order, e.g. "0 0 1 1 2")
    R_list.dat          the distinct R, one per row
    info.json           isspinful, fermi_level (eV), nsites, isorthogonal
    openmx.dat          (optional, extra) the OpenMX input: gives the basis labels

Units: the values are kept exactly as they are in the files (eV, Angstrom). Note that
DeepH-pack converts OpenMX's Hartree with 27.2113845 eV/Ha (:data:`DEEPH_HARTREE_EV`) and Bohr
with 0.529177249 Angstrom (:data:`DEEPH_BOHR_ANG`), not ase's CODATA values; DeepH-derived H
differ from hotham's own OpenMX reader by 5.6e-8 relative (up to ~1e-6 eV on deep on-site
elements). Nothing is rescaled here.

Orbital order: the files hold OpenMX's order; :func:`read_deeph` converts to the internal real
spherical harmonics with :func:`hotham.parsers.openmx.orbitals.to_internal` and
:func:`write_deeph` back with ``to_openmx``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
from ase import Atoms
from ase.data import chemical_symbols

from ..basis import Basis, parse_openmx_basis
from ..errors import BasisError, FormatError, HothamError
from ..files import atomic_folder
from ..operator import BlockOperator
from .openmx.orbitals import to_internal, to_openmx

__all__ = ["read_deeph", "write_deeph", "is_deeph_folder", "DEEPH_HARTREE_EV", "DEEPH_BOHR_ANG"]

#: eV per Hartree used by DeepH-pack (differs from CODATA/ase 27.211386024 by 5.6e-8 relative)
DEEPH_HARTREE_EV = 27.2113845
#: Angstrom per Bohr used by DeepH-pack (and OpenMX)
DEEPH_BOHR_ANG = 0.529177249

_TEXT_FILES = ("element.dat", "lat.dat", "rlat.dat", "site_positions.dat", "orbital_types.dat", "R_list.dat")
_KEY = re.compile(r"^\[\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")


def is_deeph_folder(path) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "hamiltonians.h5").exists() or (p / "overlaps.h5").exists())


# ---------------------------------------------------------------------------------- reading
def _gather(sizes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Flat element index that puts blocks (of ``sizes`` elements each) into ``order``."""
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    new_sizes = sizes[order]
    new_off = np.concatenate([[0], np.cumsum(new_sizes)]).astype(np.int64)
    return np.arange(new_off[-1]) + np.repeat(off[order] - new_off[:-1], new_sizes)


def _need(folder: Path, name: str) -> Path:
    p = folder / name
    if not p.is_file():
        raise FormatError(p, "missing file of the DeepH layout")
    return p


def _loadtxt(path: Path, shape_hint: str, dtype=float, ndmin=2) -> np.ndarray:
    try:
        a = np.loadtxt(path, dtype=dtype, ndmin=ndmin)
    except (ValueError, OSError) as exc:
        raise FormatError(path, f"cannot read {shape_hint} ({exc})") from None
    if a.size == 0:
        raise FormatError(path, f"empty file, expected {shape_hint}")
    if not np.all(np.isfinite(a)):
        raise FormatError(path, f"NaN or inf in {shape_hint}")
    return a


def _read_orbital_types(path: Path, n_atoms: int) -> list[tuple[int, ...]]:
    rows = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise FormatError(path, f"cannot read ({exc})") from None
    for k, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(tuple(int(x) for x in line.split()))
        except ValueError:
            raise FormatError(path, f"line {k + 1}: expected integer l values, got {line.strip()!r}") from None
    if len(rows) != n_atoms:
        raise FormatError(path, f"{len(rows)} rows of orbital types for {n_atoms} atoms (element.dat)")
    return rows


def _find_openmx_input(folder: Path) -> Path | None:
    """openmx.dat, else the one other ``*.dat`` that is not a DeepH file (e.g. tbg_21.79.dat)."""
    if (folder / "openmx.dat").is_file():
        return folder / "openmx.dat"
    others = [p for p in sorted(folder.glob("*.dat")) if p.name not in _TEXT_FILES]
    return others[0] if len(others) == 1 else None


def _openmx_extras(folder: Path, symbols: list[str], shells: dict) -> tuple[dict, dict]:
    """Basis labels and valence electrons per element from an OpenMX input beside the data."""
    from .openmx.dat import read_openmx_input, species_basis_labels, species_symbol

    path = _find_openmx_input(folder)
    if path is None:
        return {}, {}
    inp = read_openmx_input(path)
    if "definition.of.atomic.species" not in inp.blocks:
        return {}, {}
    labels: dict[str, str] = {}
    species_element: dict[str, str] = {}
    for name, label in species_basis_labels(inp).items():
        sym = species_symbol(name)
        species_element[name] = sym
        if sym not in shells:
            continue
        if tuple(sorted(parse_openmx_basis(label))) != tuple(sorted(shells[sym])):
            raise BasisError(f"{path}: basis {label!r} of {sym} disagrees with orbital_types.dat "
                             f"(l = {shells[sym]})")
        labels[sym] = label
    # valence electrons: OpenMX's initial up + down charges of each atom (the input's last two
    # columns, 2 for collinear inputs; the 12-column non-collinear lines start the same way)
    valence: dict[str, float] = {}
    rows = inp.blocks.get("atoms.speciesandcoordinates", [])
    if len(rows) == len(symbols):
        for r in rows:
            try:
                sym = species_element.get(r[1]) or species_symbol(r[1])
                valence.setdefault(sym, float(r[5]) + float(r[6]))
            except (IndexError, ValueError, FormatError):
                return labels, {}
    return labels, valence


def read_deeph(path, *, read_openmx_input: bool = True) -> BlockOperator:
    """Read a DeepH-pack legacy folder into a :class:`BlockOperator` (eV, Angstrom, internal order).

    Parameters
    ----------
    path : folder holding ``hamiltonians.h5`` and/or ``overlaps.h5`` and the ``*.dat`` files.
    read_openmx_input : take basis labels and valence electrons from an OpenMX input beside the
        data (``openmx.dat``) when there is one.

    The basis comes from ``orbital_types.dat`` (all atoms of one element must agree, else
    :class:`BasisError`). ``isspinful`` data become ``spin="soc"`` (complex spin-major blocks).
    ``meta`` holds ``valence_electrons`` (per element, when an OpenMX input is beside) and the
    ``info.json`` flags. Raises :class:`FormatError` naming the file for missing files, bad
    keys or blocks whose shape disagrees with ``orbital_types.dat``.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FormatError(folder, "not a folder (a DeepH-pack structure is a folder)")
    h_path, s_path = folder / "hamiltonians.h5", folder / "overlaps.h5"
    if not h_path.exists() and not s_path.exists():
        raise FormatError(folder, "neither hamiltonians.h5 nor overlaps.h5: not a DeepH folder")

    # --- structure
    z_path = _need(folder, "element.dat")
    numbers = _loadtxt(z_path, "atomic numbers", ndmin=1).reshape(-1)
    if np.any(numbers != np.round(numbers)) or np.any(numbers < 1) or np.any(numbers >= len(chemical_symbols)):
        raise FormatError(z_path, "atomic numbers must be integers 1..118")
    numbers = numbers.astype(np.int64)
    n = len(numbers)
    lat_path = _need(folder, "lat.dat")
    lat = _loadtxt(lat_path, "3 x 3 lattice (columns)")
    if lat.shape != (3, 3):
        raise FormatError(lat_path, f"expected 3 x 3 lattice vectors as columns, got shape {lat.shape}")
    pos_path = _need(folder, "site_positions.dat")
    pos = _loadtxt(pos_path, "3 x N positions (columns)")
    if pos.shape != (3, n):
        raise FormatError(pos_path, f"expected 3 x {n} positions as columns (element.dat has {n} atoms), "
                                    f"got shape {pos.shape}")
    info_path = _need(folder, "info.json")
    try:
        info = json.loads(info_path.read_text())
        spinful = bool(info["isspinful"])
        fermi = float(info.get("fermi_level", float("nan")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FormatError(info_path, f"not a valid info.json ({type(exc).__name__}: {exc})") from None
    if "nsites" in info and int(info["nsites"]) != n:
        raise FormatError(info_path, f"nsites = {info['nsites']} but element.dat lists {n} atoms")
    if info.get("isorthogonal", False):
        raise FormatError(info_path, "isorthogonal = true: hotham needs the overlaps of a non-orthogonal basis")

    symbols = [chemical_symbols[z] for z in numbers]
    ot_path = _need(folder, "orbital_types.dat")
    per_atom = _read_orbital_types(ot_path, n)
    shells: dict[str, tuple[int, ...]] = {}
    for a, (sym, ls) in enumerate(zip(symbols, per_atom)):
        if shells.setdefault(sym, ls) != ls:
            raise BasisError(f"{ot_path}: atom {a + 1} ({sym}) has shells {ls}, an earlier {sym} has {shells[sym]}")

    labels, valence = _openmx_extras(folder, symbols, shells) if read_openmx_input else ({}, {})
    basis = Basis(shells, labels)
    atoms = Atoms(numbers=numbers, positions=pos.T, cell=lat.T, pbc=True)
    n_orb = basis.counts(symbols)

    # --- blocks
    def read_blocks(p: Path, spin_factor: int, complex_ok: bool):
        try:
            f = h5py.File(p, "r")
        except OSError as exc:
            raise FormatError(p, f"not a readable HDF5 file ({exc})") from None
        with f:
            keys = list(f.keys())
            if not keys:
                raise FormatError(p, "holds no blocks")
            ijR = np.empty((len(keys), 5), dtype=np.int64)
            for k, key in enumerate(keys):
                m = _KEY.match(key)
                if not m:
                    raise FormatError(p, f"bad block key {key!r} (expected '[Rx, Ry, Rz, i, j]')")
                ijR[k] = [int(x) for x in m.groups()]
            bad = (ijR[:, 3] < 1) | (ijR[:, 3] > n) | (ijR[:, 4] < 1) | (ijR[:, 4] > n)
            if bad.any():
                raise FormatError(p, f"block {keys[int(np.flatnonzero(bad)[0])]!r} names an atom outside 1..{n}")
            i, j = ijR[:, 3] - 1, ijR[:, 4] - 1
            # one dataset per block: h5py's high-level indexing costs ~150 us a block, so read
            # each dataset straight into its slice of the flat array through the low-level API
            want = np.stack([spin_factor * n_orb[i], spin_factor * n_orb[j]], axis=1)
            sizes = want[:, 0] * want[:, 1]
            off = np.concatenate([[0], np.cumsum(sizes)])
            dtype = np.complex128 if complex_ok else np.float64
            want_class = h5py.h5t.COMPOUND if complex_ok else h5py.h5t.FLOAT
            flat = np.empty(off[-1], dtype=dtype)
            for k, key in enumerate(keys):
                out = flat[off[k]:off[k + 1]].reshape(want[k])
                try:
                    dsid = h5py.h5d.open(f.id, key.encode())
                    if dsid.shape == tuple(want[k]) and dsid.get_type().get_class() == want_class:
                        dsid.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
                        continue
                    b = f[key][()]
                except (OSError, KeyError, TypeError, ValueError) as exc:
                    raise FormatError(p, f"cannot read block {key!r} ({exc})") from None
                shape = tuple(int(x) for x in want[k])
                if b.shape != shape and spin_factor == 1 and b.shape == (2 * shape[0], 2 * shape[1]):
                    b = b[:shape[0], :shape[1]]  # spinor overlap S (x) 1: keep the up-up block
                if b.shape != shape:
                    raise FormatError(p, f"block {key!r} has shape {b.shape}; orbital_types.dat needs {shape}")
                if np.iscomplexobj(b) and not complex_ok:
                    if np.any(b.imag != 0):
                        raise FormatError(p, f"block {key!r} is complex, expected real values")
                    b = b.real
                if b.dtype.kind not in "fciu":
                    raise FormatError(p, f"block {key!r} has non-numeric type {b.dtype}")
                out[...] = b
        finite = np.isfinite(flat)
        if not finite.all():
            k = int(np.searchsorted(off, np.flatnonzero(~finite)[0], side="right")) - 1
            raise FormatError(p, f"block {keys[k]!r} holds NaN or inf")
        return keys, ijR, flat

    H = S = None
    keys_h = keys_s = None
    if h_path.exists():
        keys_h, ijR, H = read_blocks(h_path, 2 if spinful else 1, spinful)
    if s_path.exists():
        keys_s, ijR_s, S = read_blocks(s_path, 1, False)
        if keys_h is None:
            ijR = ijR_s
        elif keys_h != keys_s:
            only_h, only_s = sorted(set(keys_h) - set(keys_s)), sorted(set(keys_s) - set(keys_h))
            if only_h or only_s:
                # the error names the file that lacks blocks
                bad, other, missing = (s_path, h_path, only_h) if only_h else (h_path, s_path, only_s)
                raise FormatError(bad, f"lacks {len(missing)} block(s) that {other.name} holds, e.g. {missing[0]!r}")
            # same keys, another order: bring S into H's order
            pos_s = {k: e for e, k in enumerate(keys_s)}
            sizes = n_orb[ijR_s[:, 3] - 1] * n_orb[ijR_s[:, 4] - 1]
            S = S[_gather(sizes, np.array([pos_s[k] for k in keys_h]))]

    R_path = folder / "R_list.dat"
    if R_path.exists():
        R_list = _loadtxt(R_path, "the list of R", ndmin=2)
        if R_list.shape[1] != 3:
            raise FormatError(R_path, f"expected 3 integers per row, got {R_list.shape[1]}")
        missing = set(map(tuple, ijR[:, :3])) - set(map(tuple, R_list.astype(np.int64)))
        if missing:
            raise FormatError(R_path, f"R = {sorted(missing)[0]} of a block is not listed")

    # canonical edge order: by (i, j, Rx, Ry, Rz)
    order = np.lexsort((ijR[:, 2], ijR[:, 1], ijR[:, 0], ijR[:, 4], ijR[:, 3]))
    sizes = n_orb[ijR[:, 3] - 1] * n_orb[ijR[:, 4] - 1]
    if H is not None:
        H = H[_gather(4 * sizes if spinful else sizes, order)]
    if S is not None:
        S = S[_gather(sizes, order)]
    ijR = ijR[order]

    meta = {"deeph": {"isspinful": spinful, "isorthogonal": bool(info.get("isorthogonal", False)),
                      "energy_unit": f"eV (DeepH-pack: {DEEPH_HARTREE_EV} eV/Hartree)"}}
    if valence:
        meta["valence_electrons"] = valence
    try:
        op = BlockOperator(atoms, basis, ijR[:, 3] - 1, ijR[:, 4] - 1, ijR[:, :3], H=H, S=S,
                           spin="soc" if spinful else "none", fermi_level=fermi, source=str(folder), meta=meta)
    except HothamError as exc:
        raise FormatError(folder, str(exc)) from None
    return to_internal(op)


# ---------------------------------------------------------------------------------- writing
def _fmt(x) -> str:
    """A number as Julia's writedlm prints it: ints as ints, floats shortest round-trip."""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    return repr(float(x))


def _writedlm(path: Path, rows) -> None:
    with open(path, "w") as fh:
        for r in rows:
            fh.write("\t".join(_fmt(x) for x in np.atleast_1d(r)) + "\n")


def write_deeph(path, op: BlockOperator) -> None:
    """Write ``op`` as a DeepH-pack legacy folder at ``path`` (atomically).

    Blocks go to OpenMX's orbital order (``to_openmx``), one uncompressed float64 dataset per
    edge (complex128, (2 n_i) x (2 n_j), for ``spin="soc"``); text files are tab-separated with
    full double precision, as Julia's ``writedlm``. The folder is built under a temporary name
    beside ``path`` and renamed at the end; an existing DeepH folder at ``path`` is replaced, any
    other existing path is refused. ``hamiltonians.h5`` / ``overlaps.h5`` are written when the
    operator has H / S.
    """
    target = Path(path)
    if op.spin == "collinear":
        raise HothamError("the DeepH-pack layout has no collinear-spin form (DeepH-pack rejects it); "
                          "write spin-less or soc operators")
    if op.H is None and op.S is None:
        raise HothamError("operator has neither H nor S: nothing to write")
    if target.exists() and not is_deeph_folder(target):
        raise HothamError(f"{target} exists and is not a DeepH folder; refusing to overwrite it")
    with atomic_folder(target) as tmp:
        _write_folder(tmp, op)


def _write_folder(folder: Path, op: BlockOperator) -> None:
    a = op.atoms
    cell = np.asarray(a.cell, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-12:
        raise HothamError("the DeepH layout needs a full 3D cell (every DeepH structure is periodic)")
    symbols = a.get_chemical_symbols()
    _writedlm(folder / "element.dat", [[int(z)] for z in a.numbers])
    _writedlm(folder / "lat.dat", cell.T)
    _writedlm(folder / "rlat.dat", 2 * np.pi * np.linalg.inv(cell))   # = (2 pi inv(lat)^T) as columns
    _writedlm(folder / "site_positions.dat", np.asarray(a.positions, dtype=np.float64).T)
    _writedlm(folder / "orbital_types.dat", [[int(l) for l in op.basis.shells[s]] for s in symbols])
    _writedlm(folder / "R_list.dat", [[int(x) for x in R] for R in np.unique(op.edge_R, axis=0)])
    info = {"isspinful": op.spin == "soc", "fermi_level": float(op.fermi_level),
            "nsites": int(op.n_atoms), "isorthogonal": False}
    (folder / "info.json").write_text(json.dumps(info, indent=4))

    mx = to_openmx(op)
    keys = [f"[{R[0]}, {R[1]}, {R[2]}, {i + 1}, {j + 1}]" for i, j, R in
            zip(op.edge_i.tolist(), op.edge_j.tolist(), op.edge_R.tolist())]
    for name, has, block in (("hamiltonians.h5", mx.H is not None, mx.h_block),
                             ("overlaps.h5", mx.S is not None, mx.s_block)):
        if not has:
            continue
        with h5py.File(folder / name, "w") as f:
            for e, key in enumerate(keys):
                f.create_dataset(key, data=block(e))
