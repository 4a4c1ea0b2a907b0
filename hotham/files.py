"""Writing files safely: every file hotham writes appears whole under its final name or not at all.

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

__all__ = ["atomic_path", "atomic_folder", "remove_stale_temporaries"]

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
