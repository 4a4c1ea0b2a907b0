"""Every plot of the electronic layer: plain functions that draw on a matplotlib ``ax``.

Each function takes the axes to draw on first and returns it, so pictures compose (bands of
two operators on one ``ax``, several states side by side). A new figure needs no pyplot (and
so no display or backend choice)::

    from matplotlib.figure import Figure
    fig = Figure(figsize=(5, 4.5), layout="tight")
    plot_bands(fig.subplots(), band_structure(op))
    save_figure(fig, "bands.png")

Energies on the axes are eV, relative to the Fermi level where one is known; k along band
paths is the cumulative path length (1/Angstrom, 2 pi included), positions Angstrom.
"""
from __future__ import annotations

import textwrap

from pathlib import Path

import numpy as np

__all__ = ["plot_bands", "plot_dos", "plot_band_comparison", "plot_band_errors", "band_comparison_figure",
           "plot_atom_weights", "save_figure", "plot_window_bands", "plot_window_dos", "plot_weight_map",
           "moire_sites"]


def _draw_kpath(ax, x, special_x, labels):
    """Vertical lines and tick labels at the special points of a band path (x [nk], 1/Angstrom)."""
    for xs in special_x:
        ax.axvline(xs, color="0.6", lw=0.6)
    ax.set_xticks(special_x)
    ax.set_xticklabels(labels or [])
    ax.set_xlim(x[0], x[-1])


def plot_bands(ax, bands, window=(-5.0, 5.0), color="k", label=None, shift=True, **kw):
    """Bands of a :class:`~hotham.electronic.bands.BandStructure` along its path.

    ``shift``: energies relative to the Fermi level (when finite), else absolute eV.
    ``window``: energy range shown (eV, on the plotted scale; None keeps matplotlib's).
    Collinear channels are drawn solid (up) and dashed (down); a partial spectrum (the n states
    nearest an energy, a different subset at each k) is drawn as points, since joining its
    columns would draw false band crossings. ``label`` names the first line of each channel
    for a legend; ``kw`` goes to ``ax.plot`` (a ``ls`` / ``linestyle`` there replaces the
    default one). Returns ``ax``.
    """
    e0 = bands.fermi_level if (shift and np.isfinite(bands.fermi_level)) else 0.0
    E = bands.energies - e0
    styles = ["-", "--"]
    groups = [(None, np.arange(E.shape[1]))] if bands.channel is None else \
        [(s, np.flatnonzero(bands.channel == s)) for s in np.unique(bands.channel)]
    for gi, (s, cols) in enumerate(groups):
        if bands.partial:
            style = dict(ls="none", marker="o" if gi == 0 else "x", ms=1.8)
        else:
            style = dict(lw=1.0, ls=styles[gi % 2])
        if "linestyle" in kw or "ls" in kw:        # a style asked for (e.g. a dashed model over DFT) wins
            style.pop("ls")
        lines = ax.plot(bands.path.x, E[:, cols], color=color, **style, **kw)
        if label is not None:
            lines[0].set_label(label if s is None else f"{label} ({'up' if s == 0 else 'down'})")
    _draw_kpath(ax, bands.path.x, bands.path.special_x, bands.path.labels)
    ax.axhline(0.0 if e0 else (bands.fermi_level if np.isfinite(bands.fermi_level) else 0.0),
               color="0.4", lw=0.6, ls=":")
    if window is not None:
        ax.set_ylim(*window)
    ax.set_ylabel("E - E_F (eV)" if e0 else "E (eV)")
    return ax


def plot_dos(ax, dos, window=(-5.0, 5.0)):
    """Total DOS of a :class:`~hotham.electronic.dos.DOS` (shaded) and its projections (lines),
    states/eV/cell against E - E_F (eV; absolute E without a Fermi level), within ``window``
    (eV; None keeps matplotlib's range). Returns ``ax``."""
    e0 = dos.fermi_level if np.isfinite(dos.fermi_level) else 0.0
    x = dos.energies - e0
    ax.fill_between(x, dos.total, color="0.85", label="total")
    ax.plot(x, dos.total, color="k", lw=1.0)
    for name, y in dos.projected.items():
        ax.plot(x, y, lw=1.0, label=name)
    ax.axvline(0.0, color="0.4", ls=":", lw=0.8)
    if window is not None:
        ax.set_xlim(*window)
        m = (x >= window[0]) & (x <= window[1])
        if m.any():
            ax.set_ylim(0, 1.05 * dos.total[m].max())
    ax.set_xlabel("E - E_F (eV)" if np.isfinite(dos.fermi_level) else "E (eV)")
    ax.set_ylabel("DOS (states / eV / cell)")
    ax.legend(fontsize=8)
    return ax


