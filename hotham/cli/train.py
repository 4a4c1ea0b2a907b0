"""``hotham train``, ``hotham evaluate`` and ``hotham predict``."""
from __future__ import annotations

import json
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a Hot-Ham model on a data set",
                              description="Train on the train split of a hotham data set (hotham dataset build); "
                                          "the best model on the val split is written to -o.")
    p.add_argument("dataset", help="hotham data set (.h5)")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--target", choices=["H", "S"], default="H", help="learn H (default) or the overlap S")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=1, help="structures per step")
    p.add_argument("--max-minutes", type=float, default=None, help="stop after this wall time")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lmax", type=int, default=None, help="L of the hidden irreps (default 4)")
    p.add_argument("--channels", type=int, default=None)
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--conv", choices=["gaunt", "e3nn"], default=None, help="Gaunt (Hot-Ham) or e3nn CG baseline")
    p.add_argument("--gaunt-method", choices=["fourier", "grid"], default=None)
    p.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="block errors (meV) of a model on a data set split")
    e.add_argument("model", help="checkpoint (.pt)")
    e.add_argument("dataset", help="hotham data set (.h5)")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    e.add_argument("--json", default=None, help="also write the report as JSON")
    e.set_defaults(func=_evaluate)

    q = subparsers.add_parser("predict", help="predict H of structures with a trained model",
                              description="INPUT is a DFT run or block file (OpenMX folder, DeepH folder, hotham .h5: "
                                          "its edges and S are kept) or any structure file ase reads (.xyz, .cif, "
                                          "POSCAR, OpenMX .dat): edges from the PAO radii and S from the PAO files.")
    q.add_argument("model", help="checkpoint (.pt)")
    q.add_argument("input", help="structure or DFT data")
    q.add_argument("-o", "--output", required=True, help="hotham HDF5 block file to write")
    q.add_argument("--overlap-model", default=None, help="checkpoint of an S model (hotham train --target S) "
                                                         "instead of PAO overlaps for plain structures")
    q.add_argument("--openmx-data", default=None, help="DFT_DATA19 folder (default: $HOTHAM_OPENMX_DATA)")
    q.add_argument("--device", default="auto")
    q.set_defaults(func=_predict)


def _train(args) -> int:
    from ..train import TrainConfig, train
    model = {k: v for k, v in (("lmax", args.lmax), ("channels", args.channels), ("layers", args.layers),
                               ("conv", args.conv), ("gaunt_method", args.gaunt_method)) if v is not None}
    cfg = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_minutes=args.max_minutes,
                      device=args.device, dtype=args.dtype, seed=args.seed, target=args.target)
    result = train(args.dataset, args.output, model=model, config=cfg)
    from ..metrics import format_report
    print(format_report(result["val"], f"{args.target} on val"))
    if result["test"]:
        print(format_report(result["test"], f"{args.target} on test"))
    print(f"wrote {args.output} and {args.output}.json")
    return 0


def _evaluate(args) -> int:
    from ..dataset import Dataset
    from ..metrics import format_report
    from ..checkpoint import load_predictor
    from ..train import evaluate
    pred = load_predictor(args.model)
    ds = Dataset(args.dataset)
    names = ds.names if args.split == "all" else ds.split(args.split)
    if not names:
        print(f"split {args.split!r} of {args.dataset} is empty")
        return 1
    rep = evaluate(pred, [ds[n] for n in names])
    print(f"{len(names)} structures ({args.split})")
    print(format_report(rep, pred.target))
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1))
    return 0


def _predict(args) -> int:
    from .. import io
    from ..prediction import predict
    op = predict(args.model, args.input, overlap_model=args.overlap_model, openmx_data=args.openmx_data,
                 device=args.device)
    io.write(args.output, op)
    print(f"{op}\nwrote {args.output}")
    return 0
