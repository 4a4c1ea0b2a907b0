"""``hotham demo``: the shipped model (or ``--train``) on the slid bilayers and twisted bilayer graphene."""
from __future__ import annotations

from .options import DEVICE, add_force_option, add_model_options, defaults_from, later, model_kwargs


def _options(parser) -> None:
    from ..demo import DEMO_MODEL, DEMO_TRAINING
    from ..nn.model import HotHamConfig
    from ..train import TrainConfig
    add_model_options(parser, TrainConfig, title="training (with --train)", defaults=DEMO_TRAINING,
                      exclude=("target", "device"))
    add_model_options(parser, HotHamConfig, title="model (with --train)",
                      defaults={**DEMO_MODEL, "r_cut": "just above the longest block"})


def register(subparsers) -> None:
    from .. import demo
    p = subparsers.add_parser("demo", help="the shipped model on slid bilayers and twisted bilayer graphene",
                              description=demo.__doc__.split("\n", 1)[1])
    p.add_argument("--out", help="output folder (default %(default)s)")
    p.add_argument("--data", help="folder with bilayer_graphene_slid_1x1/ and tbg_21.79/ (default: the shipped data/)")
    p.add_argument("--train", action="store_true", help="retrain the model for a fixed number of epochs (--epochs)")
    p.add_argument("--checkpoint", help="the model to show without --train (default: the shipped one)")
    p.add_argument("--device", type=DEVICE, help="auto (CUDA when present), cpu or cuda (default %(default)s)")
    add_force_option(p)
    defaults_from(p, demo.run_demo)
    later(p, _options)
    p.set_defaults(func=_run)


def _run(args) -> int:
    from ..demo import run_demo
    from ..nn.model import HotHamConfig
    from ..train import TrainConfig
    s = run_demo(args.out, args.data, train=args.train, checkpoint=args.checkpoint, device=args.device,
                 model=model_kwargs(args, HotHamConfig), training=model_kwargs(args, TrainConfig),
                 log=lambda line: print(line, flush=True), force=args.force)
    print(f"\nwrote {args.out}/set.h5, tbg_bands.png, summary.json in {s['wall_s']:.0f} s", flush=True)
    if not s["passes_quality_gate"]:
        print(f"the model is NOT good enough for bands (validation block MAE {s['val_block_mae_meV']:.3g} meV > "
              f"{s['quality_gate_meV']:g} meV): train longer (--train --epochs) before trusting the picture",
              flush=True)
    return 0
