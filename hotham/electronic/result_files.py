"""The result files of the electronic-structure commands: read blocks, compute, plot, write the files.

The work behind ``hotham bands | dos | states | compare``, one function each. Every function
reads its input with :func:`hotham.io.read` (hotham HDF5, an OpenMX run folder or
.scfout(.gz), a DeepH folder), writes a plot (``format`` "png" or "pdf", through
:mod:`hotham.electronic.plot`) and the numbers (``data`` "txt" for ``numpy.loadtxt`` or "h5")
beside ``prefix`` (a path prefix; default ``<input name>_bands`` etc. in the working folder),
every file atomically, and returns a short summary for the user. Before any work the files to
write go through :func:`hotham.files.check_outputs`: one that is an input is refused, and with
``force=False`` (the commands without ``--force``) an existing one too.

Band paths (``path``): None for the automatic one (in-plane for slabs), special-point letters
("GMKG"), or the k-points of an OpenMX ``.Band`` file: its path, or "openmx" for the one
beside the input.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from .. import checks
from ..domain import DomainWarning
from ..errors import HothamError, InputError
from ..files import atomic_path, check_outputs, source_name
from ..metrics import QualityWarning, quality_verdict
from .bands import band_path, band_structure
from .compare import (band_file_beside, block_mae, check_comparable, common_fermi_levels, compare_bands,
                      openmx_bands)
from .dos import dos
from .ghosts import warn_ghosts
from .plot import band_comparison_figure, plot_atom_weights, plot_bands, plot_dos, save_figure
from .solve import solve
from .states import states

__all__ = ["write_bands", "merge_bands", "write_dos", "write_states", "write_comparison"]

#: at most this many states get a panel in the picture of :func:`write_states`
STATE_PANELS = 6


def _read(source):
    """The operator in ``source``; a prediction's stored warnings (:func:`stored_warnings`) are
    repeated."""
    from ..io import read
    op = read(source)
    stored_warnings(op, source)
    return op


def stored_warnings(op, source) -> None:
    """Repeat the warnings :func:`hotham.predict` gave for the prediction in ``source``: the
    :class:`~hotham.domain.DomainWarning` (``meta["outside_training_domain"]``) and the
    :class:`~hotham.metrics.QualityWarning` (``meta["model_val_block_mae_meV"]`` above the gate).
    Nothing for DFT data."""
    outside = op.meta.get("outside_training_domain")
    if outside:
        warnings.warn(f"{source} was predicted outside the training domain of its model; its bands may be far "
                      "off:\n  " + "\n  ".join(outside), DomainWarning, stacklevel=3)
    verdict = quality_verdict(op.meta.get("model_val_block_mae_meV"), f"the model behind {source}")
    if verdict:
        warnings.warn(verdict, QualityWarning, stacklevel=3)


def _prefix(prefix, default: str) -> Path:
    return Path(prefix) if prefix else Path(default)


def _claim(pre: Path, extensions, inputs, force: bool) -> None:
    """Refuse the outputs ``<pre>.<ext>`` before any work (:func:`hotham.files.check_outputs`)."""
    check_outputs([f"{pre}.{ext}" for ext in extensions], force=force, inputs=inputs)


def _check_numbers(*, fermi=None, window=None, mesh=None) -> None:
    """InputError, before any work, for a Fermi level that is not a finite number, a window whose
    LO is not below its HI, or a k-mesh of counts that are not integers >= 1."""
    if fermi is not None:
        checks.number(fermi, "fermi")
    if window is not None:
        checks.increasing(window, "window")
    if mesh is not None:
        checks.mesh(mesh)


def _check_formats(format: str, data: str | None = None) -> None:
    if format not in ("png", "pdf"):
        raise HothamError(f"unknown plot format {format!r} (png, pdf)")
    if data is not None and data not in ("txt", "h5"):
        raise HothamError(f"unknown data format {data!r} (txt, h5)")


def _band_file(path, source) -> Path | None:
    """The OpenMX .Band file a band-path spec names ("openmx": the first one beside ``source``,
    a folder or a file), or None when the spec is not a .Band file."""
    if not path or not isinstance(path, (str, Path)):
        return None
    spec = str(path)
    if spec == "openmx":
        found = band_file_beside(source)
        if found is None:
            raise HothamError(f"{source}: no OpenMX .Band file beside the input for path 'openmx'")
        return found
    if spec.endswith(".Band") or spec.endswith(".Band.gz"):
        return Path(spec)
    return None


def _kpath(op, path, source, npoints: int):
    """(KPath, OpenMX's bands) for a band-path spec (module docstring); OpenMX's bands are
    (energies [nk, nb] eV, chemical potential eV) when the path came from a .Band file, else None."""
    bf = _band_file(path, source)
    if bf is not None:
        kp, energies, chemp = openmx_bands(op.atoms, bf)
        return kp, (energies, chemp)
    return band_path(op.atoms, path, npoints), None


def _plot(draw, result, fname, figsize=(5.0, 4.5), **kw) -> None:
    """A new figure with one axes, ``draw(ax, result, **kw)`` on it, saved to ``fname``."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize, layout="tight")
    draw(fig.subplots(), result, **kw)
    save_figure(fig, fname)


def _save_numbers(result, pre: Path, data: str) -> None:
    """``result.save_txt`` / ``result.save_hdf5`` to ``<pre>.txt`` / ``<pre>.h5``."""
    if data == "txt":
        result.save_txt(f"{pre}.txt")
    else:
        result.save_hdf5(f"{pre}.h5")


def write_bands(source, prefix=None, *, path=None, npoints: int = 200, n: int | None = None,
                around: float | None = None, channel: int | None = None, fermi: float | None = None,
                window=(-5.0, 5.0), format: str = "png", data: str = "txt", band_edges=None, progress=False,
                processes: int = 1, memory_gb: float | None = None, kchunk=None, force: bool = True,
                canonical: float | None = None, edges=None) -> str:
    """Band structure of the blocks in ``source`` -> ``<prefix>.<format>`` and ``<prefix>.txt|h5``
    (:meth:`~hotham.electronic.bands.BandStructure.save_txt`: k, path length, energies in eV).

    ``path``: see the module docstring (``npoints`` k-points on an automatic or lettered path).
    ``n``, ``around`` (eV), ``channel``: as :func:`~hotham.electronic.bands.band_structure` (the n
    bands nearest ``around``, sparse for big cells; one collinear channel). ``band_edges``:
    (below, above), that many states just below and above E_F instead (the band edges of an insulator;
    E_F by counting when the file has none). ``fermi``: Fermi level to use, eV (default the file's). ``window``: energies shown, eV around E_F. ``progress``: a bar
    over the k-points of the sparse solver on stderr. ``processes``, ``memory_gb``: the k-points
    in parallel worker processes under a memory budget (:mod:`hotham.electronic.kparallel`).
    ``kchunk``: "I/N", only chunk I of N of the k-points, written to ``<prefix>.part<I>of<N>.h5``
    for :func:`merge_bands` (:mod:`hotham.electronic.kchunks`), no plot. ``force``: replace
    existing outputs (False refuses them before any work). ``canonical``: a threshold, canonical
    orthogonalisation (dense; :mod:`hotham.electronic.ghosts`), the dropped S eigenvectors per k in
    the summary. Warns on ghost states and repeats a prediction's stored Domain/QualityWarning.
    Returns the summary. ``edges``: the old name of ``band_edges`` (deprecated, one release).
    """
    if edges is not None:
        warnings.warn("write_bands(edges=...) is deprecated: use band_edges=", DeprecationWarning, stacklevel=2)
        band_edges = edges if band_edges is None else band_edges
    _check_numbers(fermi=fermi, window=window)
    _check_formats(format, data)
    pre = _prefix(prefix, source_name(source) + "_bands")
    if kchunk is not None:
        from .kchunks import parse_kchunk, part_name
        check_outputs([part_name(pre, *parse_kchunk(kchunk))], force=force, inputs=[source])
    else:
        _claim(pre, (format, data), [source], force)
    op = _read(source)
    if fermi is not None:
        op.fermi_level = fermi
    kp, _ = _kpath(op, path, source, npoints)
    kw = dict(processes=processes, memory_gb=memory_gb)
    if canonical is not None:
        kw["canonical"] = float(canonical)
    if band_edges is not None:
        if not np.isfinite(op.fermi_level):
            from .fermi import find_fermi_level
            op.fermi_level = find_fermi_level(op, progress=progress)
        kw.update(n_below=int(band_edges[0]), n_above=int(band_edges[1]))
    if kchunk is not None:
        from .bands import KPath
        from .kchunks import parse_kchunk, part_name, write_part
        from .kparallel import chunk_bounds
        i, nchunks = parse_kchunk(kchunk)
        a, b = chunk_bounds(len(kp.kpts), nchunks)[i]
        bs = band_structure(op, KPath(kp.kpts[a:b], kp.x[a:b], kp.special_x, kp.labels), n=n, around=around,
                            channel=channel, progress=progress, **kw)
        settings = dict(source=str(Path(source).resolve()), n=n, around=around, channel=channel, fermi=fermi,
                        band_edges=None if band_edges is None else [int(e) for e in band_edges])
        fname = write_part(part_name(pre, i, nchunks), kp, (i, nchunks), a, bs.energies, bs.fermi_level,
                           bs.channel, bs.partial, settings)
        return (f"bands: chunk {i} of {nchunks}, k-points {a}..{b - 1} of {len(kp.kpts)} x {bs.energies.shape[1]} "
                f"bands -> {fname} (merge the parts with hotham bands-merge)")
    bs = band_structure(op, kp, n=n, around=around, channel=channel, progress=progress, **kw)
    summary = _write_band_files(bs, pre, format, data, window)
    if bs.dropped is not None:
        summary += (f"\ncanonical orthogonalisation: S eigenvectors below {canonical:g} dropped, "
                    f"{bs.dropped.min()}-{bs.dropped.max()} per k (their bands left out)")
    return summary


def _write_band_files(bs, pre: Path, format: str, data: str, window) -> str:
    """The plot and the numbers of a band structure at ``pre``; returns the summary line."""
    _plot(plot_bands, bs, f"{pre}.{format}", window=tuple(window))
    _save_numbers(bs, pre, data)
    return (f"bands: {len(bs.path.kpts)} k-points x {bs.energies.shape[1]} bands -> {pre}.{format}, "
            f"{pre}.{data} (E_F = {bs.fermi_level:.4f} eV)")


def merge_bands(parts, prefix=None, *, window=(-5.0, 5.0), format: str = "png", data: str = "txt",
                force: bool = True) -> str:
    """The part files of a band run in k-chunks (``write_bands(..., kchunk="I/N")``) joined into
    what :func:`write_bands` writes for the whole path: ``<prefix>.<format>`` and
    ``<prefix>.txt|h5`` (default prefix: the parts' name without ``.part<I>of<N>.h5``). Fails
    on a missing or duplicated chunk, or on parts of another k list
    (:func:`~hotham.electronic.kchunks.merge_parts`). Returns the summary."""
    from .kchunks import merge_parts, part_stem
    _check_numbers(window=window)
    _check_formats(format, data)
    parts = [Path(p) for p in parts]
    pre = _prefix(prefix, part_stem(parts[0]))
    _claim(pre, (format, data), parts, force)
    bs = merge_parts(parts)
    return _write_band_files(bs, pre, format, data, window)


def write_dos(source, prefix=None, *, mesh=12, width: float = 0.05, kind: str = "gaussian",
              project: str | None = None, electrons: float | None = None, fermi: float | None = None,
              temperature: float = 300.0, window=(-5.0, 5.0), format: str = "png", data: str = "txt",
              force: bool = True) -> str:
    """Density of states of the blocks in ``source`` -> ``<prefix>.<format>`` and
    ``<prefix>.txt|h5`` (:meth:`~hotham.electronic.dos.DOS.save_txt`: E in eV, states/eV/cell).

    ``mesh``: Monkhorst-Pack mesh (n, or [n1, n2, n3]); ``width`` (eV) and ``kind``: smearing;
    ``project``: None, "species", "l" or "atom" (Mulliken); ``electrons``, ``fermi`` (eV),
    ``temperature`` (K): the Fermi level, as :func:`~hotham.electronic.dos.dos`. ``window``:
    energies shown, eV around E_F. ``force``: replace existing outputs (False refuses them before
    any work). Returns the summary.
    """
    _check_numbers(fermi=fermi, window=window, mesh=mesh)
    _check_formats(format, data)
    pre = _prefix(prefix, source_name(source) + "_dos")
    _claim(pre, (format, data), [source], force)
    op = _read(source)
    d = dos(op, mesh, width=width, kind=kind, project=project, n_electrons=electrons, fermi=fermi,
            temperature=temperature)
    _plot(plot_dos, d, f"{pre}.{format}", figsize=(5.0, 4.0), window=tuple(window))
    _save_numbers(d, pre, data)
    return (f"dos: E_F = {d.fermi_level:.4f} eV (file: {op.fermi_level:.4f} eV) -> {pre}.{format}, "
            f"{pre}.{data}")


def write_states(source, prefix=None, *, kpts=None, bands=None, n: int | None = None,
                 around: float | None = None, channel: int = 0, fermi: float | None = None,
                 format: str = "png", force: bool = True, canonical: float | None = None) -> str:
    """Eigenvectors and Mulliken weights of the blocks in ``source`` -> ``<prefix>.h5``
    (:meth:`~hotham.electronic.states.States.save_hdf5`) and a picture of where each of the first
    :data:`STATE_PANELS` states at the first k-point lives (``<prefix>.<format>``).

    ``kpts``: fractional k-points [nk, 3] (default Gamma); ``bands`` (indices, 0-based ascending,
    negative from the top) or ``n`` states nearest ``around`` (eV, default E_F); ``channel``: the
    collinear channel; ``fermi``: Fermi level, eV (default the file's). Returns the summary: per
    state its energy, its three largest atom weights and, for spin-orbit blocks, its spin texture
    <sigma_x, sigma_y, sigma_z>. ``force``: replace existing outputs (False refuses them before
    any work). ``canonical``: a threshold, canonical orthogonalisation
    (:mod:`hotham.electronic.ghosts`). Warns on ghost states.
    """
    _check_numbers(fermi=fermi)
    _check_formats(format)
    if bands is None and n is None:
        raise HothamError("give bands (indices, --bands) or n (the n states nearest around / E_F, --n)")
    pre = _prefix(prefix, source_name(source) + "_states")
    _claim(pre, ("h5", format), [source], force)
    op = _read(source)
    if fermi is not None:
        op.fermi_level = fermi
    kpts = np.asarray(kpts, dtype=float).reshape(-1, 3) if kpts is not None else np.zeros((1, 3))
    if not np.isfinite(kpts).all():
        raise InputError(f"k-points must be finite fractional coordinates, got {kpts[~np.isfinite(kpts).all(1)].tolist()}")
    st = states(op, kpts, bands=bands, n=n, around=around, channel=channel,
                **({} if canonical is None else {"canonical": float(canonical)}))
    st.save_hdf5(f"{pre}.h5")
    from matplotlib.figure import Figure
    nb = min(st.energies.shape[1], STATE_PANELS)
    fig = Figure(figsize=(4.6 * nb, 4.4), layout="tight")
    for b, ax in enumerate(fig.subplots(1, nb, squeeze=False)[0]):
        plot_atom_weights(ax, st, k=0, band=b)
    save_figure(fig, f"{pre}.{format}")
    aw = st.atom_weights
    lines = []
    for q, k in enumerate(kpts):
        for b in range(st.energies.shape[1]):
            top = np.argsort(aw[q, b])[::-1][:3]
            lines.append(f"k=({k[0]:.4f}, {k[1]:.4f}, {k[2]:.4f}) "
                         f"E-E_F={st.energies[q, b] - op.fermi_level:+.4f} eV  largest atom weights: "
                         + ", ".join(f"{i}:{aw[q, b, i]:.3f}" for i in top)
                         + ("" if st.spin is None else "  <sigma> = ({:+.3f}, {:+.3f}, {:+.3f})".format(*st.spin[q, b])))
    lines.append(f"states -> {pre}.h5 (eigenvectors, Mulliken weights), {pre}.{format}")
    return "\n".join(lines)


def write_comparison(model, reference, prefix=None, *, path=None, npoints: int = 150, window=(-2.0, 2.0),
                     align: str = "fermi", fermi: float | None = None, mesh=None, channel: int | None = None,
                     labels=("model", "DFT"), format: str = "png", data: str = "txt",
                     force: bool = True) -> str:
    """Model against reference: block MAE (H and S, when the structures match) and band MAE in an
    energy window, -> an overlay plot ``<prefix>.<format>``, the bands ``<prefix>.txt|h5`` (path
    length, reference bands then model bands, eV relative to the reference E_F, model aligned)
    and the numbers ``<prefix>.json`` ({"H_blocks", "S_blocks", "bands": {"mae_meV", ...},
    "fermi_level": {"model_eV", "reference_eV", "method"}}).

    ``model``, ``reference``: block files; the path (module docstring; "openmx" looks beside the
    reference) is built on the reference's cell, and with a .Band file the reference bands are
    OpenMX's own. ``window`` (eV around the reference E_F) and ``align`` ("fermi", "fit",
    "none"): see :func:`~hotham.electronic.compare.compare_bands`.

    Fermi levels: both sides' by one definition,
    :func:`~hotham.electronic.compare.common_fermi_levels` (each operator's electron count on the
    same ``mesh``; default :func:`~hotham.electronic.kmesh.automatic_mesh` of the reference), never
    the electron-count E_F of one side against the ChemP OpenMX stored for the other. Only when an
    electron count is missing (or the cell is too large for a dense solve) are the files' own
    Fermi levels used (OpenMX's ChemP for a .Band file), and the summary says so. ``fermi``: the
    model's Fermi level, eV, overriding its own. ``labels``: legend names (model, reference).
    Default prefix ``<model>_vs_<reference>``. Two files of different structures (species, cell,
    positions) or spin treatments are refused (:func:`~hotham.electronic.compare.check_comparable`). A model operator whose ``meta["model_val_block_mae_meV"]``
    (written by :func:`hotham.predict`) fails the quality gate gets a
    :class:`~hotham.metrics.QualityWarning`. ``force``: replace existing outputs (False
    refuses them before any work). Returns the summary.
    """
    _check_numbers(fermi=fermi, window=window, mesh=mesh)
    _check_formats(format, data)
    pre = _prefix(prefix, source_name(model) + "_vs_" + source_name(reference))
    _claim(pre, (format, data, "json"), [model, reference], force)
    mod, ref = _read(model), _read(reference)
    check_comparable(mod, ref, (f"the model blocks {model}", f"the reference {reference}"), channel=channel)
    out, lines = {}, []
    model_mae = mod.meta.get("model_val_block_mae_meV")
    if model_mae is not None:
        out["model_val_block_mae_meV"] = model_mae
    try:
        out["H_blocks"] = block_mae(mod, ref, "H")
        out["S_blocks"] = block_mae(mod, ref, "S")
        hb = out["H_blocks"]
        parts = f" (real {hb['real_mae']:.4f}, imaginary {hb['imag_mae']:.4f})" if "imag_mae" in hb else ""
        lines.append(f"blocks: H MAE {hb['mae']:.4f} meV{parts} (max {hb['max']:.4f}) over "
                     f"{out['H_blocks']['n_blocks']} common blocks; S MAE {out['S_blocks']['mae']:.3e}")
    except HothamError as exc:
        lines.append(f"blocks: not compared ({exc})")
    kp, openmx = _kpath(ref, path, reference, npoints)
    if openmx is not None:
        er, ef_r = openmx
    else:
        # (the same LAPACK driver as the model's solve, which computes vectors for its ghost check)
        er, ef_r = solve(ref, kp.kpts, channel=channel, ghosts=True).energies, ref.fermi_level
    eig = solve(mod, kp.kpts, channel=channel, ghosts=True)
    em = eig.energies
    try:
        ef_m, ef_r, mesh = common_fermi_levels(mod, ref, mesh)
        how = f"electron count on the {'x'.join(map(str, mesh))} mesh, both sides"
    except HothamError as exc:
        ef_m = mod.fermi_level
        stored = "OpenMX's ChemP" if openmx is not None else "as stored"
        how = f"the files' own, model as stored, reference {stored}: not one definition ({exc})"
    if fermi is not None:
        ef_m, how = fermi, how + "; model's given"
    out["fermi_level"] = {"model_eV": ef_m, "reference_eV": ef_r, "method": how}
    out["ghost_states"] = warn_ghosts(eig, ef_m, str(model))
    lines.append(f"Fermi levels ({how}): model {ef_m:.4f} eV, reference {ef_r:.4f} eV")
    cmp = compare_bands(em, er, model_fermi=ef_m, ref_fermi=ef_r, window=tuple(window), align=align,
                        x=kp.x, special_x=kp.special_x, labels=kp.labels)
    lines.append(cmp.summary())
    save_figure(band_comparison_figure(cmp, labels=tuple(labels)), f"{pre}.{format}")
    out["bands"] = {"mae_meV": cmp.mae_meV, "max_meV": cmp.max_meV, "n_values": cmp.n_values,
                    "window_eV": list(cmp.window), "shift_eV": cmp.shift, "align": align}
    summary = json.dumps(out, default=str)
    if data == "txt":
        with atomic_path(f"{pre}.txt") as tmp:
            nb = em.shape[1]
            np.savetxt(tmp, np.column_stack([kp.x, cmp.reference, cmp.model]), fmt="%.8f",
                       header=f"hotham compare; columns: x, {nb} reference bands, {nb} model bands "
                              f"(eV relative to E_F, model aligned)\n" + summary)
    else:
        import h5py
        with atomic_path(f"{pre}.h5") as tmp, h5py.File(tmp, "w") as f:
            f["x"], f["reference"], f["model"] = kp.x, cmp.reference, cmp.model
            f.attrs["summary"] = summary
    with atomic_path(f"{pre}.json") as tmp:
        Path(tmp).write_text(json.dumps(out, indent=1, default=str))
    lines.append(f"compare -> {pre}.{format}, {pre}.{data}, {pre}.json")
    return "\n".join(lines)
