"""Training the Hot-Ham model on a hotham data set.

    from hotham.train import TrainConfig, train
    result = train("set.h5", "model.pt", model={"lmax": 4, "channels": 16}, config=TrainConfig(epochs=200))
    pred = hotham.predict("model.pt", op)             # BlockOperator with predicted H (eV)

Targets are the DFT blocks in eV minus the equivariant on-site baseline
(:class:`hotham.baseline.OnsiteBaseline`); the network learns the residual. Spin-orbit data
(``spin="soc"``) give a model with the SOC head, trained on the real spin-less and SOC parts of
the spinor blocks (:func:`hotham.soc.real_parts`: the loss over them is the loss over the real and
imaginary parts of the spinor elements). The loss is the
Hot-Ham paper's: mean absolute error plus root-mean-square error over all block elements. The
best model on the validation split is written as a checkpoint (:mod:`hotham.checkpoint`).
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .baseline import OnsiteBaseline
from .checkpoint import Predictor, resolve_device
from .domain import training_domain
from .errors import BasisError, HothamError
from .evaluation import evaluate
from .files import atomic_path, check_outputs
from .training_graphs import GraphStore, Structures, GraphBuilder


class TrainingError(HothamError):
    """Training cannot go on: NaN targets or a diverging loss (the message says where)."""


class TrainConfig(BaseModel):
    """Optimisation settings (JSON-serialisable; stored in the checkpoint).

    The defaults live here and only here: the command-line options of ``hotham train`` are
    derived from these fields, and a YAML run file (:func:`load_run_config`) fills them by name.
    Learning rate: ReduceLROnPlateau on the validation loss (``lr_patience``, ``lr_factor``,
    ``min_lr``) after ``warmup_epochs`` of linear warm-up. With ``ema_decay`` the exponential
    moving average of the weights is what is validated and saved. The band-energy loss
    (:mod:`hotham.band_loss`) joins the block loss from epoch ``band_start`` on with weight
    ``band_weight``: HamGNN's second stage, once the blocks have converged; with ``band_align``
    "fermi" it compares energies relative to E_F (after the best constant shift). A stage that
    starts after epoch 1 has its own learning-rate schedule: the rate goes to ``band_lr``
    (default ``lr`` / 5, or the first stage's last rate if higher) with a fresh plateau schedule,
    and the best model is chosen among the stage's epochs (the block loss it trades for bands
    would otherwise keep the first stage's model). ``ghost_loss`` adds, in the same stage with
    weight ``ghost_weight``, a term on H where S is nearly singular (:mod:`hotham.band_loss`):
    "spectrum" (generalised eigenvalues over the whole spectrum) or "projection" (H on S's
    eigenvectors below ``ghost_threshold``), at the same random k-points.
    ``band_half_width`` was ``band_window`` before (still read, with a DeprecationWarning, for one
    release: :attr:`renamed_fields`).
    """

    # every float finite (no NaN, no inf); the ranges are those of the fields (checked on the command line too)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    #: old field name -> new one: old names are still read (run files, checkpoints, ``--band-window``)
    renamed_fields: ClassVar[dict] = {"band_window": "band_half_width"}

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data):
        if isinstance(data, dict) and any(old in data for old in cls.renamed_fields):
            import warnings
            data = dict(data)
            for old, new in cls.renamed_fields.items():
                if old in data:
                    warnings.warn(f"TrainConfig: {old!r} is deprecated, use {new!r}", DeprecationWarning, stacklevel=2)
                    value = data.pop(old)
                    data.setdefault(new, value)
        return data

    epochs: int = Field(100, ge=1, description="passes over the training split")
    lr: float = Field(5e-3, gt=0, le=1.0, description="Adam learning rate (at most 1: larger steps overflow)")
    batch_size: int = Field(1, ge=1, description="structures per step")
    target: Literal["H", "S"] = Field("H", description="learn H (eV) or the overlap S")
    device: str = Field("auto", description="auto (CUDA when present), cpu or cuda")
    dtype: Literal["float32", "float64"] = Field("float32", description="floating-point type of the network")
    lr_patience: int = Field(10, ge=0, description="epochs without validation gain before the learning rate drops")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="factor of each learning-rate drop")
    min_lr: float = Field(1e-5, ge=0, description="lowest learning rate")
    max_minutes: float | None = Field(None, gt=0, description="stop after this wall time, minutes")
    grad_clip: float = Field(10.0, gt=0, description="largest gradient norm")
    seed: int = Field(0, ge=0, description="seed of batching and initialisation")
    optimizer: Literal["adam", "adamw"] = Field("adam", description="Adam, or AdamW (decoupled weight decay)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    warmup_epochs: int = Field(0, ge=0, description="epochs of linear learning-rate warm-up")
    ema_decay: float | None = Field(None, gt=0, lt=1, description="decay of the moving average of the weights that is "
                                                      "validated and saved, e.g. 0.99 (none: the weights themselves)")
    early_stop: int | None = Field(None, ge=1, description="stop after this many epochs without validation gain")
    band_weight: float = Field(0.0, ge=0, description="weight of the band-energy loss (eV) added to the block loss")
    band_start: int = Field(1, ge=0, description="first epoch of the band-energy loss")
    band_kpoints: int = Field(4, ge=1, description="random k-points per structure and step of the band-energy loss")
    band_half_width: float = Field(2.0, gt=0, description="half-width (eV) of the energy window around E_F of the band loss")
    band_align: Literal["none", "fermi"] = Field("fermi", description="band loss on energies relative to E_F "
                                                                       "(best constant shift) or absolute")
    band_lr: float | None = Field(None, gt=0, le=1.0, description="learning rate at the start of a band stage (band_start > 1; "
                                                          "default lr / 5)")
    ghost_loss: Literal["none", "spectrum", "projection"] = Field(
        "none", description="band-stage term on H where S is nearly singular: whole-spectrum eigenvalues, or H "
                            "projected on S's near-null space")
    ghost_weight: float = Field(0.1, ge=0, description="weight of the ghost_loss term (eV)")
    soc_weight: float = Field(1.0, gt=0, description="spin-orbit data: weight of the SOC parts M_x, M_y, M_z of the "
                                                     "spinor blocks in the block loss (the spin-less part A has 1)")
    ghost_threshold: float = Field(1e-2, gt=0, description="S eigenvalues below this span the near-null space "
                                                           "(ghost_loss projection)")
    cache_gb: float | None = Field(None, ge=0, description="memory (GB) for cached graphs; beyond it structures are read "
                                                     "and graphs built at every step (none: cache all)")
    workers: int = Field(0, ge=0, description="DataLoader processes that build the graphs not cached")

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        from .checks import device_problem
        why = device_problem(v)
        if why:
            raise ValueError(why)
        return v


def valence_per_species(ops) -> dict:
    """Valence electrons per element from the structures' metadata (per-element dicts, or totals
    of single-element structures); elements without information are left out."""
    out: dict = {}
    for op in ops:
        v = op.meta.get("valence_electrons")
        symbols = set(op.atoms.get_chemical_symbols())
        if isinstance(v, dict):
            out.update({s: float(x) for s, x in v.items() if s in symbols})
        elif v is not None and len(symbols) == 1:
            out[symbols.pop()] = float(v) / op.n_atoms
    return out


def fermi_levels(ops) -> dict:
    """The median Fermi level (eV) of the structures per chemistry (:func:`hotham.cell.chemistry`),
    over those that have one. A prediction of the same chemistry starts counting its own E_F
    there (:func:`hotham.predict`): the model reproduces the DFT energies, zero included, and E_F
    moves by about 0.1 eV between cells of one chemistry (primitive graphene -3.77 eV, slid
    bilayers -3.62 eV), by eV between chemistries (graphene/hBN -4.46, MoS2 bilayers -4.79)."""
    from .cell import chemistry
    seen: dict = {}
    for op in ops:
        if np.isfinite(op.fermi_level):
            seen.setdefault(chemistry(op.atoms), []).append(float(op.fermi_level))
    return {k: float(np.median(v)) for k, v in sorted(seen.items())}


# ---------------------------------------------------------------------------------- training
def _loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Hot-Ham loss: MAE + RMSE over all elements (eV); ``weight`` [4, 1] scales the rows of
    spin-orbit real parts [4, nnz] (A, M_x, M_y, M_z: ``soc_weight``)."""
    d = pred - target
    if weight is not None:
        d = d * weight
    return d.abs().mean() + torch.sqrt((d * d).mean() + 1e-30)


