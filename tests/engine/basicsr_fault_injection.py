"""A test-only BasicSR loss that injects faults, registered in BasicSR's ``LOSS_REGISTRY`` when imported: by the
tests of ``test_basicsr_reliability.py`` for runs in the test process, and by their entry script for runs in a
process of their own (SIGKILL, torchrun). Nothing of this ships."""
import os
import signal

import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn


@LOSS_REGISTRY.register()
class ScriptedMSELoss(nn.Module):
    """MSE that is NaN on the calls in nan_calls, SIGKILLs the process on kill_call, raises on raise_call and
    freezes the process with SIGSTOP on stop_call (on rank raise_rank only, when given); one call per training
    iteration."""

    def __init__(self, loss_weight=1.0, reduction='mean', nan_calls=(), kill_call=0, raise_call=0, raise_rank=-1,
                 stop_call=0):
        super().__init__()
        self.loss_weight, self.nan_calls, self.kill_call = loss_weight, set(nan_calls), kill_call
        self.raise_call, self.raise_rank, self.stop_call, self.calls = raise_call, raise_rank, stop_call, 0

    def forward(self, pred, target):
        self.calls += 1
        rank = int(os.environ.get('RANK', 0))
        if self.calls == self.kill_call:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.calls == self.stop_call and self.raise_rank in (-1, rank):
            os.kill(os.getpid(), signal.SIGSTOP)  # frozen: alive, holding its sockets, answering nothing
        if self.calls == self.raise_call and self.raise_rank in (-1, rank):
            raise RuntimeError(f'injected failure on rank {rank} at call {self.calls}')
        loss = F.mse_loss(pred, target) * self.loss_weight
        return loss * float('nan') if self.calls in self.nan_calls else loss
