"""Filesystem helpers shared by every layer: atomic writes.

Owns how mltrail puts bytes on disk so that a crash never leaves a half-written file.
It must never know what the bytes mean.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Never half-written. ``durable`` also fsyncs before the rename (so the bytes survive a
    power cut, not only a crash); pass False for files rewritten often whose loss a later
    digest check would reveal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
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
