"""mmengine hooks of this package, registered in mmengine's root ``HOOKS`` (so any scope, MMagic's included,
finds them by name)."""
import os
import os.path as osp

import torch
from mmengine.dist import all_gather_object, get_dist_info, get_world_size, is_main_process
from mmengine.hooks import CheckpointHook, Hook
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

    The steps of an ``AmpOptimWrapper`` with a loss scaler (float16) are not wrapped: the scaler already skips the
    steps whose scaled gradients overflow (and lowers the scale), which is normal in mixed precision; its losses
    are still checked. bfloat16 (``DeviceAmpOptimWrapper``'s scaler is off) is guarded as a plain wrapper.

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
            if isinstance(optim_wrapper, AmpOptimWrapper) and optim_wrapper.loss_scaler.is_enabled():
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
        """Save the last good weights as the checkpoint --resume picks; returns what the message says of it.
        Every rank comes here (the ranks agree on stopping); only rank 0 writes."""
        for hook in runner.hooks:  # a collective, before anything that could differ between the ranks
            if isinstance(hook, TorchRandomStateHook):
                hook.gather(runner)
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
class ProcessGroupLogHook(Hook):
    """Logs, once before the run, the process group a distributed run actually uses: ``Distributed: process group
    gloo, world size 2, rank 0 on node 0``. mmengine's "Runtime environment" block prints ``env_cfg.dist_cfg``
    as the config asks for it (``backend: nccl``), while a run on CPU processes uses gloo
    (``plugins/compat/mmengine.py``); this line says which one was used, and says so when it differs from the
    config. A single-process run logs nothing. In every config through ``default_runtime.py``."""
    priority = 'VERY_LOW'

    def before_run(self, runner) -> None:
        if not torch.distributed.is_available() or not torch.distributed.is_initialized():
            return
        backend = torch.distributed.get_backend()
        asked = ((runner.cfg.get('env_cfg') or {}).get('dist_cfg') or {}).get('backend')
        line = (f'Distributed: process group {backend}, world size {get_world_size()}, rank {get_dist_info()[0]} '
                f'on node {os.environ.get("GROUP_RANK", "0")}')
        if asked and asked != backend:
            line += f' (env_cfg.dist_cfg.backend asks for {asked})'
        runner.logger.info(line)


@HOOKS.register_module()
class TorchRandomStateHook(Hook):
    """Makes ``--resume`` bit-exact for models that draw from torch's random generators while training (PD-GAN's
    noise vectors, dropout): mmengine 0.10.7 checkpoints keep no random state, and a resumed run re-seeds.

    The checkpoint gets, for every process, torch's CPU generator state and that of the CUDA device the process
    trains on; the first iteration after a resume restores them (from CPU copies: ``Runner.resume`` maps the
    checkpoint to the training device, and torch takes generator states only as CPU byte tensors). Python's and
    NumPy's generators need nothing: with ``num_workers=0``, mmengine re-seeds and replays the data pipeline over
    the batches already trained (``IterBasedTrainLoop`` advances its dataloader), which redraws the same
    augmentations and masks; data workers are re-seeded by their own generator.

    Under DDP with ``randomness.diff_rank_seed`` (our configs' setting) each process has streams of its own. Only
    rank 0 writes checkpoints, so at the iterations where a ``CheckpointHook`` (or the non-finite guard) is about to
    save, every process hands its states to rank 0 (one ``all_gather``, at those iterations only). A resume with
    the same number of processes gives each its own states back; with another number, the streams start from the
    seed again, with a warning (the run goes on, no longer bit-exact). A checkpoint saved where the states were
    not gathered (another hook's save under DDP, e.g. ``save_best``) holds rank 0's alone, the same case.
    """
    priority = 'VERY_HIGH'  # restore before any other hook of the iteration could draw; gather before the saves
    KEY = 'torch_random_state'

    def __init__(self):
        self.pending = None
        self.gathered = None  # (runner.iter, [state of rank 0, rank 1, ...]) at a checkpoint iteration under DDP

    @staticmethod
    def own_state() -> dict:
        """This process's generator states: ``cpu`` (a CPU byte tensor) and ``cuda`` (the current CUDA device's,
        None where this process never used CUDA)."""
        cuda = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return dict(cpu=torch.get_rng_state(), cuda=cuda)

    def gather(self, runner) -> None:
        """Collect every process's states for rank 0's next save. A collective: every rank must call it."""
        if get_world_size() > 1:
            self.gathered = (runner.iter, all_gather_object(self.own_state()))

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if get_world_size() > 1 and any(_saves_after_this_iteration(hook, runner) for hook in runner.hooks):
            self.gather(runner)

    def after_train_epoch(self, runner) -> None:
        if get_world_size() > 1 and any(_saves_after_this_epoch(hook, runner) for hook in runner.hooks):
            self.gather(runner)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() > 1 and self.gathered is not None and self.gathered[0] == runner.iter:
            checkpoint[self.KEY] = self.gathered[1]
        else:
            checkpoint[self.KEY] = [self.own_state()]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get(self.KEY)
        if states is None:
            self.pending = None
            return
        if isinstance(states, dict):  # written before the states were kept per process: one process's
            states = [states]
        rank, world_size = get_dist_info()
        if len(states) != world_size:
            runner.logger.warning(f'The checkpoint holds the random states of {len(states)} process(es) and this run '
                                  f'has {world_size}: torch\'s random streams start from the seed (the resumed run '
                                  'is not bit-exact).')
            self.pending = None
            return
        self.pending = states[rank]

    def before_train(self, runner) -> None:
        if runner.iter == 0:  # weights loaded with load_from to start a new run: keep the fresh seed's stream
            self.pending = None

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.pending is None:
            return
        restore_random_state(self.pending)
        self.pending = None


def restore_random_state(state: dict) -> None:
    """Set torch's generators to ``state`` (``TorchRandomStateHook.own_state()``'s form, its tensors on any device).
    Checkpoints written before the CUDA state was kept per process hold a list of every device's state under
    ``cuda``: the current device's is used."""
    torch.set_rng_state(state['cpu'].cpu())
    cuda = state.get('cuda')
    if isinstance(cuda, (list, tuple)):
        index = torch.cuda.current_device() if torch.cuda.is_available() else 0
        cuda = cuda[index] if index < len(cuda) else None
    if cuda is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda.cpu())


def _saves_after_this_iteration(hook, runner) -> bool:
    """Whether ``hook`` is a ``CheckpointHook`` that saves in this iteration's ``after_train_iter`` (its own
    condition, mmengine 0.10.7)."""
    return isinstance(hook, CheckpointHook) and not hook.by_epoch and (
        hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or
        (hook.save_last and hook.is_last_train_iter(runner)))


def _saves_after_this_epoch(hook, runner) -> bool:
    """The same for an epoch-based ``CheckpointHook`` in ``after_train_epoch``."""
    return isinstance(hook, CheckpointHook) and hook.by_epoch and (
        hook.every_n_epochs(runner, hook.interval, hook.save_begin) or
        (hook.save_last and hook.is_last_train_epoch(runner)))
