"""The shipped models' recipes: which DFT sets each model trains on, how they are split, and how
its held-out error is measured (``examples/train_model.py``, ``benchmarks/accuracy.py``).

A recipe is a hotham run file ``examples/<name>.yaml`` (model, training budget, seed);
:data:`SOURCES` names its DFT sets, split ratios and spin treatment, the split seeded with
:data:`SPLIT_SEED`. A set is a DeepH folder under a data root, or a compact hotham data set
shipped in ``data/sets/`` (a name ending in ``.h5``: the strained, uniaxial, thermal and 2H/3R
sets of ``examples/dft_sets.py``). The real OpenMX folders live outside the repository: the data
root is an argument (``root``, ``--data-root``) or ``$HOTHAM_DATA``; with neither,
:func:`default_data_root` says so (:class:`~hotham.errors.HothamError`). The demo's recipe trains
on cells shipped in ``data/`` only.

Spin-orbit recipes (spin "soc") are measured as well by what SOC is for: the block MAE of the
real and imaginary parts of the spinor elements and the SOC splitting of the top valence band at
K, model against DFT, on the held-out cells (:func:`held_out_record`, :func:`hotham.evaluation.soc_errors`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from .errors import HothamError

__all__ = ["Recipe", "SOURCES", "SPLIT_SEED", "default_data_root", "recipe_dataset", "held_out_record", "set_mae"]

_CHECKOUT = Path(__file__).resolve().parents[1]
#: the compact data sets shipped with the checkout (``name.h5`` in a recipe)
SHIPPED_SETS = _CHECKOUT / "data" / "sets"


class Recipe(NamedTuple):
    """The data of a recipe: DFT set folders under the data root (or ``name.h5``: a set shipped in
    ``data/sets/``), train/val/test ratios, and the spin treatment of the data set ("none" or "soc")."""
    sets: list
    split: tuple
    spin: str = "none"


#: recipe name -> its :class:`Recipe`
SOURCES = {
    # the 20 slid cells, then (fine-tuning, examples/graphene_hbn.yaml) 30 cells under -4..+4 % strain,
    # then those with 16 uniaxially strained cells and 8 noisy 2x2 cells
    "graphene_hbn": Recipe(["graphene_hbn_slid_1x1", "graphene_hbn_strain.h5", "graphene_hbn_uniaxial.h5",
                            "graphene_hbn_thermal.h5"], (0.8, 0.1, 0.1)),
    # the 16 slid bilayers, then (fine-tuning, examples/mos2_bilayer.yaml) 2H and parallel bilayers
    # under -4..+4 % strain and Mo-Mo 6.0-6.9 A
    "mos2_bilayer": Recipe(["mos2_bilayer_slid_1x1", "mos2_2h_strain.h5", "mos2_par_strain.h5"], (0.8, 0.1, 0.1)),
    # the slid cells of the three chemistries, then (fine-tuning, examples/mixed.yaml) every strained,
    # uniaxial, thermal, 2H and parallel set of the three
    "mixed": Recipe(["bilayer_graphene_slid_1x1", "graphene_hbn_slid_1x1", "mos2_bilayer_slid_1x1",
                     "bilayer_graphene_strain.h5", "bilayer_graphene_uniaxial.h5", "bilayer_graphene_thermal.h5",
                     "graphene_hbn_strain.h5", "mos2_2h_strain.h5", "mos2_par_strain.h5"], (0.8, 0.1, 0.1)),
    # the demo's 12 slid bilayers (data/) and the strained, uniaxial and thermal sets of data/sets;
    # its held-out checks: their test cells and the twisted bilayer data/tbg_21.79
    "demo_model": Recipe(["bilayer_graphene_strain.h5", "bilayer_graphene_uniaxial.h5", "bilayer_graphene_thermal.h5",
                          "bilayer_graphene_slid_1x1"], (0.8, 0.1, 0.1)),
    # 12 strained and perturbed MoS2 monolayers, non-collinear with SOC, and the SOC bilayers of
    # data/sets/mos2_soc_bilayer.h5: the second stage of a cascade over mos2_bilayer.pt (examples/mos2_soc.yaml)
    "mos2_soc": Recipe(["mos2_soc_1x1", "mos2_soc_bilayer.h5"], (0.7, 0.15, 0.15), "soc"),
}
SPLIT_SEED = 0


def default_data_root() -> Path:
    """Where the DFT sets are when no root is given: ``$HOTHAM_DATA``; HothamError without it."""
    root = os.environ.get("HOTHAM_DATA")
    if not root:
        raise HothamError("no data root: give the folder holding the DFT sets (root=..., --data-root DIR) "
                          "or set $HOTHAM_DATA")
    return Path(root)


def recipe_dataset(name: str, out, *, root=None, split=None, extra=(), shipped_sets: bool = True
                   ) -> tuple[list[str], tuple]:
    """Build the data set of recipe ``name`` into ``out`` (hotham HDF5) from its DFT sets under
    ``root`` (default :func:`default_data_root`: ``$HOTHAM_DATA``; ``data/`` for the demo's recipe) and the folders
    ``extra`` (more cells: the CI's small sets), split by its ratios or ``split``, with its spin
    treatment; returns (the sets, the ratios used). ``shipped_sets=False`` leaves out the sets
    of ``data/sets/`` (a quick check on a few cells)."""
    from .dataset import build_dataset
    if name not in SOURCES:
        raise HothamError(f"no data sources known for the recipe {name!r} (known: {', '.join(SOURCES)}); add it to "
                          "hotham.recipes.SOURCES")
    sets, ratios, spin = SOURCES[name]
    sets = [s for s in sets if shipped_sets or not s.endswith(".h5")]
    folders = [s for s in sets if not s.endswith(".h5")]
    root = Path(_CHECKOUT / "data" if name == "demo_model" else root or default_data_root()) if folders else None
    sources = [SHIPPED_SETS / s if s.endswith(".h5") else root / s for s in sets]
    missing = [p.name for p in sources if not (p.is_file() if p.suffix == ".h5" else p.is_dir())]
    if missing:
        raise HothamError(f"{root or SHIPPED_SETS}: no {', '.join(missing)} (give the folder holding the "
                          "DFT sets: root=..., --data-root or $HOTHAM_DATA)")
    ratios = tuple(split or ratios)
    # each set of a mixed recipe split on its own: it holds out the cells its single-set recipes
    # hold out (``extra`` cells, the CI's second cell of a one-cell set, join their set's split)
    build_dataset(sources + [Path(e) for e in extra], out, split=ratios, seed=SPLIT_SEED,
                  spin=spin, progress=False, split_by_source=len(sets) > 1 and not extra)
    return sets, ratios


def set_mae(per_structure: dict) -> dict:
    """Block MAE (meV) of the cells of each set, over all their elements: ``per_structure`` maps
    names ``<set>__<cell>`` to {"mae", "n"} (:func:`hotham.evaluation.evaluate_split`)."""
    sums: dict[str, list] = {}
    for name, e in per_structure.items():
        s = sums.setdefault(name.rsplit("__", 1)[0], [0.0, 0])
        s[0] += e["mae"] * e["n"]
        s[1] += e["n"]
    return {k: total / n for k, (total, n) in sorted(sums.items())}


def held_out_record(checkpoint, dataset, split: str) -> dict:
    """Block errors (meV) of ``checkpoint`` on the ``split`` cells of ``dataset``: overall MAE,
    RMSE and max, MAE per species pair, and the structures (:func:`hotham.evaluation.evaluate_split`);
    for a spin-orbit data set also the MAE of the real and imaginary parts and the SOC splitting
    at K, model and DFT per cell (:func:`hotham.evaluation.soc_errors`)."""
    from .evaluation import evaluate_split
    ev = evaluate_split(checkpoint, dataset, split)
    rep = ev["report"]
    if rep is None:
        raise HothamError(f"{dataset}: no structure in the {split} split")
    record = {f"{split}_block_mae_meV": rep["all"]["mae"], f"{split}_block_rmse_meV": rep["all"]["rmse"],
              f"{split}_block_max_meV": rep["all"]["max"],
              f"{split}_species_pair_mae_meV": {k: v["mae"] for k, v in rep["species"].items()},
              f"{split}_structures": ev["structures"]}
    by_set = set_mae(ev["per_structure"])
    if len(by_set) > 1:
        record[f"{split}_set_mae_meV"] = by_set
    from .dataset import Dataset
    with Dataset(dataset) as ds:
        if ds.spin == "soc":
            from .evaluation import soc_errors
            soc = soc_errors(checkpoint, [ds[n] for n in ev["structures"]])
            record.update({"held_out_real_mae_meV": soc["real_mae_meV"],
                           "held_out_imag_mae_meV": soc["imag_mae_meV"],
                           "soc_splitting_K_meV": {Path(k).name: v for k, v in soc["splitting"].items()},
                           "soc_splitting_K_max_error_meV": soc["splitting_max_error_meV"]})
    return record
