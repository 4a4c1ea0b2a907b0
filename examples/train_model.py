"""Train a shipped model from its recipe, and record how good it is on held-out cells.

    python examples/train_model.py examples/graphene_hbn.yaml     # data/models/graphene_hbn.pt + .json
    python examples/train_model.py examples/mos2_bilayer.yaml     # data/models/mos2_bilayer.pt + .json
    python examples/train_model.py examples/mixed.yaml            # graphene, graphene/hBN and MoS2 in one model
    python examples/train_model.py examples/demo_model.yaml       # the demo's model (data/models/bilayer_graphene.pt)
    python examples/train_model.py examples/mos2_soc.yaml         # MoS2 with spin-orbit coupling (data/models/mos2_soc.pt)
    python examples/train_model.py RECIPE.yaml --quick            # 3 epochs into a temporary folder (CI)
    python examples/train_model.py RECIPE.yaml --record-only      # re-measure the shipped checkpoint, rewrite its record

A recipe is a hotham run file (``hotham train RECIPE.yaml``: model, training budget, seed). Which
DFT sets it trains on and how they are split is hotham.recipes.SOURCES (by the recipe's name): the
script builds the data set from those folders with a seeded train/val/test split, trains with
:func:`hotham.train.train_from_file`, and writes the checkpoint and its record
``data/models/<output>.json``: the block MAE (meV) of the held-out test cells, overall and per
species pair, the validation MAE, epochs, parameters, wall time, threads, machine, date, command;
for a spin-orbit recipe also the MAE of the real and imaginary parts of the spinor blocks and the
SOC splitting of the top valence band at K, model against DFT, per held-out cell.

The real OpenMX sets live outside the repository: ``--data-root`` (default ``$HOTHAM_DATA``; one of
the two is needed) holds ``graphene_hbn_slid_1x1/``,
``mos2_bilayer_slid_1x1/``, ``bilayer_graphene_slid_1x1/``, ``mos2_soc_1x1/``. The demo's recipe
trains on the cells shipped in ``data/``; ``--quick`` trains the others on the few cells of their
sets shipped in ``tests/data/deeph`` (the SOC set, one cell there, with the SOC run of
``tests/data/openmx``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: --quick: the few cells of each set shipped in tests/data/deeph, half of them for validation
QUICK_DATA, QUICK_SPLIT = ROOT / "tests" / "data" / "deeph", (0.5, 0.5, 0.0)
#: --quick: a second cell where tests/data/deeph holds one of the recipe's set
QUICK_EXTRA = {"mos2_soc": [ROOT / "tests" / "data" / "openmx" / "mos2_prim_soc"]}


def _relative(path: Path) -> str:
    """``path`` relative to the checkout when it lies inside it (the command in a record)."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("recipe", help="run file; its name picks the data (hotham.recipes.SOURCES)")
    ap.add_argument("--data-root", type=Path, default=None,
                    help="folder holding the DFT sets (default $HOTHAM_DATA; one of the two is needed)")
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "models", help="where the checkpoint and record go")
    ap.add_argument("--quick", action="store_true",
                    help="3 epochs on the cells in tests/data/deeph, into a temporary folder (a CI check)")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: hotham's choice)")
    ap.add_argument("--record-only", action="store_true",
                    help="no training: measure the checkpoint in --out and rewrite its record (training figures "
                         "from the checkpoint's history)")
    args = ap.parse_args(argv)
    from hotham.checkpoint import load_predictor
    from hotham.recipes import SPLIT_SEED, held_out_record, recipe_dataset
    from hotham.threads import set_threads
    from hotham.train import load_run_config, run_file_models, train_from_file, write_model_record

    recipe = Path(args.recipe)
    name = recipe.stem
    demo = name == "demo_model"
    quick = args.quick and not demo         # the demo's own cells are small enough
    run = load_run_config(recipe)
    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = (tmp if args.quick else args.out) / Path(run.output or f"{name}.pt").name
        out.parent.mkdir(parents=True, exist_ok=True)
        dataset = tmp / "set.h5"
        sets, split = recipe_dataset(name, dataset, root=QUICK_DATA if quick else args.data_root,
                                     split=QUICK_SPLIT if quick else None, extra=QUICK_EXTRA.get(name, ()) if quick else (),
                                     shipped_sets=not args.quick)
        if args.record_only:
            predictor = load_predictor(out)
            history, parameters = predictor.info["history"], predictor.model.n_parameters
            wall = history[-1]["time_s"]            # the training loop's own clock
            if "fermi_levels" not in predictor.info:     # a checkpoint from before training recorded them
                from hotham.dataset import Dataset
                from hotham.train import fermi_levels
                with Dataset(dataset) as ds:
                    predictor.save(out, extra={"fermi_levels": fermi_levels([ds[n] for n in ds.split("train")])})
        else:
            copy = tmp / recipe.name                # the run file's data (set.h5) is relative to it
            copy.write_text(recipe.read_text())
            t0 = time.time()
            # a recipe's init (fine-tuning) and stage1 (a cascade) are relative to the recipe, not to its copy
            result = train_from_file(copy, output=out, train_overrides={"epochs": 3} if args.quick else None,
                                     force=True, progress=False, **run_file_models(run, recipe.parent.resolve()))
            history, parameters, wall = result["history"], result["parameters"], time.time() - t0
        predictor = load_predictor(out)
        record = {"checkpoint": out.name, "recipe": f"examples/{recipe.name}", "data": [s if s.endswith(".h5") else f"{s}/" for s in sets],
                  "split": {"ratios": list(split), "seed": SPLIT_SEED},
                  "val_block_mae_meV": predictor.val_block_mae_meV,
                  **held_out_record(predictor, dataset, "test" if split[2] > 0 else "val")}
        if demo:
            from hotham.demo import check_twisted_bilayer
            check = check_twisted_bilayer(predictor, ROOT / "data")
            record.update({k: v for k, v in check.items() if k.endswith(("meV", "eV"))})
        record.update({"epochs": len(history), "parameters": parameters, "train_wall_s": round(wall, 1),
                       "threads": threads})
        command = " ".join(["python", "examples/train_model.py", _relative(recipe),
                            *[a for a in (sys.argv[1:] if argv is None else argv) if a != args.recipe]])
        # the shipped folder keeps the checkpoint and its record only
        record = write_model_record(out, record, command, ship=not args.quick)
        print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
