"""Model against reference: bands on the same path, and blocks edge by edge.

Band comparison: both band sets are shifted by their own Fermi level (``align="fermi"``), or
the model's by a constant chosen to minimise the MAE inside the window (``align="fit"``,
the median of the differences: the band-shape error), or not at all (``align="none"``). The MAE
is taken over band energies whose *reference* value lies inside ``window`` (eV, relative to the
reference Fermi level), bands matched by index (both sorted ascending, same count).

The two Fermi levels must mean the same thing: :func:`common_fermi_levels` gives both from
:func:`~hotham.electronic.fermi.find_fermi_level` (each side's electron count) on one mesh. A
model's electron-count E_F against OpenMX's stored ChemP would differ even for DFT's own blocks
(OpenMX's ChemP is not mid-gap in an insulator, and its k-mesh is not the same).

Against OpenMX's own bands: :func:`openmx_bands` turns a ``.Band`` file into a path and
reference energies, :func:`band_file_deviation` checks an operator's bands against it (the
test that parsed blocks reproduce the DFT run; :func:`hotham.openmx_check.check_openmx_run` does
that for a run).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError, HothamError
from ..operator import BlockOperator
from .bands import KPath, band_path, path_length
from .fermi import find_fermi_level
from .kmesh import automatic_mesh, mesh_shape
from .solve import eigenvalues


@dataclass
class BandComparison:
    """Result of :func:`compare_bands`; energies in eV, MAE/max in meV."""
    x: np.ndarray
    model: np.ndarray          # [nk, nb], aligned, relative to the reference E_F
    reference: np.ndarray      # [nk, nb], relative to the reference E_F
    window: tuple
    shift: float               # eV added to the model (after its own E_F shift)
    mae_meV: float
    max_meV: float
    n_values: int
    special_x: np.ndarray | None = None
    labels: list | None = None

    def summary(self) -> str:
        return (f"band MAE {self.mae_meV:.3f} meV, max {self.max_meV:.3f} meV over {self.n_values} energies "
                f"within [{self.window[0]:+.2f}, {self.window[1]:+.2f}] eV of E_F (model shift "
                f"{self.shift * 1e3:+.3f} meV)")


def compare_bands(model: np.ndarray, reference: np.ndarray, *, model_fermi: float, ref_fermi: float,
                  window=(-2.0, 2.0), align: str = "fermi", x=None, special_x=None,
                  labels=None) -> BandComparison:
    """Compare band energies [nk, nb] (eV, absolute) on the same k-points."""
    model = np.asarray(model, float)
    reference = np.asarray(reference, float)
    if model.shape != reference.shape:
        raise HothamError(f"band arrays differ in shape: model {model.shape}, reference {reference.shape}")
    ref = reference - ref_fermi
    if align in ("fermi", "fit"):
        if not np.isfinite(model_fermi):
            model_fermi = ref_fermi
        mod = model - model_fermi
    elif align == "none":
        mod = model - ref_fermi
    else:
        raise HothamError(f"unknown alignment {align!r} (fermi, fit, none)")
    lo, hi = window
    inside = (ref >= lo) & (ref <= hi)
    if not inside.any():
        raise HothamError(f"no reference band energy inside the window [{lo}, {hi}] eV around E_F")
    shift = float(np.median((ref - mod)[inside])) if align == "fit" else 0.0
    mod = mod + shift
    d = np.abs(mod - ref)[inside]
    x = np.arange(len(ref), dtype=float) if x is None else np.asarray(x, float)
    return BandComparison(x, mod, ref, (lo, hi), shift, 1e3 * float(d.mean()), 1e3 * float(d.max()),
                          int(inside.sum()), special_x, labels)


def check_comparable(model: BlockOperator, reference: BlockOperator, names=("model", "reference"),
                     channel=None) -> None:
    """Raise :class:`~hotham.errors.HothamError` unless two operators describe one structure in
    one spin treatment: the same species, cell and positions
    (:func:`hotham.cell.structure_difference`, within :data:`hotham.cell.SAME_STRUCTURE_TOL`),
    and both with spin-orbit coupling or both without; a collinear operator against a spin-less
    one only with a ``channel`` (0 up, 1 down). A band MAE between different structures would be
    a number without meaning."""
    from ..cell import SAME_STRUCTURE_TOL, structure_difference
    na, nb = names
    why = structure_difference(model.atoms, reference.atoms, names=names)
    if why:
        raise HothamError(f"{na} and {nb} are not the same structure ({why}; tolerance {SAME_STRUCTURE_TOL:g} A): "
                          f"compare a prediction with the DFT of the structure it was made for")
    if (model.spin == "soc") != (reference.spin == "soc"):
        def spin(op):
            return ("spin-orbit coupling (spinor blocks, 2 states per orbital)" if op.spin == "soc" else
                    f"no spin-orbit coupling (spin {op.spin!r})")
        raise HothamError(f"{na} has {spin(model)} but {nb} has {spin(reference)}: their bands cannot be matched; "
                          "compare SOC with SOC (a model trained on SOC data) or spin-less with spin-less")
    if channel is None and (model.spin == "collinear") != (reference.spin == "collinear"):
        col, other = (na, nb) if model.spin == "collinear" else (nb, na)
        raise HothamError(f"{col} is spin-polarised (collinear: two spin channels) but {other} is spin-less: give "
                          f"a channel to compare (--channel 0 for spin up, 1 for spin down; channel= in Python)")


def common_fermi_levels(model: BlockOperator, reference: BlockOperator, mesh=None) -> tuple[float, float, tuple]:
    """The Fermi levels (eV) of two operators of one structure by one definition:
    :func:`~hotham.electronic.fermi.find_fermi_level` (each operator's own electron count, 300 K)
    on the same Gamma-centred mesh, ``mesh`` ((n1, n2, n3) or a scalar n) or
    :func:`~hotham.electronic.kmesh.automatic_mesh` of the reference's structure.

    Returns ``(model E_F, reference E_F, (n1, n2, n3))``; raises :class:`~hotham.errors.HothamError`
    when either cannot be found (no electron count, too many orbitals for a dense solve)."""
    mesh = automatic_mesh(reference.atoms) if mesh is None else mesh_shape(reference.atoms, mesh)
    return find_fermi_level(model, mesh), find_fermi_level(reference, mesh), mesh


def compare_operator_bands(model: BlockOperator, reference: BlockOperator, path=None, *, npoints: int = 150,
                           window=(-2.0, 2.0), align: str = "fermi", channel=None, mesh=None) -> BandComparison:
    """Bands of two operators of the same structure on one path (auto path by default), each
    side at its Fermi level from :func:`common_fermi_levels` on ``mesh``; refused
    (:func:`check_comparable`) when they are not one structure in one spin treatment."""
    check_comparable(model, reference, channel=channel)
    kp = band_path(reference.atoms, path, npoints)
    em = eigenvalues(model, kp.kpts, channel=channel)
    er = eigenvalues(reference, kp.kpts, channel=channel)
    ef_m, ef_r, _ = common_fermi_levels(model, reference, mesh)
    return compare_bands(em, er, model_fermi=ef_m, ref_fermi=ef_r, window=window, align=align,
                         x=kp.x, special_x=kp.special_x, labels=kp.labels)


def block_mae(a: BlockOperator, b: BlockOperator, which: str = "H") -> dict:
    """Element-wise MAE between the blocks of two operators on the same structure (meV for H).

    Blocks are matched by (i, j, R); blocks present in only one operator are counted, not
    compared. Returns {"mae", "max", "units", "n_blocks", "only_a", "only_b", "per_pair": {"C-C": mae}},
    for spin-orbit H also "real_mae" and "imag_mae" (the real and imaginary parts of the spinor
    elements; "mae" pools them); :func:`hotham.metrics.block_errors` has the full breakdown (RMSE,
    orbital pairs).
    """
    from ..metrics import block_errors
    try:
        rep = block_errors(a, b, which)
    except ValueError as exc:
        raise HothamError(str(exc)) from None
    return {"mae": rep["all"]["mae"], "max": rep["all"]["max"], "units": rep["units"], "n_blocks": rep["blocks"],
            "only_a": rep["only_pred"], "only_b": rep["only_ref"],
            "per_pair": {p: e["mae"] for p, e in rep["species"].items()},
            **{f"{part}_mae": e["mae"] for part, e in rep["part"].items()}}


def _band_data(band_file):
    """``(kpts, eigenvalues [nspin, nk, nb] eV, info)`` of a ``.Band`` file, or the tuple itself
    when :func:`hotham.io.read_openmx_band` already read it."""
    if isinstance(band_file, tuple):
        return band_file
    from ..io import read_openmx_band
    return read_openmx_band(band_file)


def band_file_beside(source) -> Path | None:
    """The OpenMX ``.Band`` (or ``.Band.gz``) file in the folder ``source`` or beside the file
    ``source`` (the first by name), or None when there is none."""
    p = Path(source)
    folder = p if p.is_dir() else p.parent
    found = sorted(folder.glob("*.Band")) + sorted(folder.glob("*.Band.gz"))
    return found[0] if found else None


def openmx_bands(atoms, band_file):
    """The path and bands of an OpenMX ``.Band`` file (a path, or the tuple
    :func:`hotham.io.read_openmx_band` returns).

    Returns ``(KPath, energies, chemical potential)``: the :class:`~hotham.electronic.bands.KPath`
    of the file's k-points (path length from the cell of ``atoms``, 1/Angstrom; the file's special
    points and labels), ``energies`` [nk, nspin * nb] eV absolute (collinear channels
    concatenated, up first, as :func:`~hotham.electronic.solve.eigenvalues` orders them) and the
    file's chemical potential (eV).
    """
    kpts, eig, info = _band_data(band_file)
    x = path_length(atoms, kpts)
    li = info.get("label_index")
    sx = x[np.asarray(li)] if li is not None else x[[0, -1]]
    labels = [("Γ" if s == "G" else s) for s in info.get("labels", [])] or ["", ""]
    kp = KPath(np.asarray(kpts), x, sx, labels[:len(sx)])
    return kp, np.concatenate(list(eig), axis=1), float(info["chemp"])


def band_errors(model: BlockOperator, reference: BlockOperator, band_file, *, window=(-2.0, 2.0),
                mesh=None) -> dict:
    """The bands of ``model`` against OpenMX's own bands of the same structure (``band_file``: a
    ``.Band`` file, on its k-points), two ways: each side at its own Fermi level (``"fermi"``;
    both from :func:`common_fermi_levels` on ``mesh``, OpenMX's side from ``reference``'s blocks
    and electron count) and after the best constant shift (``"fit"``: the band-shape error).
    ``window``: eV around the reference E_F.

    Returns ``{"band_file", "mesh", "fermi_level_model_eV", "fermi_level_reference_eV",
    "window_eV", "fermi": {"mae_meV", "max_meV", "n_values", "shift_meV"}, "fit": {...}}``
    (``shift_meV``: the constant added to the model, 0 for "fermi"). Raises HothamError when the
    bands or Fermi levels cannot be compared."""
    kp, e_ref, _ = openmx_bands(reference.atoms, band_file)
    e_model = eigenvalues(model, kp.kpts)
    ef_m, ef_r, mesh = common_fermi_levels(model, reference, mesh)
    out = {"band_file": str(band_file), "mesh": list(mesh), "fermi_level_model_eV": ef_m,
           "fermi_level_reference_eV": ef_r, "window_eV": list(window)}
    for align in ("fermi", "fit"):
        c = compare_bands(e_model, e_ref, model_fermi=ef_m, ref_fermi=ef_r, window=window, align=align)
        out[align] = {"mae_meV": c.mae_meV, "max_meV": c.max_meV, "n_values": c.n_values, "shift_meV": 1e3 * c.shift}
    return out


def band_file_deviation(op: BlockOperator, band_file) -> dict:
    """The bands of ``op`` against an OpenMX ``.Band`` file on its own k-points.

    ``band_file``: a path, or the tuple :func:`hotham.io.read_openmx_band` returns. The bands
    come from :func:`~hotham.electronic.solve.eigenvalues` (all bands, lattice gauge, as OpenMX).
    Returns ``{"max_abs_eV"`` (over all bands, k and spin), ``"window_max_abs_eV"`` (bands whose
    reference lies within 5 eV of the chemical potential), ``"min_eig_S"`` (smallest eigenvalue
    of S(k) on the file's k-points), ``"nk", "nband"`` (per spin block), ``"nspin"}``. Raises
    :class:`~hotham.errors.FormatError` when the file's band or spin-block count does not fit
    the operator.
    """
    from .hk import Assembler
    kpts, eig, info = _band_data(band_file)
    name = None if isinstance(band_file, tuple) else band_file
    asm = Assembler(op)
    if eig.shape[2] != asm.size:
        raise FormatError(name, f".Band file has {eig.shape[2]} bands per spin block, the "
                                f"operator {asm.size} orbitals")
    nspin = 2 if op.spin == "collinear" else 1
    if eig.shape[0] != nspin:
        raise FormatError(name, f".Band file has {eig.shape[0]} spin blocks, the operator {nspin}")
    ref = np.concatenate(list(eig), axis=1)
    d = np.abs(eigenvalues(op, kpts) - ref)
    near = np.abs(ref - info["chemp"]) < 5.0
    return {"max_abs_eV": float(d.max()), "window_max_abs_eV": float(d[near].max()) if near.any() else 0.0,
            "min_eig_S": float(np.linalg.eigvalsh(asm.dense(kpts, "S")).min()), "nk": len(kpts),
            "nband": eig.shape[2], "nspin": nspin}
