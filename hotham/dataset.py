"""Training sets: many DFT structures with their H and S blocks in one HDF5 file.

:func:`build_dataset` walks OpenMX run folders and DeepH-pack folders (or folders of them),
reads every structure with :func:`hotham.io.read` and writes one file::

    /structures/<name>      one hotham block operator per structure (hotham.io.hdf5.write_group):
                            atoms, basis, edges (every (i, j, R) block the DFT gives, optionally
                            cut at ``cutoff`` Angstrom, Hermitian pairs kept together), H (eV), S
    /names                  structure names, sorted            (string [n])
    /sources                where each structure came from     (string [n], same order)
    /split/train, /split/val, /split/test                      (string lists of names)
    attrs:  dataset_format = "hotham-dataset", dataset_version = 1,
            species (JSON list), basis (JSON, merged over structures), cutoff (Angstrom, NaN = none),
            max_edge_length (Angstrom), max_edge_length_pairs (JSON {"C-N": Angstrom}),
            stats (JSON, see below), split_ratios, split_seed, skipped (JSON [[path, reason]])

``stats[pair]["H"|"S"]`` (pair = "Zi-Zj" by chemical symbol of the row and column atom,
ordered) holds ``blocks`` (count), ``elements``, ``mean``, ``std``, ``max_abs`` of all block
elements of that species pair over the whole data set (H in eV; for spin-orbit blocks the real
and imaginary parts are pooled, for collinear spin both channels). They are meant for
normalising a model's targets.

:class:`Dataset` reads such a file back; it is what training code uses::

    ds = Dataset("set.h5")
    for name in ds.split("train"):
        op = ds[name]            # BlockOperator, eV / Angstrom, internal orbital order
"""
from __future__ import annotations

import json
import os
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import h5py
import numpy as np

from .basis import Basis
from .errors import BasisError, FormatError, HothamError
from .operator import BlockOperator

DATASET_FORMAT = "hotham-dataset"
DATASET_VERSION = 1
SPLIT_NAMES = ("train", "val", "test")

__all__ = ["build_dataset", "Dataset", "DatasetReport", "find_structures", "select_edges", "split_names"]


