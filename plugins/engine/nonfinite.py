"""Non-finite loss guard, shared by BasicSR models (``engine/basicsr/nonfinite_guard.py``) and mmengine runners
(``engine/mmengine/hooks.py: NonFiniteGuardHook``).

BasicSR: option ``train: nonfinite_patience: N`` (default 10; 0 turns the guard off, BasicSR's own behaviour).
mmengine: ``default_hooks.nonfinite_guard = dict(type='NonFiniteGuardHook', patience=N)`` (in the shared
``options/mmagic/_base_/default_runtime.py``; ``patience=0`` turns it off). In both:

* an optimizer whose gradients hold a NaN or Inf skips its step (its weights and moments stay as they were); under
  BasicSR's ``train: amp: fp16`` the gradient scaler makes that check and skip, and the steps it skips (overflows,
  normal in fp16) do not count as bad iterations;
* an iteration with a skipped step or a non-finite logged loss is logged as a warning;
* after N such iterations in a row the run saves the model (the weights of the last good step, since the bad
  steps were skipped) and its training state, and stops with ``NonFiniteLossError``, which ``tools/train.py``
  prints as one message (exit status 1). The count of skipped iterations is logged at the end of every run.

Under DDP the gradients are already averaged over the ranks, and the ranks agree on "non-finite" through one
``all_reduce`` of a flag, so they skip and stop together.
"""
import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import torch
import torch.distributed as dist

from .errors import NonFiniteLossError

DEFAULT_PATIENCE = 10
GUARDS: List['BadIterationCounter'] = []  # the guards of this process, for the end-of-run summary


def valid_patience(value) -> bool:
    """A patience is an int >= 0 (0 turns the guard off); a bool is not one."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _all_finite(value) -> bool:
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # not a number: nothing to check


def non_finite_losses(log_vars: Optional[Dict]) -> Dict:
    """The entries of a dict of logged losses whose value holds a NaN or Inf. (BasicSR's ``log_dict`` holds the floats
    its ``reduce_loss_dict`` already read with ``.item()``: checking them costs no device sync.)"""
    return {k: v for k, v in (log_vars or {}).items() if not _all_finite(v)}


def gradients_finite(optimizer: torch.optim.Optimizer) -> bool:
    """True when every gradient of ``optimizer``'s parameters is finite: one fused reduction and one device sync.

    The L1 norm of each gradient (``torch._foreach_norm``, one multi-tensor kernel, accumulated in float32) is finite
    exactly when the gradient is (a NaN or Inf propagates through the sum; finite float32 gradients would need a
    sum of magnitudes above 3e38 to overflow), so the check reads every gradient once and syncs once."""
    grads = [p.grad for group in optimizer.param_groups for p in group['params'] if p.grad is not None]
    if not grads:
        return True
    norms = torch._foreach_norm(grads, 1, dtype=torch.float32)
    return bool(torch.isfinite(torch.stack(norms)).all())


def modules_finite(modules: Iterable[torch.nn.Module]) -> bool:
    """True when every parameter and floating-point buffer (BatchNorm statistics) of ``modules`` is finite."""
    tensors = [t for m in modules for t in list(m.parameters()) + list(m.buffers()) if t.is_floating_point()]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


def skip_step_on_non_finite_gradients(step: Callable, optimizer: torch.optim.Optimizer, on_skip: Callable[[], None]):
    """``step`` that does nothing (and calls ``on_skip``) when ``optimizer``'s gradients are not all finite."""

    def guarded_step(*args, **kwargs):
        if not gradients_finite(optimizer):
            on_skip()
            return None
        return step(*args, **kwargs)

    return guarded_step


def agree_across_ranks(bad: bool) -> bool:
    """Under DDP: bad on any rank means bad on all (one all_reduce); else ``bad``."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device('cuda', torch.cuda.current_device()) if dist.get_backend() == 'nccl' else 'cpu'
        flag = torch.tensor([float(bad)], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item() > 0)
    return bad


def _describe(value) -> str:
    return str(value.tolist() if isinstance(value, torch.Tensor) else float(value))


class BadIterationCounter:
    """The bookkeeping both guards share: consecutive bad iterations, the warning, when to stop.

    ``option`` names the setting in the toolbox's own terms (``train:nonfinite_patience`` or
    ``default_hooks.nonfinite_guard.patience``) for the messages."""

    def __init__(self, patience: int, option: str):
        self.patience, self.option = patience, option
        self.consecutive = 0
        self.skipped_iterations = 0
        self.skipped_steps: List[str] = []  # names of the optimizers that skipped their step this iteration
        GUARDS.append(self)

    def start_iteration(self) -> None:
        self.skipped_steps = []

    def end_iteration(self, current_iter: int, log_vars: Optional[Dict], logger,
                      skipped_by_scaler: Sequence[str] = ()) -> Optional[str]:
        """Call after the iteration's steps. Returns None while training may go on, else the reason to stop.

        ``skipped_by_scaler``: the optimizers whose step an fp16 gradient scaler skipped (inf/NaN scaled gradients,
        normal in fp16): they do not make the iteration bad, they are named when its losses do."""
        bad_losses = non_finite_losses(log_vars)
        if not agree_across_ranks(bool(self.skipped_steps or bad_losses)):
            self.consecutive = 0
            return None
        self.consecutive += 1
        self.skipped_iterations += 1
        losses = ', '.join(f'{k}={_describe(v)}' for k, v in bad_losses.items()) or 'non-finite gradients'
        if self.skipped_steps:
            steps = f'step of {", ".join(self.skipped_steps)} skipped'
        elif skipped_by_scaler:
            steps = f'the fp16 gradient scaler skipped the step of {", ".join(skipped_by_scaler)}'
        else:
            steps = 'gradients were finite, the step was applied'
        logger.warning(f'Non-finite loss at iteration {current_iter} ({losses}): {steps} '
                       f'[{self.consecutive} in a row; the run stops at {self.option} = {self.patience}].')
        return losses if self.consecutive >= self.patience else None

    def stop_error(self, current_iter: int, losses: str, saved: str) -> NonFiniteLossError:
        return NonFiniteLossError(
            f'training stopped at iteration {current_iter}: {self.consecutive} consecutive iterations had a '
            f'non-finite loss or gradient ({losses}), and {self.option} is {self.patience}. {saved} '
            f'Lower the learning rate, check the data and the loss, or raise {self.option}.')


NOT_SAVED = 'The weights are no longer finite, so nothing was saved: resume from the last checkpoint.'


def summary() -> List[str]:
    """End-of-run lines: how many iterations the guards skipped."""
    total = sum(g.skipped_iterations for g in GUARDS)
    return [f'Non-finite guard: {total} iteration(s) had a non-finite loss or gradient and were skipped.'] \
        if total else []
