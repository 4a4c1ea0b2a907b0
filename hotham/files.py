"""Writing files safely: every file hotham writes appears whole under its final name or not at all,
and never replaces a file without being asked.

Before any work, a command passes the files it will write to :func:`check_outputs`: an
existing output is refused unless ``force`` (``--force``), an output that is one of the
command's inputs is refused always, and a folder that cannot be written into is reported
before a long computation rather than after it.

A file is written under a temporary name beside its destination, ``.tmp-<pid>-<random>-<name>``,
and renamed onto the final name only when complete. A process killed outright (SIGKILL, a node
failure) cannot remove its temporary file; the next write to the same destination removes the
temporaries whose writing process is gone.
"""
from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "atomic_folder", "remove_stale_temporaries", "check_outputs", "source_name"]

_TMP = re.compile(r"^\.tmp-(\d+)-")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:          # another user's process
        return True
    return True


def remove_stale_temporaries(path) -> list[Path]:
    """Remove the temporary files of ``path`` left by writers that no longer run; returns them."""
    path = Path(path)
    gone = []
    for tmp in list(path.parent.glob(f".tmp-*-{path.name}")) + list(path.parent.glob(f".tmp-*-old-{path.name}")):
        m = _TMP.match(tmp.name)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1))):
            try:
                if tmp.is_dir():
                    import shutil
                    shutil.rmtree(tmp)
                else:
                    tmp.unlink()
                gone.append(tmp)
            except OSError:
                pass
    return gone


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A crash, an exception or Ctrl-C inside the block removes the temporary file, so no
    half-written file is left under the final name; temporaries of killed earlier writers of
    the same path are removed first."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{os.path.basename(path)}", dir=d)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@contextmanager
def atomic_folder(path):
    """Like :func:`atomic_path` for a folder: yield a temporary folder beside ``path``; on
    success it replaces ``path`` (an existing folder there is moved aside, then removed)."""
    import shutil
    target = Path(path)
    parent = target.parent.resolve()
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-{target.name}", dir=parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())   # mkdtemp makes 0700 folders; give the usual permissions
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", suffix=f"-old-{target.name}", dir=parent))
            os.rename(target, old / "x")
            os.rename(tmp, target)
            shutil.rmtree(old)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _writable_folder(path: Path) -> tuple[Path, bool]:
    """The nearest existing folder of ``path``'s parents, and whether this process may create
    files in it."""
    d = path.absolute().parent
    while not d.exists() and d != d.parent:
        d = d.parent
    return d, d.is_dir() and os.access(d, os.W_OK | os.X_OK)


def check_outputs(outputs, *, force: bool = False, inputs=(), hint: str = "") -> list[Path]:
    """Check, before any work, that the files ``outputs`` may be written; returns them as Paths.

    Raises :class:`~hotham.errors.OutputError` naming the file when an output

    * is one of ``inputs`` (the same file, by any name): always, even with ``force``, since
      writing it would destroy the data the command reads;
    * is an existing folder (an output here is a file);
    * exists and ``force`` is false (pass ``--force`` to replace it);
    * lies in a folder this process cannot write into (checked on the nearest existing folder,
      so that ``predict -o /read-only/x.h5`` fails before the prediction, not after it).
    """
    from .errors import OutputError
    outs = [Path(o) for o in outputs]
    ins = [Path(i) for i in inputs if i is not None]
    for out in outs:
        for src in ins:
            if _same_file(out, src) or out.absolute() == src.absolute():
                raise OutputError(f"{out}: this output is also an input of the command ({src}); writing it would "
                                  "destroy that input, --force or not: choose another output name")
        if out.is_dir():
            raise OutputError(f"{out} is a folder; give the name of the file to write")
        if out.exists() and not force:
            raise OutputError(f"{out} exists: refusing to overwrite it (pass --force to replace it{hint})")
        folder, ok = _writable_folder(out)
        if not ok:
            raise OutputError(f"{out}: cannot write into {folder} (no write permission)")
    return outs


def source_name(source) -> str:
    """Short name of an input for output files: a folder keeps its whole name (tbg_21.79),
    a file loses its extensions (run.scfout.gz -> run)."""
    p = Path(source)
    if p.is_dir():
        return p.resolve().name
    name = p.name
    for ext in (".gz", ".scfout", ".h5", ".hdf5"):
        name = name[:-len(ext)] if name.endswith(ext) else name
    return name
