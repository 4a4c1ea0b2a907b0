"""Benchmark figures into benchmarks/RESULTS.md, one section per script.

A script calls ``record(section, lines)`` at its end with the figures it printed (``tee()``
collects what a block prints while still printing it). The section,
delimited by ``<!-- section: NAME -->`` and ``<!-- end: NAME -->``, is replaced whole (or added
before the carried-over figures at the end of the file); every other section is kept as it is.
Each record is stamped with the date (UTC), the machine (platform, CPU model, cores, numpy and
torch versions, threads) and the command line. The file is rewritten atomically
(:func:`hotham.files.atomic_path`), under a lock on this folder, so two benchmarks finishing at
once do not lose each other's section.

    from results import record_run     # benchmarks/ is the running script's folder
    record_run("overlap", main)         # = with tee() as printed: main(); record("overlap", printed)
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import io
import os
import platform
import re
import shlex
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).resolve().with_name("RESULTS.md")
#: sections that do not exist yet go in front of this one (the figures carried over by hand)
BEFORE = "carried-over"

HEADER = """# Benchmark results

Figures measured by the scripts in this folder. Each script rewrites its own section when it
finishes (`benchmarks/results.py`); the stamp says when, on what machine and with which command.
Timings depend on the machine and its load: compare figures within one section, not across them.
A run at reduced size (`--quick`, smaller `--sizes`) replaces its section too; its command line says so.
"""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":")[0].strip() in ("model name", "Hardware", "cpu model"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """One line: platform, CPU model, cores, numpy / torch versions and the thread settings."""
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    threads = [f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
               if v in os.environ]
    torch = sys.modules.get("torch")
    if torch is not None:
        threads.append(f"torch threads {torch.get_num_threads()}")
    return (f"{platform.platform()}; {_cpu_model()}; {cores} cores ({usable} usable); "
            f"python {platform.python_version()}, numpy {_version('numpy')}, torch {_version('torch')}; "
            f"threads: {', '.join(threads) or 'library defaults'}")


def command() -> str:
    """The command line that ran, the script's path relative to the repository when inside it."""
    argv = list(sys.argv)
    script = Path(argv[0]).resolve() if argv and argv[0] else None
    if script is not None and script.is_file():
        with contextlib.suppress(ValueError):
            argv[0] = str(script.relative_to(RESULTS.parents[1]))
    return "python " + " ".join(shlex.quote(a) for a in argv)


def render(section: str, lines, *, when: _dt.datetime | None = None) -> str:
    """The text of one section, markers included."""
    when = when or _dt.datetime.now(_dt.timezone.utc)
    body = lines.splitlines() if isinstance(lines, str) else [s for line in lines for s in str(line).splitlines()]
    return "\n".join([
        f"<!-- section: {section} -->",
        f"## {section}",
        "",
        f"- date: {when:%Y-%m-%d %H:%M} UTC",
        f"- machine: {machine()}",
        f"- command: `{command()}`",
        "",
        "```",
        *body,
        "```",
        f"<!-- end: {section} -->",
    ])


def replace_section(text: str, section: str, block: str) -> str:
    """``text`` with the section ``section`` replaced by ``block`` (or inserted)."""
    pattern = re.compile(rf"^<!-- section: {re.escape(section)} -->$.*?^<!-- end: {re.escape(section)} -->$",
                         re.S | re.M)
    if pattern.search(text):
        return pattern.sub(lambda m: block, text, count=1)
    anchor = re.search(rf"^<!-- section: {re.escape(BEFORE)} -->$", text, re.M)
    if anchor:
        return text[:anchor.start()] + block + "\n\n" + text[anchor.start():]
    return text.rstrip("\n") + "\n\n" + block + "\n"


@contextlib.contextmanager
def tee():
    """Yield a list that, after the block, holds the lines the block printed to stdout (they are
    printed as usual too)."""
    real, chunks, lines = sys.stdout, [], []

    class _Tee(io.TextIOBase):
        def write(self, s):
            chunks.append(s)
            return real.write(s)

        def flush(self):
            real.flush()

    sys.stdout = _Tee()
    try:
        yield lines
    finally:
        sys.stdout = real
        lines.extend("".join(chunks).splitlines())


@contextlib.contextmanager
def _locked(folder: Path):
    try:
        import fcntl
    except ImportError:         # not POSIX: no lock
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)            # releases the lock


def record(section: str, lines, *, path=RESULTS) -> Path:
    """Replace the section ``section`` of ``path`` (default benchmarks/RESULTS.md) by ``lines``
    (a list of lines or one string), stamped with date, machine and command line."""
    from hotham.files import atomic_path

    if not re.fullmatch(r"[\w.-]+", section):
        raise ValueError(f"section name {section!r}: letters, digits, '_', '.', '-' only")
    path = Path(path)
    block = render(section, lines)
    with _locked(path.resolve().parent):
        text = path.read_text(encoding="utf-8") if path.exists() else HEADER
        with atomic_path(path) as tmp:
            Path(tmp).write_text(replace_section(text, section, block), encoding="utf-8")
    print(f"(figures recorded in {path}, section {section!r})")
    return path


def record_run(section: str, main, *args):
    """``main(*args)``, with what it prints recorded as ``section`` of RESULTS.md; returns its result."""
    with tee() as printed:
        result = main(*args)
    record(section, printed)
    return result
