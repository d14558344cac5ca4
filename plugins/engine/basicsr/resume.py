"""Exact resume of BasicSR training: random-number states, the position inside the epoch, and a fallback past
unreadable checkpoints.

BasicSR 1.4.2 saves the optimizers, schedulers, epoch and iteration, and on resume (1) re-seeds every generator
with ``manual_seed``, so the random crops and flips after the resume differ from an uninterrupted run, and (2)
starts the saved epoch from its first batch, so the batches of that epoch seen before the kill are seen twice and
the rest of the epoch moves. Here, wired in by ``plugins/compat/basicsr.py``:

* the training state also holds the Python, NumPy, torch (and CUDA) generator states and the number of
  batches per epoch (``TrainingRun.state_extras``);
* on resume the train sampler (``ResumableSampler``) drops the batches of the saved epoch that were already
  trained, and restores the generator states just before the first batch is loaded, which is the point where
  the uninterrupted run drew its next random number;
* validation runs with the generator states set aside (``isolated_rng``), so whether a validation happened at
  the save point (it does in the uninterrupted run, not after a resume) cannot change the training stream;
* ``--auto_resume`` takes the newest training state whose state and network files all load, and reports the
  ones it skips (``find_resumable_state``).

With ``manual_seed`` set and ``num_worker_per_gpu: 0`` a resumed run then gives the same losses and weights as an
uninterrupted one. With data workers, each worker's generators are re-seeded per epoch by BasicSR and cannot be
restored mid-epoch, and ``prefetch_mode: cpu`` loads ahead in a thread: the data order, weights, optimizer and
schedule still resume exactly, the random augmentations after the resume differ.
"""
import logging
import os
import os.path as osp
import random
from contextlib import contextmanager
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from basicsr.data.data_sampler import EnlargedSampler

from ..checkpoint_files import checkpoint_problem
from ..errors import CheckpointError


# ---------------------------------------------------------------------------------------------------------
# random-number generator states
# ---------------------------------------------------------------------------------------------------------
def get_rng_state() -> Dict:
    """The state of Python's, NumPy's, torch's CPU (and every CUDA device's) global generators.

    Only types that ``torch.load(weights_only=True)`` accepts: the NumPy key array is stored as an int64 tensor."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'python': random.getstate(),
             'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict) -> None:
    """Restore what ``get_rng_state`` returned, wherever its tensors were loaded: the generators take CPU byte
    tensors, so each state goes through ``.cpu()`` (a state read with a CUDA ``map_location`` would make
    ``torch.set_rng_state`` fail and NumPy read device memory). CUDA states are restored for the devices that are
    visible now."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'].cpu())
    if state.get('cuda') and torch.cuda.is_available():
        for index, cuda_state in enumerate(state['cuda'][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state.cpu(), index)


@contextmanager
def isolated_rng():
    """Run a block without changing the global generators' states (whatever it draws)."""
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)


class TrainingRun:
    """What our patches of BasicSR's ``train_pipeline`` pass between its steps, for the run in progress.

    ``train_pipeline`` keeps the resume state and the data loaders in local variables; the patches of
    ``plugins/compat/basicsr.py`` hand them on through one ``TrainingRun``: ``load_resume_state`` starts a run and
    leaves the state it read (``resume_state``), ``create_train_val_dataloader`` records ``batches_per_epoch`` and
    takes the state to place the sampler, and the checkpoint saving and the non-finite guard read
    ``batches_per_epoch``. One training runs at a time in a process (BasicSR's pipeline is not re-entrant).
    """

    def __init__(self):
        self.device_plan = None  # engine/basicsr/devices.DevicePlan, set when the options are parsed
        self.start()

    def start(self) -> None:
        """Forget the previous run of this process (tests run several in one process)."""
        self.resume_state: Optional[Dict] = None
        self.batches_per_epoch: Optional[int] = None
        DEFERRED_WARNINGS.clear()

    def take_resume_state(self) -> Optional[Dict]:
        """The state read by ``load_resume_state`` for this run, once (None when the run starts afresh)."""
        state, self.resume_state = self.resume_state, None
        return state

    def state_extras(self) -> Dict:
        """What ``save_training_state`` adds to BasicSR's state dict for an exact resume.

        BasicSR saves the state on rank 0 only, so the list holds rank 0's generator states; under DDP the other
        ranks resume with fresh generators (a warning says so). Gathering them would need a collective inside
        ``save_training_state``, which a model that saves on rank 0 only would turn into a hang."""
        return {'rng_states': [get_rng_state()], 'batches_per_epoch': self.batches_per_epoch}

    def epoch_of_iteration(self, current_iter: int) -> int:
        """BasicSR's epoch number for an iteration (iterations count from 1, epochs from 0)."""
        return max(current_iter - 1, 0) // (self.batches_per_epoch or 1)


