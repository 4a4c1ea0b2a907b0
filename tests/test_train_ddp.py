"""Training in several processes (torch DDP through torchrun) gives the weights of one process."""
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hotham.dataset import Dataset, build_dataset
from hotham.errors import HothamError
from hotham.train import TrainConfig, last_state_path, train

SHIPPED = Path(__file__).parents[1] / "data" / "bilayer_graphene_slid_1x1"
MODEL = dict(lmax=2, channels=4, layers=1, hidden=16, n_radial=8)
CONFIG = dict(epochs=3, lr=1e-2, batch_size=2, dtype="float64", band_weight=0.05, band_start=2, band_kpoints=2)

# one process of the run; "plain" back-propagates each process's own loss (no rescaling)
WORKER = r"""
import sys
from hotham.threads import set_threads
set_threads(1)
import hotham.train as T
if sys.argv[3] == "plain":
    rescaled = T._ddp_loss
    def plain(pred, target, world, empty=False, weight=None):
        _, value, n, mae_sum = rescaled(pred, target, world, empty, weight)
        return T._loss(pred, target, weight) * (0.0 if empty else 1.0), value, n, mae_sum
    T._ddp_loss = plain
T.train(sys.argv[1], sys.argv[2], model=%r, config=T.TrainConfig(**%r), log=print)
""" % (MODEL, CONFIG)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(tmp_path, data, out, mode="rescaled"):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                           str(script), str(data), str(out), mode], capture_output=True, text=True, timeout=600)


def _max_diff(a: Path, b: Path) -> float:
    wa = torch.load(last_state_path(a), weights_only=False)["model"]
    wb = torch.load(last_state_path(b), weights_only=False)["model"]
    assert wa.keys() == wb.keys()
    return max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].is_floating_point())


def test_two_processes_give_the_weights_of_one(tmp_path):
    """2 gloo processes, batch_size 2 (one structure each), block and band losses, 5 training
    structures (the last batch leaves one process without any): the weights of one process with
    batch_size 2, to float64 round-off; without the rescaled loss they are not."""
    data = tmp_path / "set.h5"
    build_dataset(sorted(SHIPPED.iterdir())[:7], data, split=(0.7, 0.3, 0.0), progress=False)
    assert len(Dataset(data).split("train")) % 2 == 1
    one = tmp_path / "one.pt"
    train(data, one, model=MODEL, config=TrainConfig(**CONFIG), log=lambda s: None)

    two = tmp_path / "two.pt"
    run = _torchrun(tmp_path, data, two)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("epoch    3/3") == 1               # only process 0 logs
    diff = _max_diff(one, two)
    print(f"max |dw| one vs two processes: {diff:.3e}")
    assert diff < 1e-10
    assert (tmp_path / "two.pt.metrics.csv").exists() and (tmp_path / "two.pt.config.yaml").exists()

    plain = tmp_path / "plain.pt"
    run = _torchrun(tmp_path, data, plain, "plain")
    assert run.returncode == 0, run.stderr[-3000:]
    diff = _max_diff(one, plain)
    print(f"max |dw| one process vs two without rescaling: {diff:.3e}")
    assert diff > 1e-6


def test_batch_size_must_split_evenly(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(HothamError, match="batch_size = 3 is not a multiple of the 2 processes"):
        train(tmp_path / "set.h5", tmp_path / "m.pt", config=TrainConfig(batch_size=3), log=lambda s: None)
