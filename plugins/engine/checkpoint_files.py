"""Crash-safe checkpoint files: atomic writes and a readability probe.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over the final name
(``os.replace`` is atomic on POSIX and Windows within one file system). A kill during a save leaves either the old
file or the new one, never a truncated one; at worst a ``*.tmp-<pid>`` file stays behind, which nothing reads.

Used by BasicSR's checkpoint saving (``engine/basicsr/checkpoints.py``) and resume (``engine/basicsr/resume.py``),
and by the mmengine file backend patch (``plugins/compat/mmengine.py``).
"""
import io
import os
import os.path as osp
from typing import Any, Optional

import torch


def atomic_write_bytes(data: bytes, path: str, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename.

    The rename alone protects against a killed process; ``durable`` also flushes the file and the folder entry to
    the disk (fsync), against a power loss, at the price of a few milliseconds per file."""
    folder = osp.dirname(osp.abspath(path))
    tmp = osp.join(folder, f'.{osp.basename(path)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    if durable:
        _fsync_dir(folder)


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save(obj, path)``, atomically (see the module docstring)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def _fsync_dir(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_problem(path: str) -> Optional[str]:
    """None when ``path`` loads with ``torch.load(weights_only=True)``, else why not (missing, truncated, ...)."""
    if not osp.isfile(path):
        return 'the file does not exist'
    if osp.getsize(path) == 0:
        return 'the file is empty'
    try:
        torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # truncated zip, garbage, a pickle with disallowed globals
        return f'{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ""}'.rstrip(': ')
    return None