def _batches(names: list[str], size: int, rng: np.random.Generator) -> list[list[str]]:
    order = [names[i] for i in rng.permutation(len(names))]
    return [order[k:k + size] for k in range(0, len(order), size)]


# --------------------------------------------------------------- several processes (torchrun)
def _distributed(cfg: TrainConfig) -> tuple[int, int, torch.device | None, bool]:
    """``(world size, rank, device, initialised here)`` of this process.

    One process (no ``WORLD_SIZE`` > 1 in the environment): ``(1, 0, None, False)``. Under
    ``torchrun``: the default process group is initialised (NCCL with one CUDA device per process,
    ``LOCAL_RANK``'s, when CUDA is present and ``cfg.device`` is not ``cpu``; gloo on CPU) unless it
    already is, and ``batch_size`` must be a multiple of the world size."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, None, False
    if cfg.batch_size % world:
        raise HothamError(f"batch_size = {cfg.batch_size} is not a multiple of the {world} processes of this run: "
                          f"every global batch is split evenly across them")
    import torch.distributed as dist
    cuda = torch.cuda.is_available() and cfg.device != "cpu"
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    here = not dist.is_initialized()
    if here:
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_world_size(), dist.get_rank(), device, here


def _share(batch: list[str], world: int, rank: int) -> list[str]:
    """The structures of a global batch that process ``rank`` of ``world`` computes: contiguous
    slices, as even as possible (a short last batch may leave a rank none)."""
    k, r = divmod(len(batch), world)
    start = rank * k + min(rank, r)
    return batch[start:start + k + (rank < r)]


def _ddp_loss(pred: torch.Tensor, target: torch.Tensor, world: int, empty: bool = False,
              weight: torch.Tensor | None = None):
    """This process's share of the Hot-Ham loss of a global batch split across ``world`` processes.

    ``pred``, ``target``: this process's flat elements [n_r] (eV); ``empty``: the process holds no
    structure of this batch (``pred`` is a stand-in whose elements count for nothing). With the
    element count N, sum |d| and sum d^2 (d = pred - target) all-reduced and detached, the loss
    returned is ``world * sum_r |d| / N + world * sum_r d^2 / (2 N rmse)`` (rmse the global one):
    DDP's mean over processes of its gradient is the gradient of the global MAE + RMSE, exactly.
    Returns ``(loss to back-propagate, global MAE + RMSE (eV), N, global sum |d| (eV))``;
    ``weight`` as in :func:`_loss` (the sum |d| returned is of the unweighted d).
    """
    import torch.distributed as dist
    plain = pred - target
    if empty:
        plain = plain * 0.0
    d = plain if weight is None else plain * weight
    a, s = d.abs().sum(), (d * d).sum()
    stats = torch.stack([torch.tensor(0.0 if empty else d.numel(), dtype=torch.float64, device=d.device),
                         a.detach().to(torch.float64), s.detach().to(torch.float64),
                         plain.abs().sum().detach().to(torch.float64)])
    dist.all_reduce(stats)
    n, a_all, s_all, plain_all = stats.tolist()
    rmse = math.sqrt(s_all / n + 1e-30)
    return world * a / n + world * s / (2 * n * rmse), a_all / n + rmse, int(n), plain_all


def _all_sum(x: torch.Tensor) -> torch.Tensor:
    """The sum over processes of a detached copy of ``x``."""
    import torch.distributed as dist
    total = x.detach().clone()
    dist.all_reduce(total)
    return total


def _from_rank0(values: list[float], device) -> list[float]:
    """``values`` as process 0 has them (time limits, validation losses): every process then takes
    the same decisions, even where its own clock or arithmetic differs."""
    import torch.distributed as dist
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(t, 0)
    return t.tolist()


def _tensorboard(out_path, first_epoch: int):
    """A TensorBoard writer on ``<output>.tb/`` when tensorboard is installed, else None.

    Its event files are appended to (a log, not a result: not written atomically); a resumed run
    drops the events from ``first_epoch`` on before writing its own."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(os.fspath(out_path) + ".tb", purge_step=first_epoch)


