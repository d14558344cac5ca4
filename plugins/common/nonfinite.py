"""Non-finite loss guard for BasicSR training (any model with ``self.optimizers`` and ``self.log_dict``).

Option ``train: nonfinite_patience: N`` (default 10; 0 turns the guard off, BasicSR's own behaviour):

* an optimizer whose gradients hold a NaN or Inf skips its step (its weights and moments stay as they were);
* an iteration with a skipped step or a non-finite logged loss is logged as a warning;
* after N such iterations in a row the run saves the model (the weights of the last good step, since the bad
  steps were skipped) and its training state, and stops with ``NonFiniteLossError``, which ``tools/train.py``
  prints as one message (exit status 1). The count of skipped iterations is logged at the end of every run.

Under DDP the gradients are already averaged over the ranks, and the ranks agree on "non-finite" through one
``all_reduce`` of a flag, so they skip and stop together.
"""
import math
import os.path as osp
from typing import Dict, List

import torch
import torch.distributed as dist

from .checkpoint_io import TrainingStopped

OPTION = 'nonfinite_patience'
DEFAULT_PATIENCE = 10
GUARDS: List['NonFiniteGuard'] = []  # the guards of this process, for the end-of-run summary


class NonFiniteLossError(TrainingStopped):
    """Too many consecutive iterations with a non-finite loss or gradient."""


def _all_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to check


def gradients_finite(optimizer: torch.optim.Optimizer) -> bool:
    """True when every gradient of ``optimizer``'s parameters is finite (one device sync)."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return True
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())


class NonFiniteGuard:
    """Installs itself on a BasicSR model: wraps each optimizer's ``step`` and the model's ``optimize_parameters``
    (instance attributes, so the model's class and other instances are untouched)."""

    def __init__(self, model, patience: int, logger):
        self.model, self.patience, self.logger = model, patience, logger
        self.consecutive = 0
        self.skipped_iterations = 0
        self._skipped_steps: List[str] = []
        names = {id(v): k for k, v in vars(model).items() if isinstance(v, torch.optim.Optimizer)}
        for index, optimizer in enumerate(model.optimizers):
            optimizer.step = self._guarded_step(optimizer, names.get(id(optimizer), f'optimizers[{index}]'))
        self._optimize_parameters = model.optimize_parameters
        model.optimize_parameters = self.optimize_parameters
        GUARDS.append(self)

    def _guarded_step(self, optimizer, name):
        step = optimizer.step

        def guarded_step(*args, **kwargs):
            if not gradients_finite(optimizer):
                self._skipped_steps.append(name)
                return None
            return step(*args, **kwargs)

        return guarded_step

    def optimize_parameters(self, current_iter: int, *args, **kwargs):
        self._skipped_steps = []
        result = self._optimize_parameters(current_iter, *args, **kwargs)
        bad_losses = {k: v for k, v in (getattr(self.model, 'log_dict', None) or {}).items() if not _all_finite(v)}
        if self._agree(bool(self._skipped_steps or bad_losses)):
            self._on_bad_iteration(current_iter, bad_losses)
        else:
            self.consecutive = 0
        return result

    def _agree(self, bad: bool) -> bool:
        """Under DDP: bad on any rank means bad on all."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([float(bad)], device=self.model.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return bool(flag.item() > 0)
        return bad

    def _on_bad_iteration(self, current_iter: int, bad_losses: Dict) -> None:
        self.consecutive += 1
        self.skipped_iterations += 1
        losses = ', '.join(f'{k}={float(v) if not isinstance(v, torch.Tensor) else v.tolist()}'
                           for k, v in bad_losses.items()) or 'non-finite gradients'
        steps = (f'step of {", ".join(self._skipped_steps)} skipped' if self._skipped_steps else
                 'gradients were finite, the step was applied')
        self.logger.warning(f'Non-finite loss at iteration {current_iter} ({losses}): {steps} '
                            f'[{self.consecutive} in a row; the run stops at train:{OPTION} = {self.patience}].')
        if self.consecutive >= self.patience:
            self._stop(current_iter, losses)

    def _stop(self, current_iter: int, losses: str) -> None:
        from .resume import epoch_of_iteration
        model, opt = self.model, self.model.opt
        last_good = current_iter - self.consecutive
        nets = [v for v in vars(model).values() if isinstance(v, torch.nn.Module)]
        finite = all(torch.isfinite(p).all() for net in nets for p in net.parameters())
        if finite:
            model.save(epoch_of_iteration(current_iter), current_iter)
            saved = (f'The weights of iteration {last_good} are saved as {osp.join(opt["path"]["models"], "")}'
                     f'net_*_{current_iter}.pth with training state '
                     f'{osp.join(opt["path"]["training_states"], f"{current_iter}.state")}.')
        else:  # a finite-gradient step produced non-finite weights: keep the last periodic checkpoint
            saved = 'The weights are no longer finite, so nothing was saved: resume from the last checkpoint.'
        raise NonFiniteLossError(
            f'training stopped at iteration {current_iter}: {self.consecutive} consecutive iterations had a '
            f'non-finite loss or gradient ({losses}), and train:{OPTION} is {self.patience}. {saved} '
            'Lower the learning rate, check the data and the loss, or raise train:nonfinite_patience.')


def install_nonfinite_guard(model, logger):
    """Install the guard on a training model as the options ask; returns it (or None when turned off)."""
    patience = (model.opt.get('train') or {}).get(OPTION, DEFAULT_PATIENCE)
    if not model.opt.get('is_train') or not patience or not getattr(model, 'optimizers', None):
        return None
    return NonFiniteGuard(model, int(patience), logger)


def summary() -> List[str]:
    """End-of-run lines: how many iterations the guards skipped."""
    total = sum(g.skipped_iterations for g in GUARDS)
    return [f'Non-finite guard: {total} iteration(s) had a non-finite loss or gradient and were skipped.'] \
        if total else []
