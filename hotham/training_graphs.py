"""The structures and graphs a training run works on, within a memory budget.

By default every structure of the data set is read once and every batch's graph is built once
and kept (the fastest: the model caches its geometry on the graph too). A data set larger than
memory instead gets ``TrainConfig.cache_gb``: graphs are cached up to that many GB, in batch order,
and the rest are built again at every step from structures read on demand, by ``workers`` DataLoader
processes (each reopens the HDF5 file) while the network trains on the previous batch. Both ways
give the same graphs, bit for bit, so the weights do not depend on the budget.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from .operator import BlockOperator

__all__ = ["Structures", "GraphBuilder", "GraphStore", "target_blocks"]


class Structures(Mapping):
    """``name -> BlockOperator`` of a :class:`hotham.dataset.Dataset`, read on access; with
    ``keep`` each structure is kept after its first read."""

    def __init__(self, dataset, names, keep: bool = True):
        self.dataset, self.names, self.keep = dataset, list(dict.fromkeys(names)), keep
        self._kept: dict = {}

    def __getitem__(self, name) -> BlockOperator:
        if name in self._kept:
            return self._kept[name]
        op = self.dataset[name]
        if self.keep:
            self._kept[name] = op
        return op

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class GraphBuilder:
    """Graph and target of a list of structure names (picklable: runs in DataLoader workers).
    Targets are the blocks minus the on-site baseline, float [nnz total]; for spin-orbit H
    [4, nnz total], the spin-less and SOC parts (:func:`hotham.soc.real_parts`)."""

    def __init__(self, structures: Structures, species, shells, baseline, which: str, dtype):
        self.structures, self.species, self.shells = structures, species, shells
        self.baseline, self.which, self.dtype = baseline, which, dtype

    def __call__(self, names):
        from .nn.graph import build_graph
        ops = [self.structures[n] for n in names]
        graph = build_graph(ops, self.species, self.shells, dtype=self.dtype)
        target = np.concatenate([target_blocks(op, self.which) - self.baseline.flat(op) for op in ops], axis=-1)
        return graph, target


def target_blocks(op: BlockOperator, which: str) -> np.ndarray:
    """What a network of ``which`` ("H" or "S") learns on ``op``, before its baseline is taken
    off: the flat blocks [nnz], or for spin-orbit H the real parts [4, nnz] (:func:`hotham.soc.real_parts`)."""
    from .soc import real_parts
    return real_parts(op) if which == "H" and op.spin == "soc" else getattr(op, which)


class _Batches(torch.utils.data.Dataset):
    def __init__(self, builder: GraphBuilder, lists):
        self.builder, self.lists = builder, lists

    def __len__(self) -> int:
        return len(self.lists)

    def __getitem__(self, i):
        return self.builder(self.lists[i])


def _as_is(item):
    return item


def _nbytes(obj) -> int:
    """Bytes held by the tensors of a graph (and its target)."""
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, f)) for f in obj.__dataclass_fields__)
    return 0


class GraphStore:
    """Graphs and targets of named batches (``key -> list of structure names``), on ``device``:
    cached while they fit into ``budget_gb`` (None: all), the rest built when asked for."""

    def __init__(self, builder: GraphBuilder, batches: dict, *, device, dtype, budget_gb: float | None = None,
                 workers: int = 0):
        self.builder, self.batches, self.device, self.dtype = builder, batches, device, dtype
        self.budget = None if budget_gb is None else budget_gb * 2**30
        self.workers = int(workers)
        self.cached: dict = {}

    def _move(self, built):
        graph, target = built
        return graph.to(self.device, self.dtype), torch.as_tensor(target, dtype=self.dtype, device=self.device)

    def fill(self) -> int:
        """Build and keep the batches that fit into the budget, in order; returns how many."""
        used = 0
        for key, names in self.batches.items():
            if self.budget is not None and used >= self.budget:
                break
            item = self._move(self.builder(names))
            size = _nbytes(item)
            if self.budget is not None and used + size > self.budget:
                break
            self.cached[key] = item
            used += size
        return len(self.cached)

    def __getitem__(self, key):
        hit = self.cached.get(key)
        return hit if hit is not None else self._move(self.builder(self.batches[key]))

    def iterate(self, keys):
        """``(key, graph, target)`` for ``keys`` in that order; the uncached ones built by the
        worker processes ahead of use (in the calling process without workers)."""
        missing = [k for k in keys if k not in self.cached]
        if not missing or self.workers == 0:
            for k in keys:
                yield (k, *self[k])
            return
        loader = torch.utils.data.DataLoader(_Batches(self.builder, [self.batches[k] for k in missing]),
                                             batch_size=None, num_workers=self.workers, collate_fn=_as_is)
        built = iter(loader)
        for k in keys:
            yield (k, *(self.cached[k] if k in self.cached else self._move(next(built))))