class RunConfig(BaseModel):
    """A training run in one YAML file (``hotham train run.yaml``)::

        data: set.h5                # the hotham data set
        output: model.pt            # the checkpoint to write
        model: {lmax: 4, channels: 16, layers: 2}     # fields of hotham.nn.HotHamConfig
        train: {epochs: 300, lr: 5.0e-3, ema_decay: 0.99}   # fields of TrainConfig
        stage1: model.pt            # optional: train a cascade's second stage on this first
                                    # stage (a checkpoint, slater-koster or kinetic: hotham.cascade)
        init: shipped.pt            # optional: fine-tune, starting from this model's network

    Unknown or ill-typed keys are errors naming the key; what is not given takes the defaults of
    HotHamConfig and TrainConfig (the one place they are defined)."""

    model_config = ConfigDict(extra="forbid")

    data: str
    output: str | None = None
    model: dict = Field(default_factory=dict)
    train: TrainConfig = Field(default_factory=TrainConfig)
    stage1: str | None = None
    init: str | None = None

    @field_validator("model")
    @classmethod
    def _model_fields(cls, v):
        from .nn.model import HotHamConfig
        unknown = sorted(set(v) - set(HotHamConfig.model_fields) - {"conv"})
        if unknown:
            raise ValueError(f"unknown model key(s) {', '.join(unknown)} (known: {', '.join(HotHamConfig.model_fields)})")
        HotHamConfig(**v)       # types and ranges, reported with the key
        return v


def load_run_config(path) -> RunConfig:
    """Read a YAML run file (:class:`RunConfig`); HothamError naming the file and every bad key."""
    import yaml
    from pydantic import ValidationError
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise HothamError(f"{path}: cannot read ({exc})") from None
    except yaml.YAMLError as exc:
        raise HothamError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise HothamError(f"{path}: expected a mapping with data, output, model, train")
    try:
        return RunConfig(**raw)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(x) for x in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()]
        raise HothamError(f"{path}: " + "; ".join(lines)) from None


def run_file_models(run: RunConfig, base) -> dict:
    """The models a run file names, its ``init`` (fine-tuning) and ``stage1`` (a cascade's first
    stage: a checkpoint, or one of :data:`hotham.cascade.H0_NAMES`), their paths relative to the
    folder ``base``: {"init": Path | None, "stage1": Path | str | None}."""
    from .cascade import H0_NAMES
    base = Path(base)
    stage1 = run.stage1
    if stage1 is not None and stage1.lower() not in H0_NAMES:
        stage1 = base / stage1
    return {"init": None if run.init is None else base / run.init, "stage1": stage1}


def train_from_file(path, *, output=None, model: dict | None = None, train_overrides: dict | None = None,
                    **kwargs) -> dict:
    """:func:`train` from a YAML run file; ``output``, ``model`` and ``train_overrides`` (e.g.
    the command-line flags given) override the file's values. Relative paths in the file are
    relative to the file's folder."""
    run = load_run_config(path)
    base = Path(path).parent
    out = output or run.output
    if out is None:
        raise HothamError(f"{path}: no output checkpoint (give 'output:' or -o)")
    cfg = TrainConfig(**{**run.train.model_dump(), **(train_overrides or {})})
    for key, value in run_file_models(run, base).items():
        if kwargs.get(key) is None:
            kwargs[key] = value
    return train(base / run.data, Path(output) if output else base / out, model={**run.model, **(model or {})},
                 config=cfg, **kwargs)


