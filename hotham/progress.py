"""Progress reports of long steps (prediction stages, k-points, epochs) on stderr.

    progress = Progress("predict")               # Progress("predict", enabled=False) is silent
    with progress.stage("overlap S from the PAO files"):
        ...                                      # prints "predict: overlap S ... 12.3 s"
    for k in progress.bar(kpts, "k-points"):     # a tqdm bar with rate and ETA
        ...

The first stage line of a process is preceded by the thread count and how it was chosen
(:func:`hotham.threads.threads_reason`), so that a slow run on a busy machine says why.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager

__all__ = ["Progress", "peak_memory_gb"]

_THREADS_SAID = False       # the thread count is printed once per process


def peak_memory_gb() -> float:
    """Peak resident memory of this process so far, GB (Linux's ru_maxrss is in kB)."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def proc_field_gb(path: str, key: str) -> float | None:
    """A "key: value kB" field of a Linux /proc file (e.g. /proc/self/status VmRSS, /proc/meminfo
    MemAvailable), GB; None where the file or the field is missing (not Linux)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    return None


def resident_memory_gb() -> float:
    """Resident memory of this process now, GB (Linux's /proc/self/status; elsewhere the peak)."""
    rss = proc_field_gb("/proc/self/status", "VmRSS")
    return peak_memory_gb() if rss is None else rss


class Progress:
    """Stage lines and loop bars of one command, on ``stream`` (stderr), or nothing."""

    def __init__(self, name: str, enabled: bool = True, stream=None):
        self.name, self.enabled = name, bool(enabled)
        self.stream = stream if stream is not None else sys.stderr

    @classmethod
    def of(cls, progress, name: str) -> "Progress":
        """A Progress from a flag or an existing Progress (library functions take either)."""
        return progress if isinstance(progress, Progress) else cls(name, enabled=bool(progress))

    @contextmanager
    def stage(self, what: str):
        """Say what starts, and when it ends, how long it took."""
        if not self.enabled:
            yield
            return
        self._say_threads()
        print(f"{self.name}: {what} ...", file=self.stream, flush=True)
        t0 = time.perf_counter()
        yield
        print(f"{self.name}: {what}: done in {time.perf_counter() - t0:.1f} s", file=self.stream, flush=True)

    def _say_threads(self) -> None:
        global _THREADS_SAID
        from .threads import threads_reason
        reason = threads_reason()
        if reason and not _THREADS_SAID:
            print(f"{self.name}: {reason}", file=self.stream, flush=True)
            _THREADS_SAID = True

    def bar(self, iterable, what: str, total: int | None = None, leave: bool = True):
        """``iterable`` wrapped in a tqdm bar (count, rate, ETA); ``leave=False`` erases it at the end."""
        from tqdm.auto import tqdm
        if self.enabled:
            self._say_threads()
        return tqdm(iterable, desc=f"{self.name}: {what}", total=total, disable=not self.enabled, file=self.stream,
                    dynamic_ncols=True, leave=leave)
