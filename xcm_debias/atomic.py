"""Atomic file writes: a file appears complete under its name, or not at all.

Every writer of the library goes through :func:`atomic_path`: the content is written to a
temporary file in the destination's own folder (so the final rename never crosses a file
system), flushed to disk with ``fsync``, then renamed over the destination with
``os.replace`` (atomic on POSIX and Windows). A failure anywhere (a full disk, a crash of the
writer, an interrupt) removes the temporary file and leaves any previous file at the
destination untouched. A full disk is reported as :class:`DiskFullError` naming the path.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class DiskFullError(OSError):
    """Raised when a write runs out of space; the previous file (if any) is intact."""


def disk_full_error(path: Path, exc: OSError) -> DiskFullError:
    """The error to raise for an ``ENOSPC``/``EDQUOT`` failure while writing ``path``."""
    return DiskFullError(
        exc.errno,
        f"{path}: no space left on the device while writing (nothing was written; any "
        "previous file at this path is unchanged); free space or choose another folder",
    )


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def fsync_file(path: Path) -> None:
    """Flush a written file's content to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder entry (the rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically.

    The temporary file sits beside ``path`` under a hidden name ending in ``.tmp`` (never
    mistaken for an output; writers must not pick a format by its suffix). Raises
    ``IsADirectoryError`` when ``path`` is a folder and :class:`DiskFullError` when the disk fills up.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: expected a file path, got the folder {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    # mkstemp creates the file private (0600): give it the mode a plain open() would
    os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if is_disk_full(exc):
            raise disk_full_error(path, exc) from exc  # type: ignore[arg-type]
        raise
    _fsync_folder(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes(path, text.encode("utf-8"))
