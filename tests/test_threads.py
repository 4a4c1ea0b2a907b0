"""Thread count: explicit, then OMP_NUM_THREADS / SLURM_CPUS_PER_TASK, then the cores idle now."""
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
    # a busy machine: the cores busy now are left to their work
    monkeypatch.setattr(threads, "_affinity", lambda: list(range(8)))
    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: 6.2)
    assert threads.thread_count() == 2
    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: 11.0)
    assert threads.thread_count() == 1
    monkeypatch.setattr(threads, "busy_cores", lambda *a, **k: 0.5)     # half a core busy: all of them
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


def _stat(busy0, idle0):
    return "cpu  1 1 1 1\n" + "".join(f"cpu{c} {busy0[c]} 0 0 {idle0[c]} 0 0 0 0 0 0\n" for c in range(len(busy0)))


def test_threads_from_what_is_busy_now(monkeypatch):
    from hotham import threads
    measure = threads.busy_cores
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    # one of 2 cores fully busy during the sample, the other idle (a 1-minute load of 3 says nothing)
    texts = iter([_stat([100, 100], [100, 100]), _stat([200, 100], [100, 200])])
    fake = {"/proc/stat": lambda: next(texts), "/proc/loadavg": lambda: "3.00 1.00 0.50 1/300 42"}
    assert threads.busy_cores([0, 1], read=lambda p: fake[p](), sample_s=0) == pytest.approx(1.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 1.0, 0.5))
    monkeypatch.setattr(threads, "_affinity", lambda: [0, 1])
    for busy, n in ((1.0, 1), (0.3, 2), (None, 2)):
        monkeypatch.setattr(threads, "busy_cores", lambda *a, b=busy, **k: b)
        assert threads.thread_count() == n
        assert threads.threads_reason().startswith(f"{n} thread(s): 2 core(s)")
    # no /proc/stat: the runnable count of /proc/loadavg, less this process
    fake["/proc/stat"] = lambda: (_ for _ in ()).throw(OSError("no /proc/stat"))
    fake["/proc/loadavg"] = lambda: "0.10 0.20 0.30 2/300 42"
    assert measure([0, 1], read=lambda p: fake[p](), sample_s=0) == 1.0


def test_thread_choice_is_in_the_progress_output(monkeypatch, capsys):
    from hotham import progress, threads
    monkeypatch.setattr(progress, "_THREADS_SAID", False)
    threads.thread_count(3)
    with progress.Progress("predict").stage("work"):
        pass
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "predict: 3 thread(s), as given (--threads)"


def test_resident_memory_follows_an_allocation_and_stays_below_the_peak():
    import mmap

    import numpy as np

    from hotham.progress import peak_memory_gb, resident_memory_gb
    before = resident_memory_gb()
    # fresh anonymous pages (a malloc'd block may reuse pages the process already holds)
    buf = mmap.mmap(-1, 1 << 28)
    x = np.frombuffer(buf, dtype=np.uint8)
    x[:] = 1                                     # 256 MiB, every page written
    during = resident_memory_gb()
    assert 0 < before and during - before > 0.2
    assert during <= peak_memory_gb() + 0.01     # (the two counters differ by a few pages)
    del x
    buf.close()
    assert resident_memory_gb() < during - 0.2   # unmapped: back to the system
