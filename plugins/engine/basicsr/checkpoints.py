"""BasicSR's ``BaseModel.save_network`` / ``save_training_state``, writing atomically (``engine/checkpoint_files.py``)
and saving what an exact resume needs (``engine/basicsr/resume.py``). Installed on ``BaseModel`` by
``plugins/compat/basicsr.py``."""
import os.path as osp
from typing import Any, Dict

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info

from ..checkpoint_files import LASTING_WRITE_ERRORS, atomic_torch_save, checkpoint_write_error
from .mixed_precision import scaler_state


def _save_with_retry(obj: Any, path: str, what: str) -> None:
    """Write ``obj`` atomically; a failed write is tried 3 times (BasicSR's policy), then stops the run.

    BasicSR logs the failure and trains on, so a full disk ended with exit 0 and nothing saved. Here the run stops
    with ``CheckpointError`` naming the file and the reason, at once for the errors a retry cannot cure (no space,
    a read-only or forbidden folder: ``LASTING_WRITE_ERRORS``). The atomic write leaves the final name as it was
    and removes its temporary file, so the checkpoints written before stay intact."""
    for attempt in range(3):
        try:
            atomic_torch_save(obj, path)
            return
        except OSError as err:
            if err.errno in LASTING_WRITE_ERRORS or attempt == 2:
                raise checkpoint_write_error(what, path, err) from err
            get_root_logger().warning(f'Saving {what} {path} failed ({err}); {2 - attempt} tries left.')


def save_network(model, net, net_label: str, current_iter, param_key='params') -> None:
    """``BaseModel.save_network``: ``{'<param_key>': state_dict, ...}`` as ``models/<label>_<iter|latest>.pth``,
    with the DDP ``module.`` prefixes removed and tensors on the CPU (rank 0 only, as BasicSR's)."""
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


def save_training_state(model, epoch: int, current_iter: int, extras: Dict) -> None:
    """``BaseModel.save_training_state`` (epoch, iteration, optimizers, schedulers as ``training_states/<iter>.state``)
    plus the fp16 gradient scaler's state under ``train: amp: fp16`` (``mixed_precision.scaler_state``) and ``extras``
    (``TrainingRun.state_extras``: generator states, batches per epoch). Rank 0 only; nothing for ``current_iter``
    -1."""
    if current_iter == -1 or get_dist_info()[0] != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter,
             'optimizers': [o.state_dict() for o in model.optimizers],
             'schedulers': [s.state_dict() for s in model.schedulers]}
    state.update(scaler_state(model))
    state.update(extras)
    _save_with_retry(state, osp.join(model.opt['path']['training_states'], f'{current_iter}.state'), 'training state')
