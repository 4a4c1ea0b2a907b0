"""OpenMX 3.9 ``.scfout`` files: real-space Kohn-Sham Hamiltonian and overlap blocks.

Units: OpenMX writes Hartree and Bohr; this module converts with ``ase.units.Hartree`` and
``ase.units.Bohr`` (CODATA as in ase, not OpenMX's BohrR = 0.529177249: the two differ by
5e-8 relative) to eV and Angstrom. Orbitals are converted from OpenMX's order to hotham's
internal real spherical harmonics by :func:`hotham.parsers.openmx.orbitals.to_internal`.

Layout (SCF2File.c / read_scfout.c of OpenMX 3.9, little-endian int32 / float64)::

    int32[6]   atomnum, SpinP_switch + 4*version, Catomnum, Latomnum, Ratomnum, TCpyCell
    int32      order_max
    float64    atv[TCpyCell+1][4]; int32 atv_ijk[TCpyCell+1][4]    (column 0 unused)
    int32      Total_NumOrbs[atomnum], FNAN[atomnum]
    int32      natn[atom][FNAN+1], then ncn[atom][FNAN+1]           (h = 0 is the atom itself)
    float64    tv[3][4], rtv[3][4], Gxyz[atomnum][4]                (Bohr, column 0 unused)
    float64    matrices, each X[i][h][n_orb(i)][n_orb(natn[i][h])], in the order
               Hks[SpinP+1], iHks[3] (SpinP == 3 only), OLP, OLPpo[3][order_max], OLPmo[3],
               DM[SpinP+1], iDM[2]
    int32      Solver; float64[10] ChemP, E_Temp, dipoles[6], Valence_Electrons, Total_SpinS
    int32      num_lines, then num_lines records of 256 bytes: the input file

The flat order of every matrix (atom i, neighbour h, row-major block) is exactly the flat
block layout of :class:`~hotham.operator.BlockOperator` with edges (i, natn[i][h]-1,
atv_ijk[ncn[i][h]]), so the blocks are taken over with one slice each, no per-block loop.

Every count read from the file is checked against the bytes that remain *before* anything
is allocated, so a corrupted or truncated file raises :class:`~hotham.errors.FormatError`
(or :class:`~hotham.errors.UnsupportedVersionError` for another format version) and nothing
else, without large allocations.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms
from ase.units import Bohr, Hartree

from ...basis import Basis
from ...errors import FormatError, HothamError, UnsupportedVersionError
from ...operator import BlockOperator
from ._io import read_bytes
from .dat import parse_openmx_input, species_basis_labels, species_symbol
from .orbitals import to_internal

SUPPORTED_VERSION = 3  # OpenMX 3.9
_VERSION_NAMES = {0: "OpenMX 3.7, 3.8 or older", 1: "OpenMX 3.7.x (HWC development)",
                  2: "OpenMX 3.7.x (HWF development)", 3: "OpenMX 3.9"}
_LINE = 256  # bytes per record of the embedded input file


@dataclass
class ScfoutData:
    """Raw contents of a ``.scfout`` file, OpenMX units (Hartree, Bohr) and orbital order.

    Matrices are flat float64 arrays in OpenMX's order (see module docstring), ``nnz`` long:
    ``Hks [SpinP+1, nnz]``, ``iHks [3, nnz]`` (zeros unless SpinP_switch == 3), ``OLP [nnz]``,
    ``DM [SpinP+1, nnz]``. ``natn`` is 0-based here; ``R`` [E, 3] the integer translation of
    each block's neighbour (``atv_ijk[ncn]``).
    """

    path: str | None
    version: int
    spinp_switch: int
    atomnum: int
    order_max: int
    total_num_orbs: np.ndarray       # [N]
    fnan: np.ndarray                 # [N]
    edge_i: np.ndarray               # [E]
    edge_j: np.ndarray               # [E] (natn - 1)
    R: np.ndarray                    # [E, 3]
    tv: np.ndarray                   # [3, 3] Bohr, rows = lattice vectors
    rtv: np.ndarray                  # [3, 3] 1/Bohr, 2 pi included
    gxyz: np.ndarray                 # [N, 3] Bohr
    Hks: np.ndarray
    iHks: np.ndarray
    OLP: np.ndarray
    DM: np.ndarray
    solver: int
    chemp: float                     # Hartree
    e_temp: float
    valence_electrons: float
    total_spins: float
    input_text: str
    extra: dict = field(default_factory=dict)  # matrix_offset: byte where Hks starts; n_matrices


class _Cursor:
    """Sequential reads from a byte buffer; every read is size-checked before allocating."""

    def __init__(self, buf, path):
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    @property
    def left(self) -> int:
        return self.size - self.pos

    def need(self, nbytes: int, what: str):
        if nbytes < 0 or nbytes > self.left:
            raise FormatError(self.path, f"file truncated at byte {self.size}, expected {self.pos + nbytes} "
                                         f"bytes (reading {what})")

    def take(self, dtype: str, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        self.need(int(count) * dt.itemsize, what)
        out = np.frombuffer(self.buf, dtype=dt, count=int(count), offset=self.pos)
        self.pos += int(count) * dt.itemsize
        return out

    def count(self, value, what: str, lo: int = 0) -> int:
        value = int(value)
        if value < lo:
            raise FormatError(self.path, f"invalid {what} = {value} at byte {self.pos} (not an OpenMX .scfout "
                                         f"file, or corrupted)")
        return value


def parse_scfout(source) -> ScfoutData:
    """Read the raw contents of a ``.scfout`` (path, ``.scfout.gz``, bytes or binary file)."""
    data, path = read_bytes(source)
    try:
        return _parse(data, path)
    except (FormatError, UnsupportedVersionError):
        raise
    except (ValueError, IndexError, KeyError, OverflowError, HothamError) as exc:
        raise FormatError(path, f"inconsistent .scfout contents ({exc})") from None


def _parse(buf, path) -> ScfoutData:
    c = _Cursor(buf, path)
    if c.size == 0:
        raise FormatError(path, "empty file (expected an OpenMX .scfout)")
    if c.size < 28:
        raise FormatError(path, f"file truncated at byte {c.size}, expected at least 28 bytes of .scfout header")
    head = c.take("<i4", 6, "header")
    atomnum = c.count(head[0], "atomnum", 1)
    if int(head[1]) < 0:
        raise FormatError(path, f"not an OpenMX .scfout file (SpinP_switch/version word {int(head[1])} < 0)")
    spinp, version = int(head[1]) % 4, int(head[1]) // 4
    if version > 15:
        raise FormatError(path, f"not an OpenMX .scfout file (header word {int(head[1])} is no SpinP_switch + "
                                f"4 * version; a big-endian or foreign file?)")
    if version != SUPPORTED_VERSION:
        found = _VERSION_NAMES.get(version, "unknown")
        raise UnsupportedVersionError(
            path, f".scfout format version {version} ({found}); hotham reads version {SUPPORTED_VERSION} "
                  f"(OpenMX 3.9) only")
    if spinp == 2:
        raise FormatError(path, "SpinP_switch = 2 is not defined by OpenMX (expected 0, 1 or 3)")
    tcpy = c.count(head[5], "TCpyCell", 0)
    order_max = c.count(c.take("<i4", 1, "order_max")[0], "order_max", 0)
    ncell = tcpy + 1
    # fixed-size parts that follow, before any per-atom data: check all at once
    c.need(ncell * 48 + atomnum * 8, "cell translations and orbital counts")
    c.take("<f8", 4 * ncell, "atv")
    atv_ijk = c.take("<i4", 4 * ncell, "atv_ijk").reshape(ncell, 4)[:, 1:]
    tno = c.take("<i4", atomnum, "Total_NumOrbs").astype(np.int64)
    fnan = c.take("<i4", atomnum, "FNAN").astype(np.int64)
    if tno.min() < 1:
        raise FormatError(path, f"invalid Total_NumOrbs {int(tno.min())} (< 1)")
    if fnan.min() < 0:
        raise FormatError(path, f"invalid FNAN {int(fnan.min())} (< 0)")
    n_edges = int(fnan.sum()) + atomnum
    c.need(8 * n_edges, "natn and ncn")
    natn = c.take("<i4", n_edges, "natn").astype(np.int64) - 1
    ncn = c.take("<i4", n_edges, "ncn").astype(np.int64)
    if natn.min() < 0 or natn.max() >= atomnum:
        raise FormatError(path, f"neighbour index natn out of range 1..{atomnum}")
    if ncn.min() < 0 or ncn.max() >= ncell:
        raise FormatError(path, f"cell index ncn out of range 0..{tcpy}")
    tv = c.take("<f8", 12, "tv").reshape(3, 4)[:, 1:]
    rtv = c.take("<f8", 12, "rtv").reshape(3, 4)[:, 1:]
    gxyz = c.take("<f8", 4 * atomnum, "Gxyz").reshape(atomnum, 4)[:, 1:]

    # Matrix sizes. An on-site block alone needs tno^2 doubles, which bounds tno before the
    # products below are formed (no int64 overflow, no huge allocation).
    c.need(int(tno.max()) ** 2 * 8, f"an on-site block of Total_NumOrbs = {int(tno.max())}")
    edge_i = np.repeat(np.arange(atomnum), fnan + 1)
    nnz = int(np.sum(tno[edge_i] * tno[natn]))
    n_h = spinp + 1
    n_mat = n_h + (3 if spinp == 3 else 0) + 1 + 3 * order_max + 3 + n_h + 2
    tail = 4 + 80 + 4
    c.need(8 * nnz * n_mat + tail, f"{n_mat} matrices of {nnz} elements")
    matrix_offset = c.pos
    mats = c.take("<f8", nnz * n_mat, "matrices").reshape(n_mat, nnz)
    k = 0
    Hks = mats[k:k + n_h]; k += n_h
    if spinp == 3:
        iHks = mats[k:k + 3]; k += 3
    else:
        iHks = None
    OLP = mats[k]; k += 1 + 3 * order_max + 3
    DM = mats[k:k + n_h]
    solver = int(c.take("<i4", 1, "Solver")[0])
    scalars = c.take("<f8", 10, "ChemP ... Total_SpinS")
    num_lines = c.count(c.take("<i4", 1, "num_lines")[0], "num_lines", 0)
    c.need(_LINE * num_lines, f"{num_lines} lines of the input file")
    recs = bytes(c.buf[c.pos:c.pos + _LINE * num_lines])
    c.pos += _LINE * num_lines
    if c.left:
        raise FormatError(path, f"{c.left} unexpected bytes after the end of the .scfout data at byte {c.pos} "
                                f"(layout mismatch or corrupted counts)")
    lines = [recs[i:i + _LINE].split(b"\0", 1)[0].decode("utf-8", errors="replace") for i in range(0, len(recs), _LINE)]
    text = "".join(l if l.endswith("\n") else l + "\n" for l in lines)
    return ScfoutData(
        path=path, version=version, spinp_switch=spinp, atomnum=atomnum, order_max=order_max,
        total_num_orbs=tno, fnan=fnan, edge_i=edge_i, edge_j=natn, R=atv_ijk[ncn].astype(np.int64),
        tv=tv.copy(), rtv=rtv.copy(), gxyz=gxyz.copy(), Hks=Hks, iHks=iHks if iHks is not None else np.zeros((3, nnz)),
        OLP=OLP, DM=DM, solver=solver, chemp=float(scalars[0]), e_temp=float(scalars[1]),
        valence_electrons=float(scalars[8]), total_spins=float(scalars[9]), input_text=text,
        extra={"matrix_offset": matrix_offset, "n_matrices": n_mat},
    )


def species_from_input(text: str, path=None, atomnum: int | None = None):
    """``(species labels per atom, {species label: basis label})`` from OpenMX input text."""
    inp = parse_openmx_input(text, path)
    species = inp.block("Definition.of.Atomic.Species")
    if any(len(row) < 2 for row in species):
        raise FormatError(path, "a <Definition.of.Atomic.Species row lacks its basis label")
    basis_labels = species_basis_labels(inp)
    labels = [row[1] for row in inp.block("Atoms.SpeciesAndCoordinates") if len(row) > 1]
    if atomnum is not None and len(labels) != atomnum:
        raise FormatError(path, f"the input lists {len(labels)} atoms, the .scfout {atomnum}")
    return labels, basis_labels


def _basis_for(labels, basis_labels, path):
    """Chemical symbols per atom and a Basis keyed by symbol."""
    symbols, by_symbol = [], {}
    for lab in labels:
        if lab not in basis_labels:
            raise FormatError(path, f"species {lab!r} is not in <Definition.of.Atomic.Species")
        sym = species_symbol(lab)
        b = basis_labels[lab]
        if by_symbol.setdefault(sym, b) != b:
            raise FormatError(path, f"element {sym} appears with two bases ({by_symbol[sym]}, {b}); hotham keys "
                                    f"bases by element")
        symbols.append(sym)
    return symbols, Basis.from_openmx(by_symbol)


def scfout_to_operator(raw: ScfoutData, *, input_text: str | None = None, symmetrize: bool = False,
                       check: bool = True, h_tol: float = 1e-7, s_tol: float = 1e-8,
                       source: str | None = None) -> BlockOperator:
    """BlockOperator (eV, Angstrom, internal orbital order) from raw ``.scfout`` contents.

    ``input_text`` replaces the embedded input (species and basis labels) when given.
    """
    path = raw.path
    try:
        return _to_operator(raw, input_text, symmetrize, check, h_tol, s_tol, source)
    except FormatError as exc:
        if exc.path is None and path is not None:
            raise type(exc)(path, exc.problem) from None
        raise
    except (ValueError, IndexError, KeyError, OverflowError, HothamError) as exc:
        raise FormatError(path, f"inconsistent .scfout contents ({exc})") from None


def _to_operator(raw, input_text, symmetrize, check, h_tol, s_tol, source):
    path = raw.path
    text = raw.input_text if input_text is None else input_text
    labels, basis_labels = species_from_input(text, path, raw.atomnum)
    symbols, basis = _basis_for(labels, basis_labels, path)
    want = basis.counts(symbols)
    bad = np.flatnonzero(want != raw.total_num_orbs)
    if len(bad):
        a = int(bad[0])
        raise FormatError(path, f"atom {a + 1} ({labels[a]}, {basis_labels[labels[a]]}) has "
                                f"{int(raw.total_num_orbs[a])} orbitals in the .scfout, its basis {int(want[a])}")
    with np.errstate(all="ignore"):
        cell, pos = raw.tv * Bohr, raw.gxyz * Bohr
    if not (np.all(np.isfinite(cell)) and np.all(np.isfinite(pos))):
        raise FormatError(path, "cell or atomic positions are not finite")
    atoms = Atoms(symbols=symbols, positions=pos, cell=cell, pbc=True)
    spin = {0: "none", 1: "collinear", 3: "soc"}[raw.spinp_switch]
    op = BlockOperator(atoms, basis, raw.edge_i, raw.edge_j, raw.R, spin="none",
                       fermi_level=raw.chemp * Hartree, source=source or path or "",
                       meta={"format": "openmx-scfout", "openmx_format_version": raw.version,
                             "openmx_version": "3.9", "spinp_switch": raw.spinp_switch,
                             "valence_electrons": raw.valence_electrons, "total_spin_S": raw.total_spins,
                             "basis_labels": dict(basis_labels), "species": list(labels),
                             "chemp_hartree": raw.chemp})
    with np.errstate(all="ignore"):
        S = np.array(raw.OLP, dtype=np.float64)
        if spin == "none":
            H = raw.Hks[0] * Hartree
        elif spin == "collinear":
            H = raw.Hks[:2] * Hartree
        else:
            H = _spinor_blocks(op, raw.Hks, raw.iHks) * Hartree
    op = op.with_blocks(H=H, S=S, spin=spin)
    op = to_internal(op)
    if symmetrize:
        op = op.symmetrized()
    if check:
        op.check(h_tol=h_tol, s_tol=s_tol)
        if not np.isfinite(op.fermi_level):
            raise FormatError(path, f"chemical potential is not finite ({raw.chemp})")
    return op


def _spinor_blocks(op: BlockOperator, Hks, iHks) -> np.ndarray:
    """Flat spin-major (2 n_i, 2 n_j) blocks, Hartree, from OpenMX's non-collinear matrices.

    OpenMX's H(k) (Hamiltonian_Band_NC.c) is [[uu, ud], [ud^dagger, dd]] with
    uu = Hks0 + i iHks0, dd = Hks1 + i iHks1, ud = Hks2 + i (Hks3 + iHks2), each Bloch-summed.
    The down-up block of (i, j, R) is therefore ud_ji(-R)^dagger, taken from the partner block.
    """
    uu = Hks[0] + 1j * iHks[0]
    dd = Hks[1] + 1j * iHks[1]
    ud = Hks[2] + 1j * (Hks[3] + iHks[2])
    du = ud[op.partner_index(1)].conj()
    parts = np.stack([uu, ud, du, dd])  # index 2 * s_row + s_col
    ni, nj = op.block_shapes[:, 0], op.block_shapes[:, 1]
    sizes = 4 * ni * nj
    start = np.concatenate([[0], np.cumsum(sizes)])
    edge = np.repeat(np.arange(op.n_edges), sizes)
    local = np.arange(start[-1]) - start[edge]
    a, b = np.divmod(local, 2 * nj[edge])
    sa, oa = np.divmod(a, ni[edge])
    sb, ob = np.divmod(b, nj[edge])
    src = op.offsets[edge] + oa * nj[edge] + ob
    return parts[2 * sa + sb, src]


def read_scfout(source, *, input_text: str | None = None, symmetrize: bool = False, check: bool = True,
                h_tol: float = 1e-7, s_tol: float = 1e-8) -> BlockOperator:
    """Read an OpenMX 3.9 ``.scfout`` (path, ``.scfout.gz``, bytes or binary file object).

    Returns a :class:`BlockOperator`: H in eV (spin "none", "collinear" for SpinP_switch 1,
    "soc" spinor blocks for SpinP_switch 3), S dimensionless, Angstrom, internal orbital
    order, ``fermi_level`` = OpenMX's ChemP in eV. Species and basis labels come from the input
    file embedded at the end of the .scfout (or ``input_text``).

    OpenMX's blocks are Hermitian pairs only to its grid accuracy (~1e-8 eV): with
    ``check=True`` the pairing is validated to ``h_tol`` (eV) / ``s_tol``; ``symmetrize=True``
    averages each pair, X <- (X_ij(R) + X_ji(-R)^dagger) / 2 (never done silently).
    Raises FormatError / UnsupportedVersionError for anything that is not a valid file.
    """
    raw = parse_scfout(source)
    return scfout_to_operator(raw, input_text=input_text, symmetrize=symmetrize, check=check,
                              h_tol=h_tol, s_tol=s_tol)
