"""Which training loss removes ghost states: fine-tuning the shipped bilayer-graphene model with
the block loss alone, with the band stage (energies relative to E_F), and with each of the two
terms on H where S is nearly singular (``ghost_loss`` "spectrum" and "projection",
:mod:`hotham.band_loss`), for the same number of epochs on the same data.

Training data: the 12 slid AB bilayers of data/ and the strained AB bilayers of ``--strained``
(OpenMX runs of hotham's workflow: biaxial strain, interlayer distances 3.2-3.7 A; every
converged run found), 80 % train / 20 % validation. Every row starts from
data/models/bilayer_graphene.pt (its weights and baseline) and runs ``--epochs`` epochs (one
thread). Evaluation, on cells no row trains on:

* the DFT runs of ``--test`` (AB bilayer at -3, 0, +3 % biaxial strain, uniaxial strain, a 2x2
  cell with 0.05 A noise): H predicted on the DFT blocks, DFT's S kept; block MAE, band MAE
  within +-1.5 eV of E_F after the best constant shift on the automatic band path (40 k), the
  lowest predicted eigenvalue below DFT's lowest band, and the ghost states flagged at Gamma
  and the special points (:func:`hotham.prediction.ghost_check`);
* data/bilayer_graphene_slid_1x1/000 with its in-plane cell scaled by 0.99, 1.007 and 1.01
  (bare structures, S from the PAO files: needs ``HOTHAM_OPENMX_DATA``): flagged ghost states.

    OMP_NUM_THREADS=1 python benchmarks/ghost_losses.py --strained sets/bilayer_graphene_strain \
        --test sets/bilayer_graphene_test [--epochs 30] [--rows block band spectrum projection]
        [--max-strained 0]      # section ghost-losses.unstrained: the slid bilayers alone
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "data" / "models" / "bilayer_graphene.pt"
SLID = ROOT / "data" / "bilayer_graphene_slid_1x1"

ROWS = {
    "shipped": None,                                        # the shipped model, no fine-tuning
    "block": {},
    "band": {"band_weight": 0.1, "band_align": "fermi"},
    "spectrum": {"ghost_loss": "spectrum", "ghost_weight": 0.1},
    "projection": {"ghost_loss": "projection", "ghost_weight": 0.1},
}


def converged_runs(folder: Path) -> list[Path]:
    """The run folders under ``folder`` whose OpenMX run converged (an .scfout and run.json says so)."""
    import json
    out = []
    for run in sorted(p for p in folder.iterdir() if p.is_dir()):
        status = run / "run.json"
        if status.exists() and json.loads(status.read_text()).get("status") == "converged" \
                and any(run.glob("*.scfout*")):
            out.append(run)
    return out


def evaluate(model, tests, strains) -> list[str]:
    """Per-cell figures of ``model`` (see the module docstring), one line each."""
    import hotham
    from hotham import io
    from hotham.electronic import band_path, eigenvalues
    from hotham.electronic.compare import block_mae, compare_bands
    from hotham.electronic.ghosts import GhostStateWarning
    from hotham.parsers.openmx.pao import OpenMXDataNotFound
    from hotham.prediction import DomainWarning, QualityWarning
    lines, total = [], 0
    for run in tests:
        dft = io.read(run)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (GhostStateWarning, DomainWarning, QualityWarning))
            pred = hotham.predict(model, dft)
        kp = band_path(dft.atoms, None, 40).kpts
        ed, ep = eigenvalues(dft, kp), eigenvalues(pred, kp)
        cmp = compare_bands(ep, ed, model_fermi=pred.fermi_level, ref_fermi=dft.fermi_level, window=(-1.5, 1.5),
                            align="fit")
        ghosts = pred.meta["ghost_states"]
        total += ghosts
        lines.append(f"  {run.name:14s} block {block_mae(pred, dft, 'H')['mae']:7.3f} meV  bands {cmp.mae_meV:8.1f} meV  "
                     f"lowest {ep.min() - ed.min():+9.2f} eV  ghosts {ghosts:3d}")
    atoms0 = io.read(SLID / "000").atoms
    for s in strains:
        a = atoms0.copy()
        cell = a.cell.array.copy()
        cell[:2] *= s
        a.set_cell(cell, scale_atoms=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", (GhostStateWarning, DomainWarning, QualityWarning))
                pred = hotham.predict(model, a)
        except OpenMXDataNotFound:
            lines.append("  strained copies: not checked (no PAO files: set HOTHAM_OPENMX_DATA)")
            break
        total += pred.meta["ghost_states"]
        lines.append(f"  000 x {s:<9g} E_F {pred.fermi_level:7.3f} eV                          ghosts "
                     f"{pred.meta['ghost_states']:3d}")
    lines.append(f"  ghost states flagged in all: {total}")
    return lines


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--strained", type=Path, required=True,
                    help="folder of strained OpenMX runs to train on (python examples/dft_sets.py "
                         "bilayer_graphene_strain --run)")
    ap.add_argument("--test", type=Path, required=True,
                    help="folder of held-out OpenMX runs (python examples/dft_sets.py bilayer_graphene_test --run)")
    ap.add_argument("--max-strained", type=int, default=12,
                    help="at most this many strained runs in training (0: the slid bilayers alone)")
    ap.add_argument("--lr", type=float, default=2e-4, help="learning rate of the fine-tuning (default 2e-4)")
    args = ap.parse_args(argv)
    from hotham.dataset import build_dataset
    from hotham.checkpoint import load_predictor
    from hotham.train import TrainConfig, train
    strained = converged_runs(args.strained)[:args.max_strained] if args.strained.is_dir() else []
    tests = converged_runs(args.test) if args.test.is_dir() else []
    print(f"training cells: {len(list(SLID.iterdir()))} slid bilayers + {len(strained)} strained runs of "
          f"{args.strained}; held out: {', '.join(t.name for t in tests)}; {args.epochs} epochs per row, "
          f"{os.environ.get('OMP_NUM_THREADS', '?')} thread(s)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "set.h5"
        build_dataset([SLID, *strained], data, split=(0.8, 0.2, 0.0), seed=0, progress=False)
        for name in args.rows:
            t0 = time.time()
            if ROWS[name] is None:
                model, val = SHIPPED, None
            else:
                model = tmp / f"{name}.pt"
                cfg = TrainConfig(epochs=args.epochs, lr=args.lr, band_start=1, band_kpoints=4, lr_patience=5,
                                  **ROWS[name])
                result = train(data, model, init=SHIPPED, config=cfg, log=lambda s: None, force=True)
                val = min(h["val_mae_meV"] for h in result["history"])
            wall = time.time() - t0
            print(f"{name}: " + ("no fine-tuning" if val is None else
                                 f"best validation block MAE {val:.3f} meV, {wall:.0f} s"), flush=True)
            for line in evaluate(load_predictor(model, device="cpu"), tests, (0.99, 1.007, 1.01)):
                print(line, flush=True)
    rows = "" if args.rows == list(ROWS) else "." + "-".join(args.rows)
    return ("ghost-losses" + ("" if args.max_strained else ".unstrained") + rows
            + ("" if args.epochs == 30 else f"-{args.epochs}"))


if __name__ == "__main__":
    from results import record, tee
    with tee() as printed:
        section = main()
    record(section, printed)
