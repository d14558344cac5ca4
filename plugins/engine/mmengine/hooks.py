"""mmengine hooks of this package, registered in mmengine's root ``HOOKS`` (so any scope, MMagic's included,
finds them by name)."""
import os.path as osp

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper, OptimWrapperDict
from mmengine.registry import HOOKS

from ..checkpoint_files import atomic_write_bytes
from ..nonfinite import (DEFAULT_PATIENCE, NOT_SAVED, BadIterationCounter, modules_finite,
                         skip_step_on_non_finite_gradients, valid_patience)

PATIENCE_OPTION = 'default_hooks.nonfinite_guard.patience'


@HOOKS.register_module()
class NonFiniteGuardHook(Hook):
    """The non-finite loss guard of ``plugins/engine/nonfinite.py`` for mmengine's Runner.

    Each optimizer wrapper (each one of an ``OptimWrapperDict``: MMagic's generator and discriminator) skips its
    step when its gradients hold a NaN or Inf; an iteration with a skipped step or a non-finite value in the model's
    ``train_step`` outputs (its log variables) is logged as a warning; after ``patience`` such iterations in a row
    the hook saves ``iter_<N>.pth`` (the weights of the last good step, with optimizer and schedulers), points
    ``last_checkpoint`` at it, so that ``--resume`` starts from there, and stops the run with
    ``NonFiniteLossError``.

    ``AmpOptimWrapper``'s steps are not wrapped: its loss scaler already skips the steps whose scaled gradients
    overflow (and lowers the scale), which is normal in mixed precision; its losses are still checked.

    Args:
        patience: consecutive bad iterations before the run stops; 0 turns the guard off.
    """
    priority = 'NORMAL'  # after_train_iter before LoggerHook (BELOW_NORMAL) and CheckpointHook (VERY_LOW)

    def __init__(self, patience: int = DEFAULT_PATIENCE):
        if not valid_patience(patience):
            raise ValueError(f'NonFiniteGuardHook: patience must be an int >= 0 (0 turns the guard off), '
                             f'got {patience!r}')
        self.patience = patience
        self.counter = None

    def before_train(self, runner) -> None:
        if not self.patience:
            return
        self.counter = BadIterationCounter(self.patience, PATIENCE_OPTION)
        wrapper = runner.optim_wrapper
        named = wrapper.items() if isinstance(wrapper, OptimWrapperDict) else [('optim_wrapper', wrapper)]
        for name, optim_wrapper in named:
            if isinstance(optim_wrapper, AmpOptimWrapper):
                continue
            # An instance attribute: update_params() and the models' own optim_wrapper.step() calls both see it.
            optim_wrapper.step = skip_step_on_non_finite_gradients(
                optim_wrapper.step, optim_wrapper.optimizer, lambda name=name: self.counter.skipped_steps.append(name))

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.counter is not None:
            self.counter.start_iteration()

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if self.counter is None:
            return
        current_iter = runner.iter + 1  # the number mmengine's log and checkpoints give this iteration
        losses = self.counter.end_iteration(current_iter, outputs, runner.logger)
        if losses is not None:
            raise self.counter.stop_error(current_iter, losses, self._save(runner, current_iter))

    def _save(self, runner, current_iter: int) -> str:
        """Save the last good weights as the checkpoint --resume picks; returns what the message says of it."""
        if not modules_finite([runner.model]):
            return NOT_SAVED
        filename = f'iter_{current_iter}.pth'
        runner.save_checkpoint(runner.work_dir, filename, save_optimizer=True, save_param_scheduler=True,
                               by_epoch=False)
        path = osp.join(runner.work_dir, filename)
        if is_main_process():
            atomic_write_bytes(path.encode(), osp.join(runner.work_dir, 'last_checkpoint'), durable=False)
        return (f'The weights of iteration {current_iter - self.counter.consecutive} are saved as {path}, where '
                '--resume starts.')


@HOOKS.register_module()
class TorchRandomStateHook(Hook):
    """Makes ``--resume`` bit-exact for models that draw from torch's random generator while training (PD-GAN's
    noise vectors, dropout): mmengine 0.10.7 checkpoints keep no random state, and a resumed run re-seeds.

    The checkpoint gets torch's CPU (and CUDA) generator states at the save, which the first iteration after a resume
    restores. Python's and NumPy's generators need nothing: with ``num_workers=0``, mmengine re-seeds and replays the
    data pipeline over the batches already trained (``IterBasedTrainLoop`` advances its dataloader), which redraws
    the same augmentations and masks; data workers are re-seeded by their own generator. The state is that of the
    rank that saves (rank 0): ranks seeded alike (mmengine's default) stay alike; with ``diff_rank_seed`` they do not.
    """
    priority = 'VERY_HIGH'  # restore before any other hook of the iteration could draw
    KEY = 'torch_random_state'

    def __init__(self):
        self.pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint[self.KEY] = dict(cpu=torch.get_rng_state(),
                                    cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self.pending = checkpoint.get(self.KEY)

    def before_train(self, runner) -> None:
        if runner.iter == 0:  # weights loaded with load_from to start a new run: keep the fresh seed's stream
            self.pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.pending is None:
            return
        torch.set_rng_state(self.pending['cpu'])
        if self.pending['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.pending['cuda'])
        self.pending = None
