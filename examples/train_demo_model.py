"""Train the model that `make demo` ships, and record how good it is.

    python examples/train_demo_model.py            # the shipped model: data/models/bilayer_graphene.pt
    python examples/train_demo_model.py --quick    # 3 epochs into a temporary folder (CI)
    python examples/train_demo_model.py --record-only   # re-measure the shipped checkpoint, rewrite its record

The run is examples/demo_model.yaml (fixed seed and epoch budget) on the 12 slid AB bilayers of
data/bilayer_graphene_slid_1x1 (9 train, 3 validation, the split seeded). The record beside the
checkpoint (bilayer_graphene.json) holds the validation block MAE, the block and band errors on
the held-out twisted bilayer data/tbg_21.79 (hotham.demo.check_twisted_bilayer), the epochs run,
the wall time, the machine and the date.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 epochs into a temporary folder (a CI check)")
    ap.add_argument("--threads", type=int, default=None, help="torch/BLAS threads (default: hotham's choice)")
    ap.add_argument("--record-only", action="store_true",
                    help="no training: measure the shipped checkpoint and rewrite its record (training figures "
                         "from the checkpoint's history)")
    args = ap.parse_args(argv)
    from hotham.dataset import build_dataset
    from hotham.demo import check_twisted_bilayer
    from hotham.threads import set_threads
    from hotham.train import train_from_file, write_model_record

    threads = set_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out_dir = tmp if args.quick else ROOT / "data" / "models"
        out = out_dir / "bilayer_graphene.pt"
        if args.record_only:
            from hotham.checkpoint import load_predictor
            predictor = load_predictor(out)
            result = {"val": predictor.info["metrics"]["val"], "history": predictor.info["history"],
                      "parameters": predictor.model.n_parameters}
            wall = result["history"][-1]["time_s"]      # the training loop's own clock
        else:
            build_dataset([ROOT / "data" / "bilayer_graphene_slid_1x1"], tmp / "set.h5", split=(0.75, 0.25, 0.0),
                          seed=0, progress=False)
            run = tmp / "demo_model.yaml"           # its data (set.h5) is relative to the run file
            run.write_text((ROOT / "examples" / "demo_model.yaml").read_text())
            t0 = time.time()
            result = train_from_file(run, output=out, train_overrides={"epochs": 3} if args.quick else None,
                                     force=True, progress=False)
            wall = time.time() - t0
        check = check_twisted_bilayer(out, ROOT / "data")
        record = {"checkpoint": out.name, "val_block_mae_meV": result["val"]["all"]["mae"],
                  "epochs": len(result["history"]), "parameters": result["parameters"],
                  **{k: v for k, v in check.items() if k.endswith(("meV", "eV"))},
                  "train_wall_s": round(wall, 1), "threads": threads}
        record = write_model_record(out, record, " ".join(["python", "examples/train_demo_model.py",
                                                           *(argv or sys.argv[1:])]), ship=not args.quick)
        print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