def last_state_path(out_path) -> Path:
    """Where :func:`train` keeps the state of its last finished epoch: ``model.pt`` ->
    ``model.last.pt`` (weights, optimiser, scheduler, random state, history)."""
    out = Path(out_path)
    return out.with_name(f"{out.stem}.last{out.suffix or '.pt'}")


def write_model_record(out_path, record: dict, command: str, *, ship: bool = True) -> dict:
    """The record of a trained model (its figures ``record`` plus the machine, the date and the
    ``command`` that made it) written as ``<checkpoint>.json`` beside ``out_path`` (``model.pt``
    -> ``model.json``, atomically); with ``ship`` the side files of training (last state,
    ``.pt.json``, metrics, resolved configuration) are removed, so that a shipped folder keeps the
    checkpoint and its record only. Returns the record as written."""
    import platform
    from datetime import datetime, timezone
    out = Path(out_path)
    record = {**record, "machine": f"{platform.platform()}, {platform.processor() or platform.machine()}, "
                                   f"{os.cpu_count()} cores",
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command}
    with atomic_path(out.with_suffix(".json")) as f:
        Path(f).write_text(json.dumps(record, indent=1))
    if ship:
        for side in [last_state_path(out)] + [out.with_name(out.name + s) for s in (".json", ".metrics.csv",
                                                                                  ".config.yaml")]:
            side.unlink(missing_ok=True)
    return record


