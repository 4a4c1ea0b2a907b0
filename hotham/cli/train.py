"""``hotham train``, ``hotham evaluate`` and ``hotham predict``."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .options import (DEVICE, add_force_option, add_mesh_option, add_model_options, add_openmx_data_option,
                      add_window_option, later, model_kwargs)


def _options(parser) -> None:
    from ..nn.model import HotHamConfig
    from ..train import TrainConfig
    add_model_options(parser, TrainConfig, title="training")
    add_model_options(parser, HotHamConfig, title="model", exclude=("spin",),   # spin: the data set's
                      defaults={"r_cut": "just above the longest block of the data set"})


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a Hot-Ham model on a data set",
                              description="Train on the train split of a hotham data set (hotham dataset build), "
                                          "or run a YAML run file (data, output, model, train; the flags override "
                                          "it); the best model on the val split is written to -o.")
    p.add_argument("dataset", help="hotham data set (.h5) or a YAML run file (.yaml)")
    p.add_argument("-o", "--output", help="checkpoint to write (.pt; required with a data set)")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true",
                       help="continue the run of -o from its last finished epoch (OUTPUT.last.pt)")
    again.add_argument("--force", action="store_true", help="overwrite an existing -o")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--stage2-of", dest="stage1", metavar="STAGE1", default=None,
                   help="train the second stage of a cascade on what this frozen first stage leaves: a checkpoint "
                        "(.pt), slater-koster (the on-site baseline plus two-centre hoppings fitted to the "
                        "training split), or kinetic (the exact kinetic energy T of the PAOs: the network learns "
                        "H - T, which keeps ghost states away off the training cells); -o then holds both stages")
    p.add_argument("--init", metavar="MODEL", default=None,
                   help="fine-tune: start from this checkpoint's network (its configuration and on-site baseline "
                        "are kept; the data set must hold only its species)")
    later(p, _options)
    p.set_defaults(func=_train)

    e = subparsers.add_parser("evaluate", help="errors of a model on a data set split: blocks (meV) and bands",
                              description="Block errors (meV) over all elements, per structure (mean and worst), "
                                          "per species pair and per orbital pair; and, for every structure whose "
                                          "source folder holds an OpenMX .Band file, the band MAE on its k-points: "
                                          "each side at its own Fermi level (both from the electron count on the "
                                          "same mesh) and after the best constant shift (the band-shape error).")
    e.add_argument("model", help="checkpoint (.pt)")
    e.add_argument("dataset", help="hotham data set (.h5)")
    e.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    add_window_option(e, (-2.0, 2.0), "band MAE window around the DFT Fermi level, eV (default -2 2)")
    add_mesh_option(e, "k-mesh of both Fermi levels: n (slab: n n 1) or n1 n2 n3 (default: automatic per structure)")
    e.add_argument("--no-bands", action="store_true", help="block errors only")
    e.add_argument("--json", default=None, help="also write the whole evaluation as JSON")
    add_force_option(e)
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
    add_openmx_data_option(q)
    q.add_argument("--device", type=DEVICE, default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    q.add_argument("--quiet", action="store_true", help="no progress report on stderr")
    add_force_option(q)
    q.set_defaults(func=_predict)


def _train(args) -> int:
    from ..metrics import format_report
    from ..nn.model import HotHamConfig
    from ..errors import HothamError
    from ..train import TrainConfig, train, train_from_file
    common = dict(model=model_kwargs(args, HotHamConfig), force=args.force, resume=args.resume,
                  progress=not args.quiet, stage1=args.stage1, init=args.init)
    if str(args.dataset).endswith((".yaml", ".yml")):
        result = train_from_file(args.dataset, output=args.output, train_overrides=model_kwargs(args, TrainConfig),
                                 **common)
    elif args.output is None:
        raise HothamError("give the checkpoint to write with -o (or a YAML run file naming it)")
    else:
        result = train(args.dataset, args.output, config=TrainConfig(**model_kwargs(args, TrainConfig)), **common)
    if int(os.environ.get("RANK", "0")) != 0:      # under torchrun only process 0 reports
        return 0
    target = "H" if result["val"]["units"] == "meV" else "S"
    on_train = result.get("validated_on") == "train"
    print(format_report(result["val"], f"{target} on train (the val split is empty: no validation MAE)"
                        if on_train else f"{target} on val"))
    if result["test"]:
        print(format_report(result["test"], f"{target} on test"))
    print(f"wrote {result['checkpoint']} and its .json, .metrics.csv, .config.yaml")
    return 0


def _evaluate(args) -> int:
    from ..evaluation import evaluate_split, format_evaluation
    from ..files import check_outputs
    if args.json:
        check_outputs([args.json], force=args.force, inputs=[args.model, args.dataset])
    ev = evaluate_split(args.model, args.dataset, args.split, bands=not args.no_bands, window=tuple(args.window),
                        mesh=args.mesh)
    if ev["report"] is None:
        print(f"split {args.split!r} of {args.dataset} is empty")
        return 1
    print(format_evaluation(ev))
    if args.json:
        from ..files import atomic_path
        with atomic_path(args.json) as tmp:
            Path(tmp).write_text(json.dumps(ev, indent=1))
        print(f"wrote {args.json}")
    return 0


def _predict(args) -> int:
    from .. import io
    from ..files import check_outputs
    from ..prediction import predict
    # before the prediction: an existing file, an input, or a read-only folder is refused now
    check_outputs([args.output], force=args.force, inputs=[args.model, args.input, args.overlap_model])
    op = predict(args.model, args.input, overlap_model=args.overlap_model, openmx_data=args.openmx_data,
                 device=args.device, progress=not args.quiet)
    io.write(args.output, op)
    print(f"{op}\nwrote {args.output}")
    return 0
