"""Losses of the text SR line, registered in BasicSR's ``LOSS_REGISTRY``, and the multi-task weighting.

* ``TSRNImageLoss``: TextZoom's ``ImageLoss(gradient=True)``: MSE on all channels (RGB + mask) plus
  ``gradient_weight`` x the gradient-profile prior (L1 between gradient-magnitude maps of the RGB channels).
* ``TextCTCLoss``: CTC on recognizer scores against filtered labels (see ``text.py``).
* ``TaskWeighting``: plain average of the task losses, or Kendall et al.'s homoscedastic uncertainty
  weighting ``sum_i exp(-s_i) L_i + s_i`` with learned ``s_i = log sigma_i^2`` (CVPR 2018, the stable form).

Under mixed precision (``train: amp``) the CTC loss runs in float32 (``full_precision``): its log-probabilities
summed over all alignments need float32's precision and range.
"""
from typing import Dict, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import LOSS_REGISTRY

from ..engine.basicsr.mixed_precision import full_precision, wide
from .labels import encode_labels


def gradient_magnitude(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(((right - left) / 2)^2 + ((below - above) / 2)^2 + 1e-6)`` per pixel, zero padding: ``(N, C, H, W)``."""
    padded = F.pad(x, (1, 1, 1, 1))
    dx = (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2]) * 0.5
    dy = (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1]) * 0.5
    return torch.sqrt(dx * dx + dy * dy + 1e-6)


@LOSS_REGISTRY.register()
class TSRNImageLoss(nn.Module):
    """``loss_weight * (MSE(sr, hr) + gradient_weight * L1(grad(sr[:, :3]), grad(hr[:, :3])))``.

    Args:
        loss_weight (float): Overall weight. TextZoom multiplies its loss by 100 in the training loop. Default: 1.
        gradient_weight (float): Weight of the gradient-profile prior (TextZoom: 1e-4). Default: 1e-4.

    Inputs ``(N, C, H, W)``: the SR output (tanh range) and the HR target in [0, 1]; C = 3 or 4.
    """

    def __init__(self, loss_weight: float = 1.0, gradient_weight: float = 1e-4):
        super().__init__()
        self.loss_weight, self.gradient_weight = loss_weight, gradient_weight

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        loss = F.mse_loss(sr, hr)
        if self.gradient_weight:
            loss = loss + self.gradient_weight * F.l1_loss(gradient_magnitude(sr[:, :3]), gradient_magnitude(hr[:, :3]))
        return self.loss_weight * loss


@LOSS_REGISTRY.register()
class TextCTCLoss(nn.Module):
    """CTC loss (blank 0, mean over the batch of per-sample losses divided by target length, zero_infinity).

    ``forward(scores (T, N, classes), labels: list of N strings)``; labels are filtered as TextZoom does."""

    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight
        self.ctc = nn.CTCLoss(blank=0, reduction='mean', zero_infinity=True)

    def forward(self, scores: torch.Tensor, labels: Sequence[str]) -> torch.Tensor:
        targets, target_lengths = encode_labels(labels)
        input_lengths = torch.full((scores.shape[1], ), scores.shape[0], dtype=torch.long)
        with full_precision(scores.device.type):
            log_probs = wide(scores).log_softmax(-1)
            return self.loss_weight * self.ctc(log_probs, targets, input_lengths, target_lengths)


class TaskWeighting(nn.Module):
    """Combine task losses by ``'average'`` or by learned ``'uncertainty'`` (Kendall et al.).

    Args:
        mode (str): 'average' (``sum_i L_i / n``) or 'uncertainty' (``sum_i exp(-s_i) L_i + s_i``).
        tasks (Sequence[str]): Task names, in the order of the ``losses`` dict given to ``forward``.
        init (float): Initial ``s_i`` (0: weight 1). Default: 0.

    ``s`` (``log_vars``) is a parameter to optimise with the networks; in 'average' mode there is none.
    """

    def __init__(self, mode: str, tasks: Sequence[str], init: float = 0.0):
        super().__init__()
        if mode not in ('average', 'uncertainty'):
            raise ValueError(f"loss weighting must be 'average' or 'uncertainty', got {mode!r}")
        self.mode, self.tasks = mode, list(tasks)
        if mode == 'uncertainty':
            self.log_vars = nn.Parameter(torch.full((len(self.tasks), ), float(init)))

    def forward(self, losses: Dict[str, torch.Tensor]) -> torch.Tensor:
        present = [t for t in self.tasks if t in losses]
        if not present:
            raise ValueError(f'no task loss among {self.tasks}; got {list(losses)}')
        if self.mode == 'average':
            return sum(losses[t] for t in present) / len(present)
        total = 0
        for t in present:
            s = self.log_vars[self.tasks.index(t)]
            total = total + torch.exp(-s) * losses[t] + s
        return total

    def average_gradients_across_ranks(self) -> None:
        """Under a distributed launcher, replace the gradient of ``s`` by its mean over the ranks (what DDP does
        for the networks; this module is not DDP-wrapped, so without it each rank would learn its own ``s``).
        Nothing to do in 'average' mode, before the first backward, or in a single process."""
        if self.mode != 'uncertainty' or self.log_vars.grad is None:
            return
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        dist.all_reduce(self.log_vars.grad)
        self.log_vars.grad /= dist.get_world_size()

    def weights(self) -> Dict[str, float]:
        """Current weight of each task: 1/n (average) or exp(-s_i) (uncertainty)."""
        if self.mode == 'average':
            return {t: 1.0 / len(self.tasks) for t in self.tasks}
        return {t: float(torch.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach())}