def train(dataset, out_path, *, model: dict | None = None, config: TrainConfig | None = None,
          log: Callable[[str], None] = print, force: bool = False, resume: bool = False,
          progress=False, stage1=None, init=None) -> dict:
    """Train a Hot-Ham model on a hotham data set and write the best checkpoint to ``out_path``.

    ``dataset`` is a path or :class:`hotham.dataset.Dataset`; ``model`` overrides fields of
    :class:`hotham.nn.model.HotHamConfig` (lmax, channels, layers, tensor_product, gaunt_method, ...).
    Returns ``{"history": [...], "val": report, "test": report, "parameters": int}``; the same
    goes into the checkpoint and into ``<out_path>.json``. An existing ``out_path`` is refused
    unless ``force`` (a rerun must not replace a better model after its first epoch) or ``resume``.

    After every epoch the whole training state goes to :func:`last_state_path` (atomically).
    ``resume`` continues a killed or finished run from it, with the same data set, model and
    configuration (only the fields in :data:`RESUMABLE` may change): the weights reached are
    bit-identical to those of an uninterrupted run (on one thread).
    ``config.max_minutes`` is checked after every step: a run stops within one step and one
    validation pass of its limit. ``progress``: a bar over the steps of each epoch on stderr.

    ``stage1``: train the second stage of a cascade (:mod:`hotham.cascade`) on top of this frozen
    first stage: a checkpoint path (or loaded Predictor), ``"slater-koster"`` (the physical H0
    fitted here to the training split) or ``"kinetic"`` (the kinetic energy of the PAOs,
    :mod:`hotham.kinetic`). The network then learns H - H_stage1 (no on-site baseline
    of its own; its readout starts at zero, so the cascade starts as the first stage; its
    ``output_scale``, unless given, is the RMS of the training residual), and the checkpoint
    holds both stages.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every process takes its slice of each global batch of
    ``batch_size`` structures (the same seeded batches on every process) and the network is
    wrapped in DistributedDataParallel; the losses are rescaled (:func:`_ddp_loss`) so that the
    gradients are those of one process with the same global batch. Only process 0 logs and
    writes files. When tensorboard is installed, the per-epoch metrics also go to ``<output>.tb/``.

    ``init``: a checkpoint (path) to start from, fine-tuning: its network (configuration and
    weights; of ``model`` only ``pair_envelope`` is taken, which switches on the parameter-free
    hopping envelope of :mod:`hotham.nn.model` for an older model) and its on-site baseline; it
    must know the data set's species.
    """
    from .dataset import Dataset
    from .nn.model import HotHam, HotHamConfig
    from .progress import Progress

    last_path = last_state_path(out_path)
    if resume and not last_path.exists():
        raise HothamError(f"{last_path}: no training state to resume from")
    check_outputs([out_path], force=force or resume, inputs=[dataset if isinstance(dataset, (str, os.PathLike))
                                                             else getattr(dataset, "path", None)],
                  hint=", or --resume to continue its training")
    cfg = config or TrainConfig()
    requested = resolve_device(cfg.device)      # a device this machine lacks: an error, not a fallback
    world, rank, ddp_device, own_group = _distributed(cfg)
    lead = rank == 0                        # the process that logs and writes
    if not lead:
        log, progress = (lambda s: None), False
    progress = Progress.of(progress, "train")

    ds = dataset if isinstance(dataset, Dataset) else Dataset(dataset)
    which = cfg.target
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    device = ddp_device or requested

    split = {k: ds.split(k) for k in ("train", "val", "test")}
    if not split["train"]:
        raise TrainingError(f"{ds.path}: the training split is empty")
    validated_on = "val"
    if not split["val"]:
        # flagged in the checkpoint: its "val" figures are training figures, so the quality gate
        # (Predictor.val_block_mae_meV) finds no validation MAE rather than the training MAE
        log(f"WARNING: {ds.path}: the validation split is empty; the best epoch is chosen on the training "
            "split and the model gets NO validation MAE (the quality gate cannot vouch for it). Rebuild the "
            "data set with a val share (hotham dataset build --split 0.8 0.1 0.1) to validate it.")
        split["val"] = list(split["train"])
        validated_on = "train"
    # every structure read once and kept, or (cache_gb) read again whenever needed
    ops = Structures(ds, sorted(set(split["train"]) | set(split["val"]) | set(split["test"])),
                     keep=cfg.cache_gb is None)
    # one pass over all structures (a lazy run reads each once here): checks, longest block, valence
    max_edge, valence, spin = 0.0, {}, None
    for name, op in ops.items():
        X = getattr(op, which)
        if X is None:
            raise TrainingError(f"{ds.path}: structure {name} has no {which}")
        if which == "H":
            if op.spin == "collinear":
                raise TrainingError(f"{ds.path}: structure {name} has collinear spin; the model learns spin-less "
                                    f"H or spinor H with spin-orbit coupling (soc)")
            if spin is not None and op.spin != spin:
                raise TrainingError(f"{ds.path}: structure {name} has spin={op.spin}, others {spin}")
            spin = op.spin
        max_edge = max(max_edge, float(op.edge_lengths().max()))
        valence.update(valence_per_species([op]))

    basis = ds.basis
    first = None
    if stage1 is not None:          # a cascade: the network learns what the frozen first stage leaves
        from .cascade import load_stage1, residual_scale, second_stage_baseline, stage1_check
        first = load_stage1(stage1, [ops[n] for n in split["train"]], which, device=str(device), log=log)
        stage1_check(first, [ops[n] for n in split["train"]])
        second_baseline = second_stage_baseline(first, [ops[n] for n in split["train"]], which)
        if "output_scale" not in (model or {}):
            model = {**(model or {}), "output_scale": residual_scale(first, [ops[n] for n in split["train"]], which,
                                                                     second_baseline)}
            log(f"second stage: output_scale {model['output_scale']:g}, the RMS of the training residual")
    if first is not None and init is not None:
        raise TrainingError("a second stage (stage1) starts from a zero readout, not from another model's weights (init)")
    if spin == "soc" and (cfg.band_weight > 0 or cfg.ghost_loss != "none"):
        raise TrainingError(f"{ds.path}: the band-energy loss takes spin-less H; train the SOC model with band_weight 0")
    if spin != "soc" and cfg.soc_weight != 1.0:
        raise TrainingError(f"{ds.path}: soc_weight weighs the spin-orbit parts of SOC data; this data set has none")
    if init is not None:
        from .checkpoint import load_predictor
        start = load_predictor(init, device="cpu")
        if start.target != which or not set(basis.shells) <= set(start.model.shells):
            raise TrainingError(f"{init}: a {start.target} model of {', '.join(start.model.shells)}; the data set "
                                f"needs {which} of {', '.join(basis.shells)}")
        mcfg, baseline = start.model.config, start.baseline
        if (model or {}).get("pair_envelope") is not None:    # switch the parameter-free envelope on (or off)
            from .overlap import label_cutoff
            mcfg = mcfg.model_copy(update={
                "pair_envelope": float(model["pair_envelope"]),
                "pao_radii": mcfg.pao_radii or {s: label_cutoff(lab) for s, lab in basis.labels.items()
                                                if s in basis.shells}})
            log(f"pair envelope {mcfg.pair_envelope:g} A at the PAO cutoff sums")
    else:
        mcfg = HotHamConfig.from_basis(basis, **{"r_cut": math.ceil(max_edge * 10 + 1) / 10, **(model or {}),
                                                 "spin": spin or "none"})
    if mcfg.r_cut < max_edge:
        raise TrainingError(f"r_cut = {mcfg.r_cut} A is shorter than the longest block ({max_edge:.3f} A)")
    net = HotHam(mcfg).to(device=device, dtype=dtype)
    if init is not None:
        net.load_state_dict(start.model.state_dict())
        log(f"starting from the weights of {init}")
    if first is not None:
        net.zero_readout()          # the cascade starts as the first stage alone (and its baseline)
        baseline = second_baseline
    elif init is None:
        baseline = OnsiteBaseline.fit([ops[n] for n in split["train"]], which)
    from .cascade import StageOffset
    offset = StageOffset(baseline, first)
    log(f"model: {net.n_parameters} parameters, lmax={mcfg.lmax}, channels={mcfg.channels}, "
        f"layers={mcfg.layers}, tensor product {mcfg.tensor_product}/{mcfg.gaunt_method}, r_cut={mcfg.r_cut} A, device={device}")

    # graphs are built once: fixed batches, shuffled in order every epoch
    train_batches = _batches(split["train"], cfg.batch_size, rng)
    val_batches = [[n] for n in split["val"]]
    # several processes: each computes its share of every batch; one without any (a short last
    # batch) runs the first structure as a stand-in that counts for nothing
    mine = {tuple(b): _share(b, world, rank) if world > 1 else b for b in train_batches}
    empty = {b for b, m in mine.items() if not m}
    store = GraphStore(GraphBuilder(ops, net.species, net.shells, offset, which, dtype),
                       {**{b: m or list(b[:1]) for b, m in mine.items()}, **{tuple(b): b for b in val_batches}},
                       device=device, dtype=dtype, budget_gb=cfg.cache_gb, workers=cfg.workers)
    with progress.stage(f"graphs of {len(ops)} structures"):
        n_cached = store.fill()
    if n_cached < len(store.batches):
        log(f"{n_cached} of {len(store.batches)} batch graphs cached ({cfg.cache_gb} GB); the others are built at "
            f"every step ({cfg.workers} worker processes)")

    if cfg.optimizer == "adamw":
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_factor, patience=cfg.lr_patience,
                                                       min_lr=cfg.min_lr)
    ema = None
    if cfg.ema_decay is not None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    evaluated = ema.module if ema is not None else net      # the network that is validated and saved
    band_losses = (_band_losses(ops, sorted({n for m in mine.values() for n in m}), cfg, device, offset)
                   if cfg.band_weight > 0 or cfg.ghost_loss != "none" else {})
    k_gen = torch.Generator().manual_seed(cfg.seed + 1)     # random k-points of the band loss
    # the rows A, M_x, M_y, M_z of spin-orbit targets: the SOC parts are ~100x smaller than A, so
    # a plain loss spends the network on A; soc_weight scales them
    soc_rows = (torch.tensor([1.0] + [cfg.soc_weight] * 3, device=device, dtype=dtype)[:, None]
                if spin == "soc" and cfg.soc_weight != 1.0 else None)
    history, best, best_state, first_epoch, t_before, stale = [], math.inf, None, 1, 0.0, 0
    if resume:
        state = _load_state(last_path, mcfg, cfg)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        k_gen.set_state(state["k_rng"])
        history, best, best_state, stale = state["history"], state["best"], state["best_state"], state["stale"]
        first_epoch, t_before = state["epoch"] + 1, history[-1]["time_s"] if history else 0.0
        log(f"resuming from {last_path} after epoch {state['epoch']}")
    config_written = False          # <output>.config.yaml: once an epoch of this run is done
    stepper = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        stepper = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None,
                                          find_unused_parameters=True)   # a share may lack a species pair
    board = _tensorboard(out_path, first_epoch) if lead else None

    def past(deadline) -> bool:          # the same answer on every process
        late = deadline is not None and time.time() > deadline
        return late if world == 1 else deadline is not None and _from_rank0([float(late)], device)[0] > 0

    t0 = time.time() - t_before
    deadline = None if cfg.max_minutes is None else time.time() + 60 * cfg.max_minutes
    info = {"basis_labels": dict(basis.labels), "train_config": json.loads(cfg.model_dump_json()),
            "dataset": os.fspath(ds.path), "r_max": max_edge,
            "valence_electrons": valence, "fermi_levels": fermi_levels([ops[n] for n in split["train"]]),
            "domain": training_domain([ops[n] for n in split["train"]]), "validated_on": validated_on}
    # the PAO data from OpenMX's files, else from the first stage or the model fine-tuned (init)
    carrier = first if first is not None else (start if init is not None else None)
    info.update(_embedded_basis(basis, log if lead else (lambda line: None), carrier))
    for epoch in range(first_epoch, cfg.epochs + 1):
        net.train()
        if epoch <= cfg.warmup_epochs:           # linear warm-up; the plateau schedule starts after it
            for group in opt.param_groups:
                group["lr"] = cfg.lr * epoch / cfg.warmup_epochs
        with_bands = bool(band_losses) and epoch >= cfg.band_start
        if with_bands and epoch == cfg.band_start > 1:
            # the band stage: its own schedule from band_lr, and its own best model
            start_lr = cfg.band_lr if cfg.band_lr is not None else max(cfg.lr / 5, opt.param_groups[0]["lr"])
            for group in opt.param_groups:
                group["lr"] = start_lr
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_factor, patience=cfg.lr_patience,
                                                               min_lr=cfg.min_lr)
            best, stale = math.inf, 0
            log(f"band stage from epoch {epoch}: learning rate {start_lr:.2e}")
        tr_loss, tr_mae, tr_band, tr_ghost, n_el = 0.0, 0.0, 0.0, 0.0, 0
        out_of_time = False
        order = [tuple(train_batches[k]) for k in rng.permutation(len(train_batches))]
        for b, g, y in progress.bar(store.iterate(order), f"epoch {epoch}", total=len(order), leave=False):
            if n_el and past(deadline):
                out_of_time = True              # the rest of the epoch is skipped
                break
            pred = stepper(g)
            if world == 1:
                loss = _loss(pred, y, soc_rows)
                if with_bands:
                    bands, ghosts = _band_terms(band_losses, ops, b, pred, cfg, k_gen)
                    band, ghost = torch.stack(bands).mean(), torch.stack(ghosts).mean()
                    loss = loss + cfg.band_weight * band + cfg.ghost_weight * ghost
                    tr_band += band.item() * len(b)
                    tr_ghost += ghost.item() * len(b)
                value = loss.item()
            else:
                loss, value, n_y, mae_sum = _ddp_loss(pred, y, world, b in empty, soc_rows)
                if with_bands:          # the mean over the global batch's structures, rescaled likewise
                    bands, ghosts = _band_terms(band_losses, ops, b, pred, cfg, k_gen)
                    band = torch.stack(bands).sum() if bands else pred.sum() * 0.0
                    ghost = torch.stack(ghosts).sum() if ghosts else pred.sum() * 0.0
                    band_sum, ghost_sum = _all_sum(band).item(), _all_sum(ghost).item()
                    loss = loss + world * (cfg.band_weight * band + cfg.ghost_weight * ghost) / len(b)
                    value += (cfg.band_weight * band_sum + cfg.ghost_weight * ghost_sum) / len(b)
                    tr_band += band_sum
                    tr_ghost += ghost_sum
            if not math.isfinite(value):
                raise TrainingError(f"{ds.path}: loss became {value} at epoch {epoch} on {', '.join(b)}; "
                                    f"lower the learning rate (now {opt.param_groups[0]['lr']:.2e})")
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            if ema is not None:
                ema.update_parameters(net)
            if world == 1:
                tr_loss += value * y.numel()
                tr_mae += (pred - y).abs().sum().item()
                n_el += y.numel()
            else:
                tr_loss += value * n_y
                tr_mae += mae_sum
                n_el += n_y
        evaluated.eval()
        with torch.no_grad():
            v_loss, v_mae, v_n = 0.0, 0.0, 0
            for b in val_batches:
                g, y = store[tuple(b)]
                pred = evaluated(g)
                v_loss += _loss(pred, y, soc_rows).item() * y.numel()
                v_mae += (pred - y).abs().sum().item()
                v_n += y.numel()
        v_loss /= v_n
        if world > 1:
            v_loss, v_mae = _from_rank0([v_loss, v_mae], device)
        if not math.isfinite(v_loss):       # nothing of this epoch is written: no model, state or config
            raise TrainingError(f"{ds.path}: validation loss became {v_loss} at epoch {epoch}; lower the learning "
                                f"rate (now {opt.param_groups[0]['lr']:.2e})")
        if epoch > cfg.warmup_epochs:
            sched.step(v_loss)
        rec = {"epoch": epoch, "train_loss": tr_loss / n_el, "train_mae_meV": 1000 * tr_mae / n_el,
               "val_loss": v_loss, "val_mae_meV": 1000 * v_mae / v_n, "lr": opt.param_groups[0]["lr"],
               "time_s": time.time() - t0}
        if with_bands:
            rec["train_band_mae_meV"] = 1000 * tr_band / len(split["train"])
            if cfg.ghost_loss != "none":
                rec[f"train_ghost_{cfg.ghost_loss}_meV"] = 1000 * tr_ghost / len(split["train"])
        history.append(rec)
        stale = 0 if v_loss < best else stale + 1
        if v_loss < best:
            best = v_loss
            best_state = {k: v.detach().clone() for k, v in evaluated.state_dict().items()}
            if lead:
                Predictor(evaluated, baseline, which, info, first).save(out_path, {"history": history, "epoch": epoch})
        if lead and not out_of_time:     # a partial epoch is not a state to resume from: it is redone
            _save_state(last_path, epoch=epoch, model=net.state_dict(), optimizer=opt.state_dict(),
                        scheduler=sched.state_dict(), ema=None if ema is None else ema.state_dict(),
                        numpy_rng=rng.bit_generator.state, torch_rng=torch.get_rng_state(), k_rng=k_gen.get_state(),
                        history=history, best=best, best_state=best_state, stale=stale,
                        model_config=mcfg.model_dump(mode="json"), train_config=cfg.model_dump(mode="json"))
        if lead:
            _write_metrics(out_path, history)
            if not config_written:
                _write_resolved_config(out_path, ds.path, mcfg, cfg, stage1)
                config_written = True
        if board is not None:
            for key, v in rec.items():
                if key != "epoch":
                    board.add_scalar(key, v, epoch)
            board.flush()
        eta = (time.time() - t0) / epoch * (cfg.epochs - epoch)
        log(f"epoch {epoch:4d}/{cfg.epochs}  train MAE {rec['train_mae_meV']:9.3f} meV  "
            f"val MAE {rec['val_mae_meV']:9.3f} meV  lr {rec['lr']:.1e}  {rec['time_s']:7.1f} s  ETA {eta:6.0f} s"
            + (f"  band {rec['train_band_mae_meV']:7.2f} meV" if with_bands else "") + ("  *" if v_loss == best else ""))
        if out_of_time or past(deadline):
            log(f"stopping: {cfg.max_minutes} minute limit reached" + (" inside the epoch" if out_of_time else ""))
            break
        if cfg.early_stop is not None and stale >= cfg.early_stop:
            log(f"stopping early: no validation gain for {cfg.early_stop} epochs")
            break
    if board is not None:
        board.close()
    if best_state is None:
        raise TrainingError(f"no epoch was trained (epochs = {cfg.epochs})")
    evaluated.load_state_dict(best_state)
    pred = Predictor(evaluated, baseline, which, info, first)
    result = {"history": history, "parameters": net.n_parameters, "checkpoint": os.fspath(out_path),
              "validated_on": validated_on,
              "val": evaluate(pred, [ops[n] for n in split["val"]]),
              "test": evaluate(pred, [ops[n] for n in split["test"]]) if split["test"] else None}
    if lead:
        pred.save(out_path, {"history": history, "metrics": {"val": result["val"], "test": result["test"]}})
        with atomic_path(Path(os.fspath(out_path) + ".json")) as tmp:
            Path(tmp).write_text(json.dumps(result, indent=1))
    if own_group:
        import torch.distributed as dist
        dist.barrier()                  # the files are written before any process returns
        dist.destroy_process_group()
    return result