# ---------------------------------------------------------------------------------------------------------
# the position inside the epoch
# ---------------------------------------------------------------------------------------------------------
class ResumableSampler(EnlargedSampler):
    """BasicSR's train sampler whose first epoch after a resume drops the samples already trained and restores
    the saved generator states before its first batch loads."""

    _skip_samples = 0
    _rng_to_restore = None

    def resume_inside_epoch(self, skip_samples: int, rng_state: Optional[Dict]) -> None:
        self._skip_samples, self._rng_to_restore = skip_samples, rng_state

    def __iter__(self):
        indices = list(super().__iter__())
        # DataLoader asks for this iterator lazily, when the first batch of the epoch is loaded.
        if self._rng_to_restore is not None:
            set_rng_state(self._rng_to_restore)
        indices, self._skip_samples, self._rng_to_restore = indices[self._skip_samples:], 0, None
        return iter(indices)


def plan_resume(resume_state: Dict, train_sampler, batches_per_epoch: int, batch_size: int, rank: int,
                logger) -> None:
    """Tell ``train_sampler`` where the saved run stopped inside its epoch (see the module docstring)."""
    saved_batches = resume_state.get('batches_per_epoch')
    rng_states = resume_state.get('rng_states') or []
    position = resume_state['iter'] - resume_state['epoch'] * batches_per_epoch
    if saved_batches is None:
        logger.warning('The training state was saved without the data position (not by this package): the epoch '
                       'restarts from its first batch and random augmentations differ from an uninterrupted run.')
        return
    if saved_batches != batches_per_epoch or not 0 <= position <= batches_per_epoch:
        logger.warning(f'The data changed since the state was saved ({saved_batches} batches per epoch then, '
                       f'{batches_per_epoch} now): the epoch restarts from its first batch.')
        return
    rng = rng_states[rank] if rank < len(rng_states) else None
    if rng is None:
        logger.warning(f'The training state has no generator state for rank {rank} (saved with '
                       f'{len(rng_states)} processes): random augmentations differ from an uninterrupted run.')
    train_sampler.resume_inside_epoch(position * batch_size, rng)
    logger.info(f'Resuming inside epoch {resume_state["epoch"]}: skipping its first {position} of '
                f'{batches_per_epoch} batches, generator states restored: {rng is not None}.')


# ---------------------------------------------------------------------------------------------------------
# finding a usable training state
# ---------------------------------------------------------------------------------------------------------
def _state_iterations(state_dir: str) -> List[int]:
    if not osp.isdir(state_dir):
        return []
    names = [f[:-len('.state')] for f in os.listdir(state_dir) if f.endswith('.state')]
    return sorted((int(n) for n in names if n.isdigit()), reverse=True)


def resume_network_files(opt: Dict, iteration: int) -> List[str]:
    """The network files BasicSR's ``check_resume`` will load for ``iteration``."""
    ignored = (opt['path'].get('ignore_resume_networks') or [])
    return [osp.join(opt['path']['models'], f'net_{key[len("network_"):]}_{iteration}.pth')
            for key in opt if str(key).startswith('network_') and key not in ignored]


# Warnings of the resume, which is decided before BasicSR creates its logger (and the log file): kept here, written
# to the run's log by ``log_deferred_warnings`` once the logger exists (``create_train_val_dataloader``'s patch).
DEFERRED_WARNINGS: List[str] = []


def log_deferred_warnings(logger) -> None:
    """Write the warnings kept in ``DEFERRED_WARNINGS`` to the log files of ``logger`` (the run's log), once; the
    console had them already."""
    files = [h for h in logger.handlers if isinstance(h, logging.FileHandler)]
    while DEFERRED_WARNINGS:
        record = logger.makeRecord(logger.name, logging.WARNING, __file__, 0, DEFERRED_WARNINGS.pop(0), None, None)
        for handler in files:
            if record.levelno >= handler.level:
                handler.handle(record)


def find_resumable_state(opt: Dict, logger_warning=print) -> Tuple[Optional[str], List[str]]:
    """The newest ``training_states/<iter>.state`` whose state and network files all load.

    Returns (its path or None, one line per newer state that was skipped and why)."""
    skipped = []
    for iteration in _state_iterations(opt['path']['training_states']):
        state_path = osp.join(opt['path']['training_states'], f'{iteration}.state')
        problems = [(p, checkpoint_problem(p)) for p in [state_path] + resume_network_files(opt, iteration)]
        problems = [(p, why) for p, why in problems if why]
        if not problems:
            return state_path, skipped
        line = f'cannot resume from iteration {iteration}: ' + '; '.join(f'{p}: {why}' for p, why in problems)
        logger_warning(line)
        DEFERRED_WARNINGS.append(f'{line}; trying an older one.')
        skipped.append(line)
    return None, skipped


def load_training_state(path: str) -> Dict:
    """Load a training state onto the CPU, or raise ``CheckpointError`` naming the file and what is wrong with it.

    On the CPU whatever the run's device: the optimizers' ``load_state_dict`` moves their moments to their
    parameters' device, and the random states must be CPU tensors (BasicSR maps to the current CUDA device, which
    put them on the GPU and broke the resume of every GPU run)."""
    problem = checkpoint_problem(path)
    if problem:
        raise CheckpointError(f'cannot resume from path:resume_state {path}: {problem}. Give another state, or '
                              'use --auto_resume to take the newest readable one.')
    return torch.load(path, map_location='cpu', weights_only=True)
