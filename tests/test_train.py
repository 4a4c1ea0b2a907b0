"""Training, checkpoints, evaluation and prediction on the real DeepH test structures."""
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from hotham import io
from hotham.cli import main
from hotham.dataset import Dataset, build_dataset
from hotham.errors import FormatError, HothamError
from hotham.metrics import block_errors
from hotham.so3 import random_rotation, rotate_operator
from hotham import predict
from hotham.baseline import OnsiteBaseline
from hotham.checkpoint import load_predictor
from hotham.train import TrainConfig, train

from conftest import TINY


DATA = Path(__file__).parent / "data"


def test_onsite_baseline_is_equivariant():
    op = io.read(DATA / "deeph" / "graphene_mono_2x2" / "000")
    base = OnsiteBaseline.fit([op])
    Q = random_rotation(np.random.default_rng(3), improper=True)
    b = op.with_blocks(H=base.flat(op))
    rotated = rotate_operator(b, Q)
    assert np.abs(rotated.H - base.flat(rotate_operator(op, Q))).max() < 1e-9  # traces of rotated blocks: round-off
    # first s shell: the mean on-site energy; first p shell (orbitals 2..4): mean of tr/3
    onsite = op.onsite_edges()
    blk = base.flat(op)[op.offsets[onsite[0]]:op.offsets[onsite[0] + 1]].reshape(13, 13)
    assert blk[0, 0] == pytest.approx(np.mean([op.h_block(k)[0, 0] for k in onsite]), abs=1e-12)
    assert blk[3, 3] == pytest.approx(np.mean([np.trace(op.h_block(k)[2:5, 2:5]) / 3 for k in onsite]), abs=1e-12)
    assert blk[2, 3] == 0.0  # off-diagonal inside a p shell: not part of the baseline


def test_training_reduces_error_and_checkpoint_roundtrips(dataset, trained):
    out, result = trained
    hist = result["history"]
    assert hist[-1]["train_mae_meV"] < 0.7 * hist[0]["train_mae_meV"]
    pred = load_predictor(out)
    ds = Dataset(dataset)
    op = ds[ds.split("val")[0]]
    p = predict(pred, op, fermi_method=None)
    assert p.hermiticity_error() == 0.0
    assert p.S is op.S or np.array_equal(p.S, op.S)
    rep = block_errors(p, op)
    # the checkpoint holds the best epoch, whose val MAE the history recorded
    best = min(h["val_mae_meV"] for h in hist)
    assert rep["all"]["mae"] == pytest.approx(best, rel=1e-4)
    assert set(rep["orbital"]) >= {"s-s", "p-d", "d-d"} and "C-C" in rep["species"]
    assert Path(str(out) + ".json").exists()