#: configuration fields a resumed run may change
RESUMABLE = ("epochs", "max_minutes", "device", "early_stop", "cache_gb", "workers")


def _band_losses(ops: dict, names, cfg: TrainConfig, device, offset) -> dict:
    """:class:`~hotham.band_loss.BandLoss` of every training structure (float64, on ``device``);
    the network predicts H minus ``offset`` (the on-site baseline, and a cascade's first stage:
    :class:`hotham.cascade.StageOffset`), which the loss adds back."""
    from .band_loss import BandLoss
    return {n: BandLoss(ops[n], (-cfg.band_half_width, cfg.band_half_width), offset=offset.flat(ops[n]), device=device)
            for n in names}


def _band_terms(band_losses: dict, ops: dict, names, pred: torch.Tensor, cfg: TrainConfig, k_gen):
    """(band-energy losses, ghost losses): eV, one 0-d tensor each, of the structures of the batch
    ``names`` that this process computes (those in ``band_losses``; their flat predictions one
    after another in ``pred``) at fresh random k-points; a term that is off is 0. k-points are
    drawn for every structure of the batch, in order, so that the generator ``k_gen`` stays the
    same on every process."""
    from .band_loss import random_kpoints
    bands, ghosts, start = [], [], 0
    for n in names:
        k = random_kpoints(ops[n].atoms, cfg.band_kpoints, k_gen)
        bl = band_losses.get(n)
        if bl is None:
            continue
        stop = start + bl.op.nnz
        H = pred[start:stop]
        bands.append(bl(H, k, align=cfg.band_align) if cfg.band_weight > 0 else H.sum() * 0.0)
        if cfg.ghost_loss == "spectrum":
            ghosts.append(bl.spectrum(H, k))
        elif cfg.ghost_loss == "projection":
            ghosts.append(bl.projection(H, k, cfg.ghost_threshold))
        else:
            ghosts.append(H.sum() * 0.0)
        start = stop
    return bands, ghosts


