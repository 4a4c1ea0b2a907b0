"""Accuracy at a fixed training budget: block loss alone, block loss then a band-energy stage,
and the e3nn tensor product instead of the Gaunt product.

Each row trains the demo model (examples/demo_model.yaml: L = 4, 16 channels, 2 layers) on the
12 slid AB bilayers of data/ (9 train, 3 validation) for the same number of epochs, then predicts
the held-out 28-atom twisted bilayer data/tbg_21.79 (hotham.demo.check_twisted_bilayer) and prints
the validation block MAE, the twisted bilayer's block MAE and its band MAE within +-2 eV of E_F
(each side at its own Fermi level), with the wall time of the row.

    python benchmarks/accuracy.py [--epochs 300] [--rows block band e3nn] [--band-weight 0.1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROWS = {
    "block": ({}, {}),
    "band": ({}, {"band_weight": None, "band_start": None}),      # filled from the arguments
    "e3nn": ({"tensor_product": "e3nn"}, {}),
}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=300, help="epochs per row (default 300)")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--band-weight", type=float, default=0.1, help="weight of the band loss (default 0.1)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    import yaml

    from hotham.dataset import build_dataset
    from hotham.demo import check_twisted_bilayer
    from hotham.threads import set_threads
    from hotham.train import TrainConfig, train

    threads = set_threads(args.threads)
    run = yaml.safe_load((ROOT / "examples" / "demo_model.yaml").read_text())
    print(f"demo model {run['model']}, {args.epochs} epochs per row, {threads} thread(s); band row: band loss "
          f"(weight {args.band_weight}) from epoch {args.epochs // 2 + 1} on")
    print(f"{'row':8s} {'val block MAE':>14s} {'tbg block MAE':>14s} {'tbg band MAE':>13s} {'wall':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_dataset([ROOT / "data" / "bilayer_graphene_slid_1x1"], tmp / "set.h5", split=(0.75, 0.25, 0.0), seed=0,
                      progress=False)
        for row in args.rows:
            model, extra = ROWS[row]
            if row == "band":
                extra = {"band_weight": args.band_weight, "band_start": args.epochs // 2 + 1}
            cfg = TrainConfig(**{**run["train"], "epochs": args.epochs, "early_stop": None, **extra})
            t0 = time.time()
            res = train(tmp / "set.h5", tmp / f"{row}.pt", model={**run["model"], **model}, config=cfg,
                        log=lambda s: None, force=True)
            wall = time.time() - t0
            chk = check_twisted_bilayer(tmp / f"{row}.pt", ROOT / "data")
            print(f"{row:8s} {res['val']['all']['mae']:11.3f} meV {chk['tbg_block_mae_meV']:11.3f} meV "
                  f"{chk['tbg_band_mae_meV_within_2eV']:10.2f} meV {wall:7.0f} s", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from results import record, tee
    with tee() as printed:
        main()
    record("accuracy", printed)
