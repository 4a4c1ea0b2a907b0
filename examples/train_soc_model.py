"""Train the spin-orbit MoS2 model that ships in data/models/mos2_soc.pt, and record how good it is.

    python examples/train_soc_model.py              # the shipped model (about 30 min on one thread)
    python examples/train_soc_model.py --quick      # 2 epochs into a temporary folder (CI)

The run is examples/mos2_soc.yaml (fixed seed, epoch and time budget) on the 12 strained and
perturbed MoS2 cells of ../shared/data/deeph/mos2_soc_1x1 (non-collinear + SOC; split 0.7/0.15/0.15
with seed 0: 8 train, 2 validation, 2 held out). The record beside the checkpoint (mos2_soc.json)
holds the held-out block MAE of the real and imaginary parts of the spinor blocks and the SOC
splitting of the top valence band at K, model against DFT (:func:`hotham.soc.soc_errors`).
--data points to another copy of the set; --quick falls back to the two SOC cells in tests/data.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "deeph" / "mos2_soc_1x1"
#: --quick without ../shared: the SOC cell and run of tests/data (one trains, one validates)
TEST_DATA = [ROOT / "tests" / "data" / "deeph" / "mos2_soc_1x1", ROOT / "tests" / "data" / "openmx" / "mos2_prim_soc"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 epochs into a temporary folder (a CI check)")
    ap.add_argument("--data", type=Path, default=None, help=f"the mos2_soc_1x1 folders (default {DATA})")
    ap.add_argument("--threads", type=int, default=1, help="torch/BLAS threads (default 1)")
    args = ap.parse_args(argv)
    from hotham.dataset import Dataset, build_dataset
    from hotham.soc import soc_errors
    from hotham.threads import set_threads
    from hotham.train import train_from_file, write_model_record

    threads = set_threads(args.threads)
    fallback = args.quick and args.data is None and not DATA.is_dir()
    sources = TEST_DATA if fallback else [args.data or DATA]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = (tmp if args.quick else ROOT / "data" / "models") / "mos2_soc.pt"
        split = (0.5, 0.5, 0.0) if fallback else (0.7, 0.15, 0.15)
        build_dataset(sources, tmp / "set.h5", split=split, seed=0, spin="soc", progress=False)
        run = tmp / "mos2_soc.yaml"           # its data (set.h5) is relative to the run file
        run.write_text((ROOT / "examples" / "mos2_soc.yaml").read_text())
        t0 = time.time()
        result = train_from_file(run, output=out, train_overrides={"epochs": 2} if args.quick else None,
                                 force=True, progress=False)
        wall = time.time() - t0
        with Dataset(tmp / "set.h5") as ds:
            held = ds.split("test") or ds.split("val")
            errors = soc_errors(out, [ds[n] for n in held])
        record = {"checkpoint": out.name, "held_out": sorted(Path(s).name for s in errors["splitting"]),
                  "val_block_mae_meV": result["val"]["all"]["mae"],
                  "held_out_real_mae_meV": errors["real_mae_meV"], "held_out_imag_mae_meV": errors["imag_mae_meV"],
                  "soc_splitting_K_meV": {Path(s).name: v for s, v in errors["splitting"].items()},
                  "soc_splitting_K_max_error_meV": errors["splitting_max_error_meV"],
                  "epochs": len(result["history"]), "parameters": result["parameters"],
                  "train_wall_s": round(wall, 1), "threads": threads}
        record = write_model_record(out, record, " ".join(["python", "examples/train_soc_model.py",
                                                           *(argv or sys.argv[1:])]), ship=not args.quick)
        print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