def _write_resolved_config(out_path, data, mcfg, cfg: TrainConfig, stage1=None) -> None:
    """``<output>.config.yaml``: the whole configuration of a run, defaults included, in the
    layout :func:`load_run_config` reads (so the run can be repeated from it)."""
    import yaml
    out = Path(out_path)
    run = {"data": os.fspath(data), "output": os.fspath(out),
           "model": mcfg.model_dump(mode="json"), "train": cfg.model_dump(mode="json")}
    if isinstance(stage1, (str, os.PathLike)):
        run["stage1"] = os.fspath(stage1)
    text = yaml.safe_dump(run, sort_keys=False)
    with atomic_path(out.with_name(out.name + ".config.yaml")) as tmp:
        Path(tmp).write_text(text)


def _write_metrics(out_path, history: list[dict]) -> None:
    """``<output>.metrics.csv``: one row per epoch (rewritten whole, atomically)."""
    import csv
    keys = list(dict.fromkeys(k for rec in history for k in rec))
    out = Path(out_path)
    with atomic_path(out.with_name(out.name + ".metrics.csv")) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def _embedded_basis(basis, log, carrier=None) -> dict:
    """``{"pao": ...}``: the PAO data of the basis for the checkpoint
    (:func:`hotham.checkpoint.pao_entry`), when the basis has OpenMX labels and
    ``$HOTHAM_OPENMX_DATA`` names OpenMX's files, or those ``carrier`` has (a first stage, or the
    model a fine-tuning starts from: ``.paos``); else ``{}``, with a line to ``log`` saying how
    to add it later."""
    from .checkpoint import pao_entry
    from .parsers.openmx.pao import OpenMXDataNotFound
    if not basis.labels or set(basis.labels) != set(basis.shells):
        return {}
    try:
        return {"pao": pao_entry(basis.labels)}
    except (OpenMXDataNotFound, BasisError) as exc:
        carried = getattr(carrier, "paos", None)
        if carried and set(basis.shells) <= set(carried):
            from .checkpoint import pao_record
            return {"pao": {s: pao_record(carried[s]) for s in basis.shells}}
        log(f"note: the checkpoint carries no PAO data, so bare structures need OpenMX's files to predict ({exc}); "
            "add the data later with: hotham model embed-basis MODEL --openmx-data DFT_DATA19")
        return {}


def _save_state(path: Path, **state) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, mcfg, cfg: TrainConfig) -> dict:
    """The saved training state, checked against the model and training configuration."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:   # torch raises many kinds for a foreign or broken file
        raise HothamError(f"{path}: not a readable training state ({exc.__class__.__name__}: {exc})") from None
    saved, now = state.get("model_config") or {}, mcfg.model_dump(mode="json")
    if saved != now:
        diff = ", ".join(f"{k} {saved.get(k)!r} (now {now.get(k)!r})"
                         for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
        raise HothamError(f"{path}: saved for another model configuration: {diff}; resume with the same one")
    old = {k: v for k, v in state.get("train_config", {}).items() if k not in RESUMABLE}
    new = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in RESUMABLE}
    if old != new:
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise HothamError(f"{path}: saved with other training settings ({', '.join(diff)}); only "
                          f"{', '.join(RESUMABLE)} may change on resume")
    return state
