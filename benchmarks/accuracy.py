"""Accuracy at a fixed training budget: block loss alone, block loss then a band-energy stage,
and the e3nn tensor product instead of the Gaunt product.

Each row trains the demo model (examples/demo_model.yaml: L = 4, 16 channels, 2 layers) on the
12 slid AB bilayers of data/ (9 train, 3 validation) for the same number of epochs, then predicts
the held-out 28-atom twisted bilayer data/tbg_21.79 (hotham.demo.check_twisted_bilayer) and prints
the validation block MAE, the band MAE of the validation cells (the kind of cell the band loss
trains on: 6x6 Gamma-centred mesh, eigenvalues within +-2 eV of DFT's E_F, bands matched by index),
the twisted bilayer's block MAE and its band MAE within +-2 eV of E_F (each side at its own Fermi
level), with the wall time of the row. A run with other rows or band settings records its own
section (``accuracy``, or ``accuracy.band-w0.01`` for ``--rows band --band-weight 0.01``).

    python benchmarks/accuracy.py [--epochs 300] [--rows block band e3nn] [--band-weight 0.1]

Spin-orbit coupling (``--soc``, section ``accuracy.soc``): the shipped SOC model
data/models/mos2_soc.pt on the held-out cells of ../shared/data/deeph/mos2_soc_1x1 (the split of
its recipe, hotham.recipes.SOURCES["mos2_soc"]), see :func:`soc_accuracy`.

Beyond carbon (``--chemistries``, section ``accuracy.chemistries``): a row per chemistry of the
shipped recipes (graphene/hBN, MoS2 bilayers; hotham.recipes): the recipe's model trained on its
set's training split for the same number of epochs as the graphene rows (or, with ``--shipped``,
the shipped checkpoint as it is), then the block MAE of the held-out test cells and the error of
the gap that matters there (MoS2: the indirect gap on G-M-K-G; graphene/hBN: the gap at K),
each cell's model and DFT bands from all bands with electrons / 2 occupied. With ``--shipped``,
each chemistry gets a second row from the model of all sets together (data/models/mixed.pt,
examples/mixed.yaml) on the same test cells.

    python benchmarks/accuracy.py --chemistries [--epochs 300 | --shipped]

Model kinds at an equal wall-clock budget (``--models``, section ``accuracy.models-<minutes>min``,
or ``accuracy.models-chemistries-<minutes>min`` with ``--chemistries``): every row trains for the
same ``--minutes`` of wall time (TrainConfig.max_minutes) on the same split, then prints the test
block MAE and (graphene) the twisted bilayer's block and band MAE. Rows (:data:`MODEL_ROWS`):
``hotham`` (Gaunt conv layers), ``attention`` (attention layers, HotHamConfig.layer), ``hotham+stage2``
(a Gaunt model for half the budget, then a second stage with attention layers on its residual for
the other half, hotham.cascade) and ``H0+network`` (the Slater-Koster H0, then a Gaunt network on
its residual for the whole budget); the H0 alone is printed under its row. The demo model's
size (examples/demo_model.yaml) throughout; the graphene set split 8 / 2 / 2, the chemistries by
their recipes.

    python benchmarks/accuracy.py --models --minutes 4 [--chemistries] --threads 1

A second stage on a converged model (``--stage2-on-shipped``, section
``accuracy.stage2-on-shipped-<minutes>min``): the shipped demo model data/models/bilayer_graphene.pt
(1500 epochs) as the first stage, a second stage (attention layers, then Gaunt layers) trained
for ``--minutes`` on its own split (the demo recipe's: 9 train, 3 val cells); the val cells (not
trained on by either stage) and the twisted bilayer, against the shipped model alone.

    python benchmarks/accuracy.py --stage2-on-shipped --minutes 4 --threads 1

Cost per training step (``--step-time``, section ``accuracy.step-time``): forward and backward of
the demo-size model with Gaunt and with attention layers on one slid bilayer cell, the two
interleaved step by step in one process (so a changing machine load hits both alike); the
median of ``--repeat`` steps each.

    python benchmarks/accuracy.py --step-time [--repeat 20] --threads 1
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the DFT sets of the recipes: $HOTHAM_DATA, else this development setup's ../shared/data/deeph
DATA_ROOT = Path(os.environ.get("HOTHAM_DATA") or ROOT.parent / "shared" / "data" / "deeph")

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
    ap.add_argument("--band-start", type=int, default=None, help="first epoch of the band loss (default: half-way)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--soc", action="store_true", help="the SOC model on held-out mos2_soc_1x1 cells instead")
    ap.add_argument("--chemistries", action="store_true", help="the rows per chemistry (graphene/hBN, MoS2) instead")
    ap.add_argument("--shipped", action="store_true", help="with --chemistries: the shipped checkpoints, no training")
    ap.add_argument("--models", action="store_true", help="the model kinds at an equal wall-clock budget instead")
    ap.add_argument("--minutes", type=float, default=4.0, help="with --models: wall-clock budget per row (default 4)")
    ap.add_argument("--model-rows", nargs="+", default=list(MODEL_ROWS), choices=list(MODEL_ROWS))
    ap.add_argument("--stage2-on-shipped", action="store_true",
                    help="a second stage on the shipped demo model instead (--minutes each)")
    ap.add_argument("--step-time", action="store_true", help="time per training step, Gaunt vs attention layers")
    ap.add_argument("--repeat", type=int, default=20, help="with --step-time: steps per model (default 20)")
    args = ap.parse_args(argv)
    if args.step_time:
        return step_time(args)
    if args.soc:
        return soc_accuracy(args.threads)
    if args.stage2_on_shipped:
        return stage2_on_shipped(args)
    if args.models:
        return model_rows(args)
    if args.chemistries:
        return chemistry_rows(args)
    import yaml

    from hotham.dataset import build_dataset
    from hotham.demo import check_twisted_bilayer
    from hotham.threads import set_threads
    from hotham.train import TrainConfig, train

    threads = set_threads(args.threads)
    run = yaml.safe_load((ROOT / "examples" / "demo_model.yaml").read_text())
    band_start = args.band_start or args.epochs // 2 + 1
    print(f"demo model {run['model']}, {args.epochs} epochs per row, {threads} thread(s); band row: band loss "
          f"(weight {args.band_weight}) from epoch {band_start} on")
    print(f"{'row':8s} {'val block MAE':>14s} {'val band MAE':>13s} {'tbg block MAE':>14s} {'tbg band MAE':>13s} "
          f"{'wall':>8s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_dataset([ROOT / "data" / "bilayer_graphene_slid_1x1"], tmp / "set.h5", split=(0.75, 0.25, 0.0), seed=0,
                      progress=False)
        for row in args.rows:
            model, extra = ROWS[row]
            if row == "band":
                extra = {"band_weight": args.band_weight, "band_start": band_start}
            cfg = TrainConfig(**{**run["train"], "epochs": args.epochs, "early_stop": None, **extra})
            t0 = time.time()
            res = train(tmp / "set.h5", tmp / f"{row}.pt", model={**run["model"], **model}, config=cfg,
                        log=lambda s: None, force=True)
            wall = time.time() - t0
            chk = check_twisted_bilayer(tmp / f"{row}.pt", ROOT / "data")
            val_band = _val_band_mae(tmp / f"{row}.pt", tmp / "set.h5")
            print(f"{row:8s} {res['val']['all']['mae']:11.3f} meV {1000 * val_band:10.2f} meV "
                  f"{chk['tbg_block_mae_meV']:11.3f} meV {chk['tbg_band_mae_meV_within_2eV']:10.2f} meV {wall:7.0f} s",
                  flush=True)
    # the default comparison has its own section; other rows or band settings get theirs
    default = args.rows == list(ROWS) and args.band_weight == 0.1 and args.band_start is None
    return "accuracy" if default else f"accuracy.{'-'.join(args.rows)}-w{args.band_weight:g}-s{band_start}"


def soc_accuracy(threads=None, model=ROOT / "data" / "models" / "mos2_soc.pt",
                 data=DATA_ROOT / "mos2_soc_1x1") -> str:
    """Prints how the DFT spinor blocks of mos2_soc_1x1 split (hotham.soc.soc_split_report: the
    time-reversal-odd rest, and how much of the SOC part HamGNN's xi L.sigma holds on on-site and
    hopping blocks), then the SOC model's block MAE (real and imaginary parts of the spinor
    elements) on the held-out cells (the split of its recipe, hotham.recipes.SOURCES["mos2_soc"])
    and the SOC splitting of the top valence band at K, model against DFT, each from its own
    H(k). Returns the section name."""
    from hotham import io
    from hotham.dataset import split_names
    from hotham.recipes import SOURCES, SPLIT_SEED
    from hotham.evaluation import soc_errors
    from hotham.soc import soc_split_report
    from hotham.threads import set_threads
    set_threads(threads)
    folders = sorted(p for p in Path(data).iterdir() if p.is_dir())
    ops = {p.name: io.read(p) for p in folders}
    rep = soc_split_report(ops.values())
    fit = rep["xi_fit"]
    print(f"DFT spinor blocks of {len(ops)} cells ({Path(data).name}): |M| / |A| = {rep['M_norm'] / rep['A_norm']:.4f}, "
          f"time-reversal-odd part (Im A, Re B) {rep['tr_odd']:.1e} of |H|")
    print(f"xi L.sigma fit per block and shell pair: residual {100 * fit['onsite']['residual']:.2f} % of the on-site "
          f"SOC (|M| {fit['onsite']['M_norm']:.3f} eV), {100 * fit['hopping']['residual']:.1f} % of the hopping SOC "
          f"(|M| {fit['hopping']['M_norm']:.3f} eV)")
    print("on-site xi (eV): " + "; ".join(f"{s} " + ", ".join(f"{k} {v:.4f}" for k, v in x.items() if k[:2] == k[3:5])
                                         for s, x in rep["onsite_xi_eV"].items()))
    held = split_names([p.name for p in folders], SOURCES["mos2_soc"].split, seed=SPLIT_SEED)["test"]
    err = soc_errors(model, [ops[n] for n in held])
    print(f"model {Path(model).name} on held-out cells {', '.join(held)}: block MAE real {err['real_mae_meV']:.3f} meV, "
          f"imaginary {err['imag_mae_meV']:.4f} meV")
    for src, v in err["splitting"].items():
        print(f"  {Path(src).name}: SOC splitting of the top valence band at K: model {v['model_meV']:.1f} meV, "
              f"DFT {v['dft_meV']:.1f} meV, error {v['model_meV'] - v['dft_meV']:+.2f} meV")
    print(f"largest splitting error {err['splitting_max_error_meV']:.2f} meV")
    return "accuracy.soc"


def _val_band_mae(checkpoint, dataset) -> float:
    """Band MAE (eV) of the validation cells: 6x6 mesh, reference eigenvalues within +-2 eV of E_F."""
    import numpy as np
    import torch

    from hotham import predict
    from hotham.band_loss import BandLoss
    from hotham.dataset import Dataset
    from hotham.electronic.fermi import monkhorst_pack
    errors = []
    with Dataset(dataset) as ds:
        for name in ds.split("val"):
            op = ds[name]
            H = predict(checkpoint, op, fermi_method=None).H
            errors.append(BandLoss(op, (-2.0, 2.0))(torch.as_tensor(H), monkhorst_pack(op.atoms, (6, 6, 1))).item())
    return float(np.mean(errors))


#: chemistry -> (recipe, k-point of the gap (None: the fundamental gap on G-M-K-G))
CHEMISTRIES = {"graphene/hBN": ("graphene_hbn", (1 / 3, 1 / 3, 0.0)), "MoS2 bilayer": ("mos2_bilayer", None)}
#: the model of all three sets together (examples/mixed.yaml): with --shipped, a second row per chemistry
MIXED = ROOT / "data" / "models" / "mixed.pt"


def chemistry_rows(args) -> str:
    """The rows per chemistry (module docstring); returns the section name."""
    import warnings

    import numpy as np
    import yaml

    import hotham.electronic as el
    from hotham import predict
    from hotham.checkpoint import load_predictor
    from hotham.dataset import Dataset
    from hotham.prediction import QualityWarning
    from hotham.recipes import held_out_record, recipe_dataset
    from hotham.threads import set_threads
    from hotham.train import TrainConfig, train

    threads = set_threads(args.threads)
    budget = "shipped checkpoints" if args.shipped else f"{args.epochs} epochs per row"
    print(f"held-out test cells of each recipe's set, {budget}, {threads} thread(s)")
    print(f"{'chemistry':21s} {'test block MAE':>15s} {'gap DFT':>9s} {'|gap error| mean, max':>22s} {'epochs':>7s} "
          f"{'wall':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for chem, (name, k_gap) in CHEMISTRIES.items():
            recipe_dataset(name, tmp / f"{name}.h5", root=DATA_ROOT)
            t0 = time.time()
            ckpt = ROOT / "data" / "models" / f"{name}.pt"
            if not args.shipped:
                run = yaml.safe_load((ROOT / "examples" / f"{name}.yaml").read_text())
                cfg = TrainConfig(**{**run["train"], "epochs": args.epochs, "early_stop": None})
                ckpt = tmp / f"{name}.pt"
                train(tmp / f"{name}.h5", ckpt, model=run["model"], config=cfg, log=lambda s: None, force=True)
            wall = time.time() - t0
            rows = [(chem, ckpt, wall)]
            if args.shipped and MIXED.exists():     # the same test cells: recipes split each set on its own
                rows.append((f"{chem} ({MIXED.stem})", MIXED, 0.0))
            for label, model, wall in rows:
                rec = held_out_record(model, tmp / f"{name}.h5", "test")
                gaps = []
                with Dataset(tmp / f"{name}.h5") as ds, warnings.catch_warnings():
                    warnings.simplefilter("ignore", QualityWarning)
                    for cell in ds.split("test"):
                        dft = ds[cell]
                        kpts = [k_gap] if k_gap is not None else el.band_path(dft.atoms, "GMKG", 120).kpts
                        n_occ = el.occupied_bands(dft)
                        gaps.append([el.band_gap(el.eigenvalues(op, kpts), n_occupied=n_occ).gap
                                     for op in (dft, predict(model, dft, fermi_method=None))])
                g = np.array(gaps)
                epochs = len(load_predictor(model).info.get("history", []))
                print(f"{label:21s} {rec['test_block_mae_meV']:11.3f} meV {1000 * g[:, 0].mean():6.0f} meV "
                      f"{1000 * np.abs(g[:, 1] - g[:, 0]).mean():8.1f}, {1000 * np.abs(g[:, 1] - g[:, 0]).max():5.1f} "
                      f"meV {epochs:7d} {wall:6.0f} s", flush=True)
    return "accuracy.chemistries" + ("-shipped" if args.shipped else "" if args.epochs == 300 else f"-{args.epochs}")


#: the rows of --models: (model fields of the network, its first stage: None, "slater-koster", or
#: "network" = a Gaunt model trained for half the budget, the network then taking the other half)
MODEL_ROWS = {
    "hotham": ({}, None),
    "attention": ({"layer": "attention"}, None),
    "hotham+stage2": ({"layer": "attention"}, "network"),
    "H0+network": ({}, "slater-koster"),
}


def _train_row(data, out, model, stage1, minutes, run, tmp):
    """Train one row within ``minutes`` of wall time; returns (checkpoint, epochs of each stage)."""
    from hotham.checkpoint import load_predictor
    from hotham.train import TrainConfig, train
    cfg = lambda m: TrainConfig(**{**run["train"], "epochs": 100000, "early_stop": None, "max_minutes": m})
    epochs = []
    if stage1 == "network":
        train(data, tmp / "stage1.pt", model=run["model"], config=cfg(minutes / 2), log=lambda s: None, force=True)
        epochs.append(len(load_predictor(tmp / "stage1.pt").info["history"]))
        stage1, minutes = tmp / "stage1.pt", minutes / 2
    res = train(data, out, model={**run["model"], **model}, config=cfg(minutes), log=lambda s: None, force=True,
                stage1=stage1)
    return out, epochs + [len(res["history"])]


def _h0_mae(checkpoint, dataset, split) -> float:
    """Block MAE (meV) of a cascade's first stage alone on the ``split`` cells."""
    import numpy as np
    from hotham.checkpoint import load_predictor
    from hotham.dataset import Dataset
    h0 = load_predictor(checkpoint).stage1
    err, n = 0.0, 0
    with Dataset(dataset) as ds:
        for name in ds.split(split):
            op = ds[name]
            err += np.abs(h0.predict_parts(op) - op.H).sum()
            n += op.nnz
    return 1000 * err / n


