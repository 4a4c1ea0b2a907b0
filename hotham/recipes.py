"""The shipped models' recipes: which DFT sets each model trains on, how they are split, and how
its held-out error is measured (``examples/train_model.py``, ``benchmarks/accuracy.py``).

A recipe is a hotham run file ``examples/<name>.yaml`` (model, training budget, seed);
:data:`SOURCES` names its DFT sets (DeepH folders under a data root) and split ratios, the split
seeded with :data:`SPLIT_SEED`. The real OpenMX sets live outside the repository: the data root is
``$HOTHAM_DATA``, else ``../shared/data/deeph`` beside the checkout; the demo's recipe trains on
the cells shipped in ``data/``.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import HothamError

__all__ = ["SOURCES", "SPLIT_SEED", "default_data_root", "recipe_dataset", "held_out_record"]

_CHECKOUT = Path(__file__).resolve().parents[1]
#: recipe name -> (DFT set folders under the data root, train/val/test ratios)
SOURCES = {
    "graphene_hbn": (["graphene_hbn_slid_1x1"], (0.8, 0.1, 0.1)),
    "mos2_bilayer": (["mos2_bilayer_slid_1x1"], (0.8, 0.1, 0.1)),
    "mixed": (["bilayer_graphene_slid_1x1", "graphene_hbn_slid_1x1", "mos2_bilayer_slid_1x1"], (0.8, 0.1, 0.1)),
    # the demo's 12 slid bilayers ship in data/; its held-out check is the twisted bilayer data/tbg_21.79
    "demo_model": (["bilayer_graphene_slid_1x1"], (0.75, 0.25, 0.0)),
}
SPLIT_SEED = 0


def default_data_root() -> Path:
    """Where the DFT sets are: ``$HOTHAM_DATA``, else ``../shared/data/deeph`` beside the checkout."""
    return Path(os.environ.get("HOTHAM_DATA") or _CHECKOUT.parent / "shared" / "data" / "deeph")


def recipe_dataset(name: str, out, *, root=None, split=None) -> tuple[list[str], tuple]:
    """Build the data set of recipe ``name`` into ``out`` (hotham HDF5) from its DFT sets under
    ``root`` (default :func:`default_data_root`; ``data/`` for the demo's recipe), split by its
    ratios or ``split``; returns (the sets, the ratios used)."""
    from .dataset import build_dataset
    if name not in SOURCES:
        raise HothamError(f"no data sources known for the recipe {name!r} (known: {', '.join(SOURCES)}); add it to "
                          "hotham.recipes.SOURCES")
    sets, ratios = SOURCES[name]
    root = Path(_CHECKOUT / "data" if name == "demo_model" else root or default_data_root())
    missing = [s for s in sets if not (root / s).is_dir()]
    if missing:
        raise HothamError(f"{root}: no {', '.join(missing)} (give the folder holding the DFT sets, or $HOTHAM_DATA)")
    ratios = tuple(split or ratios)
    build_dataset([root / s for s in sets], out, split=ratios, seed=SPLIT_SEED, progress=False)
    return sets, ratios


def held_out_record(checkpoint, dataset, split: str) -> dict:
    """Block errors (meV) of ``checkpoint`` on the ``split`` cells of ``dataset``: overall MAE,
    RMSE and max, MAE per species pair, and the structures (:func:`hotham.evaluation.evaluate_split`)."""
    from .evaluation import evaluate_split
    ev = evaluate_split(checkpoint, dataset, split)
    rep = ev["report"]
    if rep is None:
        raise HothamError(f"{dataset}: no structure in the {split} split")
    return {f"{split}_block_mae_meV": rep["all"]["mae"], f"{split}_block_rmse_meV": rep["all"]["rmse"],
            f"{split}_block_max_meV": rep["all"]["max"],
            f"{split}_species_pair_mae_meV": {k: v["mae"] for k, v in rep["species"].items()},
            f"{split}_structures": ev["structures"]}
