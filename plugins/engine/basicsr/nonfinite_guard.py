"""The non-finite loss guard on a BasicSR model (option ``train: nonfinite_patience``, default 10, 0 = off): the
shared bookkeeping of ``engine/nonfinite.py`` wired into the model's optimizers and ``optimize_parameters``. Installed
by the ``build_model`` patch of ``plugins/compat/basicsr.py``, after mixed precision (``mixed_precision.py``)."""
import os.path as osp
from typing import Callable, Optional

import torch

from ..nonfinite import (DEFAULT_PATIENCE, NOT_SAVED, BadIterationCounter, modules_finite,
                         skip_step_on_non_finite_gradients)
from .mixed_precision import MixedPrecision, optimizer_names

OPTION = 'nonfinite_patience'


class NonFiniteGuard(BadIterationCounter):
    """Installs itself on a BasicSR model: wraps each optimizer's ``step`` and the model's ``optimize_parameters``
    (instance attributes, so the model's class and other instances are untouched).

    With an fp16 gradient scaler (``amp``) the steps are left to the scaler, which already skips a step whose
    gradients hold an inf or NaN: those skips are an fp16 overflow, not a bad iteration, and are not counted; an
    iteration whose logged losses are not finite still is. Without one (float32, bf16) the guard's own check skips
    such a step (one fused check per step) and counts the iteration."""

    def __init__(self, model, patience: int, logger, epoch_of_iteration: Callable[[int], int],
                 amp: Optional[MixedPrecision] = None):
        super().__init__(patience, f'train:{OPTION}')
        self.model, self.logger, self.epoch_of_iteration = model, logger, epoch_of_iteration
        self.amp = amp
        if amp is None or amp.scaler is None:
            for optimizer, name in zip(model.optimizers, optimizer_names(model)):
                optimizer.step = skip_step_on_non_finite_gradients(optimizer.step, optimizer,
                                                                   lambda name=name: self.skipped_steps.append(name))
        self._optimize_parameters = model.optimize_parameters
        model.optimize_parameters = self.optimize_parameters

    def optimize_parameters(self, current_iter: int, *args, **kwargs):
        self.start_iteration()
        result = self._optimize_parameters(current_iter, *args, **kwargs)
        losses = self.end_iteration(current_iter, getattr(self.model, 'log_dict', None), self.logger,
                                    self.amp.skipped_steps if self.amp is not None else ())
        if losses is not None:
            self._stop(current_iter, losses)
        return result

    def _stop(self, current_iter: int, losses: str) -> None:
        model, opt = self.model, self.model.opt
        last_good = current_iter - self.consecutive
        if modules_finite(v for v in vars(model).values() if isinstance(v, torch.nn.Module)):
            model.save(self.epoch_of_iteration(current_iter), current_iter)
            saved = (f'The weights of iteration {last_good} are saved as {osp.join(opt["path"]["models"], "")}'
                     f'net_*_{current_iter}.pth with training state '
                     f'{osp.join(opt["path"]["training_states"], f"{current_iter}.state")}.')
        else:  # a finite-gradient step produced non-finite weights: keep the last periodic checkpoint
            saved = NOT_SAVED
        raise self.stop_error(current_iter, losses, saved)


def install_nonfinite_guard(model, logger, epoch_of_iteration: Callable[[int], int],
                            amp: Optional[MixedPrecision] = None):
    """Install the guard on a training model as the options ask; returns it (or None when turned off).

    ``epoch_of_iteration`` gives the epoch number BasicSR saves with a state (``TrainingRun.epoch_of_iteration``);
    ``amp`` is the model's mixed precision, installed before the guard (None in float32)."""
    patience = (model.opt.get('train') or {}).get(OPTION, DEFAULT_PATIENCE)
    if not model.opt.get('is_train') or not patience or not getattr(model, 'optimizers', None):
        return None
    return NonFiniteGuard(model, int(patience), logger, epoch_of_iteration, amp)
