"""Test-only MMagic losses that inject faults, registered in MMagic's ``MODELS`` when imported: by the tests of
``test_mmengine_reliability.py`` for runs in the test process, and by their entry script for runs in a process of
their own (SIGKILL, torchrun). Nothing of this ships."""
import os

import torch
from mmagic.models.losses import L1Loss
from mmagic.registry import MODELS


@MODELS.register_module()
class NaNAtCallsL1Loss(L1Loss):
    """L1 that is NaN on the calls (one per training iteration) listed in nan_calls (on rank nan_rank only, when
    given)."""

    def __init__(self, nan_calls=(), nan_rank=-1, **kwargs):
        super().__init__(**kwargs)
        self.nan_calls, self.calls = set(nan_calls), 0
        self.active = nan_rank < 0 or int(os.environ.get('RANK', 0)) == nan_rank

    def forward(self, *args, **kwargs):
        self.calls += 1
        loss = super().forward(*args, **kwargs)
        return loss * float('nan') if self.active and self.calls in self.nan_calls else loss


@MODELS.register_module()
class NoisyL1Loss(L1Loss):
    """L1 of a prediction with torch.randn noise added: training draws from torch's generator, as PD-GAN does."""

    def forward(self, pred, *args, **kwargs):
        return super().forward(pred + 0.05 * torch.randn_like(pred), *args, **kwargs)