def test_nan_targets_are_refused(dataset, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(Path(dataset).read_bytes())
    with h5py.File(bad, "r+") as f:
        name = sorted(f["structures"])[0]
        H = f["structures"][name]["H"]
        H[3] = np.nan
    # refused as soon as the structure is read, naming the file and the structure
    with pytest.raises(FormatError, match=f"bad.h5.*{name}.*H holds NaN or inf"):
        train(bad, tmp_path / "m.pt", model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    assert not (tmp_path / "m.pt").exists()


def test_foreign_checkpoint(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(FormatError, match="x.pt"):
        load_predictor(p)
    torch.save({"foo": 1}, p)
    with pytest.raises(FormatError, match="not a hotham model checkpoint"):
        load_predictor(p)


def test_cli_evaluate_and_predict(dataset, trained, tmp_path, capsys):
    out, _ = trained
    assert main(["evaluate", str(out), str(dataset), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert "MAE" in text and "per orbital pair" in text
    src = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"
    assert main(["predict", str(out), str(src), "-o", str(tmp_path / "p.h5")]) == 0
    p = io.read(tmp_path / "p.h5")
    ref = io.read(src)
    assert np.array_equal(p.edge_R, ref.edge_R) and np.array_equal(p.S, ref.S)
    assert p.hermiticity_error() == 0.0


def _self_contained(out, tmp_path) -> Path:
    """A copy of the checkpoint ``out`` that carries PAO data: its own (training embeds it when
    OpenMX's files are there) or, on a clone without them, the shipped carbon model's (same basis
    C6.0-s2p2d1), so that the prediction tests run everywhere."""
    ckpt = torch.load(out, weights_only=False)
    if "pao" not in ckpt:
        ckpt["pao"] = torch.load(Path(__file__).parents[1] / "data" / "models" / "bilayer_graphene.pt",
                                 weights_only=False)["pao"]
    torch.save(ckpt, tmp_path / "self_contained.pt")
    return tmp_path / "self_contained.pt"


def test_training_embeds_the_basis_when_the_files_are_there(trained, openmx_data, monkeypatch):
    from hotham.basis import Basis
    from hotham.parsers.openmx.pao import DATA_ENV
    from hotham.train import _embedded_basis
    out, _ = trained
    carried = load_predictor(out).paos            # trained with $HOTHAM_OPENMX_DATA set (tests/conftest.py)
    assert carried["C"].name == "C6.0" and carried["C"].radial.shape[:2] == (3, 2)
    monkeypatch.delenv(DATA_ENV)
    lines = []
    assert _embedded_basis(Basis.from_openmx({"C": "C6.0-s2p2d1"}), lines.append) == {}
    assert "embed-basis" in lines[0]


def test_predict_bare_structure_matches_dft_edges(trained, tmp_path):
    """A structure file alone: OpenMX's edges from the PAO radii, S from the PAO data (the model's,
    or OpenMX's files when $HOTHAM_OPENMX_DATA names them), and the same predicted H as on the
    DFT's own blocks (H depends on geometry only)."""
    from ase.io import write as ase_write
    out = _self_contained(trained[0], tmp_path)
    src = DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"
    dft = io.read(src)
    ase_write(tmp_path / "bilayer.xyz", dft.atoms, format="extxyz")
    bare = predict(out, tmp_path / "bilayer.xyz")
    on_dft = predict(out, dft)
    assert bare.n_edges == dft.n_edges
    e_bare = np.array([bare.find_edge(i, j, R) for i, j, R in zip(dft.edge_i, dft.edge_j, dft.edge_R)])
    assert np.array_equal(np.sort(e_bare), np.arange(dft.n_edges))
    for e in (0, 17, dft.n_edges - 1):
        assert np.abs(bare.h_block(e_bare[e]) - on_dft.h_block(e)).max() < 1e-5
        assert np.abs(bare.s_block(e_bare[e]) - dft.s_block(e)).max() < 1e-5  # PAO overlap vs OpenMX's grid
    assert bare.hermiticity_error() == 0.0


def test_fermi_level_from_electron_count_matches_openmx():
    """The E_F a prediction gets (electron count on a mesh) reproduces OpenMX's chemical potential
    when applied to the DFT blocks themselves (slid bilayer: 16 electrons, OpenMX's own 9x9 mesh
    and the automatic 12x12)."""
    from hotham.electronic import automatic_mesh, find_fermi_level
    dft = io.read(DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000")
    ef = find_fermi_level(dft, (9, 9, 1))                       # OpenMX's own scf.Kgrid
    assert abs(ef - dft.fermi_level) < 2e-3
    # about 400 atoms x k-points would be 10x10; a hexagonal lattice gets a multiple of 3, holding K
    assert automatic_mesh(dft.atoms) == (12, 12, 1)
    ef = find_fermi_level(dft)                                  # automatic 12x12: K on it, as on OpenMX's 9x9
    assert abs(ef - dft.fermi_level) < 1e-4
    # above max_orbitals the bands below E_F are counted (inertia) instead of diagonalised: same E_F
    dense = find_fermi_level(dft, (9, 9, 1))
    info = {}
    assert abs(find_fermi_level(dft, (9, 9, 1), max_orbitals=10, info=info) - dense) < 1e-6
    assert info["method"] == "count"


def test_prediction_carries_valence_and_fermi_level(trained, tmp_path):
    from ase.io import write as ase_write
    out = _self_contained(trained[0], tmp_path)
    dft = io.read(DATA / "deeph" / "graphene_mono_2x2" / "000")
    ase_write(tmp_path / "g.xyz", dft.atoms, format="extxyz")
    p = predict(out, tmp_path / "g.xyz")
    assert p.meta["valence_electrons"] == {"C": 4.0}
    assert np.isfinite(p.fermi_level) and "mesh" in p.meta["fermi_level_method"]
    assert "dense" in p.meta["fermi_level_method"]
    assert "g.xyz" in p.source


def test_prediction_counts_from_the_training_cells_fermi_level(dataset, trained, monkeypatch, tmp_path):
    """The checkpoint records its training cells' median E_F per chemistry; a prediction of a bare
    structure of that chemistry, counted (threshold lowered), starts there and equals dense."""
    import hotham.electronic.fermi as fermi
    from hotham.train import fermi_levels
    out = _self_contained(trained[0], tmp_path)       # a bare structure: S from the PAO data
    with Dataset(dataset) as ds:
        expected = fermi_levels([ds[n] for n in ds.split("train")])
    assert load_predictor(out).info["fermi_levels"] == pytest.approx(expected) and set(expected) == {"C"}
    atoms = io.read(DATA / "deeph" / "graphene_mono_2x2" / "000").atoms
    dense = predict(out, atoms)
    monkeypatch.setattr(fermi, "DENSE_FERMI_MAX", 10)
    counted = predict(out, atoms)
    assert f"{expected['C']:.4f} eV, the training cells' E_F" in counted.meta["fermi_level_method"]
    assert counted.fermi_level == pytest.approx(dense.fermi_level, abs=1e-6)


def test_predict_unknown_species_names_what_the_model_knows(trained):
    """A carbon model on MoS2 says which species it knows (not "no basis label for Mo, S")."""
    from hotham.errors import BasisError
    out, _ = trained
    mos2 = io.read(DATA / "openmx" / "mos2_prim").atoms
    with pytest.raises(BasisError, match="the model knows only C; the structure also has Mo, S"):
        predict(out, mos2)


def test_out_of_domain_structures_warn_once(trained):
    """A bilayer model on monolayer graphene, or on atoms squeezed together, warns once with
    the reasons; a structure like its training set does not."""
    import warnings
    from hotham.prediction import DomainWarning
    out, _ = trained
    with warnings.catch_warnings():
        warnings.simplefilter("error", DomainWarning)
        predict(out, io.read(DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000"), fermi_method=None)
    mono = io.read(DATA / "deeph" / "graphene_mono_2x2" / "000")
    with pytest.warns(DomainWarning) as rec:
        p = predict(out, mono, fermi_method=None)
    rec = [r for r in rec if r.category is DomainWarning]      # (the quality gate warns too: 12 epochs)
    assert len(rec) == 1 and "neighbours within 4 A; training had" in str(rec[0].message)
    assert p.meta["outside_training_domain"]
    squeezed = io.read(DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000")
    squeezed.atoms.positions[1] = squeezed.atoms.positions[0] + [0.9, 0.0, 0.0]
    with pytest.warns(DomainWarning, match="C-C atoms 0.900 A apart, closer than any pair in training"):
        predict(out, squeezed, fermi_method=None)


def test_predict_reports_its_stages(trained, capsys):
    out, _ = trained
    predict(out, DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000", progress=True)
    err = capsys.readouterr().err
    for stage in ("predict: reading", "predict: network on", "predict: Fermi level from the electron count"):
        assert stage in err and err.count(stage) == 2          # start and end with its time
    assert "done in" in err
    predict(out, DATA / "deeph" / "bilayer_graphene_slid_1x1" / "000", progress=False)
    assert capsys.readouterr().err == ""


def test_existing_checkpoint_is_not_overwritten(dataset, trained, tmp_path):
    out, _ = trained
    before = out.read_bytes()
    with pytest.raises(HothamError, match="exists: refusing to overwrite"):
        train(dataset, out, model=TINY, config=TrainConfig(epochs=1), log=lambda s: None)
    assert out.read_bytes() == before


def test_time_limit_is_checked_inside_an_epoch(tmp_path):
    """max_minutes stops the run after the step that crosses it, not at the end of the epoch."""
    shipped = Path(__file__).parents[1] / "data" / "bilayer_graphene_slid_1x1"
    build_dataset(sorted(shipped.iterdir())[:4], tmp_path / "set.h5", split=(0.75, 0.25, 0.0), progress=False)
    lines = []
    res = train(tmp_path / "set.h5", tmp_path / "m.pt", model=TINY, config=TrainConfig(epochs=50, max_minutes=1e-6),
                log=lines.append)
    assert len(res["history"]) == 1 and "minute limit reached inside the epoch" in lines[-1]


RUN = r"""
import sys
from hotham.threads import set_threads
set_threads(1)
from hotham.train import TrainConfig, train
train(sys.argv[1], sys.argv[2], model=dict(lmax=2, channels=4, layers=1, hidden=16, n_radial=8),
      config=TrainConfig(epochs=int(sys.argv[3]), lr=1e-2, batch_size=2, lr_patience=1, ema_decay=0.9,
                         band_weight=0.05, band_start=2, band_kpoints=2, optimizer="adamw", weight_decay=1e-4),
      log=print,
      resume=sys.argv[4] == "resume")
"""


def test_resume_after_sigkill_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    import subprocess
    import sys
    import time
    import torch
    from hotham.train import last_state_path
    shipped = Path(__file__).parents[1] / "data" / "bilayer_graphene_slid_1x1"
    build_dataset(sorted(shipped.iterdir())[:6], tmp_path / "set.h5", split=(0.67, 0.33, 0.0), progress=False)
    run = [sys.executable, "-c", RUN, str(tmp_path / "set.h5")]
    subprocess.run(run + [str(tmp_path / "a.pt"), "8", "new"], check=True, capture_output=True)
    # the same run, killed (SIGKILL) once the state of its third epoch is on disk, then resumed
    b = tmp_path / "b.pt"
    proc = subprocess.Popen(run + [str(b), "8", "new"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None:
        if last_state_path(b).exists() and torch.load(last_state_path(b), weights_only=False)["epoch"] >= 3:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    killed_at = torch.load(last_state_path(b), weights_only=False)["epoch"]
    assert 3 <= killed_at < 8, "the run ended before it could be killed: make it longer"
    out = subprocess.run(run + [str(b), "8", "resume"], check=True, capture_output=True, text=True).stdout
    assert f"resuming from {last_state_path(b)} after epoch {killed_at}" in out
    for f in (lambda p: p, last_state_path):
        A = torch.load(f(tmp_path / "a.pt"), weights_only=False)
        B = torch.load(f(b), weights_only=False)
        wa, wb = (A["model"]["state_dict"], B["model"]["state_dict"]) if "format" in A else (A["model"], B["model"])
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # resuming a finished run needs more epochs; another configuration is refused
    with pytest.raises(HothamError, match="batch_size"):
        train(tmp_path / "set.h5", b, model=dict(lmax=2, channels=4, layers=1, hidden=16, n_radial=8),
              config=TrainConfig(epochs=9, lr=1e-2, batch_size=1, lr_patience=1, ema_decay=0.9, band_weight=0.05,
                                 band_start=2, band_kpoints=2, optimizer="adamw", weight_decay=1e-4),
              log=lambda s: None, resume=True)


def test_cli_train_refuses_an_existing_output_and_resumes(dataset, tmp_path, capsys):
    from hotham.cli import main
    out = tmp_path / "m.pt"
    args = ["train", str(dataset), "-o", str(out), "--epochs", "2", "--lmax", "2", "--channels", "4", "--layers", "1",
            "--quiet"]
    assert main(args) == 0
    assert main(args) == 2 and "refusing to overwrite" in capsys.readouterr().err
    more = args[:5] + ["3"] + args[6:]                             # --epochs 3
    assert main(more + ["--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert main(args + ["--force"]) == 0


def test_training_reports_before_its_first_epoch_ends(dataset, tmp_path, capsys):
    """The graphs are built (minutes for large sets) before the first epoch: that is said."""
    train(dataset, tmp_path / "m.pt", model=TINY, config=TrainConfig(epochs=1), log=lambda s: None, progress=True)
    err = capsys.readouterr().err
    assert "train: graphs of 2 structures ..." in err and "train: epoch 1" in err


def test_yaml_run_file_errors_name_the_key(tmp_path, dataset):
    from hotham.train import load_run_config
    f = tmp_path / "run.yaml"
    f.write_text(f"data: {dataset}\noutput: m.pt\nmodel: {{lmax: 2, chanels: 4}}\ntrain: {{epochs: two, lr: 1e-3}}\n")
    with pytest.raises(HothamError) as err:
        load_run_config(f)
    msg = str(err.value)
    assert "run.yaml" in msg and "chanels" in msg and "train.epochs" in msg
    f.write_text(f"data: {dataset}\noutpt: m.pt\n")
    with pytest.raises(HothamError, match="outpt: Extra inputs are not permitted"):
        load_run_config(f)
    f.write_text("data: [unclosed\n")
    with pytest.raises(HothamError, match="not valid YAML"):
        load_run_config(f)


def test_yaml_run_with_overrides_ema_warmup_and_band_stage(tmp_path, dataset, capsys):
    """A YAML run (flags override it) with warm-up, EMA, early stopping and the band-loss stage:
    it writes the resolved config, the metrics CSV, and its band term is logged."""
    import yaml
    from hotham.cli import main
    f = tmp_path / "run.yaml"
    f.write_text(yaml.safe_dump({"data": str(dataset), "output": "m.pt",
                                 "model": {"lmax": 2, "channels": 4, "layers": 1, "hidden": 16, "n_radial": 8},
                                 "train": {"epochs": 50, "lr": 1e-2, "warmup_epochs": 2, "ema_decay": 0.9,
                                           "band_weight": 0.1, "band_start": 2, "band_kpoints": 2,
                                           "early_stop": 100}}))
    assert main(["train", str(f), "--epochs", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    last = next(line for line in out.splitlines() if line.startswith("epoch    3/3"))
    assert "band" in last and "ETA" in last
    resolved = yaml.safe_load((tmp_path / "m.pt.config.yaml").read_text())
    assert resolved["train"]["epochs"] == 3 and resolved["train"]["ema_decay"] == 0.9
    assert resolved["model"]["lmax"] == 2
    import csv
    rows = list(csv.DictReader(open(tmp_path / "m.pt.metrics.csv")))
    assert len(rows) == 3 and rows[0]["train_band_mae_meV"] == "" and float(rows[2]["train_band_mae_meV"]) > 0
    assert float(rows[0]["lr"]) == pytest.approx(5e-3)          # warm-up: half the rate in epoch 1 of 2


def test_tensorboard_only_when_installed(trained):
    """The per-epoch metrics go to <output>.tb/ when tensorboard imports; otherwise nothing is written."""
    out, result = trained
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        assert not Path(str(out) + ".tb").exists()
        return
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(out) + ".tb")
    events.Reload()
    mae = events.Scalars("train_mae_meV")
    assert [e.step for e in mae] == [h["epoch"] for h in result["history"]]
    assert [e.value for e in mae] == pytest.approx([h["train_mae_meV"] for h in result["history"]], rel=1e-6)


def test_lazy_structures_and_uncached_graphs_give_the_same_weights(tmp_path):
    """A memory budget of 0 GB (every graph rebuilt at every step from structures read on demand,
    in 2 DataLoader worker processes or in the training process) trains to the same weights, bit
    for bit, as caching everything (one thread: torch's parallel reductions vary in the last bit)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _train_with_budgets(tmp_path)
    finally:
        torch.set_num_threads(threads)


def _train_with_budgets(tmp_path):
    import torch
    shipped = Path(__file__).parents[1] / "data" / "bilayer_graphene_slid_1x1"
    build_dataset(sorted(shipped.iterdir())[:5], tmp_path / "set.h5", split=(0.6, 0.4, 0.0), progress=False)
    weights = []
    for k, extra in enumerate([{}, {"cache_gb": 0.0}, {"cache_gb": 0.0, "workers": 2}]):
        lines = []
        train(tmp_path / "set.h5", tmp_path / f"m{k}.pt", model=TINY, log=lines.append,
              config=TrainConfig(epochs=3, lr=1e-2, batch_size=2, **extra))
        assert ("batch graphs cached" in " ".join(lines)) == bool(extra)
        weights.append(torch.load(tmp_path / f"m{k}.pt", weights_only=False)["model"]["state_dict"])
    for w in weights[1:]:
        assert all(torch.equal(w[name], weights[0][name]) for name in w)


def test_fine_tuning_with_a_band_stage_of_its_own_and_a_ghost_loss(dataset, trained, tmp_path):
    """Fine-tuning starts from a checkpoint's weights; a band stage after epoch 1 restarts the
    learning rate at band_lr with its own schedule, and the ghost term is logged."""
    import csv
    from hotham.checkpoint import load_predictor
    logs = []
    cfg = TrainConfig(epochs=3, lr=1e-3, min_lr=1e-6, band_weight=0.05, band_start=2, band_kpoints=2, band_lr=4e-4,
                      ghost_loss="projection", ghost_weight=0.1)
    train(dataset, tmp_path / "f.pt", init=trained[0], config=cfg, log=logs.append)
    assert any(line.startswith("starting from the weights of") for line in logs)
    assert any("band stage from epoch 2: learning rate 4.00e-04" in line for line in logs)
    rows = list(csv.DictReader(open(tmp_path / "f.pt.metrics.csv")))
    assert float(rows[1]["lr"]) == pytest.approx(4e-4) and float(rows[2]["train_ghost_projection_meV"]) > 0
    # the first epoch starts from the trained weights: its validation error is the trained model's, not a fresh one's
    first = load_predictor(trained[0]).info["history"]
    assert float(rows[0]["val_mae_meV"]) < 2 * min(h["val_mae_meV"] for h in first)


def test_fine_tuning_from_the_command_line_and_a_run_file_switches_the_envelope_on(dataset, trained, tmp_path):
    """``hotham train --init MODEL`` and ``init:`` in a run file fine-tune; ``pair_envelope`` given
    with it switches the parameter-free hopping envelope on for a model trained without it."""
    from hotham.checkpoint import load_predictor
    from hotham.cli import main
    start = load_predictor(trained[0])
    out = tmp_path / "cli.pt"
    assert main(["train", str(dataset), "--init", str(trained[0]), "--epochs", "1", "-o", str(out), "--quiet"]) == 0
    tuned = load_predictor(out)
    assert tuned.model.config == start.model.config
    run = tmp_path / "ft.yaml"
    run.write_text(f"data: {dataset}\noutput: ft.pt\ninit: {trained[0]}\nmodel: {{pair_envelope: 0.5}}\n"
                   "train: {epochs: 1}\n")
    assert main(["train", str(run), "--quiet"]) == 0
    env = load_predictor(tmp_path / "ft.pt").model.config
    assert env.pair_envelope == 0.5 and env.pao_radii["C"] == pytest.approx(6.0 * 0.529177, rel=1e-4)
    assert {k: v for k, v in env.model_dump().items() if k not in ("pair_envelope", "pao_radii")} == \
        {k: v for k, v in start.model.config.model_dump().items() if k not in ("pair_envelope", "pao_radii")}