def _setup(args):
    """(threads, the demo run file): threads set, quality and domain warnings silenced (these
    runs are short on purpose)."""
    import warnings

    import yaml

    from hotham.prediction import DomainWarning, QualityWarning
    from hotham.threads import set_threads
    warnings.simplefilter("ignore", QualityWarning)
    warnings.simplefilter("ignore", DomainWarning)
    return set_threads(args.threads), yaml.safe_load((ROOT / "examples" / "demo_model.yaml").read_text())


def model_rows(args) -> str:
    """The --models rows (module docstring); returns the section name."""
    from hotham.dataset import Dataset, build_dataset
    from hotham.demo import check_twisted_bilayer
    from hotham.recipes import held_out_record, recipe_dataset

    threads, run = _setup(args)
    print(f"demo model {run['model']}, {args.minutes:g} minutes of wall time per row (stage 1 + stage 2 together), "
          f"{threads} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.chemistries:
            sets = {chem: tmp / f"{name}.h5" for chem, (name, _) in CHEMISTRIES.items()}
            for chem, (name, _) in CHEMISTRIES.items():
                recipe_dataset(name, sets[chem])
        else:
            sets = {"bilayer graphene": tmp / "set.h5"}
            build_dataset([ROOT / "data" / "bilayer_graphene_slid_1x1"], sets["bilayer graphene"],
                          split=(8, 2, 2), seed=0, progress=False)
        for chem, data in sets.items():
            with Dataset(data) as ds:
                counts = "/".join(str(len(ds.split(s))) for s in ("train", "val", "test"))
            print(f"\n{chem}: split train/val/test {counts}")
            tbg = not args.chemistries
            print(f"{'row':15s} {'test block MAE':>15s} {'val block MAE':>14s}"
                  + (f" {'tbg block MAE':>14s} {'tbg band MAE':>13s}" if tbg else "") + f" {'epochs':>9s} {'wall':>7s}")
            for row in args.model_rows:
                model, stage1 = MODEL_ROWS[row]
                t0 = time.time()
                ckpt, epochs = _train_row(data, tmp / f"{row}.pt", model, stage1, args.minutes, run, tmp)
                wall = time.time() - t0
                test = held_out_record(ckpt, data, "test")["test_block_mae_meV"]
                val = held_out_record(ckpt, data, "val")["val_block_mae_meV"]
                line = f"{row:15s} {test:11.3f} meV {val:10.3f} meV"
                if tbg:
                    chk = check_twisted_bilayer(ckpt, ROOT / "data")
                    line += f" {chk['tbg_block_mae_meV']:10.3f} meV {chk['tbg_band_mae_meV_within_2eV']:9.2f} meV"
                print(f"{line} {'+'.join(map(str, epochs)):>9s} {wall:6.0f} s", flush=True)
                if stage1 == "slater-koster":
                    print(f"{'  (H0 alone)':15s} {_h0_mae(ckpt, data, 'test'):11.3f} meV "
                          f"{_h0_mae(ckpt, data, 'val'):10.3f} meV", flush=True)
    kind = "models-chemistries" if args.chemistries else "models"
    return f"accuracy.{kind}-{args.minutes:g}min"


def stage2_on_shipped(args, shipped=ROOT / "data" / "models" / "bilayer_graphene.pt") -> str:
    """The --stage2-on-shipped rows (module docstring); returns the section name."""
    from hotham.dataset import build_dataset
    from hotham.demo import check_twisted_bilayer
    from hotham.recipes import SOURCES, SPLIT_SEED, held_out_record

    threads, run = _setup(args)
    print(f"first stage {shipped.relative_to(ROOT)} (shipped); second stage: demo model size, {args.minutes:g} minutes "
          f"of wall time, {threads} thread(s)")
    print(f"{'row':28s} {'val block MAE':>14s} {'tbg block MAE':>14s} {'tbg band MAE':>13s} {'epochs':>7s} {'wall':>7s}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_dataset([ROOT / "data" / "bilayer_graphene_slid_1x1"], tmp / "set.h5", split=SOURCES["demo_model"].split,
                      seed=SPLIT_SEED, progress=False)
        rows = [("shipped alone", None, None)] + [(f"shipped + {k} stage 2", {"layer": k}, shipped)
                                                  for k in ("attention", "conv")]
        for label, model, stage1 in rows:
            t0 = time.time()
            ckpt, epochs = shipped, [0]
            if stage1 is not None:
                ckpt, epochs = _train_row(tmp / "set.h5", tmp / "cascade.pt", model, stage1, args.minutes, run, tmp)
            wall = time.time() - t0
            val = held_out_record(ckpt, tmp / "set.h5", "val")["val_block_mae_meV"]
            chk = check_twisted_bilayer(ckpt, ROOT / "data")
            print(f"{label:28s} {val:10.3f} meV {chk['tbg_block_mae_meV']:10.3f} meV "
                  f"{chk['tbg_band_mae_meV_within_2eV']:9.2f} meV {epochs[-1]:7d} {wall:6.0f} s", flush=True)
    return f"accuracy.stage2-on-shipped-{args.minutes:g}min"


def step_time(args) -> str:
    """The --step-time rows (module docstring); returns the section name."""
    import numpy as np
    import torch
    import yaml

    from hotham import io
    from hotham.nn import HotHam, HotHamConfig
    from hotham.threads import set_threads

    threads = set_threads(args.threads)
    run = yaml.safe_load((ROOT / "examples" / "demo_model.yaml").read_text())
    op = io.read(ROOT / "data" / "bilayer_graphene_slid_1x1" / "000")
    kinds = {"hotham": {}, "attention": {"layer": "attention"}}
    nets, graphs, times = {}, {}, {k: [] for k in kinds}
    for k, extra in kinds.items():
        torch.manual_seed(0)
        nets[k] = HotHam(HotHamConfig.from_basis(op.basis, **{**run["model"], **extra}, r_cut=7.0))
        graphs[k] = nets[k].graph([op])
    print(f"demo model {run['model']}, one cell ({op.n_atoms} atoms, {op.n_edges} blocks), {threads} thread(s), "
          f"forward + backward, {args.repeat} steps each, interleaved")
    for _ in range(args.repeat + 1):
        for k, net in nets.items():
            t0 = time.perf_counter()
            net(graphs[k]).square().mean().backward()
            times[k].append(time.perf_counter() - t0)
    print(f"{'layers':10s} {'parameters':>10s} {'median step':>12s}")
    for k, net in nets.items():
        print(f"{k:10s} {net.n_parameters:10d} {1000 * np.median(times[k][1:]):9.0f} ms")
    return "accuracy.step-time"


if __name__ == "__main__":
    from results import record, tee
    with tee() as printed:
        section = main()
    record(section, printed)
