"""Train the model that `make demo` ships, and record how good it is.

    python examples/train_demo_model.py            # the shipped model: data/models/bilayer_graphene.pt
    python examples/train_demo_model.py --quick    # 3 epochs into a temporary folder (CI)
    python examples/train_demo_model.py --record-only   # re-measure the shipped checkpoint, rewrite its record

The recipe examples/demo_model.yaml (fixed seed and epoch budget) run by examples/train_model.py
on the 12 slid AB bilayers of data/bilayer_graphene_slid_1x1 (9 train, 3 validation, the split
seeded). The record beside the checkpoint (bilayer_graphene.json) holds the validation block MAE,
the block and band errors on the held-out twisted bilayer data/tbg_21.79
(hotham.demo.check_twisted_bilayer), the epochs run, the wall time, the machine and the date.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_model import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main([str(Path(__file__).resolve().parent / "demo_model.yaml"), *sys.argv[1:]]))
