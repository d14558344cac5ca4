"""Crash-safe checkpoint files: atomic writes and a readability probe.

A checkpoint is written to a temporary file in the same folder, flushed to disk, then renamed over the final name
(``os.replace`` is atomic on POSIX and Windows within one file system). A kill during a save leaves either the old
file or the new one, never a truncated one; at worst a ``*.tmp-<pid>`` file stays behind, which nothing reads.

Used by the BasicSR save patches and the mmengine file backend patch in ``plugins/compat.py``, and by the
resume logic of ``plugins/common/resume.py``.
"""
import io
import os
import os.path as osp
from typing import Any, Optional

import torch


class TrainingStopped(RuntimeError):
    """A run stopped on purpose with a message for the user (no traceback needed): non-finite losses, a data
    fault with ``on_data_fault: stop``, or an unreadable checkpoint. ``tools/train.py`` prints it and exits 1."""


class CheckpointError(TrainingStopped):
    """A checkpoint or training state that cannot be read."""


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


# ---------------------------------------------------------------------------------------------------------
# BasicSR's BaseModel.save_network / save_training_state, writing atomically (installed by plugins/compat.py)
# ---------------------------------------------------------------------------------------------------------
def _save_with_retry(obj: Any, path: str, what: str) -> None:
    """BasicSR's policy (3 tries, then log and go on training), with atomic writes."""
    from basicsr.utils import get_root_logger
    for attempt in range(3):
        try:
            atomic_torch_save(obj, path)
            return
        except OSError as err:
            get_root_logger().warning(f'Saving {what} {path} failed ({err}); {2 - attempt} tries left.')
    get_root_logger().error(f'Could not save {what} {path}; training goes on without it.')


def save_network(model, net, net_label: str, current_iter, param_key='params') -> None:
    """``BaseModel.save_network``: ``{'<param_key>': state_dict, ...}`` as ``models/<label>_<iter|latest>.pth``,
    with the DDP ``module.`` prefixes removed and tensors on the CPU (rank 0 only, as BasicSR's)."""
    from basicsr.utils.dist_util import get_dist_info
    if get_dist_info()[0] != 0:
        return
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError(f'save_network: {len(nets)} networks but {len(keys)} param keys')
    save_dict = {}
    for net_, key in zip(nets, keys):
        state = model.get_bare_model(net_).state_dict()
        save_dict[key] = {(k[len('module.'):] if k.startswith('module.') else k): v.cpu() for k, v in state.items()}
    label = 'latest' if current_iter == -1 else current_iter
    _save_with_retry(save_dict, osp.join(model.opt['path']['models'], f'{net_label}_{label}.pth'), 'network')


def save_training_state(model, epoch: int, current_iter: int) -> None:
    """``BaseModel.save_training_state`` (epoch, iteration, optimizers, schedulers as ``training_states/<iter>.state``)
    plus what an exact resume needs (``plugins/common/resume.py``). Rank 0 only; nothing for ``current_iter`` -1."""
    from basicsr.utils.dist_util import get_dist_info

    from .resume import training_state_extras
    if current_iter == -1 or get_dist_info()[0] != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter,
             'optimizers': [o.state_dict() for o in model.optimizers],
             'schedulers': [s.state_dict() for s in model.schedulers]}
    state.update(training_state_extras())
    _save_with_retry(state, osp.join(model.opt['path']['training_states'], f'{current_iter}.state'), 'training state')
