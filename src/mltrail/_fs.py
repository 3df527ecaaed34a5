"""Filesystem helpers shared by every layer: atomic writes, and refusing special files.

Owns how mltrail puts bytes on disk so that a crash never leaves a half-written file,
with the permissions an ordinary file would get (the umask decides, unless a caller
asks for a private mode), and how it checks a user-named path before reading it (no
FIFOs, devices, sockets or dangling links: reading those hangs or never ends). It must
never know what the bytes mean.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from mltrail.errors import InputError, NotFoundError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes, durable: bool = True, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Never half-written. ``durable`` also fsyncs before the rename (so the bytes survive a
    power cut, not only a crash); pass False for files rewritten often whose loss a later
    digest check would reveal. The file gets ``mode`` if given (0o600 for secrets), else
    what ``open()`` would give a new file (0o666 less the umask, e.g. 0o644).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def regular_file(path: str | os.PathLike[str], what: str = "file") -> Path:
    """``path`` if it is a regular file (links followed); else a one-line InputError."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise InputError(f"{what} {p} is a dangling symbolic link") from None
        raise NotFoundError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {p} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} {p} is {_kind(st.st_mode)}; only regular files are read")
    return p


def readable_tree(path: str | os.PathLike[str], what: str = "path") -> Path:
    """``path`` if it is a regular file, or a folder whose files (``.git*`` skipped, as the
    digest skips them) are all regular; else a one-line InputError naming the first bad one."""
    p = Path(path)
    if not p.is_dir():
        return regular_file(p, what)
    for dirpath, dirnames, filenames in os.walk(p):
        dirnames[:] = [d for d in dirnames if not d.startswith(".git")]
        for name in filenames:
            if not name.startswith(".git"):
                regular_file(Path(dirpath) / name, f"{what} entry")
    return p