def plot_band_comparison(ax, comparison, labels=("model", "DFT")):
    """Overlay of a :class:`~hotham.electronic.compare.BandComparison`: reference solid black,
    model dashed red (both eV relative to the reference E_F, model aligned), the MAE window
    shaded. ``labels``: legend names of (model, reference). Returns ``ax``."""
    c = comparison
    r = ax.plot(c.x, c.reference, color="k", lw=1.2)
    m = ax.plot(c.x, c.model, color="tab:red", lw=1.0, ls="--")
    r[0].set_label(labels[1])
    m[0].set_label(labels[0])
    ax.axhspan(*c.window, color="tab:blue", alpha=0.06, lw=0)
    ax.axhline(0, color="0.4", ls=":", lw=0.6)
    if c.special_x is not None:
        _draw_kpath(ax, c.x, c.special_x, c.labels)
    ax.set_xlim(c.x[0], c.x[-1])
    lo, hi = c.window
    ax.set_ylim(lo - 1.0, hi + 1.0)
    ax.set_ylabel("E - E_F (eV)")
    ax.set_title(f"MAE {c.mae_meV:.2f} meV in window", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_band_errors(ax, comparison):
    """Error of every band of a :class:`~hotham.electronic.compare.BandComparison` along its
    path: model minus reference (meV), one line per band, drawn where the reference band lies
    inside the comparison window (the energies its MAE counts). Returns ``ax``."""
    c = comparison
    inside = (c.reference >= c.window[0]) & (c.reference <= c.window[1])
    err = np.where(inside, 1e3 * (c.model - c.reference), np.nan)[:, inside.any(axis=0)]   # [nk, bands], meV
    ax.axhline(0, color="0.4", lw=0.6)
    ax.plot(c.x, err, lw=0.9)
    if c.special_x is not None:
        _draw_kpath(ax, c.x, c.special_x, c.labels)
    ax.set_xlim(c.x[0], c.x[-1])
    ax.set_ylabel("model − DFT (meV)")
    return ax


def band_comparison_figure(comparison, labels=("model", "DFT"), title: str | None = None):
    """The picture of a band comparison: the bands (reference solid, model dashed;
    :func:`plot_band_comparison`) above the error of each band (:func:`plot_band_errors`) on a
    shared k axis. Returns the matplotlib ``Figure`` (save it with :func:`save_figure`)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(5.2, 5.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.2))
    plot_band_comparison(top, comparison, labels=labels)
    top.set_title(title or "", fontsize=9)
    top.tick_params(labelbottom=False)
    plot_band_errors(bottom, comparison)
    bottom.set_xlabel("k along the band path (1/Å)")
    bottom.set_title(f"error per band within [{comparison.window[0]:g}, {comparison.window[1]:g}] eV of E_F: "
                     f"MAE {comparison.mae_meV:.2f} meV, max {comparison.max_meV:.2f} meV", fontsize=8)
    return fig


def plot_atom_weights(ax, states, k: int = 0, band: int = 0, scale: float = 400.0):
    """Where a state lives: top view of the cell (x, y in Angstrom), each atom a disc of area
    proportional to the state's Mulliken weight on it (largest = ``scale`` points^2), coloured
    by height z (Angstrom, colour bar beside ``ax``).

    ``states``: :class:`~hotham.electronic.states.States`; ``k``, ``band``: indices into its
    k-points and bands. Returns ``ax``.
    """
    op = states.op
    w = states.atom_weights[k, band]
    pos = op.atoms.get_positions(wrap=True)        # draw every atom inside the cell
    ax.scatter(pos[:, 0], pos[:, 1], s=4, c="0.7", zorder=1)
    sc = ax.scatter(pos[:, 0], pos[:, 1], s=scale * w / max(w.max(), 1e-300), c=pos[:, 2],
                    cmap="coolwarm", alpha=0.8, edgecolors="k", linewidths=0.3, zorder=2)
    cell = np.asarray(op.atoms.cell)
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ cell[:2, :2]
    ax.plot(corners[:, 0], corners[:, 1], color="0.5", lw=0.8)
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    e = states.energies[k, band] - (op.fermi_level if np.isfinite(op.fermi_level) else 0.0)
    kk = states.kpts[k]
    ax.set_title(f"state {band if states.bands is None else states.bands[band]} at k = "
                 f"({kk[0]:.3g}, {kk[1]:.3g}, {kk[2]:.3g}), E - E_F = {e:.3f} eV", fontsize=9)
    ax.figure.colorbar(sc, ax=ax, label="z (Å)", shrink=0.8)
    return ax


def save_figure(fig, path, dpi: int = 150) -> None:
    """Write ``fig`` to ``path`` atomically (:func:`hotham.files.atomic_path`), in the format of
    the suffix (png, pdf, svg, ...; png without one), at ``dpi`` for raster formats."""
    from ..files import atomic_path
    suffix = Path(path).suffix.lstrip(".") or "png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, dpi=dpi)


# ---------------------------------------------------------------------- moire pictures: a window model
def plot_window_bands(ax, path, bands, reference=None, unit: str = "meV", color="C3", label="model",
                      reference_label="direct solves", fermi: float | None = None):
    """Bands of a :class:`~hotham.electronic.interpolation.WindowModel` along a dense path: lines
    through every k of ``path`` (:class:`~hotham.electronic.bands.KPath`) from ``bands``
    (:class:`~hotham.electronic.interpolation.InterpolatedBands` on ``path.kpts``), relative to
    E_F (``fermi`` eV, default ``bands.fermi_level``) in ``unit`` ("meV" or "eV").
    ``reference``: (x [nr] 1/Angstrom along the path, energies [nr, m] eV) of direct solves,
    drawn as open circles over the lines, labelled ``reference_label`` (exact solves of the same H, or
    DFT). Returns ``ax``."""
    scale = 1e3 if unit == "meV" else 1.0
    ef = bands.fermi_level if fermi is None else float(fermi)
    e0 = ef if np.isfinite(ef) else 0.0
    lines = ax.plot(path.x, scale * (bands.energies - e0), color=color, lw=1.1)
    lines[0].set_label(label)
    if reference is not None:
        xr, er = reference
        pts = ax.plot(np.repeat(np.asarray(xr)[:, None], np.shape(er)[1], 1), scale * (np.asarray(er) - e0), "o",
                      mfc="none", mec="k", ms=4, mew=0.8)
        pts[0].set_label(reference_label)
    _draw_kpath(ax, path.x, path.special_x, path.labels)
    ax.axhline(0.0, color="0.4", lw=0.6, ls=":")
    ax.set_ylabel(f"E − E_F ({unit})" if np.isfinite(ef) else f"E ({unit})")
    ax.legend(fontsize=8, loc="upper right")
    return ax


def plot_window_dos(ax, dos, unit: str = "meV", color="C0"):
    """DOS of a window model on a k mesh (:class:`~hotham.electronic.interpolation.WindowDOS`):
    total (shaded) and projections (lines), states / eV / cell against E − E_F in ``unit``,
    labelled with its mesh, broadening and window; outside the window where it is complete the
    curve is grey and the range is hatched. Returns ``ax``."""
    scale = 1e3 if unit == "meV" else 1.0
    e0 = dos.fermi_level if np.isfinite(dos.fermi_level) else 0.0
    x = scale * (dos.energies - e0)
    lo, hi = (scale * (w - e0) for w in dos.window)
    inside = (x >= lo) & (x <= hi)
    ax.fill_between(x, dos.total, where=inside, color=color, alpha=0.25, lw=0)
    ax.plot(np.where(inside, x, np.nan), dos.total, color=color, lw=1.1, label="total")
    ax.plot(np.where(inside, np.nan, x), dos.total, color="0.6", lw=0.8)
    for name, y in dos.projected.items():
        ax.plot(np.where(inside, x, np.nan), y, lw=0.9, label=name)
    for a, b in ((x[0], lo), (hi, x[-1])):
        ax.axvspan(a, b, facecolor="none", edgecolor="0.8", hatch="///", lw=0)
    ax.axvline(0.0, color="0.4", ls=":", lw=0.8)
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(0, 1.05 * max(float(dos.total[inside].max(initial=0.0)), 1e-12))
    ax.set_xlabel(f"E − E_F ({unit})")
    ax.set_ylabel("DOS (states / eV / cell)")
    # the label (mesh, broadening, window) wrapped to the width of a side panel
    ax.set_title(textwrap.fill(dos.label, 42), fontsize=8)
    ax.legend(fontsize=8)
    return ax


def moire_sites(cell) -> dict:
    """Cartesian (x, y) positions (Angstrom) of the stacking regions of a twisted bilayer built by
    turning one layer about a common atom at the origin (hotham.workflows.generate_twisted): AA at
    the corners of the moire cell, AB and BA at the centres of its two triangles."""
    a1, a2 = np.asarray(cell)[0, :2], np.asarray(cell)[1, :2]
    if a1 @ a2 > 0:                                  # 60 degrees between the vectors
        t1, t2 = (a1 + a2) / 3, 2 * (a1 + a2) / 3
    else:                                            # 120 degrees
        t1, t2 = (2 * a1 + a2) / 3, (a1 + 2 * a2) / 3
    return {"AA": np.zeros(2), "AB": t1, "BA": t2}


def plot_weight_map(ax, atoms, weights, mask=None, cmap="magma", title=None, colorbar=True):
    """Where a band group lives, as a smooth field: the weight per atom (``weights`` [n_atoms],
    e.g. :meth:`WindowModel.group_weights`) of the atoms in ``mask`` (a layer), divided by the
    layer's mean so that 1 is a uniform spread, interpolated over the plane (``tripcolor``,
    Gouraud shading, with the periodic images that cover the cell), with the moire cell and its
    AA / AB / BA regions marked. x, y in Angstrom. Returns ``ax``."""
    from matplotlib.tri import Triangulation
    pos = atoms.get_positions(wrap=True)[:, :2]
    w = np.asarray(weights, float)
    sel = np.ones(len(w), bool) if mask is None else np.asarray(mask, bool)
    p, v = pos[sel], w[sel] / max(w[sel].mean(), 1e-300)
    cell = np.asarray(atoms.cell)[:2, :2]
    shifts = np.array([[i, j] for i in (-1, 0, 1) for j in (-1, 0, 1)]) @ cell
    P = (p[None] + shifts[:, None]).reshape(-1, 2)
    V = np.tile(v, len(shifts))
    # keep the images within 15% of the cell around it
    frac = np.linalg.solve(cell.T, P.T).T
    near = np.all((frac > -0.15) & (frac < 1.15), axis=1)
    tpc = ax.tripcolor(Triangulation(P[near, 0], P[near, 1]), V[near], shading="gouraud", cmap=cmap,
                       rasterized=True)
    corners = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]) @ cell
    ax.plot(corners[:, 0], corners[:, 1], color="w", lw=1.0)
    for name, xy in moire_sites(np.asarray(atoms.cell)).items():
        for s in ([0, 0], [1, 0], [0, 1], [1, 1]) if name == "AA" else ([0, 0],):
            q = xy + np.asarray(s) @ cell
            ax.plot(*q, marker="o" if name == "AA" else ("^" if name == "AB" else "v"), ms=6, mfc="none",
                    mec="c", mew=1.2)
        ax.annotate(name, xy, xytext=(4, 4), textcoords="offset points", color="c", fontsize=8)
    lo, hi = corners.min(0), corners.max(0)
    pad = 0.05 * (hi - lo)
    ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
    ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    ax.set_aspect("equal")
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    if title:
        ax.set_title(title, fontsize=9)
    if colorbar:
        ax.figure.colorbar(tpc, ax=ax, shrink=0.8, label="weight / layer mean")
    return ax
