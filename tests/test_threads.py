"""Thread count: explicit, then OMP_NUM_THREADS / SLURM_CPUS_PER_TASK, then the idle cores."""
from __future__ import annotations

import os

import pytest
import torch

from hotham import threads
from hotham.cli import main
from hotham.errors import HothamError


def test_sources_in_order(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "5")
    assert threads.thread_count(2) == 2
    assert threads.thread_count() == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert threads.thread_count() == 5
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    # a busy machine: the load already on the cores is left to it
    monkeypatch.setattr(threads, "_cores", lambda: 8)
    monkeypatch.setattr(os, "getloadavg", lambda: (6.2, 0.0, 0.0))
    assert threads.thread_count() == 2
    monkeypatch.setattr(os, "getloadavg", lambda: (11.0, 0.0, 0.0))
    assert threads.thread_count() == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (0.9, 0.0, 0.0))    # less than a core busy: all of them
    assert threads.thread_count() == 8
    with pytest.raises(HothamError, match="--threads must be >= 1"):
        threads.thread_count(0)


def test_cli_applies_the_count(capsys):
    before = torch.get_num_threads()
    try:
        assert main(["--threads", "1", "model", "info", "--json"]) == 0
        assert torch.get_num_threads() == 1
        from threadpoolctl import threadpool_info
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    finally:
        threads.set_threads(before)