# ---------------------------------------------------------------------------------- finding inputs
class SetMember:
    """One structure of an existing hotham data set, as a source of :func:`build_dataset`
    (``set.h5`` given as a source contributes every structure it holds)."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = Path(path), name

    def read(self) -> BlockOperator:
        with Dataset(self.path) as ds:
            return ds[self.name]

    def resolve(self):
        return (self.path.resolve(), self.name)

    def __str__(self) -> str:
        return f"{self.path}:{self.name}"


def _is_data_set(p: Path) -> bool:
    if not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            return "dataset_format" in f.attrs
    except OSError:
        return False


def _is_structure(p: Path) -> bool:
    from .io import detect_format
    try:
        fmt = detect_format(p)
    except FormatError:
        return False
    if fmt in ("openmx", "deeph"):
        return True
    # a hotham file is a structure only if it holds a single operator (not another data set)
    with h5py.File(p, "r") as f:
        return "dataset_format" not in f.attrs and "structures" not in f


#: a file of this name in a structure folder keeps it out of data sets (a held-out test structure)
HELD_OUT = "HELD_OUT"


def find_structures(sources: Iterable, *, skipped: list | None = None, held_out: list | None = None,
                    duplicates: list | None = None) -> list[tuple[str, Path]]:
    """``[(name, path)]`` of every structure under ``sources`` (sorted by name).

    A path that :func:`hotham.io.detect_format` recognises is one structure (an OpenMX run
    folder or ``.scfout``, a DeepH folder, a single-operator hotham file); a hotham data set given
    as a source gives each of its structures (path a :class:`SetMember`, name
    ``<set stem>__<name>``), so sets merge; any other folder is searched recursively (hidden
    entries skipped). The name is the path relative to the
    source's parent with ``/`` replaced by ``__`` (``graphene_mono_2x2__000``); clashes get
    ``~2``, ``~3``. Sources that do not exist or hold no structure are appended to ``skipped``
    as ``(path, reason)``. A structure folder holding a file ``HELD_OUT`` (a structure kept for
    testing a model, such as the demo's twisted bilayer) is left out and appended to ``held_out``,
    unless it is itself one of ``sources``. A structure reached twice (a source listed twice, or
    inside another source) is taken once; the second path goes to ``duplicates`` as ``(path,
    path taken)``.
    """
    skipped = skipped if skipped is not None else []
    duplicates = duplicates if duplicates is not None else []
    taken: dict[Path, Path] = {}
    held_out = held_out if held_out is not None else []
    found: list[tuple[str, Path]] = []
    for src in sources:
        root = Path(src)
        if not root.exists():
            skipped.append((str(root), "no such file or folder"))
            continue
        if _is_data_set(root):
            with Dataset(root) as ds:
                members = [SetMember(root, n) for n in ds.names]
            if not members:
                skipped.append((str(root), "a data set with no structure"))
            for m in members:
                if m.resolve() in taken:
                    duplicates.append((str(m), str(taken[m.resolve()])))
                    continue
                taken[m.resolve()] = m
                found.append((f"{root.name.removesuffix('.h5')}__{m.name}", m))
            continue
        here: list[Path] = []
        stack, visited = [root.absolute()], set()
        while stack:
            p = stack.pop()
            if _is_structure(p):
                if p != root.absolute() and p.is_dir() and (p / HELD_OUT).exists():
                    held_out.append(str(p))
                    continue
                here.append(p)
            elif p.is_dir() and p.resolve() not in visited:     # (symlink loops visited once)
                visited.add(p.resolve())
                stack.extend(sorted((c for c in p.iterdir() if not c.name.startswith(".")), reverse=True))
        if not here:
            skipped.append((str(root), "holds no OpenMX run (*.scfout) or DeepH folder (hamiltonians.h5)"))
        base = root.absolute().parent
        for p in here:
            if p.resolve() in taken:
                duplicates.append((str(p), str(taken[p.resolve()])))
                continue
            taken[p.resolve()] = p
            rel = p.relative_to(base).as_posix()
            for suffix in (".scfout.gz", ".scfout", ".h5"):
                if rel.endswith(suffix):
                    rel = rel[: -len(suffix)]
            found.append((rel.replace("/", "__"), p))
    seen: dict[str, int] = {}
    out = []
    for name, p in found:
        seen[name] = seen.get(name, 0) + 1
        out.append((name if seen[name] == 1 else f"{name}~{seen[name]}", p))
    return sorted(out)


# ---------------------------------------------------------------------------------- edges
def select_edges(op: BlockOperator, keep: np.ndarray) -> BlockOperator:
    """Operator with only the edges where ``keep`` (bool [E]) is true; blocks sliced accordingly."""
    keep = np.asarray(keep, dtype=bool)
    sizes = op.block_shapes[:, 0] * op.block_shapes[:, 1]
    mask = np.repeat(keep, sizes)
    H = None
    if op.H is not None:
        H = op.H[np.repeat(keep, 4 * sizes)] if op.spin == "soc" else op.H[..., mask]
    S = None if op.S is None else op.S[mask]
    return BlockOperator(op.atoms.copy(), op.basis, op.edge_i[keep], op.edge_j[keep], op.edge_R[keep],
                         H=H, S=S, spin=op.spin, fermi_level=op.fermi_level, source=op.source,
                         meta=dict(op.meta))


def apply_cutoff(op: BlockOperator, cutoff: float) -> BlockOperator:
    """Drop blocks whose atoms are further apart than ``cutoff`` (Angstrom).

    Hermitian partners (i, j, R) and (j, i, -R) are kept or dropped together (their lengths
    can differ in the last bit), on-site blocks always stay."""
    d = op.edge_lengths()
    d = np.minimum(d, d[op.reverse_edges])
    return select_edges(op, d <= cutoff)


def _cut_with_hopping(op: BlockOperator, cutoff: float) -> BlockOperator:
    """:func:`apply_cutoff`, refusing (HothamError) a cutoff that leaves no off-site block: a
    structure of on-site blocks alone teaches a model no hopping."""
    cut = apply_cutoff(op, cutoff)
    if not ((cut.edge_i != cut.edge_j) | np.any(cut.edge_R != 0, axis=1)).any():
        d = op.edge_lengths()
        bonds = d[d > 1e-8]
        shortest = f"its shortest bond is {bonds.min():.3f} A" if bonds.size else "it has no off-site block at all"
        raise HothamError(f"cutoff {cutoff:g} A leaves no hopping (off-site) block, only on-site ones ({shortest}); "
                          "raise the cutoff")
    return cut


def _fingerprint(atoms) -> str:
    """Species, cell and positions (to 1e-4 A) of a structure as a hash: equal for copies."""
    import hashlib
    h = hashlib.sha1()
    for x in (atoms.numbers.astype(np.int64), np.round(np.asarray(atoms.cell), 4) + 0.0,
              np.round(atoms.positions, 4) + 0.0):
        h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------- statistics
class _Moments:
    """Count, mean and M2 per key, merged across structures (Chan et al.'s parallel update)."""

    def __init__(self):
        self.d: dict[str, list] = {}

    def add(self, key: str, blocks: int, x: np.ndarray):
        n = x.size
        if n == 0:
            return
        mean = float(x.mean())
        m2 = float(((x - mean) ** 2).sum())
        mx = float(np.abs(x).max())
        if key not in self.d:
            self.d[key] = [blocks, n, mean, m2, mx]
            return
        b0, n0, mean0, m20, mx0 = self.d[key]
        nt = n0 + n
        delta = mean - mean0
        self.d[key] = [b0 + blocks, nt, mean0 + delta * n / nt, m20 + m2 + delta ** 2 * n0 * n / nt, max(mx0, mx)]

    def result(self) -> dict:
        return {k: {"blocks": int(b), "elements": int(n), "mean": mean, "std": float(np.sqrt(m2 / n)), "max_abs": mx}
                for k, (b, n, mean, m2, mx) in sorted(self.d.items())}


def _pair_stats(op: BlockOperator, h_mom: _Moments, s_mom: _Moments, lengths: dict):
    """Add one structure's block elements per ordered species pair (vectorised over edges)."""
    sym = np.array(op.atoms.get_chemical_symbols())
    pair = np.char.add(np.char.add(sym[op.edge_i], "-"), sym[op.edge_j])
    keys, pid = np.unique(pair, return_inverse=True)
    sizes = op.block_shapes[:, 0] * op.block_shapes[:, 1]
    elem_pid = np.repeat(pid, sizes)
    dist = op.edge_lengths()
    for k, key in enumerate(keys):
        on = pid == k
        nb = int(on.sum())
        lengths[key] = max(lengths.get(key, 0.0), float(dist[on].max()))
        sel = elem_pid == k
        if op.S is not None:
            s_mom.add(key, nb, op.S[sel])
        if op.H is not None:
            if op.spin == "soc":
                h = op.H[np.repeat(pid == k, 4 * sizes)]
                h = np.concatenate([h.real, h.imag])
            else:
                h = op.H[..., sel].reshape(-1)
            h_mom.add(key, nb, h)


# ---------------------------------------------------------------------------------- split
def split_names(names: Sequence[str], ratios=(0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[str]]:
    """Seeded random split of ``names`` into train / val / test.

    The names are sorted first, permuted with ``numpy.random.default_rng(seed)``, and cut at
    ``round(cumsum(ratios) / sum(ratios) * n)``: the same names, ratios and seed always give
    the same split, whatever order the sources were given in. Each list is sorted.
    """
    r = np.asarray(ratios, dtype=float)
    if r.shape != (3,) or np.any(r < 0) or r.sum() <= 0 or not np.all(np.isfinite(r)):
        raise HothamError(f"split needs three non-negative ratios (train, val, test), got {tuple(ratios)}")
    names = sorted(names)
    perm = np.random.default_rng(seed).permutation(len(names))
    cuts = np.round(np.cumsum(r) / r.sum() * len(names)).astype(int)
    parts = np.split(perm, cuts[:2])
    return {s: sorted(names[i] for i in part) for s, part in zip(SPLIT_NAMES, parts)}


def _split_per_source(names, paths, sources, ratios, seed) -> dict[str, list[str]]:
    """:func:`split_names` applied to the structures of each source (the first of ``sources``
    whose folder holds the structure's ``path``, or the data set of a ``set.h5:name``), the parts
    merged and sorted."""
    roots = [Path(s).absolute() for s in sources]
    groups: dict[int, list[str]] = {}
    for name, path in zip(names, paths):
        p = Path(path).absolute()
        i = next(i for i, r in enumerate(roots)
                 if p == r or p.is_relative_to(r) or str(p).startswith(f"{r}:"))
        groups.setdefault(i, []).append(name)
    parts = [split_names(g, ratios, seed) for g in groups.values()]
    return {s: sorted(n for part in parts for n in part[s]) for s in SPLIT_NAMES}


# ---------------------------------------------------------------------------------- building
@dataclass
class DatasetReport:
    """What :func:`build_dataset` did."""

    path: str
    names: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    held_out: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    species: list[str] = field(default_factory=list)
    n_edges: int = 0
    split: dict[str, list[str]] = field(default_factory=dict)
    cutoff: float = float("nan")
    max_edge_length: float = 0.0

    @property
    def n_structures(self) -> int:
        return len(self.names)

    def summary(self) -> str:
        lines = [f"WARNING: {len(self.skipped)} of {len(self.skipped) + self.n_structures} structures could not "
                 "be used and were left out (listed at the end)"] if self.skipped else []
        lines += [f"wrote {self.path}",
                 f"  structures: {self.n_structures} ({', '.join(self.species) or 'no species'}), "
                 f"{self.n_edges} blocks, longest edge {self.max_edge_length:.3f} A"
                 + ("" if np.isnan(self.cutoff) else f" (cutoff {self.cutoff:g} A)"),
                 "  split: " + ", ".join(f"{k} {len(v)}" for k, v in self.split.items())]
        if self.held_out:
            lines.append(f"  held out (a {HELD_OUT} file): " + ", ".join(self.held_out))
        if self.duplicates:
            lines.insert(0, f"WARNING: {len(self.duplicates)} structure(s) given twice were taken once (a copy "
                            "in train and in validation would leak); listed at the end")
            lines.append(f"  duplicates left out {len(self.duplicates)}:")
            lines += [f"    {p}: the same as {first}" for p, first in self.duplicates]
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)}:")
            lines += [f"    {p}: {why}" for p, why in self.skipped]
        return "\n".join(lines)


@contextmanager
def _interrupt_flag():
    """Record Ctrl-C (SIGINT) in a flag as well as raising KeyboardInterrupt.

    Readers call into h5py and other C code that may turn an exception raised inside them into
    another error, which the skip-and-continue loop would then take for a bad file; the flag
    lets the loop stop anyway. Yields a function telling whether SIGINT arrived."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hit = []

    def handler(signum, frame):
        hit.append(signum)
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hit)
    finally:
        signal.signal(signal.SIGINT, old)


def build_dataset(sources, out_path, *, split=(0.8, 0.1, 0.1), seed: int = 0, cutoff: float | None = None,
                  progress: bool = True, spin: str | None = None, h_tol: float = 1e-5,
                  s_tol: float = 1e-6, strict: bool = False, split_by_source: bool = False,
                  compact: bool = False, force: bool = True) -> DatasetReport:
    """Read every structure under ``sources`` and write one training-set HDF5 file.

    Parameters
    ----------
    sources : path or list of paths: OpenMX run folders / ``.scfout`` files, DeepH folders,
        folders holding many of them (searched recursively), or hotham data sets (merged; see
        :func:`find_structures`).
    out_path : the HDF5 file to write (atomically: nothing appears under this name on failure).
    split : train / val / test ratios (see :func:`split_names`), seeded by ``seed``.
    split_by_source : split the structures of each of ``sources`` on its own (with the same
        ratios and seed) and merge the parts, so that every source (a chemistry, a set) is held out
        in proportion, and the set of one source alone is split as it would be in a mixed set.
    cutoff : Angstrom; drop blocks between atoms further apart (pairs kept together). ``None``
        keeps every block the DFT code wrote. A structure the cutoff leaves without any hopping
        (off-site) block is skipped, naming its shortest bond.
    spin : "none", "collinear" or "soc": structures of another spin treatment are skipped.
        ``None`` takes the spin of the first structure read (in name order).
    h_tol, s_tol : Hermitian pairing a structure must meet (eV for H) to be taken; DFT data
        pair to ~1e-8 eV.
    strict : raise HothamError (and write nothing) when any structure is skipped.
    compact : store the blocks as compressed float32 (:func:`hotham.io.hdf5.write_group`), for
        sets kept in a repository; they read back as float64.
    force : replace an existing ``out_path`` (False refuses it before reading anything;
        :func:`hotham.files.check_outputs`).

    A structure found twice (a source listed twice) or identical to one already taken (same
    species, cell and positions to 1e-4 A: a copied run folder) is taken once and listed in
    ``report.duplicates``, so that no copy lands in both the training and the validation split.

    Structures that cannot be read or fail the checks (missing on-site block or Hermitian
    partner, NaN, pairing above tolerance) are skipped and listed in the report as
    ``(path, reason)``. Two structures giving the same element different bases raise
    :class:`BasisError` naming both sources (a model needs one basis per element).
    """
    from tqdm.auto import tqdm

    from .io import read
    from .files import atomic_path, check_outputs
    from .io.hdf5 import write_group

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if cutoff is not None and not cutoff > 0:
        raise HothamError(f"cutoff must be a positive length in Angstrom, got {cutoff}")
    check_outputs([out_path], force=force, inputs=sources)
    report = DatasetReport(path=os.fspath(out_path), cutoff=float("nan") if cutoff is None else float(cutoff))
    found = find_structures(sources, skipped=report.skipped, held_out=report.held_out,
                            duplicates=report.duplicates)
    geometries: dict[str, str] = {}          # fingerprint -> the path of the structure taken
    basis = Basis({})
    basis_source: dict[str, str] = {}
    h_mom, s_mom, lengths = _Moments(), _Moments(), {}
    first_spin = None

    with atomic_path(out_path) as tmp, _interrupt_flag() as interrupted:
        with h5py.File(tmp, "w") as f:
            g_all = f.create_group("structures")
            for name, path in tqdm(found, desc="reading structures", unit="structure", disable=not progress):
                if interrupted():
                    raise KeyboardInterrupt
                try:
                    op = path.read() if isinstance(path, SetMember) else read(path)
                    if op.H is None or op.S is None:
                        raise FormatError(path, "needs both H and S for training")
                    op.check(h_tol=h_tol, s_tol=s_tol)   # on-site blocks, partners, finiteness, pairing
                    if spin is not None and op.spin != spin:
                        raise HothamError(f"spin {op.spin!r}, the data set takes {spin!r}")
                    if first_spin is not None and op.spin != first_spin[0]:
                        raise HothamError(f"spin {op.spin!r}, but the data set is {first_spin[0]!r} "
                                          f"(set by {first_spin[1]}; choose with spin=...)")
                    if cutoff is not None:
                        op = _cut_with_hopping(op, cutoff)
                except HothamError as exc:
                    report.skipped.append((str(path), str(exc)))
                    continue
                except (OSError, ValueError, KeyError, IndexError) as exc:   # a parser bug must not kill the run
                    report.skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
                    continue
                key = _fingerprint(op.atoms)
                if key in geometries:
                    report.duplicates.append((str(path), geometries[key]))
                    continue
                geometries[key] = str(path)
                for sym in set(op.atoms.get_chemical_symbols()):
                    ls, lab = op.basis.shells[sym], op.basis.labels.get(sym)
                    old_lab = basis.labels.get(sym)
                    if sym in basis.shells and (basis.shells[sym] != ls or (lab and old_lab and lab != old_lab)):
                        raise BasisError(
                            f"element {sym}: basis {old_lab or basis.shells[sym]} in {basis_source[sym]} but "
                            f"{lab or ls} in {path}; one data set needs one basis per element")
                    basis_source.setdefault(sym, str(path))
                basis = basis.merged(op.basis.subset(set(op.atoms.get_chemical_symbols())))
                first_spin = first_spin or (op.spin, str(path))
                write_group(g_all.create_group(name), op, compact=compact)
                _pair_stats(op, h_mom, s_mom, lengths)
                report.names.append(name)
                report.sources.append(str(path))
                report.n_edges += op.n_edges

            if interrupted():
                raise KeyboardInterrupt
            if strict and report.skipped:
                raise HothamError(f"--strict: {len(report.skipped)} of {len(report.skipped) + len(report.names)} "
                                  "structures could not be used, nothing written:\n" + "\n".join(
                                      f"  {p}: {why}" for p, why in report.skipped))
            if not report.names:
                why = "; ".join(f"{p}: {r}" for p, r in report.skipped[:5]) or "no sources given"
                more = f" (and {len(report.skipped) - 5} more)" if len(report.skipped) > 5 else ""
                raise HothamError(f"no structure could be read, nothing written: {why}{more}")
            report.species = sorted(basis.shells)
            if split_by_source:
                report.split = _split_per_source(report.names, report.sources, sources, split, seed)
            else:
                report.split = split_names(report.names, split, seed)
            report.max_edge_length = max(lengths.values(), default=0.0)
            stats = {}
            for which, mom in (("H", h_mom), ("S", s_mom)):
                for pair, st in mom.result().items():
                    stats.setdefault(pair, {})[which] = st
            str_dt = h5py.string_dtype()
            f.create_dataset("names", data=np.array(report.names, dtype=object), dtype=str_dt)
            f.create_dataset("sources", data=np.array(report.sources, dtype=object), dtype=str_dt)
            gs = f.create_group("split")
            for k, v in report.split.items():
                gs.create_dataset(k, data=np.array(v, dtype=object), dtype=str_dt)
            f.attrs.update({
                "dataset_format": DATASET_FORMAT, "dataset_version": DATASET_VERSION,
                "species": json.dumps(report.species), "basis": json.dumps(basis.to_dict()),
                "spin": first_spin[0] if first_spin else (spin or "none"),
                "cutoff": report.cutoff, "max_edge_length": report.max_edge_length,
                "max_edge_length_pairs": json.dumps(dict(sorted(lengths.items()))),
                "stats": json.dumps(stats), "split_ratios": json.dumps([float(x) for x in split]),
                "split_seed": int(seed), "split_by_source": bool(split_by_source),
                "skipped": json.dumps(report.skipped),
            })
    return report


# ---------------------------------------------------------------------------------- reading
class Dataset:
    """A training set written by :func:`build_dataset`, read lazily.

    ``len(ds)``, ``ds.names`` (sorted), ``ds[name]`` or ``ds[index]`` -> :class:`BlockOperator`
    (eV, Angstrom, internal orbital order), ``ds.split("train" | "val" | "test")`` -> names,
    ``ds.basis`` (merged :class:`Basis`), ``ds.species``, ``ds.stats`` (per species pair, see the
    module docstring), ``ds.sources``, ``ds.cutoff``, ``ds.max_edge_length``, ``ds.skipped``.

    The HDF5 file is opened on first access and reopened in a forked worker process (safe with
    ``torch.utils.data.DataLoader(num_workers > 0)``); ``close()`` or ``with Dataset(p) as ds:``
    releases it.
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self._file = None
        self._pid = None
        f = self._h5()
        if f.attrs.get("dataset_format") != DATASET_FORMAT:
            raise FormatError(self.path, "not a hotham data set (no dataset_format attribute); "
                                         "single structures are read with hotham.io.read")
        version = int(f.attrs.get("dataset_version", -1))
        if version != DATASET_VERSION:
            from .errors import UnsupportedVersionError
            raise UnsupportedVersionError(self.path, f"data set version {version}; this hotham reads {DATASET_VERSION}")
        try:
            self.names: list[str] = [s.decode() if isinstance(s, bytes) else s for s in f["names"][()]]
            self.sources: list[str] = [s.decode() if isinstance(s, bytes) else s for s in f["sources"][()]]
            self._split = {k: [s.decode() if isinstance(s, bytes) else s for s in f["split"][k][()]]
                           for k in sorted(f["split"], key=lambda k: (SPLIT_NAMES + (k,)).index(k))}
            self.basis = Basis.from_dict(json.loads(f.attrs["basis"]))
            self.species: list[str] = json.loads(f.attrs["species"])
            self.stats: dict = json.loads(f.attrs["stats"])
            self.max_edge_length_pairs: dict = json.loads(f.attrs["max_edge_length_pairs"])
            self.skipped = [tuple(x) for x in json.loads(f.attrs["skipped"])]
        except KeyError as exc:
            raise FormatError(self.path, f"data set lacks {exc}") from None
        self.cutoff = float(f.attrs["cutoff"])
        self.max_edge_length = float(f.attrs["max_edge_length"])
        self.spin = str(f.attrs.get("spin", "none"))
        self._index = {n: k for k, n in enumerate(self.names)}

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise FormatError(self.path, f"not a readable HDF5 file ({exc})") from None
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name) -> bool:
        return name in self._index

    def __getitem__(self, key) -> BlockOperator:
        from .io.hdf5 import read_group
        if isinstance(key, (int, np.integer)):
            name = self.names[key]
        elif key in self._index:
            name = key
        else:
            raise KeyError(f"{self.path}: no structure {key!r}")
        return read_group(self._h5()["structures"][name], self.path)

    def __iter__(self):
        return (self[n] for n in self.names)

    def split(self, which: str) -> list[str]:
        """Names of the structures in ``"train"``, ``"val"`` or ``"test"``."""
        try:
            return list(self._split[which])
        except KeyError:
            raise KeyError(f"no split {which!r} (known: {', '.join(self._split)})") from None

    def source(self, name: str) -> str:
        return self.sources[self._index[name]]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def summary(self) -> str:
        lines = [f"{self.path}: {len(self)} structures, species {', '.join(self.species)}, spin {self.spin}",
                 f"  basis: {self.basis}",
                 "  split: " + ", ".join(f"{k} {len(v)}" for k, v in self._split.items()),
                 f"  longest edge {self.max_edge_length:.3f} A"
                 + ("" if np.isnan(self.cutoff) else f" (cutoff {self.cutoff:g} A)")]
        lines.append("  pair   blocks    H mean / std / max|H| (eV)      S std")
        for pair, st in self.stats.items():
            h, s = st.get("H", {}), st.get("S", {})
            lines.append(f"  {pair:<6} {h.get('blocks', s.get('blocks', 0)):>7}   "
                         f"{h.get('mean', np.nan):9.4f} / {h.get('std', np.nan):8.4f} / {h.get('max_abs', np.nan):8.3f}"
                         f"   {s.get('std', np.nan):.4f}   (edges up to {self.max_edge_length_pairs.get(pair, np.nan):.2f} A)")
        if self.skipped:
            lines.append(f"  skipped when built: {len(self.skipped)}")
            lines += [f"    {p}: {why}" for p, why in self.skipped]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Dataset({self.path!r}, {len(self)} structures, species={self.species})"
