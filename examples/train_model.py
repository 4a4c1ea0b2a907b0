"""Train a shipped model from its recipe, and record how good it is on held-out cells.

    python examples/train_model.py examples/graphene_hbn.yaml     # data/models/graphene_hbn.pt + .json
    python examples/train_model.py examples/mos2_bilayer.yaml     # data/models/mos2_bilayer.pt + .json
    python examples/train_model.py examples/mixed.yaml            # graphene, graphene/hBN and MoS2 in one model
    python examples/train_model.py examples/demo_model.yaml       # the demo's model (data/models/bilayer_graphene.pt)
    python examples/train_model.py RECIPE.yaml --quick            # 3 epochs into a temporary folder (CI)
    python examples/train_model.py RECIPE.yaml --record-only      # re-measure the shipped checkpoint, rewrite its record

A recipe is a hotham run file (``hotham train RECIPE.yaml``: model, training budget, seed). Which
DFT sets it trains on and how they are split is :data:`SOURCES` (by the recipe's name): the
script builds the data set from those folders with a seeded train/val/test split, trains with
:func:`hotham.train.train_from_file`, and writes the checkpoint and its record
``data/models/<output>.json``: the block MAE (meV) of the held-out test cells, overall and per
species pair, the validation MAE, epochs, parameters, wall time, threads, machine, date, command.

The real OpenMX sets live outside the repository: ``--data-root`` (default ``$HOTHAM_DATA``, else
``../shared/data/deeph`` beside the checkout) holds ``graphene_hbn_slid_1x1/``,
``mos2_bilayer_slid_1x1/``, ``bilayer_graphene_slid_1x1/``. The demo's recipe trains on the
cells shipped in ``data/``; ``--quick`` trains the others on the few cells of their sets shipped in
``tests/data/deeph``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: recipe name -> (DFT set folders under the data root, train/val/test ratios); split seed 0
SOURCES = {
    "graphene_hbn": (["graphene_hbn_slid_1x1"], (0.8, 0.1, 0.1)),
    "mos2_bilayer": (["mos2_bilayer_slid_1x1"], (0.8, 0.1, 0.1)),
    "mixed": (["bilayer_graphene_slid_1x1", "graphene_hbn_slid_1x1", "mos2_bilayer_slid_1x1"], (0.8, 0.1, 0.1)),
    # the demo's 12 slid bilayers ship in data/; its held-out check is the twisted bilayer data/tbg_21.79
    "demo_model": (["bilayer_graphene_slid_1x1"], (0.75, 0.25, 0.0)),
}
SPLIT_SEED = 0
#: --quick: the few cells of each set shipped in tests/data/deeph, half of them for validation
QUICK_DATA, QUICK_SPLIT = ROOT / "tests" / "data" / "deeph", (0.5, 0.5, 0.0)


def default_data_root() -> Path:
    """$HOTHAM_DATA, else ../shared/data/deeph beside the checkout."""
    return Path(os.environ.get("HOTHAM_DATA") or ROOT.parent / "shared" / "data" / "deeph")


def held_out_record(checkpoint, dataset, split: str) -> dict:
    """Block errors (meV) of ``checkpoint`` on the ``split`` cells of ``dataset``: overall MAE,
    RMSE, max, per species pair MAE and the structures (hotham.evaluation.evaluate_split)."""
    from hotham.evaluation import evaluate_split
    ev = evaluate_split(checkpoint, dataset, split)
    rep = ev["report"]
    return {f"{split}_block_mae_meV": rep["all"]["mae"], f"{split}_block_rmse_meV": rep["all"]["rmse"],
            f"{split}_block_max_meV": rep["all"]["max"],
            f"{split}_species_pair_mae_meV": {k: v["mae"] for k, v in rep["species"].items()},
            f"{split}_structures": ev["structures"]}


def _relative(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (the command in a record)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe", help=f"run file; its name picks the data ({', '.join(SOURCES)})")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="folder holding the DFT sets (default $HOTHAM_DATA, else ../shared/data/deeph)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "models", help="where the checkpoint and record go")
    ap.add_argument("--quick", action="store_true",
                    help="3 epochs on the cells in tests/data/deeph, into a temporary folder (a CI check)")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: hotham's choice)")
    ap.add_argument("--record-only", action="store_true",
                    help="no training: measure the checkpoint in --out and rewrite its record (training figures "
                         "from the checkpoint's history)")
    args = ap.parse_args(argv)
    from hotham.checkpoint import load_predictor
    from hotham.dataset import build_dataset
    from hotham.errors import HothamError
    from hotham.files import atomic_path
    from hotham.threads import set_threads
    from hotham.train import last_state_path, load_run_config, train_from_file

    recipe = Path(args.recipe)
    name = recipe.stem
    if name not in SOURCES:
        raise HothamError(f"{recipe}: no data sources known for the recipe {name!r} (known: {', '.join(SOURCES)}); "
                          "add it to SOURCES in examples/train_model.py")
    sets, split = SOURCES[name]
    demo = name == "demo_model"
    root = ROOT / "data" if demo else QUICK_DATA if args.quick else (args.data_root or default_data_root())
    if args.quick and not demo:
        split = QUICK_SPLIT
    run = load_run_config(recipe)
    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = (tmp if args.quick else args.out) / Path(run.output or f"{name}.pt").name
        out.parent.mkdir(parents=True, exist_ok=True)
        dataset = tmp / "set.h5"
        missing = [s for s in sets if not (root / s).is_dir()]
        if missing:
            raise HothamError(f"{root}: no {', '.join(missing)} (give --data-root or $HOTHAM_DATA)")
        build_dataset([root / s for s in sets], dataset, split=split, seed=SPLIT_SEED, progress=False)
        if args.record_only:
            predictor = load_predictor(out)
            history, parameters = predictor.info["history"], predictor.model.n_parameters
            wall = history[-1]["time_s"]            # the training loop's own clock
        else:
            copy = tmp / recipe.name                # the run file's data (set.h5) is relative to it
            copy.write_text(recipe.read_text())
            t0 = time.time()
            result = train_from_file(copy, output=out, train_overrides={"epochs": 3} if args.quick else None,
                                     force=True, progress=False)
            history, parameters, wall = result["history"], result["parameters"], time.time() - t0
        predictor = load_predictor(out)
        record = {"checkpoint": out.name, "recipe": f"examples/{recipe.name}", "data": [f"{s}/" for s in sets],
                  "split": {"ratios": list(split), "seed": SPLIT_SEED},
                  "val_block_mae_meV": predictor.val_block_mae_meV,
                  **held_out_record(predictor, dataset, "test" if split[2] > 0 else "val")}
        if demo:
            from hotham.demo import check_twisted_bilayer
            check = check_twisted_bilayer(predictor, ROOT / "data")
            record.update({k: v for k, v in check.items() if k.endswith(("meV", "eV"))})
        record.update({"epochs": len(history), "parameters": parameters, "train_wall_s": round(wall, 1),
                       "threads": threads,
                       "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, "
                                  f"{os.cpu_count()} cores",
                       "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       "command": " ".join(["python", "examples/train_model.py", _relative(recipe),
                                            *[a for a in (sys.argv[1:] if argv is None else argv)
                                              if a != args.recipe]])})
        with atomic_path(out.with_suffix(".json")) as f:
            Path(f).write_text(json.dumps(record, indent=1))
        if not args.quick:          # the shipped folder keeps the checkpoint and its record only
            for side in [last_state_path(out)] + [out.with_name(out.name + s) for s in (".json", ".metrics.csv",
                                                                                      ".config.yaml")]:
                side.unlink(missing_ok=True)
        print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
