"""Crash-safe checkpoint files: atomic writes and a readability probe.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over the final name
(``os.replace`` is atomic on POSIX and Windows within one file system). A kill during a save leaves either the old
file or the new one, never a truncated one; at worst a ``*.tmp-<pid>`` file stays behind, which nothing reads. A
write that fails (a full disk, a read-only folder) removes its temporary file and leaves the final name untouched;
the callers stop the run with ``checkpoint_write_error`` (``CheckpointError``: one line, the file and the reason).
Why a checkpoint cannot be read is said in our words (``load_error_reason``): torch's own text suggests reloading
with ``weights_only=False``, which would run the file's code.

Used by BasicSR's checkpoint saving (``engine/basicsr/checkpoints.py``) and resume (``engine/basicsr/resume.py``),
and by the mmengine file backend patch (``plugins/compat/mmengine.py``).
"""
import errno
import io
import os
import os.path as osp
from typing import Any, Optional

import torch

from .errors import CheckpointError

# Errors of the output file system that a retry does not cure: the run stops (``CheckpointError``).
LASTING_WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


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


def write_error_reason(err: OSError) -> str:
    """``[Errno 28] No space left on device`` as ``no space left on device (errno ENOSPC)``."""
    name = errno.errorcode.get(err.errno, str(err.errno)) if err.errno else ''
    text = (err.strerror or str(err) or type(err).__name__)
    return f'{text[:1].lower()}{text[1:]}' + (f' (errno {name})' if name else '')


def checkpoint_write_error(what: str, path: str, err: OSError) -> CheckpointError:
    """The ``CheckpointError`` that stops a run whose checkpoint ``path`` could not be written: one line naming the
    file and the reason, and what is left (the final name untouched, the temporary file removed)."""
    return CheckpointError(f'cannot write {what} {path}: {write_error_reason(err)}. Training stopped; the '
                           'checkpoints written before are intact (free space or fix the folder, then resume).')


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
        return load_error_reason(err)
    return None


def load_error_reason(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` failed, in our words.

    torch's own text for a refused file suggests reloading with ``weights_only=False``, which runs whatever code the
    file holds: never passed on. Its one useful line (the refused global, the bad opcode) is kept."""
    text = str(err)
    if 'Weights only load failed' in text or 'WeightsUnpickler' in text:
        detail = next((line.strip() for line in text.splitlines()
                       if line.strip() and 'weights_only' not in line and 'Weights only load failed' not in line
                       and not line.startswith(('Check the documentation', 'Please file an issue'))), '')
        detail = detail.replace('WeightsUnpickler error: ', '')
        if 'GLOBAL' in detail or 'global' in detail:
            return (f'it holds Python objects that a safe load refuses ({detail.rstrip(".")}); such a file could '
                    'run code when loaded, so it is not loaded')
        return f'not a PyTorch checkpoint, or a damaged one (unpickling failed: {detail.rstrip(".") or "bad data"})'
    if 'PytorchStreamReader' in text or 'zip archive' in text:
        first = text.splitlines()[0].split('. This is an internal')[0].rstrip('.')
        return f'truncated or damaged ({first})'
    garbled = (KeyError, IndexError, EOFError, ValueError, TypeError)
    if isinstance(err, garbled) or 'pickle' in type(err).__name__.lower():
        shown = f'{type(err).__name__}: {text.splitlines()[0]}' if text else type(err).__name__
        return f'not a PyTorch checkpoint, or a damaged one ({shown})'
    first = text.splitlines()[0] if text else ''
    return f'{type(err).__name__}: {first}'.rstrip(': ') if 'weights_only' not in first else type(err).__name__
